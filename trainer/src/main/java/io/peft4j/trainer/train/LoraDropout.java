package io.peft4j.trainer.train;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * LoRA dropout for training, as PEFT applies it: {@code B(A(dropout(x)))} — the input of each
 * {@code lora_A} is multiplied by a mask that keeps an element with probability {@code 1 − p} and
 * scales it by {@code 1 / (1 − p)}. Only the training graph gets it; evaluation and export use the
 * adapter without dropout, as PEFT does in eval mode.
 *
 * <p>The mask is computed in the graph from the position of each element and one int64 input,
 * {@value #SEED_INPUT}, that the loop feeds with a value derived from (seed, step): a run is as
 * repeatable as one without dropout, and a resumed run draws the same masks as the uninterrupted
 * one, which ONNX's random ops (seeded once per session) could not give. The bits come from a
 * chain of quadratic maps modulo the prime 2³¹ − 1 in int64 arithmetic (no overflow: every
 * operand stays below 2³¹) — not cryptographic, but without the lattice patterns of an affine
 * generator on consecutive positions.
 */
final class LoraDropout {

    /** The int64 [1] graph input that selects this step's masks. */
    static final String SEED_INPUT = "lora_dropout_seed";

    private static final long P = 2147483647L;

    private LoraDropout() {
    }

    /**
     * Puts dropout with probability {@code p} before every {@code lora_A} of {@code model} (a
     * model with LoRA injected as initializers). Returns how many modules got it.
     */
    static int apply(Model model, double p) {
        if (!(p > 0 && p < 1)) {
            throw new IllegalArgumentException("dropout must be in (0, 1), got " + p);
        }
        Graph g = model.graph();
        List<Node> targets = new ArrayList<>();
        for (Node n : g.nodes()) {
            if (n.name().endsWith("/lora_A") && (n.is("Conv") || n.is("MatMul") || n.is("Gemm"))) {
                targets.add(n);
            }
        }
        if (targets.isEmpty()) {
            return 0;
        }
        g.addInput(ValueInfos.tensor(SEED_INPUT, DataType.INT64, 1L));
        String prime = g.addInitializer("lora_dropout/p", Tensor.ofLongs(new long[] {1}, P));
        String primeF = g.addInitializer("lora_dropout/p_f", Tensor.ofFloats(new long[] {1}, (float) P));
        String keepBelow = g.addInitializer("lora_dropout/keep", Tensor.ofFloats(new long[] {1}, (float) (1 - p)));
        String scale = g.addInitializer("lora_dropout/scale", Tensor.ofFloats(new long[] {1}, (float) (1 / (1 - p))));
        String zero = g.addInitializer("lora_dropout/zero", Tensor.scalar(0L));
        String one = g.addInitializer("lora_dropout/one", Tensor.scalar(1L));
        String c1 = g.addInitializer("lora_dropout/c1", Tensor.ofLongs(new long[] {1}, 1_103_515_245L));
        String c2 = g.addInitializer("lora_dropout/c2", Tensor.ofLongs(new long[] {1}, 12_345L));
        String c3 = g.addInitializer("lora_dropout/c3", Tensor.ofLongs(new long[] {1}, 69_069L));
        int k = 0;
        for (Node n : targets) {
            String x = n.input(0);
            String pre = n.name().substring(0, n.name().length() - "/lora_A".length()) + "/lora_dropout";
            String salt = g.addInitializer(pre + "_salt", Tensor.ofLongs(new long[] {1}, 7_919L * (k + 1) % P));
            String shape = g.build("Shape").name(pre + "/shape").in(x).out();
            String size = g.build("Size").name(pre + "/size").in(x).out();
            String pos = g.build("Range").name(pre + "/positions").in(zero, size, one).out();
            // h0 = (pos + seed + salt) mod P; then three quadratic steps mod P
            String h = mod(g, pre + "/h0", g.build("Add").name(pre + "/offset").in(
                    g.build("Add").name(pre + "/seeded").in(pos, SEED_INPUT).out(), salt).out(), prime);
            h = mod(g, pre + "/h1", g.build("Mul").name(pre + "/q1").in(h,
                    mod(g, pre + "/h1a", g.build("Add").name(pre + "/a1").in(h, c1).out(), prime)).out(), prime);
            h = mod(g, pre + "/h2", g.build("Add").name(pre + "/a2").in(
                    g.build("Mul").name(pre + "/q2").in(h, h).out(), c2).out(), prime);
            h = mod(g, pre + "/h3", g.build("Mul").name(pre + "/q3").in(h,
                    mod(g, pre + "/h3a", g.build("Add").name(pre + "/a3").in(h, c3).out(), prime)).out(), prime);
            String u = g.build("Div").name(pre + "/uniform").in(
                    g.build("Cast").name(pre + "/to_float").in(h).attr("to", (long) DataType.FLOAT.onnxCode()).out(), primeF).out();
            String keep = g.build("Less").name(pre + "/keep").in(u, keepBelow).out();
            String mask = g.build("Mul").name(pre + "/mask").in(
                    g.build("Cast").name(pre + "/keep_f").in(keep).attr("to", (long) DataType.FLOAT.onnxCode()).out(), scale).out();
            String shaped = g.build("Reshape").name(pre + "/mask_shaped").in(mask, shape).out();
            String dropped = g.build("Mul").name(pre + "/apply").in(x, shaped).out();
            n.setInput(0, dropped);
            k++;
        }
        g.sortTopologically();
        return k;
    }

    private static String mod(Graph g, String name, String x, String prime) {
        return g.build("Mod").name(name).in(x, prime).out();
    }

    /** This step's seed input value, from the run's seed and the step (0-based); below 2³⁰. */
    static long stepSeed(long seed, long step) {
        return Trainer.mix(seed, step, 0x5eed) & 0x3fffffffL;
    }
}
