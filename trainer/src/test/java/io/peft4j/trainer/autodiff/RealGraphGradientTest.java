package io.peft4j.trainer.autodiff;

import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.OnnxChecker;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * Integration tests on the shared PyTorch exports and all-MiniLM-L6-v2, with plain weights made
 * trainable (LoRA injection is tested where it is written): sampled gradient coordinates against
 * central differences, and every training graph through the ONNX checker. Weights are chosen so
 * that the gradient flows back through (nearly) the whole network.
 */
class RealGraphGradientTest {

    private static void checkVision(Path file, List<String> trainable, long seed) {
        checkVision(file, trainable, List.of(), seed);
    }

    /** {@code directional}: trainable tensors whose gradients are checked along directions (tiny coordinates). */
    private static void checkVision(Path file, List<String> coordinates, List<String> directional, long seed) {
        List<String> trainable = new java.util.ArrayList<>(coordinates);
        trainable.addAll(directional);
        Model m = OnnxIO.read(file);
        GradientGraph gg = GradientBuilder.build(m, trainable, Losses.softmaxCrossEntropy("logits"));
        OnnxChecker.check(gg.model());
        Random r = new Random(seed);
        Map<String, Tensor> feeds = new LinkedHashMap<>();
        feeds.put("input", TinyModels.randn(r, 2, 3, 64, 64));
        feeds.put("labels", Tensor.ofLongs(new long[] {2}, 1, 4));
        for (String t : trainable) {
            feeds.put(t, m.graph().initializer(t));
        }
        try (Session s = new Session(gg.model(), 2)) {
            Map<String, Tensor> result = s.run(feeds);
            for (String t : directional) {
                assertArrayEquals(m.graph().initializer(t).shape(), result.get(gg.gradientOf(t)).shape());
                SampledGradients.directional(file.getFileName() + " " + t, s, gg, feeds, result, t, 3e-2, seed);
            }
            for (String t : coordinates) {
                assertArrayEquals(m.graph().initializer(t).shape(), result.get(gg.gradientOf(t)).shape());
                double worst = SampledGradients.check(file.getFileName() + " " + t, s, gg, feeds, result, t, 4, 2,
                        1e-3, 3e-2, seed);
                System.out.printf("%s %s: worst |analytic - numeric| / max|grad| = %.2e, max|grad| %.2e%n", file.getFileName(), t,
                        worst, maxAbs(result.get(gg.gradientOf(t))));
            }
        }
    }

    @Test
    void resnet18() {
        checkVision(Assets.shared("models/resnet18.onnx"),
                List.of("fc.weight", "layer4.1.conv2.weight", "layer1.0.conv1.weight"), 7);
    }

    @Test
    void mobilenetV3Small() {
        checkVision(Assets.shared("models/mobilenet_v3_small.onnx"),
                List.of("classifier.3.weight", "classifier.0.weight"),
                // gradients of 1e-5 and less at these seeded random weights: checked along directions
                List.of("features.11.block.2.fc1.weight", "features.11.block.0.0.weight"), 8);
    }

    @Test
    void allMiniLmL6V2AtOpset11() {
        Model m = OnnxIO.read(Assets.miniLm());
        String q0 = weightOf(m, "/encoder/layer.0/attention/self/query/MatMul");
        String v5 = weightOf(m, "/encoder/layer.5/attention/self/value/MatMul");
        List<String> trainable = List.of(q0, v5);
        GradientGraph gg = GradientBuilder.build(m, trainable, Losses.meanSquaredError("last_hidden_state"));
        OnnxChecker.check(gg.model());
        Random r = new Random(5);
        long batch = 2;
        long seq = 7;
        long[] ids = new long[(int) (batch * seq)];
        long[] mask = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = i % seq == 0 ? 101 : 1000 + r.nextInt(20000);
            mask[i] = i >= seq && i % seq >= 5 ? 0 : 1;     // the second sentence is padded
        }
        Map<String, Tensor> feeds = new LinkedHashMap<>();
        feeds.put("input_ids", Tensor.ofLongs(new long[] {batch, seq}, ids));
        feeds.put("attention_mask", Tensor.ofLongs(new long[] {batch, seq}, mask));
        feeds.put("token_type_ids", Tensor.zeros(io.peft4j.core.tensor.DataType.INT64, batch, seq));
        feeds.put("targets", TinyModels.randn(r, batch, seq, 384));
        for (String t : trainable) {
            feeds.put(t, m.graph().initializer(t));
        }
        try (Session s = new Session(gg.model(), 2)) {
            Map<String, Tensor> result = s.run(feeds);
            for (String t : trainable) {
                double worst = SampledGradients.check("all-MiniLM-L6-v2 " + t, s, gg, feeds, result, t, 4, 2, 1e-2, 3e-2, 5);
                System.out.printf("all-MiniLM-L6-v2 %s: worst |analytic - numeric| / max|grad| = %.2e%n", t, worst);
            }
        }
    }

    private static double maxAbs(Tensor t) {
        double m = 0;
        for (float v : t.toFloatArray()) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    private static String weightOf(Model m, String nodeName) {
        Node n = m.graph().node(nodeName);
        return n.input(1);
    }
}
