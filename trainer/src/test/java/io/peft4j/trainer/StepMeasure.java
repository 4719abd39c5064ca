package io.peft4j.trainer;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.trainer.autodiff.GradientBuilder;
import io.peft4j.trainer.autodiff.GradientGraph;
import io.peft4j.trainer.autodiff.Losses;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

/**
 * A measurement, not a test (surefire runs *Test classes only): the time of one training step
 * (forward, loss, backward; a {@link GradientSession} step including the copies in and out) for
 * LoRA and for full fine-tuning, next to the forward pass alone, and the process's peak resident
 * memory. One configuration per JVM, so that peaks do not mix:
 *
 * <pre>
 * ./mvnw -o -q -pl trainer -am test-compile dependency:build-classpath -Dmdep.outputFile=/tmp/cp -Dmdep.includeScope=test
 * java -Xmx4g -cp trainer/target/test-classes:trainer/target/classes:core/target/test-classes:$(cat /tmp/cp) \
 *     io.peft4j.trainer.StepMeasure ../shared/models/resnet18.onnx lora|full|forward|forward-lora [profile-dir]
 * </pre>
 * System properties: {@code peft4j.runs} (timed steps, default 15), {@code peft4j.profileRuns}
 * (profiled runs after warm-up, default 5), {@code peft4j.saveGraph} (write the training graph
 * there, for {@link PairedStepMeasure}).
 */
public final class StepMeasure {

    private static final int BATCH = 16;
    private static final int THREADS = 2;
    private static final int WARMUP = 3;
    private static final int RUNS = Integer.getInteger("peft4j.runs", 15);
    /** LoRA rank (system property peft4j.rank, default 8; alpha = 2r). */
    private static final int RANK = Integer.getInteger("peft4j.rank", 8);

    public static void main(String[] args) throws Exception {
        Path file = Path.of(args[0]);
        String mode = args[1];
        Path profile = args.length > 2 ? Path.of(args[2]) : null;
        Model m = OnnxIO.read(file);
        Random r = new Random(1);
        Tensor x = TinyModels.randn(r, BATCH, 3, 64, 64);
        long[] labels = new long[BATCH];
        for (int i = 0; i < BATCH; i++) {
            labels[i] = i % 6;
        }
        Map<String, Tensor> batch = Map.of("input", x, "labels", Tensor.ofLongs(new long[] {BATCH}, labels));
        long rssBefore = status("VmRSS");
        List<String> trainable;
        switch (mode) {
            case "forward", "forward-lora" -> {
                if (mode.equals("forward-lora")) {
                    lora(m);
                }
                forward(m, x, profile);
                report(file, mode, 0, rssBefore, List.of());
                return;
            }
            case "lora" -> trainable = lora(m).trainable();
            case "full" -> {
                trainable = new ArrayList<>();
                for (Map.Entry<String, Tensor> e : m.graph().initializers().entrySet()) {
                    // every float weight, BatchNorm statistics excepted (frozen in inference mode)
                    if (e.getValue().dtype().isFloatingPoint() && !e.getKey().endsWith("running_mean")
                            && !e.getKey().endsWith("running_var")) {
                        trainable.add(e.getKey());
                    }
                }
            }
            default -> throw new IllegalArgumentException(mode);
        }
        long t0 = System.nanoTime();
        GradientGraph gg = GradientBuilder.build(m, trainable, Losses.softmaxCrossEntropy("logits"));
        double buildMs = (System.nanoTime() - t0) / 1e6;
        Map<String, float[]> params = new LinkedHashMap<>();
        long count = 0;
        for (String t : gg.trainable()) {
            params.put(t, m.graph().initializer(t).toFloatArray());
            count += params.get(t).length;
        }
        String save = System.getProperty("peft4j.saveGraph");
        if (save != null) {
            // for PairedStepMeasure: the training graph of this build, to run against another build's
            OnnxIO.write(gg.model(), Path.of(save), OnnxIO.WriteOptions.inline());
        }
        System.out.printf("%s %s: %d trainable tensors, %d parameters, %d nodes in the training graph (%d in the model), "
                + "built in %.0f ms%n", file.getFileName(), mode, trainable.size(), count, gg.model().graph().nodes().size(),
                m.graph().nodes().size(), buildMs);
        if (profile != null) {
            profileRun(gg.model(), batch, params, profile);
        }
        double[] times = new double[RUNS];
        long rssAtSession = resetPeak();
        try (GradientSession s = new GradientSession(gg, THREADS)) {
            for (int i = 0; i < WARMUP; i++) {
                s.step(batch, params);
            }
            for (int i = 0; i < RUNS; i++) {
                long a = System.nanoTime();
                s.step(batch, params);
                times[i] = (System.nanoTime() - a) / 1e6;
            }
        }
        report(file, mode, count, rssBefore, Arrays.stream(times).boxed().toList());
        System.out.printf("%s %s: RSS %d MiB when the session opens (model and training graph built), peak %d MiB while "
                + "it runs: +%d MiB for the session and its steps%n", file.getFileName(), mode, rssAtSession >> 10,
                status("VmHWM") >> 10, (status("VmHWM") - rssAtSession) >> 10);
    }

    /** Resets the process's peak RSS (Linux: 5 to /proc/self/clear_refs); returns the RSS now, in KiB. */
    private static long resetPeak() {
        System.gc();
        try {
            Files.writeString(Path.of("/proc/self/clear_refs"), "5");
        } catch (java.io.IOException | UnsupportedOperationException e) {
            System.out.println("(cannot reset the peak RSS: " + e.getMessage() + ")");
        }
        return status("VmRSS");
    }

    private static Peft.Injection lora(Model m) {
        List<String> modules = LoraFixture.modules(m, LoraFixture.CONVS_AND_GEMMS);
        return LoraFixture.inject(m, LoraFixture.config(RANK, 2 * RANK, modules), 3, 0.05);
    }

    private static void forward(Model m, Tensor x, Path profile) throws Exception {
        OrtEnvironment env = Ort.env();
        double[] times = new double[RUNS];
        try (OrtSession.SessionOptions o = options(profile); OrtSession s = env.createSession(OnnxIO.toBytes(m), o);
             OnnxTensor in = Ort.toOrt(x)) {
            for (int i = 0; i < WARMUP + RUNS; i++) {
                long a = System.nanoTime();
                try (OrtSession.Result r = s.run(Map.of("input", in))) {
                    Ort.fromOrt((OnnxTensor) r.get(0));
                }
                if (i >= WARMUP) {
                    times[i - WARMUP] = (System.nanoTime() - a) / 1e6;
                }
            }
            if (profile != null) {
                summarize(Path.of(s.endProfiling()));
            }
        }
        System.out.println(stats(times));
    }

    private static OrtSession.SessionOptions options(Path profile) throws Exception {
        OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        o.setIntraOpNumThreads(THREADS);
        o.setInterOpNumThreads(1);
        if (profile != null) {
            Files.createDirectories(profile);
            o.enableProfiling(profile.resolve("ort").toString());
        }
        return o;
    }

    /** A profiled session over the training graph: time per op type. */
    private static void profileRun(Model training, Map<String, Tensor> batch, Map<String, float[]> params, Path profile)
            throws Exception {
        OrtEnvironment env = Ort.env();
        try (OrtSession.SessionOptions o = options(profile); OrtSession s = env.createSession(OnnxIO.toBytes(training), o)) {
            Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
            for (Map.Entry<String, Tensor> e : batch.entrySet()) {
                feeds.put(e.getKey(), Ort.toOrt(e.getValue()));
            }
            for (Map.Entry<String, float[]> e : params.entrySet()) {
                long[] shape = training.graph().inputs().stream().filter(v -> v.getName().equals(e.getKey())).findFirst()
                        .map(v -> io.peft4j.core.onnx.ValueInfos.dims(v).orElseThrow().stream().mapToLong(d -> (Long) d).toArray())
                        .orElseThrow();
                feeds.put(e.getKey(), Ort.toOrt(Tensor.ofFloats(shape, e.getValue())));
            }
            for (int i = 0; i < WARMUP + Integer.getInteger("peft4j.profileRuns", 5); i++) {
                s.run(feeds).close();
            }
            summarize(Path.of(s.endProfiling()));
            feeds.values().forEach(OnnxTensor::close);
        }
    }

    /** Sums ORT's profile (node events, after warm-up runs are included too) by op type and by backward/forward. */
    static void summarize(Path json) throws Exception {
        com.fasterxml.jackson.databind.JsonNode events = new com.fasterxml.jackson.databind.ObjectMapper().readTree(json.toFile());
        Map<String, Double> byOp = new TreeMap<>();
        Map<String, Integer> nodes = new TreeMap<>();
        double total = 0;
        for (com.fasterxml.jackson.databind.JsonNode e : events) {
            if (!"Node".equals(e.path("cat").asText()) || !e.path("name").asText().endsWith("_kernel_time")) {
                continue;
            }
            String name = e.path("name").asText();
            String op = e.path("args").path("op_name").asText();
            boolean grad = name.startsWith("grad") || name.contains("/grad") || name.contains("_grad");
            String key = op + (grad ? " (backward)" : "");
            double us = e.path("dur").asDouble();
            byOp.merge(key, us, Double::sum);
            nodes.merge(key, 1, Integer::sum);
            total += us;
        }
        double t = total;
        System.out.printf("profile %s: %.1f ms of kernel time over all profiled runs%n", json.getFileName(), total / 1e3);
        byOp.entrySet().stream().sorted((a, b) -> Double.compare(b.getValue(), a.getValue())).limit(25)
                .forEach(e -> System.out.printf("  %-32s %8.1f ms  %5.1f%%  (%d node runs)%n", e.getKey(), e.getValue() / 1e3,
                        100 * e.getValue() / t, nodes.get(e.getKey())));
    }

    private static String stats(double[] ms) {
        double[] s = ms.clone();
        Arrays.sort(s);
        double mean = Arrays.stream(s).average().orElse(0);
        return String.format("median %.1f ms, mean %.1f ms, min %.1f ms over %d runs", s[s.length / 2], mean, s[0], s.length);
    }

    private static void report(Path file, String mode, long params, long rssBefore, List<Double> times) {
        if (!times.isEmpty()) {
            System.out.printf("%s %s step (batch %d, %d threads): %s%n", file.getFileName(), mode, BATCH, THREADS,
                    stats(times.stream().mapToDouble(Double::doubleValue).toArray()));
        }
        System.out.printf("%s %s memory: RSS %d MiB before the session, peak RSS (VmHWM) %d MiB, %d MiB now; "
                        + "Java heap used %d MiB%n", file.getFileName(), mode, rssBefore >> 10, status("VmHWM") >> 10,
                status("VmRSS") >> 10, (Runtime.getRuntime().totalMemory() - Runtime.getRuntime().freeMemory()) >> 20);
    }

    /** A /proc/self/status field in KiB. */
    private static long status(String field) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(field + ":")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (java.io.IOException e) {
            return -1;
        }
        return -1;
    }
}
