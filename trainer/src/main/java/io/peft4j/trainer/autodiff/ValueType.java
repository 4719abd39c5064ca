package io.peft4j.trainer.autodiff;

import io.peft4j.core.tensor.DataType;

import java.util.Arrays;

/**
 * What is known at build time about a value: its element type (null when unknown) and its
 * dimensions ({@code null} when even the rank is unknown; {@code -1} for a dimension only known
 * at run time; a value of {@code -2} or less for a named (symbolic) dimension such as the batch:
 * two equal symbols are equal sizes, whatever they are at run time).
 */
public record ValueType(DataType dtype, long[] dims) {

    public static final ValueType UNKNOWN = new ValueType(null, null);

    public static ValueType of(DataType dtype, long... dims) {
        return new ValueType(dtype, dims);
    }

    /** The code of a symbolic dimension ({@code dim_param}); equal names give equal codes. */
    public static long symbol(String name) {
        return -2L - (name.hashCode() & 0x3fffffffL);
    }

    /** Whether two dimensions are known to be equal (same number or same symbol). */
    public static boolean sameDim(long a, long b) {
        return a == b && a != -1;
    }

    public static ValueType unranked(DataType dtype) {
        return new ValueType(dtype, null);
    }

    public ValueType {
        dims = dims == null ? null : dims.clone();
    }

    @Override
    public long[] dims() {
        return dims == null ? null : dims.clone();
    }

    public boolean hasRank() {
        return dims != null;
    }

    /** The rank, or -1 when unknown. */
    public int rank() {
        return dims == null ? -1 : dims.length;
    }

    /** Dimension {@code axis} (negative counts from the end), -1 when unknown. */
    public long dim(int axis) {
        if (dims == null) {
            return -1;
        }
        int a = axis < 0 ? axis + dims.length : axis;
        return a < 0 || a >= dims.length ? -1 : dims[a];
    }

    /** Whether every dimension is known. */
    public boolean isStatic() {
        if (dims == null) {
            return false;
        }
        for (long d : dims) {
            if (d < 0) {
                return false;
            }
        }
        return true;
    }

    /** The element count when static, else -1. */
    public long numel() {
        if (!isStatic()) {
            return -1;
        }
        long n = 1;
        for (long d : dims) {
            n *= d;
        }
        return n;
    }

    public ValueType withDtype(DataType t) {
        return new ValueType(t, dims);
    }

    public ValueType withDims(long[] d) {
        return new ValueType(dtype, d);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ValueType v && v.dtype == dtype && Arrays.equals(v.dims, dims);
    }

    @Override
    public int hashCode() {
        return 31 * (dtype == null ? 0 : dtype.hashCode()) + Arrays.hashCode(dims);
    }

    @Override
    public String toString() {
        if (dims == null) {
            return (dtype == null ? "?" : dtype.name()) + "[?]";
        }
        StringBuilder b = new StringBuilder(dtype == null ? "?" : dtype.name()).append('[');
        for (int i = 0; i < dims.length; i++) {
            b.append(i == 0 ? "" : ",").append(dims[i] == -1 ? "?" : dims[i] < 0 ? "s" + (-dims[i]) : Long.toString(dims[i]));
        }
        return b.append(']').toString();
    }
}
