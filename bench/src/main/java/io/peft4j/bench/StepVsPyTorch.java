package io.peft4j.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.trainer.GradientSession;
import io.peft4j.trainer.optim.AdamW;
import io.peft4j.core.tensor.Tensor;
import ai.onnxruntime.OrtSession;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * peft4j's LoRA training step against PyTorch's on the same model, batch and threads, measured in
 * alternating rounds so that both see the same machine: each round times our step (forward, loss,
 * backward on ONNX Runtime, AdamW in Java; {@link Training}) for a few seconds, then runs
 * {@code bench/pytorch_lora_step.py} for a number of steps, and compares the two medians. A drift
 * of the machine's speed moves both sides of a round alike; the spread of the per-round ratios is
 * the uncertainty reported.
 *
 * <pre>java -cp ... io.peft4j.bench.StepVsPyTorch [--model resnet18] [--rounds 5] [--seconds 12]
 *     [--py-steps 30] [--python /usr/bin/python3] [--out FILE] [--docs docs/BENCHMARKS.md]</pre>
 */
public final class StepVsPyTorch {

    /** The marker prefix of this command's sections of {@code docs/BENCHMARKS.md} (one per model). */
    static final String MARKER = "<!-- train-vs-pytorch:";

    private StepVsPyTorch() {
    }

    public static void main(String[] args) throws Exception {
        String model = "resnet18";
        int rounds = 5;
        double seconds = 12;
        int pySteps = 30;
        String python = System.getenv().getOrDefault("PEFT4J_PYTHON", "/usr/bin/python3");
        Path out = null;
        Path docs = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--model" -> model = args[++i];
                case "--rounds" -> rounds = Integer.parseInt(args[++i]);
                case "--seconds" -> seconds = Double.parseDouble(args[++i]);
                case "--py-steps" -> pySteps = Integer.parseInt(args[++i]);
                case "--python" -> python = args[++i];
                case "--out" -> out = Path.of(args[++i]);
                case "--docs" -> docs = Path.of(args[++i]);
                default -> throw new IllegalArgumentException("unknown argument " + args[i]
                        + " (--model M --rounds N --seconds S --py-steps N --python PATH --out FILE)");
            }
        }
        Training.TrainModel which = Training.TrainModel.of(model);
        Training.Setup setup = Training.lora(which);
        Map<String, Tensor> batch = setup.batch();
        Map<String, float[]> params = setup.paramsCopy();
        AdamW adamw = Training.optimizer();
        Path onnx = Workload.sharedDir().resolve("models/" + which.id() + ".onnx");
        Path script = Path.of("bench/pytorch_lora_step.py").toAbsolutePath();
        if (!Files.isRegularFile(script)) {
            throw new IllegalStateException("run from the repository root: " + script + " not found");
        }
        double[] ours = new double[rounds];
        double[] theirs = new double[rounds];
        String torchVersion = "?";
        try (OrtSession.SessionOptions o = Training.options(); GradientSession training = new GradientSession(setup.graph(), o, List.of())) {
            for (int i = 0; i < 5; i++) {
                adamw.step(params, training.step(batch, params).gradients());
            }
            for (int r = 0; r < rounds; r++) {
                List<Double> t = new ArrayList<>();
                long end = System.nanoTime() + (long) (seconds * 1e9);
                while (System.nanoTime() < end || t.size() < 5) {
                    long t0 = System.nanoTime();
                    GradientSession.Step s = training.step(batch, params);
                    adamw.step(params, s.gradients());
                    t.add((System.nanoTime() - t0) / 1e6);
                }
                ours[r] = median(t.stream().mapToDouble(Double::doubleValue).toArray());
                Path json = Files.createTempFile("pytorch-step", ".json");
                Process p = new ProcessBuilder(python, script.toString(), "--model", which.id(), "--onnx", onnx.toString(),
                        "--threads", Integer.toString(Bench.THREADS), "--batch", Integer.toString(Training.BATCH),
                        "--rank", "8", "--alpha", "16", "--warmup", "5", "--steps", Integer.toString(pySteps),
                        "--out", json.toString()).inheritIO().start();
                if (p.waitFor() != 0) {
                    throw new IllegalStateException("the PyTorch baseline failed (exit " + p.exitValue() + ")");
                }
                JsonNode j = new ObjectMapper().readTree(json.toFile());
                Files.deleteIfExists(json);
                theirs[r] = j.get("median_ms").asDouble();
                torchVersion = j.path("torch").asText(j.path("versions").path("torch").asText("?"));
                System.err.printf(Locale.ROOT, "round %d: peft4j %.1f ms (%d steps), PyTorch %.1f ms -> %.3f%n", r + 1, ours[r],
                        t.size(), theirs[r], ours[r] / theirs[r]);
            }
        }
        double[] ratios = new double[rounds];
        for (int r = 0; r < rounds; r++) {
            ratios[r] = ours[r] / theirs[r];
        }
        double[] sorted = ratios.clone();
        Arrays.sort(sorted);
        double med = median(ratios);
        String verdict = sorted[rounds - 1] < 1 ? "faster in every round"
                : sorted[0] > 1 ? "slower in every round" : "within the rounds' spread (some faster, some slower)";
        StringBuilder md = new StringBuilder();
        md.append(String.format(Locale.ROOT, "%s LoRA step (r 8, batch %d, 3×%d×%d, %d threads), peft4j vs PyTorch %s, %d "
                        + "alternating rounds (%s, %s, load average at the end %s):%n%n| round | peft4j median | PyTorch median "
                        + "| ratio |%n|---|---|---|---|%n", which.id(), Training.BATCH, Training.SIZE, Training.SIZE, Bench.THREADS,
                torchVersion, rounds, Instant.now(), Machine.describe().getOrDefault("CPU", "?"), loadAverage()));
        for (int r = 0; r < rounds; r++) {
            md.append(String.format(Locale.ROOT, "| %d | %.1f ms | %.1f ms | %.3f |%n", r + 1, ours[r], theirs[r], ratios[r]));
        }
        md.append(String.format(Locale.ROOT, "%nMedian ratio %.3f (range %.3f – %.3f): %s.%n", med, sorted[0], sorted[rounds - 1],
                verdict));
        System.out.print(md);
        if (out != null) {
            Files.writeString(out, md.toString(), StandardCharsets.UTF_8);
        }
        if (docs != null) {
            String section = "### LoRA training step against PyTorch, alternating rounds (" + which.id() + ")\n\n"
                    + "Command: `bench/train-vs-pytorch --model " + which.id() + " --rounds " + rounds + " --seconds "
                    + (int) seconds + " --py-steps " + pySteps + " --docs docs/BENCHMARKS.md`\n\n" + md;
            MarkedSections.splice(docs, MARKER, which.id(), section);
        }
    }

    private static String loadAverage() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).split(" ")[0];
        } catch (IOException | RuntimeException e) {
            return "?";
        }
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }
}
