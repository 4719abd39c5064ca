package io.peft4j.exporter;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.adapter.BaseFingerprint;
import io.peft4j.core.adapter.Peft4jBlock;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.peft.InjectMode;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.peft.PeftMatching;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.pkg.ModelPackage;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.AdapterSelection;
import io.peft4j.devices.ort.OnnxAdapterFile;
import io.peft4j.devices.ort.OrtBackend;
import io.peft4j.devices.ort.OrtTensors;
import io.peft4j.devices.ort.SideAdapters;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Consumer;
import java.util.stream.Collectors;

/**
 * Writes a model package (DESIGN.md: {@code model.onnx}, {@code manifest.json},
 * {@code adapters/<name>/}) from a base model and adapters, in one of four modes:
 * <ul>
 *   <li>{@code merged}: exactly one adapter folded into the weights ({@link Peft#merge}); the graph
 *       keeps its nodes and names.</li>
 *   <li>{@code side}: the adapter tensors of every given adapter are graph inputs whose
 *       initializer defaults switch the adapter off (LoRA: zero factors of the max rank and a zero
 *       scale; IA3: ones), so a run without adapter gives the base model. The graph covers the
 *       union of the adapters' modules; each adapter is written as a PEFT bundle and as
 *       {@code adapters/<name>.onnx_adapter}, whose parameters are those inputs (LoRA factors
 *       zero-padded to the max rank) and which leaves the modules it does not adapt at their
 *       defaults. The adapters must share one PEFT method (refused otherwise: use {@code multi}).</li>
 *   <li>{@code multi}: K adapters stacked ({@link Peft#injectStacked}, zero-padded to the max rank)
 *       behind the int64 input {@code adapter_index [batch]}; adapter k has index k, 0 is the base.</li>
 *   <li>{@code base}: the base model alone.</li>
 * </ul>
 * Every adapter is bound first (every key must map; shapes, fingerprint and folded BatchNorm are
 * checked) and the package is staged in a hidden directory beside {@code out}, validated in ONNX
 * Runtime from the staged files, and moved into place only when complete and within tolerance:
 * a failed export leaves {@code out} as it was.
 */
public final class Exporter {

    /** Weights above this many bytes go to an external data file beside {@code model.onnx}. */
    static final long EXTERNAL_DATA_BYTES = 1L << 30;
    static final String MODEL_FILE = "model.onnx";

    private Exporter() {
    }

    /** Reads the base model file and exports; see {@link #export(Model, List, ExportOptions, Path)}. */
    public static ExportReport export(Path baseFile, List<NamedAdapter> adapters, ExportOptions o, Path out) {
        o.progress().accept("reading base model " + baseFile);
        Model base = OnnxIO.read(baseFile);
        return export(base, adapters, o, out);
    }

    /** Exports {@code base} with {@code adapters} to the package directory {@code out}. */
    public static ExportReport export(Model base, List<NamedAdapter> adapters, ExportOptions o, Path out) {
        long t0 = System.nanoTime();
        Consumer<String> progress = o.progress();
        Manifest.Mode mode = o.mode();
        requireAdapterCount(mode, adapters);
        Set<String> seen = new HashSet<>();
        for (NamedAdapter a : adapters) {
            if (!seen.add(a.name())) {
                throw Peft4jException.invalid("adapter name '" + a.name() + "' is given twice; name them apart with NAME=DIR");
            }
        }
        if (mode == Manifest.Mode.side || mode == Manifest.Mode.multi) {
            for (NamedAdapter a : adapters) {
                if (io.peft4j.core.peft.Heads.specOf(a.bundle().config()).isPresent()) {
                    throw Peft4jException.unsupported("adapter '" + a.name() + "' brings its own classification head ("
                            + io.peft4j.core.peft.Heads.specOf(a.bundle().config()).get().classes() + " classes); such "
                            + "adapters export --mode merged (a " + mode + " package switches adapters over one shared head)");
                }
            }
        }
        progress.accept("fingerprinting the base model");
        String fingerprint = BaseFingerprint.of(base);
        List<AdapterBinding> bindings = new ArrayList<>();
        for (NamedAdapter a : adapters) {
            progress.accept("binding adapter '" + a.name() + "' (" + a.bundle().config().peftType() + ", "
                    + a.bundle().tensors().size() + " tensors)");
            bindings.add(bind(base, a));
        }
        int maxRank = maxRank(mode, adapters, bindings, o.maxRank());
        List<ValueInfoProto> callerInputs = Probe.callerInputs(base);
        checkLabelsAndPreprocessing(base, callerInputs, o, adapters);
        Map<String, Tensor> probe = o.validate() ? Probe.of(base, o.probe(), o.seed()) : Map.of();

        try (ModelPackage.Writer w = ModelPackage.writer(out)) {
            Path stage = w.stage();
            Model model = copy(base);
            Map<String, Map<String, Tensor>> onnxAdapters = new LinkedHashMap<>();
            progress.accept("building the " + mode + " graph");
            switch (mode) {
                case base -> { }
                case merged -> Peft.merge(model, bindings.get(0));
                case side -> onnxAdapters = buildSide(base, model, adapters, bindings, maxRank, progress);
                case multi -> Peft.injectStacked(model, bindings, maxRank);
                default -> throw new IllegalStateException(mode.toString());
            }
            if (o.fp16()) {
                int n = Fp16.storeWeightsAsFp16(model);
                progress.accept("stored " + n + " weights as float16");
            }
            model.setProducer("peft4j", version(o));

            progress.accept("writing " + MODEL_FILE);
            long weightBytes = model.graph().initializers().values().stream().mapToLong(Tensor::byteSize).sum();
            OnnxIO.write(model, stage.resolve(MODEL_FILE), weightBytes > EXTERNAL_DATA_BYTES
                    ? OnnxIO.WriteOptions.allExternal() : OnnxIO.WriteOptions.inline());
            List<Manifest.Adapter> entries = new ArrayList<>();
            for (int k = 0; k < adapters.size(); k++) {
                NamedAdapter a = adapters.get(k);
                String dir = "adapters/" + a.name();
                progress.accept("writing adapter '" + a.name() + "'");
                withBase(a.bundle(), fingerprint, bindings.get(k)).write(stage.resolve(dir));
                String onnxAdapter = null;
                if (mode == Manifest.Mode.side) {
                    onnxAdapter = dir + OnnxAdapterFile.EXTENSION;
                    OnnxAdapterFile.write(stage.resolve(onnxAdapter), onnxAdapters.get(a.name()), 1, 1);
                }
                entries.add(new Manifest.Adapter(a.name(), mode == Manifest.Mode.multi ? k + 1 : 0, dir, onnxAdapter,
                        a.bundle().config().peftType(), rank(bindings.get(k))));
            }
            List<Manifest.Value> inputs = callerInputs.stream().map(Exporter::value).toList();
            List<Manifest.Value> outputs = model.graph().outputs().stream().map(Exporter::value).toList();
            String merged = mode == Manifest.Mode.merged ? adapters.get(0).name() : null;
            int manifestRank = mode == Manifest.Mode.side || mode == Manifest.Mode.multi ? maxRank : 0;
            Map<String, Object> prov = provenance(o, adapters);
            Manifest draft = new Manifest(Manifest.FORMAT_VERSION, mode, MODEL_FILE, fingerprint, o.fp16() ? "fp16" : "fp32",
                    inputs, outputs, manifestRank, entries, merged, o.labels(), o.preprocessing(), Manifest.provenance(prov), null);

            List<ExportReport.Check> checks = List.of();
            if (o.validate()) {
                writeManifest(stage, draft);
                checks = validate(stage, base, adapters, bindings, probe, o.effectiveTolerance(), progress);
                List<ExportReport.Check> bad = checks.stream().filter(c -> !c.ok()).toList();
                if (!bad.isEmpty()) {
                    throw new Peft4jException(ErrorCode.INVALID_ARGUMENT, "validation failed, nothing was written: "
                            + bad.stream().map(Exporter::describe).collect(Collectors.joining("; "))
                            + " (tolerance " + o.effectiveTolerance() + " relative; see --tolerance)");
                }
                prov.put("validation", checks.stream().map(ExportReport.Check::toMap).toList());
            }
            Manifest manifest = new Manifest(draft.formatVersion(), mode, MODEL_FILE, fingerprint, draft.precision(), inputs,
                    outputs, manifestRank, entries, merged, o.labels(), o.preprocessing(), Manifest.provenance(prov), null);
            long modelBytes = size(stage.resolve(MODEL_FILE)) + size(stage.resolve(MODEL_FILE + ".data"));
            progress.accept("moving the package into place");
            ModelPackage p = w.commit(manifest);
            return new ExportReport(p.dir(), p.manifest(), checks, modelBytes, (System.nanoTime() - t0) / 1e9);
        }
    }

    static String describe(ExportReport.Check c) {
        return String.format(java.util.Locale.ROOT, "%s vs %s: max relative difference %.3g (absolute %.3g)",
                c.name(), c.reference(), c.maxRel(), c.maxAbs());
    }

    // ---------------------------------------------------------------- checks before building

    private static void requireAdapterCount(Manifest.Mode mode, List<NamedAdapter> adapters) {
        switch (mode) {
            case base -> {
                if (!adapters.isEmpty()) {
                    throw Peft4jException.invalid("a base package carries no adapters; use --mode merged, side or multi");
                }
            }
            case merged -> {
                if (adapters.size() != 1) {
                    throw Peft4jException.invalid("--mode merged folds exactly one adapter into the weights, got "
                            + adapters.size() + (adapters.isEmpty() ? "" : " (" + adapters.stream().map(NamedAdapter::name)
                            .collect(Collectors.joining(", ")) + ")") + "; export several as --mode side or --mode multi");
                }
            }
            default -> {
                if (adapters.isEmpty()) {
                    throw Peft4jException.invalid("--mode " + mode + " needs at least one --adapter");
                }
            }
        }
    }

    private static AdapterBinding bind(Model base, NamedAdapter a) {
        try {
            return AdapterBinding.bind(base, a.bundle());
        } catch (Peft4jException e) {
            throw new Peft4jException(e.code(), "adapter '" + a.name() + "': " + e.getMessage(), e);
        }
    }

    /** An adapter's LoRA rank: its widest module (0 for methods without a rank). */
    static int rank(AdapterBinding b) {
        int r = 0;
        for (AdapterBinding.Module m : b.modules()) {
            for (Map.Entry<String, Tensor> e : m.tensors().entrySet()) {
                if (SideAdapters.padAxis(e.getKey()) == 0) {
                    r = Math.max(r, Math.toIntExact(e.getValue().dim(0)));
                }
            }
        }
        return r;
    }

    private static int maxRank(Manifest.Mode mode, List<NamedAdapter> adapters, List<AdapterBinding> bindings, int given) {
        int widest = 0;
        for (int k = 0; k < adapters.size(); k++) {
            int r = rank(bindings.get(k));
            if (given > 0 && r > given && (mode == Manifest.Mode.side || mode == Manifest.Mode.multi)) {
                throw Peft4jException.invalid("adapter '" + adapters.get(k).name() + "' has rank " + r + ", above --max-rank "
                        + given + "; raise --max-rank or export it on its own");
            }
            widest = Math.max(widest, r);
        }
        return given > 0 ? given : widest;
    }

    private static void checkLabelsAndPreprocessing(Model base, List<ValueInfoProto> inputs, ExportOptions o,
                                                    List<NamedAdapter> adapters) {
        Manifest.Preprocessing p = o.preprocessing();
        if (p != null) {
            ValueInfoProto in = inputs.stream().filter(v -> v.getName().equals(p.input())).findFirst()
                    .orElseThrow(() -> Peft4jException.notFound("preprocessing names input '" + p.input() + "', which the model "
                            + "does not have; its inputs are " + inputs.stream().map(ValueInfoProto::getName).toList()));
            List<Object> dims = ValueInfos.dims(in).orElse(null);
            if (dims != null && dims.size() == 4) {
                long[] want = {p.channels(), p.height(), p.width()};
                for (int i = 0; i < 3; i++) {
                    if (dims.get(i + 1) instanceof Long l && l != want[i]) {
                        throw Peft4jException.shape("preprocessing makes [" + p.channels() + "," + p.height() + "," + p.width()
                                + "] images, but input '" + p.input() + "' takes " + ValueInfos.describe(in));
                    }
                }
            } else if (dims != null) {
                throw Peft4jException.shape("preprocessing makes NCHW images, but input '" + p.input() + "' is "
                        + ValueInfos.describe(in));
            }
        }
        // a merged adapter that brings its own head: the labels name the head's classes (its output is added by the merge)
        Optional<io.peft4j.core.peft.Heads.Spec> head = o.mode() == Manifest.Mode.merged && adapters.size() == 1
                ? io.peft4j.core.peft.Heads.specOf(adapters.get(0).bundle().config()) : Optional.empty();
        if (!o.labels().isEmpty() && head.isPresent()) {
            if (head.get().classes() != o.labels().size()) {
                throw Peft4jException.shape(o.labels().size() + " labels given, but adapter '" + adapters.get(0).name()
                        + "' brings a head of " + head.get().classes() + " classes");
            }
        } else if (!o.labels().isEmpty()) {
            ValueInfoProto out = base.graph().outputs().get(0);
            List<Object> dims = ValueInfos.dims(out).orElse(List.of());
            if (!dims.isEmpty() && dims.get(dims.size() - 1) instanceof Long l && l != o.labels().size()) {
                throw Peft4jException.shape(o.labels().size() + " labels given, but output '" + out.getName() + "' has " + l
                        + " classes");
            }
        }
    }

    // ---------------------------------------------------------------- side graphs

    /**
     * Injects the union of the adapters' modules as inputs with defaults into {@code model};
     * returns each adapter's {@code .onnx_adapter} parameters.
     */
    private static Map<String, Map<String, Tensor>> buildSide(Model base, Model model, List<NamedAdapter> adapters,
                                                              List<AdapterBinding> bindings, int maxRank,
                                                              Consumer<String> progress) {
        Set<String> methods = new LinkedHashSet<>();
        bindings.forEach(b -> methods.add(b.config().peftType()));
        if (methods.size() > 1) {
            throw Peft4jException.unsupported("a side package serves adapters of one PEFT method, got " + adapters.stream()
                    .map(a -> a.name() + " (" + a.bundle().config().peftType() + ")").collect(Collectors.joining(", "))
                    + "; export them as --mode multi, or as one side package per method");
        }
        AdapterBundle union = union(bindings, maxRank);
        AdapterBinding unionBinding = AdapterBinding.bind(model, union);
        Peft.Injection injection = Peft.inject(model, unionBinding, InjectMode.INPUTS_WITH_DEFAULTS);
        Map<String, Tensor> defaults = injection.offFeeds();
        Map<String, Map<String, Tensor>> files = new LinkedHashMap<>();
        for (int k = 0; k < adapters.size(); k++) {
            progress.accept("side parameters of adapter '" + adapters.get(k).name() + "'");
            Model scratch = copy(base);
            Peft.Injection own = Peft.inject(scratch, AdapterBinding.bind(scratch, adapters.get(k).bundle()), InjectMode.INPUTS);
            Map<String, Tensor> params = new LinkedHashMap<>();
            for (Map.Entry<String, Tensor> e : own.feeds().entrySet()) {
                Tensor def = defaults.get(e.getKey());
                if (def == null) {
                    throw new IllegalStateException("side graph has no input " + e.getKey());
                }
                int axis = SideAdapters.padAxis(e.getKey());
                Tensor v = axis >= 0 ? SideAdapters.padRank(e.getValue(), axis, maxRank) : e.getValue();
                if (!java.util.Arrays.equals(v.shape(), def.shape()) || v.dtype() != def.dtype()) {
                    throw new IllegalStateException("side parameter " + e.getKey() + " " + v + " does not fit its input " + def);
                }
                params.put(e.getKey(), v);
            }
            files.put(adapters.get(k).name(), params);
        }
        return files;
    }

    /**
     * One bundle that adapts every module any adapter adapts (tensors of the first adapter that
     * has the module, LoRA factors padded to {@code maxRank}): what the side graph's inputs and
     * their off defaults are made from. Its values are never served.
     */
    private static AdapterBundle union(List<AdapterBinding> bindings, int maxRank) {
        AdapterConfig first = bindings.get(0).config();
        boolean lora = first.peftType().equals("LORA");
        Map<String, Tensor> tensors = new TreeMap<>();
        Map<String, String> moduleMap = new TreeMap<>();
        Set<String> targets = new LinkedHashSet<>();
        Set<String> saved = new LinkedHashSet<>();
        Map<String, Boolean> feedforward = new LinkedHashMap<>();
        for (AdapterBinding b : bindings) {
            for (AdapterBinding.Module m : b.modules()) {
                String path = m.target().path();
                boolean ff = PeftMatching.isFeedforward(b.config(), path);
                Boolean had = feedforward.putIfAbsent(path, ff);
                if (had != null && had != ff) {
                    throw Peft4jException.unsupported("module " + path + " is a feed-forward module (IA3 scales its input) in "
                            + "one adapter and not in another; one side graph cannot serve both: export them as --mode multi");
                }
                targets.add(path);
                moduleMap.put(path, m.target().nodeName());
                for (Map.Entry<String, Tensor> e : m.tensors().entrySet()) {
                    int axis = SideAdapters.padAxis(e.getKey());
                    tensors.putIfAbsent(io.peft4j.core.adapter.PeftKey.of(path, e.getKey()),
                            lora && axis >= 0 ? SideAdapters.padRank(e.getValue(), axis, maxRank) : e.getValue());
                }
            }
            for (AdapterBinding.Saved s : b.saved()) {
                saved.add(s.module());
                moduleMap.put(s.module(), s.target().nodeName());
                tensors.putIfAbsent(s.key(), s.pytorch());
            }
        }
        List<String> ffModules = feedforward.entrySet().stream().filter(Map.Entry::getValue).map(Map.Entry::getKey).toList();
        AdapterConfig c = new AdapterConfig(first.peftType(), lora ? maxRank : first.r(), first.loraAlpha(),
                new ArrayList<>(targets), null, 0.0, "none", false, false, false, new ArrayList<>(saved), Map.of(), Map.of(),
                ffModules, new Peft4jBlock(null, moduleMap, Map.of()), Map.of());
        for (Map.Entry<String, Boolean> e : feedforward.entrySet()) {
            if (PeftMatching.isFeedforward(c, e.getKey()) != e.getValue()) {
                throw Peft4jException.unsupported("module " + e.getKey() + " is not a feed-forward module, but its path ends "
                        + "like one that is; one side graph cannot serve these adapters: export them as --mode multi");
            }
        }
        return new AdapterBundle(c, tensors);
    }

    // ---------------------------------------------------------------- writing

    /**
     * The bundle as the package stores it: the same PEFT keys, shapes and config, with the base
     * model's fingerprint and module map added to the peft4j block when it had none (an adapter
     * imported from Hugging Face PEFT), so that the package's bundles are bound to their base.
     */
    private static AdapterBundle withBase(AdapterBundle b, String fingerprint, AdapterBinding binding) {
        Peft4jBlock had = b.config().peft4j();
        if (had != null && had.baseFingerprint() != null) {
            return b;
        }
        Map<String, String> moduleMap = new TreeMap<>(had == null ? Map.of() : had.moduleMap());
        binding.modules().forEach(m -> moduleMap.putIfAbsent(m.target().path(), m.target().nodeName()));
        binding.saved().forEach(s -> moduleMap.putIfAbsent(s.module(), s.target().nodeName()));
        return b.withConfig(b.config().withPeft4j(new Peft4jBlock(fingerprint, moduleMap, had == null ? Map.of() : had.other())));
    }

    private static void writeManifest(Path stage, Manifest m) {
        try {
            Files.writeString(stage.resolve(ModelPackage.MANIFEST), m.toJson(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot write " + stage.resolve(ModelPackage.MANIFEST) + ": " + e.getMessage(), e);
        }
    }

    private static Manifest.Value value(ValueInfoProto v) {
        String type = ValueInfos.elementType(v).map(Enum::name).orElse("UNDEFINED");
        List<Object> shape = ValueInfos.dims(v).map(d -> d.stream().map(x -> x == null ? (Object) "?" : x).toList()).orElse(null);
        return new Manifest.Value(v.getName(), type, shape);
    }

    private static Map<String, Object> provenance(ExportOptions o, List<NamedAdapter> adapters) {
        Map<String, Object> p = new LinkedHashMap<>();
        p.put("toolkit", "peft4j " + version(o));
        p.put("created", Instant.now().toString());
        p.put("exporter", Map.of("mode", o.mode().name(), "fp16", o.fp16(), "max_rank", o.maxRank(), "probe_seed", o.seed()));
        Map<String, String> ids = new LinkedHashMap<>();
        adapters.forEach(a -> ids.put(a.name(), Peft.adapterId(a.bundle())));
        p.put("adapters", ids);
        p.put("onnxruntime", OrtEnvironment.getEnvironment().getVersion());
        p.put("java", System.getProperty("java.version"));
        p.put("os", System.getProperty("os.name") + " " + System.getProperty("os.arch"));
        p.putAll(o.provenance());
        return p;
    }

    private static String version(ExportOptions o) {
        Object v = o.provenance().get("version");
        if (v != null) {
            return v.toString();
        }
        String impl = Exporter.class.getPackage().getImplementationVersion();
        return impl == null ? "dev" : impl;
    }

    private static long size(Path p) {
        try {
            return Files.exists(p) ? Files.size(p) : 0;
        } catch (IOException e) {
            return 0;
        }
    }

    static Model copy(Model m) {
        return OnnxIO.read(OnnxIO.toBytes(m), "copy of " + m.graph().name());
    }

    // ---------------------------------------------------------------- validation

    /**
     * Runs the staged package (through {@link OrtBackend}, as a caller would) and the in-memory
     * references on the probe: the base model, and each adapter applied unmerged (its tensors as
     * initializers beside the base weights, computed as PEFT does).
     */
    private static List<ExportReport.Check> validate(Path stage, Model base, List<NamedAdapter> adapters,
                                                     List<AdapterBinding> bindings, Map<String, Tensor> probe,
                                                     double tol, Consumer<String> progress) {
        progress.accept("validating in ONNX Runtime on a probe batch " + probe.entrySet().stream()
                .map(e -> e.getKey() + java.util.Arrays.toString(e.getValue().shape())).collect(Collectors.joining(", ")));
        List<ExportReport.Check> checks = new ArrayList<>();
        Map<String, Tensor> yBase = runInMemory(base, probe);
        try (OrtBackend p = OrtBackend.open(stage)) {
            Manifest m = p.info().manifest().orElseThrow();
            String mode = m.mode().name();
            if (m.mode() != Manifest.Mode.merged) {
                String name = switch (m.mode()) {
                    case side -> "side, no adapter";
                    case multi -> "multi, adapter_index 0";
                    default -> "base package";
                };
                checks.add(compare(name, "base model", null, run(p, probe, null), yBase, tol));
            }
            for (int k = 0; k < adapters.size(); k++) {
                String a = adapters.get(k).name();
                progress.accept("validating adapter '" + a + "'");
                Model ref = copy(base);
                Peft.inject(ref, AdapterBinding.bind(ref, adapters.get(k).bundle()), InjectMode.INITIALIZERS);
                Map<String, Tensor> yRef = runInMemory(ref, probe);
                String name = m.mode() == Manifest.Mode.multi ? "multi, adapter_index " + m.adapter(a).index() : mode;
                checks.add(compare(name + ", adapter '" + a + "'", "adapter '" + a + "' unmerged", a, run(p, probe, a), yRef, tol));
            }
        }
        return checks;
    }

    private static Map<String, Tensor> run(OrtBackend p, Map<String, Tensor> inputs, String adapter) {
        return p.run(inputs, AdapterSelection.of(adapter), Set.of()).outputs();
    }

    private static ExportReport.Check compare(String name, String reference, String adapter, Map<String, Tensor> got,
                                              Map<String, Tensor> want, double tol) {
        double maxAbs = 0;
        double maxRel = 0;
        for (Map.Entry<String, Tensor> e : want.entrySet()) {
            Tensor w = e.getValue();
            Tensor g = got.get(e.getKey());
            if (g == null || !java.util.Arrays.equals(g.shape(), w.shape())) {
                throw new IllegalStateException(name + ": output " + e.getKey() + " is " + g + ", expected like " + w);
            }
            if (!w.dtype().isFloatingPoint()) {
                continue;
            }
            double abs = 0;
            double scale = 0;
            for (long i = 0; i < w.numel(); i++) {
                double d = Math.abs(g.getDouble(i) - w.getDouble(i));
                abs = Double.isNaN(d) ? Double.POSITIVE_INFINITY : Math.max(abs, d);
                scale = Math.max(scale, Math.abs(w.getDouble(i)));
            }
            maxAbs = Math.max(maxAbs, abs);
            maxRel = Math.max(maxRel, abs / Math.max(scale, 1e-12));
        }
        return new ExportReport.Check(name, reference, adapter, maxAbs, maxRel, tol);
    }

    /** Runs an in-memory model (every initializer inline) on the CPU. */
    static Map<String, Tensor> runInMemory(Model model, Map<String, Tensor> inputs) {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
            // overridable initializers (the side graph's adapter inputs) draw a warning per input
            o.setSessionLogLevel(ai.onnxruntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR);
            o.setIntraOpNumThreads(Math.min(4, Runtime.getRuntime().availableProcessors()));
            try (OrtSession s = env.createSession(OnnxIO.toBytes(model), o)) {
                for (Map.Entry<String, Tensor> e : inputs.entrySet()) {
                    feeds.put(e.getKey(), OrtTensors.toOrt(env, e.getValue()));
                }
                Map<String, Tensor> out = new LinkedHashMap<>();
                try (OrtSession.Result r = s.run(feeds)) {
                    for (Map.Entry<String, OnnxValue> e : r) {
                        out.put(e.getKey(), OrtTensors.fromOrt((OnnxTensor) e.getValue()));
                    }
                }
                return out;
            }
        } catch (OrtException e) {
            throw new Peft4jException(ErrorCode.INVALID_ARGUMENT, "ONNX Runtime cannot run the reference model on the probe: "
                    + e.getMessage(), e);
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }

}
