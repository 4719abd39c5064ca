package io.peft4j.trainer;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.peft.InjectMode;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.OnnxChecker;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.trainer.autodiff.GradientBuilder;
import io.peft4j.trainer.autodiff.GradientGraph;
import io.peft4j.trainer.autodiff.Losses;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GradientSessionTest {

    /** LoRA (r = 2, PEFT's initialisation: B = 0) on the tiny CNN's conv1, fc1 and fc2. */
    private static GradientGraph tinyLora(Map<String, float[]> params) {
        Model m = TinyModels.cnn(3);
        AdapterConfig c = AdapterConfig.lora(2, 4, List.of("conv1", "fc1", "fc2"));
        Peft.Injection inj = Peft.inject(m, AdapterBinding.bind(m, AdapterBinding.init(m, c, 4)), InjectMode.INITIALIZERS);
        assertEquals(6, inj.trainable().size());
        GradientGraph gg = GradientBuilder.build(m, inj.trainable(), Losses.softmaxCrossEntropy("logits"));
        OnnxChecker.check(gg.model());
        for (String t : gg.trainable()) {
            params.put(t, m.graph().initializer(t).toFloatArray());
        }
        return gg;
    }

    /**
     * A batch the tiny CNN can learn: images of noise whose brightness says the class (its global
     * average pool sees little else), random labels.
     */
    private static Map<String, Tensor> batch(long seed, int n) {
        Random r = new Random(seed);
        long[] labels = new long[n];
        float[] x = TinyModels.input(seed, n).toFloatArray();
        int per = x.length / n;
        for (int i = 0; i < n; i++) {
            labels[i] = r.nextInt(3);
            for (int j = 0; j < per; j++) {
                x[i * per + j] += labels[i] - 1;
            }
        }
        return Map.of("x", Tensor.ofFloats(new long[] {n, 1, 8, 8}, x), "labels", Tensor.ofLongs(new long[] {n}, labels));
    }

    @Test
    void sgdOnLoraOfTheTinyCnnLowersTheLoss() {
        Map<String, float[]> params = new LinkedHashMap<>();
        GradientGraph gg = tinyLora(params);
        Map<String, Tensor> batch = batch(21, 16);
        double lr = 0.3;
        double first = Double.NaN;
        double last = Double.NaN;
        try (GradientSession s = new GradientSession(gg, 1, List.of("logits"))) {
            assertEquals(List.of("x", "labels"), s.batchInputs());
            for (int step = 0; step < 20; step++) {
                GradientSession.Step r = s.step(batch, params);
                assertEquals(gg.trainable(), List.copyOf(r.gradients().keySet()));
                assertArrayEquals(new long[] {16, 3}, r.outputs().get("logits").shape());
                assertTrue(Double.isFinite(r.loss()), "loss at step " + step + ": " + r.loss());
                if (step == 0) {
                    first = r.loss();
                }
                last = r.loss();
                for (Map.Entry<String, float[]> e : r.gradients().entrySet()) {
                    float[] p = params.get(e.getKey());
                    float[] g = e.getValue();
                    for (int i = 0; i < p.length; i++) {
                        p[i] -= (float) (lr * g[i]);
                    }
                }
            }
        }
        System.out.printf("tiny CNN, LoRA r = 2, 20 SGD steps at lr %.1f: loss %.4f -> %.4f%n", lr, first, last);
        assertTrue(last < 0.3 * first, "20 SGD steps took the loss from " + first + " to " + last + " only");
    }

    @Test
    void stepsTakeAnyBatchSizeAndReturnTheSameAsARecomputation() {
        Map<String, float[]> params = new LinkedHashMap<>();
        GradientGraph gg = tinyLora(params);
        try (GradientSession s = new GradientSession(gg, 1)) {
            GradientSession.Step a = s.step(batch(5, 3), params);
            GradientSession.Step b = s.step(batch(6, 7), params);
            GradientSession.Step again = s.step(batch(5, 3), params);
            assertTrue(a.outputs().isEmpty());
            assertEquals(a.loss(), again.loss());
            assertTrue(a.loss() != b.loss());
            for (String t : gg.trainable()) {
                assertArrayEquals(a.gradients().get(t), again.gradients().get(t), t);
            }
        }
    }

    /** A session opened with the caller's options computes what one opened with a thread count does. */
    @Test
    void sessionOptionsFromTheCallerGiveTheSameStep() throws Exception {
        Map<String, float[]> params = new LinkedHashMap<>();
        GradientGraph gg = tinyLora(params);
        Map<String, Tensor> batch = batch(4, 5);
        GradientSession.Step expected;
        try (GradientSession s = new GradientSession(gg, 1)) {
            expected = s.step(batch, params);
        }
        try (ai.onnxruntime.OrtSession.SessionOptions o = new ai.onnxruntime.OrtSession.SessionOptions()) {
            o.setIntraOpNumThreads(1);
            try (GradientSession s = new GradientSession(gg, o, List.of("logits"))) {
                GradientSession.Step r = s.step(batch, params);
                assertEquals(expected.loss(), r.loss());
                for (String t : gg.trainable()) {
                    assertArrayEquals(expected.gradients().get(t), r.gradients().get(t), t);
                }
                assertEquals(List.of("logits"), List.copyOf(r.outputs().keySet()));
            }
        }
        assertThrows(NullPointerException.class, () -> new GradientSession(gg, (ai.onnxruntime.OrtSession.SessionOptions) null,
                List.of()));
    }

    @Test
    void theSessionReadsTheCurrentValuesAtEveryStep() {
        Map<String, float[]> params = new LinkedHashMap<>();
        GradientGraph gg = tinyLora(params);
        Map<String, Tensor> batch = batch(8, 4);
        try (GradientSession s = new GradientSession(gg, 1)) {
            double before = s.step(batch, params).loss();
            String b = gg.trainable().stream().filter(t -> t.endsWith("fc2.lora_B.weight")).findFirst().orElseThrow();
            float[] v = params.get(b);
            for (int i = 0; i < v.length; i++) {
                v[i] = i * 0.1f;   // not all equal: adding the same to every logit leaves the loss as it is
            }
            assertTrue(s.step(batch, params).loss() != before);
        }
    }

    @Test
    void badStepsAreRefusedWithTheReason() {
        Map<String, float[]> params = new LinkedHashMap<>();
        GradientGraph gg = tinyLora(params);
        try (GradientSession s = new GradientSession(gg, 1)) {
            Peft4jException e = assertThrows(Peft4jException.class, () -> s.step(Map.of("x", TinyModels.input(1, 2)), params));
            assertEquals(Peft4jException.ErrorCode.NOT_FOUND, e.code());
            assertTrue(e.getMessage().contains("labels"), e.getMessage());

            Map<String, float[]> shortened = new LinkedHashMap<>(params);
            String first = gg.trainable().get(0);
            shortened.put(first, new float[3]);
            e = assertThrows(Peft4jException.class, () -> s.step(batch(1, 2), shortened));
            assertEquals(Peft4jException.ErrorCode.SHAPE_MISMATCH, e.code());
            assertTrue(e.getMessage().contains(first), e.getMessage());

            Map<String, Tensor> extra = new LinkedHashMap<>(batch(1, 2));
            extra.put(first, Tensor.ofFloats(new long[] {1}, 0f));
            e = assertThrows(Peft4jException.class, () -> s.step(extra, params));
            assertTrue(e.getMessage().contains("is trainable"), e.getMessage());
        }
        assertThrows(Peft4jException.class, () -> new GradientSession(gg, 1, List.of("no_such_output")));
        assertThrows(Peft4jException.class, () -> new GradientSession(gg, 0));
    }

    @Test
    void closeIsIdempotentAndAStepAfterItIsRefused() {
        Map<String, float[]> params = new LinkedHashMap<>();
        GradientGraph gg = tinyLora(params);
        GradientSession s = new GradientSession(gg, 1);
        s.step(batch(2, 2), params);
        s.close();
        s.close();
        Peft4jException e = assertThrows(Peft4jException.class, () -> s.step(batch(2, 2), params));
        assertEquals(Peft4jException.ErrorCode.GRAPH_STATE, e.code());
    }
}
