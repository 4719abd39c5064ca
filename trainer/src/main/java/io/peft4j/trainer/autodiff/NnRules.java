package io.peft4j.trainer.autodiff;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.proto.Onnx.AttributeProto;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/** Gradient rules of MatMul, Gemm, convolution, pooling and normalization. */
final class NnRules {

    private NnRules() {
    }

    // ---------------------------------------------------------------- MatMul and Gemm

    /** MatMul with numpy semantics: batched, broadcasting, 1-D operands promoted. */
    static void matMul(GradContext c) {
        String a = c.input(0);
        String b = c.input(1);
        String g = c.outGrad(0);
        int ra = c.rank(a);
        int rb = c.rank(b);
        if (ra < 0 || rb < 0) {
            throw c.unsupported("MatMul needs the ranks of its inputs");
        }
        ValueType at = c.type(a);
        ValueType bt = c.type(b);
        if (ra == 1 || rb == 1) {
            // promote to 2-D, differentiate, and take the original shapes back
            String a2 = ra == 1 ? c.typed(c.unsqueeze(a, 0), ValueType.of(at.dtype(), 1, at.dim(0))) : a;
            String b2 = rb == 1 ? c.typed(c.unsqueeze(b, 1), ValueType.of(bt.dtype(), bt.dim(0), 1)) : b;
            String g2 = g;
            if (ra == 1 && rb == 1) {
                g2 = c.reshape(g, c.ints(1, 1));
            } else if (ra == 1) {
                g2 = c.unsqueeze(g, -2);
            } else {
                g2 = c.unsqueeze(g, -1);
            }
            ValueType outT = TypeInference.broadcastTypes(at.dtype(), batchType(c.type(a2)), batchType(c.type(b2)));
            String[] grads = matMulGrads(c, a2, b2, g2, outT, c.needsGrad(0), c.needsGrad(1));
            if (grads[0] != null) {
                c.setGrad(0, c.reshapeLike(grads[0], a));
            }
            if (grads[1] != null) {
                c.setGrad(1, c.reshapeLike(grads[1], b));
            }
            return;
        }
        ValueType outBatch = TypeInference.broadcastTypes(at.dtype(), batchType(at), batchType(bt));
        String[] grads = matMulGrads(c, a, b, g, outBatch, c.needsGrad(0), c.needsGrad(1));
        c.setGrad(0, grads[0]);
        c.setGrad(1, grads[1]);
    }

    private static ValueType batchType(ValueType t) {
        long[] d = t.dims();
        return ValueType.of(t.dtype(), Arrays.copyOf(d, d.length - 2));
    }

    private static long[] append(long[] batch, long m, long n) {
        long[] d = Arrays.copyOf(batch, batch.length + 2);
        d[batch.length] = m;
        d[batch.length + 1] = n;
        return d;
    }

    /** Gradients of A·B for A, B of rank ≥ 2; {@code outBatch} is the broadcast batch shape. */
    private static String[] matMulGrads(GradContext c, String a, String b, String g, ValueType outBatch,
                                        boolean needA, boolean needB) {
        ValueType at = c.type(a);
        ValueType bt = c.type(b);
        int ra = at.rank();
        int rb = bt.rank();
        String[] out = new String[2];
        if (needA) {
            String full = c.op("MatMul", g, swapLast(c, b, rb));
            out[0] = c.reduceToShapeOf(full, ValueType.of(at.dtype(), append(outBatch.dims(), at.dim(-2), at.dim(-1))), a);
        }
        if (needB) {
            if (rb == 2 && ra > 2) {
                // B is a matrix shared over the batch: one (batch·M × K)ᵀ·(batch·M × N) product
                String a2 = c.reshape(a, c.concat0(c.ints(-1), c.dim(a, -1)));
                String g2 = c.reshape(g, c.concat0(c.ints(-1), c.dim(b, -1)));
                out[1] = c.build("Gemm").in(a2, g2).attr("transA", 1L).out();
            } else if (rb == 2) {
                out[1] = c.build("Gemm").in(a, g).attr("transA", 1L).out();
            } else {
                String full = c.op("MatMul", swapLast(c, a, ra), g);
                out[1] = c.reduceToShapeOf(full, ValueType.of(bt.dtype(), append(outBatch.dims(), bt.dim(-2), bt.dim(-1))), b);
            }
        }
        return out;
    }

    private static String swapLast(GradContext c, String x, int rank) {
        long[] perm = new long[rank];
        for (int i = 0; i < rank; i++) {
            perm[i] = i;
        }
        perm[rank - 2] = rank - 1;
        perm[rank - 1] = rank - 2;
        return c.transpose(x, perm);
    }

    /** Gemm: Y = alpha·A'·B' + beta·C with A' = transA ? Aᵀ : A, B' likewise. */
    static void gemm(GradContext c) {
        String a = c.input(0);
        String b = c.input(1);
        String g = c.outGrad(0);
        float alpha = c.attrFloat("alpha", 1f);
        float beta = c.attrFloat("beta", 1f);
        boolean ta = c.attrInt("transA", 0) != 0;
        boolean tb = c.attrInt("transB", 0) != 0;
        if (c.needsGrad(0)) {
            Graph.NodeBuilder n = ta
                    ? c.build("Gemm").in(b, g).attr("transA", tb ? 1L : 0L).attr("transB", 1L)
                    : c.build("Gemm").in(g, b).attr("transB", tb ? 0L : 1L);
            if (alpha != 1f) {
                n.attr("alpha", alpha);
            }
            c.setGrad(0, n.out());
        }
        if (c.needsGrad(1)) {
            Graph.NodeBuilder n = tb
                    ? c.build("Gemm").in(g, a).attr("transA", 1L).attr("transB", ta ? 1L : 0L)
                    : c.build("Gemm").in(a, g).attr("transA", ta ? 0L : 1L);
            if (alpha != 1f) {
                n.attr("alpha", alpha);
            }
            c.setGrad(1, n.out());
        }
        if (c.needsGrad(2)) {
            String gc = beta == 1f ? g : c.op("Mul", g, c.scalarLike(beta, g));
            c.setGrad(2, c.unbroadcast(gc, 2));
        }
    }

    // ---------------------------------------------------------------- convolution

    /**
     * Conv. Input gradient: for unit strides a plain Conv with the kernel flipped and its channels
     * swapped (computed once at build time when the weight is a frozen constant), which ONNX
     * Runtime runs faster than ConvTranspose on the CPU; for a frozen 2-D kernel with equal strides
     * and small inputs one such Conv per output phase, joined by DepthToSpace; ConvTranspose for
     * other strided ones.
     * Weight gradient (group = 1): a Conv of the input with the output gradient as kernel, batch
     * and channels swapped, strides and dilations exchanged. Bias gradient: a sum.
     */
    static void conv(GradContext c) {
        String x = c.input(0);
        String w = c.input(1);
        String g = c.outGrad(0);
        ValueType wt = c.type(w);
        ValueType xt = c.type(x);
        long[] kernel = c.attrInts("kernel_shape", null);
        if (kernel == null && wt.hasRank()) {
            kernel = Arrays.copyOfRange(wt.dims(), 2, wt.rank());
        }
        if (kernel == null || Arrays.stream(kernel).anyMatch(d -> d < 0)) {
            throw c.unsupported("Conv needs its kernel shape at build time (kernel_shape, or the weight's shape)");
        }
        int k = kernel.length;
        long group = c.attrInt("group", 1);
        ConvGeometry geo = ConvGeometry.of(c.node(), kernel);
        long[] inSizes = new long[k];
        for (int i = 0; i < k; i++) {
            inSizes[i] = xt.dim(2 + i);
        }
        long[] pads = geo.explicitPads(inSizes);
        if (pads == null) {
            throw c.unsupported("SAME padding with strides needs the input's spatial sizes at build time");
        }
        long[] spatialAxes = range(2, 2 + k);
        if (c.needsGrad(2)) {
            long[] axes = new long[k + 1];
            axes[0] = 0;
            System.arraycopy(spatialAxes, 0, axes, 1, k);
            c.setGrad(2, c.reduce("ReduceSum", g, axes, false));
        }
        // a trainable weight with few output channels (LoRA's A): the output gradient spread over the
        // kernel taps serves both gradients as matrix products
        String taps = c.needsGrad(1) && group == 1 ? gradientTaps(c, g, x, wt, geo, pads) : null;
        if (c.needsGrad(0)) {
            c.setGrad(0, taps != null && c.constant(w).isEmpty()
                    ? inputGradFromTaps(c, taps, w, wt, x)
                    : convInputGrad(c, g, w, wt, geo, pads, group, x));
        }
        if (c.needsGrad(1)) {
            c.setGrad(1, taps != null ? weightGradFromTaps(c, taps, x, wt) : convWeightGrad(c, x, g, wt, geo, pads, group));
        }
    }

    /**
     * The output gradient spread over the kernel taps, or null where this does not pay (or sizes
     * are not known at build time): {@code T[n, o·K + t, q] = g[n, o, p]} for every input position
     * {@code q} that kernel tap {@code t} joins to output position {@code p} (zero elsewhere), with
     * K the number of taps and q running over the input's flattened spatial positions. Then
     * {@code dW[o, i, t] = Σ_n,q T[n, o·K + t, q] · x[n, i, q]} and {@code dx[n, i, q] = Σ_o,t
     * W[o, i, t] · T[n, o·K + t, q]}: two matrix products instead of a convolution with the output
     * gradient as its kernel, which ONNX Runtime runs as many thin products. T is the input gradient
     * of a convolution with one input channel and a one-hot kernel per tap (a constant, so a plain
     * Conv for unit strides). It holds K · out_channels values per input position, against
     * K · in_channels per output position for an im2col of x: taken when it is the smaller.
     */
    private static String gradientTaps(GradContext c, String g, String x, ValueType wt, ConvGeometry geo, long[] pads) {
        ValueType xt = c.type(x);
        ValueType gt = c.type(g);
        int k = geo.spatialRank();
        if (!wt.isStatic() || !xt.hasRank() || !gt.hasRank() || xt.rank() != k + 2 || gt.rank() != k + 2) {
            return null;
        }
        long outCh = wt.dim(0);
        long inCh = wt.dim(1);
        long inSpatial = 1;
        long outSpatial = 1;
        for (int i = 0; i < k; i++) {
            long in = xt.dim(2 + i);
            long out = gt.dim(2 + i);
            if (in < 0 || out < 0) {
                return null;
            }
            inSpatial *= in;
            outSpatial *= out;
        }
        long taps = 1;
        for (long kk : geo.kernel()) {
            taps *= kk;
        }
        if (taps == 1 && geo.unitStrides() || outCh * inSpatial > inCh * outSpatial) {
            return null;   // 1×1 stride 1 has its own product; else an im2col of x would be smaller
        }
        // one-hot kernel [1, K, k…] of a virtual convolution: its input gradient spreads g over the taps
        long[] oneHotShape = new long[k + 2];
        oneHotShape[0] = 1;
        oneHotShape[1] = taps;
        System.arraycopy(geo.kernel(), 0, oneHotShape, 2, k);
        double[] oneHot = new double[(int) (taps * taps)];
        for (int t = 0; t < taps; t++) {
            oneHot[(int) (t * taps + t)] = 1;
        }
        Tensor e = Tensor.ofDoubles(oneHotShape, oneHot).to(c.dtype(g));
        long[] folded = new long[k + 2];
        folded[0] = -1;
        folded[1] = 1;
        long[] foldedType = gt.dims();
        foldedType[0] = -1;
        foldedType[1] = 1;
        for (int i = 0; i < k; i++) {
            folded[2 + i] = gt.dim(2 + i);
        }
        String g1 = c.typed(c.reshape(g, c.ints(folded)), ValueType.of(c.dtype(g), foldedType));
        String spread = convInputGrad(c, g1, null, e, geo, pads, 1, x);
        return c.typed(c.reshape(spread, c.ints(-1, outCh * taps, inSpatial)),
                ValueType.of(c.dtype(g), xt.dim(0), outCh * taps, inSpatial));
    }

    /**
     * dW from the taps: per sample products summed over the batch when the spatial extent is large,
     * else one product over batch and positions together (a transpose of x first), whichever ONNX
     * Runtime ran faster on ResNet's layers (batch 16, 2 threads).
     */
    private static String weightGradFromTaps(GradContext c, String taps, String x, ValueType wt) {
        long outCh = wt.dim(0);
        long inCh = wt.dim(1);
        long kTaps = wt.numel() / (outCh * inCh);
        long positions = c.type(taps).dim(2);
        String x3 = c.reshape(x, c.ints(0, inCh, positions));
        String dw;
        if (positions > inCh) {
            String prod = c.op("MatMul", taps, c.transpose(x3, 0, 2, 1));
            dw = c.reduce("ReduceSum", prod, new long[] {0}, false);
        } else {
            String t2 = c.reshape(c.transpose(taps, 1, 0, 2), c.ints(outCh * kTaps, -1));
            String x2 = c.reshape(c.transpose(x3, 1, 0, 2), c.ints(inCh, -1));
            dw = c.build("Gemm").in(t2, x2).attr("transB", 1L).out();
        }
        String perTap = c.transpose(c.reshape(dw, c.ints(outCh, kTaps, inCh)), 0, 2, 1);
        return c.typed(c.reshape(perTap, c.ints(wt.dims())), wt.withDtype(c.dtype(x)));
    }

    /** dx from the taps and a trainable weight: [in, out·K] times the taps of each sample. */
    private static String inputGradFromTaps(GradContext c, String taps, String w, ValueType wt, String x) {
        long outCh = wt.dim(0);
        long inCh = wt.dim(1);
        long kTaps = wt.numel() / (outCh * inCh);
        String w2 = c.reshape(c.transpose(c.reshape(w, c.ints(outCh, inCh, kTaps)), 1, 0, 2), c.ints(inCh, outCh * kTaps));
        return c.reshapeLike(c.op("MatMul", w2, taps), x);
    }

    private static String convInputGrad(GradContext c, String g, String w, ValueType wt, ConvGeometry geo,
                                        long[] pads, long group, String x) {
        Optional<Tensor> frozen = c.constant(w);
        if (frozen.isPresent()) {
            return convInputGrad(c, g, w, frozen.get(), geo, pads, group, x);
        }
        return convInputGrad(c, g, w, null, wt, geo, pads, group, x);
    }

    /** The input gradient for a constant weight {@code value} (named {@code w}, or null when not in the graph). */
    private static String convInputGrad(GradContext c, String g, String w, Tensor value, ConvGeometry geo,
                                        long[] pads, long group, String x) {
        return convInputGrad(c, g, w, value, ValueType.of(value.dtype(), value.shape()), geo, pads, group, x);
    }

    private static String convInputGrad(GradContext c, String g, String w, Tensor frozen, ValueType wt, ConvGeometry geo,
                                        long[] pads, long group, String x) {
        int k = geo.spatialRank();
        long[] tpads = new long[2 * k];
        boolean direct = geo.unitStrides();
        for (int i = 0; i < k && direct; i++) {
            long span = geo.effectiveKernel(i) - 1;
            tpads[i] = span - pads[i];
            tpads[i + k] = span - pads[i + k];
            direct = tpads[i] >= 0 && tpads[i + k] >= 0;
        }
        if (direct) {
            String flipped;
            if (frozen != null) {
                flipped = c.initializer((w == null ? "conv_grad_taps" : w) + "_flipped", flipSwap(frozen, group));
            } else {
                flipped = flipSwapInGraph(c, w, wt, geo.kernel(), group);
            }
            return c.build("Conv").in(g, flipped).attr("pads", tpads).attr("dilations", geo.dilations())
                    .attr("strides", ConvGeometry.ones(k)).attr("group", group).out();
        }
        if (frozen != null && w != null) {
            String phased = phasedInputGrad(c, g, w, frozen, geo, pads, group, x);
            if (phased != null) {
                return phased;
            }
        }
        String kernel = w != null ? w : c.initializer("conv_grad_taps", frozen);
        return transposedConv(c, g, kernel, geo, pads, group, x, "grad/ConvTranspose");
    }

    /**
     * The most positions per phase for which the phased input gradient is taken: on ResNet-18's
     * layers (batch 16, 2 threads) it ran in 1.9 ms against ConvTranspose's 3.4 ms at 2×2 per phase,
     * but slower at 4×4 (1.5 against 1.2 ms) and 8×8 (1.7 against 1.3 ms), DepthToSpace's
     * interleaving then costing as much as the products.
     */
    static final long MAX_PHASE_POSITIONS = 4;

    /**
     * The input gradient of a frozen 2-D convolution with equal strides s &gt; 1 as s² plain Convs,
     * one per output phase, joined by DepthToSpace; null where it does not apply (grouped, dilated,
     * unequal strides, sizes unknown at build time or not multiples of s, a kernel smaller than s,
     * more than {@link #MAX_PHASE_POSITIONS} positions per phase).
     * Phase (v_h, v_w) holds {@code dx[n, i, s·u + v]}: only the kernel taps t ≡ v + pad (mod s)
     * reach it, so its kernel is those taps, flipped and with channels swapped (a constant ONNX
     * Runtime prepacks), and its padding puts the offset (v + pad) div s in place. Together the
     * phases do exactly the products of the transposed convolution, which ONNX Runtime's CPU
     * ConvTranspose runs several times slower (a product and then a scatter of columns).
     */
    private static String phasedInputGrad(GradContext c, String g, String w, Tensor frozen, ConvGeometry geo,
                                          long[] pads, long group, String x) {
        ValueType xt = c.type(x);
        ValueType gt = c.type(g);
        long[] shape = frozen.shape();
        if (group != 1 || geo.spatialRank() != 2 || shape.length != 4 || !xt.hasRank() || !gt.hasRank()
                || xt.rank() != 4 || gt.rank() != 4) {
            return null;
        }
        long s = geo.strides()[0];
        if (s < 2 || geo.strides()[1] != s || geo.dilations()[0] != 1 || geo.dilations()[1] != 1) {
            return null;
        }
        long[] phaseSize = new long[2];
        long[][] padBegin = new long[2][(int) s];
        long[][] padEnd = new long[2][(int) s];
        for (int d = 0; d < 2; d++) {
            long in = xt.dim(2 + d);
            long out = gt.dim(2 + d);
            long k = shape[2 + d];
            if (in < 0 || out < 0 || in % s != 0 || k < s) {
                return null;
            }
            phaseSize[d] = in / s;
            for (int v = 0; v < s; v++) {
                long r = (v + pads[d]) % s;
                long offset = (v + pads[d]) / s;
                long taps = (k - r + s - 1) / s;
                padBegin[d][v] = taps - 1 - offset;
                padEnd[d][v] = phaseSize[d] - out + taps - 1 - padBegin[d][v];
                if (padBegin[d][v] < 0 || padEnd[d][v] < 0) {
                    return null;
                }
            }
        }
        if (phaseSize[0] * phaseSize[1] > MAX_PHASE_POSITIONS) {
            return null;
        }
        List<String> phases = new ArrayList<>();
        for (int vh = 0; vh < s; vh++) {
            for (int vw = 0; vw < s; vw++) {
                Tensor kernel = phaseKernel(frozen, s, (vh + pads[0]) % s, (vw + pads[1]) % s);
                String kn = c.initializer(w + "_phase" + vh + vw, kernel);
                phases.add(c.build("Conv").in(g, kn)
                        .attr("pads", padBegin[0][vh], padBegin[1][vw], padEnd[0][vh], padEnd[1][vw]).out());
            }
        }
        String joined = c.build("Concat").in(phases.toArray(String[]::new)).attr("axis", 1L).out();
        return c.typed(c.build("DepthToSpace").in(joined).attr("blocksize", s).out(), xt.withDtype(c.dtype(g)));
    }

    /**
     * The taps {@code t_h ≡ rh, t_w ≡ rw (mod s)} of a weight [out, in, kh, kw], flipped, in and
     * out channels swapped: {@code K[i, o, a, b] = W[o, i, s·(Jh−1−a) + rh, s·(Jw−1−b) + rw]}.
     */
    static Tensor phaseKernel(Tensor w, long s, long rh, long rw) {
        long[] sh = w.shape();
        int co = (int) sh[0];
        int ci = (int) sh[1];
        int kh = (int) sh[2];
        int kw = (int) sh[3];
        int jh = (int) ((kh - rh + s - 1) / s);
        int jw = (int) ((kw - rw + s - 1) / s);
        double[] in = w.toDoubleArray();
        double[] out = new double[ci * co * jh * jw];
        for (int o = 0; o < co; o++) {
            for (int i = 0; i < ci; i++) {
                for (int a = 0; a < jh; a++) {
                    for (int b = 0; b < jw; b++) {
                        int th = (int) (s * (jh - 1 - a) + rh);
                        int tw = (int) (s * (jw - 1 - b) + rw);
                        out[((i * co + o) * jh + a) * jw + b] = in[((o * ci + i) * kh + th) * kw + tw];
                    }
                }
            }
        }
        return Tensor.ofDoubles(new long[] {ci, co, jh, jw}, out).to(w.dtype());
    }

    /**
     * ConvTranspose of {@code g} with {@code w}, sized like {@code x}: the output padding is exact
     * when x's spatial sizes are known, else the largest one and the result is cut to x's shape.
     */
    private static String transposedConv(GradContext c, String g, String w, ConvGeometry geo, long[] pads,
                                         long group, String x, String name) {
        int k = geo.spatialRank();
        ValueType xt = c.type(x);
        ValueType gt = c.type(g);
        long[] outPad = new long[k];
        boolean exact = true;
        for (int i = 0; i < k; i++) {
            long in = xt.dim(2 + i);
            long out = gt.dim(2 + i);
            if (in < 0) {
                exact = false;
                break;
            }
            if (out < 0) {
                out = geo.outputSize(i, in, false);
            }
            outPad[i] = in - ((out - 1) * geo.strides()[i] - pads[i] - pads[i + k] + geo.effectiveKernel(i));
            exact &= outPad[i] >= 0 && outPad[i] < Math.max(geo.strides()[i], geo.dilations()[i]);
        }
        if (!exact) {
            for (int i = 0; i < k; i++) {
                outPad[i] = geo.strides()[i] - 1;
            }
        }
        String dx = c.build("ConvTranspose").name(name).in(g, w).attr("strides", geo.strides()).attr("pads", pads)
                .attr("dilations", geo.dilations()).attr("group", group).attr("output_padding", outPad).out();
        if (!exact) {
            String spatial = c.op("Slice", c.shape(x), c.ints(2), c.ints(Long.MAX_VALUE));
            dx = c.op("Slice", dx, c.ints(new long[k]), spatial, c.ints(range(2, 2 + k)));
        }
        return dx;
    }

    /** The kernel for the input gradient: spatially flipped, in and out channels swapped per group. */
    static Tensor flipSwap(Tensor w, long group) {
        long[] s = w.shape();
        int co = (int) s[0];
        int ci = (int) s[1];
        int spatial = (int) (w.numel() / ((long) co * ci));
        int coG = (int) (co / group);
        double[] in = w.toDoubleArray();
        double[] out = new double[in.length];
        for (int o = 0; o < co; o++) {
            int grp = o / coG;
            int oInGroup = o % coG;
            for (int i = 0; i < ci; i++) {
                int newOut = grp * ci + i;
                int src = (o * ci + i) * spatial;
                int dst = (newOut * coG + oInGroup) * spatial;
                for (int p = 0; p < spatial; p++) {
                    out[dst + p] = in[src + spatial - 1 - p];
                }
            }
        }
        long[] ns = s.clone();
        ns[0] = (long) ci * group;
        ns[1] = coG;
        Tensor t = Tensor.ofDoubles(ns, out);
        return t.to(w.dtype());
    }

    private static String flipSwapInGraph(GradContext c, String w, ValueType wt, long[] kernel, long group) {
        int k = kernel.length;
        long[] d = wt.dims();
        boolean oneByOne = true;
        for (long kk : kernel) {
            oneByOne &= kk == 1;
        }
        if (group != 1 && !wt.isStatic()) {
            throw c.unsupported("a grouped convolution with a trainable weight of unknown shape");
        }
        String f = w;
        if (!oneByOne) {
            long[] minus = new long[k];
            long[] lowest = new long[k];
            Arrays.fill(minus, -1);
            Arrays.fill(lowest, Long.MIN_VALUE);
            f = c.op("Slice", w, c.ints(minus), c.ints(lowest), c.ints(range(2, 2 + k)), c.ints(minus));
        }
        long[] perm = range(0, k + 2);
        perm[0] = 1;
        perm[1] = 0;
        if (group == 1) {
            return c.transpose(f, perm);
        }
        long coG = d[0] / group;
        long[] grouped = new long[k + 3];
        grouped[0] = group;
        grouped[1] = coG;
        grouped[2] = d[1];
        System.arraycopy(d, 2, grouped, 3, k);
        long[] gperm = range(0, k + 3);
        gperm[1] = 2;
        gperm[2] = 1;
        long[] back = d.clone();
        back[0] = d[1] * group;
        back[1] = coG;
        return c.reshape(c.transpose(c.reshape(f, c.ints(grouped)), gperm), c.ints(back));
    }

    /**
     * The weight gradient as a Conv of the input with the output gradient as its kernel, batch and
     * channels swapped, strides and dilations exchanged. With groups, the samples of each group's
     * channels become that group's input channels ({@code [in / group, group · batch, …]} against a
     * kernel {@code [out, batch, …]}, the Conv grouped the same way), so only the blocks the weight
     * holds are computed.
     */
    private static String convWeightGrad(GradContext c, String x, String g, ValueType wt, ConvGeometry geo, long[] pads,
                                         long group) {
        int k = geo.spatialRank();
        long[] perm = range(0, k + 2);
        perm[0] = 1;
        perm[1] = 0;
        long[] kernel = geo.kernel();
        boolean pointwise = group == 1;
        for (int i = 0; i < k; i++) {
            pointwise &= kernel[i] == 1 && geo.strides()[i] == 1 && pads[i] == 0 && pads[i + k] == 0;
        }
        if (pointwise) {
            // 1×1 convolution: dW = Σ_n g_n · x_nᵀ over the flattened spatial positions; Reshape's 0 keeps
            // batch and channels as they are, with no Shape / Slice / Concat at run time
            String g3 = c.reshape(g, c.ints(0, 0, -1));
            String x3 = c.reshape(x, c.ints(0, 0, -1));
            String prod = c.op("MatMul", g3, c.transpose(x3, 0, 2, 1));
            return c.reshapeLike(c.reduce("ReduceSum", prod, new long[] {0}, false), c.node().input(1));
        }
        String xt;
        String gt;
        if (group == 1) {
            xt = c.transpose(x, perm);
            gt = c.transpose(g, perm);
        } else {
            xt = groupsToBatch(c, x, group, wt.dim(1), new long[] {2, 1, 0, 3}, "input");
            gt = groupsToBatch(c, g, group, wt.dim(0) / group, new long[] {1, 2, 0, 3}, "output gradient");
        }
        String dwt = c.build("Conv").in(xt, gt).attr("strides", geo.dilations()).attr("dilations", geo.strides())
                .attr("pads", pads).attr("group", group).out();
        String dw = c.transpose(dwt, perm);
        boolean exact = false;
        ValueType xType = c.type(x);
        ValueType gType = c.type(g);
        if (xType.hasRank() && gType.hasRank()) {
            exact = true;
            for (int i = 0; i < k; i++) {
                long in = xType.dim(2 + i);
                long out = gType.dim(2 + i);
                if (in < 0 || out < 0) {
                    exact = false;
                    break;
                }
                long size = (in + pads[i] + pads[i + k] - geo.strides()[i] * (out - 1) - 1) / geo.dilations()[i] + 1;
                exact &= size == kernel[i];
            }
        }
        if (!exact) {
            dw = c.op("Slice", dw, c.ints(new long[k]), c.ints(kernel), c.ints(range(2, 2 + k)));
        }
        return dw;
    }

    /**
     * {@code v [batch, group · perGroup, spatial…]} viewed as {@code [batch, group, perGroup, positions]},
     * transposed by {@code perm} and given its spatial axes back: {@code [perGroup, group · batch, …]}
     * for the input (perm 2, 1, 0, 3), {@code [group · perGroup, batch, …]} for the output gradient
     * (perm 1, 2, 0, 3). The spatial sizes must be known at build time.
     */
    private static String groupsToBatch(GradContext c, String v, long group, long perGroup, long[] perm, String what) {
        ValueType t = c.type(v);
        if (!t.hasRank()) {
            throw c.unsupported("the weight gradient of a grouped convolution needs the rank of its " + what);
        }
        long[] spatial = java.util.Arrays.copyOfRange(t.dims(), 2, t.rank());
        for (long d : spatial) {
            if (d < 0) {
                throw c.unsupported("the weight gradient of a grouped convolution needs the spatial sizes of its " + what
                        + " at build time, got " + t);
            }
        }
        String grouped = c.transpose(c.reshape(v, c.ints(0, group, perGroup, -1)), perm);
        long[] back = new long[2 + spatial.length];
        back[0] = perm[0] == 2 ? perGroup : group * perGroup;
        back[1] = -1;
        System.arraycopy(spatial, 0, back, 2, spatial.length);
        return c.reshape(grouped, c.ints(back));
    }

    static long[] range(int from, int to) {
        long[] r = new long[to - from];
        for (int i = 0; i < r.length; i++) {
            r[i] = from + i;
        }
        return r;
    }

    // ---------------------------------------------------------------- pooling

    /**
     * MaxPool: a second MaxPool yields the flat index of each maximum; the gradient is scattered
     * (and summed, where windows overlap) back to those positions.
     */
    static void maxPool(GradContext c) {
        String x = c.input(0);
        String g = c.outGrad(0);
        if (c.attrInt("storage_order", 0) != 0) {
            throw c.unsupported("MaxPool with storage_order = 1");
        }
        long[] kernel = c.attrInts("kernel_shape", null);
        long[] strides = c.attrInts("strides", ConvGeometry.ones(kernel.length));
        long[] dil = c.attrInts("dilations", ConvGeometry.ones(kernel.length));
        boolean overlapping = false;
        for (int i = 0; i < kernel.length; i++) {
            overlapping |= strides[i] < dil[i] * (kernel[i] - 1) + 1;
        }
        if (overlapping && c.opset() < 16) {
            throw c.unsupported("overlapping MaxPool windows need ScatterElements with reduction (opset 16); the model is opset "
                    + c.opset());
        }
        Graph.NodeBuilder b = c.build("MaxPool").in(x).outputCount(2);
        for (AttributeProto a : c.node().attributes().values()) {
            b.attr(a);
        }
        String indices = b.add().output(1);
        String flat = c.ints(-1);
        String zeros = c.build("ConstantOfShape").in(c.reshape(c.op("Size", x), c.ints(1)))
                .attr("value", Emitter.filled(c.dtype(g), new long[] {1}, 0)).out();
        Graph.NodeBuilder s = c.build("ScatterElements").in(zeros, c.reshape(indices, flat), c.reshape(g, flat))
                .attr("axis", 0L);
        if (overlapping) {
            s.attr("reduction", "add");
        }
        c.setGrad(0, c.reshapeLike(s.out(), x));
    }

    /**
     * AveragePool: each output's gradient, divided by its window's count, spread back over the
     * window with a ConvTranspose of ones (one channel; batch and channels are folded together).
     */
    static void averagePool(GradContext c) {
        String x = c.input(0);
        String g = c.outGrad(0);
        long[] kernel = c.attrInts("kernel_shape", null);
        int k = kernel.length;
        if (c.attrInt("ceil_mode", 0) != 0) {
            throw c.unsupported("AveragePool with ceil_mode = 1");
        }
        ConvGeometry geo = ConvGeometry.of(c.node(), kernel);
        ValueType xt = c.type(x);
        long[] inSizes = new long[k];
        for (int i = 0; i < k; i++) {
            inSizes[i] = xt.dim(2 + i);
        }
        long[] pads = geo.explicitPads(inSizes);
        if (pads == null) {
            throw c.unsupported("SAME padding with strides needs the input's spatial sizes at build time");
        }
        boolean padded = false;
        for (long p : pads) {
            padded |= p != 0;
        }
        if (c.node().attrString("auto_pad", "NOTSET").startsWith("SAME")) {
            padded = true;    // SAME pads never count
        }
        long window = 1;
        for (long kk : kernel) {
            window *= kk;
        }
        String scaled;
        if (!padded || c.attrInt("count_include_pad", 0) != 0) {
            scaled = c.op("Div", g, c.scalarLike(window, g));
        } else {
            // the share of real (not padding) elements in each window, from the same pooling of ones
            String onesShape = c.concat0(c.ints(1, 1), c.op("Slice", c.shape(x), c.ints(2), c.ints(Long.MAX_VALUE)));
            String ones = c.build("ConstantOfShape").in(onesShape)
                    .attr("value", Emitter.filled(c.dtype(x), new long[] {1}, 1)).out();
            Graph.NodeBuilder b = c.build("AveragePool").in(ones);
            for (AttributeProto a : c.node().attributes().values()) {
                b.attr(a);
            }
            // padding counted: the pool of ones is (real elements) / (window size)
            String share = b.attr("count_include_pad", 1L).out();
            scaled = c.op("Div", g, c.op("Mul", share, c.scalarLike(window, g)));
        }
        String folded = c.typed(c.reshape(scaled, c.concat0(c.ints(-1, 1), c.op("Slice", c.shape(g), c.ints(2),
                c.ints(Long.MAX_VALUE)))), foldedType(c.type(g)));
        long[] kshape = new long[k + 2];
        kshape[0] = 1;
        kshape[1] = 1;
        System.arraycopy(kernel, 0, kshape, 2, k);
        String onesKernel = c.constant(1.0, c.dtype(g), kshape);
        // x only lends its spatial sizes: the folded input has the same ones
        String dx = transposedConv(c, folded, onesKernel, geo, pads, 1, x, "grad/AvgPoolTranspose");
        c.setGrad(0, c.reshapeLike(dx, x));
    }

    private static ValueType foldedType(ValueType t) {
        if (!t.hasRank()) {
            return t;
        }
        long[] d = t.dims();
        d[0] = d[0] >= 0 && d[1] >= 0 ? d[0] * d[1] : -1;
        d[1] = 1;
        return t.withDims(d);
    }

    static void globalAveragePool(GradContext c) {
        String x = c.input(0);
        String g = c.outGrad(0);
        // the window is the whole spatial extent: a constant when the spatial sizes are known
        ValueType xt = c.type(x);
        long spatial = xt.hasRank() ? 1 : -1;
        for (int i = 2; i < xt.rank() && spatial > 0; i++) {
            spatial = xt.dim(i) >= 0 ? spatial * xt.dim(i) : -1;
        }
        String count = spatial > 0 ? c.scalarLike(spatial, x) : c.op("Div", c.sizeAs(x, x), c.sizeAs(c.output(0), x));
        c.setGrad(0, c.op("Expand", c.op("Div", g, count), c.shape(x)));
    }

    // ---------------------------------------------------------------- normalization

    /** BatchNormalization in inference mode: frozen statistics, a per-channel affine map. */
    static void batchNorm(GradContext c) {
        if (c.attrInt("training_mode", 0) != 0 || c.outputCount() > 1) {
            throw c.unsupported("BatchNormalization in training mode (peft4j trains with frozen statistics)");
        }
        if (c.needsGrad(3) || c.needsGrad(4)) {
            throw c.unsupported("BatchNormalization's running mean and variance are frozen statistics, not trainable");
        }
        String x = c.input(0);
        String g = c.outGrad(0);
        int r = c.rank(x);
        if (r < 2) {
            throw c.unsupported("BatchNormalization needs the input rank");
        }
        float eps = c.attrFloat("epsilon", 1e-5f);
        long[] perChannel = range(1, r - 1);
        long[] reduceAxes = new long[r - 1];
        reduceAxes[0] = 0;
        System.arraycopy(range(2, r), 0, reduceAxes, 1, r - 2);
        Optional<Tensor> scale = c.constant(c.input(1));
        Optional<Tensor> var = c.constant(c.input(4));
        // the input's gradient folds scale / sqrt(var + eps) into one constant when both are constants;
        // 1 / sqrt(var + eps) alone is emitted only when something reads it (ONNX Runtime warns about unused initializers)
        boolean foldedFactor = scale.isPresent() && var.isPresent();
        String invStd = null;
        if (c.needsGrad(1) || (c.needsGrad(0) && !foldedFactor)) {
            if (var.isPresent()) {
                double[] v = var.get().toDoubleArray();
                double[] inv = new double[v.length];
                for (int i = 0; i < v.length; i++) {
                    inv[i] = 1.0 / Math.sqrt(v[i] + (double) eps);
                }
                invStd = c.initializer("bn_inv_std", channelTensor(inv, r, c.dtype(x)));
            } else {
                invStd = c.unsqueeze(c.op("Reciprocal", c.op("Sqrt", c.op("Add", c.input(4), c.scalarLike(eps, x)))),
                        perChannel);
            }
        }
        if (c.needsGrad(0)) {
            String factor;
            if (foldedFactor) {
                double[] s = scale.get().toDoubleArray();
                double[] v = var.get().toDoubleArray();
                double[] f = new double[s.length];
                for (int i = 0; i < s.length; i++) {
                    f[i] = s[i] / Math.sqrt(v[i] + (double) eps);
                }
                factor = c.initializer("bn_grad_factor", channelTensor(f, r, c.dtype(x)));
            } else {
                factor = c.op("Mul", c.unsqueeze(c.input(1), perChannel), invStd);
            }
            c.setGrad(0, c.op("Mul", g, factor));
        }
        if (c.needsGrad(1)) {
            String xhat = c.op("Mul", c.op("Sub", x, c.unsqueeze(c.input(3), perChannel)), invStd);
            c.setGrad(1, c.reduce("ReduceSum", c.op("Mul", g, xhat), reduceAxes, false));
        }
        if (c.needsGrad(2)) {
            c.setGrad(2, c.reduce("ReduceSum", g, reduceAxes, false));
        }
    }

    private static Tensor channelTensor(double[] v, int rank, DataType dt) {
        long[] shape = new long[rank - 1];
        Arrays.fill(shape, 1);
        shape[0] = v.length;
        return Tensor.ofDoubles(shape, v).to(dt);
    }

    /**
     * LayerNormalization over the axes from {@code axis} on: computed on the input flattened to
     * [rows, features]; statistics are recomputed (the forward node need not output them).
     */
    static void layerNorm(GradContext c) {
        String x = c.input(0);
        String g = c.outGrad(0);
        long axis = c.attrInt("axis", -1);
        float eps = c.attrFloat("epsilon", 1e-5f);
        String x2 = c.build("Flatten").in(x).attr("axis", axis).out();
        String g2 = c.build("Flatten").in(g).attr("axis", axis).out();
        long[] feat = {1};
        String mu = c.reduce("ReduceMean", x2, feat, true);
        String xc = c.op("Sub", x2, mu);
        String var = c.reduce("ReduceMean", c.op("Mul", xc, xc), feat, true);
        String inv = c.op("Reciprocal", c.op("Sqrt", c.op("Add", var, c.scalarLike(eps, x))));
        String xhat = c.op("Mul", xc, inv);
        if (c.needsGrad(0)) {
            String s2 = c.reshape(c.input(1), c.ints(1, -1));
            String gs = c.op("Mul", g2, s2);
            String m1 = c.reduce("ReduceMean", gs, feat, true);
            String m2 = c.reduce("ReduceMean", c.op("Mul", gs, xhat), feat, true);
            String dx2 = c.op("Mul", inv, c.op("Sub", c.op("Sub", gs, m1), c.op("Mul", xhat, m2)));
            c.setGrad(0, c.reshapeLike(dx2, x));
        }
        if (c.needsGrad(1)) {
            c.setGrad(1, c.reshapeLike(c.reduce("ReduceSum", c.op("Mul", g2, xhat), new long[] {0}, false), c.input(1)));
        }
        if (c.needsGrad(2)) {
            c.setGrad(2, c.reshapeLike(c.reduce("ReduceSum", g2, new long[] {0}, false), c.input(2)));
        }
    }
}
