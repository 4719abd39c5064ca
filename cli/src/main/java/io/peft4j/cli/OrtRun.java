package io.peft4j.cli;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.Tensor;

import java.nio.FloatBuffer;
import java.nio.file.Path;

/**
 * Runs a float model with one input and one output in ONNX Runtime (CPU), for the CLI's checks.
 * The devices module will own inference backends; this is the smallest thing the quickstart needs.
 */
final class OrtRun {

    private OrtRun() {
    }

    static float[] run(Path model, String input, Tensor x) {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
            o.setIntraOpNumThreads(Math.min(4, Runtime.getRuntime().availableProcessors()));
            try (OrtSession s = env.createSession(model.toString(), o);
                 OnnxTensor t = OnnxTensor.createTensor(env, FloatBuffer.wrap(x.toFloatArray()), x.shape());
                 OrtSession.Result r = s.run(java.util.Map.of(input, t))) {
                FloatBuffer out = ((OnnxTensor) r.get(0)).getFloatBuffer();
                float[] v = new float[out.remaining()];
                out.get(v);
                return v;
            }
        } catch (OrtException e) {
            throw new Peft4jException(Peft4jException.ErrorCode.UNSUPPORTED, "ONNX Runtime cannot run " + model + ": "
                    + e.getMessage(), e);
        }
    }
}
