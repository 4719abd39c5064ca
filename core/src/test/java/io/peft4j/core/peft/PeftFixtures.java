package io.peft4j.core.peft;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.TinyModels;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/** Models, inputs and adapters for the PEFT method tests. */
final class PeftFixtures {

    private PeftFixtures() {
    }

    static Model copy(Model m) {
        return OnnxIO.read(OnnxIO.toBytes(m), "copy of " + m.graph().name());
    }

    /**
     * An adapter for {@code model} with random non-zero tensors (PEFT's zero B would hide a wrong
     * merge): LoRA entries ~ N(0, sigma), IA3 vectors ~ 1 + N(0, sigma).
     */
    static AdapterBundle randomAdapter(Model model, AdapterConfig config, long seed, double sigma) {
        return io.peft4j.core.testkit.TestAdapters.random(model, config, seed, sigma);
    }

    /** The same adapter with one value of one tensor replaced. */
    static AdapterBundle poisoned(AdapterBundle b, float value) {
        Map<String, Tensor> t = new LinkedHashMap<>(b.tensors());
        String key = t.keySet().iterator().next();
        float[] v = t.get(key).toFloatArray();
        v[0] = value;
        t.put(key, Tensor.ofFloats(t.get(key).shape(), v));
        return new AdapterBundle(b.config(), t);
    }

    /** Largest |a - b| over the largest |b|. */
    static double relDiff(Tensor a, Tensor b) {
        return io.peft4j.core.testkit.Ort.maxRelDiff(a, b);
    }

    static double absDiff(Tensor a, Tensor b) {
        double m = 0;
        for (long i = 0; i < a.numel(); i++) {
            m = Math.max(m, Math.abs(a.getDouble(i) - b.getDouble(i)));
        }
        return m;
    }

    /** Row {@code row} (axis 0) of a tensor as floats. */
    static float[] row(Tensor t, int row) {
        int n = (int) (t.numel() / t.dim(0));
        float[] all = t.toFloatArray();
        float[] out = new float[n];
        System.arraycopy(all, row * n, out, 0, n);
        return out;
    }

    /** Random float input of the given shape. */
    static Tensor randn(long seed, long... shape) {
        return TinyModels.randn(new Random(seed), shape);
    }

    /**
     * x[6, batch] → /fc/Gemm (transA = 1, alpha = 0.5, beta = 2, W [6,5] as [in,out], C [5]) → Relu →
     * /head/MatMul [5,4] + /head/Add bias → y[batch, 4]: a Gemm with every attribute set.
     */
    static Model gemmVariants(long seed) {
        Random r = new Random(seed);
        Model m = new Model("gemm_variants", 13);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, 6, "batch"));
        g.setInitializer("fc.weight", TinyModels.randn(r, 6, 5));
        g.setInitializer("fc.bias", TinyModels.randn(r, 5));
        g.setInitializer("onnx::MatMul_9", TinyModels.randn(r, 5, 4));
        g.setInitializer("head.bias", TinyModels.randn(r, 4));
        String h = g.build("Gemm").name("/fc/Gemm").in("x", "fc.weight", "fc.bias").attr("transA", 1L)
                .attr("alpha", 0.5f).attr("beta", 2f).out();
        h = g.op("Relu", h);
        h = g.build("MatMul").name("/head/MatMul").in(h, "onnx::MatMul_9").out();
        g.build("Add").name("/head/Add").in("head.bias", h).outputs("y").add();
        g.addOutput(ValueInfos.tensor("y", DataType.FLOAT, "batch", 4));
        return m;
    }
}
