package io.peft4j.core.tensor;

import io.peft4j.core.Peft4jException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.nio.ShortBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * An immutable dense tensor: an element type, a shape and little-endian bytes (or, for
 * {@link DataType#STRING}, a list of byte strings).
 *
 * <p>Factories named {@code wrap} do not copy: the caller must not change the buffer afterwards.
 * Factories named {@code of} copy. Typed views ({@link #floatBuffer()}, {@link #fp16Bits()}, …)
 * are read-only and share the data; {@link #getFloat(long)} reads any numeric type as a float;
 * {@link #to(DataType)} converts in bulk loops, never element by element through boxed values.
 * Data may live on the heap, off-heap, or in a memory-mapped file (external ONNX data, safetensors).
 */
public final class Tensor {

    private final DataType dtype;
    private final long[] shape;
    private final ByteBuffer data;
    private final List<byte[]> strings;

    private Tensor(DataType dtype, long[] shape, ByteBuffer data, List<byte[]> strings) {
        this.dtype = dtype;
        this.shape = shape;
        this.data = data;
        this.strings = strings;
    }

    // ---------------------------------------------------------------- factories

    /** Wraps {@code data} (from its position to its limit) without copying. */
    public static Tensor wrap(DataType dtype, long[] shape, ByteBuffer data) {
        if (dtype == DataType.STRING) {
            throw Peft4jException.invalid("STRING tensors are made with ofStrings");
        }
        long[] s = checkShape(shape);
        long expected = dtype.byteSize(numel(s));
        if (data.remaining() != expected) {
            throw Peft4jException.shape("tensor of type " + dtype + " and shape " + Arrays.toString(s)
                    + " needs " + expected + " bytes, got " + data.remaining());
        }
        ByteBuffer view = data.slice().order(ByteOrder.LITTLE_ENDIAN);
        return new Tensor(dtype, s, view, null);
    }

    /** Copies {@code bytes} into a new tensor. */
    public static Tensor ofBytes(DataType dtype, long[] shape, byte[] bytes) {
        return wrap(dtype, shape, ByteBuffer.wrap(bytes.clone()));
    }

    public static Tensor zeros(DataType dtype, long... shape) {
        long[] s = checkShape(shape);
        return wrap(dtype, s, allocate(dtype.byteSize(numel(s))));
    }

    public static Tensor ofFloats(long[] shape, float... values) {
        ByteBuffer b = allocate(4L * values.length);
        b.asFloatBuffer().put(values);
        return wrap(DataType.FLOAT, shape, b);
    }

    public static Tensor ofDoubles(long[] shape, double... values) {
        ByteBuffer b = allocate(8L * values.length);
        b.asDoubleBuffer().put(values);
        return wrap(DataType.DOUBLE, shape, b);
    }

    public static Tensor ofInts(long[] shape, int... values) {
        ByteBuffer b = allocate(4L * values.length);
        b.asIntBuffer().put(values);
        return wrap(DataType.INT32, shape, b);
    }

    public static Tensor ofLongs(long[] shape, long... values) {
        ByteBuffer b = allocate(8L * values.length);
        b.asLongBuffer().put(values);
        return wrap(DataType.INT64, shape, b);
    }

    public static Tensor ofInt8(long[] shape, byte... values) {
        return wrap(DataType.INT8, shape, ByteBuffer.wrap(values.clone()));
    }

    public static Tensor ofBools(long[] shape, boolean... values) {
        byte[] b = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            b[i] = (byte) (values[i] ? 1 : 0);
        }
        return wrap(DataType.BOOL, shape, ByteBuffer.wrap(b));
    }

    /** A float16 tensor from raw binary16 bit patterns. */
    public static Tensor ofFp16Bits(long[] shape, short... bits) {
        ByteBuffer b = allocate(2L * bits.length);
        b.asShortBuffer().put(bits);
        return wrap(DataType.FLOAT16, shape, b);
    }

    /** A bfloat16 tensor from raw bit patterns. */
    public static Tensor ofBf16Bits(long[] shape, short... bits) {
        ByteBuffer b = allocate(2L * bits.length);
        b.asShortBuffer().put(bits);
        return wrap(DataType.BFLOAT16, shape, b);
    }

    public static Tensor scalar(float value) {
        return ofFloats(new long[0], value);
    }

    public static Tensor scalar(long value) {
        return ofLongs(new long[0], value);
    }

    public static Tensor ofStrings(long[] shape, List<byte[]> values) {
        long[] s = checkShape(shape);
        if (numel(s) != values.size()) {
            throw Peft4jException.shape("STRING tensor of shape " + Arrays.toString(s) + " needs "
                    + numel(s) + " values, got " + values.size());
        }
        List<byte[]> copy = new ArrayList<>(values.size());
        for (byte[] v : values) {
            copy.add(v.clone());
        }
        return new Tensor(DataType.STRING, s, null, Collections.unmodifiableList(copy));
    }

    // ---------------------------------------------------------------- shape

    public DataType dtype() {
        return dtype;
    }

    public long[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    public long dim(int axis) {
        return shape[axis < 0 ? axis + shape.length : axis];
    }

    public long numel() {
        return numel(shape);
    }

    /** Bytes of data (0 for STRING tensors). */
    public long byteSize() {
        return data == null ? 0 : data.capacity();
    }

    /** Same data, another shape with the same element count. */
    public Tensor reshape(long... newShape) {
        long[] s = checkShape(newShape);
        if (numel(s) != numel()) {
            throw Peft4jException.shape("cannot reshape " + Arrays.toString(shape) + " to "
                    + Arrays.toString(s));
        }
        return new Tensor(dtype, s, data, strings);
    }

    public static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    // ---------------------------------------------------------------- views

    /** The raw little-endian bytes, read-only, position 0. */
    public ByteBuffer bytes() {
        requireNumeric();
        return data.asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    public FloatBuffer floatBuffer() {
        require(DataType.FLOAT);
        return bytes().asFloatBuffer();
    }

    public DoubleBuffer doubleBuffer() {
        require(DataType.DOUBLE);
        return bytes().asDoubleBuffer();
    }

    public IntBuffer intBuffer() {
        require(DataType.INT32);
        return bytes().asIntBuffer();
    }

    public LongBuffer longBuffer() {
        require(DataType.INT64);
        return bytes().asLongBuffer();
    }

    /** binary16 bit patterns of a FLOAT16 tensor. */
    public ShortBuffer fp16Bits() {
        require(DataType.FLOAT16);
        return bytes().asShortBuffer();
    }

    /** bfloat16 bit patterns of a BFLOAT16 tensor. */
    public ShortBuffer bf16Bits() {
        require(DataType.BFLOAT16);
        return bytes().asShortBuffer();
    }

    /** Bytes of an INT8, UINT8 or BOOL tensor. */
    public ByteBuffer byteView() {
        if (dtype != DataType.INT8 && dtype != DataType.UINT8 && dtype != DataType.BOOL) {
            throw Peft4jException.invalid("byteView needs INT8, UINT8 or BOOL, tensor is " + dtype);
        }
        return bytes();
    }

    public List<byte[]> strings() {
        require(DataType.STRING);
        return strings;
    }

    /** Element {@code index} (row-major) of any real numeric type, as a float. */
    public float getFloat(long index) {
        return (float) getDouble(index);
    }

    /** Element {@code index} (row-major) of any real numeric type, as a double. */
    public double getDouble(long index) {
        int i = Math.toIntExact(index);
        return switch (dtype) {
            case FLOAT -> data.getFloat(i * 4);
            case DOUBLE -> data.getDouble(i * 8);
            case FLOAT16 -> Half.fp16ToFloat(data.getShort(i * 2));
            case BFLOAT16 -> Half.bf16ToFloat(data.getShort(i * 2));
            case INT8 -> data.get(i);
            case UINT8, BOOL -> data.get(i) & 0xff;
            case INT16 -> data.getShort(i * 2);
            case UINT16 -> data.getShort(i * 2) & 0xffff;
            case INT32 -> data.getInt(i * 4);
            case UINT32 -> data.getInt(i * 4) & 0xffffffffL;
            case INT64 -> data.getLong(i * 8);
            case UINT64 -> unsignedToDouble(data.getLong(i * 8));
            default -> throw Peft4jException.unsupported("cannot read " + dtype + " elements as numbers");
        };
    }

    /** Element {@code index} of an integer or boolean type, as a long. */
    public long getLong(long index) {
        int i = Math.toIntExact(index);
        return switch (dtype) {
            case INT8 -> data.get(i);
            case UINT8, BOOL -> data.get(i) & 0xff;
            case INT16 -> data.getShort(i * 2);
            case UINT16 -> data.getShort(i * 2) & 0xffff;
            case INT32 -> data.getInt(i * 4);
            case UINT32 -> data.getInt(i * 4) & 0xffffffffL;
            case INT64, UINT64 -> data.getLong(i * 8);
            default -> (long) getDouble(index);
        };
    }

    public float[] toFloatArray() {
        int n = checkedCount();
        float[] out = new float[n];
        switch (dtype) {
            case FLOAT -> floatBuffer().get(out);
            case FLOAT16, BFLOAT16 -> {
                ShortBuffer s = bytes().asShortBuffer();
                boolean fp16 = dtype == DataType.FLOAT16;
                for (int i = 0; i < n; i++) {
                    out[i] = fp16 ? Half.fp16ToFloat(s.get(i)) : Half.bf16ToFloat(s.get(i));
                }
            }
            default -> {
                for (int i = 0; i < n; i++) {
                    out[i] = getFloat(i);
                }
            }
        }
        return out;
    }

    public double[] toDoubleArray() {
        int n = checkedCount();
        double[] out = new double[n];
        if (dtype == DataType.DOUBLE) {
            doubleBuffer().get(out);
        } else {
            for (int i = 0; i < n; i++) {
                out[i] = getDouble(i);
            }
        }
        return out;
    }

    public long[] toLongArray() {
        int n = checkedCount();
        long[] out = new long[n];
        if (dtype == DataType.INT64) {
            longBuffer().get(out);
        } else {
            for (int i = 0; i < n; i++) {
                out[i] = getLong(i);
            }
        }
        return out;
    }

    public int[] toIntArray() {
        int n = checkedCount();
        int[] out = new int[n];
        if (dtype == DataType.INT32) {
            intBuffer().get(out);
        } else {
            for (int i = 0; i < n; i++) {
                out[i] = (int) getLong(i);
            }
        }
        return out;
    }

    // ---------------------------------------------------------------- conversion

    /**
     * Converts to another real numeric type (or BOOL). Floating-point targets round to nearest even;
     * integer targets truncate toward zero and wrap like a C cast; BOOL is "non-zero".
     */
    public Tensor to(DataType target) {
        if (target == dtype) {
            return this;
        }
        requireNumeric();
        int n = checkedCount();
        ByteBuffer out = allocate(target.byteSize(n));
        switch (target) {
            case FLOAT -> out.asFloatBuffer().put(toFloatArray());
            case DOUBLE -> out.asDoubleBuffer().put(toDoubleArray());
            case FLOAT16, BFLOAT16 -> {
                ShortBuffer o = out.asShortBuffer();
                float[] in = toFloatArray();
                boolean fp16 = target == DataType.FLOAT16;
                for (int i = 0; i < n; i++) {
                    o.put(i, fp16 ? Half.floatToFp16(in[i]) : Half.floatToBf16(in[i]));
                }
            }
            case BOOL -> {
                for (int i = 0; i < n; i++) {
                    out.put(i, (byte) (getDouble(i) != 0 ? 1 : 0));
                }
            }
            case INT8, UINT8 -> {
                for (int i = 0; i < n; i++) {
                    out.put(i, (byte) asIntegral(i));
                }
            }
            case INT16, UINT16 -> {
                for (int i = 0; i < n; i++) {
                    out.putShort(i * 2, (short) asIntegral(i));
                }
            }
            case INT32, UINT32 -> {
                for (int i = 0; i < n; i++) {
                    out.putInt(i * 4, (int) asIntegral(i));
                }
            }
            case INT64, UINT64 -> {
                for (int i = 0; i < n; i++) {
                    out.putLong(i * 8, asIntegral(i));
                }
            }
            default -> throw Peft4jException.unsupported("conversion from " + dtype + " to " + target
                    + " is not supported");
        }
        return wrap(target, shape, out);
    }

    private long asIntegral(int i) {
        return dtype.isFloatingPoint() ? (long) getDouble(i) : getLong(i);
    }

    // ---------------------------------------------------------------- comparison

    /** Same type, shape and bytes (or strings). */
    public boolean contentEquals(Tensor other) {
        if (other == null || dtype != other.dtype || !Arrays.equals(shape, other.shape)) {
            return false;
        }
        if (dtype == DataType.STRING) {
            if (strings.size() != other.strings.size()) {
                return false;
            }
            for (int i = 0; i < strings.size(); i++) {
                if (!Arrays.equals(strings.get(i), other.strings.get(i))) {
                    return false;
                }
            }
            return true;
        }
        return bytes().equals(other.bytes());
    }

    @Override
    public String toString() {
        return "Tensor[" + dtype + " " + Arrays.toString(shape) + "]";
    }

    // ---------------------------------------------------------------- helpers

    private void require(DataType t) {
        if (dtype != t) {
            throw Peft4jException.invalid("tensor is " + dtype + ", not " + t);
        }
    }

    private void requireNumeric() {
        if (dtype == DataType.STRING) {
            throw Peft4jException.invalid("STRING tensors have no numeric data");
        }
    }

    private int checkedCount() {
        long n = numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw Peft4jException.unsupported("tensor of " + n + " elements is too large for a Java array");
        }
        return (int) n;
    }

    private static long[] checkShape(long[] shape) {
        for (long d : shape) {
            if (d < 0) {
                throw Peft4jException.shape("negative dimension in shape " + Arrays.toString(shape));
            }
        }
        try {
            numel(shape);
        } catch (ArithmeticException e) {
            throw Peft4jException.shape("shape " + Arrays.toString(shape) + " has more elements than a long holds");
        }
        return shape.clone();
    }

    static ByteBuffer allocate(long bytes) {
        if (bytes > Integer.MAX_VALUE - 8) {
            throw Peft4jException.unsupported("tensor of " + bytes
                    + " bytes is larger than one Java buffer (2 GiB)");
        }
        return ByteBuffer.allocate((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static double unsignedToDouble(long v) {
        double d = (double) (v >>> 1) * 2.0;
        return d + (v & 1);
    }
}
