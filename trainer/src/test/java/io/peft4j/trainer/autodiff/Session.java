package io.peft4j.trainer.autodiff;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Ort;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/** One ONNX Runtime session kept open for many runs (finite differences run a graph hundreds of times). */
final class Session implements AutoCloseable {

    private final OrtSession session;

    Session(Model model, int threads) {
        this(model, threads, false);
    }

    /**
     * {@code basicOptimizations}: only ONNX Runtime's basic graph rewrites. For float64 graphs: the
     * extended level fuses MatMul + Transpose into com.microsoft.FusedMatMul, which has float32
     * kernels only.
     */
    Session(Model model, int threads, boolean basicOptimizations) {
        try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
            if (basicOptimizations) {
                o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.BASIC_OPT);
            }
            o.setIntraOpNumThreads(threads);
            o.setInterOpNumThreads(1);
            session = Ort.env().createSession(OnnxIO.toBytes(model), o);
        } catch (OrtException e) {
            throw new AssertionError("ONNX Runtime cannot load the model: " + e.getMessage(), e);
        }
    }

    Session(Model model) {
        this(model, 1);
    }

    Map<String, Tensor> run(Map<String, Tensor> inputs) {
        return run(inputs, null);
    }

    Map<String, Tensor> run(Map<String, Tensor> inputs, Set<String> outputs) {
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, Tensor> e : inputs.entrySet()) {
                feeds.put(e.getKey(), Ort.toOrt(e.getValue()));
            }
            Map<String, Tensor> out = new LinkedHashMap<>();
            try (OrtSession.Result r = outputs == null ? session.run(feeds) : session.run(feeds, outputs)) {
                for (Map.Entry<String, OnnxValue> e : r) {
                    out.put(e.getKey(), Ort.fromOrt((OnnxTensor) e.getValue()));
                }
            }
            return out;
        } catch (OrtException e) {
            throw new AssertionError("ONNX Runtime failed: " + e.getMessage(), e);
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }

    @Override
    public void close() {
        try {
            session.close();
        } catch (OrtException e) {
            // closing twice or after a failed run: nothing left to release
        }
    }
}
