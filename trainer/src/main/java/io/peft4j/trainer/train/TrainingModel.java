package io.peft4j.trainer.train;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.adapter.Peft4jBlock;
import io.peft4j.core.adapter.PeftKey;
import io.peft4j.core.modules.TargetFinder;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.peft.Heads;
import io.peft4j.core.peft.InjectMode;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.trainer.autodiff.TypeInference;
import io.peft4j.trainer.train.TrainSettings.Method;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * The model a run trains, made from the settings: the base model, its new classification head (if
 * any), and the adapter injected as initializers (LoRA, IA3) — or nothing injected (full, head) —
 * with the names of the tensors that train and their starting values. It also turns trained values
 * back into what the run writes: an adapter bundle in the Hugging Face PEFT layout, or a model.
 */
public final class TrainingModel {

    /** Where a trained tensor goes in a bundle: its PEFT key and whether the graph stores it transposed. */
    private record Saved(String key, long[] shape, boolean transposed) {
    }

    private final Method method;
    private final Model model;
    private final String baseFingerprint;
    private final String logits;
    private final int classes;
    private final List<String> trainable;
    private final Map<String, float[]> initial;
    private final AdapterConfig config;
    private final Map<String, Saved> saved;
    private final Heads.Spec headSpec;
    private final Map<String, String> frozen;
    private final long baseParameters;
    private final long baseBytes;

    private TrainingModel(Method method, Model model, String baseFingerprint, String logits, int classes,
                          List<String> trainable, AdapterConfig config, Map<String, Saved> saved, Heads.Spec headSpec,
                          Map<String, String> frozen, long baseParameters, long baseBytes) {
        this.method = method;
        this.model = model;
        this.baseFingerprint = baseFingerprint;
        this.logits = logits;
        this.classes = classes;
        this.trainable = List.copyOf(trainable);
        this.config = config;
        this.saved = saved;
        this.headSpec = headSpec;
        this.frozen = frozen;
        this.baseParameters = baseParameters;
        this.baseBytes = baseBytes;
        Map<String, float[]> init = new LinkedHashMap<>();
        for (String t : trainable) {
            init.put(t, model.graph().initializer(t).toFloatArray());
        }
        this.initial = Collections.unmodifiableMap(init);
    }

    /** Reads the base model and prepares it as the settings say. */
    public static TrainingModel prepare(TrainSettings s) {
        Model model = OnnxIO.read(s.base);
        long bytes = sizeOnDisk(s.base);
        long baseParams = parameters(model.graph());
        String fingerprint = Heads.baseFingerprint(model);
        Graph g = model.graph();
        String logits = s.output != null ? s.output : g.outputNames().get(0);
        if (!g.isGraphOutput(logits)) {
            throw Peft4jException.notFound("--output '" + logits + "' is not an output of " + s.base + "; its outputs are "
                    + g.outputNames());
        }

        // the head, if asked for: replace the final Linear layer, or add one over the output
        Heads.Head head = null;
        Heads.Spec spec = null;
        AdapterBundle init = s.initAdapter != null ? AdapterBundle.read(s.initAdapter) : null;
        if (init != null && Heads.specOf(init.config()).isPresent()) {
            spec = Heads.specOf(init.config()).get();
            if (s.headClasses != 0 && s.headClasses != spec.classes()) {
                throw Peft4jException.invalid("--head-classes " + s.headClasses + " differs from the " + spec.classes()
                        + " classes of the head the --init-adapter brings");
            }
            logits = spec.output();
        } else if (s.headClasses > 0) {
            Optional<TargetLayer> last = finalLinear(g, logits);
            if (last.isPresent()) {
                head = Heads.replaceClassifier(model, last.get(), s.headClasses, s.seed);
                spec = new Heads.Spec("replace", head.module(), s.headClasses, null, null, null, head.output());
            } else {
                String hidden = logits;
                ValueInfoProto out = g.outputs().stream().filter(v -> v.getName().equals(hidden)).findFirst().orElseThrow();
                int rank = ValueInfos.dims(out).map(List::size).orElse(-1);
                Heads.Pooling pooling = rank == 2 ? Heads.Pooling.none()
                        : g.isGraphInput("attention_mask") ? Heads.Pooling.maskedMean("attention_mask") : Heads.Pooling.mean();
                if (rank != 2 && rank != 3) {
                    throw Peft4jException.shape("output '" + logits + "' is " + ValueInfos.describe(out) + "; a new head reads "
                            + "[batch, width] features or [batch, seq, width] token states");
                }
                TypeInference.declare(model, logits);
                head = Heads.addClassifier(model, logits, s.headClasses, pooling, s.seed);
                spec = new Heads.Spec("add", head.module(), s.headClasses, logits, Heads.poolingName(pooling),
                        pooling.mask(), head.output());
                logits = head.output();
            }
        }
        int classes = logitsClasses(model, logits);

        List<String> trainable = new ArrayList<>();
        Map<String, Saved> saved = new LinkedHashMap<>();
        Map<String, String> frozen = new LinkedHashMap<>();
        AdapterConfig config = null;
        switch (s.method) {
            case LORA, IA3 -> {
                AdapterBundle bundle;
                if (init != null) {
                    String want = s.method == Method.LORA ? "LORA" : "IA3";
                    if (!init.config().peftType().equals(want)) {
                        throw Peft4jException.invalid("--init-adapter " + s.initAdapter + " is " + init.config().peftType()
                                + ", but --method is " + s.method.cli());
                    }
                    bundle = init;
                } else {
                    // the keywords leave out the layer that makes the logits, as PEFT's all-linear does: the
                    // new head when there is one, else the model's own final Linear layer
                    String finalLayer = head != null ? head.module() : finalLinear(g, logits).map(TargetLayer::path).orElse(null);
                    List<String> targets = selectTargets(g, s, finalLayer);
                    AdapterConfig c = s.method == Method.LORA
                            ? new AdapterConfig("LORA", s.rank, s.alpha, targets, null, s.dropout, "none", s.rslora, false,
                            false, head == null ? List.of() : List.of(head.module()), Map.of(), Map.of(), List.of(), null, Map.of())
                            : new AdapterConfig("IA3", 0, 0, targets, null, 0.0, "none", false, false, false,
                            head == null ? List.of() : List.of(head.module()), Map.of(), Map.of(),
                            feedforward(targets, s.feedforward), null, Map.of());
                    bundle = AdapterBinding.init(model, c, s.seed);
                }
                AdapterBinding binding = AdapterBinding.bind(model, bundle);
                Peft.Injection inj = Peft.inject(model, binding, InjectMode.INITIALIZERS);
                for (String t : inj.trainable()) {
                    trainable.add(t);
                    if (g.hasInitializer(t) && bundle.tensors().containsKey(t)) {
                        saved.put(t, new Saved(t, bundle.tensors().get(t).shape(), false));
                    }
                }
                for (AdapterBinding.Saved sv : binding.saved()) {
                    saved.put(sv.initializer(), new Saved(sv.key(), sv.pytorch().shape(),
                            sv.key().endsWith(".weight") && sv.target().layout() == TargetLayer.Layout.IN_OUT));
                }
                if (head != null) {
                    addHead(g, head, trainable, saved);
                }
                config = bundle.config();
                if (head != null && !config.modulesToSave().contains(head.module())) {
                    throw new Peft4jException(ErrorCode.GRAPH_STATE, "internal: the head is not in modules_to_save");
                }
            }
            case FULL -> {
                for (Map.Entry<String, Tensor> e : g.initializers().entrySet()) {
                    String name = e.getKey();
                    if (e.getValue().dtype() != DataType.FLOAT || e.getValue().numel() <= 1) {
                        continue;
                    }
                    if (isBatchNormStatistic(g, name)) {
                        frozen.put(name, "BatchNorm running statistic (BatchNorm stays in inference mode)");
                    } else if (g.consumers(name).isEmpty()) {
                        frozen.put(name, "unused");
                    } else {
                        trainable.add(name);
                    }
                }
            }
            case HEAD -> addHead(g, head, trainable, saved);
        }
        if (trainable.isEmpty()) {
            throw Peft4jException.invalid("nothing to train: the settings select no tensor");
        }
        return new TrainingModel(s.method, model, fingerprint, logits, classes, trainable, config, saved, spec, frozen,
                baseParams, bytes);
    }

    private static void addHead(Graph g, Heads.Head head, List<String> trainable, Map<String, Saved> saved) {
        for (String t : head.trainable()) {
            if (!trainable.contains(t)) {
                trainable.add(t);
            }
        }
        String module = head.module();
        TargetLayer layer = TargetFinder.find(g).stream().filter(t -> t.path().equals(module)).findFirst().orElseThrow();
        boolean transposed = layer.layout() == TargetLayer.Layout.IN_OUT;
        long[] w = g.initializer(head.weight()).shape();
        saved.put(head.weight(), new Saved(PeftKey.of(module, "weight"),
                transposed ? new long[] {w[1], w[0]} : w, transposed));
        saved.put(head.bias(), new Saved(PeftKey.of(module, "bias"), new long[] {layer.outFeatures()}, false));
    }

    /** The Linear layer whose output (through pass-through ops) is {@code output}, if any. */
    static Optional<TargetLayer> finalLinear(Graph g, String output) {
        for (TargetLayer t : TargetFinder.find(g)) {
            if (t.kind() != TargetLayer.Kind.LINEAR) {
                continue;
            }
            String v = io.peft4j.core.peft.Rewrites.moduleOutput(g, t);
            for (int hops = 0; hops < 8 && !v.equals(output); hops++) {
                List<Node> users = g.consumers(v);
                if (users.size() != 1 || !List.of("Identity", "Softmax", "LogSoftmax", "Sigmoid", "Flatten")
                        .contains(users.get(0).opType())) {
                    break;
                }
                v = users.get(0).output(0);
            }
            if (v.equals(output)) {
                return Optional.of(t);
            }
        }
        return Optional.empty();
    }

    private static int logitsClasses(Model model, String logits) {
        ValueInfoProto out = model.graph().outputs().stream().filter(v -> v.getName().equals(logits)).findFirst().orElseThrow();
        List<Object> dims = ValueInfos.dims(out).orElse(List.of());
        if (dims.size() != 2 || !(dims.get(1) instanceof Long k)) {
            throw Peft4jException.shape("output '" + logits + "' is " + ValueInfos.describe(out) + ", not class logits "
                    + "[batch, classes]; give --head-classes K to put a classification head on it");
        }
        return Math.toIntExact(k);
    }

    /**
     * The module paths the targets setting selects: never a new head; the keywords also leave out
     * {@code headModule}, the layer that makes the logits, which a regex may still name.
     */
    static List<String> selectTargets(Graph g, TrainSettings s, String headModule) {
        List<TargetLayer> all = TargetFinder.find(g);
        Pattern regex = null;
        String t = s.targets;
        if (!List.of("all", "all-linear", "all-conv").contains(t)) {
            try {
                regex = Pattern.compile(t);
            } catch (PatternSyntaxException e) {
                throw Peft4jException.invalid("--targets '" + t + "' is not a valid regular expression: " + e.getDescription());
            }
        }
        List<String> out = new ArrayList<>();
        for (TargetLayer l : all) {
            if (l.path().equals(headModule) && (regex == null || s.headClasses > 0)) {
                continue;
            }
            boolean linear = l.kind() == TargetLayer.Kind.LINEAR;
            boolean conv = l.kind() == TargetLayer.Kind.CONV && l.groups() == 1;
            boolean pick = switch (t) {
                case "all" -> linear || conv;
                case "all-linear" -> linear;
                case "all-conv" -> conv;
                default -> regex.matcher(l.path()).matches() && (linear || conv || s.method == Method.LORA);
            };
            if (pick) {
                out.add(l.path());
            }
        }
        if (out.isEmpty()) {
            throw Peft4jException.notFound("--targets '" + t + "' selects no layer of the model; its layers are "
                    + all.stream().map(TargetLayer::path).limit(30).toList() + (all.size() > 30 ? " …" : ""));
        }
        return out;
    }

    private static List<String> feedforward(List<String> targets, String regex) {
        if (regex == null) {
            return List.of();
        }
        Pattern p = Pattern.compile(regex);
        List<String> ff = targets.stream().filter(m -> p.matcher(m).matches()).toList();
        if (ff.isEmpty()) {
            throw Peft4jException.notFound("--feedforward '" + regex + "' selects none of the target modules " + targets);
        }
        return ff;
    }

    private static boolean isBatchNormStatistic(Graph g, String name) {
        for (Node n : g.consumers(name)) {
            if (n.is("BatchNormalization") && (name.equals(n.input(3)) || name.equals(n.input(4)))) {
                return true;
            }
        }
        return false;
    }

    /** Float parameters as PyTorch counts them: no BatchNorm statistics, no scalar constants. */
    static long parameters(Graph g) {
        long n = 0;
        for (Map.Entry<String, Tensor> e : g.initializers().entrySet()) {
            Tensor t = e.getValue();
            if (t.dtype().isFloatingPoint() && t.numel() > 1 && !isBatchNormStatistic(g, e.getKey())) {
                n += t.numel();
            }
        }
        return n;
    }

    private static long sizeOnDisk(Path base) {
        try {
            long n = Files.size(base);
            Path data = Path.of(base.toString() + ".data");
            if (Files.exists(data)) {
                n += Files.size(data);
            }
            return n;
        } catch (java.io.IOException e) {
            return -1;
        }
    }

    // ---------------------------------------------------------------- accessors

    public Method method() {
        return method;
    }

    /** The model to differentiate: trainable tensors are initializers holding the starting values. */
    public Model model() {
        return model;
    }

    public String logits() {
        return logits;
    }

    /** The number of classes the logits have. */
    public int classes() {
        return classes;
    }

    public List<String> trainable() {
        return trainable;
    }

    /** Starting values (read-only arrays: copy before updating). */
    public Map<String, float[]> initial() {
        return initial;
    }

    public long trainableParameters() {
        long n = 0;
        for (float[] v : initial.values()) {
            n += v.length;
        }
        return n;
    }

    /**
     * Parameters of the model being trained as PyTorch counts them (float tensors, no BatchNorm
     * statistics): the base model's, the adapter's and the head's.
     */
    public long totalParameters() {
        return parameters(model.graph());
    }

    /** Parameters of the base model as read. */
    public long baseParameters() {
        return baseParameters;
    }

    /** LoRA dropout on the adapter's input while training (the adapter config's {@code lora_dropout}); 0 for other methods. */
    public double dropout() {
        return config != null && "LORA".equals(config.peftType()) ? config.loraDropout() : 0;
    }

    public String baseFingerprint() {
        return baseFingerprint;
    }

    public long baseBytes() {
        return baseBytes;
    }

    /** Float initializers full fine-tuning leaves frozen, with the reason. */
    public Map<String, String> frozen() {
        return Collections.unmodifiableMap(frozen);
    }

    public Optional<Heads.Spec> head() {
        return Optional.ofNullable(headSpec);
    }

    // ---------------------------------------------------------------- results

    /**
     * The adapter bundle with {@code values}: the PEFT tensors in PEFT's layout, the head under
     * {@code modules_to_save}, and a {@code peft4j} block with the base fingerprint, the head spec
     * and {@code provenance}.
     */
    public AdapterBundle bundle(Map<String, float[]> values, Map<String, com.fasterxml.jackson.databind.JsonNode> provenance) {
        if (!method.writesAdapter()) {
            throw new Peft4jException(ErrorCode.GRAPH_STATE, "--method " + method.cli() + " writes a model, not an adapter");
        }
        Map<String, Tensor> tensors = new TreeMap<>();
        for (Map.Entry<String, Saved> e : saved.entrySet()) {
            float[] v = values.get(e.getKey());
            Saved sv = e.getValue();
            long[] graphShape = model.graph().initializer(e.getKey()).shape();
            Tensor t = Tensor.ofFloats(graphShape, v);
            if (sv.transposed()) {
                t = AdapterBinding.transpose2d(t);
            }
            tensors.put(sv.key(), t.reshape(sv.shape()));
        }
        Peft4jBlock had = config.peft4j();
        Map<String, com.fasterxml.jackson.databind.JsonNode> other = new LinkedHashMap<>(had == null ? Map.of() : had.other());
        other.putAll(provenance);
        if (headSpec != null) {
            other.put(Heads.SPEC_KEY, headSpec.toJson());
        }
        Peft4jBlock block = new Peft4jBlock(baseFingerprint, had == null ? Map.of() : had.moduleMap(), other);
        return new AdapterBundle(config.withPeft4j(block), tensors);
    }

    /** The trained model: the prepared model with {@code values} in place (for full and head). */
    public Model trainedModel(Map<String, float[]> values) {
        Model m = OnnxIO.read(OnnxIO.toBytes(model), "the trained model");
        for (Map.Entry<String, float[]> e : values.entrySet()) {
            Tensor old = m.graph().initializer(e.getKey());
            m.graph().setInitializer(e.getKey(), Tensor.ofFloats(old.shape(), e.getValue()).to(old.dtype()));
        }
        // a new base model: adapters made for the old one do not apply to it
        m.metadata().remove(Heads.BASE_FINGERPRINT_METADATA);
        return m;
    }
}
