package io.peft4j.trainer.autodiff;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.Node;

/**
 * The window geometry of a Conv or pooling node: kernel, strides, dilations and pads per spatial
 * axis, with {@code auto_pad} resolved when the input size is known (or when it does not matter:
 * stride 1).
 */
record ConvGeometry(long[] kernel, long[] strides, long[] dilations, long[] pads, String autoPad) {

    static ConvGeometry of(Node n, long[] kernel) {
        int k = kernel.length;
        long[] strides = n.attrInts("strides", ones(k));
        long[] dil = n.attrInts("dilations", ones(k));
        long[] pads = n.attrInts("pads", new long[2 * k]);
        String autoPad = n.attrString("auto_pad", "NOTSET");
        return new ConvGeometry(kernel, strides, dil, pads, autoPad);
    }

    static long[] ones(int k) {
        long[] o = new long[k];
        java.util.Arrays.fill(o, 1);
        return o;
    }

    int spatialRank() {
        return kernel.length;
    }

    long effectiveKernel(int i) {
        return dilations[i] * (kernel[i] - 1) + 1;
    }

    boolean unitStrides() {
        for (long s : strides) {
            if (s != 1) {
                return false;
            }
        }
        return true;
    }

    /** Whether the explicit pads are known without the input size. */
    boolean padsKnownWithoutInput() {
        return autoPad.equals("NOTSET") || autoPad.equals("VALID") || unitStrides();
    }

    /**
     * Explicit begin/end pads; {@code inputSizes} (may hold -1, or be null) is needed for SAME
     * padding with strides other than 1. Returns null when it cannot be resolved.
     */
    long[] explicitPads(long[] inputSizes) {
        int k = kernel.length;
        switch (autoPad) {
            case "NOTSET":
                return pads.clone();
            case "VALID":
                return new long[2 * k];
            case "SAME_UPPER":
            case "SAME_LOWER": {
                long[] p = new long[2 * k];
                for (int i = 0; i < k; i++) {
                    long total;
                    if (strides[i] == 1) {
                        total = effectiveKernel(i) - 1;
                    } else {
                        if (inputSizes == null || inputSizes[i] < 0) {
                            return null;
                        }
                        long in = inputSizes[i];
                        long out = (in + strides[i] - 1) / strides[i];
                        total = Math.max(0, (out - 1) * strides[i] + effectiveKernel(i) - in);
                    }
                    long small = total / 2;
                    long big = total - small;
                    boolean upper = autoPad.equals("SAME_UPPER");
                    p[i] = upper ? small : big;
                    p[i + k] = upper ? big : small;
                }
                return p;
            }
            default:
                throw Peft4jException.unsupported("unknown auto_pad '" + autoPad + "'");
        }
    }

    long outputSize(int i, long in, boolean ceil) {
        if (autoPad.equals("SAME_UPPER") || autoPad.equals("SAME_LOWER")) {
            return (in + strides[i] - 1) / strides[i];
        }
        long[] p = explicitPads(null);
        long span = in + p[i] + p[i + kernel.length] - effectiveKernel(i);
        if (span < 0) {
            return -1;
        }
        return (ceil ? (span + strides[i] - 1) / strides[i] : span / strides[i]) + 1;
    }
}
