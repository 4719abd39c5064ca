package io.peft4j.core.peft.lora;

import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.modules.TargetLayer.Kind;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.peft.PeftMatching;
import io.peft4j.core.peft.PeftMethod;
import io.peft4j.core.peft.Rewrites;
import io.peft4j.core.peft.Slots;
import io.peft4j.core.peft.Stack;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;

/**
 * LoRA: {@code y = base(x) + s · B(A(x))} with {@code s = alpha / r} ({@code alpha / √r} with
 * rsLoRA), rank and alpha per module from {@code rank_pattern} / {@code alpha_pattern}.
 *
 * <p>Tensors in PEFT's layout: Linear A [r, in], B [out, r]; Conv A [r, in, k…] (the base's kernel,
 * strides, pads and dilations), B [out, r, 1…]; Embedding {@code lora_embedding_A} [r, vocab],
 * {@code lora_embedding_B} [dim, r]. {@code fan_in_fan_out} changes nothing here: ONNX layers state
 * their layout, and the adapter's shapes follow in/out features, not the stored weight.
 * Injected modules also read {@code lora_scaling}, of shape [1] (0 switches the module off; ONNX
 * Runtime's adapter files refuse rank-0 parameters).
 *
 * <p>A Conv whose output only an inference-mode BatchNormalization reads gets its delta after the
 * BatchNorm instead, scaled per output channel by the BatchNorm's {@code γ / √(σ² + ε)}:
 * {@code BN(conv(x) + d) = BN(conv(x)) + γ / √(σ² + ε) ⊙ d} exactly, and the Conv and its BatchNorm
 * stay adjacent, so that runtimes still fuse them (and what follows). The graph's value names do not
 * change either way. Merging folds the delta into the Conv weight as always.
 */
public final class LoraMethod implements PeftMethod {

    public static final String A = "lora_A.weight";
    public static final String B = "lora_B.weight";
    public static final String EMB_A = "lora_embedding_A";
    public static final String EMB_B = "lora_embedding_B";
    public static final String SCALING = "lora_scaling";

    @Override
    public String peftType() {
        return "LORA";
    }

    @Override
    public Optional<String> unsupported(TargetLayer t, AdapterConfig c) {
        if (c.useDora()) {
            return Optional.of("DoRA (use_dora) is not supported");
        }
        if (t.kind() == Kind.CONV && t.groups() != 1) {
            return Optional.of("a grouped convolution (groups = " + t.groups() + "); LoRA adapts convolutions with groups = 1");
        }
        return Optional.empty();
    }

    private static String roleA(TargetLayer t) {
        return t.kind() == Kind.EMBEDDING ? EMB_A : A;
    }

    private static String roleB(TargetLayer t) {
        return t.kind() == Kind.EMBEDDING ? EMB_B : B;
    }

    /** Kernel dims of a Conv weight [out, in, k…]; empty for other layers. */
    private static long[] kernel(TargetLayer t) {
        long[] w = t.weightShape();
        return t.kind() == Kind.CONV ? java.util.Arrays.copyOfRange(w, 2, w.length) : new long[0];
    }

    private static long[] concat(long[] head, long[] tail) {
        long[] s = java.util.Arrays.copyOf(head, head.length + tail.length);
        System.arraycopy(tail, 0, s, head.length, tail.length);
        return s;
    }

    private static long[] ones(int n) {
        long[] s = new long[n];
        java.util.Arrays.fill(s, 1);
        return s;
    }

    private static long[] shapeA(TargetLayer t, long r) {
        return concat(new long[] {r, t.inFeatures()}, kernel(t));
    }

    private static long[] shapeB(TargetLayer t, long r) {
        return concat(new long[] {t.outFeatures(), r}, ones(kernel(t).length));
    }

    @Override
    public Map<String, long[]> shapes(TargetLayer t, AdapterConfig c) {
        int r = PeftMatching.rank(c, t.path());
        Map<String, long[]> m = new LinkedHashMap<>();
        m.put(roleA(t), shapeA(t, r));
        m.put(roleB(t), shapeB(t, r));
        return m;
    }

    @Override
    public Map<String, Tensor> init(TargetLayer t, AdapterConfig c, Random rng) {
        int r = PeftMatching.rank(c, t.path());
        long[] sa = shapeA(t, r);
        long[] sb = shapeB(t, r);
        Map<String, Tensor> m = new LinkedHashMap<>();
        if (t.kind() == Kind.EMBEDDING) {
            // PEFT's Embedding: A zeros, B standard normal
            float[] b = new float[Math.toIntExact(Tensor.numel(sb))];
            for (int i = 0; i < b.length; i++) {
                b[i] = (float) rng.nextGaussian();
            }
            m.put(EMB_A, Tensor.zeros(DataType.FLOAT, sa));
            m.put(EMB_B, Tensor.ofFloats(sb, b));
        } else {
            // kaiming_uniform_(a = √5): bound = gain·√(3 / fan_in) with gain = √(2 / (1 + 5)) → 1 / √fan_in
            double bound = 1 / Math.sqrt(Rewrites.tail(sa, 1));
            float[] a = new float[Math.toIntExact(Tensor.numel(sa))];
            for (int i = 0; i < a.length; i++) {
                a[i] = (float) ((rng.nextDouble() * 2 - 1) * bound);
            }
            m.put(A, Tensor.ofFloats(sa, a));
            m.put(B, Tensor.zeros(DataType.FLOAT, sb));
        }
        return m;
    }

    @Override
    public Map<String, Tensor> identity(TargetLayer t, AdapterConfig c) {
        Map<String, Tensor> m = new LinkedHashMap<>();
        shapes(t, c).forEach((role, shape) -> m.put(role, Tensor.zeros(DataType.FLOAT, shape)));
        return m;
    }

    // ---------------------------------------------------------------- inject

    @Override
    public void inject(Model model, TargetLayer t, AdapterConfig c, Map<String, Tensor> tensors, Slots slots) {
        Graph g = model.graph();
        Node n = Rewrites.node(g, t);
        DataType dt = t.dtype();
        String p = t.path();
        Tensor a = tensors.get(roleA(t)).to(dt);
        Tensor b = tensors.get(roleB(t)).to(dt);
        String va = slots.tensor(roleA(t), a, Tensor.zeros(dt, a.shape()), 0, true);
        String vb = slots.tensor(roleB(t), b, Tensor.zeros(dt, b.shape()), 1, true);
        String s = slots.tensor(SCALING, scaling(dt, PeftMatching.loraScale(c, p)), scaling(dt, 0), -1, false);

        Optional<Rewrites.BatchNormAfter> bn = batchNormAfter(model, n, t);
        String y = n.output(0);   // the value the delta is added to
        String ax;   // A(x)
        String bax;  // B(A(x)), scaled (a Conv's B) or not yet
        switch (t.kind()) {
            case LINEAR -> {
                if (n.is("Gemm")) {
                    // Gemm reads x transposed when transA = 1; A [r, in] and B [out, r] are read as Aᵀ, Bᵀ
                    ax = g.build("Gemm").name(p + "/lora_A").in(n.input(0), va)
                            .attr("transA", n.attrInt("transA", 0)).attr("transB", 1L).out();
                    bax = g.build("Gemm").name(p + "/lora_B").in(ax, vb).attr("transB", 1L).out();
                } else {
                    ax = g.build("MatMul").name(p + "/lora_A").in(n.input(0), Rewrites.transpose(g, p + "/lora_A_T", va)).out();
                    bax = g.build("MatMul").name(p + "/lora_B").in(ax, Rewrites.transpose(g, p + "/lora_B_T", vb)).out();
                }
            }
            case CONV -> {
                ax = conv(g, n, p + "/lora_A", n.input(0), va, t);
                // the scale multiplies B's rows [out, r, 1…] rather than the delta [batch, out, …]: a far smaller Mul
                String factor = s;
                if (bn.isPresent()) {
                    // BN(conv + s·Δ) = BN(conv) + (γ/√(σ²+ε) · s)·Δ: the delta goes after the BatchNorm
                    String perChannel = g.addInitializer(p + "/lora_bn_scale", channels(dt, bn.get().scale(), kernel(t).length));
                    factor = g.build("Mul").name(p + "/lora_bn_scale").in(s, perChannel).out();
                    y = bn.get().node().output(0);
                }
                String scaledB = g.build("Mul").name(p + "/lora_scale").in(vb, factor).out();
                bax = g.build("Conv").name(p + "/lora_B").in(ax, scaledB).out();
            }
            case EMBEDDING -> {
                // the rows of Aᵀ [vocab, r] that the ids pick, then times Bᵀ
                ax = g.build("Gather").name(p + "/lora_embedding_A").in(Rewrites.transpose(g, p + "/lora_embedding_A_T", va),
                        n.input(1)).attr("axis", 0L).out();
                bax = g.build("MatMul").name(p + "/lora_embedding_B").in(ax,
                        Rewrites.transpose(g, p + "/lora_embedding_B_T", vb)).out();
            }
            default -> throw new IllegalStateException(t.kind().toString());
        }
        String delta = t.kind() == Kind.CONV ? bax : g.build("Mul").name(p + "/lora_scale").in(bax, s).out();
        String base = g.detachProducer(y);
        g.build("Add").name(p + "/lora_add").in(base, delta).outputs(y).add();
    }

    /** {@code lora_scaling}: shape [1], since ONNX Runtime's adapter files refuse rank-0 parameters. */
    private static Tensor scaling(DataType dt, double value) {
        return Rewrites.tensor(dt, new long[] {1}, new float[] {(float) value});
    }

    /**
     * The inference-mode BatchNorm that alone reads a targeted Conv's output, if any: the delta then
     * goes after it (see the class comment).
     */
    private static Optional<Rewrites.BatchNormAfter> batchNormAfter(Model model, Node n, TargetLayer t) {
        return t.kind() == Kind.CONV ? Rewrites.batchNormAfter(model, n, t.outFeatures()) : Optional.empty();
    }

    /** Per-channel values as a [C, 1, 1…] tensor that scales the rows of a Conv's B [C, r, 1…]. */
    private static Tensor channels(DataType dt, double[] v, int spatial) {
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            f[i] = (float) v[i];
        }
        return Rewrites.tensor(dt, concat(new long[] {v.length, 1}, ones(spatial)), f);
    }

    /** A Conv over {@code x} with the base layer's geometry (kernel, strides, pads, dilations) and weight {@code w}. */
    private static String conv(Graph g, Node base, String name, String x, String w, TargetLayer t) {
        Graph.NodeBuilder c = g.build("Conv").name(name).in(x, w).attr("kernel_shape", kernel(t));
        for (String attr : List.of("strides", "pads", "dilations")) {
            long[] v = base.attrInts(attr, null);
            if (v != null) {
                c.attr(attr, v);
            }
        }
        String autoPad = base.attrString("auto_pad", "NOTSET");
        if (!autoPad.equals("NOTSET")) {
            c.attr("auto_pad", autoPad);
        }
        return c.out();
    }

    // ---------------------------------------------------------------- stacked

    @Override
    public void injectStacked(Model model, TargetLayer t, List<Member> members, Stack stack) {
        Graph g = model.graph();
        Node n = Rewrites.node(g, t);
        DataType dt = t.dtype();
        String p = t.path();
        int k = members.size();
        List<Integer> ranks = new ArrayList<>();
        for (Member m : members) {
            ranks.add(m.tensors() == null ? null : Math.toIntExact(m.tensors().get(roleA(t)).dim(0)));
        }
        int blk = stack.blockRank(p, ranks);
        long kr = (long) k * blk;
        long in = t.inFeatures();
        long out = t.outFeatures();
        long kin = Rewrites.tail(shapeA(t, 1), 1);   // in · kernel elements per rank row of A

        // A_stack [K·R, in, k…]: adapter j's rows at [j·R, j·R + r_j); B_stack [out, K·R] holds s_j · B_j
        float[] aStack = new float[Math.toIntExact(kr * kin)];
        float[] bStack = new float[Math.toIntExact(out * kr)];
        float[] mask = new float[Math.toIntExact((k + 1) * kr)];
        for (int j = 0; j < k; j++) {
            Member m = members.get(j);
            if (m.tensors() == null) {
                continue;
            }
            float[] a = m.tensors().get(roleA(t)).toFloatArray();
            float[] b = m.tensors().get(roleB(t)).toFloatArray();
            int r = ranks.get(j);
            float s = (float) PeftMatching.loraScale(m.config(), p);
            System.arraycopy(a, 0, aStack, Math.toIntExact((long) j * blk * kin), a.length);
            for (long o = 0; o < out; o++) {
                for (int q = 0; q < r; q++) {
                    bStack[Math.toIntExact(o * kr + (long) j * blk + q)] = s * b[Math.toIntExact(o * r + q)];
                }
            }
            for (int q = 0; q < blk; q++) {
                mask[Math.toIntExact((j + 1) * kr + (long) j * blk + q)] = 1f;   // row j+1 keeps block j
            }
        }
        String idx = p + "/lora_stack";
        String y = n.output(0);   // the value the delta is added to (a Conv's BatchNorm output, see CONV)
        switch (t.kind()) {
            case LINEAR -> {
                String bT = g.addInitializer(idx + "_B_T", Rewrites.tensor(dt, new long[] {kr, out}, transpose(bStack, out, kr)));
                if (n.is("Gemm")) {
                    String aS = g.addInitializer(idx + "_A", Rewrites.tensor(dt, new long[] {kr, in}, aStack));
                    String ax = g.build("Gemm").name(idx + "/A").in(n.input(0), aS)
                            .attr("transA", n.attrInt("transA", 0)).attr("transB", 1L).out();
                    String rows = stack.rows(idx + "/mask", Rewrites.tensor(dt, new long[] {k + 1, kr}, mask));
                    String own = g.build("Mul").name(idx + "/select").in(ax, rows).out();
                    addDelta(g, p, y, g.build("MatMul").name(idx + "/B").in(own, bT).out(), false);
                } else {
                    String aT = g.addInitializer(idx + "_A_T", Rewrites.tensor(dt, new long[] {in, kr}, transpose(aStack, kr, in)));
                    String x3 = Rewrites.asRows(g, idx + "/rows", n.input(0), in);
                    String ax = g.build("MatMul").name(idx + "/A").in(x3, aT).out();
                    String rows = stack.rows(idx + "/mask", Rewrites.tensor(dt, new long[] {k + 1, 1, kr}, mask));
                    String own = g.build("Mul").name(idx + "/select").in(ax, rows).out();
                    addDelta(g, p, y, g.build("MatMul").name(idx + "/B").in(own, bT).out(), true);
                }
            }
            case CONV -> {
                long[] kShape = kernel(t);
                Optional<Rewrites.BatchNormAfter> bn = batchNormAfter(model, n, t);
                if (bn.isPresent()) {
                    // the delta goes after the BatchNorm: fold its per-channel γ/√(σ²+ε) into B's rows
                    double[] perChannel = bn.get().scale();
                    for (long o = 0; o < out; o++) {
                        for (long q = 0; q < kr; q++) {
                            int at = Math.toIntExact(o * kr + q);
                            bStack[at] = (float) (bStack[at] * perChannel[(int) o]);
                        }
                    }
                    y = bn.get().node().output(0);
                }
                String aS = g.addInitializer(idx + "_A", Rewrites.tensor(dt, concat(new long[] {kr, in}, kShape), aStack));
                String bS = g.addInitializer(idx + "_B", Rewrites.tensor(dt, concat(new long[] {out, kr}, ones(kShape.length)), bStack));
                String ax = conv(g, n, idx + "/A", n.input(0), aS, t);
                String rows = stack.rows(idx + "/mask", Rewrites.tensor(dt, concat(new long[] {k + 1, kr}, ones(kShape.length)), mask));
                String own = g.build("Mul").name(idx + "/select").in(ax, rows).out();
                addDelta(g, p, y, g.build("Conv").name(idx + "/B").in(own, bS).out(), false);
            }
            case EMBEDDING -> {
                String aT = g.addInitializer(idx + "_A_T", Rewrites.tensor(dt, new long[] {in, kr}, transpose(aStack, kr, in)));
                String bT = g.addInitializer(idx + "_B_T", Rewrites.tensor(dt, new long[] {kr, out}, transpose(bStack, out, kr)));
                String ax = g.build("Gather").name(idx + "/A").in(aT, n.input(1)).attr("axis", 0L).out();
                String ax3 = Rewrites.asRows(g, idx + "/rows", ax, kr);
                String rows = stack.rows(idx + "/mask", Rewrites.tensor(dt, new long[] {k + 1, 1, kr}, mask));
                String own = g.build("Mul").name(idx + "/select").in(ax3, rows).out();
                addDelta(g, p, y, g.build("MatMul").name(idx + "/B").in(own, bT).out(), true);
            }
            default -> throw new IllegalStateException(t.kind().toString());
        }
    }

    /** y = base + delta, where delta may be in [rows, positions, features] form and is reshaped back to y's shape. */
    private static void addDelta(Graph g, String p, String y, String delta, boolean reshapeBack) {
        String base = g.detachProducer(y);
        String d = reshapeBack ? Rewrites.reshapeLike(g, p + "/lora_stack/unrows", delta, base) : delta;
        g.build("Add").name(p + "/lora_add").in(base, d).outputs(y).add();
    }

    private static float[] transpose(float[] m, long rows, long cols) {
        float[] t = new float[m.length];
        for (long i = 0; i < rows; i++) {
            for (long j = 0; j < cols; j++) {
                t[Math.toIntExact(j * rows + i)] = m[Math.toIntExact(i * cols + j)];
            }
        }
        return t;
    }

    // ---------------------------------------------------------------- merge

    @Override
    public Map<String, Tensor> merge(Model model, TargetLayer t, AdapterConfig c, Map<String, Tensor> tensors) {
        Graph g = model.graph();
        Node n = Rewrites.node(g, t);
        Tensor w = g.initializer(t.weight());
        double s = PeftMatching.loraScale(c, t.path());
        // a Gemm computes alpha·x·W: fold ΔW / alpha into W so that alpha·(W + ΔW/alpha) = alpha·W + ΔW
        s /= Rewrites.gemmAlpha(n);
        float[] a = tensors.get(roleA(t)).toFloatArray();
        float[] b = tensors.get(roleB(t)).toFloatArray();
        int r = Math.toIntExact(tensors.get(roleA(t)).dim(0));
        long out = t.outFeatures();
        long kin = Rewrites.tail(shapeA(t, 1), 1);   // in · kernel elements
        float[] wv = w.toFloatArray();
        // ΔW[o][i] = s · Σ_q B[o][q] · A[q][i]  (PyTorch orientation [out, in·k…]; embeddings: ΔW = (s · B·A)ᵀ)
        for (long o = 0; o < out; o++) {
            for (long i = 0; i < kin; i++) {
                double d = 0;
                for (int q = 0; q < r; q++) {
                    d += (double) b[Math.toIntExact(o * r + q)] * a[Math.toIntExact(q * kin + i)];
                }
                long at = switch (t.layout()) {
                    case OUT_IN, CONV_OUT_IN_K -> o * kin + i;
                    case IN_OUT, EMBEDDING -> i * out + o;   // [in, out] and the [vocab, dim] table
                };
                int at32 = Math.toIntExact(at);
                wv[at32] = (float) (wv[at32] + s * d);
            }
        }
        return Map.of(t.weight(), Rewrites.tensor(w.dtype(), w.shape(), wv));
    }
}
