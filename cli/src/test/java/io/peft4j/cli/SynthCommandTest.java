package io.peft4j.cli;

import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.OnnxChecker;
import io.peft4j.devices.ort.OrtBackend;
import io.peft4j.trainer.data.Batch;
import io.peft4j.trainer.data.Dataset;
import io.peft4j.trainer.data.ModelInputs;
import io.peft4j.trainer.data.SyntheticDefects;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code peft4j synth}: folders, determinism, bad input, the untrained architecture, and the trained base model it feeds. */
class SynthCommandTest {

    @TempDir
    Path tmp;

    @Test
    void writesClassFoldersThatAreTheSameEveryTime() throws Exception {
        Path a = tmp.resolve("a");
        CliRun r = CliRun.of("synth", "--line", "fabric", "--out", a.toString(), "--per-class", "4", "--size", "24",
                "--seed", "5", "--split", "test", "--threads", "2");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("wrote 20 images (5 classes × 4, 24x24 gray, line fabric, test split, seed 5)"), r.out());
        for (String c : SyntheticDefects.CLASSES) {
            try (Stream<Path> s = Files.list(a.resolve(c))) {
                assertEquals(4, s.filter(p -> p.toString().endsWith(".png")).count(), c);
            }
        }
        Path b = tmp.resolve("b");
        assertEquals(0, CliRun.of("synth", "--line", "fabric", "--out", b.toString(), "--per-class", "4", "--size", "24",
                "--seed", "5", "--split", "test", "--threads", "1").exitCode());
        assertArrayEquals(Files.readAllBytes(a.resolve("crack/crack_00003.png")), Files.readAllBytes(b.resolve("crack/crack_00003.png")));
        Path c = tmp.resolve("c");
        assertEquals(0, CliRun.of("synth", "--line", "fabric", "--out", c.toString(), "--per-class", "4", "--size", "24",
                "--seed", "5").exitCode());
        assertFalse(java.util.Arrays.equals(Files.readAllBytes(a.resolve("crack/crack_00003.png")),
                Files.readAllBytes(c.resolve("crack/crack_00003.png"))), "the train split differs from the test split");
    }

    @Test
    void badInputIsOneClearLine() throws Exception {
        Path out = tmp.resolve("out");
        assertError(CliRun.of("synth", "--line", "wood", "--out", out.toString()),
                "unknown production line 'wood'; the lines are metal, metal-dim, fabric");
        assertError(CliRun.of("synth", "--line", "metal", "--out", out.toString(), "--size", "4"),
                "the image size must be 8..2048 pixels, got 4");
        assertError(CliRun.of("synth", "--line", "metal", "--out", out.toString(), "--per-class", "0"),
                "images per class must be 1..1000000, got 0");
        assertError(CliRun.of("synth", "--line", "metal", "--out", out.toString(), "--split", "val"),
                "unknown split 'val'; use train or test");
        assertError(CliRun.of("synth", "--line", "metal"), "give --line LINE and --out DIR (lines: metal, metal-dim, fabric)");
        assertError(CliRun.of("synth", "--line", "metal", "--out", out.toString(), "--write-untrained-model",
                tmp.resolve("m.onnx").toString()), "give either --line and --out (images) or --write-untrained-model FILE, not both");
        assertFalse(Files.exists(out));

        Path full = Files.createDirectories(tmp.resolve("full"));
        Files.writeString(full.resolve("notes.txt"), "keep me");
        assertError(CliRun.of("synth", "--line", "metal", "--out", full.toString(), "--per-class", "2"),
                full.toAbsolutePath() + " exists and is not empty; refusing to write images into it (choose another folder or remove it)");
        try (Stream<Path> s = Files.list(full)) {
            assertEquals(List.of("notes.txt"), s.map(p -> p.getFileName().toString()).toList());
        }
        try (Stream<Path> s = Files.list(tmp)) {
            assertEquals(List.of("full"), s.map(p -> p.getFileName().toString()).toList(), "nothing else was written");
        }
    }

    private static void assertError(CliRun r, String message) {
        assertEquals(2, r.exitCode(), r.out() + r.err());
        assertEquals(1, r.errLines().length, r.err());
        assertEquals(ErrorReporting.PREFIX + message, r.errLines()[0]);
    }

    @Test
    void helpListsTheLinesAndClasses() {
        CliRun r = CliRun.of("synth", "--help");
        assertEquals(0, r.exitCode());
        for (SyntheticDefects.Line l : SyntheticDefects.lines()) {
            assertTrue(r.out().contains("  " + pad(l.name()) + l.description()), "line " + l.name() + ":\n" + r.out());
        }
        for (String c : SyntheticDefects.CLASSES) {
            SyntheticDefects.Defect d = SyntheticDefects.Defect.of(c);
            assertTrue(r.out().contains("  " + pad(c) + d.description()), "class " + c + ":\n" + r.out());
        }
        assertTrue(r.out().contains("--write-untrained-model"), r.out());
    }

    private static String pad(String s) {
        return String.format("%-11s", s);
    }

    @Test
    void writesTheUntrainedArchitecture() {
        Path m = tmp.resolve("untrained.onnx");
        CliRun r = CliRun.of("synth", "--write-untrained-model", m.toString(), "--seed", "3");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("5 classes [crack, good, inclusion, scratch, spot]"), r.out());
        OnnxChecker.check(m);
        Model model = OnnxIO.read(m);
        assertFalse(Files.exists(Path.of(m + ".data")), "weights inline");
        assertEquals(ModelInputs.of(DefaultModel.build(3)), ModelInputs.of(model));
        assertEquals(io.peft4j.core.adapter.BaseFingerprint.of(DefaultModel.build(3)), io.peft4j.core.adapter.BaseFingerprint.of(model));
        assertError(CliRun.of("synth", "--write-untrained-model", tmp.toString()), tmp + " is a folder; give the model's file name (FILE.onnx)");
    }

    @Test
    void writesTheTrainedBaseModel() {
        Path m = tmp.resolve("base.onnx");
        CliRun r = CliRun.of("synth", "--write-base-model", m.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("the quickstart's base model, trained on the metal line"), r.out());
        assertTrue(r.out().contains("5 classes [crack, good, inclusion, scratch, spot]"), r.out());
        OnnxChecker.check(m);
        assertEquals(io.peft4j.core.adapter.BaseFingerprint.of(DefaultModel.trained()),
                io.peft4j.core.adapter.BaseFingerprint.of(OnnxIO.read(m)), "the model in the resources");
        assertError(CliRun.of("synth", "--write-base-model", tmp.toString()), tmp + " is a folder; give the model's file name (FILE.onnx)");
        assertError(CliRun.of("synth", "--write-base-model", m.toString(), "--write-untrained-model", m.toString()),
                "give either --write-untrained-model FILE or --write-base-model FILE, not both");
        assertError(CliRun.of("synth", "--write-base-model", m.toString(), "--line", "metal"),
                "give either --line and --out (images) or --write-base-model FILE, not both");
        assertError(CliRun.of("synth", "--write-base-model", tmp.resolve("no/such/base.onnx").toString()),
                "folder not found: " + tmp.resolve("no/such").toAbsolutePath());
    }

    /**
     * The trained base model in the resources: small, its labels right, good on held-out metal images
     * and clearly worse on the other lines (what its adapters are for). The numbers are in
     * samples/quickstart/README.md.
     */
    @Test
    void theTrainedBaseModelKnowsMetalAndNotTheOtherLines() throws Exception {
        Model m = DefaultModel.trained();
        long params = io.peft4j.core.inspect.ModelInspection.of(m).parameters();
        assertTrue(params <= 100_000, params + " parameters");
        Model arch = DefaultModel.build(0);
        assertEquals(arch.graph().initializers().keySet(), m.graph().initializers().keySet(), "the architecture of build()");
        for (String name : arch.graph().initializers().keySet()) {
            assertArrayEquals(arch.graph().initializer(name).shape(), m.graph().initializer(name).shape(), name);
        }
        Path file = tmp.resolve("base.onnx");
        OnnxIO.write(m, file, OnnxIO.WriteOptions.inline());
        assertTrue(Files.size(file) < 450_000, Files.size(file) + " bytes");
        double metal = accuracy(file, SyntheticDefects.METAL);
        double dim = accuracy(file, SyntheticDefects.METAL_DIM);
        double fabric = accuracy(file, SyntheticDefects.FABRIC);
        System.out.printf("quickstart base model, held-out accuracy: metal %.3f, metal-dim %.3f, fabric %.3f%n", metal, dim, fabric);
        assertTrue(metal > 0.85, "metal " + metal);
        assertTrue(dim < metal - 0.3, "metal-dim " + dim);
        assertTrue(fabric < metal - 0.3, "fabric " + fabric);
    }

    /** Accuracy on 100 held-out images per class (seed 42, the quickstart's default). */
    private static double accuracy(Path model, SyntheticDefects.Line line) {
        Dataset ds = new SyntheticDefects(line, DefaultModel.SIZE, 42).dataset(SyntheticDefects.Split.TEST, 100,
                ModelInputs.of(OnnxIO.read(model)));
        Batch b = ds.batch(IntStream.range(0, ds.size()).toArray(), null);
        try (OrtBackend p = OrtBackend.open(model, new OrtBackend.Options(2, 1))) {
            Map<String, Tensor> out = p.run(b.inputs(), null);
            float[] y = out.values().iterator().next().toFloatArray();
            int k = SyntheticDefects.CLASSES.size();
            int ok = 0;
            for (int i = 0; i < ds.size(); i++) {
                int best = 0;
                for (int c = 1; c < k; c++) {
                    best = y[i * k + c] > y[i * k + best] ? c : best;
                }
                ok += best == b.labels()[i] ? 1 : 0;
            }
            return ok / (double) ds.size();
        }
    }
}
