package io.peft4j.core.tensor;

import io.peft4j.core.Peft4jException;

/**
 * Element types, numbered as ONNX's {@code TensorProto.DataType}, with the safetensors name where
 * safetensors has one.
 */
public enum DataType {
    FLOAT(1, 4, "F32"),
    UINT8(2, 1, "U8"),
    INT8(3, 1, "I8"),
    UINT16(4, 2, "U16"),
    INT16(5, 2, "I16"),
    INT32(6, 4, "I32"),
    INT64(7, 8, "I64"),
    STRING(8, -1, null),
    BOOL(9, 1, "BOOL"),
    FLOAT16(10, 2, "F16"),
    DOUBLE(11, 8, "F64"),
    UINT32(12, 4, "U32"),
    UINT64(13, 8, "U64"),
    COMPLEX64(14, 8, null),
    COMPLEX128(15, 16, null),
    BFLOAT16(16, 2, "BF16"),
    FLOAT8E4M3FN(17, 1, "F8_E4M3"),
    FLOAT8E4M3FNUZ(18, 1, null),
    FLOAT8E5M2(19, 1, "F8_E5M2"),
    FLOAT8E5M2FNUZ(20, 1, null),
    /** 4-bit types pack two elements per byte; {@link #byteSize(long)} accounts for it. */
    UINT4(21, 0, null),
    INT4(22, 0, null),
    FLOAT4E2M1(23, 0, null);

    private final int onnx;
    private final int size;
    private final String safetensorsName;

    DataType(int onnx, int size, String safetensorsName) {
        this.onnx = onnx;
        this.size = size;
        this.safetensorsName = safetensorsName;
    }

    /** The ONNX {@code TensorProto.DataType} number. */
    public int onnxCode() {
        return onnx;
    }

    /** Bytes per element; 0 for 4-bit types, -1 for strings. */
    public int elementSize() {
        return size;
    }

    /** The safetensors dtype name, or {@code null} if safetensors cannot hold this type. */
    public String safetensorsName() {
        return safetensorsName;
    }

    public boolean isFloatingPoint() {
        return switch (this) {
            case FLOAT, FLOAT16, BFLOAT16, DOUBLE, FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2,
                    FLOAT8E5M2FNUZ, FLOAT4E2M1 -> true;
            default -> false;
        };
    }

    /** Bytes needed for {@code count} elements, rejecting sizes that overflow. */
    public long byteSize(long count) {
        if (count < 0) {
            throw Peft4jException.invalid("negative element count " + count);
        }
        if (this == STRING) {
            throw Peft4jException.unsupported("STRING tensors have no fixed byte size");
        }
        if (size == 0) {
            return (count + 1) / 2;
        }
        if (count > Long.MAX_VALUE / size) {
            throw Peft4jException.invalid(count + " elements of " + this + " take more bytes than a long holds");
        }
        return count * size;
    }

    public static DataType fromOnnx(int code) {
        for (DataType t : values()) {
            if (t.onnx == code) {
                return t;
            }
        }
        if (code > 23) {
            throw Peft4jException.unsupported("ONNX tensor data type " + code + " is newer than peft4j knows (up to 23, FLOAT4E2M1)");
        }
        throw Peft4jException.malformed("unknown ONNX tensor data type " + code);
    }

    public static DataType fromSafetensors(String name) {
        if (name != null) {
            for (DataType t : values()) {
                if (name.equals(t.safetensorsName)) {
                    return t;
                }
            }
        }
        throw Peft4jException.malformed("unknown safetensors dtype '" + name + "'");
    }
}
