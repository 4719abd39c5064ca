package io.peft4j.cli;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Runs a model in ONNX Runtime (CPU) for the CLI: named tensors in, named tensors out. The devices
 * module will own inference backends; this is the smallest thing the CLI commands need until then.
 */
final class OrtRun {

    private OrtRun() {
    }

    /** Runs {@code model} on {@code inputs}; returns every output, in the model's order. */
    static Map<String, Tensor> run(Path model, Map<String, Tensor> inputs) {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
            o.setIntraOpNumThreads(Math.min(4, Runtime.getRuntime().availableProcessors()));
            try (OrtSession s = env.createSession(model.toString(), o)) {
                for (String name : inputs.keySet()) {
                    if (!s.getInputNames().contains(name)) {
                        throw Peft4jException.notFound("the model has no input '" + name + "'; its inputs are " + s.getInputNames());
                    }
                }
                for (Map.Entry<String, Tensor> e : inputs.entrySet()) {
                    feeds.put(e.getKey(), toOrt(env, e.getValue()));
                }
                Map<String, Tensor> out = new LinkedHashMap<>();
                try (OrtSession.Result r = s.run(feeds)) {
                    for (Map.Entry<String, OnnxValue> e : r) {
                        out.put(e.getKey(), fromOrt((OnnxTensor) e.getValue()));
                    }
                }
                return out;
            }
        } catch (OrtException e) {
            throw new Peft4jException(Peft4jException.ErrorCode.INVALID_ARGUMENT, "ONNX Runtime cannot run " + model + ": "
                    + e.getMessage(), e);
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }

    private static OnnxTensor toOrt(OrtEnvironment env, Tensor t) throws OrtException {
        OnnxJavaType jt = switch (t.dtype()) {
            case FLOAT -> OnnxJavaType.FLOAT;
            case DOUBLE -> OnnxJavaType.DOUBLE;
            case INT64 -> OnnxJavaType.INT64;
            case INT32 -> OnnxJavaType.INT32;
            case INT8 -> OnnxJavaType.INT8;
            case UINT8 -> OnnxJavaType.UINT8;
            case BOOL -> OnnxJavaType.BOOL;
            case FLOAT16 -> OnnxJavaType.FLOAT16;
            default -> throw Peft4jException.unsupported("cannot feed a " + t.dtype() + " tensor to ONNX Runtime");
        };
        ByteBuffer direct = ByteBuffer.allocateDirect((int) t.byteSize()).order(ByteOrder.nativeOrder());
        direct.put(t.bytes()).rewind();
        return OnnxTensor.createTensor(env, direct, t.shape(), jt);
    }

    private static Tensor fromOrt(OnnxTensor t) throws OrtException {
        DataType dt = switch (t.getInfo().onnxType) {
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT -> DataType.FLOAT;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE -> DataType.DOUBLE;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 -> DataType.INT64;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 -> DataType.INT32;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8 -> DataType.INT8;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 -> DataType.UINT8;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL -> DataType.BOOL;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 -> DataType.FLOAT16;
            default -> throw Peft4jException.unsupported("output of type " + t.getInfo().onnxType + " is not supported");
        };
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            throw Peft4jException.unsupported("peft4j runs on little-endian machines only");
        }
        ByteBuffer b = t.getByteBuffer();
        ByteBuffer le = ByteBuffer.allocate(b.remaining()).order(ByteOrder.LITTLE_ENDIAN);
        le.put(b).flip();
        return Tensor.wrap(dt, t.getInfo().getShape(), le);
    }
}
