package io.peft4j.core.peft;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.PeftKey;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Applying bound adapters to a model: {@link #inject} (adapter tensors as initializers or graph
 * inputs), {@link #injectStacked} (K adapters, one chosen per batch row) and {@link #merge} (folded
 * into the base weights). Each applies a binding made on the same base graph (a copy of it does:
 * bindings refer to layers by node and initializer names, which are checked).
 */
public final class Peft {

    /**
     * Model metadata key listing the adapters merged into the weights, one {@link #adapterId} a
     * line. A second merge of the same adapter is refused.
     */
    public static final String MERGED_METADATA = "peft4j.merged_adapters";

    private Peft() {
    }

    /**
     * What {@link #inject} placed in the graph.
     *
     * @param values    PEFT key (and method-own roles such as {@code lora_scaling}) → graph value name
     * @param trainable the names among {@code values} that training updates (the PEFT tensors)
     * @param feeds     for the input modes: graph input name → this adapter's value (what an
     *                  {@code .onnx_adapter} file holds); empty for initializers
     * @param offFeeds  for the input modes: graph input name → the value that switches the adapter
     *                  off (the base model's output); empty for initializers
     */
    public record Injection(Map<String, String> values, List<String> trainable, Map<String, Tensor> feeds,
                            Map<String, Tensor> offFeeds) {
        public Injection {
            values = Collections.unmodifiableMap(new LinkedHashMap<>(values));
            trainable = List.copyOf(trainable);
            feeds = Collections.unmodifiableMap(new LinkedHashMap<>(feeds));
            offFeeds = Collections.unmodifiableMap(new LinkedHashMap<>(offFeeds));
        }
    }

    // ---------------------------------------------------------------- inject

    /**
     * Rewrites {@code model} so that it computes the adapted layers. Tensors are named by their PEFT
     * keys, plus {@code base_model.model.<module>.lora_scaling} (shape [1]) for each LoRA module. In
     * the input modes each is a graph input (see {@link InjectMode}), and the LoRA rank axis is
     * declared symbolic ({@code <module>.r}), so that adapters of any rank can be fed.
     * {@code modules_to_save} weights replace the layer's weights (initializers) or become inputs
     * in PyTorch layout whose off value is the base layer's weight (inputs).
     */
    public static Injection inject(Model model, AdapterBinding binding, InjectMode mode) {
        requireSameGraph(model, binding);
        Graph g = model.graph();
        Map<String, String> values = new LinkedHashMap<>();
        List<String> trainable = new ArrayList<>();
        Map<String, Tensor> feeds = new LinkedHashMap<>();
        Map<String, Tensor> offFeeds = new LinkedHashMap<>();
        for (AdapterBinding.Module m : binding.modules()) {
            String module = m.target().path();
            Slots slots = (role, value, identity, rankAxis, train) -> {
                String name = PeftKey.of(module, role);
                requireFree(g, name);
                if (mode == InjectMode.INITIALIZERS) {
                    g.setInitializer(name, value);
                } else {
                    Object[] dims = new Object[value.rank()];
                    for (int i = 0; i < dims.length; i++) {
                        dims[i] = i == rankAxis ? module + ".r" : (Object) value.dim(i);
                    }
                    g.addInput(ValueInfos.tensor(name, value.dtype(), dims));
                    if (mode == InjectMode.INPUTS_WITH_DEFAULTS) {
                        g.setInitializer(name, identity);
                    }
                    feeds.put(name, value);
                    offFeeds.put(name, identity);
                }
                values.put(name, name);
                if (train) {
                    trainable.add(name);
                }
                return name;
            };
            binding.method().inject(model, m.target(), binding.config(), m.tensors(), slots);
        }
        for (AdapterBinding.Saved s : binding.saved()) {
            if (mode == InjectMode.INITIALIZERS) {
                g.setInitializer(s.initializer(), s.value());
                values.put(s.key(), s.initializer());
                trainable.add(s.initializer());
            } else {
                offFeeds.put(s.key(), savedAsInput(g, s, mode == InjectMode.INPUTS_WITH_DEFAULTS));
                values.put(s.key(), s.key());
                feeds.put(s.key(), s.pytorch().to(s.value().dtype()));
            }
        }
        g.sortTopologically();
        return new Injection(values, trainable, feeds, offFeeds);
    }

    /** A modules_to_save tensor as a graph input in PyTorch layout; returns its off value, the base layer's. */
    private static Tensor savedAsInput(Graph g, AdapterBinding.Saved s, boolean withDefault) {
        requireFree(g, s.key());
        Tensor base = g.initializer(s.initializer());
        boolean transposed = s.key().endsWith(".weight") && s.target().layout() == TargetLayer.Layout.IN_OUT;
        Tensor def = transposed ? AdapterBinding.transpose2d(base) : base.reshape(s.pytorch().shape());
        g.addInput(ValueInfos.tensor(s.key(), def.dtype(), Arrays.stream(def.shape()).boxed().toArray()));
        if (withDefault) {
            g.setInitializer(s.key(), def);
        }
        String v = transposed ? Rewrites.transpose(g, s.module() + "/saved_T", s.key())
                : def.rank() == base.rank() && Arrays.equals(def.shape(), base.shape()) ? s.key()
                : g.build("Reshape").in(s.key(), Rewrites.int64s(g, s.module() + "/saved_shape", base.shape())).out();
        // rewire the layer (and a MatMul's bias Add) from the stored initializer to the input
        Node layer = g.node(s.target().nodeName());
        List<Node> readers = new ArrayList<>(List.of(layer));
        readers.addAll(g.consumers(layer.output(0)));
        for (Node n : readers) {
            for (int i = 0; i < n.inputs().size(); i++) {
                if (n.input(i).equals(s.initializer())) {
                    n.setInput(i, v);
                }
            }
        }
        if (!g.isUsed(s.initializer())) {
            g.removeInitializer(s.initializer());
        }
        return def;
    }

    private static void requireFree(Graph g, String name) {
        if (g.hasInitializer(name) || g.isGraphInput(name) || g.producer(name).isPresent()) {
            throw new Peft4jException(ErrorCode.GRAPH_STATE, "the graph already has a value named '" + name
                    + "'; is this adapter injected already?");
        }
    }

    // ---------------------------------------------------------------- stacked

    /**
     * Injects K adapters at once behind the int64 graph input {@value Stack#ADAPTER_INDEX} of shape
     * [batch]: row b of a batch gets the base model when {@code adapter_index[b] = 0} and adapter k
     * ({@code adapters.get(k - 1)}) when it is k. Adapters may differ in method, modules and rank;
     * LoRA ranks are zero-padded to {@code maxRank} (0: the largest rank of each module).
     * Adapter tensors become constants. An index outside [0, K] fails in the runtime's Gather.
     */
    public static void injectStacked(Model model, List<AdapterBinding> adapters, int maxRank) {
        if (adapters.isEmpty()) {
            throw Peft4jException.invalid("a stacked model needs at least one adapter");
        }
        for (AdapterBinding b : adapters) {
            requireSameGraph(model, b);
            if (!b.saved().isEmpty()) {
                throw Peft4jException.unsupported("modules_to_save (" + b.saved().get(0).module() + ") cannot be stacked "
                        + "per batch row yet; export such an adapter merged or as a side graph");
            }
        }
        Graph g = model.graph();
        Stack stack = new Stack(g, adapters.size(), maxRank);
        // per method, per module: one member per adapter (null tensors where the adapter leaves the module alone)
        Map<PeftMethod, Map<String, TargetLayer>> targets = new LinkedHashMap<>();
        for (AdapterBinding b : adapters) {
            for (AdapterBinding.Module m : b.modules()) {
                targets.computeIfAbsent(b.method(), k -> new LinkedHashMap<>()).putIfAbsent(m.target().path(), m.target());
            }
        }
        for (Map.Entry<PeftMethod, Map<String, TargetLayer>> e : targets.entrySet()) {
            for (TargetLayer t : e.getValue().values()) {
                List<PeftMethod.Member> members = new ArrayList<>();
                for (AdapterBinding b : adapters) {
                    Map<String, Tensor> tensors = null;
                    if (b.method() == e.getKey()) {
                        for (AdapterBinding.Module m : b.modules()) {
                            if (m.target().path().equals(t.path())) {
                                tensors = m.tensors();
                            }
                        }
                    }
                    members.add(new PeftMethod.Member(b.config(), tensors));
                }
                e.getKey().injectStacked(model, t, members, stack);
            }
        }
        g.sortTopologically();
    }

    // ---------------------------------------------------------------- merge

    /**
     * Folds the adapter into the base weights: afterwards the graph has the same nodes, names and
     * shapes and only weights differ. Computed in float32 and rounded once to each weight's type;
     * all new weights are computed and checked before any is written, so a merge that would give
     * NaN or infinite weights is refused and leaves the model as it was. The adapter's
     * {@link #adapterId} is recorded in the model metadata {@value #MERGED_METADATA}; merging the
     * same adapter again is refused. A weight shared by several layers is refused too.
     */
    public static void merge(Model model, AdapterBinding binding) {
        requireSameGraph(model, binding);
        Graph g = model.graph();
        String id = adapterId(binding.bundle());
        List<String> merged = new ArrayList<>(List.of(model.metadata().getOrDefault(MERGED_METADATA, "").split("\n")));
        merged.removeIf(String::isBlank);
        if (merged.contains(id)) {
            throw Peft4jException.invalid("this adapter (" + id.substring(0, Math.min(id.length(), 24)) + "…) is already "
                    + "merged into the model (metadata " + MERGED_METADATA + "); merging it again would apply it twice");
        }
        Map<String, Tensor> updates = new LinkedHashMap<>();
        Map<String, String> owner = new LinkedHashMap<>();
        for (AdapterBinding.Module m : binding.modules()) {
            TargetLayer t = m.target();
            if (g.consumers(t.weight()).size() > 1) {
                throw Peft4jException.unsupported("module " + t.path() + ": weight " + t.weight() + " is shared by "
                        + g.consumers(t.weight()).size() + " nodes; merging would change all of them");
            }
            Map<String, Tensor> w = binding.method().merge(model, t, binding.config(), m.tensors());
            for (Map.Entry<String, Tensor> e : w.entrySet()) {
                String had = owner.put(e.getKey(), t.path());
                if (had != null) {
                    throw Peft4jException.unsupported("modules " + had + " and " + t.path() + " share weight " + e.getKey()
                            + "; merging both would apply one adapter twice to it");
                }
                requireFinite(e.getValue(), t.path(), e.getKey());
                updates.put(e.getKey(), e.getValue());
            }
        }
        for (AdapterBinding.Saved s : binding.saved()) {
            requireFinite(s.value(), s.module(), s.initializer());
            updates.put(s.initializer(), s.value());
        }
        updates.forEach(g::setInitializer);
        merged.add(id);
        model.metadata().put(MERGED_METADATA, String.join("\n", merged));
    }

    private static void requireFinite(Tensor t, String module, String weight) {
        if (!t.dtype().isFloatingPoint()) {
            return;
        }
        for (long i = 0; i < t.numel(); i++) {
            if (!Double.isFinite(t.getDouble(i))) {
                throw Peft4jException.invalid("merging the adapter into module " + module + " gives non-finite values (NaN "
                        + "or infinity) in " + weight + "; the adapter looks broken, nothing was merged");
            }
        }
    }

    /**
     * An adapter's identity for the merge log: {@code <peft_type>:sha256:<hex>} over its tensors
     * (key, type, shape, bytes in key order).
     */
    public static String adapterId(AdapterBundle bundle) {
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        for (Map.Entry<String, Tensor> e : bundle.tensors().entrySet()) {
            sha.update(e.getKey().getBytes(StandardCharsets.UTF_8));
            sha.update((e.getValue().dtype() + Arrays.toString(e.getValue().shape())).getBytes(StandardCharsets.UTF_8));
            ByteBuffer bytes = e.getValue().bytes();
            sha.update(bytes);
        }
        return bundle.config().peftType() + ":sha256:" + HexFormat.of().formatHex(sha.digest());
    }

    // ---------------------------------------------------------------- strip

    /**
     * Turns a side graph ({@link #inject} with {@link InjectMode#INPUTS_WITH_DEFAULTS}) back into
     * the base graph it was made from: every adapter input (a graph input with an initializer
     * default named by the PEFT key of a LoRA or IA3 tensor) becomes its default, a constant, and the branches that then leave their layer as it
     * was are removed. The rules follow the values the defaults switch off: zeros (LoRA factors and
     * scaling) stay zero through {@code Conv}, {@code MatMul}, {@code Gemm}, {@code Mul} and the
     * reshaping ops, ones (IA3 vectors) stay one through the reshaping ops, and {@code Add(x, 0)}
     * and {@code Mul(x, 1)} become {@code x}. Only values that come from adapter defaults take part,
     * so the base graph's own constants are never touched. Returns the number of adapter inputs
     * removed; refused ({@code GRAPH_STATE}), with the graph unspecified, when an adapter input is
     * still read afterwards (a graph that {@code inject} did not make).
     *
     * <p>What this is for: a base graph on which an adapter can be {@linkplain #merge merged}, when
     * only the side graph is at hand (a side package serving one adapter at the speed of a merged
     * model).
     */
    public static int strip(Model model) {
        Graph g = model.graph();
        List<String> adapterInputs = new ArrayList<>();
        for (String n : g.inputNames()) {
            if (g.hasInitializer(n) && isSwitchableInput(n)) {
                adapterInputs.add(n);
            }
        }
        java.util.Set<String> zero = new java.util.HashSet<>();
        java.util.Set<String> one = new java.util.HashSet<>();
        for (String n : adapterInputs) {
            Tensor t = g.initializer(n);
            if (filledWith(t, 0)) {
                zero.add(n);
            } else if (filledWith(t, 1)) {
                one.add(n);
            }
            g.inputToConstant(n);
        }
        // the producer of each input of a node runs before it: one pass in topological order
        for (Node n : g.topologicalOrder()) {
            if (n.outputs().size() != 1 || !n.domain().isEmpty() && !n.domain().equals("ai.onnx")) {
                continue;
            }
            String y = n.output(0);
            List<String> in = n.inputs();
            switch (n.opType()) {
                case "Conv", "MatMul" -> {
                    boolean noBias = in.size() < 3 || in.get(2).isEmpty() || zero.contains(in.get(2));
                    if ((zero.contains(in.get(0)) || zero.contains(in.get(1))) && noBias) {
                        zero.add(y);
                    }
                }
                case "Gemm" -> {
                    boolean noC = in.size() < 3 || in.get(2).isEmpty() || zero.contains(in.get(2)) || n.attrFloat("beta", 1f) == 0f;
                    if ((zero.contains(in.get(0)) || zero.contains(in.get(1))) && noC) {
                        zero.add(y);
                    }
                }
                case "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Cast", "Expand", "Gather", "Identity" -> {
                    if (zero.contains(in.get(0))) {
                        zero.add(y);
                    } else if (one.contains(in.get(0))) {
                        one.add(y);
                    }
                }
                case "Mul" -> {
                    if (zero.contains(in.get(0)) || zero.contains(in.get(1))) {
                        zero.add(y);
                    } else if (one.contains(in.get(1))) {
                        bypass(g, n, in.get(0));
                    } else if (one.contains(in.get(0))) {
                        bypass(g, n, in.get(1));
                    }
                }
                case "Add" -> {
                    if (zero.contains(in.get(1))) {
                        if (zero.contains(in.get(0))) {
                            zero.add(y);
                        } else {
                            bypass(g, n, in.get(0));
                        }
                    } else if (zero.contains(in.get(0))) {
                        bypass(g, n, in.get(1));
                    }
                }
                default -> {
                }
            }
        }
        g.removeDeadNodes();
        for (String n : adapterInputs) {
            if (g.isUsed(n)) {
                throw new Peft4jException(ErrorCode.GRAPH_STATE, "adapter input '" + n + "' is still read by "
                        + g.consumers(n).stream().map(Node::name).toList() + " after its branch was removed: this is not "
                        + "a side graph that peft4j made");
            }
        }
        g.removeUnusedInitializers();
        return adapterInputs.size();
    }

    /** The LoRA and IA3 tensors {@link #inject} makes inputs whose defaults switch the adapter off. */
    private static final List<String> SWITCHABLE_ROLES = List.of("lora_A.weight", "lora_B.weight", "lora_embedding_A",
            "lora_embedding_B", "lora_scaling", "ia3_l");

    /**
     * Whether graph input {@code n} is one of those: named by its PEFT key. A model exported with its
     * weights as inputs with defaults keeps those; {@code modules_to_save} inputs (their default
     * is the base weight) stay inputs too.
     */
    private static boolean isSwitchableInput(String n) {
        if (!n.startsWith(PeftKey.PREFIX)) {
            return false;
        }
        for (String r : SWITCHABLE_ROLES) {
            if (n.endsWith("." + r)) {
                return true;
            }
        }
        return false;
    }

    /** Readers of {@code n}'s output read {@code x} instead, and {@code n} goes (an Identity for a graph output). */
    private static void bypass(Graph g, Node n, String x) {
        String y = n.output(0);
        if (g.isGraphOutput(y)) {
            String name = n.name();
            g.detachProducer(y);   // n now writes a fresh name nothing reads
            g.remove(n);
            if (g.producer(x).isPresent() && !g.isUsed(x)) {
                g.renameProduced(x, y);   // the layer writes the output's name again, as in the base graph
            } else {
                g.build("Identity").name(name).in(x).outputs(y).add();
            }
            return;
        }
        g.replaceAllUses(y, x);
        g.remove(n);
    }

    private static boolean filledWith(Tensor t, double v) {
        if (!t.dtype().isFloatingPoint() || t.numel() == 0) {
            return false;
        }
        for (long i = 0; i < t.numel(); i++) {
            if (t.getDouble(i) != v) {
                return false;
            }
        }
        return true;
    }

    /** The layers a binding names are in this graph, as the nodes and initializers it was bound to. */
    private static void requireSameGraph(Model model, AdapterBinding binding) {
        Graph g = model.graph();
        List<TargetLayer> layers = new ArrayList<>();
        binding.modules().forEach(m -> layers.add(m.target()));
        binding.saved().forEach(s -> layers.add(s.target()));
        for (TargetLayer t : layers) {
            Node n;
            try {
                n = g.node(t.nodeName());
            } catch (Peft4jException e) {
                throw Peft4jException.invalid("the adapter was bound to another graph: node " + t.nodeName() + " (module "
                        + t.path() + ") is not in graph '" + g.name() + "'");
            }
            boolean weightOk = g.hasInitializer(t.weight()) && Arrays.equals(g.initializer(t.weight()).shape(), t.weightShape())
                    && n.inputs().contains(t.weight());
            if (!n.opType().equals(t.opType()) || !weightOk) {
                throw Peft4jException.invalid("the adapter was bound to another graph: node " + t.nodeName() + " no longer is "
                        + t.opType() + " over weight " + t.weight() + " " + Arrays.toString(t.weightShape())
                        + " (was the adapter injected already?)");
            }
        }
    }
}
