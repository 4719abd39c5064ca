package io.peft4j.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The quickstart's summary and report, from fixed numbers (no training, no server). */
class QuickstartReportTest {

    private static QuickstartReport report() {
        double[] steps = {1, 2, 3, 4};
        return new QuickstartReport(List.of(
                new QuickstartReport.Line("metal-dim", "fabric", 500, 0.3216, 0.7155, 0.2724, 373, 0.716, 55_196, 50.7, 300,
                        steps, new double[] {4.2, 2.0, 1.1, 0.7}),
                new QuickstartReport.Line("fabric", "metal-dim", 500, 0.29, 0.796, 0.332, 350, 0.796, 55_196, 55.3, 300,
                        steps, new double[] {88, 9, 1.2, 0.5})),
                new QuickstartReport.Merged("metal-dim", 500, 0.716, 499, 290_800), 290_800,
                List.of(new QuickstartReport.Latency("base model (side package, no adapter)", 1000, 7.5, 40.824, 1.49),
                        new QuickstartReport.Latency("merged package", 500, 4.154, 14.91, 0.77)),
                List.of("command: `peft4j quickstart`"), 161.1);
    }

    @Test
    void summaryAndReportShowTheSameNumbers(@TempDir Path dir) throws Exception {
        QuickstartReport r = report();
        List<String> s = r.summary();
        assertEquals("  metal-dim     500   0.322        0.716          0.272  +0.394", s.get(2));
        assertEquals("  fabric        500   0.290        0.796          0.332  +0.506", s.get(3));
        assertEquals("the two adapters give different answers on 373 of 500 metal-dim images, 350 of 500 fabric images", s.get(4));
        assertTrue(s.get(5).contains("accuracy 0.716, same answer as the side package on 499 of 500 images"), s.get(5));
        assertEquals("size on disk: base model 284 KiB; adapters metal-dim 53.9 KiB (19.0 %), fabric 53.9 KiB (19.0 %)", s.get(6));
        assertTrue(s.get(7).endsWith("base model (side package, no adapter) 7.50 / 40.82 ms, server 1.49 ms (1000); "
                + "merged package 4.15 / 14.91 ms, server 0.77 ms (500)"), s.get(7));

        r.write(dir);
        String md = Files.readString(dir.resolve(QuickstartReport.REPORT), StandardCharsets.UTF_8);
        for (String row : List.of("| metal-dim | 500 | 0.322 | 0.716 | 0.272 | +0.394 |",
                "| fabric | 500 | 0.290 | 0.796 | 0.332 | +0.506 |", "| metal-dim | 500 | 373 | 0.716 |",
                "| metal-dim | 300 | 50.7 s | 53.9 KiB | 19.0 % |", "| base model (side package, no adapter) | 1000 | 7.50 | 40.82 | 1.49 |",
                "| merged package | 500 | 4.15 | 14.91 | 0.77 |", "- total time: 161.1 s")) {
            assertTrue(md.contains(row), row + " in\n" + md);
        }
        for (String line : s) {
            assertTrue(md.contains(line + "\n"), "the printed summary is in the report: " + line);
        }
        for (String png : List.of(QuickstartReport.ACCURACY_PNG, QuickstartReport.LOSS_PNG)) {
            byte[] b = Files.readAllBytes(dir.resolve(png));
            assertTrue(b.length > 1000 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G', png);
        }
        try (var files = Files.list(dir)) {
            assertEquals(3, files.count(), "no temporary files left");
        }
    }

    @Test
    void quantilesInterpolateBetweenRanks() {
        double[] v = new double[101];
        for (int i = 0; i < v.length; i++) {
            v[i] = i;
        }
        assertEquals(50, QuickstartCommand.quantile(v, 0.5), 1e-12);
        assertEquals(95, QuickstartCommand.quantile(v, 0.95), 1e-12);
        assertEquals(2.5, QuickstartCommand.quantile(new double[] {1, 2, 3, 4}, 0.5), 1e-12);
        assertEquals(7, QuickstartCommand.quantile(new double[] {7}, 0.95), 1e-12);
        assertTrue(Double.isNaN(QuickstartCommand.quantile(new double[0], 0.5)));
    }
}
