package io.peft4j.trainer.autodiff;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.OnnxChecker;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.Random;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FoldChannelScalesTest {

    private static final Function<String, ValueType> INPUT_4x6x5x5 = v -> ValueType.of(DataType.FLOAT, 2, 4, 5, 5);

    /** x [2,4,5,5] → Mul(x, scale) → op(·, w) → y; the product also read by {@code alsoRead} when given. */
    private static Model model(Tensor scale, boolean scaleIsInput, String op, Tensor w, long group, String alsoRead) {
        Model m = new Model("fold", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, 2, 4, 5, 5));
        if (scaleIsInput) {
            g.addInput(ValueInfos.tensor("s", DataType.FLOAT, scale.shape()[0], 1, 1));
        } else {
            g.setInitializer("s", scale);
        }
        g.setInitializer("w", w);
        String p = g.build("Mul").in("x", "s").out();
        g.build(op).in(p, "w").attr("pads", 1, 1, 1, 1).attr("group", group).outputs("y").add();
        g.addOutput(ValueInfos.tensor("y", DataType.FLOAT, "n", "c", "h", "w"));
        if (alsoRead != null) {
            g.build(alsoRead).in(p).outputs("z").add();
            g.addOutput(ValueInfos.tensor("z", DataType.FLOAT, "n", "c", "h", "w"));
        }
        return m;
    }

    private static void assertFoldedExactly(Model m) {
        Map<String, Tensor> in = Map.of("x", TinyModels.randn(new Random(3), 2, 4, 5, 5));
        Map<String, Tensor> before = Ort.run(m, in);
        assertTrue(FoldChannelScales.run(m.graph(), INPUT_4x6x5x5));
        assertEquals(0, m.graph().nodes().stream().filter(n -> n.is("Mul")).count());
        assertFalse(m.graph().hasInitializer("s"), "the scale, read by nothing now, is dropped");
        OnnxChecker.check(m);
        Map<String, Tensor> after = Ort.run(m, in);
        double diff = Ort.maxRelDiff(before.get("y"), after.get("y"));
        assertTrue(diff < 1e-5, "folded output differs by " + diff);
    }

    private static Tensor perChannel() {
        return Tensor.ofFloats(new long[] {4, 1, 1}, 0.5f, -2f, 3f, 0.25f);
    }

    @Test
    void aChannelScaleFoldsIntoTheConvWeight() {
        assertFoldedExactly(model(perChannel(), false, "Conv", TinyModels.randn(new Random(1), 3, 4, 3, 3), 1, null));
    }

    @Test
    void groupedConvolutionsScaleTheInputChannelOfEachGroup() {
        assertFoldedExactly(model(perChannel(), false, "Conv", TinyModels.randn(new Random(1), 6, 2, 3, 3), 2, null));
    }

    @Test
    void convTransposeScalesItsFirstWeightAxis() {
        assertFoldedExactly(model(perChannel(), false, "ConvTranspose", TinyModels.randn(new Random(1), 4, 3, 3, 3), 1, null));
    }

    @Test
    void aSingleScaleFoldsToo() {
        assertFoldedExactly(model(Tensor.ofFloats(new long[] {1, 1, 1, 1}, 1.7f), false, "Conv",
                TinyModels.randn(new Random(1), 3, 4, 3, 3), 1, null));
    }

    @Test
    void aProductReadBySeveralConvolutionsFoldsIntoEachOfThem() {
        Model m = model(perChannel(), false, "Conv", TinyModels.randn(new Random(1), 3, 4, 3, 3), 1, null);
        Graph g = m.graph();
        g.setInitializer("w2", TinyModels.randn(new Random(2), 2, 4, 1, 2));
        String p = g.nodes().get(0).output(0);
        g.build("Conv").in(p, "w2").attr("pads", 0, 1, 0, 0).outputs("z").add();
        g.addOutput(ValueInfos.tensor("z", DataType.FLOAT, "n", "c", "h", "w"));
        Map<String, Tensor> in = Map.of("x", TinyModels.randn(new Random(3), 2, 4, 5, 5));
        Map<String, Tensor> before = Ort.run(m, in);
        assertTrue(FoldChannelScales.run(g, INPUT_4x6x5x5));
        assertEquals(0, g.nodes().stream().filter(n -> n.is("Mul")).count());
        assertFalse(g.hasInitializer("w") || g.hasInitializer("w2") || g.hasInitializer("s"), "replaced weights are dropped");
        OnnxChecker.check(m);
        Map<String, Tensor> after = Ort.run(m, in);
        for (String out : new String[] {"y", "z"}) {
            double diff = Ort.maxRelDiff(before.get(out), after.get(out));
            assertTrue(diff < 1e-5, out + " differs by " + diff);
        }
    }

    @Test
    void leftAloneWhenTheProductHasAnotherReaderOrTheScaleIsNotAConstantPerChannel() {
        Tensor w = TinyModels.randn(new Random(1), 3, 4, 3, 3);
        assertFalse(FoldChannelScales.run(model(perChannel(), false, "Conv", w, 1, "Relu").graph(), INPUT_4x6x5x5));
        assertFalse(FoldChannelScales.run(model(perChannel(), true, "Conv", w, 1, null).graph(), INPUT_4x6x5x5));
        Tensor perRow = Tensor.ofFloats(new long[] {5, 1}, 1f, 2f, 3f, 4f, 5f);   // varies along H, not channels
        assertFalse(FoldChannelScales.run(model(perRow, false, "Conv", w, 1, null).graph(), INPUT_4x6x5x5));
        // the scaled operand might broadcast to more channels: nothing is known of it
        assertFalse(FoldChannelScales.run(model(perChannel(), false, "Conv", w, 1, null).graph(), v -> ValueType.UNKNOWN));
    }
}
