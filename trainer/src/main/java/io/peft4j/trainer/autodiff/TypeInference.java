package io.peft4j.trainer.autodiff;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.LiftConstants;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A small, conservative type and shape inference: element types, ranks and the dimensions that are
 * fixed at build time. The gradient rules use it to choose static forms (a bias gradient sums over
 * the axes that are broadcast, which is a property of the graph, not of the batch size); where it
 * knows nothing it says so ({@link ValueType#UNKNOWN}) and the rules fall back to forms computed
 * from shapes at run time.
 */
public final class TypeInference {

    private final Graph graph;
    private final long opset;
    private final Map<String, ValueType> types = new HashMap<>();

    private TypeInference(Graph graph, long opset) {
        this.graph = graph;
        this.opset = opset;
    }

    /** Infers the types of every value of {@code graph} (nodes in topological order). */
    public static TypeInference run(Graph graph, long opset) {
        TypeInference t = new TypeInference(graph, opset);
        for (ValueInfoProto v : graph.inputs()) {
            t.types.put(v.getName(), fromValueInfo(v));
        }
        for (Map.Entry<String, Tensor> e : graph.initializers().entrySet()) {
            if (!graph.isGraphInput(e.getKey())) {
                t.types.put(e.getKey(), ValueType.of(e.getValue().dtype(), e.getValue().shape()));
            }
        }
        for (Node n : graph.topologicalOrder()) {
            t.infer(n);
        }
        return t;
    }

    static ValueType fromValueInfo(ValueInfoProto v) {
        DataType dt = ValueInfos.elementType(v).orElse(null);
        Optional<List<Object>> dims = ValueInfos.dims(v);
        if (dims.isEmpty()) {
            return ValueType.unranked(dt);
        }
        long[] d = new long[dims.get().size()];
        for (int i = 0; i < d.length; i++) {
            Object o = dims.get().get(i);
            d[i] = o instanceof Long l ? l : o instanceof String name ? ValueType.symbol(name) : -1;
        }
        return new ValueType(dt, d);
    }

    /**
     * Declares the inferred type of {@code value} as the graph's value_info (dimensions known only
     * at run time get a name), so that rewrites reading declared types ({@code Heads}) see it.
     * Returns false, changing nothing, when its element type or rank is not known.
     */
    public static boolean declare(io.peft4j.core.onnx.Model model, String value) {
        Graph g = model.graph();
        if (g.isGraphInput(value) || g.isGraphOutput(value) || g.valueInfo().containsKey(value)) {
            return true;
        }
        ValueType t = run(g, model.opset("")).type(value);
        if (t.dtype() == null || !t.hasRank()) {
            return false;
        }
        Object[] dims = new Object[t.rank()];
        for (int i = 0; i < dims.length; i++) {
            long d = t.dim(i);
            dims[i] = d >= 0 ? (Object) d : value + "_dim" + i;
        }
        g.setValueInfo(ValueInfos.tensor(value, t.dtype(), dims));
        return true;
    }

    /** The type of a value; {@link ValueType#UNKNOWN} when nothing is known. */
    public ValueType type(String value) {
        return types.getOrDefault(value, ValueType.UNKNOWN);
    }

    /** Records the type of a value added after inference ran (gradients, rule temporaries). */
    public void put(String value, ValueType t) {
        types.put(value, t);
    }

    /** The value of a constant: a Constant node's value or an initializer that is not a graph input. */
    public Optional<Tensor> constant(String value) {
        if (value == null || value.isEmpty()) {
            return Optional.empty();
        }
        if (graph.hasInitializer(value) && !graph.isGraphInput(value)) {
            return Optional.of(graph.initializer(value));
        }
        Optional<Node> p = graph.producer(value);
        if (p.isPresent() && p.get().is("Constant")) {
            return Optional.ofNullable(LiftConstants.value(p.get()));
        }
        return Optional.empty();
    }

    private long[] constInts(String value) {
        return constant(value).map(Tensor::toLongArray).orElse(null);
    }

    // ---------------------------------------------------------------- per op

    private void infer(Node n) {
        if (!n.domain().isEmpty() && !n.domain().equals("ai.onnx")) {
            return;
        }
        ValueType in0 = n.inputs().isEmpty() ? ValueType.UNKNOWN : type(n.input(0));
        DataType dt0 = in0.dtype();
        switch (n.opType()) {
            case "Identity", "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Erf", "Tanh", "Sigmoid", "Relu",
                    "LeakyRelu", "Elu", "Selu", "Clip", "HardSigmoid", "HardSwish", "Gelu", "Softplus", "Softmax",
                    "LogSoftmax", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "LayerNormalization",
                    "BatchNormalization", "InstanceNormalization", "LpNormalization", "Dropout", "Not", "Pad",
                    "Mish", "PRelu", "ScatterElements", "ScatterND", "Trilu" -> {
                set(n, 0, in0);
                if (n.is("Dropout") && n.outputs().size() > 1) {
                    set(n, 1, in0.withDtype(DataType.BOOL));
                }
                if (n.is("Pad")) {
                    set(n, 0, in0.withDims(unknownDims(in0.rank())));
                }
            }
            case "IsNaN", "IsInf" -> set(n, 0, in0.withDtype(DataType.BOOL));
            case "Cast" -> set(n, 0, in0.withDtype(DataType.fromOnnx((int) n.attrInt("to", 1))));
            case "CastLike" -> set(n, 0, in0.withDtype(type(n.input(1)).dtype()));
            case "Add", "Sub", "Mul", "Div", "Pow", "Sum", "Max", "Min", "Mean", "Mod" -> set(n, 0, broadcast(n, 0, dt0));
            case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor" ->
                    set(n, 0, broadcast(n, 0, DataType.BOOL));
            case "Where" -> set(n, 0, broadcast(n, 0, type(n.input(1)).dtype()));
            case "MatMul" -> set(n, 0, matmul(in0, type(n.input(1))));
            case "Gemm" -> {
                ValueType b = type(n.input(1));
                long m = n.attrInt("transA", 0) != 0 ? in0.dim(1) : in0.dim(0);
                long nn = n.attrInt("transB", 0) != 0 ? b.dim(0) : b.dim(1);
                set(n, 0, ValueType.of(dt0, m, nn));
            }
            case "Conv", "MaxPool", "AveragePool", "LpPool", "ConvTranspose" -> set(n, 0, window(n, in0));
            case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool" -> {
                if (in0.hasRank()) {
                    long[] d = in0.dims();
                    for (int i = 2; i < d.length; i++) {
                        d[i] = 1;
                    }
                    set(n, 0, in0.withDims(d));
                } else {
                    set(n, 0, in0);
                }
            }
            case "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                    "ReduceLogSumExp", "ReduceSumSquare", "ReduceLogSum" -> set(n, 0, reduce(n, in0));
            case "ArgMax", "ArgMin" -> {
                ValueType r = in0;
                if (in0.hasRank()) {
                    int axis = norm(n.attrInt("axis", 0), in0.rank());
                    r = keepOrDrop(in0, new long[] {axis}, n.attrInt("keepdims", 1) != 0);
                }
                set(n, 0, r.withDtype(DataType.INT64));
            }
            case "Flatten" -> {
                long[] d = {-1, -1};
                if (in0.hasRank()) {
                    int axis = norm(n.attrInt("axis", 1), in0.rank() + 1);
                    d[0] = product(in0.dims(), 0, axis);
                    d[1] = product(in0.dims(), axis, in0.rank());
                }
                set(n, 0, ValueType.of(dt0, d));
            }
            case "Reshape" -> set(n, 0, reshape(n, in0));
            case "Transpose" -> {
                if (in0.hasRank()) {
                    long[] perm = n.attrInts("perm", null);
                    long[] d = new long[in0.rank()];
                    for (int i = 0; i < d.length; i++) {
                        d[i] = in0.dim(perm == null ? d.length - 1 - i : (int) perm[i]);
                    }
                    set(n, 0, in0.withDims(d));
                } else {
                    set(n, 0, in0);
                }
            }
            case "Squeeze" -> set(n, 0, squeeze(n, in0));
            case "Unsqueeze" -> set(n, 0, unsqueeze(n, in0));
            case "Concat" -> set(n, 0, concat(n, dt0));
            case "Split" -> split(n, in0);
            case "Slice" -> set(n, 0, in0.hasRank() ? in0.withDims(unknownDims(in0.rank())) : in0);
            case "Gather" -> {
                ValueType idx = type(n.input(1));
                if (in0.hasRank() && idx.hasRank()) {
                    int axis = norm(n.attrInt("axis", 0), in0.rank());
                    long[] d = new long[in0.rank() - 1 + idx.rank()];
                    int k = 0;
                    for (int i = 0; i < axis; i++) {
                        d[k++] = in0.dim(i);
                    }
                    for (int i = 0; i < idx.rank(); i++) {
                        d[k++] = idx.dim(i);
                    }
                    for (int i = axis + 1; i < in0.rank(); i++) {
                        d[k++] = in0.dim(i);
                    }
                    set(n, 0, ValueType.of(dt0, d));
                } else {
                    set(n, 0, ValueType.unranked(dt0));
                }
            }
            case "GatherElements" -> set(n, 0, type(n.input(1)).withDtype(dt0));
            case "Expand" -> {
                long[] shape = constInts(n.input(1));
                ValueType s = type(n.input(1));
                if (shape != null) {
                    set(n, 0, broadcastTypes(dt0, in0, ValueType.of(dt0, shape)));
                } else if (in0.hasRank() && s.hasRank() && s.dim(0) >= 0) {
                    set(n, 0, ValueType.of(dt0, unknownDims((int) Math.max(in0.rank(), s.dim(0)))));
                } else {
                    set(n, 0, ValueType.unranked(dt0));
                }
            }
            case "Tile" -> set(n, 0, in0.hasRank() ? in0.withDims(unknownDims(in0.rank())) : in0);
            case "Shape" -> {
                long len = -1;
                if (in0.hasRank()) {
                    int r = in0.rank();
                    int start = norm(n.attrInt("start", 0), r);
                    int end = n.hasAttribute("end") ? norm(n.attrInt("end", r), r) : r;
                    len = Math.max(0, Math.min(end, r) - Math.max(start, 0));
                }
                set(n, 0, ValueType.of(DataType.INT64, len));
            }
            case "Size" -> set(n, 0, ValueType.of(DataType.INT64));
            case "ConstantOfShape" -> {
                DataType dt = n.hasAttribute("value") ? n.attrTensor("value").dtype() : DataType.FLOAT;
                long[] shape = constInts(n.input(0));
                if (shape != null) {
                    set(n, 0, ValueType.of(dt, shape));
                } else if (in0.hasRank() && in0.dim(0) >= 0) {
                    set(n, 0, ValueType.of(dt, unknownDims((int) in0.dim(0))));
                } else {
                    set(n, 0, ValueType.unranked(dt));
                }
            }
            case "Constant" -> {
                Tensor v = LiftConstants.value(n);
                if (v != null) {
                    set(n, 0, ValueType.of(v.dtype(), v.shape()));
                }
            }
            case "Range" -> set(n, 0, ValueType.of(dt0, -1));
            case "NonZero" -> set(n, 0, ValueType.of(DataType.INT64, in0.rank() < 0 ? -1 : in0.rank(), -1));
            case "OneHot" -> {
                ValueType vals = type(n.input(2));
                if (in0.hasRank()) {
                    int axis = norm(n.attrInt("axis", -1), in0.rank() + 1);
                    long[] d = new long[in0.rank() + 1];
                    for (int i = 0, k = 0; i < d.length; i++) {
                        d[i] = i == axis ? -1 : in0.dim(k++);
                    }
                    set(n, 0, ValueType.of(vals.dtype(), d));
                } else {
                    set(n, 0, ValueType.unranked(vals.dtype()));
                }
            }
            default -> {
                for (int i = 0; i < n.outputs().size(); i++) {
                    set(n, i, ValueType.unranked(dt0));
                }
            }
        }
    }

    private void set(Node n, int i, ValueType t) {
        if (i < n.outputs().size() && !n.output(i).isEmpty()) {
            types.put(n.output(i), t);
        }
    }

    static long[] unknownDims(int rank) {
        if (rank < 0) {
            return null;
        }
        long[] d = new long[rank];
        java.util.Arrays.fill(d, -1);
        return d;
    }

    static int norm(long axis, int rank) {
        return (int) (axis < 0 ? axis + rank : axis);
    }

    private static long product(long[] d, int from, int to) {
        long p = 1;
        for (int i = from; i < to; i++) {
            if (d[i] < 0) {
                return -1;
            }
            p *= d[i];
        }
        return p;
    }

    private ValueType broadcast(Node n, int first, DataType dt) {
        ValueType r = null;
        for (int i = first; i < n.inputs().size(); i++) {
            ValueType t = type(n.input(i));
            r = r == null ? t : broadcastTypes(dt, r, t);
        }
        return r == null ? ValueType.unranked(dt) : new ValueType(dt, r.dims());
    }

    /** Numpy broadcasting of two types; unknown dims stay unknown unless the other side fixes them. */
    static ValueType broadcastTypes(DataType dt, ValueType a, ValueType b) {
        if (!a.hasRank() || !b.hasRank()) {
            return ValueType.unranked(dt);
        }
        int r = Math.max(a.rank(), b.rank());
        long[] d = new long[r];
        for (int i = 0; i < r; i++) {
            long x = i - (r - a.rank()) < 0 ? 1 : a.dim(i - (r - a.rank()));
            long y = i - (r - b.rank()) < 0 ? 1 : b.dim(i - (r - b.rank()));
            if (x == y || y == 1) {
                d[i] = x;
            } else if (x == 1) {
                d[i] = y;
            } else if (x >= 0) {
                d[i] = x;
            } else if (y >= 0) {
                d[i] = y;
            } else {
                d[i] = -1;
            }
        }
        return ValueType.of(dt, d);
    }

    private static ValueType matmul(ValueType a, ValueType b) {
        if (!a.hasRank() || !b.hasRank()) {
            return ValueType.unranked(a.dtype());
        }
        long[] ad = a.dims();
        long[] bd = b.dims();
        boolean aVec = ad.length == 1;
        boolean bVec = bd.length == 1;
        if (aVec) {
            ad = new long[] {1, ad[0]};
        }
        if (bVec) {
            bd = new long[] {bd[0], 1};
        }
        ValueType batch = broadcastTypes(a.dtype(), ValueType.of(a.dtype(), java.util.Arrays.copyOf(ad, ad.length - 2)),
                ValueType.of(a.dtype(), java.util.Arrays.copyOf(bd, bd.length - 2)));
        long[] bt = batch.dims();
        long[] out = java.util.Arrays.copyOf(bt, bt.length + 2);
        out[bt.length] = ad[ad.length - 2];
        out[bt.length + 1] = bd[bd.length - 1];
        if (aVec && bVec) {
            out = java.util.Arrays.copyOf(bt, bt.length);
        } else if (aVec) {
            out = remove(out, bt.length);
        } else if (bVec) {
            out = remove(out, bt.length + 1);
        }
        return ValueType.of(a.dtype(), out);
    }

    private static long[] remove(long[] d, int i) {
        long[] r = new long[d.length - 1];
        for (int k = 0, j = 0; k < d.length; k++) {
            if (k != i) {
                r[j++] = d[k];
            }
        }
        return r;
    }

    private ValueType window(Node n, ValueType x) {
        if (!x.hasRank()) {
            return x;
        }
        int k = x.rank() - 2;
        long[] d = new long[x.rank()];
        d[0] = x.dim(0);
        if (n.is("Conv")) {
            d[1] = type(n.input(1)).dim(0);
        } else if (n.is("ConvTranspose")) {
            long c = type(n.input(1)).dim(1);
            d[1] = c < 0 ? -1 : c * n.attrInt("group", 1);
        } else {
            d[1] = x.dim(1);
        }
        long[] kernel = n.attrInts("kernel_shape", null);
        if (kernel == null && (n.is("Conv") || n.is("ConvTranspose"))) {
            ValueType w = type(n.input(1));
            if (w.hasRank()) {
                kernel = java.util.Arrays.copyOfRange(w.dims(), 2, w.rank());
            }
        }
        for (int i = 0; i < k; i++) {
            d[2 + i] = -1;
        }
        if (kernel != null && !n.is("ConvTranspose")) {
            ConvGeometry geo = ConvGeometry.of(n, kernel);
            for (int i = 0; i < k; i++) {
                long in = x.dim(2 + i);
                if (in >= 0) {
                    d[2 + i] = geo.outputSize(i, in, n.attrInt("ceil_mode", 0) != 0);
                }
            }
        }
        return ValueType.of(x.dtype(), d);
    }

    /** The axes of a Reduce* node, normalized; null when they cannot be known (dynamic). */
    long[] reduceAxes(Node n, int rank) {
        long[] axes;
        boolean axesAsInput = n.is("ReduceSum") ? opset >= 13 : opset >= 18;
        if (axesAsInput) {
            if (!n.hasInput(1)) {
                axes = new long[0];
            } else {
                axes = constInts(n.input(1));
                if (axes == null) {
                    return null;
                }
            }
        } else {
            axes = n.attrInts("axes", new long[0]);
        }
        if (axes.length == 0) {
            if (axesAsInput && n.attrInt("noop_with_empty_axes", 0) != 0) {
                return new long[0];
            }
            if (rank < 0) {
                return null;
            }
            axes = new long[rank];
            for (int i = 0; i < rank; i++) {
                axes[i] = i;
            }
            return axes;
        }
        if (rank < 0) {
            for (long a : axes) {
                if (a < 0) {
                    return null;
                }
            }
            return axes;
        }
        long[] out = new long[axes.length];
        for (int i = 0; i < axes.length; i++) {
            out[i] = norm(axes[i], rank);
        }
        java.util.Arrays.sort(out);
        return out;
    }

    private ValueType reduce(Node n, ValueType x) {
        if (!x.hasRank()) {
            return ValueType.unranked(x.dtype());
        }
        long[] axes = reduceAxes(n, x.rank());
        boolean keep = n.attrInt("keepdims", 1) != 0;
        if (axes == null) {
            return keep ? x.withDims(unknownDims(x.rank())) : ValueType.unranked(x.dtype());
        }
        return keepOrDrop(x, axes, keep);
    }

    private static ValueType keepOrDrop(ValueType x, long[] axes, boolean keep) {
        long[] d = x.dims();
        java.util.List<Long> out = new java.util.ArrayList<>();
        for (int i = 0; i < d.length; i++) {
            boolean reduced = false;
            for (long a : axes) {
                reduced |= a == i;
            }
            if (!reduced) {
                out.add(d[i]);
            } else if (keep) {
                out.add(1L);
            }
        }
        return x.withDims(out.stream().mapToLong(Long::longValue).toArray());
    }

    private ValueType reshape(Node n, ValueType x) {
        long[] shape = constInts(n.input(1));
        if (shape != null) {
            long[] d = shape.clone();
            boolean allowZero = n.attrInt("allowzero", 0) != 0;
            int minus = -1;
            for (int i = 0; i < d.length; i++) {
                if (d[i] == 0 && !allowZero) {
                    d[i] = x.dim(i);
                } else if (d[i] == -1) {
                    minus = i;
                }
            }
            if (minus >= 0) {
                long known = 1;
                boolean ok = x.numel() >= 0;
                for (int i = 0; i < d.length; i++) {
                    if (i != minus) {
                        ok &= d[i] >= 0;
                        known *= Math.max(d[i], 1);
                    }
                }
                d[minus] = ok && known > 0 ? x.numel() / known : -1;
            }
            return ValueType.of(x.dtype(), d);
        }
        ValueType s = type(n.input(1));
        if (s.hasRank() && s.dim(0) >= 0) {
            return ValueType.of(x.dtype(), unknownDims((int) s.dim(0)));
        }
        return ValueType.unranked(x.dtype());
    }

    /** Axes of Squeeze/Unsqueeze (attribute before opset 13, input since); null when dynamic. */
    long[] squeezeAxes(Node n) {
        if (opset >= 13) {
            return n.hasInput(1) ? constInts(n.input(1)) : new long[0];
        }
        return n.attrInts("axes", new long[0]);
    }

    private ValueType squeeze(Node n, ValueType x) {
        long[] axes = squeezeAxes(n);
        if (!x.hasRank() || axes == null) {
            return ValueType.unranked(x.dtype());
        }
        if (axes.length == 0) {
            java.util.List<Long> keep = new java.util.ArrayList<>();
            for (long d : x.dims()) {
                if (d < 0) {
                    return ValueType.unranked(x.dtype());
                }
                if (d != 1) {
                    keep.add(d);
                }
            }
            return x.withDims(keep.stream().mapToLong(Long::longValue).toArray());
        }
        long[] norm = new long[axes.length];
        for (int i = 0; i < axes.length; i++) {
            norm[i] = norm(axes[i], x.rank());
        }
        return keepOrDrop(x, norm, false);
    }

    private ValueType unsqueeze(Node n, ValueType x) {
        long[] axes = squeezeAxes(n);
        if (!x.hasRank() || axes == null) {
            return ValueType.unranked(x.dtype());
        }
        int r = x.rank() + axes.length;
        boolean[] inserted = new boolean[r];
        for (long a : axes) {
            inserted[norm(a, r)] = true;
        }
        long[] d = new long[r];
        for (int i = 0, k = 0; i < r; i++) {
            d[i] = inserted[i] ? 1 : x.dim(k++);
        }
        return x.withDims(d);
    }

    private ValueType concat(Node n, DataType dt) {
        ValueType first = type(n.input(0));
        if (!first.hasRank()) {
            return ValueType.unranked(dt);
        }
        int axis = norm(n.attrInt("axis", 0), first.rank());
        long[] d = unknownDims(first.rank());
        long sum = 0;
        for (int i = 0; i < first.rank(); i++) {
            d[i] = first.dim(i);
        }
        for (String in : n.inputs()) {
            ValueType t = type(in);
            if (!t.hasRank() || t.dim(axis) < 0 || sum < 0) {
                sum = -1;
            } else {
                sum += t.dim(axis);
            }
        }
        d[axis] = sum;
        return ValueType.of(dt, d);
    }

    private void split(Node n, ValueType x) {
        int outs = n.outputs().size();
        if (!x.hasRank()) {
            for (int i = 0; i < outs; i++) {
                set(n, i, ValueType.unranked(x.dtype()));
            }
            return;
        }
        int axis = norm(n.attrInt("axis", 0), x.rank());
        long[] sizes = opset >= 13 ? (n.hasInput(1) ? constInts(n.input(1)) : null) : n.attrInts("split", null);
        for (int i = 0; i < outs; i++) {
            long[] d = x.dims();
            if (sizes != null && sizes.length == outs) {
                d[axis] = sizes[i];
            } else if (x.dim(axis) >= 0 && x.dim(axis) % outs == 0) {
                d[axis] = x.dim(axis) / outs;
            } else {
                d[axis] = -1;
            }
            set(n, i, x.withDims(d));
        }
    }
}
