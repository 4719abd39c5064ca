package io.peft4j.devices.ort;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.OrtSession.RunOptions;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.OnnxChecker;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * ONNX Runtime's own LoRA API on files written by {@link OnnxAdapterFile}: a side-graph model
 * whose LoRA factors are graph inputs with initializers as defaults, an {@code OrtLoraAdapter}
 * made from our file, activated through {@code RunOptions.addActiveLoraAdapter}.
 *
 * <p>The side model is {@code y = x·W + (x·lora_A)·lora_B} with {@code lora_A [8, r]} and
 * {@code lora_B [r, 4]} declared as graph inputs of symbolic rank {@code r} and given zero-rank
 * initializers ({@code [8, 0]}, {@code [0, 4]}) as defaults: with no adapter active the branch adds
 * an exact zero, and one session serves adapters of any rank.
 */
class OrtLoraAdapterTest {

    private static final int IN = 8;
    private static final int OUT = 4;
    private static final long BATCH = 5;
    private static final double TOLERANCE = 1e-5;

    @TempDir
    static Path dir;

    private static final OrtEnvironment ENV = Ort.env();
    private static Tensor w;
    private static Tensor x;
    private static OrtSession side;

    @BeforeAll
    static void openSideModel() throws OrtException {
        Random r = new Random(20);
        w = TinyModels.randn(r, IN, OUT);
        x = TinyModels.randn(r, BATCH, IN);
        Model m = sideModel(w);
        OnnxChecker.check(m);
        side = session(OnnxIO.toBytes(m));
    }

    @AfterAll
    static void close() throws OrtException {
        side.close();
    }

    // ---------------------------------------------------------------- models

    /** {@code y = x·W}. */
    static Model baseModel(Tensor weight) {
        Model m = new Model("base", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, "batch", IN));
        g.setInitializer("W", weight);
        g.build("MatMul").in("x", "W").outputs("y").add();
        g.addOutput(ValueInfos.tensor("y", DataType.FLOAT, "batch", OUT));
        return m;
    }

    /** {@code y = x·W + (x·lora_A)·lora_B}, the factors overridable inputs with zero-rank defaults. */
    static Model sideModel(Tensor weight) {
        Model m = new Model("side", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, "batch", IN));
        g.addInput(ValueInfos.tensor("lora_A", DataType.FLOAT, IN, "r"));
        g.addInput(ValueInfos.tensor("lora_B", DataType.FLOAT, "r", OUT));
        g.setInitializer("W", weight);
        g.setInitializer("lora_A", Tensor.zeros(DataType.FLOAT, IN, 0));
        g.setInitializer("lora_B", Tensor.zeros(DataType.FLOAT, 0, OUT));
        String base = g.op("MatMul", "x", "W");
        String delta = g.op("MatMul", g.op("MatMul", "x", "lora_A"), "lora_B");
        g.build("Add").in(base, delta).outputs("y").add();
        g.addOutput(ValueInfos.tensor("y", DataType.FLOAT, "batch", OUT));
        return m;
    }

    /** W + A·B, summed in double. */
    static Tensor merged(Tensor weight, Tensor a, Tensor b) {
        int rank = (int) a.dim(1);
        float[] wv = weight.toFloatArray();
        float[] av = a.toFloatArray();
        float[] bv = b.toFloatArray();
        float[] out = new float[IN * OUT];
        for (int i = 0; i < IN; i++) {
            for (int j = 0; j < OUT; j++) {
                double s = wv[i * OUT + j];
                for (int k = 0; k < rank; k++) {
                    s += (double) av[i * rank + k] * bv[k * OUT + j];
                }
                out[i * OUT + j] = (float) s;
            }
        }
        return Tensor.ofFloats(new long[] {IN, OUT}, out);
    }

    /** A random adapter of rank {@code r}, written to a file; returns its parameters. */
    static Map<String, Tensor> adapter(long seed, int rank, Path file) {
        Random r = new Random(seed);
        Map<String, Tensor> p = new LinkedHashMap<>();
        p.put("lora_A", TinyModels.randn(r, IN, rank));
        p.put("lora_B", TinyModels.randn(r, rank, OUT));
        OnnxAdapterFile.write(file, p, 1, 1);
        return p;
    }

    /** The merged model's output for an adapter (checked like every model we emit). */
    static Tensor expected(Map<String, Tensor> adapter) {
        Model m = baseModel(merged(w, adapter.get("lora_A"), adapter.get("lora_B")));
        OnnxChecker.check(m);
        return Ort.run(m, Map.of("x", x)).get("y");
    }

    static Tensor baseOutput() {
        Model m = baseModel(w);
        OnnxChecker.check(m);
        return Ort.run(m, Map.of("x", x)).get("y");
    }

    // ---------------------------------------------------------------- ORT plumbing

    static OrtSession session(byte[] model) throws OrtException {
        try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
            o.setIntraOpNumThreads(1);
            o.setInterOpNumThreads(1);
            return ENV.createSession(model, o);
        }
    }

    /** Runs the side session with {@code options} (null: none). */
    static Tensor run(OrtSession s, Map<String, Tensor> feeds, RunOptions options) throws OrtException {
        Map<String, OnnxTensor> in = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, Tensor> e : feeds.entrySet()) {
                in.put(e.getKey(), Ort.toOrt(e.getValue()));
            }
            try (OrtSession.Result r = options == null ? s.run(in) : s.run(in, options)) {
                return Ort.fromOrt((OnnxTensor) r.get("y").orElseThrow());
            }
        } finally {
            in.values().forEach(OnnxTensor::close);
        }
    }

    static Tensor runWith(OrtLoraAdapter adapter) throws OrtException {
        try (RunOptions o = new RunOptions()) {
            o.addActiveLoraAdapter(adapter);
            return run(side, Map.of("x", x), o);
        }
    }

    private static void assertClose(Tensor expected, Tensor actual, double tolerance, String what) {
        double d = Ort.maxAbsDiff(expected, actual);
        assertTrue(d <= tolerance, what + ": max |difference| " + d + " > " + tolerance);
    }

    // ---------------------------------------------------------------- tests

    @Test
    void sideModelDeclaresOnlyTheRealInput() throws OrtException {
        // overridable initializers are not among the session's required inputs
        assertEquals(java.util.Set.of("x"), side.getInputInfo().keySet());
    }

    @Test
    void withNoAdapterTheZeroRankDefaultsGiveTheBaseModel() throws OrtException {
        Tensor base = baseOutput();
        assertClose(base, run(side, Map.of("x", x), null), 1e-6, "side model, no adapter");
        try (RunOptions none = new RunOptions()) {
            assertClose(base, run(side, Map.of("x", x), none), 1e-6, "side model, empty run options");
        }
    }

    @Test
    void adapterFromFileGivesTheMergedModel() throws OrtException {
        for (int rank : new int[] {2, 4}) {
            Path file = dir.resolve("r" + rank + OnnxAdapterFile.EXTENSION);
            Map<String, Tensor> p = adapter(100 + rank, rank, file);
            Tensor want = expected(p);
            assertTrue(Ort.maxAbsDiff(want, baseOutput()) > 0.1, "the adapter changes the output");
            // memory-mapped from the file
            try (OrtLoraAdapter a = OrtLoraAdapter.create(file.toAbsolutePath().toString())) {
                assertClose(want, runWith(a), TOLERANCE, "rank " + rank + ", adapter file");
            }
            // from the bytes
            try (OrtLoraAdapter a = OrtLoraAdapter.create(OnnxAdapterFile.toBytes(p, 1, 1))) {
                assertClose(want, runWith(a), TOLERANCE, "rank " + rank + ", adapter bytes");
            }
            // what we read back is what we wrote
            OnnxAdapterFile back = OnnxAdapterFile.read(file);
            assertTrue(back.parameters().get("lora_A").contentEquals(p.get("lora_A")));
        }
    }

    @Test
    void theJavaBindingFeedsOverridableInitializersOnlyThroughAnAdapter() {
        // OrtSession.run counts feeds against getInputInfo(), which lists "x" alone: in Java the
        // LoRA API is the way to override lora_A/lora_B on this model (ONNX Runtime 1.23)
        Map<String, Tensor> feeds = Map.of("x", x, "lora_A", Tensor.zeros(DataType.FLOAT, IN, 2),
                "lora_B", Tensor.zeros(DataType.FLOAT, 2, OUT));
        OrtException e = assertThrows(OrtException.class, () -> run(side, feeds, null));
        assertTrue(e.getMessage().contains("Unexpected number of inputs"), e.getMessage());
    }

    @Test
    void switchingAdaptersOnOneSessionNeedsNoReload() throws OrtException {
        Map<String, Tensor> p2 = adapter(7, 2, dir.resolve("s2.onnx_adapter"));
        Map<String, Tensor> p4 = adapter(8, 4, dir.resolve("s4.onnx_adapter"));
        Tensor want2 = expected(p2);
        Tensor want4 = expected(p4);
        Tensor base = baseOutput();
        try (OrtLoraAdapter a2 = OrtLoraAdapter.create(dir.resolve("s2.onnx_adapter").toAbsolutePath().toString());
             OrtLoraAdapter a4 = OrtLoraAdapter.create(dir.resolve("s4.onnx_adapter").toAbsolutePath().toString());
             RunOptions o2 = new RunOptions();
             RunOptions o4 = new RunOptions()) {
            o2.addActiveLoraAdapter(a2);
            o4.addActiveLoraAdapter(a4);
            for (int round = 0; round < 3; round++) {
                assertClose(want2, run(side, Map.of("x", x), o2), TOLERANCE, "adapter r=2, round " + round);
                assertClose(base, run(side, Map.of("x", x), null), 1e-6, "no adapter, round " + round);
                assertClose(want4, run(side, Map.of("x", x), o4), TOLERANCE, "adapter r=4, round " + round);
                assertClose(want2, runWith(a2), TOLERANCE, "fresh run options r=2, round " + round);
            }
        }
    }

    @Test
    void onnxRuntimeRefusesAnAdapterThatDoesNotFitTheModel() throws OrtException {
        // a parameter the graph does not have as an input
        Path stray = dir.resolve("stray.onnx_adapter");
        OnnxAdapterFile.write(stray, Map.of("not_an_input", Tensor.zeros(DataType.FLOAT, IN, 2)), 1, 1);
        try (OrtLoraAdapter a = OrtLoraAdapter.create(stray.toAbsolutePath().toString())) {
            OrtException e = assertThrows(OrtException.class, () -> runWith(a));
            System.out.println("ORT on an adapter parameter that is no graph input: " + e.getMessage());
        }
        // factors whose ranks disagree
        Path mismatched = dir.resolve("mismatched.onnx_adapter");
        Map<String, Tensor> p = new LinkedHashMap<>();
        p.put("lora_A", Tensor.zeros(DataType.FLOAT, IN, 2));
        p.put("lora_B", Tensor.zeros(DataType.FLOAT, 3, OUT));
        OnnxAdapterFile.write(mismatched, p, 1, 1);
        try (OrtLoraAdapter a = OrtLoraAdapter.create(mismatched.toAbsolutePath().toString())) {
            OrtException e = assertThrows(OrtException.class, () -> runWith(a));
            System.out.println("ORT on factors of different ranks: " + e.getMessage());
        }
        // bytes that are not an adapter
        assertThrows(OrtException.class, () -> OrtLoraAdapter.create(new byte[] {1, 2, 3, 4}));
    }

    /**
     * Not an assertion: prints the per-run cost of activating an adapter (the same one, or a
     * different one on every run) against running with none, on the one session. The benchmark
     * proper lives in bench/.
     */
    @Test
    void switchCostMicroMeasurement() throws OrtException {
        int runs = Integer.getInteger("peft4j.switch.runs", 200);
        adapter(31, 2, dir.resolve("m2.onnx_adapter"));
        adapter(32, 4, dir.resolve("m4.onnx_adapter"));
        Model baseModel = baseModel(w);
        try (OrtSession base = session(OnnxIO.toBytes(baseModel));
             OnnxTensor in = Ort.toOrt(x);
             OrtLoraAdapter a2 = OrtLoraAdapter.create(dir.resolve("m2.onnx_adapter").toAbsolutePath().toString());
             OrtLoraAdapter a4 = OrtLoraAdapter.create(dir.resolve("m4.onnx_adapter").toAbsolutePath().toString());
             RunOptions o2 = new RunOptions();
             RunOptions o4 = new RunOptions()) {
            o2.addActiveLoraAdapter(a2);
            o4.addActiveLoraAdapter(a4);
            Map<String, OnnxTensor> feeds = Map.of("x", in);
            String[] modes = {"base model", "side, no adapter", "side, same adapter", "side, alternating adapters",
                    "side, alternating, new RunOptions"};
            long[][] nanos = new long[modes.length][runs];
            for (int warm = 0; warm < 2; warm++) {
                for (int i = 0; i < runs; i++) {
                    for (int m = 0; m < modes.length; m++) {
                        long t0 = System.nanoTime();
                        switch (m) {
                            case 0 -> base.run(feeds).close();
                            case 1 -> side.run(feeds).close();
                            case 2 -> side.run(feeds, o2).close();
                            case 3 -> side.run(feeds, i % 2 == 0 ? o2 : o4).close();
                            default -> {
                                try (RunOptions o = new RunOptions()) {
                                    o.addActiveLoraAdapter(i % 2 == 0 ? a2 : a4);
                                    side.run(feeds, o).close();
                                }
                            }
                        }
                        nanos[m][i] = System.nanoTime() - t0;
                    }
                }
            }
            StringBuilder report = new StringBuilder("adapter switch micro-measurement, " + runs + " runs each, x ["
                    + BATCH + "," + IN + "], 1 thread (median / mean µs per run):");
            for (int m = 0; m < modes.length; m++) {
                long[] t = nanos[m].clone();
                java.util.Arrays.sort(t);
                double mean = java.util.Arrays.stream(t).average().orElse(0) / 1e3;
                report.append(String.format(java.util.Locale.ROOT, "%n  %-36s %8.1f / %8.1f", modes[m],
                        t[t.length / 2] / 1e3, mean));
            }
            System.out.println(report);
        }
    }
}
