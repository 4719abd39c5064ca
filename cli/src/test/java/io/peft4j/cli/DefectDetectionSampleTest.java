package io.peft4j.cli;

import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.pkg.ModelPackage;
import io.peft4j.core.testkit.Assets;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code samples/defect-detection/run.sh --quick} through bash on NEU-DET ({@code ../shared}; skipped
 * with a message when missing): real training, export and prediction with the CLI built from this
 * module's classes (the script's {@code PEFT4J} variable points at a wrapper that runs
 * {@link Peft4jCli} on the test class path, so no nested Maven build starts).
 */
class DefectDetectionSampleTest {

    /*
     * Bounds from quick runs with the seeds 42, 1 and 7 (samples/defect-detection/README.md), each the
     * smallest value seen less room for another CPU's rounding; 90 held-out images per line, one is 0.011.
     * Seen: base on line-a 0.878 / 0.967 / 0.867; line-b's adapter on line-b 0.856 / 0.933 / 0.922, over
     * the base there by 0.500 / 0.567 / 0.267; on line-a, below the base by 0.411 / 0.467 / 0.144.
     */
    private static final double BASE_OWN_LINE = 0.75;
    private static final double ADAPTER_OWN_LINE = 0.75;
    private static final double OVER_BASE = 0.15;
    private static final double OVER_OTHER = 0.05;

    @TempDir
    Path dir;

    private SampleScript.Run runSample(List<String> args, long timeoutMinutes) throws Exception {
        return SampleScript.run(dir, "defect-detection", args, Map.of(), "1g", timeoutMinutes);
    }

    @Test
    void quickRunTrainsAnAdapterThatBeatsTheBaseOnItsLine() throws Exception {
        Path data = Assets.shared("data/neu-det");
        Path out = dir.resolve("work");
        SampleScript.Run r = runSample(List.of("--quick", "--data", data.toString(), "--out", out.toString(), "--threads", "2"), 20);
        assertEquals(0, r.exitCode(), r.output());

        for (String f : List.of("base/model.onnx", "adapters/line-b/adapter_model.safetensors",
                "adapters/line-b/adapter_config.json", "packages/side/model.onnx", "packages/side/manifest.json",
                "packages/side/adapters/line-b.onnx_adapter",
                "packages/merged/model.onnx", "results.md", "results.tsv")) {
            assertTrue(Files.isRegularFile(out.resolve(f)), f + " is missing:\n" + r.output());
        }
        Manifest side = ModelPackage.open(out.resolve("packages/side")).manifest();
        assertEquals(Manifest.Mode.side, side.mode());
        assertEquals(List.of("crazing|pitted_surface", "inclusion|rolled-in_scale", "patches|scratches"), side.labels());
        Manifest merged = ModelPackage.open(out.resolve("packages/merged")).manifest();
        assertEquals(Manifest.Mode.merged, merged.mode());
        assertEquals(List.of("pitted_surface", "rolled-in_scale", "scratches"), merged.labels());

        // line / package / adapter → accuracy, from results.tsv; every row on 90 held-out images (3 classes × 30)
        Map<String, Double> acc = new HashMap<>();
        List<String> rows = Files.readAllLines(out.resolve("results.tsv"), StandardCharsets.UTF_8);
        assertEquals("line\tpackage\tadapter\tcorrect\ttotal\taccuracy", rows.get(0));
        for (String row : rows.subList(1, rows.size())) {
            String[] c = row.split("\t");
            assertEquals(90, Integer.parseInt(c[4]), row);
            assertEquals(Integer.parseInt(c[3]) / 90.0, Double.parseDouble(c[5]), 1e-4, row);
            acc.put(c[0] + "/" + c[1] + "/" + c[2], Double.parseDouble(c[5]));
        }
        assertEquals(Set.of("line-a/side/none", "line-a/side/line-b", "line-b/side/none", "line-b/side/line-b",
                "line-b/merged/line-b"), acc.keySet());
        String report = Files.readString(out.resolve("results.md"), StandardCharsets.UTF_8);
        assertTrue(report.contains(String.format(Locale.ROOT, "| line-b | 90 | %.4f | %.4f | %.4f |",
                acc.get("line-b/side/none"), acc.get("line-b/side/line-b"), acc.get("line-b/merged/line-b"))), report);
        assertTrue(report.contains(String.format(Locale.ROOT, "| line-a | 90 | %.4f | %.4f | – |",
                acc.get("line-a/side/none"), acc.get("line-a/side/line-b"))), report);

        double baseA = acc.get("line-a/side/none");
        double baseB = acc.get("line-b/side/none");
        double adapterA = acc.get("line-a/side/line-b");
        double adapterB = acc.get("line-b/side/line-b");
        assertTrue(baseA >= BASE_OWN_LINE, "base model on its own line: " + baseA + "\n" + report);
        assertTrue(adapterB >= ADAPTER_OWN_LINE, "line-b adapter on line-b: " + adapterB + "\n" + report);
        assertTrue(adapterB - baseB >= OVER_BASE, "line-b: adapter " + adapterB + " vs base " + baseB + "\n" + report);
        assertTrue(baseA - adapterA >= OVER_OTHER, "line-a: base " + baseA + " vs line-b's adapter " + adapterA + "\n" + report);
        // the merged package is line-b's adapter folded in: the same answers up to rounding
        assertEquals(adapterB, acc.get("line-b/merged/line-b"), 1.5 / 90, report);
    }

    @Test
    void badDataIsRefusedWithOneLineAndExitCode2() throws Exception {
        SampleScript.Run missing = runSample(List.of("--data", dir.resolve("nowhere").toString(), "--out", dir.resolve("o1").toString()), 1);
        assertEquals(2, missing.exitCode(), missing.output());
        assertTrue(missing.output().contains("run.sh: error: no data folder"), missing.output());

        Path three = dir.resolve("three");
        for (String c : List.of("a", "b", "c")) {
            Files.createDirectories(three.resolve(c));
        }
        SampleScript.Run few = runSample(List.of("--data", three.toString(), "--out", dir.resolve("o2").toString()), 1);
        assertEquals(2, few.exitCode(), few.output());
        assertTrue(few.output().contains("has 3 class folders; two production lines of 3 classes need 6"), few.output());

        SampleScript.Run option = runSample(List.of("--per-line", "1"), 1);
        assertEquals(2, option.exitCode(), option.output());
        assertTrue(option.output().contains("--per-line must be 2 or more"), option.output());
    }
}
