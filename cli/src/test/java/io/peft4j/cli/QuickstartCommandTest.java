package io.peft4j.cli;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.pkg.ModelPackage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code peft4j quickstart --quick} end to end: real training, real export, a real server, real HTTP. */
class QuickstartCommandTest {

    @TempDir
    Path dir;

    private static final Pattern ROW = Pattern.compile(
            "(?m)^  (\\S+)\\s+(\\d+)\\s+(\\d\\.\\d{3})\\s+(\\d\\.\\d{3})\\s+(\\d\\.\\d{3})\\s+([+-]\\d\\.\\d{3})$");

    @Test
    void quickRunTrainsServesAndReportsWhatItPrinted() throws Exception {
        Path out = dir.resolve("qs");
        CliRun r = CliRun.of("quickstart", "--quick", "--out", out.toString(), "--threads", "2");
        assertEquals(0, r.exitCode(), r.err() + "\n" + r.out());
        String printed = r.out();
        String report = Files.readString(out.resolve("report.md"), StandardCharsets.UTF_8);

        // accuracy per line: printed rows, the same numbers in the report's table, and the adapters beat the base
        Matcher m = ROW.matcher(printed);
        List<String> lines = new ArrayList<>();
        List<Double> own = new ArrayList<>();
        while (m.find()) {
            String line = m.group(1);
            lines.add(line);
            int images = Integer.parseInt(m.group(2));
            double base = Double.parseDouble(m.group(3));
            double adapter = Double.parseDouble(m.group(4));
            own.add(adapter);
            double other = Double.parseDouble(m.group(5));
            assertEquals(QuickstartCommand.QUICK.testPerClass() * 5, images);
            String row = "| " + line + " | " + images + " | " + m.group(3) + " | " + m.group(4) + " | " + m.group(5) + " | "
                    + m.group(6) + " |";
            assertTrue(report.contains(row), row + " in\n" + report);
            assertTrue(adapter - base >= 0.25, line + ": own adapter " + adapter + " vs base " + base + "\n" + printed);
            assertTrue(adapter - other >= 0.15, line + ": own adapter " + adapter + " vs the other line's " + other + "\n" + printed);
            assertEquals(Double.parseDouble(m.group(6)), adapter - base, 1.5e-3);
        }
        assertEquals(List.of("metal-dim", "fabric"), lines, printed);

        // the two adapters disagree, and the report says on how many images
        Matcher d = Pattern.compile("the two adapters give different answers on (\\d+) of (\\d+) metal-dim images, (\\d+) of (\\d+) "
                + "fabric images").matcher(printed);
        assertTrue(d.find(), printed);
        for (int i = 0; i < 2; i++) {
            int n = Integer.parseInt(d.group(2 * i + 1));
            assertTrue(n >= 30, "disagreements " + n + "\n" + printed);
            String row = "| " + lines.get(i) + " | " + d.group(2 * i + 2) + " | " + n + " | ";
            assertTrue(report.contains(row), row + " in\n" + report);
            // the trainer's in-process evaluation of the adapter agrees with what the runtime answered over HTTP
            Matcher t = Pattern.compile(Pattern.quote(row) + "(\\d\\.\\d{3}) \\|").matcher(report);
            assertTrue(t.find(), report);
            assertEquals(own.get(i), Double.parseDouble(t.group(1)), 0.021, lines.get(i) + "\n" + report);
        }

        // the merged package answers as the side package does with the same adapter
        Matcher mg = Pattern.compile("merged package \\(metal-dim adapter folded in\\): accuracy (\\d\\.\\d{3}), same answer as the "
                + "side package on (\\d+) of (\\d+) images").matcher(printed);
        assertTrue(mg.find(), printed);
        assertEquals(mg.group(3), mg.group(2), "merged and side disagree\n" + printed);
        assertTrue(report.contains("scores " + mg.group(1) + " on the " + mg.group(3) + " `metal-dim` images and gives the same "
                + "answer as the side package with that adapter on " + mg.group(2) + " of them"), report);

        // sizes and latency: the printed strings are in the report's tables
        Matcher sz = Pattern.compile("size on disk: base model ([\\d.]+ \\S+); adapters metal-dim ([\\d.]+ \\S+) \\(([\\d.]+ %)\\), "
                + "fabric ([\\d.]+ \\S+) \\(([\\d.]+ %)\\)").matcher(printed);
        assertTrue(sz.find(), printed);
        assertTrue(report.contains("Base model on disk: " + sz.group(1)), report);
        assertTrue(report.contains(" | " + sz.group(2) + " | " + sz.group(3) + " |"), report);
        assertTrue(report.contains(" | " + sz.group(4) + " | " + sz.group(5) + " |"), report);
        Matcher lat = Pattern.compile("(base model \\(side package, no adapter\\)|side package \\+ adapter|merged package) "
                + "(\\d+\\.\\d\\d) / (\\d+\\.\\d\\d) ms, server (\\d+\\.\\d\\d) ms \\((\\d+)\\)").matcher(printed);
        int latencies = 0;
        while (lat.find()) {
            latencies++;
            String row = "| " + lat.group(1) + " | " + lat.group(5) + " | " + lat.group(2) + " | " + lat.group(3) + " | "
                    + lat.group(4) + " |";
            assertTrue(report.contains(row), row + " in\n" + report);
            assertTrue(Double.parseDouble(lat.group(2)) > 0 && Double.parseDouble(lat.group(3)) >= Double.parseDouble(lat.group(2)));
            assertTrue(Double.parseDouble(lat.group(4)) > 0, "server time " + lat.group(4));
        }
        assertEquals(3, latencies, printed);

        // the files it left: plots, data, adapters, packages that load
        byte[] pngMagic = {(byte) 0x89, 'P', 'N', 'G'};
        for (String png : List.of("accuracy.png", "loss.png", "train/metal-dim/curves.png", "train/fabric/curves.png")) {
            byte[] b = Files.readAllBytes(out.resolve(png));
            assertTrue(b.length > 1000, png);
            assertArrayEquals(pngMagic, java.util.Arrays.copyOf(b, 4), png);
        }
        assertEquals(QuickstartCommand.QUICK.testPerClass(), Files.list(out.resolve("data/fabric-test/spot")).count());
        assertEquals(QuickstartCommand.QUICK.trainPerClass(), Files.list(out.resolve("data/metal-dim-train/crack")).count());
        AdapterBundle a = AdapterBundle.read(out.resolve("train/fabric"));
        assertTrue(a.requireBase(OnnxIO.read(out.resolve("base/model.onnx")), "base"));
        assertEquals(Manifest.Mode.merged, ModelPackage.open(out.resolve("repo/merged")).manifest().mode());
        Manifest side = ModelPackage.open(out.resolve("repo/side")).manifest();
        assertEquals(Manifest.Mode.side, side.mode());
        assertEquals(List.of("metal-dim", "fabric"), side.adapters().stream().map(Manifest.Adapter::name).toList());
        assertEquals(DefaultModel.LABELS, side.labels());
        assertTrue(printed.contains("serve the packages again: peft4j serve --repo " + out.toAbsolutePath().resolve("repo")), printed);
    }

    @Test
    void helpExplainsTheFlags() {
        CliRun r = CliRun.of("quickstart", "--help");
        assertEquals(0, r.exitCode(), r.err());
        for (String s : List.of("--out", "--quick", "--threads", "--port", "--seed", "report.md", "metal-dim", "fabric",
                "/v2/models/{m}/classify", "merged", "side")) {
            assertTrue(r.out().contains(s), s + " in\n" + r.out());
        }
    }

    @Test
    void badOptionsAreOneLineAndExitTwo() throws Exception {
        Files.writeString(dir.resolve("keep.txt"), "earlier results");
        CliRun busy = CliRun.of("quickstart", "--quick", "--out", dir.toString());
        assertEquals(2, busy.exitCode(), busy.err());
        assertEquals(1, busy.errLines().length, busy.err());
        assertTrue(busy.err().contains("is not empty; give a new or empty folder"), busy.err());
        assertEquals("earlier results", Files.readString(dir.resolve("keep.txt")));

        CliRun file = CliRun.of("quickstart", "--quick", "--out", dir.resolve("keep.txt").toString());
        assertEquals(2, file.exitCode(), file.err());
        assertTrue(file.err().contains("exists and is not a folder"), file.err());

        CliRun threads = CliRun.of("quickstart", "--quick", "--out", dir.resolve("a").toString(), "--threads", "0");
        assertEquals(2, threads.exitCode());
        assertTrue(threads.err().contains("--threads must be 1..1024, got 0"), threads.err());

        CliRun port = CliRun.of("quickstart", "--quick", "--out", dir.resolve("b").toString(), "--port", "70000");
        assertEquals(2, port.exitCode());
        assertTrue(port.err().contains("--port must be 0..65535, got 70000"), port.err());
        try (java.net.ServerSocket taken = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            CliRun inUse = CliRun.of("quickstart", "--quick", "--out", dir.resolve("c").toString(), "--port",
                    Integer.toString(taken.getLocalPort()));
            assertEquals(2, inUse.exitCode(), inUse.err());
            assertEquals(1, inUse.errLines().length, inUse.err());
            assertTrue(inUse.err().contains("--port " + taken.getLocalPort() + " is not free on 127.0.0.1"), inUse.err());
        }
        for (String d : List.of("a", "b", "c")) {
            assertTrue(Files.notExists(dir.resolve(d)), "nothing created for bad options: " + d);
        }
    }
}
