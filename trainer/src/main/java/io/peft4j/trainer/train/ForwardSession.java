package io.peft4j.trainer.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.onnx.proto.Onnx.GraphProto;
import io.peft4j.core.onnx.proto.Onnx.ModelProto;
import io.peft4j.core.onnx.proto.Onnx.TensorProto;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Inference with the current trainable values, for evaluation during training: the model before
 * its gradient graph, with the trainable tensors turned from initializers into graph inputs, in one
 * ONNX Runtime session. Each trainable tensor has one direct buffer that an ONNX Runtime tensor
 * wraps without copying; a run copies the current values in. Returns the logits as a float array.
 * Not thread-safe; {@link #close()} is idempotent.
 */
final class ForwardSession implements AutoCloseable {

    private final OrtEnvironment env = OrtEnvironment.getEnvironment();
    private final OrtSession session;
    private final String logits;
    private final Map<String, FloatBuffer> buffers = new LinkedHashMap<>();
    private final Map<String, OnnxTensor> wrapped = new LinkedHashMap<>();
    private boolean closed;

    ForwardSession(Model model, Collection<String> trainable, String logits, int threads) {
        this.logits = logits;
        ModelProto p = OnnxIO.toProto(model);
        GraphProto.Builder g = p.getGraph().toBuilder();
        Map<String, long[]> shapes = new LinkedHashMap<>();
        List<TensorProto> keep = new ArrayList<>();
        for (TensorProto t : g.getInitializerList()) {
            if (trainable.contains(t.getName())) {
                long[] dims = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
                shapes.put(t.getName(), dims);
                g.addInput(ValueInfos.tensor(t.getName(), DataType.FLOAT, Arrays.stream(dims).boxed().toArray()));
            } else {
                keep.add(t);
            }
        }
        g.clearInitializer().addAllInitializer(keep);
        if (shapes.size() != trainable.size()) {
            throw new Peft4jException(ErrorCode.GRAPH_STATE, "the evaluation model lacks trainable initializers: "
                    + trainable.stream().filter(t -> !shapes.containsKey(t)).toList());
        }
        OrtSession s = null;
        try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
            o.setIntraOpNumThreads(threads);
            o.setInterOpNumThreads(1);
            s = env.createSession(p.toBuilder().setGraph(g).build().toByteArray(), o);
            for (Map.Entry<String, long[]> e : shapes.entrySet()) {
                FloatBuffer b = ByteBuffer.allocateDirect(Math.toIntExact(Tensor.numel(e.getValue()) * Float.BYTES))
                        .order(ByteOrder.nativeOrder()).asFloatBuffer();
                buffers.put(e.getKey(), b);
                wrapped.put(e.getKey(), OnnxTensor.createTensor(env, b, e.getValue()));
            }
        } catch (OrtException e) {
            wrapped.values().forEach(OnnxTensor::close);
            if (s != null) {
                try {
                    s.close();
                } catch (OrtException ignored) {
                    // the load failure is what the caller hears about
                }
            }
            throw new Peft4jException(ErrorCode.INVALID_ARGUMENT, "ONNX Runtime cannot load the evaluation model: "
                    + e.getMessage(), e);
        }
        this.session = s;
    }

    /** The logits [batch, classes] of {@code inputs} with {@code values} for the trainable tensors. */
    float[] logits(Map<String, Tensor> inputs, Map<String, float[]> values) {
        if (closed) {
            throw new Peft4jException(ErrorCode.GRAPH_STATE, "the evaluation session is closed");
        }
        for (Map.Entry<String, FloatBuffer> e : buffers.entrySet()) {
            FloatBuffer b = e.getValue();
            b.clear();
            b.put(values.get(e.getKey()));
            b.clear();
        }
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>(wrapped);
        List<OnnxTensor> made = new ArrayList<>();
        try {
            for (Map.Entry<String, Tensor> e : inputs.entrySet()) {
                OnnxTensor t = io.peft4j.trainer.GradientSession.toOrt(env, e.getValue(), e.getKey());
                made.add(t);
                feeds.put(e.getKey(), t);
            }
            try (OrtSession.Result r = session.run(feeds, java.util.Set.of(logits))) {
                FloatBuffer fb = ((OnnxTensor) r.get(logits).orElseThrow()).getFloatBuffer();
                float[] out = new float[fb.remaining()];
                fb.get(out);
                return out;
            }
        } catch (OrtException e) {
            throw new Peft4jException(ErrorCode.INVALID_ARGUMENT, "ONNX Runtime failed on an evaluation batch: " + e.getMessage(), e);
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
        try {
            session.close();
        } catch (OrtException ignored) {
            // nothing left to release
        }
    }
}
