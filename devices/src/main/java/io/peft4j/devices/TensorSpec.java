package io.peft4j.devices;

import io.peft4j.core.tensor.DataType;

import java.util.Arrays;

/**
 * A model input or output: name, element type and shape, with {@code -1} for an axis whose size is
 * known only at run time (a symbolic or unknown dimension).
 */
public record TensorSpec(String name, DataType dtype, long[] shape) {

    public TensorSpec {
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** Whether a tensor of {@code dims} fits: same rank, and equal sizes wherever this spec fixes one. */
    public boolean accepts(long[] dims) {
        if (dims.length != shape.length) {
            return false;
        }
        for (int i = 0; i < dims.length; i++) {
            if (shape[i] >= 0 && shape[i] != dims[i]) {
                return false;
            }
        }
        return true;
    }

    /** The shape as text: {@code [-1, 3, 64, 64]}. */
    public String describeShape() {
        return Arrays.toString(shape);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TensorSpec t && t.name.equals(name) && t.dtype == dtype && Arrays.equals(t.shape, shape);
    }

    @Override
    public int hashCode() {
        return name.hashCode() * 31 + Arrays.hashCode(shape);
    }

    @Override
    public String toString() {
        return name + " " + dtype + describeShape();
    }
}
