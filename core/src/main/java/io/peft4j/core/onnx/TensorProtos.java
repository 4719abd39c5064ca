package io.peft4j.core.onnx;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.proto.Onnx.TensorProto;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Converts between ONNX {@code TensorProto}s and {@link Tensor}s. Reading accepts every way ONNX
 * stores data (raw bytes or the typed repeated fields); writing always uses {@code raw_data}
 * (strings use {@code string_data}). Data stored externally is resolved by {@link OnnxIO}.
 */
public final class TensorProtos {

    private TensorProtos() {
    }

    /** A tensor whose data is inline in the proto; {@code what} names it in errors. */
    public static Tensor toTensor(TensorProto p, String what) {
        if (p.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
            throw new Peft4jException(Peft4jException.ErrorCode.UNSUPPORTED, what
                    + " stores its data in an external file, which is only resolved for a model read from a file");
        }
        if (p.hasSegment()) {
            throw Peft4jException.unsupported(what + " is a segmented tensor, which peft4j does not read");
        }
        DataType dtype = dataType(p, what);
        long[] shape = dims(p, what);
        long count = Tensor.numel(shape);
        if (dtype == DataType.STRING) {
            if (p.getStringDataCount() != count) {
                throw Peft4jException.malformed(what + ": STRING tensor of shape " + Arrays.toString(shape)
                        + " has " + p.getStringDataCount() + " values");
            }
            List<byte[]> values = new ArrayList<>(p.getStringDataCount());
            for (ByteString s : p.getStringDataList()) {
                values.add(s.toByteArray());
            }
            return Tensor.ofStrings(shape, values);
        }
        long bytes = dtype.byteSize(count);
        if (p.hasRawData()) {
            ByteString raw = p.getRawData();
            if (raw.size() != bytes) {
                throw Peft4jException.malformed(what + ": " + dtype + " tensor of shape " + Arrays.toString(shape)
                        + " needs " + bytes + " bytes of raw_data, has " + raw.size());
            }
            return Tensor.wrap(dtype, shape, raw.asReadOnlyByteBuffer());
        }
        return fromTypedFields(p, dtype, shape, count, what);
    }

    private static Tensor fromTypedFields(TensorProto p, DataType dtype, long[] shape, long count, String what) {
        if (count > Integer.MAX_VALUE / 16) {
            throw Peft4jException.unsupported(what + " is too large for typed fields");
        }
        int n = (int) count;
        ByteBuffer out = ByteBuffer.allocate((int) dtype.byteSize(count)).order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case FLOAT -> {
                expect(p.getFloatDataCount(), n, "float_data", what);
                for (int i = 0; i < n; i++) {
                    out.putFloat(p.getFloatData(i));
                }
            }
            case COMPLEX64 -> {
                expect(p.getFloatDataCount(), 2 * n, "float_data", what);
                for (int i = 0; i < 2 * n; i++) {
                    out.putFloat(p.getFloatData(i));
                }
            }
            case DOUBLE -> {
                expect(p.getDoubleDataCount(), n, "double_data", what);
                for (int i = 0; i < n; i++) {
                    out.putDouble(p.getDoubleData(i));
                }
            }
            case COMPLEX128 -> {
                expect(p.getDoubleDataCount(), 2 * n, "double_data", what);
                for (int i = 0; i < 2 * n; i++) {
                    out.putDouble(p.getDoubleData(i));
                }
            }
            case INT64 -> {
                expect(p.getInt64DataCount(), n, "int64_data", what);
                for (int i = 0; i < n; i++) {
                    out.putLong(p.getInt64Data(i));
                }
            }
            case UINT32 -> {
                expect(p.getUint64DataCount(), n, "uint64_data", what);
                for (int i = 0; i < n; i++) {
                    out.putInt((int) p.getUint64Data(i));
                }
            }
            case UINT64 -> {
                expect(p.getUint64DataCount(), n, "uint64_data", what);
                for (int i = 0; i < n; i++) {
                    out.putLong(p.getUint64Data(i));
                }
            }
            case INT32 -> {
                expect(p.getInt32DataCount(), n, "int32_data", what);
                for (int i = 0; i < n; i++) {
                    out.putInt(p.getInt32Data(i));
                }
            }
            case INT16, UINT16, FLOAT16, BFLOAT16 -> {
                expect(p.getInt32DataCount(), n, "int32_data", what);
                for (int i = 0; i < n; i++) {
                    out.putShort((short) p.getInt32Data(i));
                }
            }
            case INT8, UINT8, BOOL, FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ -> {
                expect(p.getInt32DataCount(), n, "int32_data", what);
                for (int i = 0; i < n; i++) {
                    out.put((byte) p.getInt32Data(i));
                }
            }
            case INT4, UINT4, FLOAT4E2M1 -> {
                // two 4-bit values per int32_data entry, low nibble first
                int packed = (n + 1) / 2;
                expect(p.getInt32DataCount(), packed, "int32_data", what);
                for (int i = 0; i < packed; i++) {
                    out.put((byte) p.getInt32Data(i));
                }
            }
            default -> throw Peft4jException.unsupported(what + ": cannot read " + dtype + " data");
        }
        out.flip();
        return Tensor.wrap(dtype, shape, out);
    }

    private static void expect(int have, int want, String field, String what) {
        if (have != want) {
            throw Peft4jException.malformed(what + ": " + field + " has " + have + " values, the shape needs " + want);
        }
    }

    static DataType dataType(TensorProto p, String what) {
        if (!p.hasDataType() || p.getDataType() == 0) {
            throw Peft4jException.malformed(what + " has no data type");
        }
        try {
            return DataType.fromOnnx(p.getDataType());
        } catch (Peft4jException e) {
            throw Peft4jException.malformed(what + ": " + e.getMessage());
        }
    }

    static long[] dims(TensorProto p, String what) {
        long[] shape = new long[p.getDimsCount()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = p.getDims(i);
            if (shape[i] < 0) {
                throw Peft4jException.malformed(what + " has a negative dimension " + shape[i]);
            }
        }
        try {
            long count = Tensor.numel(shape);
            DataType t = DataType.fromOnnx(p.getDataType());
            if (t != DataType.STRING && t.byteSize(count) > Long.MAX_VALUE / 2) {
                throw Peft4jException.malformed(what + " has an absurd size");
            }
        } catch (ArithmeticException | Peft4jException e) {
            throw Peft4jException.malformed(what + " has a shape " + java.util.Arrays.toString(shape)
                    + " whose size overflows");
        }
        return shape;
    }

    /** A proto with {@code raw_data} (or {@code string_data}); the bytes are shared, not copied. */
    public static TensorProto toProto(String name, Tensor t) {
        TensorProto.Builder b = header(name, t);
        if (t.dtype() == DataType.STRING) {
            for (byte[] s : t.strings()) {
                b.addStringData(ByteString.copyFrom(s));
            }
        } else {
            b.setRawData(UnsafeByteOperations.unsafeWrap(t.bytes()));
        }
        return b.build();
    }

    /** Name, type and dims only. */
    static TensorProto.Builder header(String name, Tensor t) {
        TensorProto.Builder b = TensorProto.newBuilder().setDataType(t.dtype().onnxCode());
        if (name != null) {
            b.setName(name);
        }
        for (long d : t.shape()) {
            b.addDims(d);
        }
        return b;
    }
}
