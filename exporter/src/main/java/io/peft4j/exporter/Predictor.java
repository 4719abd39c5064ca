package io.peft4j.exporter;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.pkg.ModelPackage;
import io.peft4j.core.tensor.Tensor;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Runs a model package (or a bare ONNX model) in ONNX Runtime on the CPU with the adapter a
 * caller names, the way the package's mode serves adapters:
 * <ul>
 *   <li>{@code side}: no adapter gives the base model (the adapter inputs' defaults); an adapter
 *       is activated through ONNX Runtime's LoRA API ({@code OrtLoraAdapter} from its
 *       {@code .onnx_adapter} file + {@code RunOptions.addActiveLoraAdapter}), the only way
 *       ONNX Runtime's Java binding lets a run override inputs that have initializer defaults;</li>
 *   <li>{@code multi}: {@code adapter_index} is filled with the adapter's index for every batch
 *       row (0 with no adapter), unless the caller feeds it row by row;</li>
 *   <li>{@code merged}: the adapter, when named, must be the merged one;</li>
 *   <li>{@code base} and bare models take no adapter.</li>
 * </ul>
 * One session per predictor, opened from the model file (external data resolves beside it);
 * adapters are loaded once and kept until {@link #close()}, which is idempotent. Not for use by
 * several threads at once (the runtime module owns concurrent serving).
 */
public final class Predictor implements AutoCloseable {

    private final Path modelFile;
    private final Path packageDir;
    private final Manifest manifest;
    private final OrtEnvironment env = OrtEnvironment.getEnvironment();
    private final OrtSession session;
    private final Map<String, OrtLoraAdapter> loras = new LinkedHashMap<>();
    private boolean closed;

    private Predictor(Path modelFile, Path packageDir, Manifest manifest, int threads) {
        this.modelFile = modelFile;
        this.packageDir = packageDir;
        this.manifest = manifest;
        try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
            // overridable initializers (the side graph's adapter inputs) draw a warning per input
            o.setSessionLogLevel(ai.onnxruntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR);
            o.setIntraOpNumThreads(threads);
            o.setInterOpNumThreads(1);
            this.session = env.createSession(modelFile.toAbsolutePath().toString(), o);
        } catch (OrtException e) {
            throw new Peft4jException(ErrorCode.MALFORMED, "ONNX Runtime cannot load " + modelFile + ": " + e.getMessage(), e);
        }
    }

    /** Opens a package directory or an {@code .onnx} file with up to 4 threads. */
    public static Predictor open(Path modelOrPackage) {
        return open(modelOrPackage, Math.min(4, Runtime.getRuntime().availableProcessors()));
    }

    public static Predictor open(Path modelOrPackage, int threads) {
        if (threads < 1) {
            throw Peft4jException.invalid("threads must be at least 1, got " + threads);
        }
        if (Files.isDirectory(modelOrPackage)) {
            ModelPackage p = ModelPackage.open(modelOrPackage);
            return new Predictor(p.modelFile(), p.dir(), p.manifest(), threads);
        }
        if (!Files.isRegularFile(modelOrPackage)) {
            throw new Peft4jException(ErrorCode.IO, "model not found: " + modelOrPackage
                    + " (give a model package directory or an .onnx file)");
        }
        return new Predictor(modelOrPackage, null, null, threads);
    }

    /** The package's manifest; empty for a bare model file. */
    public Optional<Manifest> manifest() {
        return Optional.ofNullable(manifest);
    }

    public Path modelFile() {
        return modelFile;
    }

    /** The inputs a caller feeds, in the model's order (a multi package's adapter index excluded). */
    public List<String> inputNames() {
        List<String> names = new ArrayList<>();
        for (String n : sessionInputs()) {
            if (!n.equals(adapterIndexInput())) {
                names.add(n);
            }
        }
        return names;
    }

    public List<String> outputNames() {
        return new ArrayList<>(session.getOutputNames());
    }

    /** An input's element type and shape as ONNX Runtime reports it (-1 for a symbolic dim). */
    public Optional<TensorInfo> inputInfo(String name) {
        try {
            NodeInfo i = session.getInputInfo().get(name);
            return i != null && i.getInfo() instanceof TensorInfo t ? Optional.of(t) : Optional.empty();
        } catch (OrtException e) {
            throw new Peft4jException(ErrorCode.MALFORMED, "cannot read the inputs of " + modelFile + ": " + e.getMessage(), e);
        }
    }

    /** The adapter names the package serves ({@code null} means the base model where the mode has one). */
    public List<String> adapterNames() {
        return manifest == null ? List.of() : manifest.adapters().stream().map(Manifest.Adapter::name).toList();
    }

    private List<String> sessionInputs() {
        return new ArrayList<>(session.getInputNames());
    }

    private String adapterIndexInput() {
        return manifest != null && manifest.mode() == Manifest.Mode.multi ? manifest.adapterIndexInput() : null;
    }

    /**
     * Runs the model on {@code inputs} with {@code adapter} (null: none) and returns every output
     * in the model's order. Inputs must all be given and named as the model names them.
     */
    public Map<String, Tensor> run(Map<String, Tensor> inputs, String adapter) {
        if (closed) {
            throw new IllegalStateException("the predictor is closed");
        }
        Map<String, Tensor> feeds = new LinkedHashMap<>(inputs);
        OrtLoraAdapter lora = null;
        String what = manifest == null ? modelFile.toString() : "package " + packageDir;
        Manifest.Mode mode = manifest == null ? Manifest.Mode.base : manifest.mode();
        if (adapter != null && manifest == null) {
            throw Peft4jException.invalid("--adapter needs a model package; " + modelFile + " is a bare ONNX model");
        }
        switch (mode) {
            case base -> {
                if (adapter != null) {
                    throw Peft4jException.invalid(what + " is a base package without adapters; it cannot run adapter '" + adapter + "'");
                }
            }
            case merged -> {
                if (adapter != null && !adapter.equals(manifest.mergedAdapter())) {
                    manifest.adapter(adapter);   // not found: names the package's adapters
                    throw Peft4jException.invalid(what + " has adapter '" + manifest.mergedAdapter() + "' merged into its "
                            + "weights; it cannot run '" + adapter + "'");
                }
            }
            case side -> {
                if (adapter != null) {
                    lora = lora(manifest.adapter(adapter));
                }
            }
            case multi -> {
                String idx = manifest.adapterIndexInput();
                if (feeds.containsKey(idx)) {
                    if (adapter != null) {
                        throw Peft4jException.invalid("give either an adapter or the '" + idx + "' input, not both");
                    }
                } else {
                    long index = adapter == null ? 0 : manifest.adapter(adapter).index();
                    long batch = batchSize(feeds);
                    long[] rows = new long[Math.toIntExact(batch)];
                    Arrays.fill(rows, index);
                    feeds.put(idx, Tensor.ofLongs(new long[] {batch}, rows));
                }
            }
            default -> throw new IllegalStateException(mode.toString());
        }
        List<String> want = sessionInputs();
        for (String n : feeds.keySet()) {
            if (!want.contains(n)) {
                throw Peft4jException.notFound(what + " has no input '" + n + "'; its inputs are " + inputNames());
            }
        }
        List<String> missing = want.stream().filter(n -> !feeds.containsKey(n)).toList();
        if (!missing.isEmpty()) {
            throw Peft4jException.notFound(what + " needs input" + (missing.size() == 1 ? " " : "s ") + missing
                    + " (its inputs are " + inputNames() + ")");
        }
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
                try (OrtSession.Result r = session.run(ort, ro)) {
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
            throw new Peft4jException(ErrorCode.INVALID_ARGUMENT, "ONNX Runtime cannot run " + what
                    + (adapter == null ? "" : " with adapter '" + adapter + "'") + ": " + e.getMessage(), e);
        } finally {
            ort.values().forEach(OnnxTensor::close);
        }
    }

    private static long batchSize(Map<String, Tensor> feeds) {
        for (Tensor t : feeds.values()) {
            if (t.rank() > 0) {
                return t.dim(0);
            }
        }
        throw Peft4jException.invalid("cannot tell the batch size: no input has a batch axis");
    }

    private OrtLoraAdapter lora(Manifest.Adapter a) {
        OrtLoraAdapter l = loras.get(a.name());
        if (l != null) {
            return l;
        }
        if (a.onnxAdapter() == null) {
            throw Peft4jException.malformed("package " + packageDir + ": side adapter '" + a.name() + "' has no .onnx_adapter file");
        }
        Path file = packageDir.resolve(a.onnxAdapter());
        OnnxAdapterFile.read(file);   // our own checks first: a clear message for a damaged file
        try {
            l = OrtLoraAdapter.create(file.toAbsolutePath().toString());
        } catch (OrtException e) {
            throw new Peft4jException(ErrorCode.MALFORMED, "ONNX Runtime cannot load adapter file " + file + ": " + e.getMessage(), e);
        }
        loras.put(a.name(), l);
        return l;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (OrtLoraAdapter l : loras.values()) {
            l.close();
        }
        loras.clear();
        try {
            session.close();
        } catch (OrtException e) {
            // nothing to do: the native session is gone either way
        }
    }
}
