package io.peft4j.trainer.autodiff;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.OnnxChecker;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GradientBuilderTest {

    private static Map<String, Tensor> cnnFeeds(Model m, List<String> trainable, long batch, long seed) {
        Random r = new Random(seed);
        Map<String, Tensor> feeds = new LinkedHashMap<>();
        feeds.put("x", TinyModels.input(seed, batch));
        long[] labels = new long[(int) batch];
        for (int i = 0; i < labels.length; i++) {
            labels[i] = r.nextInt(3);
        }
        feeds.put("labels", Tensor.ofLongs(new long[] {batch}, labels));
        for (String t : trainable) {
            feeds.put(t, m.graph().initializer(t));
        }
        return feeds;
    }

    @Test
    void oneGraphServesEveryBatchSizeAndAgreesWithFiniteDifferences() {
        Model m = TinyModels.cnn(3);
        List<String> trainable = List.of("conv1.weight", "conv1.bias", "fc1_w", "fc2.weight");
        GradientGraph gg = GradientBuilder.build(m, trainable, Losses.softmaxCrossEntropy("logits"));
        OnnxChecker.check(gg.model());
        assertEquals(List.of("logits"), gg.outputs());
        assertEquals("conv1.weight_grad", gg.gradientOf("conv1.weight"));
        try (Session s = new Session(gg.model())) {
            for (long batch : new long[] {2, 5}) {
                Map<String, Tensor> feeds = cnnFeeds(m, trainable, batch, 11 + batch);
                Map<String, Tensor> result = s.run(feeds);
                assertArrayEquals(new long[] {batch, 3}, result.get("logits").shape());
                for (String t : trainable) {
                    assertArrayEquals(m.graph().initializer(t).shape(), result.get(gg.gradientOf(t)).shape());
                    SampledGradients.check("tiny cnn, batch " + batch, s, gg, feeds, result, t, 4, 4, 1e-2, 2e-2, 11 + batch);
                }
            }
        }
    }

    @Test
    void frozenWeightsGetNoGradientAndOnlyPathsToTheLossAreDifferentiated() {
        Model m = TinyModels.cnn(3);
        GradientGraph gg = GradientBuilder.build(m, List.of("fc2.weight"), Losses.softmaxCrossEntropy("logits"));
        OnnxChecker.check(gg.model());
        // only the last Gemm lies between fc2.weight and the loss: nothing flows back into the
        // convolution, the pool or fc1
        long convs = gg.model().graph().nodes().stream().filter(n -> n.is("Conv") || n.is("ConvTranspose")).count();
        assertEquals(1, convs);
        long gemms = gg.model().graph().nodes().stream().filter(n -> n.is("Gemm")).count();
        assertEquals(2, gemms, "the forward Gemm and the one for fc2.weight's gradient");
        assertEquals(1, gg.gradients().size());
        assertTrue(gg.model().graph().isGraphInput("fc2.weight"));
        assertFalse(gg.model().graph().hasInitializer("fc2.weight"));
        assertTrue(gg.model().graph().hasInitializer("conv1.weight"), "frozen weights stay initializers");
    }

    @Test
    void aFrozenStridedConvolutionsInputGradientIsPhasedConvsOnSmallInputs() {
        Model even = stridedConv(4);
        GradientGraph gg = GradientBuilder.build(even, List.of("shift"), Losses.meanSquaredError("y"));
        OnnxChecker.check(gg.model());
        assertEquals(0, count(gg.model(), "ConvTranspose"));
        assertEquals(1, count(gg.model(), "DepthToSpace"));
        assertEquals(5, count(gg.model(), "Conv"), "the forward Conv and one per output phase (stride 2 × 2)");
        // 5 is not a multiple of the stride, 8 gives more than 2×2 positions per phase: the transposed convolution stays
        for (int size : new int[] {5, 8}) {
            GradientGraph other = GradientBuilder.build(stridedConv(size), List.of("shift"), Losses.meanSquaredError("y"));
            assertEquals(1, count(other.model(), "ConvTranspose"), "size " + size);
            assertEquals(0, count(other.model(), "DepthToSpace"), "size " + size);
        }
    }

    /** x + shift (trainable) → Conv 3×3 stride 2 pad 1 with a frozen weight → y. */
    private static Model stridedConv(int size) {
        Model m = new Model("strided", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, 2, 2, size, size));
        g.setInitializer("shift", Tensor.ofFloats(new long[] {1, 2, 1, 1}, new float[2]));
        g.setInitializer("w", TinyModels.randn(new Random(3), 3, 2, 3, 3));
        String h = g.build("Add").in("x", "shift").out();
        g.build("Conv").in(h, "w").attr("strides", 2L, 2L).attr("pads", 1L, 1L, 1L, 1L).outputs("y").add();
        long out = (size + 1) / 2;
        g.addOutput(ValueInfos.tensor("y", DataType.FLOAT, 2, 3, out, out));
        return m;
    }

    private static long count(Model m, String op) {
        return m.graph().nodes().stream().filter(n -> n.is(op)).count();
    }

    @Test
    void theModelGivenIsNotChanged() {
        Model m = TinyModels.cnn(3);
        byte[] before = OnnxIO.toBytes(m);
        GradientBuilder.build(m, List.of("fc1_w"), Losses.softmaxCrossEntropy("logits"));
        assertArrayEquals(before, OnnxIO.toBytes(m));
    }

    /** x·w → Sin → y: Sin has no rule. */
    private static Model withSin() {
        Model m = new Model("sin", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, "batch", 4));
        g.setInitializer("w", Tensor.ofFloats(new long[] {4, 2}, new float[8]));
        String h = g.build("MatMul").name("/proj/MatMul").in("x", "w").out();
        g.build("Sin").name("/act/Sin").in(h).outputs("y").add();
        g.addOutput(ValueInfos.tensor("y", DataType.FLOAT, "batch", 2));
        return m;
    }

    @Test
    void aGroupedConvolutionsWeightGradientNeedsItsSpatialSizes() {
        Model m = new Model("grouped", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, "batch", 4, "h", "w"));
        g.setInitializer("w", TinyModels.randn(new Random(1), 4, 1, 3, 3));
        g.build("Conv").name("/dw/Conv").in("x", "w").attr("group", 4L).attr("pads", 1, 1, 1, 1).outputs("y").add();
        g.addOutput(ValueInfos.tensor("y", DataType.FLOAT, "batch", 4, "h", "w"));
        Peft4jException e = assertThrows(Peft4jException.class,
                () -> GradientBuilder.build(m, List.of("w"), Losses.meanSquaredError("y")));
        assertEquals(Peft4jException.ErrorCode.UNSUPPORTED, e.code());
        assertTrue(e.getMessage().contains("'/dw/Conv'") && e.getMessage().contains("grouped convolution")
                && e.getMessage().contains("spatial sizes"), e.getMessage());
    }

    @Test
    void anOpWithoutARuleOnAGradientPathIsAnErrorNamingNodeOpAndTensor() {
        Peft4jException e = assertThrows(Peft4jException.class,
                () -> GradientBuilder.build(withSin(), List.of("w"), Losses.meanSquaredError("y")));
        assertEquals(Peft4jException.ErrorCode.UNSUPPORTED, e.code());
        assertTrue(e.getMessage().contains("'/act/Sin'"), e.getMessage());
        assertTrue(e.getMessage().contains("Sin"), e.getMessage());
        assertTrue(e.getMessage().contains("'w'"), e.getMessage());
    }

    @Test
    void anOpOffTheGradientPathNeedsNoRule() {
        Model m = withSin();
        m.graph().setInitializer("b", Tensor.ofFloats(new long[] {2}, 1f, 2f));
        // y2 = Sin(...) is computed, but the trainable tensor b sits after it
        Graph g = m.graph();
        g.build("Add").in("y", "b").outputs("z").add();
        g.addOutput(ValueInfos.tensor("z", DataType.FLOAT, "batch", 2));
        GradientGraph gg = GradientBuilder.build(m, List.of("b"), Losses.meanSquaredError("z"));
        OnnxChecker.check(gg.model());
    }

    @Test
    void explicitEntriesSayWhyAnOpIsNotDifferentiated() {
        GradientRules rules = GradientRules.standard();
        assertEquals(GradientRules.Kind.NO_GRADIENT, rules.lookup("", "Shape", 17).orElseThrow().kind());
        assertEquals(GradientRules.Kind.NOT_DIFFERENTIABLE, rules.lookup("", "Loop", 17).orElseThrow().kind());
        assertEquals(GradientRules.Kind.RULE, rules.lookup("", "Softmax", 11).orElseThrow().kind());
        assertTrue(rules.lookup("", "Gelu", 17).isEmpty(), "Gelu is an opset 20 op");
        assertThrows(Peft4jException.class, () -> rules.rule("Add", 7, c -> { }), "duplicates are refused");
    }

    @Test
    void aTrainableTensorThatOnlyReachesTheLossThroughOpsWithoutGradientIsRefused() {
        Model m = new Model("round", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, "batch", 2));
        g.setInitializer("w", Tensor.ofFloats(new long[] {2}, 1f, 2f));
        String r = g.op("Round", g.op("Mul", "x", "w"));
        g.build("Identity").in(r).outputs("y").add();
        g.addOutput(ValueInfos.tensor("y", DataType.FLOAT, "batch", 2));
        Peft4jException e = assertThrows(Peft4jException.class,
                () -> GradientBuilder.build(m, List.of("w"), Losses.meanSquaredError("y")));
        assertTrue(e.getMessage().contains("'w'"), e.getMessage());
    }

    @Test
    void unknownTensorsAndOldOpsetsAreRefused() {
        Peft4jException e = assertThrows(Peft4jException.class,
                () -> GradientBuilder.build(TinyModels.cnn(1), List.of("nope"), Losses.softmaxCrossEntropy("logits")));
        assertEquals(Peft4jException.ErrorCode.NOT_FOUND, e.code());
        Model old = withSin();
        old.setOpset("", 9);
        assertEquals(Peft4jException.ErrorCode.UNSUPPORTED, assertThrows(Peft4jException.class,
                () -> GradientBuilder.build(old, List.of("w"), Losses.meanSquaredError("y"))).code());
    }

    @Test
    void gradientsThatMeetAreSummed() {
        // y = w·x + w·x (two uses of w) → dL/dw is twice that of one use
        Model m = new Model("twice", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, "batch", 3));
        g.setInitializer("w", Tensor.ofFloats(new long[] {3}, 0.5f, -1f, 2f));
        g.build("Add").in(g.op("Mul", "x", "w"), g.op("Mul", "w", "x")).outputs("y").add();
        g.addOutput(ValueInfos.tensor("y", DataType.FLOAT, "batch", 3));
        GradientGraph gg = GradientBuilder.build(m, List.of("w"), Losses.meanSquaredError("y"));
        OnnxChecker.check(gg.model());
        assertTrue(gg.model().graph().nodes().stream().anyMatch(n -> n.is("Sum")));
        Tensor x = Tensor.ofFloats(new long[] {2, 3}, 1, 2, 3, 4, 5, 6);
        Tensor t = Tensor.zeros(DataType.FLOAT, 2, 3);
        Map<String, Tensor> out = io.peft4j.core.testkit.Ort.run(gg.model(), Map.of("x", x, "targets", t,
                "w", m.graph().initializer("w")));
        float[] w = {0.5f, -1f, 2f};
        for (int j = 0; j < 3; j++) {
            double expected = 0;
            for (int n = 0; n < 2; n++) {
                double xv = x.getDouble(n * 3 + j);
                expected += 2 * (2 * w[j] * xv) / 6 * 2 * xv;
            }
            assertEquals(expected, out.get(gg.gradientOf("w")).getDouble(j), 1e-4, "coordinate " + j);
        }
    }
}
