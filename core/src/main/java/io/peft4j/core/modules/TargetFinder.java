package io.peft4j.core.modules;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Finds the layers of a graph that PEFT methods can target, each under its PyTorch module path.
 * Weights must be initializers (run {@link io.peft4j.core.onnx.LiftConstants} first on models that
 * keep weights in Constant nodes). Paths are unique: when two layers would share a path, the later
 * one falls back to its weight's name, then to its sanitized node name.
 */
public final class TargetFinder {

    private TargetFinder() {
    }

    public static List<TargetLayer> find(Graph g) {
        List<TargetLayer> out = new ArrayList<>();
        Set<String> used = new HashSet<>();
        for (Node n : g.nodes()) {
            TargetLayer t = classify(g, n);
            if (t == null) {
                continue;
            }
            String path = null;
            for (String c : ModulePaths.candidates(n.name(), t.weight())) {
                if (!used.contains(c)) {
                    path = c;
                    break;
                }
            }
            if (path == null) {
                path = ModulePaths.sanitize(n.name()) + "_" + out.size();
            }
            used.add(path);
            out.add(new TargetLayer(path, t.kind(), t.nodeName(), t.opType(), t.weight(), t.bias(), t.weightShape(),
                    t.dtype(), t.layout(), t.inFeatures(), t.outFeatures(), t.groups(), t.parameters()));
        }
        return out;
    }

    private static boolean isFloat(DataType t) {
        return t == DataType.FLOAT || t == DataType.FLOAT16 || t == DataType.BFLOAT16 || t == DataType.DOUBLE;
    }

    private static Tensor floatInitializer(Graph g, String name) {
        if (name.isEmpty() || !g.hasInitializer(name)) {
            // an initializer that is also a graph input (IR < 4, or keep_initializers_as_inputs) is
            // still the layer's weight: callers may override it, but it is what the model computes with
            return null;
        }
        Tensor t = g.initializer(name);
        return isFloat(t.dtype()) ? t : null;
    }

    private static long numel(Graph g, String name) {
        return name == null ? 0 : g.initializer(name).numel();
    }

    /** The layer a node is, with a provisional path; null when it is not targetable. */
    static TargetLayer classify(Graph g, Node n) {
        if (!n.domain().isEmpty() && !n.domain().equals("ai.onnx")) {
            return null;
        }
        switch (n.opType()) {
            case "MatMul": {
                Tensor w = floatInitializer(g, n.input(1));
                if (w == null || w.rank() != 2 || floatInitializer(g, n.input(0)) != null) {
                    return null;
                }
                long[] s = w.shape();
                return new TargetLayer("", TargetLayer.Kind.LINEAR, n.name(), "MatMul", n.input(1), null, s, w.dtype(),
                        TargetLayer.Layout.IN_OUT, s[0], s[1], 1, w.numel());
            }
            case "Gemm": {
                Tensor w = floatInitializer(g, n.input(1));
                if (w == null || w.rank() != 2) {
                    return null;
                }
                boolean transB = n.attrInt("transB", 0) != 0;
                long[] s = w.shape();
                String bias = floatInitializer(g, n.input(2)) != null ? n.input(2) : null;
                return new TargetLayer("", TargetLayer.Kind.LINEAR, n.name(), "Gemm", n.input(1), bias, s, w.dtype(),
                        transB ? TargetLayer.Layout.OUT_IN : TargetLayer.Layout.IN_OUT,
                        transB ? s[1] : s[0], transB ? s[0] : s[1], 1, w.numel() + numel(g, bias));
            }
            case "Conv": {
                Tensor w = floatInitializer(g, n.input(1));
                if (w == null || w.rank() < 3) {
                    return null;
                }
                long groups = n.attrInt("group", 1);
                long[] s = w.shape();
                String bias = floatInitializer(g, n.input(2)) != null ? n.input(2) : null;
                return new TargetLayer("", TargetLayer.Kind.CONV, n.name(), "Conv", n.input(1), bias, s, w.dtype(),
                        TargetLayer.Layout.CONV_OUT_IN_K, s[1] * groups, s[0], groups, w.numel() + numel(g, bias));
            }
            case "Gather": {
                Tensor table = floatInitializer(g, n.input(0));
                long axis = n.attrInt("axis", 0);
                if (table == null || table.rank() != 2 || (axis != 0 && axis != -2) || g.hasInitializer(n.input(1))) {
                    return null;
                }
                long[] s = table.shape();
                return new TargetLayer("", TargetLayer.Kind.EMBEDDING, n.name(), "Gather", n.input(0), null, s,
                        table.dtype(), TargetLayer.Layout.EMBEDDING, s[0], s[1], 1, table.numel());
            }
            default:
                return null;
        }
    }
}
