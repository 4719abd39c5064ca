package io.peft4j.trainer;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.trainer.autodiff.TypeInference;
import io.peft4j.trainer.autodiff.ValueType;

import java.util.List;
import java.util.Optional;
import java.util.Random;

/**
 * New task heads on a base model: a linear classifier over a hidden state (a sentence embedding
 * from an encoder's token states, a CNN's features), trained in full next to the adapter. PEFT
 * calls such a module a {@code modules_to_save} entry; the head is written as PyTorch's
 * {@code nn.Linear} would export it (a {@code Gemm} named {@code /<module>/Gemm} with
 * {@code transB = 1}, weight {@code <module>.weight} [classes, width], bias {@code <module>.bias}
 * [classes]), so module paths, binding and export see an ordinary Linear layer.
 */
public final class Heads {

    /** The module path of the head that {@link #addClassifier(Model, String, int, Pooling, long)} adds. */
    public static final String DEFAULT_MODULE = "classifier";
    /** The output that {@link #addClassifier(Model, String, int, Pooling, long)} adds. */
    public static final String DEFAULT_OUTPUT = "logits";

    private Heads() {
    }

    /**
     * How a hidden state becomes one vector per example.
     *
     * @param kind what is computed
     * @param mask for {@link Kind#MASKED_MEAN}: the graph input holding the attention mask
     *             ([batch, seq], 1 for tokens, 0 for padding; any numeric type); null otherwise
     */
    public record Pooling(Kind kind, String mask) {

        public enum Kind {
            /** The hidden state already is [batch, width] (a CNN's flattened features). */
            NONE,
            /** The first position of [batch, seq, width] (BERT's [CLS] token). */
            FIRST_TOKEN,
            /** The mean over all positions of [batch, seq, width]. */
            MEAN,
            /**
             * The mean over the positions the attention mask keeps, as sentence-transformers pools
             * (all-MiniLM-L6-v2's sentence embedding): Σ h·m / max(Σ m, 1e-9).
             */
            MASKED_MEAN
        }

        public Pooling {
            if (kind == null) {
                throw Peft4jException.invalid("a pooling needs a kind");
            }
            if ((kind == Kind.MASKED_MEAN) != (mask != null)) {
                throw Peft4jException.invalid(kind == Kind.MASKED_MEAN ? "masked mean pooling needs the mask input's name"
                        : kind + " pooling takes no mask");
            }
        }

        public static Pooling none() {
            return new Pooling(Kind.NONE, null);
        }

        public static Pooling firstToken() {
            return new Pooling(Kind.FIRST_TOKEN, null);
        }

        public static Pooling mean() {
            return new Pooling(Kind.MEAN, null);
        }

        public static Pooling maskedMean(String maskInput) {
            return new Pooling(Kind.MASKED_MEAN, maskInput);
        }
    }

    /**
     * What {@link #addClassifier} added.
     *
     * @param module  the head's module path
     * @param output  the logits output, [batch, classes]
     * @param pooled  the pooled hidden state the head reads, [batch, width]
     * @param weight  the weight initializer, [classes, width] (PyTorch's Linear layout)
     * @param bias    the bias initializer, [classes]
     */
    public record Head(String module, String output, String pooled, String weight, String bias) {

        /** The head's tensors, which train in full. */
        public List<String> trainable() {
            return List.of(weight, bias);
        }
    }

    /**
     * Adds a classifier with module path {@value #DEFAULT_MODULE} and output
     * {@value #DEFAULT_OUTPUT}; see {@link #addClassifier(Model, String, int, Pooling, String, String, long)}.
     */
    public static Head addClassifier(Model model, String hidden, int classes, Pooling pooling, long seed) {
        return addClassifier(model, hidden, classes, pooling, DEFAULT_MODULE, DEFAULT_OUTPUT, seed);
    }

    /**
     * Adds {@code output = pool(hidden) · Wᵀ + b} to {@code model} as a new graph output (the
     * model's outputs stay). W and b are initialised as PyTorch initialises {@code nn.Linear}:
     * uniform in ±1/√width, from {@code seed}. The hidden state must be a floating-point value of
     * the graph with a known last dimension (the width), of rank 2 for {@link Pooling.Kind#NONE}
     * and rank 3 ([batch, seq, width]) otherwise.
     */
    public static Head addClassifier(Model model, String hidden, int classes, Pooling pooling, String module,
                                     String output, long seed) {
        if (classes < 1) {
            throw Peft4jException.invalid("a classifier needs at least one class, got " + classes);
        }
        Graph g = model.graph();
        long opset = model.opset("");
        String weight = module + ".weight";
        String bias = module + ".bias";
        for (String name : List.of(weight, bias, output)) {
            if (g.hasInitializer(name) || g.isGraphInput(name) || g.producer(name).isPresent()) {
                throw new Peft4jException(ErrorCode.GRAPH_STATE, "the graph already has a value named '" + name
                        + "'; choose another module path or output name for the head");
            }
        }
        if (!g.isGraphInput(hidden) && g.producer(hidden).isEmpty()) {
            throw Peft4jException.notFound("the graph has no value '" + hidden + "' (outputs: " + g.outputNames() + ")");
        }
        ValueType t = TypeInference.run(g, opset).type(hidden);
        if (t.dtype() == null || !t.dtype().isFloatingPoint()) {
            throw Peft4jException.invalid("the head's hidden state '" + hidden + "' must be floating point, is "
                    + (t.dtype() == null ? "of unknown type" : t.dtype()));
        }
        int wantRank = pooling.kind() == Pooling.Kind.NONE ? 2 : 3;
        if (t.rank() != wantRank) {
            throw Peft4jException.shape("pooling " + pooling.kind() + " needs a hidden state of rank " + wantRank + " ("
                    + (wantRank == 2 ? "[batch, width]" : "[batch, seq, width]") + "); '" + hidden + "' has "
                    + (t.hasRank() ? "rank " + t.rank() : "an unknown rank"));
        }
        long width = t.dim(-1);
        if (width < 1) {
            throw Peft4jException.shape("the width (last dimension) of '" + hidden + "' is not known when the graph is "
                    + "built; declare its shape");
        }
        DataType dt = t.dtype();
        String pooled = switch (pooling.kind()) {
            case NONE -> hidden;
            case FIRST_TOKEN -> g.build("Gather").name("/" + module + "/pool_first")
                    .in(hidden, g.addInitializer(module + "/first", Tensor.scalar(0L))).attr("axis", 1L).out();
            case MEAN -> reduce(g, opset, "ReduceMean", "/" + module + "/pool_mean", hidden, 1, false);
            case MASKED_MEAN -> maskedMean(g, opset, module, hidden, pooling.mask(), dt);
        };

        Random rng = new Random(seed);
        double bound = 1 / Math.sqrt(width);
        float[] w = new float[Math.toIntExact(classes * width)];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) ((rng.nextDouble() * 2 - 1) * bound);
        }
        float[] b = new float[classes];
        for (int i = 0; i < b.length; i++) {
            b[i] = (float) ((rng.nextDouble() * 2 - 1) * bound);
        }
        g.setInitializer(weight, Tensor.ofFloats(new long[] {classes, width}, w).to(dt));
        g.setInitializer(bias, Tensor.ofFloats(new long[] {classes}, b).to(dt));
        g.build("Gemm").name("/" + module + "/Gemm").in(pooled, weight, bias).attr("transB", 1L).outputs(output).add();
        g.addOutput(ValueInfos.tensor(output, dt, batchDim(g, hidden, t), (long) classes));
        g.sortTopologically();
        return new Head(module, output, pooled, weight, bias);
    }

    /** Σ_s h[b, s, :] · m[b, s] / max(Σ_s m[b, s], 1e-9). */
    private static String maskedMean(Graph g, long opset, String module, String hidden, String mask, DataType dt) {
        if (!g.isGraphInput(mask) && g.producer(mask).isEmpty()) {
            throw Peft4jException.notFound("the graph has no mask value '" + mask + "' (inputs: " + g.inputNames() + ")");
        }
        String p = "/" + module + "/pool";
        String m = g.build("Cast").name(p + "_mask").in(mask).attr("to", (long) dt.onnxCode()).out();
        String m3 = opset >= 13
                ? g.build("Unsqueeze").name(p + "_mask3").in(m, g.addInitializer(module + "/axis2", axes(2))).out()
                : g.build("Unsqueeze").name(p + "_mask3").in(m).attr("axes", new long[] {2}).out();
        String sum = reduce(g, opset, "ReduceSum", p + "_sum", g.build("Mul").name(p + "_masked").in(hidden, m3).out(), 1, false);
        String count = reduce(g, opset, "ReduceSum", p + "_count", m, 1, true);
        String floor = g.addInitializer(module + "/min_count", Tensor.ofFloats(new long[0], 1e-9f).to(dt));
        String safe = g.build("Max").name(p + "_count_floor").in(count, floor).out();
        return g.build("Div").name(p + "_mean").in(sum, safe).out();
    }

    /** A reduction over one axis; axes as an attribute or an input as the opset wants (ReduceSum: 13, others: 18). */
    private static String reduce(Graph g, long opset, String op, String name, String x, long axis, boolean keep) {
        long inputSince = op.equals("ReduceSum") ? 13 : 18;
        Graph.NodeBuilder b = g.build(op).name(name).attr("keepdims", keep ? 1L : 0L);
        if (opset >= inputSince) {
            b.in(x, g.addInitializer(name.substring(1) + "_axes", axes(axis)));
        } else {
            b.in(x).attr("axes", new long[] {axis});
        }
        return b.out();
    }

    private static Tensor axes(long... axes) {
        return Tensor.ofLongs(new long[] {axes.length}, axes);
    }

    /** The batch dimension of the head's output: the hidden state's, as declared where it is declared. */
    private static Object batchDim(Graph g, String hidden, ValueType t) {
        if (t.dim(0) >= 0) {
            return t.dim(0);
        }
        Optional<ValueInfoProto> declared = g.outputs().stream().filter(v -> v.getName().equals(hidden)).findFirst()
                .or(() -> Optional.ofNullable(g.valueInfo().get(hidden)))
                .or(() -> g.inputs().stream().filter(v -> v.getName().equals(hidden)).findFirst());
        Object d = declared.flatMap(ValueInfos::dims).map(l -> l.isEmpty() ? null : l.get(0)).orElse(null);
        return d != null ? d : "batch";
    }
}
