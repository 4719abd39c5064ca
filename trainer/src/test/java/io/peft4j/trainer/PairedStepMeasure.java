package io.peft4j.trainer;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoggingLevel;
import ai.onnxruntime.OrtSession;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.TinyModels;

import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * A measurement, not a test: two training graphs of the same model (written by
 * {@link StepMeasure} with {@code -Dpeft4j.saveGraph=FILE}, e.g. one from the code before a change
 * and one from after) run on the same batch and trainable values, interleaved step by step (A, B,
 * A, B, …) in one JVM on one shared pool of 2 intra-op threads, so that a busy machine slows both
 * alike. Prints each one's median and quartiles, the median of the per-pair ratios B ÷ A, and
 * checks first that both compute the same loss and gradients (1e-3 relative to each gradient's
 * largest entry). Also the process's CPU time per step, which a busy machine inflates less than
 * the wall time; run with {@code -Dpeft4j.spin=0} for it to count work rather than ONNX Runtime's
 * threads spinning while they wait. With {@code -Dpeft4j.profile=DIR} also ONNX Runtime's kernel
 * time per op type of each, from two profiled sessions run interleaved the same way.
 *
 * <pre>
 * java -Xmx4g -cp ... io.peft4j.trainer.PairedStepMeasure A.onnx B.onnx [pairs, default 40]
 * </pre>
 */
public final class PairedStepMeasure {

    private static final int BATCH = 16;
    private static final int WARMUP = 3;

    public static void main(String[] args) throws Exception {
        int pairs = args.length > 2 ? Integer.parseInt(args[2]) : 40;
        OrtEnvironment env;
        try (OrtEnvironment.ThreadingOptions t = new OrtEnvironment.ThreadingOptions()) {
            t.setGlobalIntraOpNumThreads(2);
            t.setGlobalInterOpNumThreads(1);
            t.setGlobalSpinControl(!"0".equals(System.getProperty("peft4j.spin", "1")));
            env = OrtEnvironment.getEnvironment(OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, "paired-steps", t);
        }
        Model a = OnnxIO.read(Path.of(args[0]));
        Model b = OnnxIO.read(Path.of(args[1]));
        Map<String, OnnxTensor> feeds = feeds(env, a);
        try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
            o.disablePerSessionThreads();
            o.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
            o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            try (OrtSession sa = env.createSession(OnnxIO.toBytes(a), o); OrtSession sb = env.createSession(OnnxIO.toBytes(b), o)) {
                compare(run(sa, feeds), run(sb, feeds));
                for (int i = 0; i < WARMUP; i++) {
                    run(sa, feeds);
                    run(sb, feeds);
                }
                double[] ta = new double[pairs];
                double[] tb = new double[pairs];
                double[] ca = new double[pairs];
                double[] cb = new double[pairs];
                double[] ratio = new double[pairs];
                double[] cpuRatio = new double[pairs];
                for (int i = 0; i < pairs; i++) {
                    long c0 = cpuNanos();
                    ta[i] = time(sa, feeds);
                    long c1 = cpuNanos();
                    tb[i] = time(sb, feeds);
                    long c2 = cpuNanos();
                    ca[i] = (c1 - c0) / 1e6;
                    cb[i] = (c2 - c1) / 1e6;
                    ratio[i] = tb[i] / ta[i];
                    cpuRatio[i] = cb[i] / ca[i];
                }
                System.out.printf("A %s: %s; CPU time %s%nB %s: %s; CPU time %s%n"
                                + "B / A per pair: median %.3f (quartiles %.3f – %.3f), CPU time %.3f (%.3f – %.3f) over %d pairs%n",
                        args[0], stats(ta), stats(ca), args[1], stats(tb), stats(cb), q(ratio, 0.5), q(ratio, 0.25),
                        q(ratio, 0.75), q(cpuRatio, 0.5), q(cpuRatio, 0.25), q(cpuRatio, 0.75), pairs);
            }
            String profile = System.getProperty("peft4j.profile");
            if (profile != null) {
                profilePairs(env, a, b, feeds, Path.of(profile), Math.min(pairs, 10));
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }

    /**
     * With {@code -Dpeft4j.profile=DIR}: two more sessions with ONNX Runtime's profiler on, run
     * interleaved as the timed ones (after the same warm-up), each one's kernel time per op type.
     */
    private static void profilePairs(OrtEnvironment env, Model a, Model b, Map<String, OnnxTensor> feeds, Path dir, int pairs)
            throws Exception {
        java.nio.file.Files.createDirectories(dir);
        try (OrtSession.SessionOptions oa = profiled(dir.resolve("a")); OrtSession.SessionOptions ob = profiled(dir.resolve("b"));
             OrtSession sa = env.createSession(OnnxIO.toBytes(a), oa); OrtSession sb = env.createSession(OnnxIO.toBytes(b), ob)) {
            for (int i = 0; i < WARMUP + pairs; i++) {
                run(sa, feeds);
                run(sb, feeds);
            }
            System.out.println("A (" + (WARMUP + pairs) + " runs):");
            StepMeasure.summarize(Path.of(sa.endProfiling()));
            System.out.println("B (" + (WARMUP + pairs) + " runs):");
            StepMeasure.summarize(Path.of(sb.endProfiling()));
        }
    }

    private static OrtSession.SessionOptions profiled(Path prefix) throws OrtException {
        OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        o.disablePerSessionThreads();
        o.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
        o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
        o.enableProfiling(prefix.toString());
        return o;
    }

    /** The batch StepMeasure uses, and every other input at its value in the model it came from (the LoRA values). */
    private static Map<String, OnnxTensor> feeds(OrtEnvironment env, Model m) throws OrtException {
        Map<String, OnnxTensor> f = new LinkedHashMap<>();
        Random r = new Random(1);
        long[] labels = new long[BATCH];
        for (int i = 0; i < BATCH; i++) {
            labels[i] = i % 6;
        }
        f.put("input", io.peft4j.core.testkit.Ort.toOrt(TinyModels.randn(r, BATCH, 3, 64, 64)));
        f.put("labels", io.peft4j.core.testkit.Ort.toOrt(Tensor.ofLongs(new long[] {BATCH}, labels)));
        Random values = new Random(7);
        for (ValueInfoProto v : m.graph().inputs()) {
            if (f.containsKey(v.getName()) || m.graph().hasInitializer(v.getName())) {
                continue;
            }
            long[] shape = ValueInfos.dims(v).orElseThrow().stream().mapToLong(d -> (Long) d).toArray();
            f.put(v.getName(), io.peft4j.core.testkit.Ort.toOrt(TinyModels.randn(values, shape)));
        }
        return f;
    }

    private static Map<String, float[]> run(OrtSession s, Map<String, OnnxTensor> feeds) throws OrtException {
        Map<String, float[]> out = new LinkedHashMap<>();
        try (OrtSession.Result r = s.run(feeds)) {
            for (Map.Entry<String, OnnxValue> e : r) {
                FloatBuffer fb = ((OnnxTensor) e.getValue()).getFloatBuffer();
                float[] v = new float[fb.remaining()];
                fb.get(v);
                out.put(e.getKey(), v);
            }
        }
        return out;
    }

    /** CPU time of the whole process (every thread), in ns: on a busy machine it counts the work, not the waiting. */
    private static long cpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime();
    }

    private static double time(OrtSession s, Map<String, OnnxTensor> feeds) throws OrtException {
        long t0 = System.nanoTime();
        run(s, feeds);
        return (System.nanoTime() - t0) / 1e6;
    }

    private static void compare(Map<String, float[]> a, Map<String, float[]> b) {
        List<String> bad = new ArrayList<>();
        for (Map.Entry<String, float[]> e : a.entrySet()) {
            float[] y = b.get(e.getKey());
            if (y == null) {
                bad.add(e.getKey() + " (missing in B)");
                continue;
            }
            float[] x = e.getValue();
            double max = 0;
            double diff = 0;
            for (int i = 0; i < x.length; i++) {
                max = Math.max(max, Math.abs(x[i]));
                diff = Math.max(diff, Math.abs(x[i] - y[i]));
            }
            if (diff > 1e-3 * Math.max(max, 1e-12)) {
                bad.add(e.getKey() + " (max diff " + diff + ", max " + max + ")");
            }
        }
        if (!bad.isEmpty()) {
            throw new IllegalStateException("the two graphs disagree: " + bad);
        }
        System.out.println("A and B agree on " + a.size() + " outputs (loss and gradients)");
    }

    private static double q(double[] v, double p) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s[(int) Math.min(s.length - 1, Math.round(p * (s.length - 1)))];
    }

    private static String stats(double[] ms) {
        return String.format("median %.1f ms (quartiles %.1f – %.1f), min %.1f", q(ms, 0.5), q(ms, 0.25), q(ms, 0.75),
                Arrays.stream(ms).min().orElse(0));
    }
}
