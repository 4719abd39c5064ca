package io.peft4j.trainer.autodiff;

import io.peft4j.core.adapter.PeftKey;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.peft.lora.LoraMethod;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.OnnxChecker;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.core.peft.Heads;
import io.peft4j.trainer.LoraFixture;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * LoRA trained on the shared PyTorch exports and on all-MiniLM-L6-v2 with a new classification
 * head: the adapter is injected as initializers (B random, so that A's gradients are not zero), the
 * injected LoRA tensors (and the head) are made trainable, and sampled gradient coordinates are
 * compared with central differences of the float32 loss ({@link SampledGradients}: the 4 largest
 * coordinates plus 2 random ones, |analytic − numeric| ≤ 3e-2 · max|grad| + an allowance for the
 * loss's float32 rounding, which each test states with its step h). Gradients too small for single
 * coordinates to move a float32 loss are checked along directions instead (derivative along g/|g|
 * and along a random direction within 3e-2). Every LoRA tensor's gradient has the tensor's shape and
 * is not all zeros; every training graph passes the ONNX checker.
 *
 * <p>Worst relative errors seen (|analytic − numeric| / max|grad|): resnet18 1.6e-2 (conv1's A,
 * where ReLU kinks fall inside ±h), 2e-4 at fc; mobilenet_v3_small head and last block 1.4e-2;
 * its early blocks 1.5e-2; all-MiniLM-L6-v2 2.3e-2 (layer 0 query), 3e-4 at the head.
 */
class LoraGradientTest {

    private static String a(String module) {
        return PeftKey.of(module, LoraMethod.A);
    }

    private static String b(String module) {
        return PeftKey.of(module, LoraMethod.B);
    }

    /** How sampled coordinates are checked: step {@code h}, tolerance relative to max|grad| and absolute allowance. */
    private record Fd(double h, double tol, double abs) {
    }

    /** h = 1e-3: the loss moves ~1e-3·|grad|, ReLU kinks stay rare; the allowance is the float32 noise 1e-4. */
    private static final Fd DEFAULT = new Fd(1e-3, 3e-2, 1e-4);

    /**
     * For gradients of ~1e-3 (mobilenet_v3_small's seeded random weights give nearly uniform logits):
     * h = 1e-2 brings the float32 noise down to ~1e-5, which the allowance is.
     */
    private static final Fd SMALL = new Fd(1e-2, 3e-2, 1e-5);

    private static void checkVision(Path file, Fd fd, List<String> coordinates, List<String> directional, long seed) {
        Model m = OnnxIO.read(file);
        List<String> modules = LoraFixture.modules(m, LoraFixture.CONVS_AND_GEMMS);
        Peft.Injection inj = LoraFixture.inject(m, LoraFixture.config(4, 8, modules), seed, 0.05);
        assertEquals(2 * modules.size(), inj.trainable().size());
        GradientGraph gg = GradientBuilder.build(m, inj.trainable(), Losses.softmaxCrossEntropy("logits"));
        OnnxChecker.check(gg.model());
        Random r = new Random(seed);
        Map<String, Tensor> feeds = new LinkedHashMap<>();
        feeds.put("input", TinyModels.randn(r, 2, 3, 64, 64));
        feeds.put("labels", Tensor.ofLongs(new long[] {2}, 1, 4));
        String name = file.getFileName().toString();
        System.out.printf("%s: LoRA r = 4 on %d modules, %d trainable tensors%n", name, modules.size(), inj.trainable().size());
        check(name, m, gg, inj.trainable(), feeds, fd, coordinates, directional, seed);
    }

    /** Runs the graph once, checks every gradient's shape and that none is all zeros, then the sampled ones. */
    private static void check(String name, Model m, GradientGraph gg, List<String> trainable, Map<String, Tensor> data, Fd fd,
                              List<String> coordinates, List<String> directional, long seed) {
        Map<String, Tensor> feeds = new LinkedHashMap<>(data);
        for (String t : trainable) {
            feeds.put(t, m.graph().initializer(t));
        }
        try (Session s = new Session(gg.model(), 2)) {
            Map<String, Tensor> result = s.run(feeds);
            for (String t : trainable) {
                Tensor g = result.get(gg.gradientOf(t));
                assertArrayEquals(m.graph().initializer(t).shape(), g.shape(), t);
                assertTrue(maxAbs(g) > 0, name + ": the gradient of " + t + " is all zeros");
                if (System.getenv("PEFT4J_DEBUG_GRADS") != null) {
                    System.out.printf("  %s max|grad| %.2e%n", t, maxAbs(g));
                }
            }
            double loss = result.get(gg.loss()).getDouble(0);
            // NaN: from the loss, four float32 roundings of it turned into a slope
            double abs = Double.isNaN(fd.abs()) ? 4 * Math.ulp((float) loss) / fd.h() : fd.abs();
            for (String t : coordinates) {
                double worst = SampledGradients.check(name + " " + t, s, gg, feeds, result, t, 4, 2, fd.h(), fd.tol(), abs,
                        seed);
                System.out.printf("%s %s: worst |analytic - numeric| / max|grad| = %.2e, max|grad| %.2e%n", name, t, worst,
                        maxAbs(result.get(gg.gradientOf(t))));
            }
            for (String t : directional) {
                SampledGradients.directional(name + " " + t, s, gg, feeds, result, t, 3e-2, seed);
                System.out.printf("%s %s: directional derivatives within 3e-2, max|grad| %.2e%n", name, t,
                        maxAbs(result.get(gg.gradientOf(t))));
            }
        }
    }

    @Test
    void resnet18() {
        checkVision(Assets.shared("models/resnet18.onnx"), DEFAULT, List.of(
                a("conv1"), b("conv1"),
                a("layer2.0.downsample.0"), b("layer2.0.downsample.0"),
                a("layer4.1.conv2"), b("layer4.1.conv2"),
                a("fc"), b("fc")), List.of(), 11);
    }

    /**
     * With the shared model's seeded random weights the logits hardly depend on the input (the loss
     * is ln 6): gradients fall from ~1e-3 at the classifier to ~1e-5 in features.9–11 and ~1e-9 in
     * features.0–6, below anything a float32 loss resolves. The head and last blocks are checked
     * here, features.9–11 along directions, the early blocks in {@link #mobilenetV3SmallEarlyBlocks}.
     */
    @Test
    void mobilenetV3Small() {
        checkVision(Assets.shared("models/mobilenet_v3_small.onnx"), SMALL, List.of(
                a("features.12.0"), b("features.12.0"),
                a("classifier.0"), b("classifier.0"),
                a("classifier.3"), b("classifier.3")),
                List.of(a("features.9.block.3.0"), b("features.10.block.3.0"), b("features.11.block.3.0")), 12);
    }

    /**
     * The early blocks of mobilenet_v3_small (stem, squeeze-excitation, depthwise convolutions,
     * hard-swish, residual adds), where the full model's loss leaves gradients of 1e-9 and less:
     * LoRA on every Conv with groups = 1 of blocks {@code first}–{@code last}, and a loss that
     * reaches them with gradients a float32 loss resolves: the mean squared error of the output of
     * block {@code last} against targets 1e-3 away from it. Near its minimum the loss is ~1e-6
     * while its gradients shrink only linearly with the distance, so the float32 rounding of the
     * loss turned into a slope, ulp(loss) / h ~ 1e-10, falls well below the gradients (1e-8 to 1e-6);
     * central differences are exact on the quadratic, and the network's curvature enters as
     * h² / distance = 1e-3. The allowance is 4·ulp(loss) / h; coordinates whose gradients are
     * below 1e-8 (the squeeze-excitation convolutions) are checked along directions.
     */
    private static void mobilenetBlocks(int first, int last, String blockOutput, List<String> coordinates,
                                        List<String> directional, long seed) {
        Model m = OnnxIO.read(Assets.shared("models/mobilenet_v3_small.onnx"));
        m.graph().addOutput(io.peft4j.core.onnx.ValueInfos.tensor(blockOutput, DataType.FLOAT, null, null, null, null));
        List<String> modules = LoraFixture.modules(m, LoraFixture.CONVS_AND_GEMMS.and(t -> {
            java.util.regex.Matcher b = java.util.regex.Pattern.compile("features\\.(\\d+)\\..*").matcher(t.path());
            return b.matches() && Integer.parseInt(b.group(1)) >= first && Integer.parseInt(b.group(1)) <= last;
        }));
        Peft.Injection inj = LoraFixture.inject(m, LoraFixture.config(4, 8, modules), seed, 0.05);
        GradientGraph gg = GradientBuilder.build(m, inj.trainable(), Losses.meanSquaredError(blockOutput));
        OnnxChecker.check(gg.model());
        Random r = new Random(seed);
        Map<String, Tensor> feeds = new LinkedHashMap<>();
        feeds.put("input", TinyModels.randn(r, 2, 3, 64, 64));
        Tensor f;
        try (Session s = new Session(m, 2)) {
            f = s.run(Map.of("input", feeds.get("input")), java.util.Set.of(blockOutput)).get(blockOutput);
        }
        float[] y = f.toFloatArray();
        for (int i = 0; i < y.length; i++) {
            y[i] += (float) (1e-3 * r.nextGaussian());
        }
        feeds.put("targets", Tensor.ofFloats(f.shape(), y));
        String name = "mobilenet_v3_small features." + first + "-" + last;
        System.out.printf("%s: LoRA r = 4 on %d modules, MSE of %s%n", name, modules.size(), blockOutput);
        check(name, m, gg, inj.trainable(), feeds, new Fd(1e-3, 3e-2, Double.NaN), coordinates, directional, seed);
    }

    @Test
    void mobilenetV3SmallBlocks0To3() {
        mobilenetBlocks(0, 3, "/features/features.3/Add_output_0", List.of(
                a("features.0.0"), b("features.0.0"), a("features.1.block.2.0"), b("features.1.block.2.0"),
                b("features.2.block.0.0"), a("features.2.block.2.0"), a("features.3.block.0.0"), b("features.3.block.2.0")),
                List.of(a("features.1.block.1.fc1"), b("features.1.block.1.fc2")), 15);
    }

    @Test
    void mobilenetV3SmallBlocks4To6() {
        mobilenetBlocks(4, 6, "/features/features.6/Add_output_0", List.of(
                a("features.4.block.0.0"), b("features.4.block.3.0"), b("features.5.block.0.0"), a("features.5.block.3.0"),
                a("features.6.block.3.0"), b("features.6.block.3.0")),
                List.of(a("features.4.block.2.fc1"), a("features.4.block.2.fc2"), b("features.5.block.2.fc1"),
                        a("features.6.block.2.fc2")), 16);
    }

    @Test
    void allMiniLmL6V2WithClassificationHead() {
        Model m = OnnxIO.read(Assets.miniLm());
        List<String> modules = LoraFixture.modules(m, t -> t.path().endsWith(".query") || t.path().endsWith(".value"));
        assertEquals(12, modules.size(), modules.toString());
        Peft.Injection inj = LoraFixture.inject(m, LoraFixture.config(4, 8, modules), 13, 0.05);
        Heads.Head head = Heads.addClassifier(m, "last_hidden_state", 3, Heads.Pooling.maskedMean("attention_mask"), 14);
        List<String> trainable = new ArrayList<>(inj.trainable());
        trainable.addAll(head.trainable());
        GradientGraph gg = GradientBuilder.build(m, trainable, Losses.softmaxCrossEntropy(head.output()));
        OnnxChecker.check(gg.model());

        Random r = new Random(5);
        long batch = 3;
        long seq = 9;
        long[] ids = new long[(int) (batch * seq)];
        long[] mask = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            long pos = i % seq;
            long row = i / seq;
            long length = seq - 3 * row;           // rows padded to 9, 6 and 3 tokens
            ids[i] = pos == 0 ? 101 : pos == length - 1 ? 102 : pos >= length ? 0 : 1000 + r.nextInt(20000);
            mask[i] = pos < length ? 1 : 0;
        }
        Map<String, Tensor> feeds = new LinkedHashMap<>();
        feeds.put("input_ids", Tensor.ofLongs(new long[] {batch, seq}, ids));
        feeds.put("attention_mask", Tensor.ofLongs(new long[] {batch, seq}, mask));
        feeds.put("token_type_ids", Tensor.zeros(DataType.INT64, batch, seq));
        feeds.put("labels", Tensor.ofLongs(new long[] {batch}, 0, 2, 1));
        for (String t : trainable) {
            feeds.put(t, m.graph().initializer(t));
        }
        String q0 = "encoder.layer.0.attention.self.query";
        String v5 = "encoder.layer.5.attention.self.value";
        String v2 = "encoder.layer.2.attention.self.value";
        try (Session s = new Session(gg.model(), 2)) {
            Map<String, Tensor> result = s.run(feeds);
            for (String t : trainable) {
                assertTrue(maxAbs(result.get(gg.gradientOf(t))) > 0, "the gradient of " + t + " is all zeros");
            }
            for (String t : List.of(head.weight(), head.bias(), a(q0), b(q0), a(v2), b(v2), a(v5), b(v5))) {
                double worst = SampledGradients.check("all-MiniLM-L6-v2 " + t, s, gg, feeds, result, t, 4, 2, 1e-3, 3e-2, 5);
                System.out.printf("all-MiniLM-L6-v2 %s: worst |analytic - numeric| / max|grad| = %.2e, max|grad| %.2e%n", t,
                        worst, maxAbs(result.get(gg.gradientOf(t))));
            }
        }
    }

    static double maxAbs(Tensor t) {
        double m = 0;
        for (float v : t.toFloatArray()) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }
}
