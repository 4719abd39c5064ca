package io.peft4j.core.testkit;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Runs models in ONNX Runtime for tests: the independent oracle for every graph we build. */
public final class Ort {

    private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();

    private Ort() {
    }

    public static OrtEnvironment env() {
        return ENV;
    }

    private static OrtSession.SessionOptions options() throws OrtException {
        OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        o.setIntraOpNumThreads(1);
        o.setInterOpNumThreads(1);
        return o;
    }

    /** Runs an in-memory model (every initializer inline) on the given inputs. */
    public static Map<String, Tensor> run(Model model, Map<String, Tensor> inputs) {
        return run(OnnxIO.toBytes(model), inputs);
    }

    public static Map<String, Tensor> run(byte[] modelBytes, Map<String, Tensor> inputs) {
        try (OrtSession.SessionOptions o = options(); OrtSession s = ENV.createSession(modelBytes, o)) {
            return run(s, inputs);
        } catch (OrtException e) {
            throw new AssertionError("ONNX Runtime failed: " + e.getMessage(), e);
        }
    }

    /** Runs a model file (ONNX Runtime resolves its external data itself). */
    public static Map<String, Tensor> run(Path modelFile, Map<String, Tensor> inputs) {
        try (OrtSession.SessionOptions o = options(); OrtSession s = ENV.createSession(modelFile.toString(), o)) {
            return run(s, inputs);
        } catch (OrtException e) {
            throw new AssertionError("ONNX Runtime failed on " + modelFile + ": " + e.getMessage(), e);
        }
    }

    private static Map<String, Tensor> run(OrtSession s, Map<String, Tensor> inputs) throws OrtException {
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, Tensor> e : inputs.entrySet()) {
                feeds.put(e.getKey(), toOrt(e.getValue()));
            }
            Map<String, Tensor> out = new LinkedHashMap<>();
            try (OrtSession.Result r = s.run(feeds)) {
                for (Map.Entry<String, OnnxValue> e : r) {
                    out.put(e.getKey(), fromOrt((OnnxTensor) e.getValue()));
                }
            }
            return out;
        } finally {
            for (OnnxTensor t : feeds.values()) {
                t.close();
            }
        }
    }

    /** A tensor as an ORT tensor (copies into a direct buffer). */
    public static OnnxTensor toOrt(Tensor t) throws OrtException {
        long[] shape = t.shape();
        if (t.dtype() == DataType.STRING) {
            List<byte[]> v = t.strings();
            String[] s = new String[v.size()];
            for (int i = 0; i < s.length; i++) {
                s[i] = new String(v.get(i), java.nio.charset.StandardCharsets.UTF_8);
            }
            return OnnxTensor.createTensor(ENV, s, shape);
        }
        ByteBuffer direct = ByteBuffer.allocateDirect((int) t.byteSize()).order(ByteOrder.nativeOrder());
        direct.put(t.bytes().order(ByteOrder.LITTLE_ENDIAN));
        direct.rewind();
        OnnxJavaType jt = switch (t.dtype()) {
            case FLOAT -> OnnxJavaType.FLOAT;
            case DOUBLE -> OnnxJavaType.DOUBLE;
            case INT8 -> OnnxJavaType.INT8;
            case UINT8 -> OnnxJavaType.UINT8;
            case INT16 -> OnnxJavaType.INT16;
            case INT32 -> OnnxJavaType.INT32;
            case INT64 -> OnnxJavaType.INT64;
            case BOOL -> OnnxJavaType.BOOL;
            case FLOAT16 -> OnnxJavaType.FLOAT16;
            case BFLOAT16 -> OnnxJavaType.BFLOAT16;
            default -> throw new AssertionError("no ORT Java type for " + t.dtype());
        };
        return OnnxTensor.createTensor(ENV, direct, shape, jt);
    }

    /** An ORT tensor as a tensor (copies). */
    public static Tensor fromOrt(OnnxTensor t) throws OrtException {
        long[] shape = t.getInfo().getShape();
        DataType dt = switch (t.getInfo().onnxType) {
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT -> DataType.FLOAT;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE -> DataType.DOUBLE;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8 -> DataType.INT8;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 -> DataType.UINT8;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16 -> DataType.INT16;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16 -> DataType.UINT16;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 -> DataType.INT32;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32 -> DataType.UINT32;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 -> DataType.INT64;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64 -> DataType.UINT64;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL -> DataType.BOOL;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 -> DataType.FLOAT16;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16 -> DataType.BFLOAT16;
            case ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING -> DataType.STRING;
            default -> throw new AssertionError("unsupported ORT output type " + t.getInfo().onnxType);
        };
        if (dt == DataType.STRING) {
            String[] flat = (String[]) flatten(t.getValue());
            List<byte[]> l = new ArrayList<>();
            for (String s : flat) {
                l.add(s.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            }
            return Tensor.ofStrings(shape, l);
        }
        ByteBuffer b = t.getByteBuffer().order(ByteOrder.nativeOrder());
        ByteBuffer le = ByteBuffer.allocate(b.remaining()).order(ByteOrder.LITTLE_ENDIAN);
        le.put(b);
        le.flip();
        return Tensor.wrap(dt, shape, le);
    }

    private static Object flatten(Object v) {
        if (v instanceof String[] s) {
            return s;
        }
        List<String> out = new ArrayList<>();
        collect(v, out);
        return out.toArray(new String[0]);
    }

    private static void collect(Object v, List<String> out) {
        if (v instanceof String s) {
            out.add(s);
        } else if (v instanceof Object[] arr) {
            for (Object o : arr) {
                collect(o, out);
            }
        }
    }

    /** Largest |a - b| over the largest |b| (1e-12 at least), for tensors of the same size. */
    public static double maxRelDiff(Tensor a, Tensor b) {
        double scale = 0;
        for (long i = 0; i < b.numel(); i++) {
            scale = Math.max(scale, Math.abs(b.getDouble(i)));
        }
        return maxAbsDiff(a, b) / Math.max(scale, 1e-12);
    }

    /** Largest absolute difference between two float-valued tensors of the same shape. */
    public static double maxAbsDiff(Tensor a, Tensor b) {
        if (a.numel() != b.numel()) {
            throw new AssertionError("element counts differ: " + a + " vs " + b);
        }
        double m = 0;
        for (long i = 0; i < a.numel(); i++) {
            m = Math.max(m, Math.abs(a.getDouble(i) - b.getDouble(i)));
        }
        return m;
    }
}
