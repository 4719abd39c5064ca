package io.peft4j.core.peft;

import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.OnnxChecker;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static io.peft4j.core.peft.PeftFixtures.copy;
import static io.peft4j.core.peft.PeftFixtures.relDiff;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * LoRA on a Conv that a BatchNorm follows: the delta goes after the BatchNorm, scaled per channel,
 * only when that is exact (an inference-mode BatchNorm with constant statistics that alone reads the
 * Conv); either way the model computes the merged model's output.
 */
class LoraAfterBatchNormTest {

    enum Variant {
        /** Conv → BatchNorm: the delta goes after the BatchNorm. */
        PLAIN(true),
        /** the BatchNorm's mean is an overridable graph input: not a constant, the delta stays at the Conv. */
        STATS_AS_INPUT(false),
        /**
         * training_mode = 1 normalizes with the batch's statistics (and writes running mean and
         * variance as two more outputs): the delta stays at the Conv.
         */
        TRAINING_MODE(false),
        /** the Conv's output is a graph output too: the delta stays at the Conv. */
        CONV_OUTPUT_READ_ELSEWHERE(false);

        final boolean after;

        Variant(boolean after) {
            this.after = after;
        }
    }

    /** TinyModels.cnn with a BatchNorm (non-trivial γ, β, μ, σ², ε) between /conv1/Conv and its Relu. */
    static Model cnnWithBatchNorm(Variant v) {
        Model m = TinyModels.cnn(1);
        Graph g = m.graph();
        Random r = new Random(3);
        for (String p : List.of("scale", "bias", "mean")) {
            g.setInitializer("bn1." + p, TinyModels.randn(r, 4));
        }
        g.setInitializer("bn1.var", Tensor.ofFloats(new long[] {4}, 0.5f, 2, 3, 4));
        String conv = g.node("/conv1/Conv").output(0);
        String base = g.detachProducer(conv);
        Graph.NodeBuilder bn = g.build("BatchNormalization").name("/bn1/BatchNormalization")
                .in(base, "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var").attr("epsilon", 1e-3f);
        if (v == Variant.TRAINING_MODE) {
            bn.attr("training_mode", 1L).outputs(conv, "bn1.running_mean", "bn1.running_var");
        } else {
            bn.outputs(conv);
        }
        bn.add();
        if (v == Variant.STATS_AS_INPUT) {
            g.addInput(ValueInfos.tensor("bn1.mean", DataType.FLOAT, 4));
        }
        if (v == Variant.CONV_OUTPUT_READ_ELSEWHERE) {
            g.addOutput(ValueInfos.tensor(base, DataType.FLOAT, "batch", 4, 8, 8));
        }
        g.sortTopologically();
        OnnxChecker.check(m);
        return m;
    }

    @ParameterizedTest
    @EnumSource(Variant.class)
    void theDeltaGoesAfterAnInferenceBatchNormOnly(Variant v) {
        Model base = cnnWithBatchNorm(v);
        AdapterConfig config = AdapterConfig.lora(2, 4, List.of("conv1", "fc1"));
        AdapterBinding binding = AdapterBinding.bind(base, PeftFixtures.randomAdapter(base, config, 1, 0.3));
        AdapterBinding second = AdapterBinding.bind(base, PeftFixtures.randomAdapter(base, AdapterConfig.lora(3, 9,
                List.of("conv1")), 2, 0.3));
        String out = "logits";
        Map<String, Tensor> in = Map.of("x", TinyModels.input(5, 3));

        Model merged = copy(base);
        Peft.merge(merged, binding);
        Tensor yMerged = Ort.run(merged, in).get(out);
        Tensor yBase = Ort.run(base, in).get(out);
        assertTrue(relDiff(yMerged, yBase) > 1e-3, "the adapter changes the output");
        Model merged2 = copy(base);
        Peft.merge(merged2, second);
        Tensor ySecond = Ort.run(merged2, in).get(out);

        for (InjectMode mode : InjectMode.values()) {
            Model m = copy(base);
            Peft.Injection inj = Peft.inject(m, binding, mode);
            OnnxChecker.check(m);
            assertEquals(v.after ? 1 : 0, PeftMethodContractTest.loraAfterBatchNorm(base, m, binding), v + " " + mode);
            assertSameOutputNames(base, m);
            Map<String, Tensor> fed = new LinkedHashMap<>(in);
            if (mode == InjectMode.INPUTS) {
                fed.putAll(inj.feeds());
                String s = "base_model.model.conv1.lora_scaling";
                assertArrayEquals(new long[] {1}, inj.feeds().get(s).shape(), "lora_scaling has shape [1]");
                assertArrayEquals(new long[] {1}, inj.offFeeds().get(s).shape());
                Map<String, Tensor> off = new LinkedHashMap<>(in);
                off.putAll(inj.offFeeds());
                double offDiff = relDiff(Ort.run(m, off).get(out), yBase);
                assertTrue(offDiff <= PeftMethodContractTest.OFF_TOL, v + ": off vs base " + offDiff);
            }
            if (mode == InjectMode.INPUTS_WITH_DEFAULTS) {
                double offDiff = relDiff(Ort.run(m, in).get(out), yBase);
                assertTrue(offDiff <= PeftMethodContractTest.OFF_TOL, v + ": defaults vs base " + offDiff);
                continue;
            }
            double d = relDiff(Ort.run(m, fed).get(out), yMerged);
            assertTrue(d <= PeftMethodContractTest.MERGE_TOL, v + " " + mode + ": injected vs merged " + d);
        }

        Model stacked = copy(base);
        Peft.injectStacked(stacked, List.of(binding, second), 0);
        OnnxChecker.check(stacked);
        assertEquals(v.after ? 1 : 0, PeftMethodContractTest.loraAfterBatchNorm(base, stacked, binding), v + " stacked");
        assertSameOutputNames(base, stacked);
        if (v == Variant.TRAINING_MODE) {
            return;   // batch statistics mix the rows: no row of a mixed batch equals a single adapter's output
        }
        Map<String, Tensor> in3 = new LinkedHashMap<>(in);
        in3.put(Stack.ADAPTER_INDEX, Tensor.ofLongs(new long[] {3}, 0, 1, 2));
        Tensor y3 = Ort.run(stacked, in3).get(out);
        assertTrue(PeftMethodContractTest.rowDiff(y3, yBase, 0) <= PeftMethodContractTest.OFF_TOL, v + ": stacked row 0");
        assertTrue(PeftMethodContractTest.rowDiff(y3, yMerged, 1) <= PeftMethodContractTest.MERGE_TOL, v + ": stacked row 1");
        assertTrue(PeftMethodContractTest.rowDiff(y3, ySecond, 2) <= PeftMethodContractTest.MERGE_TOL, v + ": stacked row 2");
    }

    /** Every value a base node wrote is still written (by some node) in the rewritten graph. */
    private static void assertSameOutputNames(Model base, Model rewritten) {
        for (Node n : base.graph().nodes()) {
            for (String o : n.outputs()) {
                assertTrue(rewritten.graph().producer(o).isPresent(), o + " is still produced");
            }
        }
    }
}
