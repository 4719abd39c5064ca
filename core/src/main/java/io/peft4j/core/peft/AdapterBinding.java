package io.peft4j.core.peft;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.adapter.BaseFingerprint;
import io.peft4j.core.adapter.Peft4jBlock;
import io.peft4j.core.adapter.PeftKey;
import io.peft4j.core.modules.ModulePaths;
import io.peft4j.core.modules.TargetFinder;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;

/**
 * An adapter bundle mapped onto a graph: each module of the bundle found as a layer (by module
 * path, else by the peft4j block's module map), each tensor's role and shape checked against its
 * method, {@code modules_to_save} weights converted to the graph's layout. Binding either succeeds
 * whole or fails with one message that lists every problem (keys that map nowhere, shapes that do
 * not fit, unsupported layers, BatchNorm folded into a targeted Conv).
 *
 * <p>Used by the trainer ({@code --init-adapter}), the exporter and the runtime alike; the graph
 * itself is not changed (see {@link Peft} for inject and merge).
 */
public final class AdapterBinding {

    /** A module the method adapts: its layer and its tensors by role (PEFT layout). */
    public record Module(TargetLayer target, Map<String, Tensor> tensors) {
    }

    /**
     * A {@code modules_to_save} tensor: the graph initializer it replaces and its value in the
     * graph's layout and element type ({@code pytorch} is the bundle's tensor as saved).
     */
    public record Saved(String module, String key, TargetLayer target, String initializer, Tensor value, Tensor pytorch) {
    }

    private final AdapterBundle bundle;
    private final PeftMethod method;
    private final List<Module> modules;
    private final List<Saved> saved;

    private AdapterBinding(AdapterBundle bundle, PeftMethod method, List<Module> modules, List<Saved> saved) {
        this.bundle = bundle;
        this.method = method;
        this.modules = List.copyOf(modules);
        this.saved = List.copyOf(saved);
    }

    public AdapterBundle bundle() {
        return bundle;
    }

    public AdapterConfig config() {
        return bundle.config();
    }

    public PeftMethod method() {
        return method;
    }

    public List<Module> modules() {
        return modules;
    }

    public List<Saved> saved() {
        return saved;
    }

    // ---------------------------------------------------------------- binding

    /**
     * Problems found while binding. The exception's code is the gravest kind among them: keys that
     * map nowhere, then shapes that do not fit, then what is unsupported.
     */
    private static final class Problems {
        private static final List<ErrorCode> GRAVITY = List.of(ErrorCode.NOT_FOUND, ErrorCode.SHAPE_MISMATCH);
        final List<String> lines = new ArrayList<>();
        ErrorCode code;

        void add(ErrorCode c, String line) {
            if (code == null || rank(c) < rank(code)) {
                code = c;
            }
            lines.add(line);
        }

        private static int rank(ErrorCode c) {
            int i = GRAVITY.indexOf(c);
            return i < 0 ? GRAVITY.size() : i;
        }

        void throwIfAny(String what) {
            if (!lines.isEmpty()) {
                throw new Peft4jException(code, what + ": " + (lines.size() == 1 ? lines.get(0)
                        : lines.size() + " problems:\n  - " + String.join("\n  - ", lines)));
            }
        }
    }

    /** Binds {@code bundle} to {@code model}'s graph; see the class comment. */
    public static AdapterBinding bind(Model model, AdapterBundle bundle) {
        Graph g = model.graph();
        AdapterConfig c = bundle.config();
        PeftMethod method = PeftMethods.get(c.peftType());
        bundle.requireBase(model, "the base model '" + g.name() + "'");
        // an adapter that brings a new classification head: build it first, its tensors bind below
        Heads.specOf(c).ifPresent(spec -> Heads.ensure(model, spec));
        Map<String, TargetLayer> byPath = new LinkedHashMap<>();
        Map<String, TargetLayer> byNode = new LinkedHashMap<>();
        for (TargetLayer t : TargetFinder.find(g)) {
            byPath.put(t.path(), t);
            byNode.put(t.nodeName(), t);
        }
        Map<String, String> moduleMap = c.peft4j() == null ? Map.of() : c.peft4j().moduleMap();
        Problems problems = new Problems();
        if (!c.bias().equals("none")) {
            problems.add(ErrorCode.UNSUPPORTED, "bias = '" + c.bias() + "' (adapters that train the base biases) is not supported");
        }
        List<Module> modules = new ArrayList<>();
        List<Saved> saved = new ArrayList<>();
        for (Map.Entry<String, Map<String, Tensor>> e : bundle.byModule().entrySet()) {
            String module = e.getKey();
            Map<String, Tensor> roles = e.getValue();
            if (module.isEmpty()) {
                problems.add(ErrorCode.UNSUPPORTED, "'prompt_embeddings': prompt-learning adapters are not supported");
                continue;
            }
            TargetLayer t = byPath.get(module);
            if (t == null && moduleMap.containsKey(module)) {
                t = byNode.get(moduleMap.get(module));
            }
            if (t == null) {
                problems.add(ErrorCode.NOT_FOUND, keys(module, roles.keySet()) + (roles.size() == 1 ? " maps" : " map") + " nowhere: " + whyNoLayer(g, module, byPath));
                continue;
            }
            if (PeftMatching.isSaved(c, module) && Set.of("weight", "bias").containsAll(roles.keySet())) {
                bindSaved(g, module, t, roles, problems, saved);
                continue;
            }
            String layer = "module " + module + " (" + t.opType() + " " + Arrays.toString(t.weightShape()) + ")";
            Optional<String> why = method.unsupported(t, c);
            if (why.isPresent()) {
                problems.add(ErrorCode.UNSUPPORTED, layer + " cannot take " + c.peftType() + ": " + why.get());
                continue;
            }
            Map<String, long[]> expected = method.shapes(t, c);
            boolean fits = true;
            for (Map.Entry<String, Tensor> r : roles.entrySet()) {
                long[] want = expected.get(r.getKey());
                if (want == null) {
                    problems.add(ErrorCode.NOT_FOUND, "key " + PeftKey.of(module, r.getKey()) + " maps nowhere: " + c.peftType()
                            + " on " + layer + " has " + expected.keySet());
                    fits = false;
                } else if (!Arrays.equals(want, r.getValue().shape())) {
                    problems.add(ErrorCode.SHAPE_MISMATCH, "key " + PeftKey.of(module, r.getKey()) + " has shape "
                            + Arrays.toString(r.getValue().shape()) + ", expected " + Arrays.toString(want) + " for " + layer
                            + " with in = " + t.inFeatures() + ", out = " + t.outFeatures() + rankNote(c, module));
                    fits = false;
                }
            }
            for (String role : expected.keySet()) {
                if (!roles.containsKey(role)) {
                    problems.add(ErrorCode.NOT_FOUND, layer + " has no tensor " + PeftKey.of(module, role));
                    fits = false;
                }
            }
            if (c.peft4j() == null && t.kind() == TargetLayer.Kind.CONV && batchNormFolded(g, t)) {
                problems.add(ErrorCode.UNSUPPORTED, layer + ": its weight '" + t.weight() + "' has BatchNorm folded into it "
                        + "(PyTorch's exporter folds BatchNorm by default), while this adapter comes from PyTorch and was "
                        + "trained on the unfolded Conv + BatchNorm; it does not apply to folded weights. Export the model "
                        + "with do_constant_folding=False (or training=TrainingMode.PRESERVE) to keep BatchNorm");
                fits = false;
            }
            if (fits) {
                modules.add(new Module(t, roles));
            }
        }
        problems.throwIfAny("adapter (" + c.peftType() + ") does not fit graph '" + g.name() + "'");
        return new AdapterBinding(bundle, method, modules, saved);
    }

    private static String keys(String module, Set<String> roles) {
        List<String> k = roles.stream().map(r -> PeftKey.of(module, r)).sorted().toList();
        return k.size() == 1 ? "key " + k.get(0) : "keys " + k;
    }

    private static String rankNote(AdapterConfig c, String module) {
        return c.r() > 0 ? " and r = " + PeftMatching.rank(c, module) : "";
    }

    /** Why no adaptable layer has this path: a node of that scope that is no layer, or no such module. */
    private static String whyNoLayer(Graph g, String module, Map<String, TargetLayer> byPath) {
        for (Node n : g.nodes()) {
            if (module.equals(ModulePaths.fromNodeName(n.name())) && !n.is("Add") && !n.is("Constant")) {
                return "module " + module + " exists as node " + n.name() + " (" + n.opType() + "), which is not a layer "
                        + "peft4j can adapt (a MatMul, Gemm, Conv or Gather whose weight is a constant initializer, 2-D "
                        + "for MatMul and Gemm)";
            }
        }
        List<String> near = byPath.keySet().stream()
                .filter(p -> p.endsWith(module.substring(module.lastIndexOf('.') + 1))).limit(5).toList();
        return "the graph has no layer at module path '" + module + "'" + (near.isEmpty() ? "" : " (similar: " + near + ")");
    }

    /**
     * Per-Conv evidence of folding: the weight carries the exporter's name ({@code onnx::Conv_…})
     * and no BatchNormalization reads the Conv's output.
     */
    static boolean batchNormFolded(Graph g, TargetLayer t) {
        if (!t.weight().startsWith("onnx::Conv_")) {
            return false;
        }
        for (Node c : g.consumers(g.node(t.nodeName()).output(0))) {
            if (c.is("BatchNormalization")) {
                return false;
            }
        }
        return true;
    }

    private static void bindSaved(Graph g, String module, TargetLayer t, Map<String, Tensor> roles, Problems problems,
                                  List<Saved> saved) {
        for (Map.Entry<String, Tensor> r : roles.entrySet()) {
            String key = PeftKey.of(module, r.getKey());
            Tensor v = r.getValue();
            if (r.getKey().equals("weight")) {
                boolean transposed = t.layout() == TargetLayer.Layout.IN_OUT;
                long[] pt = transposed ? new long[] {t.weightShape()[1], t.weightShape()[0]} : t.weightShape();
                if (!Arrays.equals(pt, v.shape())) {
                    problems.add(ErrorCode.SHAPE_MISMATCH, "key " + key + " has shape " + Arrays.toString(v.shape())
                            + ", expected " + Arrays.toString(pt) + " (the PyTorch layout of " + t.opType() + " weight "
                            + t.weight() + ")");
                    continue;
                }
                Tensor graphLayout = transposed ? transpose2d(v) : v;
                saved.add(new Saved(module, key, t, t.weight(), graphLayout.to(t.dtype()), v));
            } else {
                Optional<String> bias = Rewrites.bias(g, t);
                if (bias.isEmpty()) {
                    problems.add(ErrorCode.NOT_FOUND, "key " + key + " maps nowhere: " + t.opType() + " " + t.nodeName()
                            + " has no constant bias");
                    continue;
                }
                Tensor b = g.initializer(bias.get());
                if (b.numel() != v.numel()) {
                    problems.add(ErrorCode.SHAPE_MISMATCH, "key " + key + " has shape " + Arrays.toString(v.shape())
                            + ", expected " + Arrays.toString(b.shape()) + " (bias " + bias.get() + ")");
                    continue;
                }
                saved.add(new Saved(module, key, t, bias.get(), v.to(b.dtype()).reshape(b.shape()), v));
            }
        }
    }

    /** The transpose of a 2-D tensor, in its element type (PyTorch's Linear layout ↔ a MatMul's [in, out]). */
    public static Tensor transpose2d(Tensor t) {
        long rows = t.dim(0);
        long cols = t.dim(1);
        float[] v = t.toFloatArray();
        float[] o = new float[v.length];
        for (long i = 0; i < rows; i++) {
            for (long j = 0; j < cols; j++) {
                o[Math.toIntExact(j * rows + i)] = v[Math.toIntExact(i * cols + j)];
            }
        }
        return Tensor.ofFloats(new long[] {cols, rows}, o).to(t.dtype());
    }

    // ---------------------------------------------------------------- fresh adapters

    /**
     * The layers {@code config.target_modules} selects. Refused when it selects none (naming the
     * module paths the graph has) or when a selected layer cannot take the method (naming it and
     * why): nothing is skipped silently.
     */
    public static List<TargetLayer> select(Model model, AdapterConfig config) {
        PeftMethod method = PeftMethods.get(config.peftType());
        List<TargetLayer> all = TargetFinder.find(model.graph());
        List<TargetLayer> out = new ArrayList<>();
        Problems problems = new Problems();
        for (TargetLayer t : all) {
            if (!PeftMatching.isTarget(config, t.path()) || PeftMatching.isSaved(config, t.path())) {
                continue;
            }
            Optional<String> why = method.unsupported(t, config);
            if (why.isPresent()) {
                problems.add(ErrorCode.UNSUPPORTED, "module " + t.path() + " (" + t.opType() + " "
                        + Arrays.toString(t.weightShape()) + ") is selected by target_modules but cannot take "
                        + config.peftType() + ": " + why.get());
            } else {
                out.add(t);
            }
        }
        String targets = config.targetRegex() != null ? "'" + config.targetRegex() + "'" : config.targetModules().toString();
        if (out.isEmpty() && problems.lines.isEmpty()) {
            problems.add(ErrorCode.NOT_FOUND, "target_modules " + targets + " selects no layer; the graph's layers are "
                    + all.stream().map(TargetLayer::path).limit(30).toList() + (all.size() > 30 ? " …" : ""));
        }
        problems.throwIfAny(config.peftType() + " with target_modules " + targets);
        return out;
    }

    /**
     * A fresh adapter for {@code model}, initialised as PEFT does, with the base model's
     * fingerprint and the module-to-node map in its peft4j block.
     */
    public static AdapterBundle init(Model model, AdapterConfig config, long seed) {
        PeftMethod method = PeftMethods.get(config.peftType());
        Random rng = new Random(seed);
        Map<String, Tensor> tensors = new TreeMap<>();
        Map<String, String> moduleMap = new TreeMap<>();
        for (TargetLayer t : select(model, config)) {
            method.init(t, config, rng).forEach((role, v) -> tensors.put(PeftKey.of(t.path(), role), v));
            moduleMap.put(t.path(), t.nodeName());
        }
        Peft4jBlock had = config.peft4j();
        Peft4jBlock block = new Peft4jBlock(Heads.baseFingerprint(model), moduleMap, had == null ? Map.of() : had.other());
        return new AdapterBundle(config.withPeft4j(block), tensors);
    }
}
