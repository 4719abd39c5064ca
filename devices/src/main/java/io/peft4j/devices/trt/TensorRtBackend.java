package io.peft4j.devices.trt;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.peft.AdapterBinding;
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
import io.peft4j.devices.Runs;
import io.peft4j.devices.TensorSpec;
import io.peft4j.devices.ort.OnnxAdapterFile;
import io.peft4j.devices.ort.SideAdapters;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.tensorrt.global.nvinfer;
import org.bytedeco.tensorrt.global.nvinfer.TensorIOMode;
import org.bytedeco.tensorrt.nvinfer.Dims64;
import org.bytedeco.tensorrt.nvinfer.ICudaEngine;
import org.bytedeco.tensorrt.nvinfer.IExecutionContext;
import org.bytedeco.tensorrt.nvinfer.IRefitter;
import org.bytedeco.tensorrt.nvinfer.IRuntime;
import org.bytedeco.tensorrt.nvinfer.Weights;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The TensorRT backend: one engine per model, built from the package's ONNX graph (or read from
 * the engine cache), run with device buffers on one CUDA stream. Every TensorRT and CUDA call
 * happens on one thread that the backend owns, so runs from several threads are queued and the
 * engine, its execution context and every buffer are touched by that thread alone.
 * <ul>
 *   <li>{@code side}: the adapter tensors are engine inputs of fixed shape (LoRA factors padded to
 *       the package's max rank). Each adapter's tensors are uploaded once; switching adapters
 *       binds other device buffers, nothing is rebuilt or copied. No adapter binds the graph's
 *       defaults (the base model);</li>
 *   <li>{@code multi}: {@code adapter_index} is filled per row;</li>
 *   <li>{@code merged}: the merged weights;</li>
 *   <li>{@code base} with {@link EngineSettings#refittable()}: adapters registered at run time are
 *       merged into the base weights on the CPU, and selecting one refits the engine from the base
 *       weights plus that adapter — every weight that the previous or the new adapter touches is
 *       set again, so a refit never builds on an earlier one.</li>
 * </ul>
 * Freeing: closing frees the execution context's buffers and every input, output and adapter
 * buffer. The engine itself stays allocated until the process ends, because the JavaCPP presets
 * map no destructor for TensorRT's interfaces.
 */
public final class TensorRtBackend implements InferenceBackend {

    /** Backend name reported to callers. */
    public static final String NAME = "tensorrt";

    /**
     * A package's folder of prebuilt engines ({@code peft4j export --format engine}), looked in
     * before the engine cache; a plan there is used only when its key (model, settings, GPU,
     * TensorRT version) matches.
     */
    public static final String ENGINES_DIR = "engines";

    private static final AtomicInteger THREADS = new AtomicInteger();

    private final Path path;
    private final Path modelFile;
    private final Manifest manifest;
    private final String what;
    private final EngineSettings settings;
    private final ExecutorService thread;
    private final Engines.Built built;
    private final ModelInfo info;

    // ---- owned by the backend's thread
    private IRuntime runtime;
    private ICudaEngine engine;
    private IExecutionContext context;
    private CUstream_st stream;
    private final Map<String, TensorSpec> engineInputs = new LinkedHashMap<>();
    private final Map<String, TensorSpec> engineOutputs = new LinkedHashMap<>();
    private final Map<String, Cuda.DeviceBuffer> deviceIo = new HashMap<>();
    private final Map<String, Cuda.HostBuffer> hostIo = new HashMap<>();
    /** side packages: the adapter inputs' defaults (the base model), on the device. */
    private final Map<String, Cuda.DeviceBuffer> defaults = new LinkedHashMap<>();
    /** refit: the base values of the weights adapters touch; the adapter the engine holds now. */
    private final Map<String, Tensor> baseWeights = new HashMap<>();
    private Set<String> refittable = Set.of();
    private Adapter refitted;
    private double lastRefitSeconds;

    private final AdapterTable<Adapter> adapters = new AdapterTable<>(Adapter::info);
    private volatile boolean closed;

    /** An adapter as runs use it. Its device buffers are freed on the backend's thread. */
    private record Adapter(AdapterInfo info, Map<String, Cuda.DeviceBuffer> buffers, long index, Map<String, Tensor> weights) {
    }

    private TensorRtBackend(Path path, Path modelFile, Manifest manifest, EngineSettings settings) {
        TensorRt.require();
        this.path = path;
        this.modelFile = modelFile;
        this.manifest = manifest;
        this.settings = settings;
        this.what = manifest == null ? modelFile.toString() : "package " + path;
        this.thread = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "peft4j-tensorrt-" + THREADS.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        Manifest.Mode mode = manifest == null ? Manifest.Mode.base : manifest.mode();
        if (settings.refittable() && mode != Manifest.Mode.base) {
            thread.shutdown();
            throw Peft4jException.unsupported(what + " is a " + mode + " package; refitting adapters in and out needs the "
                    + "base model (open the base .onnx with a refittable engine)");
        }
        Model model = OnnxIO.read(modelFile);
        Map<String, Tensor> adapterDefaults = Map.of();
        if (mode == Manifest.Mode.side) {
            adapterDefaults = SideAdapters.adapterInputs(model.graph());
            for (String n : adapterDefaults.keySet()) {
                // an engine input rather than a constant: switching adapters binds other buffers
                model.graph().removeInputDefault(n);
            }
        }
        if (settings.refittable()) {
            baseWeights.putAll(model.graph().initializers());
        }
        byte[] onnx = OnnxIO.toBytes(model);
        Map<String, Tensor> sideDefaults = adapterDefaults;
        try {
            Path[] packaged = manifest == null ? new Path[0] : new Path[] {path.resolve(ENGINES_DIR)};
            this.built = call(() -> Engines.buildOrLoad(onnx, settings, what, packaged));
            this.info = call(() -> start(mode, sideDefaults));
            call(() -> {
                loadPackageAdapters();
                return null;
            });
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** Opens a package directory or an {@code .onnx} file, building its engine (or reading it from the cache). */
    public static TensorRtBackend open(Path modelOrPackage, EngineSettings settings) {
        if (Files.isDirectory(modelOrPackage)) {
            ModelPackage p = ModelPackage.open(modelOrPackage);
            return new TensorRtBackend(modelOrPackage, p.modelFile(), p.manifest(), settings);
        }
        if (!Files.isRegularFile(modelOrPackage)) {
            throw new Peft4jException(ErrorCode.IO, "model not found: " + modelOrPackage
                    + " (give a model package directory or an .onnx file)");
        }
        return new TensorRtBackend(modelOrPackage, modelOrPackage, null, settings);
    }

    /** How the engine was obtained: its cache key, whether it came from the cache, the build time. */
    public Engines.Built engineBuild() {
        return new Engines.Built(new byte[0], built.key(), built.fromCache(), built.buildSeconds());
    }

    /** Seconds the last refit took (0 before the first). */
    public double lastRefitSeconds() {
        return lastRefitSeconds;
    }

    // ---------------------------------------------------------------- start

    private ModelInfo start(Manifest.Mode mode, Map<String, Tensor> sideDefaults) {
        runtime = nvinfer.createInferRuntime(TrtLogger.INSTANCE);
        try (BytePointer plan = new BytePointer(built.plan())) {
            engine = runtime.deserializeCudaEngine(plan, built.plan().length);
        }
        if (engine == null || engine.isNull()) {
            throw Peft4jException.malformed("TensorRT cannot load the engine for " + what + ": "
                    + String.join("; ", TrtLogger.INSTANCE.drainErrors()) + (built.fromCache()
                    ? " (cached plan " + built.key() + ".plan; delete it to rebuild)" : ""));
        }
        context = engine.createExecutionContext();
        if (context == null || context.isNull()) {
            throw new IllegalStateException("TensorRT cannot create an execution context for " + what + ": "
                    + String.join("; ", TrtLogger.INSTANCE.drainErrors()));
        }
        stream = Cuda.createStream();
        for (int i = 0; i < engine.getNbIOTensors(); i++) {
            String name = engine.getIOTensorName(i);
            TensorSpec spec = new TensorSpec(name, dataType(engine.getTensorDataType(name), name), longs(engine.getTensorShape(name)));
            if (engine.getTensorIOMode(name) == TensorIOMode.kINPUT) {
                engineInputs.put(name, spec);
            } else {
                engineOutputs.put(name, spec);
            }
        }
        for (Map.Entry<String, Tensor> d : sideDefaults.entrySet()) {
            defaults.put(d.getKey(), Cuda.DeviceBuffer.of(d.getValue().bytes()));
        }
        if (settings.refittable()) {
            refittable = refittableWeights();
        }
        String index = adapterIndexInput();
        List<TensorSpec> inputs = new ArrayList<>();
        for (TensorSpec s : engineInputs.values()) {
            if (!defaults.containsKey(s.name()) && !s.name().equals(index)) {
                inputs.add(s);
            }
        }
        if (mode == Manifest.Mode.multi && !engineInputs.containsKey(index)) {
            throw Peft4jException.malformed(what + " is a multi package whose model has no input '" + index + "'");
        }
        return new ModelInfo(path, mode, inputs, new ArrayList<>(engineOutputs.values()),
                manifest == null ? null : manifest.baseFingerprint(), manifest == null ? 0 : manifest.maxRank(),
                Optional.ofNullable(manifest));
    }

    private Set<String> refittableWeights() {
        IRefitter r = nvinfer.createInferRefitter(engine, TrtLogger.INSTANCE);
        int n = r.getAllWeights(0, (PointerPointer<?>) null);
        Set<String> names = new HashSet<>();
        if (n > 0) {
            try (PointerPointer<BytePointer> pp = new PointerPointer<>(n)) {
                r.getAllWeights(n, pp);
                for (int i = 0; i < n; i++) {
                    names.add(pp.getString(i));
                }
            }
        }
        return names;
    }

    private String adapterIndexInput() {
        return manifest != null && manifest.mode() == Manifest.Mode.multi ? manifest.adapterIndexInput() : null;
    }

    // ---------------------------------------------------------------- adapters

    private void loadPackageAdapters() {
        if (manifest == null) {
            return;
        }
        Map<String, Adapter> loaded = new LinkedHashMap<>();
        for (Manifest.Adapter a : manifest.adapters()) {
            Map<String, Cuda.DeviceBuffer> buffers = Map.of();
            if (manifest.mode() == Manifest.Mode.side) {
                if (a.onnxAdapter() == null) {
                    throw Peft4jException.malformed(what + ": side adapter '" + a.name() + "' has no .onnx_adapter file");
                }
                buffers = upload(OnnxAdapterFile.read(path.resolve(a.onnxAdapter())).parameters(), "adapter '" + a.name() + "'");
            }
            loaded.put(a.name(), new Adapter(new AdapterInfo(a.name(), a.peftType(), a.rank(), AdapterInfo.PACKAGE, 1, null),
                    buffers, a.index(), Map.of()));
        }
        adapters.load(loaded);
    }

    /** Uploads adapter parameters, checked against the engine's adapter inputs. Backend thread. */
    private Map<String, Cuda.DeviceBuffer> upload(Map<String, Tensor> params, String adapterName) {
        Map<String, Cuda.DeviceBuffer> out = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, Tensor> p : params.entrySet()) {
                TensorSpec in = engineInputs.get(p.getKey());
                if (in == null || !defaults.containsKey(p.getKey())) {
                    throw Peft4jException.notFound(adapterName + " has parameter '" + p.getKey() + "', which is not an adapter "
                            + "input of " + what);
                }
                Tensor t = p.getValue();
                if (t.dtype() != in.dtype() || !Arrays.equals(t.shape(), in.shape())) {
                    throw Peft4jException.shape(adapterName + ": parameter '" + p.getKey() + "' is " + t.dtype()
                            + Arrays.toString(t.shape()) + ", the engine takes " + in.dtype() + in.describeShape());
                }
                out.put(p.getKey(), Cuda.DeviceBuffer.of(t.bytes()));
            }
        } catch (RuntimeException e) {
            out.values().forEach(Cuda.DeviceBuffer::close);
            throw e;
        }
        return out;
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
        String adapterName = "adapter '" + name + "'";
        String peftType = bundle.config().peftType();
        int rank = AdapterTable.rank(bundle);
        Adapter made;
        if (mode == Manifest.Mode.side) {
            if (info.baseFingerprint() != null) {
                bundle.requireBase(info.baseFingerprint(), what);
            }
            Map<String, Tensor> params = SideAdapters.parameters(OnnxIO.read(modelFile), bundle, adapterName);
            Map<String, Cuda.DeviceBuffer> buffers = call(() -> upload(params, adapterName));
            made = new Adapter(null, buffers, 0, Map.of());
        } else if (mode == Manifest.Mode.base && settings.refittable()) {
            made = new Adapter(null, Map.of(), 0, mergedWeights(bundle, adapterName));
        } else {
            throw Peft4jException.unsupported(what + " is a " + mode + " package: adapters added at run time need a side "
                    + "package, or the base model opened with a refittable engine");
        }
        AdapterTable.Swap<Adapter> swap = adapters.put(name, version -> new Adapter(new AdapterInfo(name, peftType, rank,
                AdapterInfo.REGISTERED, version, Peft.adapterId(bundle)), made.buffers, 0, made.weights));
        if (swap == null) {
            free(made);
            throw closedError();
        }
        if (swap.replaced() != null) {
            retire(swap.replaced());
        }
        return swap.added().info;
    }

    /** The weights {@code bundle} changes when merged into the base model, with their merged values. */
    private Map<String, Tensor> mergedWeights(AdapterBundle bundle, String adapterName) {
        Model m = OnnxIO.read(modelFile);
        int nodes = m.graph().nodes().size();
        Peft.merge(m, AdapterBinding.bind(m, bundle));
        Graph g = m.graph();
        if (g.nodes().size() != nodes) {
            throw Peft4jException.unsupported(adapterName + " changes the graph (it brings a classification head); an "
                    + "engine refit can only change weights: export a merged package and build its engine");
        }
        Map<String, Tensor> changed = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : g.initializers().entrySet()) {
            Tensor base = baseWeights.get(e.getKey());
            if (base == null) {
                throw Peft4jException.unsupported(adapterName + " adds weight '" + e.getKey() + "'; an engine refit can only "
                        + "change existing weights");
            }
            if (!base.contentEquals(e.getValue())) {
                if (!refittable.contains(e.getKey())) {
                    throw Peft4jException.unsupported(adapterName + " changes weight '" + e.getKey() + "', which TensorRT did "
                            + "not keep refittable in this engine (it folded it into another layer); serve this adapter "
                            + "from a side package instead");
                }
                changed.put(e.getKey(), e.getValue().to(DataType.FLOAT));
            }
        }
        return changed;
    }

    @Override
    public boolean unregister(String name) {
        Adapter old = adapters.remove(name);
        if (old == null) {
            return false;
        }
        retire(old);
        return true;
    }

    /** Frees an adapter on the backend's thread, after the runs queued before it. */
    private void retire(Adapter a) {
        if (!a.buffers.isEmpty()) {
            try {
                thread.execute(() -> free(a));
            } catch (RuntimeException e) {
                // the thread is gone (closed): close() freed what it could
            }
        }
    }

    private static void free(Adapter a) {
        a.buffers.values().forEach(Cuda.DeviceBuffer::close);
    }

    // ---------------------------------------------------------------- running

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public ModelInfo info() {
        return info;
    }

    @Override
    public InferenceResult run(Map<String, Tensor> inputs, AdapterSelection selection, Set<String> outputs) {
        requireOpen();
        Set<String> wanted = wantedOutputs(outputs);
        long batch = Inputs.check(info, inputs, adapterIndexInput(), what);
        if (batch > settings.maxBatch()) {
            throw Peft4jException.invalid("a batch of " + batch + " is above the engine's maximum of " + settings.maxBatch()
                    + " (built into the TensorRT engine; split the batch or rebuild with a larger max batch)");
        }
        Map<String, Adapter> now = adapters.current();
        Map<String, Long> used = new LinkedHashMap<>();
        Map<String, Tensor> feeds = new LinkedHashMap<>(inputs);
        List<String> rows = selection instanceof AdapterSelection.PerRow p ? p.rows() : null;
        if (rows != null && rows.size() != batch) {
            throw Peft4jException.shape("one adapter per row: got " + rows.size() + " adapters for a batch of " + batch);
        }
        for (String a : selection.names()) {
            if (a != null) {
                Adapter ad = now.get(a);
                if (ad == null) {
                    throw unknownAdapter(a);
                }
                used.put(a, ad.info.version());
            }
        }
        switch (info.mode()) {
            case merged -> {
                for (String a : selection.names()) {
                    if (a != null && !a.equals(manifest.mergedAdapter())) {
                        throw Peft4jException.invalid(what + " has adapter '" + manifest.mergedAdapter() + "' merged into its "
                                + "weights; it cannot run '" + a + "'");
                    }
                }
                return new InferenceResult(call(() -> runOnce(feeds, Map.of(), wanted)), used);
            }
            case multi -> {
                String idx = adapterIndexInput();
                if (inputs.containsKey(idx)) {
                    if (!(selection instanceof AdapterSelection.None)) {
                        throw Peft4jException.invalid("give either an adapter or the '" + idx + "' input, not both");
                    }
                } else {
                    long[] index = new long[Math.toIntExact(batch)];
                    for (int r = 0; r < index.length; r++) {
                        String a = rows != null ? rows.get(r) : selection.single();
                        index[r] = a == null ? 0 : now.get(a).index;
                    }
                    feeds.put(idx, Tensor.ofLongs(new long[] {batch}, index));
                }
                return new InferenceResult(call(() -> runOnce(feeds, Map.of(), wanted)), used);
            }
            case side, base -> {
                if (info.mode() == Manifest.Mode.base && !settings.refittable()) {
                    for (String a : selection.names()) {
                        if (a != null) {
                            throw Peft4jException.invalid(what + " is a base model without adapters; it cannot run adapter '"
                                    + a + "'");
                        }
                    }
                }
                if (rows == null) {
                    Adapter a = selection.single() == null ? null : now.get(selection.single());
                    return new InferenceResult(call(() -> runWith(feeds, a, wanted)), used);
                }
                return new InferenceResult(call(() -> runByAdapter(feeds, rows, now, wanted)), used);
            }
            default -> throw new IllegalStateException(info.mode().toString());
        }
    }

    /** Runs with one adapter (null: base model): side packages bind its buffers, refittable engines refit. */
    private Map<String, Tensor> runWith(Map<String, Tensor> feeds, Adapter a, Set<String> wanted) {
        if (settings.refittable()) {
            refitTo(a);
            return runOnce(feeds, Map.of(), wanted);
        }
        return runOnce(feeds, a == null ? Map.of() : a.buffers, wanted);
    }

    /** One pass per distinct adapter, rows put back in order. Backend thread. */
    private Map<String, Tensor> runByAdapter(Map<String, Tensor> feeds, List<String> rows, Map<String, Adapter> now,
                                             Set<String> wanted) {
        return Runs.byAdapter(feeds, rows, (part, a) -> runWith(part, a == null ? null : now.get(a), wanted));
    }

    /**
     * Refits the engine to {@code a} (null: the base weights) from the base weights: every weight
     * the adapter it holds now or the new one touches is set. Backend thread.
     */
    private void refitTo(Adapter a) {
        if (a == refitted) {
            return;
        }
        long t0 = System.nanoTime();
        Set<String> names = new LinkedHashSet<>();
        if (refitted != null) {
            names.addAll(refitted.weights.keySet());
        }
        if (a != null) {
            names.addAll(a.weights.keySet());
        }
        IRefitter r = nvinfer.createInferRefitter(engine, TrtLogger.INSTANCE);
        List<FloatPointer> keep = new ArrayList<>();
        try {
            TrtLogger.INSTANCE.drainErrors();
            for (String n : names) {
                Tensor v = a != null && a.weights.containsKey(n) ? a.weights.get(n) : baseWeights.get(n).to(DataType.FLOAT);
                FloatPointer fp = new FloatPointer(v.toFloatArray());
                keep.add(fp);
                Weights w = new Weights();
                w.type(nvinfer.DataType.kFLOAT).values(fp).count(v.numel());
                if (!r.setNamedWeights(n, w)) {
                    throw new IllegalStateException("TensorRT refuses new values for weight '" + n + "': "
                            + String.join("; ", TrtLogger.INSTANCE.drainErrors()));
                }
            }
            if (!r.refitCudaEngine()) {
                refitted = new Adapter(null, Map.of(), 0, allOf(names));   // unknown state: reset everything next time
                throw new IllegalStateException("TensorRT could not refit the engine of " + what + ": "
                        + String.join("; ", TrtLogger.INSTANCE.drainErrors()));
            }
            refitted = a;
        } finally {
            keep.forEach(FloatPointer::close);
        }
        lastRefitSeconds = (System.nanoTime() - t0) / 1e9;
    }

    private Map<String, Tensor> allOf(Set<String> names) {
        Map<String, Tensor> m = new LinkedHashMap<>();
        for (String n : names) {
            m.put(n, baseWeights.get(n));
        }
        return m;
    }

    /** Copies the inputs in, binds {@code adapterBuffers} (defaults elsewhere), runs, copies the outputs out. Backend thread. */
    private Map<String, Tensor> runOnce(Map<String, Tensor> feeds, Map<String, Cuda.DeviceBuffer> adapterBuffers,
                                        Set<String> wanted) {
        for (TensorSpec in : engineInputs.values()) {
            String n = in.name();
            Cuda.DeviceBuffer fixed = adapterBuffers.getOrDefault(n, defaults.get(n));
            if (fixed != null) {
                context.setTensorAddress(n, fixed.pointer());
                continue;
            }
            Tensor t = feeds.get(n);
            if (t.dtype() != in.dtype()) {
                throw Peft4jException.shape("input '" + n + "' takes " + in.dtype() + " in the TensorRT engine, got " + t.dtype());
            }
            if (!context.setInputShape(n, Engines.dims(t.shape()))) {
                throw Peft4jException.shape("the TensorRT engine of " + what + " does not take input '" + n + "' of shape "
                        + Arrays.toString(t.shape()) + ": " + String.join("; ", TrtLogger.INSTANCE.drainErrors()));
            }
            ByteBuffer data = t.bytes();
            long bytes = data.remaining();
            BytePointer host = hostIo.computeIfAbsent(n, k -> new Cuda.HostBuffer()).ensure(bytes);
            host.position(0).limit(bytes).asByteBuffer().put(data.duplicate());
            Cuda.DeviceBuffer dev = deviceIo.computeIfAbsent(n, k -> new Cuda.DeviceBuffer());
            Cuda.check(cudart.cudaMemcpyAsync(dev.ensure(bytes), host.position(0), bytes, cudart.cudaMemcpyHostToDevice, stream),
                    "cudaMemcpyAsync (input '" + n + "')");
            context.setTensorAddress(n, dev.pointer());
        }
        Map<String, long[]> shapes = new LinkedHashMap<>();
        for (TensorSpec out : engineOutputs.values()) {
            long[] shape = longs(context.getTensorShape(out.name()));
            for (long d : shape) {
                if (d < 0) {
                    throw new IllegalStateException("TensorRT cannot tell the shape of output '" + out.name() + "' before running ("
                            + Arrays.toString(shape) + ")");
                }
            }
            shapes.put(out.name(), shape);
            long bytes = out.dtype().byteSize(Tensor.numel(shape));
            Cuda.DeviceBuffer dev = deviceIo.computeIfAbsent(out.name(), k -> new Cuda.DeviceBuffer());
            context.setTensorAddress(out.name(), dev.ensure(Math.max(bytes, 1)));
        }
        if (!context.enqueueV3(stream)) {
            throw new IllegalStateException("TensorRT could not run " + what + ": " + String.join("; ", TrtLogger.INSTANCE.drainErrors()));
        }
        Map<String, BytePointer> hosts = new LinkedHashMap<>();
        for (String o : wanted) {
            long bytes = engineOutputs.get(o).dtype().byteSize(Tensor.numel(shapes.get(o)));
            BytePointer host = hostIo.computeIfAbsent(o, k -> new Cuda.HostBuffer()).ensure(Math.max(bytes, 1));
            Cuda.check(cudart.cudaMemcpyAsync(host.position(0), deviceIo.get(o).pointer(), bytes, cudart.cudaMemcpyDeviceToHost,
                    stream), "cudaMemcpyAsync (output '" + o + "')");
            hosts.put(o, host);
        }
        Cuda.check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize");
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, BytePointer> h : hosts.entrySet()) {
            TensorSpec spec = engineOutputs.get(h.getKey());
            long[] shape = shapes.get(h.getKey());
            long bytes = spec.dtype().byteSize(Tensor.numel(shape));
            byte[] copy = new byte[Math.toIntExact(bytes)];
            h.getValue().position(0).get(copy);
            out.put(h.getKey(), Tensor.ofBytes(spec.dtype(), shape, copy));
        }
        return out;
    }

    private Set<String> wantedOutputs(Set<String> outputs) {
        return Runs.wantedOutputs(info, outputs, what);
    }

    private Peft4jException unknownAdapter(String name) {
        List<String> have = adapters().stream().map(AdapterInfo::name).toList();
        return Peft4jException.notFound(what + " has no adapter '" + name + "'" + (have.isEmpty() ? " (it has none)" : "; it has " + have));
    }

    // ---------------------------------------------------------------- types

    static DataType dataType(nvinfer.DataType t, String name) {
        return switch (t) {
            case kFLOAT -> DataType.FLOAT;
            case kHALF -> DataType.FLOAT16;
            case kBF16 -> DataType.BFLOAT16;
            case kINT8 -> DataType.INT8;
            case kUINT8 -> DataType.UINT8;
            case kINT32 -> DataType.INT32;
            case kINT64 -> DataType.INT64;
            case kBOOL -> DataType.BOOL;
            default -> throw Peft4jException.unsupported("engine tensor '" + name + "' has TensorRT type " + t
                    + ", which peft4j does not exchange");
        };
    }

    static long[] longs(Dims64 d) {
        long[] out = new long[Math.max(0, d.nbDims())];
        for (int i = 0; i < out.length; i++) {
            out[i] = d.d(i);
        }
        return out;
    }

    // ---------------------------------------------------------------- the thread

    private <T> T call(Callable<T> task) {
        Future<T> f;
        try {
            f = thread.submit(task);
        } catch (RuntimeException e) {
            throw closedError();
        }
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for TensorRT", e);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof RuntimeException r) {
                throw r;
            }
            if (c instanceof Error err) {
                throw err;
            }
            throw new IllegalStateException(c);
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

    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        Map<String, Adapter> was = adapters.close();
        try {
            thread.execute(() -> {
                was.values().forEach(TensorRtBackend::free);
                defaults.values().forEach(Cuda.DeviceBuffer::close);
                deviceIo.values().forEach(Cuda.DeviceBuffer::close);
                hostIo.values().forEach(Cuda.HostBuffer::close);
                if (stream != null) {
                    cudart.cudaStreamDestroy(stream);
                    stream = null;
                }
            });
        } catch (RuntimeException e) {
            // already shut down
        }
        thread.shutdown();
        try {
            thread.awaitTermination(60, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
