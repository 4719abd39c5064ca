package io.peft4j.trainer.autodiff;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * A pass over a built training graph: {@code Conv(Mul(a, s), W)} (or ConvTranspose) where
 * {@code s} is a constant scale per channel (or one scale), {@code W} a constant weight and the
 * product read by such convolutions only (one or several, e.g. the phases of a strided input
 * gradient) becomes {@code Conv(a, W')} with {@code s} folded into the input channels of each
 * reader's {@code W'}. This is the input gradient of an inference-mode BatchNormalization
 * (the output gradient times γ / √(σ² + ε)) feeding the input gradient of the frozen convolution
 * before it: one pass over the activation gradient fewer per layer. Exact up to float rounding of
 * the folded weight; the original weight is left to its other readers.
 */
final class FoldChannelScales {

    private FoldChannelScales() {
    }

    /**
     * Folds every such Mul; returns whether anything changed. {@code types} tells what is known of a
     * value: the scaled operand must be known to have the convolution input's rank and channel count
     * (so that the scale does not broadcast it to a larger shape).
     */
    static boolean run(Graph g, Function<String, ValueType> types) {
        boolean changed = false;
        for (Node mul : new ArrayList<>(g.nodes())) {
            if (mul.is("Mul") && mul.domain().isEmpty() && mul.inputs().size() == 2) {
                changed |= fold(g, types, mul, 1) || fold(g, types, mul, 0);
            }
        }
        return changed;
    }

    private static boolean fold(Graph g, Function<String, ValueType> types, Node mul, int scaleSide) {
        String s = mul.input(scaleSide);
        String a = mul.input(1 - scaleSide);
        String product = mul.output(0);
        if (!constant(g, s) || g.isGraphOutput(product)) {
            return false;
        }
        List<Node> users = g.consumers(product);
        if (users.isEmpty()) {
            return false;
        }
        // every reader must be a convolution that can take the scale into its weight
        List<Tensor> scaledWeights = new ArrayList<>();
        for (Node conv : users) {
            Tensor scaled = scaledWeight(g, types, conv, product, a, s);
            if (scaled == null) {
                return false;
            }
            scaledWeights.add(scaled);
        }
        List<String> oldWeights = new ArrayList<>();
        for (int u = 0; u < users.size(); u++) {
            Node conv = users.get(u);
            oldWeights.add(conv.input(1));
            String scaled = g.addInitializer(conv.input(1) + "_scaled", scaledWeights.get(u));
            conv.setInput(0, a);
            conv.setInput(1, scaled);
        }
        g.remove(mul);
        oldWeights.add(s);
        for (String t : oldWeights) {
            if (!g.isUsed(t) && !g.isGraphInput(t) && g.hasInitializer(t)) {
                g.removeInitializer(t);
            }
        }
        return true;
    }

    /** The weight of {@code conv} with scale {@code s} folded into its input channels, or null where it cannot be. */
    private static Tensor scaledWeight(Graph g, Function<String, ValueType> types, Node conv, String product, String a, String s) {
        boolean transposed = conv.is("ConvTranspose");
        if (!(conv.is("Conv") || transposed) || !conv.domain().isEmpty() || conv.inputs().size() < 2
                || !conv.input(0).equals(product) || conv.inputs().stream().skip(1).anyMatch(product::equals)
                || !constant(g, conv.input(1))) {
            return null;
        }
        Tensor w = g.initializer(conv.input(1));
        Tensor scale = g.initializer(s);
        if (w.rank() < 3 || w.dtype() != scale.dtype() || !w.dtype().isFloatingPoint()) {
            return null;
        }
        long group = conv.attrInt("group", 1);
        long channels = transposed ? w.dim(0) : w.dim(1) * group;
        double[] perChannel = perChannel(scale, w.rank(), channels);
        ValueType at = types.apply(a);
        if (perChannel == null || at.rank() != w.rank() || at.dim(1) != channels) {
            return null;
        }
        double[] v = w.toDoubleArray();
        int spatial = (int) (w.numel() / (w.dim(0) * w.dim(1)));
        long outPerGroup = w.dim(0) / group;
        for (int o = 0; o < w.dim(0); o++) {
            for (int j = 0; j < w.dim(1); j++) {
                // a Conv weight is [out, in / group, k…]: row j of output o reads input channel group(o)·(in / group) + j
                double f = transposed ? perChannel[o] : perChannel[(int) ((o / outPerGroup) * w.dim(1) + j)];
                int base = (int) ((o * w.dim(1) + j) * spatial);
                for (int p = 0; p < spatial; p++) {
                    v[base + p] *= f;
                }
            }
        }
        return Tensor.ofDoubles(w.shape(), v).to(w.dtype());
    }

    private static boolean constant(Graph g, String value) {
        return g.hasInitializer(value) && !g.isGraphInput(value);
    }

    /**
     * The scale of each of {@code channels} channels of a rank-{@code rank} input when {@code s}
     * broadcasts along the channel axis (axis 1) only, or is a single value; else null (a scale
     * that varies along other axes, or that would broadcast the product to a larger shape).
     */
    private static double[] perChannel(Tensor s, int rank, long channels) {
        if (s.rank() > rank) {
            return null;
        }
        int channelAxis = s.rank() - (rank - 1);   // axis 1 of the input, aligned from the right
        for (int i = 0; i < s.rank(); i++) {
            if (i != channelAxis && s.dim(i) != 1) {
                return null;
            }
        }
        long n = s.numel();
        if (n != 1 && (channelAxis < 0 || s.dim(channelAxis) != channels)) {
            return null;
        }
        double[] v = s.toDoubleArray();
        double[] out = new double[(int) channels];
        for (int c = 0; c < channels; c++) {
            out[c] = v[n == 1 ? 0 : c];
        }
        return out;
    }
}
