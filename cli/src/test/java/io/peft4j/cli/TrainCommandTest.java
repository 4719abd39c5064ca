package io.peft4j.cli;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.safetensors.SafetensorsFile;
import io.peft4j.core.tensor.Npy;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code peft4j train} end to end: the issue's exact command, image folders to a package, bad input, kill -9 and resume. */
class TrainCommandTest {

    @TempDir
    static Path tmp;

    static Path base;
    static Path images;

    @BeforeAll
    static void setUp() throws IOException {
        base = tmp.resolve("tiny.onnx");
        OnnxIO.write(TinyModels.cnn(5), base);
        // three classes told apart by brightness: dark, mid, bright 8×8 grayscale images
        images = tmp.resolve("images");
        Random r = new Random(1);
        String[] classes = {"dark", "mid", "bright"};
        for (int c = 0; c < 3; c++) {
            Path dir = Files.createDirectories(images.resolve(classes[c]));
            for (int i = 0; i < 30; i++) {
                BufferedImage img = new BufferedImage(8, 8, BufferedImage.TYPE_BYTE_GRAY);
                for (int y = 0; y < 8; y++) {
                    for (int x = 0; x < 8; x++) {
                        int v = (int) Math.max(0, Math.min(255, 40 + 85 * c + r.nextGaussian() * 20));
                        img.getRaster().setSample(x, y, 0, v);
                    }
                }
                ImageIO.write(img, "png", dir.resolve(classes[c] + "_" + i + ".png").toFile());
            }
        }
    }

    /** The command issue 5 checks, on the resnet18 test model with the PyTorch fixture. */
    @Test
    void theIssuesSgdCommandGivesPyTorchsUpdatedAdapter() {
        Path model = Assets.shared("models/resnet18.onnx");
        Path ref = Path.of("../trainer/src/test/resources/reference/resnet18-sgd-step").toAbsolutePath().normalize();
        Path out = tmp.resolve("sgd");
        CliRun r = CliRun.of("train", "--base", model.toString(), "--data", ref.resolve("x.npy") + "," + ref.resolve("y.npy"),
                "--init-adapter", ref.resolve("adapter").toString(), "--method", "lora", "--optimizer", "sgd", "--lr", "1",
                "--momentum", "0", "--weight-decay", "0", "--max-grad-norm", "0", "--steps", "1", "--batch", "8",
                "--no-shuffle", "--out", out.toString());
        assertEquals(0, r.exitCode(), r.err());
        Map<String, Tensor> got = AdapterBundle.read(out).tensors();
        Map<String, Tensor> want = SafetensorsFile.readAll(ref.resolve("updated.safetensors"));
        assertEquals(want.keySet(), got.keySet());
        for (String k : want.keySet()) {
            assertTrue(Ort.maxRelDiff(want.get(k), got.get(k)) < 1e-3, k);
        }
    }

    @Test
    void imageFoldersTrainAndExportAPackageThatPredicts() throws IOException {
        Path out = tmp.resolve("run");
        Path pkg = tmp.resolve("pkg");
        CliRun r = CliRun.of("train", "--base", base.toString(), "--data", images.toString(), "--head-classes", "3",
                "--epochs", "6", "--batch", "8", "--lr", "0.02", "--rank", "2", "--mean", "0.5", "--std", "0.25",
                "--threads", "1", "--no-progress", "--out", out.toString(), "--export", pkg.toString());
        assertEquals(0, r.exitCode(), r.err() + r.out());
        assertTrue(r.out().contains("trainable parameters:"), r.out());
        assertTrue(r.out().contains("validation (18 examples)"), r.out());
        assertTrue(r.out().contains("exported a merged package"), r.out());
        for (String f : List.of("adapter_config.json", "adapter_model.safetensors", "metrics.json", "metrics.jsonl", "curves.png")) {
            assertTrue(Files.isRegularFile(out.resolve(f)), f);
        }
        String metrics = Files.readString(out.resolve("metrics.json"));
        for (String key : List.of("train_step_ms_median", "peak_rss_mb", "trainable_params", "total_params", "\"val\"")) {
            assertTrue(metrics.contains(key), key);
        }
        CliRun p = CliRun.of("predict", "--model", pkg.toString(), images.resolve("bright/bright_0.png").toString(),
                images.resolve("dark/dark_0.png").toString());
        assertEquals(0, p.exitCode(), p.err());
        String[] lines = p.out().strip().split("\\R");
        assertTrue(p.out().contains("bright") && p.out().contains("dark"), p.out());
        assertTrue(lines.length >= 2, p.out());
    }

    @Test
    void badInputIsOneClearLineAndLeavesNoResult() throws IOException {
        Path corrupt = Files.write(tmp.resolve("corrupt.npy"), new byte[] {1, 2, 3, 4});
        Path x = tmp.resolve("x.npy");
        Npy.write(x, TinyModels.input(3, 4));
        Path y9 = tmp.resolve("y9.npy");
        Npy.write(y9, Tensor.ofLongs(new long[] {4}, 0, 1, 9, 2));
        Path emptyClass = tmp.resolve("empty-class");
        Files.createDirectories(emptyClass.resolve("a"));
        Files.createDirectories(emptyClass.resolve("b"));
        Files.copy(images.resolve("dark/dark_0.png"), emptyClass.resolve("a/x.png"));
        Path broken = tmp.resolve("broken-image");
        Files.createDirectories(broken.resolve("a"));
        Files.createDirectories(broken.resolve("b"));
        Files.copy(images.resolve("dark/dark_0.png"), broken.resolve("a/x.png"));
        Files.write(broken.resolve("b/y.png"), new byte[] {(byte) 0x89, 'P', 'N', 'G', 0, 0});
        Path other = tmp.resolve("other.onnx");
        OnnxIO.write(TinyModels.cnn(77), other);
        Path y3 = tmp.resolve("y3.npy");
        Npy.write(y3, Tensor.ofLongs(new long[] {4}, 0, 1, 2, 1));
        Path foreign = tmp.resolve("foreign");
        CliRun made = CliRun.of("train", "--base", other.toString(), "--data", x + "," + y3, "--steps", "1",
                "--no-progress", "--out", foreign.toString());
        assertEquals(0, made.exitCode(), made.err());

        List<List<String>> cases = new ArrayList<>();
        cases.add(List.of("--data", tmp.resolve("missing").toString()));
        cases.add(List.of("--data", corrupt + "," + y9));
        cases.add(List.of("--data", x + "," + y9));
        cases.add(List.of("--data", emptyClass.toString()));
        cases.add(List.of("--data", broken.toString()));
        cases.add(List.of("--data", x + "," + y3, "--targets", "no\\.such\\.layer"));
        cases.add(List.of("--data", x + "," + y3, "--init-adapter", foreign.toString()));
        cases.add(List.of("--data", x + "," + y3, "--init-adapter", tmp.resolve("nothing-here").toString()));
        int n = 0;
        for (List<String> c : cases) {
            Path out = tmp.resolve("bad-" + n++);
            List<String> args = new ArrayList<>(List.of("train", "--base", base.toString(), "--out", out.toString(), "--steps", "2"));
            args.addAll(c);
            CliRun r = CliRun.of(args.toArray(String[]::new));
            assertEquals(2, r.exitCode(), c + ": " + r.err() + r.out());
            assertEquals(1, r.errLines().length, c + ": " + r.err());
            assertTrue(r.err().startsWith("peft4j: "), r.err());
            assertFalse(Files.exists(out.resolve("adapter_model.safetensors")), c.toString());
            System.out.println(c + " → " + r.err().strip());
        }
    }

    /** kill -9 in the middle of a run, then --resume: the same adapter and log as a run never interrupted. */
    @Test
    void resumeAfterKillNineReproducesTheUninterruptedRun() throws Exception {
        Path whole = tmp.resolve("whole");
        List<String> common = List.of("train", "--base", base.toString(), "--data", images.toString(), "--head-classes", "3",
                "--epochs", "40", "--batch", "8", "--rank", "2", "--threads", "1", "--checkpoint-every", "5", "--no-progress");
        List<String> a = new ArrayList<>(common);
        a.addAll(List.of("--out", whole.toString()));
        assertEquals(0, CliRun.of(a.toArray(String[]::new)).exitCode());

        Path killed = tmp.resolve("killed");
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), "io.peft4j.cli.Peft4jCli"));
        cmd.addAll(common);
        cmd.addAll(List.of("--out", killed.toString()));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(tmp.resolve("killed.log").toFile()).start();
        Path ckpt = killed.resolve("checkpoints");
        long deadline = System.nanoTime() + 120_000_000_000L;
        while (newestCheckpoint(ckpt) < 20 && p.isAlive() && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertTrue(p.isAlive(), "the run ended before it could be killed: " + Files.readString(tmp.resolve("killed.log")));
        p.destroyForcibly().waitFor();   // SIGKILL
        assertFalse(Files.exists(killed.resolve("adapter_model.safetensors")));

        List<String> b = new ArrayList<>(common);
        b.addAll(List.of("--out", killed.toString(), "--resume"));
        CliRun r = CliRun.of(b.toArray(String[]::new));
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("resumed from checkpoint at step"), r.out());
        Map<String, Tensor> ta = AdapterBundle.read(whole).tensors();
        Map<String, Tensor> tb = AdapterBundle.read(killed).tensors();
        assertEquals(ta.keySet(), tb.keySet());
        for (String k : ta.keySet()) {
            assertArrayEquals(ta.get(k).toFloatArray(), tb.get(k).toFloatArray(), 0f, k);
        }
        assertEquals(Files.readAllLines(whole.resolve("metrics.jsonl")), Files.readAllLines(killed.resolve("metrics.jsonl")));
    }

    /** The step of the newest complete checkpoint in {@code dir}, 0 when there is none. */
    private static long newestCheckpoint(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            return 0;
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.matches("step-\\d{8}"))
                    .mapToLong(n -> Long.parseLong(n.substring(5))).max().orElse(0);
        }
    }
}
