package io.peft4j.exporter;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Copies between peft4j tensors and ONNX Runtime tensors (numeric types; both directions copy). */
final class OrtTensors {

    private OrtTensors() {
    }

    static OnnxTensor toOrt(OrtEnvironment env, Tensor t) throws OrtException {
        OnnxJavaType jt = switch (t.dtype()) {
            case FLOAT -> OnnxJavaType.FLOAT;
            case DOUBLE -> OnnxJavaType.DOUBLE;
            case INT64 -> OnnxJavaType.INT64;
            case INT32 -> OnnxJavaType.INT32;
            case INT16 -> OnnxJavaType.INT16;
            case INT8 -> OnnxJavaType.INT8;
            case UINT8 -> OnnxJavaType.UINT8;
            case BOOL -> OnnxJavaType.BOOL;
            case FLOAT16 -> OnnxJavaType.FLOAT16;
            case BFLOAT16 -> OnnxJavaType.BFLOAT16;
            default -> throw Peft4jException.unsupported("cannot feed a " + t.dtype() + " tensor to ONNX Runtime");
        };
        if (t.byteSize() > Integer.MAX_VALUE) {
            throw Peft4jException.invalid("a " + t.byteSize() + "-byte input is over the 2 GiB a single ONNX Runtime tensor "
                    + "can take from Java");
        }
        ByteBuffer direct = ByteBuffer.allocateDirect((int) t.byteSize()).order(ByteOrder.nativeOrder());
        direct.put(t.bytes().order(ByteOrder.LITTLE_ENDIAN)).rewind();
        return OnnxTensor.createTensor(env, direct, t.shape(), jt);
    }

    static Tensor fromOrt(OnnxTensor t) throws OrtException {
        DataType dt = switch (t.getInfo().onnxType) {
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT -> DataType.FLOAT;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE -> DataType.DOUBLE;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 -> DataType.INT64;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 -> DataType.INT32;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16 -> DataType.INT16;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8 -> DataType.INT8;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 -> DataType.UINT8;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL -> DataType.BOOL;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 -> DataType.FLOAT16;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16 -> DataType.BFLOAT16;
            default -> throw Peft4jException.unsupported("model output of type " + t.getInfo().onnxType + " is not supported");
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
