package io.peft4j.cli;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.trainer.data.SyntheticDefects;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * The quickstart's default base model: a small surface-defect classifier for 32×32 grayscale
 * images and the five classes of {@link SyntheticDefects} ({@link #LABELS}, in the sorted order
 * that {@code peft4j train} gives class folders).
 *
 * <p>{@link #build} makes the architecture in code with seeded, untrained weights (He
 * initialisation) and PyTorch-style node and weight names, so that its module paths read like an
 * export of {@code nn.Sequential}-style PyTorch code: five 3×3 convolutions with ReLU, global
 * average pooling and two Linear layers. {@link #trained} is the same architecture trained by
 * {@code samples/quickstart/make-base-model.sh} with peft4j's own trainer on synthetic {@code metal}
 * images, kept in this module's resources with its labels.
 */
final class DefaultModel {

    /** Image side. */
    static final int SIZE = 32;

    /** The class labels, in the order of the model's logits. */
    static final List<String> LABELS = SyntheticDefects.CLASSES;

    /** The trained model and its labels (one per line), on the class path. */
    static final String TRAINED_RESOURCE = "quickstart/base.onnx";
    static final String LABELS_RESOURCE = "quickstart/labels.txt";

    /** Output channels and stride of each convolution. */
    private static final int[] CHANNELS = {16, 32, 32, 64, 64};
    private static final int[] STRIDES = {1, 2, 1, 2, 1};
    private static final int HIDDEN = 32;

    private DefaultModel() {
    }

    /** The architecture with seeded, untrained weights: the same seed gives the same weights. */
    static Model build(long seed) {
        Random r = new Random(seed);
        Model m = new Model("defect_cnn", 17);
        m.setProducer("peft4j-quickstart", VersionProvider.peft4jVersion());
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("image", DataType.FLOAT, "batch", 1, SIZE, SIZE));
        String h = "image";
        int in = 1;
        for (int i = 0; i < CHANNELS.length; i++) {
            h = conv(g, r, h, "features." + 2 * i, in, CHANNELS[i], STRIDES[i]);
            h = g.build("Relu").name("/features/features." + (2 * i + 1) + "/Relu").in(h).out();
            in = CHANNELS[i];
        }
        h = g.build("GlobalAveragePool").name("/pool/GlobalAveragePool").in(h).out();
        h = g.build("Flatten").name("/Flatten").in(h).attr("axis", 1L).out();
        h = linear(g, r, h, "classifier.0", in, HIDDEN);
        h = g.build("Relu").name("/classifier/classifier.1/Relu").in(h).out();
        String logits = g.freshName("logits");
        g.build("Gemm").name("/classifier/classifier.2/Gemm").in(h, weight(g, r, "classifier.2", LABELS.size(), HIDDEN),
                bias(g, "classifier.2", LABELS.size())).attr("transB", 1L).outputs(logits).add();
        g.addOutput(ValueInfos.tensor(logits, DataType.FLOAT, "batch", LABELS.size()));
        return m;
    }

    /**
     * The trained base model from the class path. Its labels file and the labels the trainer wrote
     * into the model must both equal {@link #LABELS}; anything else means the resources are damaged
     * or stale, and is refused.
     */
    static Model trained() {
        Model m = OnnxIO.read(resource(TRAINED_RESOURCE), "the quickstart's base model (" + TRAINED_RESOURCE + ")");
        List<String> file = Arrays.stream(new String(resource(LABELS_RESOURCE), StandardCharsets.UTF_8).split("\\R"))
                .map(String::strip).filter(s -> !s.isEmpty()).toList();
        String meta = m.metadata().get("peft4j.labels");
        if (!file.equals(LABELS) || meta == null || !List.of(meta.split("\n")).equals(LABELS)) {
            throw new Peft4jException(ErrorCode.MALFORMED, "the quickstart's base model has labels " + file + " (model: "
                    + meta + "), expected " + LABELS + "; rebuild it with samples/quickstart/make-base-model.sh");
        }
        return m;
    }

    private static byte[] resource(String name) {
        try (InputStream in = DefaultModel.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new Peft4jException(ErrorCode.IO, "resource " + name + " is missing from the peft4j command's class path");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read resource " + name + ": " + e.getMessage(), e);
        }
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
}
