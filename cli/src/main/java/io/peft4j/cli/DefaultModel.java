package io.peft4j.cli;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.List;
import java.util.Random;

/**
 * The quickstart's embedded default base model: a small surface-defect classifier for 32×32
 * grayscale patches and the six NEU defect classes, built in code with seeded weights (He
 * initialisation) and PyTorch-style node and weight names, so that its module paths read like an
 * export of {@code nn.Sequential}-style PyTorch code. Its weights are untrained: it stands for "a
 * base model" until the samples ship a trained one.
 */
final class DefaultModel {

    static final List<String> LABELS = List.of("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale",
            "scratches");

    private DefaultModel() {
    }

    static Model build(long seed) {
        Random r = new Random(seed);
        Model m = new Model("defect_cnn", 17);
        m.setProducer("peft4j-quickstart", VersionProvider.peft4jVersion());
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("image", DataType.FLOAT, "batch", 1, 32, 32));
        String h = conv(g, r, "image", "features.0", 1, 16, 1);
        h = g.build("Relu").name("/features/features.1/Relu").in(h).out();
        h = conv(g, r, h, "features.2", 16, 32, 2);
        h = g.build("Relu").name("/features/features.3/Relu").in(h).out();
        h = conv(g, r, h, "features.4", 32, 64, 2);
        h = g.build("Relu").name("/features/features.5/Relu").in(h).out();
        h = g.build("GlobalAveragePool").name("/pool/GlobalAveragePool").in(h).out();
        h = g.build("Flatten").name("/Flatten").in(h).attr("axis", 1L).out();
        h = linear(g, r, h, "classifier.0", 64, 32);
        h = g.build("Relu").name("/classifier/classifier.1/Relu").in(h).out();
        String logits = g.freshName("logits");
        g.build("Gemm").name("/classifier/classifier.2/Gemm").in(h, weight(g, r, "classifier.2", 6, 32),
                bias(g, "classifier.2", 6)).attr("transB", 1L).outputs(logits).add();
        g.addOutput(ValueInfos.tensor(logits, DataType.FLOAT, "batch", LABELS.size()));
        return m;
    }

    private static String conv(Graph g, Random r, String x, String path, int in, int out, int stride) {
        String w = g.addInitializer(path + ".weight", he(r, in * 9, out, in, 3, 3));
        String node = "/features/" + path + "/Conv";
        return g.build("Conv").name(node).in(x, w, bias(g, path, out)).attr("kernel_shape", 3, 3)
                .attr("pads", 1, 1, 1, 1).attr("strides", stride, stride).out();
    }

    private static String linear(Graph g, Random r, String x, String path, int in, int out) {
        return g.build("Gemm").name("/classifier/" + path + "/Gemm").in(x, weight(g, r, path, out, in), bias(g, path, out))
                .attr("transB", 1L).out();
    }

    private static String weight(Graph g, Random r, String path, int out, int in) {
        return g.addInitializer(path + ".weight", he(r, in, out, in));
    }

    private static String bias(Graph g, String path, int out) {
        return g.addInitializer(path + ".bias", Tensor.zeros(DataType.FLOAT, out));
    }

    private static Tensor he(Random r, int fanIn, long... shape) {
        float[] v = new float[(int) Tensor.numel(shape)];
        double std = Math.sqrt(2.0 / fanIn);
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (r.nextGaussian() * std);
        }
        return Tensor.ofFloats(shape, v);
    }

    /** Seeded probe images: a noisy texture with a bright scratch in some of them. */
    static Tensor probeBatch(long seed, int batch) {
        Random r = new Random(seed);
        float[] v = new float[batch * 32 * 32];
        for (int b = 0; b < batch; b++) {
            int row = r.nextInt(32);
            for (int i = 0; i < 32 * 32; i++) {
                float texture = (float) (0.5 + 0.1 * r.nextGaussian());
                v[b * 1024 + i] = (b % 2 == 1 && i / 32 == row) ? 1.0f : texture;
            }
        }
        return Tensor.ofFloats(new long[] {batch, 1, 32, 32}, v);
    }
}
