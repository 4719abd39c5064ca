package io.peft4j.trainer;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.ort.OrtTensors;
import io.peft4j.trainer.autodiff.GradientGraph;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * One training step at a time on ONNX Runtime: a session over a {@link GradientGraph}, opened once
 * and run for every batch, that takes the batch and the current values of the trainable tensors
 * and returns the loss, the gradients and the outputs asked for. The optimizer owns the trainable
 * values (float arrays) and updates them between steps.
 *
 * <p>Each trainable tensor has one direct buffer, made when the session opens, that an ONNX
 * Runtime tensor wraps without copying: a step copies the current values into it and runs; no
 * native tensor is made per step for them. Batch tensors are copied into native memory each
 * step, and every output is copied out before the step returns: nothing returned refers to
 * native memory. Float32 graphs only (trainable tensors, loss and gradients).
 *
 * <p>Not thread-safe: one step at a time. {@link #close()} releases the session and the native
 * tensors; it is idempotent and throws nothing. A step after closing is refused.
 */
public final class GradientSession implements AutoCloseable {

    /**
     * What one step computed; owns no native memory.
     *
     * @param loss      the loss (the mean over the batch)
     * @param gradients trainable tensor → gradient of the loss, in the graph's trainable order; each
     *                  array is fresh and belongs to the caller
     * @param outputs   the model outputs asked for when the session was opened (logits, …), copied
     */
    public record Step(double loss, Map<String, float[]> gradients, Map<String, Tensor> outputs) {
        public Step {
            gradients = Collections.unmodifiableMap(new LinkedHashMap<>(gradients));
            outputs = Collections.unmodifiableMap(new LinkedHashMap<>(outputs));
        }
    }

    private final GradientGraph graph;
    private final OrtEnvironment env = OrtEnvironment.getEnvironment();
    private final OrtSession session;
    private final Map<String, long[]> shapes = new LinkedHashMap<>();
    private final Map<String, FloatBuffer> buffers = new LinkedHashMap<>();
    private final Map<String, OnnxTensor> wrapped = new LinkedHashMap<>();
    private final List<String> batchInputs = new ArrayList<>();
    private final List<String> fetchedOutputs;
    private final Set<String> fetch;
    private boolean closed;

    /** A session that returns loss and gradients only, on {@code intraOpThreads} threads. */
    public GradientSession(GradientGraph graph, int intraOpThreads) {
        this(graph, intraOpThreads, List.of());
    }

    /**
     * A session that also returns the model outputs {@code outputs} (a subset of
     * {@link GradientGraph#outputs()}) from every step.
     */
    public GradientSession(GradientGraph graph, int intraOpThreads, Collection<String> outputs) {
        this(graph, checkThreads(intraOpThreads), null, outputs);
    }

    /**
     * A session opened with the caller's ONNX Runtime options (threads or a shared global thread
     * pool, optimization level, profiling, …) in the default environment, that also returns the
     * model outputs {@code outputs}. The options are read when the session opens; the caller
     * keeps and closes them.
     */
    public GradientSession(GradientGraph graph, OrtSession.SessionOptions options, Collection<String> outputs) {
        this(graph, 0, java.util.Objects.requireNonNull(options, "options"), outputs);
    }

    private static int checkThreads(int intraOpThreads) {
        if (intraOpThreads < 1) {
            throw Peft4jException.invalid("intra-op threads must be at least 1, got " + intraOpThreads);
        }
        return intraOpThreads;
    }

    private GradientSession(GradientGraph graph, int intraOpThreads, OrtSession.SessionOptions given,
                            Collection<String> outputs) {
        for (String o : outputs) {
            if (!graph.outputs().contains(o)) {
                throw Peft4jException.notFound("'" + o + "' is not an output of the model; its outputs are " + graph.outputs());
            }
        }
        this.graph = graph;
        this.fetchedOutputs = List.copyOf(new LinkedHashSet<>(outputs));
        Map<String, ValueInfoProto> inputs = new LinkedHashMap<>();
        for (ValueInfoProto v : graph.model().graph().inputs()) {
            inputs.put(v.getName(), v);
        }
        for (String t : graph.trainable()) {
            ValueInfoProto v = inputs.get(t);
            if (v == null) {
                throw Peft4jException.notFound("trainable tensor '" + t + "' is not an input of the gradient graph");
            }
            DataType dt = ValueInfos.elementType(v).orElse(null);
            if (dt != DataType.FLOAT) {
                throw Peft4jException.unsupported("trainable tensor '" + t + "' is " + dt + "; a gradient session trains "
                        + "float32 tensors");
            }
            shapes.put(t, staticShape(t, v));
        }
        for (String name : inputs.keySet()) {
            if (!shapes.containsKey(name) && !graph.model().graph().hasInitializer(name)) {
                batchInputs.add(name);
            }
        }
        Set<String> f = new LinkedHashSet<>();
        f.add(graph.loss());
        f.addAll(graph.gradients().values());
        f.addAll(fetchedOutputs);
        this.fetch = Collections.unmodifiableSet(f);

        OrtSession s = null;
        try (OrtSession.SessionOptions own = given == null ? new OrtSession.SessionOptions() : null) {
            OrtSession.SessionOptions o = given;
            if (own != null) {
                own.setIntraOpNumThreads(intraOpThreads);
                own.setInterOpNumThreads(1);
                o = own;
            }
            s = env.createSession(OnnxIO.toBytes(graph.model()), o);
            for (Map.Entry<String, long[]> e : shapes.entrySet()) {
                long n = Tensor.numel(e.getValue());
                FloatBuffer b = ByteBuffer.allocateDirect(Math.toIntExact(n * Float.BYTES)).order(ByteOrder.nativeOrder())
                        .asFloatBuffer();
                buffers.put(e.getKey(), b);
                // a direct buffer in native order: the ORT tensor is backed by it, not a copy
                wrapped.put(e.getKey(), OnnxTensor.createTensor(env, b, e.getValue()));
            }
        } catch (OrtException e) {
            wrapped.values().forEach(OnnxTensor::close);
            closeQuietly(s);
            throw new Peft4jException(ErrorCode.INVALID_ARGUMENT, "ONNX Runtime cannot load the gradient graph of model '"
                    + graph.model().graph().name() + "': " + e.getMessage(), e);
        }
        this.session = s;
    }

    private static long[] staticShape(String t, ValueInfoProto v) {
        List<Object> dims = ValueInfos.dims(v).orElseThrow(() -> Peft4jException.shape(
                "trainable tensor '" + t + "' declares no shape"));
        long[] s = new long[dims.size()];
        for (int i = 0; i < s.length; i++) {
            if (!(dims.get(i) instanceof Long d)) {
                throw Peft4jException.shape("trainable tensor '" + t + "' has a dimension not fixed when the graph is "
                        + "built: " + ValueInfos.describe(v));
            }
            s[i] = d;
        }
        return s;
    }

    public GradientGraph graph() {
        return graph;
    }

    /** The inputs a batch must hold (data and labels), in graph order. */
    public List<String> batchInputs() {
        return List.copyOf(batchInputs);
    }

    /** Trainable tensor → its shape, in the graph's trainable order. */
    public Map<String, long[]> trainableShapes() {
        Map<String, long[]> m = new LinkedHashMap<>();
        shapes.forEach((k, v) -> m.put(k, v.clone()));
        return m;
    }

    /**
     * Runs forward, loss and backward once.
     *
     * @param batch     every {@linkplain #batchInputs() batch input} (data, labels); read, not kept
     * @param trainable every trainable tensor's current values, row-major as its shape says; read,
     *                  not kept (copied into the session's buffers)
     */
    public Step step(Map<String, Tensor> batch, Map<String, float[]> trainable) {
        if (closed) {
            throw new Peft4jException(ErrorCode.GRAPH_STATE, "the gradient session is closed");
        }
        List<String> missing = new ArrayList<>();
        for (String b : batchInputs) {
            if (!batch.containsKey(b)) {
                missing.add(b);
            }
        }
        for (String t : shapes.keySet()) {
            if (!trainable.containsKey(t)) {
                missing.add(t);
            }
        }
        if (!missing.isEmpty()) {
            throw Peft4jException.notFound("a step needs values for " + missing);
        }
        for (String k : batch.keySet()) {
            if (!batchInputs.contains(k)) {
                throw Peft4jException.notFound("'" + k + "' is not a batch input of the gradient graph; its batch inputs are "
                        + batchInputs + (shapes.containsKey(k) ? " ('" + k + "' is trainable: pass it with the trainable values)" : ""));
            }
        }
        for (String k : trainable.keySet()) {
            if (!shapes.containsKey(k)) {
                throw Peft4jException.notFound("'" + k + "' is not a trainable tensor of the gradient graph; its trainable "
                        + "tensors are " + shapes.keySet());
            }
        }
        for (Map.Entry<String, FloatBuffer> e : buffers.entrySet()) {
            float[] v = trainable.get(e.getKey());
            FloatBuffer b = e.getValue();
            if (v.length != b.capacity()) {
                throw Peft4jException.shape("trainable tensor '" + e.getKey() + "' has " + b.capacity() + " elements "
                        + java.util.Arrays.toString(shapes.get(e.getKey())) + ", got " + v.length);
            }
            b.clear();
            b.put(v);
            b.clear();
        }
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>(wrapped);
        List<OnnxTensor> made = new ArrayList<>();
        try {
            for (String name : batchInputs) {
                OnnxTensor t = toOrt(env, batch.get(name), name);
                made.add(t);
                feeds.put(name, t);
            }
            try (OrtSession.Result r = session.run(feeds, fetch)) {
                double loss = ((OnnxTensor) r.get(graph.loss()).orElseThrow()).getFloatBuffer().get(0);
                Map<String, float[]> grads = new LinkedHashMap<>();
                for (Map.Entry<String, String> e : graph.gradients().entrySet()) {
                    FloatBuffer fb = ((OnnxTensor) r.get(e.getValue()).orElseThrow()).getFloatBuffer();
                    float[] g = new float[fb.remaining()];
                    fb.get(g);
                    grads.put(e.getKey(), g);
                }
                Map<String, Tensor> outs = new LinkedHashMap<>();
                for (String o : fetchedOutputs) {
                    Optional<OnnxValue> v = r.get(o);
                    outs.put(o, fromOrt((OnnxTensor) v.orElseThrow(), o));
                }
                return new Step(loss, grads, outs);
            }
        } catch (OrtException e) {
            throw new Peft4jException(ErrorCode.INVALID_ARGUMENT, "ONNX Runtime failed on a training step of model '"
                    + graph.model().graph().name() + "': " + e.getMessage(), e);
        } finally {
            made.forEach(OnnxTensor::close);
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        wrapped.values().forEach(OnnxTensor::close);
        wrapped.clear();
        buffers.clear();
        closeQuietly(session);
    }

    private static void closeQuietly(OrtSession s) {
        if (s == null) {
            return;
        }
        try {
            s.close();
        } catch (OrtException e) {
            // nothing is left to release: ORT reports a session closed twice or a failed release
        }
    }

    // ---------------------------------------------------------------- tensors across the boundary

    /**
     * A tensor in native memory for ONNX Runtime ({@link OrtTensors#toOrt}), refused with the input's
     * name when its element type cannot be fed. The caller closes it.
     */
    public static OnnxTensor toOrt(OrtEnvironment env, Tensor t, String name) throws OrtException {
        try {
            return OrtTensors.toOrt(env, t);
        } catch (Peft4jException e) {
            throw new Peft4jException(e.code(), "batch input '" + name + "': " + e.getMessage(), e);
        }
    }

    private static Tensor fromOrt(OnnxTensor t, String name) throws OrtException {
        try {
            return OrtTensors.fromOrt(t);
        } catch (Peft4jException e) {
            throw new Peft4jException(e.code(), "output '" + name + "': " + e.getMessage(), e);
        }
    }
}
