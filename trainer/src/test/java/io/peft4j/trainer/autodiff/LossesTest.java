package io.peft4j.trainer.autodiff;

import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.OnnxChecker;
import io.peft4j.core.testkit.Ort;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The losses against values computed by hand, with their gradients with respect to the model output. */
class LossesTest {

    /** logits = Identity(x): the gradient with respect to x is the loss's gradient for its input. */
    private static Model identity(long opset, long... shape) {
        Model m = new Model("identity", opset);
        Object[] dims = new Object[shape.length];
        dims[0] = "batch";
        for (int i = 1; i < shape.length; i++) {
            dims[i] = shape[i];
        }
        m.graph().addInput(ValueInfos.tensor("x", DataType.FLOAT, dims));
        m.graph().build("Identity").in("x").outputs("logits").add();
        m.graph().addOutput(ValueInfos.tensor("logits", DataType.FLOAT, dims));
        return m;
    }

    private static Map<String, Tensor> run(GradientGraph gg, Tensor x, Tensor labels) {
        OnnxChecker.check(gg.model());
        return Ort.run(gg.model(), Map.of("x", x, gg.labelInputs().get(0), labels));
    }

    @Test
    void softmaxCrossEntropyIsTheBatchMeanOfMinusLogSoftmaxAtTheLabel() {
        for (long opset : new long[] {11, 17}) {
            float[] x = {1f, 2f, 0.5f, -1f, 0f, 3f};
            long[] labels = {1, 0};
            GradientGraph gg = GradientBuilder.build(identity(opset, 2, 3), List.of("x"), Losses.softmaxCrossEntropy("logits"));
            assertEquals(List.of("labels"), gg.labelInputs());
            Map<String, Tensor> out = run(gg, Tensor.ofFloats(new long[] {2, 3}, x), Tensor.ofLongs(new long[] {2}, labels));
            double expected = 0;
            double[] grad = new double[6];
            for (int n = 0; n < 2; n++) {
                double z = 0;
                for (int k = 0; k < 3; k++) {
                    z += Math.exp(x[n * 3 + k]);
                }
                expected += -(x[n * 3 + (int) labels[n]] - Math.log(z)) / 2;
                for (int k = 0; k < 3; k++) {
                    grad[n * 3 + k] = (Math.exp(x[n * 3 + k]) / z - (k == labels[n] ? 1 : 0)) / 2;
                }
            }
            assertEquals(expected, out.get(gg.loss()).getDouble(0), 1e-6, "loss at opset " + opset);
            Tensor g = out.get(gg.gradientOf("x"));
            for (int i = 0; i < 6; i++) {
                assertEquals(grad[i], g.getDouble(i), 1e-6, "gradient " + i + " at opset " + opset);
            }
        }
    }

    @Test
    void binaryCrossEntropyWithLogitsIsStableAndAveraged() {
        float[] x = {0.3f, -2f, 40f, -40f};
        float[] y = {1f, 0f, 0f, 1f};
        GradientGraph gg = GradientBuilder.build(identity(17, 2, 2), List.of("x"), Losses.binaryCrossEntropyWithLogits("logits"));
        Map<String, Tensor> out = run(gg, Tensor.ofFloats(new long[] {2, 2}, x), Tensor.ofFloats(new long[] {2, 2}, y));
        double expected = 0;
        for (int i = 0; i < 4; i++) {
            expected += (Math.max(x[i], 0) - x[i] * y[i] + Math.log1p(Math.exp(-Math.abs(x[i])))) / 4;
        }
        assertEquals(expected, out.get(gg.loss()).getDouble(0), 1e-5);
        Tensor g = out.get(gg.gradientOf("x"));
        for (int i = 0; i < 4; i++) {
            double sigmoid = 1 / (1 + Math.exp(-x[i]));
            assertEquals((sigmoid - y[i]) / 4, g.getDouble(i), 1e-6, "gradient " + i);
        }
    }

    @Test
    void meanSquaredErrorAveragesOverEveryElement() {
        float[] p = {1f, 2f, 3f, 4f, 5f, 6f};
        float[] t = {0f, 2f, 1f, 4f, 7f, 5f};
        GradientGraph gg = GradientBuilder.build(identity(11, 3, 2), List.of("x"), Losses.meanSquaredError("logits"));
        assertEquals(List.of("targets"), gg.labelInputs());
        Map<String, Tensor> out = run(gg, Tensor.ofFloats(new long[] {3, 2}, p), Tensor.ofFloats(new long[] {3, 2}, t));
        double expected = 0;
        for (int i = 0; i < 6; i++) {
            expected += (p[i] - t[i]) * (p[i] - t[i]) / 6.0;
        }
        assertEquals(expected, out.get(gg.loss()).getDouble(0), 1e-6);
        Tensor g = out.get(gg.gradientOf("x"));
        for (int i = 0; i < 6; i++) {
            assertEquals(2 * (p[i] - t[i]) / 6.0, g.getDouble(i), 1e-6);
        }
    }
}
