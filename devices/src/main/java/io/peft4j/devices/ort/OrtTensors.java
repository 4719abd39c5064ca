package io.peft4j.devices.ort;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.TensorInfo;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Copies between peft4j tensors and ONNX Runtime tensors: numeric types, bool and strings.
 * {@link #toOrt} hands ONNX Runtime a tensor's own bytes without a copy when they already live
 * off-heap in little-endian order (the caller keeps the tensor alive until the ONNX Runtime
 * tensor is closed), and copies them into a direct buffer otherwise; {@link #fromOrt} always
 * copies, so that its result outlives the ONNX Runtime result it came from.
 */
public final class OrtTensors {

    private OrtTensors() {
    }

    /** The ONNX Runtime element type of a peft4j type, or an UNSUPPORTED error naming it. */
    static OnnxJavaType javaType(DataType dt) {
        return switch (dt) {
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
            case STRING -> OnnxJavaType.STRING;
            default -> throw Peft4jException.unsupported("cannot feed a " + dt + " tensor to ONNX Runtime");
        };
    }

    /** The peft4j type of an ONNX Runtime element type, or an UNSUPPORTED error naming it. */
    public static DataType dataType(TensorInfo.OnnxTensorType type) {
        return switch (type) {
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
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING -> DataType.STRING;
            default -> throw Peft4jException.unsupported("ONNX Runtime element type " + type + " is not supported");
        };
    }

    public static OnnxTensor toOrt(OrtEnvironment env, Tensor t) throws OrtException {
        OnnxJavaType jt = javaType(t.dtype());
        if (t.dtype() == DataType.STRING) {
            List<byte[]> values = t.strings();
            String[] s = new String[values.size()];
            for (int i = 0; i < s.length; i++) {
                s[i] = new String(values.get(i), StandardCharsets.UTF_8);
            }
            return OnnxTensor.createTensor(env, s, t.shape());
        }
        if (t.byteSize() > Integer.MAX_VALUE) {
            throw Peft4jException.invalid("a " + t.byteSize() + "-byte input is over the 2 GiB a single ONNX Runtime tensor "
                    + "can take from Java");
        }
        requireLittleEndian();
        ByteBuffer own = t.bytes();
        if (own.isDirect()) {
            // ONNX Runtime reads a direct buffer in place
            return OnnxTensor.createTensor(env, own.order(ByteOrder.nativeOrder()), t.shape(), jt);
        }
        ByteBuffer direct = ByteBuffer.allocateDirect((int) t.byteSize()).order(ByteOrder.nativeOrder());
        direct.put(own).rewind();
        return OnnxTensor.createTensor(env, direct, t.shape(), jt);
    }

    public static Tensor fromOrt(OnnxTensor t) throws OrtException {
        DataType dt = dataType(t.getInfo().onnxType);
        long[] shape = t.getInfo().getShape();
        if (dt == DataType.STRING) {
            String[] flat = t.getInfo().getShape().length == 0 ? new String[] {(String) t.getValue()} : flatten(t);
            List<byte[]> values = new ArrayList<>(flat.length);
            for (String s : flat) {
                values.add(s.getBytes(StandardCharsets.UTF_8));
            }
            return Tensor.ofStrings(shape, values);
        }
        requireLittleEndian();
        ByteBuffer b = t.getByteBuffer();
        ByteBuffer le = ByteBuffer.allocate(b.remaining()).order(ByteOrder.LITTLE_ENDIAN);
        le.put(b).flip();
        return Tensor.wrap(dt, shape, le);
    }

    private static String[] flatten(OnnxTensor t) throws OrtException {
        List<String> out = new ArrayList<>();
        collect(t.getValue(), out);
        return out.toArray(new String[0]);
    }

    private static void collect(Object o, List<String> out) {
        if (o instanceof String s) {
            out.add(s);
        } else if (o instanceof Object[] a) {
            for (Object x : a) {
                collect(x, out);
            }
        }
    }

    private static void requireLittleEndian() {
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            throw Peft4jException.unsupported("peft4j runs on little-endian machines only");
        }
    }
}
