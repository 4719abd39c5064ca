package io.peft4j.trainer.autodiff;

import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.Optional;

/** Gradient rules of ops that move data without computing: reshapes, transposes, slicing, gathering. */
final class ShapeRules {

    private ShapeRules() {
    }

    /** Flatten, Reshape, Squeeze, Unsqueeze: the gradient takes the input's shape back. */
    static void reshapeBack(GradContext c) {
        c.setGrad(0, c.reshapeLike(c.outGrad(0), c.input(0)));
    }

    static void transpose(GradContext c) {
        long[] perm = c.attrInts("perm", null);
        if (perm == null) {
            int r = c.rank(c.input(0));
            if (r < 0) {
                throw c.unsupported("Transpose without perm needs the input rank");
            }
            perm = new long[r];
            for (int i = 0; i < r; i++) {
                perm[i] = r - 1 - i;
            }
        }
        long[] inverse = new long[perm.length];
        for (int i = 0; i < perm.length; i++) {
            inverse[(int) perm[i]] = i;
        }
        c.setGrad(0, c.transpose(c.outGrad(0), inverse));
    }

    static void expand(GradContext c) {
        c.setGrad(0, c.unbroadcast(c.outGrad(0), 0));
    }

    static void concat(GradContext c) {
        String g = c.outGrad(0);
        long axis = c.attrInt("axis", 0);
        int n = c.node().inputs().size();
        String offset = c.ints(0);
        long staticOffset = 0;
        for (int i = 0; i < n; i++) {
            String x = c.input(i);
            long d = c.type(x).dim((int) axis);
            String end;
            if (staticOffset >= 0 && d >= 0) {
                end = c.ints(staticOffset + d);
            } else {
                end = c.op("Add", offset, c.dim(x, (int) axis));
            }
            if (c.needsGrad(i)) {
                c.setGrad(i, c.op("Slice", g, offset, end, c.ints(axis)));
            }
            offset = end;
            staticOffset = staticOffset >= 0 && d >= 0 ? staticOffset + d : -1;
        }
    }

    static void split(GradContext c) {
        long axis = c.attrInt("axis", 0);
        String[] parts = new String[c.outputCount()];
        for (int i = 0; i < parts.length; i++) {
            parts[i] = c.outGradOrZeros(i);
        }
        c.setGrad(0, c.build("Concat").in(parts).attr("axis", axis).out());
    }

    /**
     * Slice: a zero-padded gradient when the slice has unit steps and constant bounds on axes of known
     * size; else the gradient is scattered back through the indices the slice selects.
     */
    static void slice(GradContext c) {
        String x = c.input(0);
        String g = c.outGrad(0);
        ValueType xt = c.type(x);
        Optional<Tensor> starts = c.constant(c.input(1));
        Optional<Tensor> ends = c.constant(c.input(2));
        Optional<Tensor> axes = c.hasInput(3) ? c.constant(c.input(3)) : Optional.empty();
        Optional<Tensor> steps = c.hasInput(4) ? c.constant(c.input(4)) : Optional.empty();
        boolean constant = starts.isPresent() && ends.isPresent() && (!c.hasInput(3) || axes.isPresent())
                && (!c.hasInput(4) || steps.isPresent()) && xt.hasRank();
        if (constant) {
            long[] s = starts.get().toLongArray();
            long[] e = ends.get().toLongArray();
            long[] a = axes.map(Tensor::toLongArray).orElse(null);
            long[] st = steps.map(Tensor::toLongArray).orElse(null);
            int r = xt.rank();
            long[] pads = new long[2 * r];
            boolean ok = true;
            for (int i = 0; i < s.length && ok; i++) {
                int axis = TypeInference.norm(a == null ? i : a[i], r);
                long dim = xt.dim(axis);
                if ((st != null && st[i] != 1) || dim < 0) {
                    ok = false;
                    break;
                }
                long b = clamp(s[i] < 0 ? s[i] + dim : s[i], dim);
                long en = clamp(e[i] < 0 ? e[i] + dim : e[i], dim);
                if (en < b) {
                    en = b;
                }
                pads[axis] = b;
                pads[axis + r] = dim - en;
            }
            if (ok) {
                c.setGrad(0, c.op("Pad", g, c.ints(pads)));
                return;
            }
        }
        String flatIndex = indexTensor(c, x);
        String picked = c.op("Slice", flatIndex, c.input(1), c.input(2), c.hasInput(3) ? c.input(3) : "",
                c.hasInput(4) ? c.input(4) : "");
        if (!c.hasInput(3) && c.hasInput(4)) {
            throw c.unsupported("Slice with steps but without axes");
        }
        c.setGrad(0, scatter(c, x, picked, g, false));
    }

    private static long clamp(long v, long dim) {
        return Math.max(0, Math.min(v, dim));
    }

    /** Gather (for its data): the gradient is scattered (and summed) back to the gathered rows. */
    static void gather(GradContext c) {
        if (!c.needsGrad(0)) {
            return;
        }
        String x = c.input(0);
        long axis = c.attrInt("axis", 0);
        boolean add = true;
        if (c.opset() < 16) {
            Optional<Tensor> idx = c.constant(c.input(1));
            if (idx.isEmpty() || hasDuplicates(idx.get())) {
                throw c.unsupported("the gradient of Gather sums rows gathered more than once, which needs "
                        + "ScatterElements with reduction (opset 16); the model is opset " + c.opset());
            }
            add = false;
        }
        String picked = c.build("Gather").in(indexTensor(c, x), c.input(1)).attr("axis", axis).out();
        c.setGrad(0, scatter(c, x, picked, c.outGrad(0), add));
    }

    private static boolean hasDuplicates(Tensor t) {
        java.util.Set<Long> seen = new java.util.HashSet<>();
        for (long v : t.toLongArray()) {
            if (!seen.add(v)) {
                return true;
            }
        }
        return false;
    }

    /** 0, 1, …, n-1 (int64) shaped like {@code x}: the flat index of each element. */
    private static String indexTensor(GradContext c, String x) {
        String n = c.op("Size", x);
        String range = c.op("Range", c.scalar(0, DataType.INT64), n, c.scalar(1, DataType.INT64));
        return c.reshape(range, c.shape(x));
    }

    /** Zeros shaped like x with {@code values} written (or added) at flat {@code indices}. */
    private static String scatter(GradContext c, String x, String indices, String values, boolean add) {
        String flatShape = c.ints(-1);
        String zeros = c.build("ConstantOfShape").in(c.reshape(c.op("Size", x), c.ints(1)))
                .attr("value", Emitter.filled(c.dtype(values), new long[] {1}, 0)).out();
        var b = c.build("ScatterElements").in(zeros, c.reshape(indices, flatShape), c.reshape(values, flatShape))
                .attr("axis", 0L);
        if (add) {
            b.attr("reduction", "add");
        }
        return c.reshapeLike(b.out(), x);
    }

    /** Pad (constant mode): the gradient is the padded gradient cut back. */
    static void pad(GradContext c) {
        String mode = c.attrString("mode", "constant");
        if (!mode.equals("constant")) {
            throw c.unsupported("Pad in mode '" + mode + "' (only constant padding is differentiated)");
        }
        String g = c.outGrad(0);
        int r = c.rank(c.input(0));
        Optional<Tensor> pads = c.constant(c.input(1));
        long[] axes = null;
        if (c.hasInput(3)) {
            Optional<Tensor> a = c.constant(c.input(3));
            if (a.isEmpty()) {
                throw c.unsupported("Pad with axes computed at run time");
            }
            axes = a.get().toLongArray();
        }
        if (pads.isPresent()) {
            long[] p = pads.get().toLongArray();
            int k = p.length / 2;
            if (axes == null) {
                axes = new long[k];
                for (int i = 0; i < k; i++) {
                    axes[i] = i;
                }
            }
            long[] starts = new long[k];
            long[] ends = new long[k];
            for (int i = 0; i < k; i++) {
                if (p[i] < 0 || p[i + k] < 0) {
                    throw c.unsupported("Pad with negative pads");
                }
                starts[i] = p[i];
                ends[i] = p[i + k] == 0 ? Long.MAX_VALUE : -p[i + k];
            }
            c.setGrad(0, c.op("Slice", g, c.ints(starts), c.ints(ends), c.ints(axes)));
            return;
        }
        if (axes != null || r < 0) {
            throw c.unsupported("Pad with pads computed at run time needs the input rank and no axes input");
        }
        String starts = c.op("Slice", c.input(1), c.ints(0), c.ints(r), c.ints(0));
        String endPads = c.op("Slice", c.input(1), c.ints(r), c.ints(2L * r), c.ints(0));
        String ends = c.op("Sub", c.shape(g), endPads);
        c.setGrad(0, c.op("Slice", g, starts, ends));
    }
}
