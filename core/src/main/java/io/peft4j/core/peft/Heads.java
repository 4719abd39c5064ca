package io.peft4j.core.peft;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.adapter.BaseFingerprint;
import io.peft4j.core.modules.TargetFinder;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
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
        ValueInfoProto info = declared(g, hidden).orElseThrow(() -> Peft4jException.shape("the head's hidden state '"
                + hidden + "' has no declared type and shape; declare it (a graph output or value_info) first"));
        DataType dt = ValueInfos.elementType(info).orElse(null);
        if (dt == null || !dt.isFloatingPoint()) {
            throw Peft4jException.invalid("the head's hidden state '" + hidden + "' must be floating point, is "
                    + (dt == null ? "of unknown type" : dt));
        }
        List<Object> dims = ValueInfos.dims(info).orElse(null);
        int wantRank = pooling.kind() == Pooling.Kind.NONE ? 2 : 3;
        if (dims == null || dims.size() != wantRank) {
            throw Peft4jException.shape("pooling " + pooling.kind() + " needs a hidden state of rank " + wantRank + " ("
                    + (wantRank == 2 ? "[batch, width]" : "[batch, seq, width]") + "); '" + hidden + "' has "
                    + (dims != null ? "rank " + dims.size() : "an unknown rank"));
        }
        if (!(dims.get(dims.size() - 1) instanceof Long width) || width < 1) {
            throw Peft4jException.shape("the width (last dimension) of '" + hidden + "' is not known when the graph is "
                    + "built; declare its shape");
        }
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
        rememberBase(model);
        g.setInitializer(weight, Tensor.ofFloats(new long[] {classes, width}, w).to(dt));
        g.setInitializer(bias, Tensor.ofFloats(new long[] {classes}, b).to(dt));
        g.build("Gemm").name("/" + module + "/Gemm").in(pooled, weight, bias).attr("transB", 1L).outputs(output).add();
        g.addOutput(ValueInfos.tensor(output, dt, dims.get(0) == null ? "batch" : dims.get(0), (long) classes));
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

    /** The declared type of a value: a graph output, a value_info entry or a graph input. */
    private static Optional<ValueInfoProto> declared(Graph g, String name) {
        return g.outputs().stream().filter(v -> v.getName().equals(name)).findFirst()
                .or(() -> Optional.ofNullable(g.valueInfo().get(name)))
                .or(() -> g.inputs().stream().filter(v -> v.getName().equals(name)).findFirst());
    }

    // ---------------------------------------------------------------- replacing the final layer

    /** Ops a classifier's output may pass through on its way to the graph output; they keep the last axis. */
    private static final List<String> PASS_THROUGH = List.of("Identity", "Softmax", "LogSoftmax", "Sigmoid", "Flatten");

    /**
     * Replaces the weights of {@code layer}, a final Linear layer (Gemm, or MatMul with or without
     * its bias Add) whose output is a graph output (directly or through {@value #PASS_THROUGH_DOC}),
     * by a fresh {@code classes}-way classifier of the same layout, initialised as PyTorch
     * initialises {@code nn.Linear} from {@code seed}; the graph output's last dimension becomes
     * {@code classes}. The layer keeps its node, module path and initializer names, so an adapter's
     * {@code modules_to_save} entry for it binds as for any layer.
     */
    public static Head replaceClassifier(Model model, TargetLayer layer, int classes, long seed) {
        if (classes < 1) {
            throw Peft4jException.invalid("a classifier needs at least one class, got " + classes);
        }
        Graph g = model.graph();
        if (layer.kind() != TargetLayer.Kind.LINEAR) {
            throw Peft4jException.unsupported("module " + layer.path() + " is a " + layer.opType() + ", not a Linear layer; "
                    + "only a final Linear layer (Gemm or MatMul) can be replaced by a new classifier");
        }
        String out = Rewrites.moduleOutput(g, layer);
        String graphOutput = out;
        while (!g.isGraphOutput(graphOutput)) {
            List<Node> users = g.consumers(graphOutput);
            if (users.size() != 1 || !PASS_THROUGH.contains(users.get(0).opType())) {
                throw Peft4jException.unsupported("module " + layer.path() + " does not end the model: its output '" + out
                        + "' is read by " + users.stream().map(n -> n.name() + " (" + n.opType() + ")").toList()
                        + "; a new classifier can replace a final Linear layer whose output is the model's output");
            }
            graphOutput = users.get(0).output(0);
        }
        String bias = Rewrites.bias(g, layer).orElseThrow(() -> Peft4jException.unsupported("module " + layer.path()
                + " has no constant bias; a replaced classifier keeps PyTorch's Linear layout, weight and bias"));
        long width = layer.inFeatures();
        DataType dt = layer.dtype();
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
        Tensor pt = Tensor.ofFloats(new long[] {classes, width}, w);
        Tensor stored = layer.layout() == TargetLayer.Layout.IN_OUT ? AdapterBinding.transpose2d(pt) : pt;
        rememberBase(model);
        g.setInitializer(layer.weight(), stored.to(dt));
        g.setInitializer(bias, Tensor.ofFloats(new long[] {classes}, b).to(g.initializer(bias).dtype()));
        // the output's declared last dimension, and nothing stale on the way
        for (ValueInfoProto v : List.copyOf(g.outputs())) {
            if (v.getName().equals(graphOutput)) {
                List<Object> dims = new ArrayList<>(ValueInfos.dims(v).orElse(List.of("batch", (long) classes)));
                dims.set(dims.size() - 1, (long) classes);
                g.setOutputInfo(ValueInfos.tensor(graphOutput, ValueInfos.elementType(v).orElse(dt), dims.toArray()));
            }
        }
        for (String v = out; ; ) {
            g.removeValueInfo(v);
            if (v.equals(graphOutput)) {
                break;
            }
            v = g.consumers(v).get(0).output(0);
        }
        g.removeValueInfo(Rewrites.node(g, layer).output(0));
        return new Head(layer.path(), graphOutput, Rewrites.node(g, layer).input(0), layer.weight(), bias);
    }

    private static final String PASS_THROUGH_DOC = "Identity, Softmax, LogSoftmax, Sigmoid or Flatten";

    // ---------------------------------------------------------------- persisted heads

    /**
     * Model metadata key: the fingerprint of the base model a head was put on, so that adapters made
     * for that base still bind to it (see {@link io.peft4j.core.adapter.AdapterBundle#requireBase}).
     */
    public static final String BASE_FINGERPRINT_METADATA = "peft4j.base_fingerprint";

    private static void rememberBase(Model model) {
        model.metadata().putIfAbsent(BASE_FINGERPRINT_METADATA, BaseFingerprint.of(model));
    }

    /**
     * The fingerprint of the base model {@code model} was made from by putting a head on it, or
     * its own when no head was put on it.
     */
    public static String baseFingerprint(Model model) {
        String f = model.metadata().get(BASE_FINGERPRINT_METADATA);
        return f != null ? f : BaseFingerprint.of(model);
    }

    /**
     * How an adapter's new head is put on the base model, kept in the adapter's {@code peft4j} block
     * under {@value #SPEC_KEY} so that whoever binds the adapter builds the same head first.
     *
     * @param kind    {@code replace} (the final Linear layer at {@code module} gets {@code classes}
     *                outputs) or {@code add} (a new Linear layer over {@code hidden})
     * @param module  the head's module path
     * @param classes number of classes
     * @param hidden  for {@code add}: the hidden state read; null for {@code replace}
     * @param pooling for {@code add}: none, first_token, mean or masked_mean; null for {@code replace}
     * @param mask    for masked_mean: the attention-mask input; else null
     * @param output  the logits output
     */
    public record Spec(String kind, String module, int classes, String hidden, String pooling, String mask, String output) {

        public Spec {
            if (!"replace".equals(kind) && !"add".equals(kind)) {
                throw Peft4jException.malformed("peft4j.head.kind must be 'replace' or 'add', got " + kind);
            }
            if (module == null || module.isEmpty() || classes < 1 || output == null || output.isEmpty()) {
                throw Peft4jException.malformed("peft4j.head needs a module, classes ≥ 1 and an output");
            }
            if (kind.equals("add") && (hidden == null || pooling == null)) {
                throw Peft4jException.malformed("peft4j.head of kind 'add' needs hidden and pooling");
            }
        }

        public JsonNode toJson() {
            ObjectNode o = JSON.createObjectNode();
            o.put("kind", kind).put("module", module).put("classes", classes).put("output", output);
            if (hidden != null) {
                o.put("hidden", hidden);
            }
            if (pooling != null) {
                o.put("pooling", pooling);
            }
            if (mask != null) {
                o.put("mask", mask);
            }
            return o;
        }

        public static Spec fromJson(JsonNode v) {
            if (v == null || !v.isObject()) {
                throw Peft4jException.malformed("peft4j.head must be an object");
            }
            return new Spec(text(v, "kind"), text(v, "module"), v.path("classes").asInt(0), text(v, "hidden"),
                    text(v, "pooling"), text(v, "mask"), text(v, "output"));
        }

        private static String text(JsonNode v, String k) {
            JsonNode x = v.get(k);
            return x == null || x.isNull() ? null : x.asText();
        }

        Pooling toPooling() {
            return switch (pooling.toLowerCase(Locale.ROOT)) {
                case "none" -> Pooling.none();
                case "first_token" -> Pooling.firstToken();
                case "mean" -> Pooling.mean();
                case "masked_mean" -> Pooling.maskedMean(mask);
                default -> throw Peft4jException.malformed("peft4j.head.pooling '" + pooling + "' is not one of none, "
                        + "first_token, mean, masked_mean");
            };
        }
    }

    /** The {@code peft4j} block key of a head {@link Spec}. */
    public static final String SPEC_KEY = "head";

    private static final ObjectMapper JSON = new ObjectMapper();

    /** The head an adapter brings, if any. */
    public static Optional<Spec> specOf(AdapterConfig config) {
        if (config.peft4j() == null || !config.peft4j().other().containsKey(SPEC_KEY)) {
            return Optional.empty();
        }
        return Optional.of(Spec.fromJson(config.peft4j().other().get(SPEC_KEY)));
    }

    /** The spec of a pooling kind, as {@link Spec#pooling()} spells it. */
    public static String poolingName(Pooling p) {
        return p.kind().name().toLowerCase(Locale.ROOT);
    }

    /**
     * Builds the head {@code spec} describes on {@code model} unless the model has it already (a
     * layer at the module path with {@code classes} outputs), with fresh weights that the adapter's
     * {@code modules_to_save} tensors then replace. Returns whether the graph changed.
     */
    public static boolean ensure(Model model, Spec spec) {
        Graph g = model.graph();
        Optional<TargetLayer> at = TargetFinder.find(g).stream().filter(t -> t.path().equals(spec.module())).findFirst();
        if (at.isPresent() && at.get().outFeatures() == spec.classes()) {
            return false;
        }
        if (spec.kind().equals("replace")) {
            TargetLayer t = at.orElseThrow(() -> Peft4jException.notFound("the adapter replaces the classifier '"
                    + spec.module() + "', which this graph does not have"));
            replaceClassifier(model, t, spec.classes(), 0);
        } else {
            if (at.isPresent()) {
                throw new Peft4jException(ErrorCode.GRAPH_STATE, "the adapter adds a head '" + spec.module() + "' with "
                        + spec.classes() + " classes, but the graph has a layer there with " + at.get().outFeatures());
            }
            rememberBase(model);
            addClassifier(model, spec.hidden(), spec.classes(), spec.toPooling(), spec.module(), spec.output(), 0);
        }
        return true;
    }
}
