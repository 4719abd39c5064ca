package io.peft4j.core.peft;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.List;
import java.util.Optional;

/** Small graph and weight helpers shared by the PEFT methods' rewrites. */
public final class Rewrites {

    private Rewrites() {
    }

    public static Node node(Graph g, TargetLayer t) {
        return g.node(t.nodeName());
    }

    /**
     * The bias of a layer, if it has one as a constant: a Gemm's or Conv's third input, or, for a
     * MatMul, the constant of the Add that alone consumes it (PyTorch exports Linear on 3-D input as
     * MatMul + Add). The bias holds one value per output feature.
     */
    public static Optional<String> bias(Graph g, TargetLayer t) {
        if (t.bias() != null) {
            return Optional.of(t.bias());
        }
        Optional<Node> add = biasAdd(g, t);
        if (add.isEmpty()) {
            return Optional.empty();
        }
        Node a = add.get();
        return Optional.of(a.input(0).equals(node(g, t).output(0)) ? a.input(1) : a.input(0));
    }

    private static Optional<Node> biasAdd(Graph g, TargetLayer t) {
        Node n = node(g, t);
        if (!n.is("MatMul")) {
            return Optional.empty();
        }
        List<Node> users = g.consumers(n.output(0));
        if (users.size() != 1 || !users.get(0).is("Add") || g.isGraphOutput(n.output(0))) {
            return Optional.empty();
        }
        Node a = users.get(0);
        String other = a.input(0).equals(n.output(0)) ? a.input(1) : a.input(0);
        if (!g.hasInitializer(other) || g.isGraphInput(other)) {
            return Optional.empty();
        }
        Tensor b = g.initializer(other);
        return b.rank() == 1 && b.dim(0) == t.outFeatures() ? Optional.of(a) : Optional.empty();
    }

    /** The value the PyTorch module outputs: after the bias Add of a MatMul, else the node's output. */
    public static String moduleOutput(Graph g, TargetLayer t) {
        return biasAdd(g, t).map(a -> a.output(0)).orElse(node(g, t).output(0));
    }

    /**
     * An inference-mode BatchNormalization that alone reads a layer's output, folded into a per
     * channel affine map {@code BN(v) = scale ⊙ v + shift}, with {@code scale = γ / √(σ² + ε)} and
     * {@code shift = β − scale ⊙ μ} in float64. Whatever is added to the layer's output passes
     * through it as {@code BN(v + d) = BN(v) + scale ⊙ d}, exactly.
     *
     * @param node  the BatchNormalization node; its output is the value the rest of the graph reads
     * @param scale γ / √(σ² + ε), one value per channel
     * @param shift β − scale ⊙ μ, one value per channel
     */
    public record BatchNormAfter(Node node, double[] scale, double[] shift) {
    }

    /**
     * The BatchNormalization that follows {@code layer}'s output, when it is the only reader of it
     * (and the output is no graph output), runs in inference mode (opset ≥ 9, no
     * {@code training_mode = 1}, one output), normalizes axis 1 and takes its scale, bias, mean and
     * variance from constant initializers (not overridable graph inputs) of {@code channels}
     * values. Empty otherwise.
     */
    public static Optional<BatchNormAfter> batchNormAfter(Model model, Node layer, long channels) {
        Graph g = model.graph();
        if (layer.outputs().size() != 1 || model.opset("") < 9) {
            return Optional.empty();
        }
        String y = layer.output(0);
        List<Node> users = g.consumers(y);
        if (users.size() != 1 || g.isGraphOutput(y)) {
            return Optional.empty();
        }
        Node bn = users.get(0);
        if (!bn.is("BatchNormalization") || bn.inputs().size() != 5 || !bn.input(0).equals(y)
                || bn.attrInt("training_mode", 0) != 0 || bn.attrInt("spatial", 1) != 1) {
            return Optional.empty();
        }
        for (int i = 1; i < bn.outputs().size(); i++) {
            if (!bn.output(i).isEmpty()) {
                return Optional.empty();
            }
        }
        double[][] p = new double[4][];
        for (int i = 1; i <= 4; i++) {
            String v = bn.input(i);
            if (v.equals(y) || !g.hasInitializer(v) || g.isGraphInput(v)) {
                return Optional.empty();
            }
            Tensor t = g.initializer(v);
            if (!t.dtype().isFloatingPoint() || t.rank() != 1 || t.dim(0) != channels) {
                return Optional.empty();
            }
            p[i - 1] = new double[Math.toIntExact(channels)];
            for (int c = 0; c < channels; c++) {
                p[i - 1][c] = t.getDouble(c);
            }
        }
        double eps = bn.attrFloat("epsilon", 1e-5f);
        double[] scale = new double[Math.toIntExact(channels)];
        double[] shift = new double[scale.length];
        for (int c = 0; c < scale.length; c++) {
            scale[c] = p[0][c] / Math.sqrt(p[3][c] + eps);
            shift[c] = p[1][c] - scale[c] * p[2][c];
            if (!Double.isFinite(scale[c]) || !Double.isFinite(shift[c])) {
                return Optional.empty();
            }
        }
        return Optional.of(new BatchNormAfter(bn, scale, shift));
    }

    /** A new int64 initializer of shape [n] (Reshape shapes and the like). */
    public static String int64s(Graph g, String hint, long... values) {
        return g.addInitializer(hint, Tensor.ofLongs(new long[] {values.length}, values));
    }

    /** {@code x} as [rows, positions, features]: one shape that a per-row [rows, 1, features] factor broadcasts over. */
    public static String asRows(Graph g, String hint, String x, long features) {
        return g.build("Reshape").name(hint).in(x, int64s(g, hint + "_shape", 0, -1, features)).out();
    }

    /** {@code x} reshaped to the shape of {@code like}. */
    public static String reshapeLike(Graph g, String hint, String x, String like) {
        return g.build("Reshape").name(hint).in(x, g.build("Shape").name(hint + "_shape").in(like).out()).out();
    }

    public static String transpose(Graph g, String hint, String x) {
        return g.build("Transpose").name(hint).in(x).attr("perm", 1L, 0L).out();
    }

    /** Float values as a tensor of element type {@code dtype} (rounded once). */
    public static Tensor tensor(DataType dtype, long[] shape, float[] values) {
        return Tensor.ofFloats(shape, values).to(dtype);
    }

    /** A constant of ones or zeros. */
    public static Tensor filled(DataType dtype, long[] shape, float value) {
        float[] v = new float[Math.toIntExact(Tensor.numel(shape))];
        java.util.Arrays.fill(v, value);
        return tensor(dtype, shape, v);
    }

    /** The element count of the trailing dims of a shape from {@code from} on. */
    public static long tail(long[] shape, int from) {
        long n = 1;
        for (int i = from; i < shape.length; i++) {
            n *= shape[i];
        }
        return n;
    }

    /** Refuses a Gemm whose alpha is zero: its weight does not act, so nothing can be folded into it. */
    public static float gemmAlpha(Node n) {
        float alpha = n.is("Gemm") ? n.attrFloat("alpha", 1f) : 1f;
        if (alpha == 0f || !Float.isFinite(alpha)) {
            throw Peft4jException.unsupported("Gemm " + n.name() + " has alpha = " + alpha + "; cannot fold an adapter into its weight");
        }
        return alpha;
    }
}
