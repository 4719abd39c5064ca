package io.peft4j.devices.ort;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoggingLevel;
import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.pkg.ModelPackage;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.AdapterInfo;
import io.peft4j.devices.AdapterSelection;
import io.peft4j.devices.AdapterTable;
import io.peft4j.devices.InferenceBackend;
import io.peft4j.devices.InferenceResult;
import io.peft4j.devices.Inputs;
import io.peft4j.devices.ModelInfo;
import io.peft4j.devices.RefCount;
import io.peft4j.devices.Runs;
import io.peft4j.devices.TensorSpec;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The ONNX Runtime backend on the CPU: one {@link OrtSession} per model, shared by all threads
 * (ONNX Runtime's {@code run} is thread-safe), serving adapters the way the package's mode does:
 * <ul>
 *   <li>{@code side}: no adapter gives the base model (the adapter inputs' defaults); an adapter is
 *       an {@link OrtLoraAdapter} activated per run ({@code RunOptions.addActiveLoraAdapter}), the
 *       only way ONNX Runtime's Java binding lets a run override inputs that have initializer
 *       defaults. Package adapters load from their {@code .onnx_adapter} files when the backend
 *       opens; adapters registered later are converted from their PEFT bundle
 *       ({@link SideAdapters}) and loaded from memory. A per-row selection runs one pass per
 *       distinct adapter and puts the rows back in order;</li>
 *   <li>{@code multi}: {@code adapter_index} is filled per row (0 = base); adapters are fixed at
 *       export;</li>
 *   <li>{@code merged}: the merged adapter (or none) runs the merged weights;</li>
 *   <li>{@code base} and bare models take no adapter.</li>
 * </ul>
 * Every adapter and the session itself are reference-counted: a run holds what it uses, so that
 * replacing or removing an adapter, or closing the backend, frees native memory only after the
 * runs in flight are done. Inputs are checked against the model (names, element types, fixed
 * dimensions, one batch size) before anything runs.
 */
public final class OrtBackend implements InferenceBackend {

    /** Backend name reported to callers on the CPU ({@code onnxruntime-cuda} / {@code onnxruntime-tensorrt} on a GPU provider). */
    public static final String NAME = "onnxruntime-cpu";

    /**
     * Session settings.
     *
     * @param intraOpThreads threads one run may use (ONNX Runtime's intra-op pool)
     * @param interOpThreads threads for parallel graph branches (1: sequential)
     * @param spinning       whether the pool's threads spin while they wait for work (ONNX Runtime's
     *                       default, {@code session.intra_op.allow_spinning}); off, they sleep at
     *                       once and leave the cores to other threads (a server's request threads)
     * @param gpu            an ONNX Runtime GPU execution provider to run on (nodes it cannot take
     *                       fall back to the CPU provider), or null for the CPU only
     * @param mergedSessions side packages on the CPU: how many adapters (the base model, a run
     *                       without adapter, counting as one) may get a session of their own with
     *                       the adapter merged into the weights, built in the background on first
     *                       use and used by runs once ready (see {@link MergedSessions}); each costs
     *                       2 to 3 times the weights in memory. 0: every run uses the side graph.
     */
    public record Options(int intraOpThreads, int interOpThreads, boolean spinning, GpuProvider gpu, int mergedSessions) {
        public Options {
            if (intraOpThreads < 1 || interOpThreads < 1) {
                throw Peft4jException.invalid("threads must be at least 1, got intra-op " + intraOpThreads + ", inter-op "
                        + interOpThreads);
            }
            if (mergedSessions < 0 || mergedSessions > 64) {
                throw Peft4jException.invalid("merged sessions must be 0..64, got " + mergedSessions);
            }
        }

        /** No merged sessions. */
        public Options(int intraOpThreads, int interOpThreads, boolean spinning, GpuProvider gpu) {
            this(intraOpThreads, interOpThreads, spinning, gpu, 0);
        }

        /** These options with {@code n} merged sessions for side packages. */
        public Options withMergedSessions(int n) {
            return new Options(intraOpThreads, interOpThreads, spinning, gpu, n);
        }

        /** Threads as given; the pool's threads spin while waiting (ONNX Runtime's default); CPU only. */
        public Options(int intraOpThreads, int interOpThreads) {
            this(intraOpThreads, interOpThreads, true, null);
        }

        /** CPU only. */
        public Options(int intraOpThreads, int interOpThreads, boolean spinning) {
            this(intraOpThreads, interOpThreads, spinning, null);
        }

        /** Up to 4 intra-op threads, sequential graph execution. */
        public static Options defaults() {
            return new Options(Math.min(4, Runtime.getRuntime().availableProcessors()), 1);
        }
    }

    /**
     * ONNX Runtime's CUDA or TensorRT execution provider (the {@code onnxruntime_gpu} jar, Maven
     * profile {@code -Pgpu}, and CUDA 12 with cuDNN 9 on the host).
     *
     * @param kind           {@code cuda} or {@code tensorrt} (TensorRT, with CUDA for what it cannot run)
     * @param deviceId       the CUDA device
     * @param fp16           TensorRT: allow fp16 kernels
     * @param engineCache    TensorRT: where its engines are cached (null: not cached)
     * @param workspaceBytes TensorRT: the builder's workspace limit
     * @param maxBatch       TensorRT: the largest batch of its optimization profile (tuned for
     *                       batch 8 or the max, whichever is smaller; other dynamic axes 1..256)
     */
    public record GpuProvider(String kind, int deviceId, boolean fp16, Path engineCache, long workspaceBytes, int maxBatch) {
        public GpuProvider {
            if (!"cuda".equals(kind) && !"tensorrt".equals(kind)) {
                throw Peft4jException.invalid("the ONNX Runtime GPU provider must be cuda or tensorrt, got '" + kind + "'");
            }
            if (deviceId < 0 || maxBatch < 1 || workspaceBytes < 0) {
                throw Peft4jException.invalid("device id, max batch and workspace must be positive, got " + deviceId + ", "
                        + maxBatch + ", " + workspaceBytes);
            }
        }
    }

    /** How long a merged session must go unused before another adapter's may replace it (tests shorten it). */
    static volatile long mergedIdleMillis = MergedSessions.IDLE_MILLIS;

    private final Path path;
    private final Path packageDir;
    private final Manifest manifest;
    private final OrtEnvironment env = OrtEnvironment.getEnvironment();
    private final OrtSession session;
    private final ModelInfo info;
    private final Map<String, TensorSpec> sessionInputs = new LinkedHashMap<>();
    private final String what;
    private final String name;
    /** The adapters runs can select; each holds one reference for the table. */
    private final AdapterTable<Adapter> adapters = new AdapterTable<>(x -> x.info);
    /** One reference held by the backend until close, one per run in flight. */
    private final RefCount sessionRefs = new RefCount();
    private final Options options;
    /** Side packages with merged sessions on: the sessions, and the base model's place among them. */
    private final MergedSessions merged;
    private final MergedSessions.Slot baseSlot;
    private volatile boolean closed;

    private OrtBackend(Path path, Path packageDir, Manifest manifest, Options o) {
        this.path = path;
        this.packageDir = packageDir;
        this.manifest = manifest;
        Path modelFile = packageDir == null ? path : packageDir.resolve(manifest.model());
        this.what = manifest == null ? modelFile.toString() : "package " + packageDir;
        this.name = o.gpu() == null ? NAME : "onnxruntime-" + o.gpu().kind();
        this.options = o;
        try (OrtSession.SessionOptions so = sessionOptions(o, modelFile)) {
            this.session = env.createSession(modelFile.toAbsolutePath().toString(), so);
        } catch (OrtException e) {
            throw new Peft4jException(ErrorCode.MALFORMED, "ONNX Runtime cannot load " + modelFile + ": " + e.getMessage(), e);
        }
        try {
            List<TensorSpec> inputs = new ArrayList<>();
            for (Map.Entry<String, NodeInfo> e : session.getInputInfo().entrySet()) {
                TensorSpec s = spec(e.getKey(), e.getValue());
                sessionInputs.put(s.name(), s);
                if (!s.name().equals(adapterIndexInput())) {
                    inputs.add(s);
                }
            }
            List<TensorSpec> outputs = new ArrayList<>();
            for (Map.Entry<String, NodeInfo> e : session.getOutputInfo().entrySet()) {
                outputs.add(spec(e.getKey(), e.getValue()));
            }
            Manifest.Mode mode = manifest == null ? Manifest.Mode.base : manifest.mode();
            if (mode == Manifest.Mode.multi && !sessionInputs.containsKey(adapterIndexInput())) {
                throw Peft4jException.malformed(what + " is a multi package whose model has no input '" + adapterIndexInput() + "'");
            }
            this.info = new ModelInfo(path, mode, inputs, outputs, manifest == null ? null : manifest.baseFingerprint(),
                    manifest == null ? 0 : manifest.maxRank(), Optional.ofNullable(manifest));
            if (mode == Manifest.Mode.side && o.mergedSessions() > 0 && o.gpu() == null) {
                this.merged = new MergedSessions(o.mergedSessions(), mergedIdleMillis, env, () -> {
                    try {
                        return sessionOptions(o, modelFile);
                    } catch (OrtException e) {
                        throw new IllegalStateException(e);
                    }
                }, modelFile, info, this::runSideForProbe, what);
                this.baseSlot = new MergedSessions.Slot(null, null, null, () -> true, () -> { });
            } else {
                this.merged = null;
                this.baseSlot = null;
            }
            loadPackageAdapters();
        } catch (OrtException | RuntimeException e) {
            close();
            if (e instanceof RuntimeException r) {
                throw r;
            }
            throw new Peft4jException(ErrorCode.MALFORMED, "cannot read the inputs and outputs of " + what + ": " + e.getMessage(), e);
        }
    }

    private static OrtSession.SessionOptions sessionOptions(Options o, Path modelFile) throws OrtException {
        OrtSession.SessionOptions so = new OrtSession.SessionOptions();
        try {
            // overridable initializers (the side graph's adapter inputs) draw a warning per input
            so.setSessionLogLevel(OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR);
            so.setIntraOpNumThreads(o.intraOpThreads());
            so.setInterOpNumThreads(o.interOpThreads());
            so.addConfigEntry("session.intra_op.allow_spinning", o.spinning() ? "1" : "0");
            so.addConfigEntry("session.inter_op.allow_spinning", o.spinning() ? "1" : "0");
            if (o.gpu() != null) {
                GpuProviders.add(so, o.gpu(), modelFile);
            }
            return so;
        } catch (OrtException | RuntimeException e) {
            so.close();
            throw e;
        }
    }

    /** The side graph's run for a merged session's probe: holds the session like any run. */
    private Map<String, Tensor> runSideForProbe(Map<String, Tensor> in, OrtLoraAdapter lora) {
        if (!acquireSession()) {
            throw closedError();
        }
        try {
            return runOnce(session, new LinkedHashMap<>(in), lora, wantedOutputs(Set.of()));
        } finally {
            releaseSession();
        }
    }

    /**
     * Whether {@code adapter} (null: the base model) of a side package runs on a merged session of
     * its own now (see {@link Options#mergedSessions()}); false when merged sessions are off.
     */
    public boolean hasMergedSession(String adapter) {
        if (merged == null) {
            return false;
        }
        if (adapter == null) {
            return merged.has(baseSlot);
        }
        Adapter a = adapters.current().get(adapter);
        return a != null && a.slot != null && merged.has(a.slot);
    }

    /**
     * The adapters of a side package that run on a merged session now, in registration order, with
     * {@code null} first for the base model when it has one; empty when merged sessions are off.
     */
    public List<String> mergedSessions() {
        List<String> out = new ArrayList<>();
        if (merged == null) {
            return out;
        }
        if (merged.has(baseSlot)) {
            out.add(null);
        }
        for (Adapter a : adapters.current().values()) {
            if (a.slot != null && merged.has(a.slot)) {
                out.add(a.info.name());
            }
        }
        return out;
    }

    /** How many merged sessions a side package may have (0: off, or not a side package on the CPU). */
    public int mergedSessionCapacity() {
        return merged == null ? 0 : options.mergedSessions();
    }

    /** Opens a package directory or an {@code .onnx} file with {@link Options#defaults()}. */
    public static OrtBackend open(Path modelOrPackage) {
        return open(modelOrPackage, Options.defaults());
    }

    /** Opens a package directory (its manifest and adapters checked and loaded) or an {@code .onnx} file. */
    public static OrtBackend open(Path modelOrPackage, Options options) {
        if (Files.isDirectory(modelOrPackage)) {
            ModelPackage p = ModelPackage.open(modelOrPackage);
            return new OrtBackend(modelOrPackage, p.dir(), p.manifest(), options);
        }
        if (!Files.isRegularFile(modelOrPackage)) {
            throw new Peft4jException(ErrorCode.IO, "model not found: " + modelOrPackage
                    + " (give a model package directory or an .onnx file)");
        }
        return new OrtBackend(modelOrPackage, null, null, options);
    }

    private static TensorSpec spec(String name, NodeInfo n) {
        if (!(n.getInfo() instanceof TensorInfo t)) {
            throw Peft4jException.unsupported("'" + name + "' is a " + n.getInfo().getClass().getSimpleName()
                    + ", not a tensor; peft4j serves tensor inputs and outputs only");
        }
        return new TensorSpec(name, OrtTensors.dataType(t.onnxType), t.getShape());
    }

    private String adapterIndexInput() {
        return manifest != null && manifest.mode() == Manifest.Mode.multi ? manifest.adapterIndexInput() : null;
    }

    // ---------------------------------------------------------------- adapters

    /** An adapter as runs use it: immutable, reference-counted (one reference for the registry). */
    private final class Adapter {
        final AdapterInfo info;
        final OrtLoraAdapter lora;   // side packages
        final long index;            // multi packages
        final MergedSessions.Slot slot;   // side packages with merged sessions
        private final RefCount refs = new RefCount();

        Adapter(AdapterInfo info, OrtLoraAdapter lora, long index, java.util.function.Supplier<AdapterBundle> bundle) {
            this.info = info;
            this.lora = lora;
            this.index = index;
            this.slot = merged == null || lora == null ? null
                    : new MergedSessions.Slot(info.name(), bundle, lora, this::acquire, this::release);
        }

        boolean acquire() {
            return refs.acquire();
        }

        void release() {
            if (refs.release()) {
                if (slot != null) {
                    merged.drop(slot);
                }
                if (lora != null) {
                    lora.close();
                }
            }
        }
    }

    private void loadPackageAdapters() {
        if (manifest == null) {
            return;
        }
        Map<String, Adapter> loaded = new LinkedHashMap<>();
        for (Manifest.Adapter a : manifest.adapters()) {
            OrtLoraAdapter lora = null;
            if (manifest.mode() == Manifest.Mode.side) {
                lora = loraFromFile(a);
            }
            AdapterInfo i = new AdapterInfo(a.name(), a.peftType(), a.rank(), AdapterInfo.PACKAGE, 1, null);
            Path bundleDir = packageDir.resolve(a.bundle());
            loaded.put(a.name(), new Adapter(i, lora, a.index(), () -> AdapterBundle.read(bundleDir)));
        }
        adapters.load(loaded);
    }

    private OrtLoraAdapter loraFromFile(Manifest.Adapter a) {
        if (a.onnxAdapter() == null) {
            throw Peft4jException.malformed(what + ": side adapter '" + a.name() + "' has no .onnx_adapter file");
        }
        Path file = packageDir.resolve(a.onnxAdapter());
        OnnxAdapterFile.read(file);   // our own checks first: a clear message for a damaged file
        try {
            return OrtLoraAdapter.create(file.toAbsolutePath().toString());
        } catch (OrtException e) {
            throw new Peft4jException(ErrorCode.MALFORMED, "ONNX Runtime cannot load adapter file " + file + ": " + e.getMessage(), e);
        }
    }

    @Override
    public List<AdapterInfo> adapters() {
        return adapters.list();
    }

    @Override
    public AdapterInfo register(String name, AdapterBundle bundle) {
        requireOpen();
        if (name == null || name.isEmpty()) {
            throw Peft4jException.invalid("an adapter needs a name");
        }
        Manifest.Mode mode = info.mode();
        if (mode != Manifest.Mode.side) {
            throw Peft4jException.unsupported(what + " is a " + mode + " package: "
                    + switch (mode) {
                        case multi -> "its adapters are stacked into the graph at export; export it again with adapter '"
                                + name + "', or serve adapters added at run time from a side package";
                        case merged -> "its one adapter is merged into the weights; adapters added at run time need a side package";
                        default -> "it takes no adapters; adapters added at run time need a side package";
                    });
        }
        String adapterName = "adapter '" + name + "'";
        if (info.baseFingerprint() != null) {
            bundle.requireBase(info.baseFingerprint(), what);
        }
        String peftType = bundle.config().peftType();
        for (Adapter a : adapters.current().values()) {
            if (!a.info.peftType().equals(peftType)) {
                throw Peft4jException.unsupported(adapterName + " is " + peftType + ", while " + what + " serves "
                        + a.info.peftType() + " adapters (a side graph serves one PEFT method)");
            }
        }
        Map<String, Tensor> params = SideAdapters.parameters(OnnxIO.read(packageDir.resolve(manifest.model())), bundle, adapterName);
        OrtLoraAdapter lora;
        try {
            lora = OrtLoraAdapter.create(OnnxAdapterFile.toBytes(params, 1, 1));
        } catch (OrtException e) {
            throw new Peft4jException(ErrorCode.INVALID_ARGUMENT, "ONNX Runtime refuses " + adapterName + ": " + e.getMessage(), e);
        }
        int rank = AdapterTable.rank(bundle);
        AdapterTable.Swap<Adapter> swap = adapters.put(name, version -> new Adapter(new AdapterInfo(name, peftType, rank,
                AdapterInfo.REGISTERED, version, Peft.adapterId(bundle)), lora, 0, () -> bundle));
        if (swap == null) {
            lora.close();
            throw closedError();
        }
        if (swap.replaced() != null) {
            swap.replaced().release();
        }
        return swap.added().info;
    }

    @Override
    public boolean unregister(String name) {
        Adapter old = adapters.remove(name);
        if (old == null) {
            return false;
        }
        old.release();
        return true;
    }

    // ---------------------------------------------------------------- running

    @Override
    public String name() {
        return name;
    }

    @Override
    public ModelInfo info() {
        return info;
    }

    @Override
    public InferenceResult run(Map<String, Tensor> inputs, AdapterSelection selection, Set<String> outputs) {
        if (!acquireSession()) {
            throw closedError();
        }
        List<Adapter> held = new ArrayList<>();
        try {
            Set<String> wanted = wantedOutputs(outputs);
            long batch = checkInputs(inputs);
            Map<String, Long> used = new LinkedHashMap<>();
            Map<String, Tensor> feeds = new LinkedHashMap<>(inputs);
            switch (info.mode()) {
                case base -> {
                    requireNoAdapter(selection, what + " is a base model without adapters");
                    return new InferenceResult(runOnce(feeds, null, wanted), used);
                }
                case merged -> {
                    String merged = manifest.mergedAdapter();
                    for (String a : selection.names()) {
                        if (a != null && !a.equals(merged)) {
                            requireKnown(a);
                            throw Peft4jException.invalid(what + " has adapter '" + merged + "' merged into its weights; "
                                    + "it cannot run '" + a + "'");
                        }
                    }
                    return new InferenceResult(runOnce(feeds, null, wanted), used);
                }
                case multi -> {
                    String idx = adapterIndexInput();
                    if (inputs.containsKey(idx)) {
                        if (!(selection instanceof AdapterSelection.None)) {
                            throw Peft4jException.invalid("give either an adapter or the '" + idx + "' input, not both");
                        }
                        return new InferenceResult(runOnce(feeds, null, wanted), used);
                    }
                    long[] rows = new long[Math.toIntExact(batch)];
                    if (selection instanceof AdapterSelection.PerRow p) {
                        requireRows(p, batch);
                        for (int r = 0; r < rows.length; r++) {
                            rows[r] = indexOf(p.rows().get(r), held, used);
                        }
                    } else {
                        Arrays.fill(rows, indexOf(selection.single(), held, used));
                    }
                    feeds.put(idx, Tensor.ofLongs(new long[] {batch}, rows));
                    return new InferenceResult(runOnce(feeds, null, wanted), used);
                }
                case side -> {
                    if (!(selection instanceof AdapterSelection.PerRow p)) {
                        String a = selection.single();
                        return new InferenceResult(runSide(feeds, a == null ? null : hold(a, held, used), wanted), used);
                    }
                    requireRows(p, batch);
                    return new InferenceResult(runByAdapter(feeds, p.rows(), held, used, wanted), used);
                }
                default -> throw new IllegalStateException(info.mode().toString());
            }
        } finally {
            held.forEach(Adapter::release);
            releaseSession();
        }
    }

    /** A side package's per-row selection: one run per distinct adapter, rows put back in place. */
    private Map<String, Tensor> runByAdapter(Map<String, Tensor> feeds, List<String> rows, List<Adapter> held,
                                             Map<String, Long> used, Set<String> wanted) {
        Map<String, Adapter> byName = new HashMap<>();
        for (String a : new LinkedHashSet<>(rows)) {
            if (a != null) {
                byName.put(a, hold(a, held, used));
            }
        }
        return Runs.byAdapter(feeds, rows, (part, a) -> runSide(part, a == null ? null : byName.get(a), wanted));
    }

    /** A side package's run of one adapter (null: none): on its merged session when it has one, else on the side graph. */
    private Map<String, Tensor> runSide(Map<String, Tensor> feeds, Adapter a, Set<String> wanted) {
        MergedSessions.Slot slot = a == null ? baseSlot : a.slot;
        MergedSessions.Entry e = merged == null || slot == null ? null : merged.acquire(slot);
        if (e != null) {
            try {
                return runOnce(e.session, feeds, null, wanted);
            } finally {
                e.release();
            }
        }
        return runOnce(feeds, a == null ? null : a.lora, wanted);
    }

    private Map<String, Tensor> runOnce(Map<String, Tensor> feeds, OrtLoraAdapter lora, Set<String> wanted) {
        return runOnce(session, feeds, lora, wanted);
    }

    private Map<String, Tensor> runOnce(OrtSession session, Map<String, Tensor> feeds, OrtLoraAdapter lora, Set<String> wanted) {
        Map<String, OnnxTensor> ort = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, Tensor> e : feeds.entrySet()) {
                ort.put(e.getKey(), OrtTensors.toOrt(env, e.getValue()));
            }
            try (OrtSession.RunOptions ro = new OrtSession.RunOptions()) {
                if (lora != null) {
                    ro.addActiveLoraAdapter(lora);
                }
                Map<String, Tensor> out = new LinkedHashMap<>();
                try (OrtSession.Result r = session.run(ort, wanted, ro)) {
                    for (Map.Entry<String, OnnxValue> e : r) {
                        if (!(e.getValue() instanceof OnnxTensor t)) {
                            throw Peft4jException.unsupported("output '" + e.getKey() + "' is not a tensor");
                        }
                        out.put(e.getKey(), OrtTensors.fromOrt(t));
                    }
                }
                return out;
            }
        } catch (OrtException e) {
            throw new Peft4jException(ErrorCode.INVALID_ARGUMENT, "ONNX Runtime cannot run " + what + ": " + e.getMessage(), e);
        } finally {
            ort.values().forEach(OnnxTensor::close);
        }
    }

    private Set<String> wantedOutputs(Set<String> outputs) {
        return Runs.wantedOutputs(info, outputs, what);
    }

    /** Checks names, types and fixed dimensions; returns the batch size (dimension 0 shared by all inputs). */
    private long checkInputs(Map<String, Tensor> inputs) {
        return Inputs.check(info, inputs, adapterIndexInput(), what);
    }

    private void requireNoAdapter(AdapterSelection s, String why) {
        for (String a : s.names()) {
            if (a != null) {
                throw Peft4jException.invalid(why + "; it cannot run adapter '" + a + "'");
            }
        }
    }

    private void requireRows(AdapterSelection.PerRow p, long batch) {
        if (p.rows().size() != batch) {
            throw Peft4jException.shape("one adapter per row: got " + p.rows().size() + " adapters for a batch of " + batch);
        }
    }

    private void requireKnown(String name) {
        if (!adapters.current().containsKey(name)) {
            throw unknownAdapter(name);
        }
    }

    private Peft4jException unknownAdapter(String name) {
        List<String> have = adapters().stream().map(AdapterInfo::name).toList();
        return Peft4jException.notFound(what + " has no adapter '" + name + "'" + (have.isEmpty() ? " (it has none)" : "; it has " + have));
    }

    /** The current adapter {@code name}, held for this run (released by the caller). */
    private Adapter hold(String name, List<Adapter> held, Map<String, Long> used) {
        for (Adapter a : held) {
            if (a.info.name().equals(name)) {
                return a;
            }
        }
        while (true) {
            Adapter a = adapters.current().get(name);
            if (a == null) {
                throw unknownAdapter(name);
            }
            if (a.acquire()) {
                held.add(a);
                used.put(name, a.info.version());
                return a;
            }
            // replaced and released between the read and the acquire: read again
        }
    }

    private long indexOf(String name, List<Adapter> held, Map<String, Long> used) {
        return name == null ? 0 : hold(name, held, used).index;
    }

    // ---------------------------------------------------------------- lifetime

    private boolean acquireSession() {
        return !closed && sessionRefs.acquire();
    }

    private void releaseSession() {
        if (sessionRefs.release()) {
            try {
                session.close();
            } catch (OrtException e) {
                // nothing to do: the native session is gone either way
            }
        }
    }

    private void requireOpen() {
        if (closed) {
            throw closedError();
        }
    }

    private Peft4jException closedError() {
        return Peft4jException.invalid(what + " is closed (unloaded)");
    }

    /** Whether {@link #close()} was called. */
    public boolean isClosed() {
        return closed;
    }

    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        if (merged != null) {
            merged.close();
        }
        adapters.close().values().forEach(Adapter::release);
        releaseSession();
    }
}
