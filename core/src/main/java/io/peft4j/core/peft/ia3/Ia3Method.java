package io.peft4j.core.peft.ia3;

import io.peft4j.core.Peft4jException;
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

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;

/**
 * (IA)³: a learned vector {@code l} scales a layer's output, {@code y = base(x) · l} (bias
 * included, as PEFT does), or, for {@code feedforward_modules}, its input, {@code y = base(x · l)}.
 *
 * <p>{@code ia3_l} in PEFT's shapes: Linear [out, 1] (output) or [1, in] (input); Conv
 * [1, out, 1…] or [1, in, 1…], broadcasting over the channel axis 1. PEFT has no IA3 embedding.
 */
public final class Ia3Method implements PeftMethod {

    public static final String L = "ia3_l";

    @Override
    public String peftType() {
        return "IA3";
    }

    @Override
    public Optional<String> unsupported(TargetLayer t, AdapterConfig c) {
        if (t.kind() == Kind.EMBEDDING) {
            return Optional.of("an embedding; PEFT's IA3 scales Linear and Conv layers only");
        }
        return Optional.empty();
    }

    private static boolean ff(TargetLayer t, AdapterConfig c) {
        return PeftMatching.isFeedforward(c, t.path());
    }

    /** Features the vector scales: the layer's inputs (feedforward) or outputs. */
    private static long width(TargetLayer t, AdapterConfig c) {
        return ff(t, c) ? t.inFeatures() : t.outFeatures();
    }

    private static long[] shape(TargetLayer t, AdapterConfig c) {
        if (t.kind() == Kind.CONV) {
            long[] s = new long[t.weightShape().length];
            Arrays.fill(s, 1);
            s[1] = width(t, c);
            return s;
        }
        return ff(t, c) ? new long[] {1, t.inFeatures()} : new long[] {t.outFeatures(), 1};
    }

    @Override
    public Map<String, long[]> shapes(TargetLayer t, AdapterConfig c) {
        return Map.of(L, shape(t, c));
    }

    @Override
    public Map<String, Tensor> init(TargetLayer t, AdapterConfig c, Random rng) {
        return identity(t, c);
    }

    @Override
    public Map<String, Tensor> identity(TargetLayer t, AdapterConfig c) {
        return Map.of(L, Rewrites.filled(DataType.FLOAT, shape(t, c), 1f));
    }

    // ---------------------------------------------------------------- inject

    @Override
    public void inject(Model model, TargetLayer t, AdapterConfig c, Map<String, Tensor> tensors, Slots slots) {
        Graph g = model.graph();
        Node n = Rewrites.node(g, t);
        String p = t.path();
        Tensor l = tensors.get(L).to(t.dtype());
        String vl = slots.tensor(L, l, Rewrites.filled(t.dtype(), l.shape(), 1f), -1, true);
        boolean linear = t.kind() == Kind.LINEAR;
        if (ff(t, c)) {
            // base(x · l): [1, in] broadcasts over x [.., in]; a Gemm with transA reads x as [in, M]
            String lx = linear && n.attrInt("transA", 0) != 0 ? Rewrites.transpose(g, p + "/ia3_l_T", vl) : vl;
            n.setInput(0, g.build("Mul").name(p + "/ia3_scale_input").in(n.input(0), lx).out());
        } else {
            // base(x) · l: [out, 1] is read as [1, out] for [.., out] outputs; Conv's [1, out, 1…] broadcasts as is
            String ly = linear ? Rewrites.transpose(g, p + "/ia3_l_T", vl) : vl;
            String y = Rewrites.moduleOutput(g, t);
            String base = g.detachProducer(y);
            g.build("Mul").name(p + "/ia3_scale_output").in(base, ly).outputs(y).add();
        }
    }

    @Override
    public void injectStacked(Model model, TargetLayer t, List<Member> members, Stack stack) {
        Graph g = model.graph();
        Node n = Rewrites.node(g, t);
        String p = t.path();
        int k = members.size();
        // the layout follows the adapters that adapt this module; the others leave it at ones
        AdapterConfig ref = members.stream().filter(m -> m.tensors() != null).findFirst().orElse(members.get(0)).config();
        long w = width(t, ref);
        for (Member m : members) {
            if (m.tensors() != null && ff(t, m.config()) != ff(t, ref)) {
                throw Peft4jException.unsupported("module " + p + " is a feedforward module in some stacked IA3 adapters "
                        + "and not in others; they cannot share one stacked layer");
            }
        }
        // table row 0 = ones (the base layer); row j = adapter j's vector (ones where it leaves the module alone)
        float[] table = new float[Math.toIntExact((k + 1) * w)];
        Arrays.fill(table, 1f);
        for (int j = 0; j < k; j++) {
            if (members.get(j).tensors() != null) {
                float[] l = members.get(j).tensors().get(L).toFloatArray();
                System.arraycopy(l, 0, table, Math.toIntExact((j + 1) * w), l.length);
            }
        }
        DataType dt = t.dtype();
        String hint = p + "/ia3_stack";
        boolean gemm = n.is("Gemm");
        if (t.kind() == Kind.CONV) {
            long[] s = shape(t, ref);
            s[0] = k + 1;   // [K+1, C, 1…] → rows [batch, C, 1…]
            String rows = stack.rows(hint, Rewrites.tensor(dt, s, table));
            if (ff(t, ref)) {
                n.setInput(0, g.build("Mul").name(p + "/ia3_scale_input").in(n.input(0), rows).out());
            } else {
                String y = Rewrites.moduleOutput(g, t);
                String base = g.detachProducer(y);
                g.build("Mul").name(p + "/ia3_scale_output").in(base, rows).outputs(y).add();
            }
        } else if (gemm) {
            // 2-D [M, features]: rows [batch, features] multiply directly (transposed for a transA input)
            String rows = stack.rows(hint, Rewrites.tensor(dt, new long[] {k + 1, w}, table));
            if (ff(t, ref)) {
                String r = n.attrInt("transA", 0) != 0 ? Rewrites.transpose(g, hint + "_T", rows) : rows;
                n.setInput(0, g.build("Mul").name(p + "/ia3_scale_input").in(n.input(0), r).out());
            } else {
                String y = Rewrites.moduleOutput(g, t);
                String base = g.detachProducer(y);
                g.build("Mul").name(p + "/ia3_scale_output").in(base, rows).outputs(y).add();
            }
        } else {
            // MatMul on inputs of any rank: viewed as [rows, positions, features] × [batch, 1, features]
            String rows = stack.rows(hint, Rewrites.tensor(dt, new long[] {k + 1, 1, w}, table));
            if (ff(t, ref)) {
                String x = n.input(0);
                String scaled = g.build("Mul").name(p + "/ia3_scale_input").in(Rewrites.asRows(g, hint + "/rows", x, w), rows).out();
                n.setInput(0, Rewrites.reshapeLike(g, hint + "/unrows", scaled, x));
            } else {
                String y = Rewrites.moduleOutput(g, t);
                String base = g.detachProducer(y);
                String scaled = g.build("Mul").name(p + "/ia3_scale_output").in(Rewrites.asRows(g, hint + "/rows", base, w), rows).out();
                g.build("Reshape").name(hint + "/unrows").in(scaled, g.build("Shape").name(hint + "/unrows_shape").in(base).out())
                        .outputs(y).add();
            }
        }
    }

    // ---------------------------------------------------------------- merge

    @Override
    public Map<String, Tensor> merge(Model model, TargetLayer t, AdapterConfig c, Map<String, Tensor> tensors) {
        Graph g = model.graph();
        Tensor w = g.initializer(t.weight());
        float[] l = tensors.get(L).toFloatArray();
        float[] wv = w.toFloatArray();
        long[] s = w.shape();
        boolean ff = ff(t, c);
        long perOut = Rewrites.tail(s, 1);   // elements per output channel of an [out, …] weight
        long inPerGroup = t.kind() == Kind.CONV ? s[1] : 0;
        long outPerGroup = t.kind() == Kind.CONV ? s[0] / t.groups() : 0;
        for (int e = 0; e < wv.length; e++) {
            long o;
            long i;
            switch (t.layout()) {
                case IN_OUT -> {
                    i = e / s[1];
                    o = e % s[1];
                }
                case OUT_IN -> {
                    o = e / s[1];
                    i = e % s[1];
                }
                case CONV_OUT_IN_K -> {
                    o = e / perOut;
                    // the input channel this weight reads: its group's first channel + its index within the group
                    i = (o / outPerGroup) * inPerGroup + (e % perOut) / Rewrites.tail(s, 2);
                }
                default -> throw new IllegalStateException(t.layout().toString());
            }
            wv[e] *= l[Math.toIntExact(ff ? i : o)];
        }
        Map<String, Tensor> out = new LinkedHashMap<>();
        out.put(t.weight(), Rewrites.tensor(w.dtype(), s, wv));
        Optional<String> bias = Rewrites.bias(g, t);
        if (!ff && bias.isPresent()) {
            // the output scaling covers the bias: (x·W + b) · l = x·(W·l) + b·l
            Tensor b = g.initializer(bias.get());
            float[] bv = b.toFloatArray();
            long[] bs = b.shape();
            if (bv.length == 1 && l.length > 1) {
                bv = new float[l.length];
                Arrays.fill(bv, b.toFloatArray()[0]);
                bs = new long[] {l.length};
            } else if (bv.length != l.length) {
                throw Peft4jException.unsupported("module " + t.path() + ": cannot fold IA3 into bias " + bias.get() + " of shape "
                        + Arrays.toString(bs));
            }
            for (int o = 0; o < bv.length; o++) {
                bv[o] *= l[o];
            }
            out.put(bias.get(), Rewrites.tensor(b.dtype(), bs, bv));
        }
        return out;
    }
}
