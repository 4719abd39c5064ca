package io.peft4j.trainer.autodiff;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Appends standard ONNX nodes in the form valid for the model's opset (ReduceSum takes its axes
 * as an input from opset 13, ReduceMean from 18, Squeeze/Unsqueeze from 13), and hands out
 * constants (shared, of the right element type), fresh names and what is known about values. Rules
 * and losses build their nodes through it; they never see the graph itself.
 */
public class Emitter {

    private final Graph graph;
    private final long opset;
    private final TypeInference types;
    private final DataType floatType;
    private final Map<String, String> constants;
    private final Map<String, String> shapes;

    Emitter(Graph graph, long opset, TypeInference types, DataType floatType, Map<String, String> constants,
            Map<String, String> shapes) {
        this.graph = graph;
        this.opset = opset;
        this.types = types;
        this.floatType = floatType;
        this.constants = constants;
        this.shapes = shapes;
    }

    Emitter(Emitter parent) {
        this(parent.graph, parent.opset, parent.types, parent.floatType, parent.constants, parent.shapes);
    }

    Graph graph() {
        return graph;
    }

    TypeInference inference() {
        return types;
    }

    /** The model's opset of the default ONNX domain. */
    public long opset() {
        return opset;
    }

    /** The floating-point type the gradients are computed in (the trainable tensors' type). */
    public DataType floatType() {
        return floatType;
    }

    // ---------------------------------------------------------------- nodes and names

    /** Adds {@code opType(inputs...)} and returns its (single, fresh) output. */
    public String op(String opType, String... inputs) {
        return graph.build(opType).name("grad/" + opType).in(inputs).out();
    }

    /** Starts a node with attributes; finish with {@code .out()} or {@code .add()}. */
    public Graph.NodeBuilder build(String opType) {
        return graph.build(opType).name("grad/" + opType);
    }

    /** A fresh value name derived from {@code hint}. */
    public String freshName(String hint) {
        return graph.freshName(hint);
    }

    // ---------------------------------------------------------------- what is known

    public ValueType type(String value) {
        return types.type(value);
    }

    /** Element type of a value, or the float type when unknown. */
    public DataType dtype(String value) {
        DataType t = types.type(value).dtype();
        return t == null ? floatType : t;
    }

    /** The rank of a value, or -1 when unknown. */
    public int rank(String value) {
        return types.type(value).rank();
    }

    /** The value of a constant (initializer that is not an input, or Constant node). */
    public Optional<Tensor> constant(String value) {
        return types.constant(value);
    }

    /** Records what is known about a value this emitter created. */
    public String typed(String value, ValueType t) {
        types.put(value, t);
        return value;
    }

    // ---------------------------------------------------------------- constants

    /** A scalar constant of element type {@code dt}. */
    public String scalar(double v, DataType dt) {
        return constant(v, dt, new long[0]);
    }

    /** A scalar constant of the element type of {@code like}. */
    public String scalarLike(double v, String like) {
        return scalar(v, dtype(like));
    }

    /** A constant of element type {@code dt} and shape {@code shape} filled with {@code v}. */
    public String constant(double v, DataType dt, long[] shape) {
        String key = dt + ":" + v + ":" + java.util.Arrays.toString(shape);
        return constants.computeIfAbsent(key, k -> {
            Tensor t = filled(dt, shape, v);
            String n = graph.addInitializer("grad_const", t);
            types.put(n, ValueType.of(dt, shape));
            return n;
        });
    }

    static Tensor filled(DataType dt, long[] shape, double v) {
        int n = (int) Tensor.numel(shape);
        return switch (dt) {
            case DOUBLE -> {
                double[] d = new double[n];
                java.util.Arrays.fill(d, v);
                yield Tensor.ofDoubles(shape, d);
            }
            case INT64 -> {
                long[] d = new long[n];
                java.util.Arrays.fill(d, (long) v);
                yield Tensor.ofLongs(shape, d);
            }
            default -> {
                float[] d = new float[n];
                java.util.Arrays.fill(d, (float) v);
                yield Tensor.ofFloats(shape, d).to(dt);
            }
        };
    }

    /** A 1-D int64 constant. */
    public String ints(long... v) {
        String key = "ints:" + java.util.Arrays.toString(v);
        return constants.computeIfAbsent(key, k -> {
            String n = graph.addInitializer("grad_ints", Tensor.ofLongs(new long[] {v.length}, v));
            types.put(n, ValueType.of(DataType.INT64, v.length));
            return n;
        });
    }

    /** A new initializer (a tensor computed at build time, e.g. a flipped frozen kernel). */
    public String initializer(String hint, Tensor t) {
        String n = graph.addInitializer(hint, t);
        types.put(n, ValueType.of(t.dtype(), t.shape()));
        return n;
    }

    // ---------------------------------------------------------------- shapes

    /** {@code Shape(x)}, shared between all rules that ask for it. */
    public String shape(String x) {
        return shapes.computeIfAbsent(x, k -> typed(op("Shape", x), ValueType.of(DataType.INT64, rank(x))));
    }

    /** Dimension {@code axis} of {@code x} as a 1-element int64 tensor, a constant when known. */
    public String dim(String x, int axis) {
        long d = type(x).dim(axis);
        if (d >= 0) {
            return ints(d);
        }
        int a = axis;
        return build("Slice").in(shape(x), ints(a), ints(a == -1 ? Long.MAX_VALUE : a + 1), ints(0)).out();
    }

    /** {@code Concat(parts, axis = 0)}: joins 1-D shape pieces. */
    public String concat0(String... parts) {
        return build("Concat").in(parts).attr("axis", 0L).out();
    }

    public String reshape(String x, String shape) {
        return op("Reshape", x, shape);
    }

    /** {@code x} reshaped to the shape of {@code like}. */
    public String reshapeLike(String x, String like) {
        ValueType t = type(like);
        if (t.isStatic() && t.rank() > 0) {
            return typed(reshape(x, ints(t.dims())), t.withDtype(dtype(x)));
        }
        return typed(reshape(x, shape(like)), t.withDtype(dtype(x)));
    }

    public String cast(String x, DataType to) {
        return build("Cast").in(x).attr("to", (long) to.onnxCode()).out();
    }

    public String transpose(String x, long... perm) {
        return build("Transpose").in(x).attr("perm", perm).out();
    }

    public String unsqueeze(String x, long... axes) {
        if (opset >= 13) {
            return op("Unsqueeze", x, ints(axes));
        }
        return build("Unsqueeze").in(x).attr("axes", axes).out();
    }

    public String squeeze(String x, long... axes) {
        if (opset >= 13) {
            return op("Squeeze", x, ints(axes));
        }
        return build("Squeeze").in(x).attr("axes", axes).out();
    }

    /** Zeros shaped like {@code x}, of x's element type. */
    public String zerosLike(String x) {
        DataType dt = dtype(x);
        return typed(build("ConstantOfShape").in(shape(x)).attr("value", filled(dt, new long[] {1}, 0)).out(),
                type(x).withDtype(dt));
    }

    // ---------------------------------------------------------------- reductions

    /**
     * {@code op(x)} over {@code axes} (all axes when null) with static axes, in the form of the
     * model's opset.
     */
    public String reduce(String reduceOp, String x, long[] axes, boolean keepdims) {
        boolean asInput = reduceOp.equals("ReduceSum") ? opset >= 13 : opset >= 18;
        Graph.NodeBuilder b = build(reduceOp).in(x).attr("keepdims", keepdims ? 1L : 0L);
        if (axes != null) {
            if (asInput) {
                b.in(ints(axes));
            } else {
                b.attr("axes", axes);
            }
        }
        return b.out();
    }

    /** Whether {@code reduceOp} takes its axes as an input (so they may be computed at run time). */
    public boolean reduceAxesAsInput(String reduceOp) {
        return reduceOp.equals("ReduceSum") ? opset >= 13 : opset >= 18;
    }

    /**
     * Sums {@code grad} (whose type is {@code gradType}, the broadcast shape) down to the shape of
     * {@code x}: the gradient of numpy-style broadcasting. The reduced axes are those where x has
     * size 1 or is missing; when the sizes known at build time settle that, the axes are fixed
     * (they describe the graph, not the batch), else they are computed at run time from
     * {@code Shape} (opset 13 and later). Before opset 13 ReduceSum cannot take axes computed at
     * run time, and a size unknown on both sides is taken as not broadcast (true of the graphs
     * exporters write: the sizes that broadcast are literal ones).
     */
    public String reduceToShapeOf(String grad, ValueType gradType, String x) {
        ValueType xt = type(x);
        if (gradType.hasRank() && xt.hasRank() && gradType.rank() >= xt.rank()) {
            int rg = gradType.rank();
            int off = rg - xt.rank();
            List<Long> axes = new ArrayList<>();
            boolean settled = true;
            for (int i = 0; i < rg; i++) {
                long xd = i < off ? 1 : xt.dim(i - off);
                long gd = gradType.dim(i);
                if (xd == 1) {
                    if (gd != 1) {
                        axes.add((long) i);
                    }
                } else if (xd < 0 && gd != 1 && !ValueType.sameDim(xd, gd)) {
                    // x's size is not known to differ from 1: settled only at opsets without
                    // run-time axes, where the sizes are assumed equal (see below)
                    settled = opset < 13;
                }
            }
            if (settled) {
                String r = grad;
                if (!axes.isEmpty()) {
                    r = reduce("ReduceSum", grad, axes.stream().mapToLong(Long::longValue).toArray(), true);
                }
                if (off > 0) {
                    r = reshapeLike(r, x);
                }
                return typed(r, xt.withDtype(dtype(grad)));
            }
        }
        if (opset < 13) {
            throw Peft4jException.unsupported("cannot tell at build time over which axes the gradient of '" + x
                    + "' (" + xt + ") is broadcast to " + gradType + ", and opset " + opset
                    + " has no ReduceSum with axes computed at run time (opset 13): declare the input shapes");
        }
        String sg = shape(grad);
        String sx = shape(x);
        String missing = op("Sub", op("Size", sg), op("Size", sx));
        String ones = build("ConstantOfShape").in(reshape(missing, ints(1)))
                .attr("value", Tensor.ofLongs(new long[] {1}, 1)).out();
        String padded = build("Concat").in(ones, sx).attr("axis", 0L).out();
        String axes = reshape(op("NonZero", op("Equal", padded, ints(1))), ints(-1));
        String r = build("ReduceSum").in(grad, axes).attr("keepdims", 1L).attr("noop_with_empty_axes", 1L).out();
        return typed(reshape(r, sx), xt.withDtype(dtype(grad)));
    }

    /** The element count of {@code x} as a scalar of the float type of {@code like}. */
    public String sizeAs(String x, String like) {
        long n = type(x).numel();
        if (n >= 0) {
            return scalarLike(n, like);
        }
        return cast(op("Size", x), dtype(like));
    }

    static String describe(Node n) {
        return "node '" + n.name() + "' (" + (n.domain().isEmpty() ? "" : n.domain() + ".") + n.opType() + ")";
    }
}
