package io.peft4j.core.testkit;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.Random;

/** Small models built in code, with seeded random weights and PyTorch-style names. */
public final class TinyModels {

    private TinyModels() {
    }

    public static Tensor randn(Random r, long... shape) {
        float[] v = new float[(int) Tensor.numel(shape)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (r.nextGaussian() * 0.5);
        }
        return Tensor.ofFloats(shape, v);
    }

    /**
     * x[batch,1,8,8] → /conv1/Conv (4 ch, 3×3, pad 1) → Relu → /pool/GlobalAveragePool → Flatten →
     * /fc1/MatMul [4,6] + bias → Relu → /fc2/Gemm (transB = 1, [3,6]) → logits[batch,3].
     */
    public static Model cnn(long seed) {
        Random r = new Random(seed);
        Model m = new Model("tiny_cnn", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, "batch", 1, 8, 8));
        g.setInitializer("conv1.weight", randn(r, 4, 1, 3, 3));
        g.setInitializer("conv1.bias", randn(r, 4));
        g.setInitializer("fc1_w", randn(r, 4, 6));
        g.setInitializer("fc1.bias", randn(r, 6));
        g.setInitializer("fc2.weight", randn(r, 3, 6));
        g.setInitializer("fc2.bias", randn(r, 3));
        String c = g.build("Conv").name("/conv1/Conv").in("x", "conv1.weight", "conv1.bias")
                .attr("pads", 1, 1, 1, 1).attr("kernel_shape", 3, 3).out();
        String h = g.op("Relu", c);
        h = g.build("GlobalAveragePool").name("/pool/GlobalAveragePool").in(h).out();
        h = g.build("Flatten").in(h).attr("axis", 1L).out();
        h = g.build("MatMul").name("/fc1/MatMul").in(h, "fc1_w").out();
        h = g.build("Add").name("/fc1/Add").in(h, "fc1.bias").out();
        h = g.op("Relu", h);
        g.build("Gemm").name("/fc2/Gemm").in(h, "fc2.weight", "fc2.bias").attr("transB", 1L).outputs("logits").add();
        g.addOutput(ValueInfos.tensor("logits", DataType.FLOAT, "batch", 3));
        return m;
    }

    /** BERT inputs (all-MiniLM-L6-v2): [CLS] then random word ids, all attended, one segment, 8 tokens. */
    public static java.util.Map<String, Tensor> bertTokens(int batch, long seed) {
        Random r = new Random(seed);
        long seq = 8;
        long[] ids = new long[(int) (batch * seq)];
        long[] mask = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = i % seq == 0 ? 101 : 1000 + r.nextInt(28000);
            mask[i] = 1;
        }
        java.util.Map<String, Tensor> m = new java.util.LinkedHashMap<>();
        m.put("input_ids", Tensor.ofLongs(new long[] {batch, seq}, ids));
        m.put("attention_mask", Tensor.ofLongs(new long[] {batch, seq}, mask));
        m.put("token_type_ids", Tensor.zeros(DataType.INT64, batch, seq));
        return m;
    }

    public static Tensor input(long seed, long batch) {
        return randn(new Random(seed), batch, 1, 8, 8);
    }
}
