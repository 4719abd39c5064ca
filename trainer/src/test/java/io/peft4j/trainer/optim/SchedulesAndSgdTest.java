package io.peft4j.trainer.optim;

import io.peft4j.core.Peft4jException;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The learning-rate schedules, gradient clipping, SGD and the optimizers' state round trip, against hand computations. */
class SchedulesAndSgdTest {

    @Test
    void warmUpThenCosineAsHuggingFaceComputesIt() {
        LrSchedule s = new LrSchedule(LrSchedule.Kind.COSINE, 0.1, 4, 14);
        assertEquals(0.025, s.at(0), 1e-12);
        assertEquals(0.1, s.at(3), 1e-12);
        assertEquals(0.1, s.at(4), 1e-12);                                   // progress 0
        assertEquals(0.1 * 0.5 * (1 + Math.cos(Math.PI * 0.5)), s.at(9), 1e-12);   // progress 5/10
        assertEquals(0.0, s.at(14), 1e-12);
        LrSchedule c = new LrSchedule(LrSchedule.Kind.CONSTANT, 0.1, 0, 5);
        assertEquals(0.1, c.at(0), 0);
        assertEquals(0.1, c.at(4), 0);
        assertThrows(Peft4jException.class, () -> LrSchedule.Kind.parse("linear"));
    }

    @Test
    void clippingScalesByTheGlobalNormAsPyTorchDoes() {
        Map<String, float[]> g = new LinkedHashMap<>();
        g.put("a", new float[] {3, 0});
        g.put("b", new float[] {0, 4});
        double norm = GradClip.clip(g, 1.0);
        assertEquals(5.0, norm, 1e-9);
        float coef = (float) (1.0 / (5.0 + 1e-6));
        assertArrayEquals(new float[] {3 * coef, 0}, g.get("a"), 1e-7f);
        assertArrayEquals(new float[] {0, 4 * coef}, g.get("b"), 1e-7f);
        Map<String, float[]> small = Map.of("a", new float[] {0.3f, 0.4f});
        GradClip.clip(small, 1.0);
        assertArrayEquals(new float[] {0.3f, 0.4f}, small.get("a"), 0f);
        GradClip.clip(g, 0);   // off
    }

    @Test
    void sgdWithMomentumAndWeightDecayFollowsTorchOptimSgd() {
        Sgd sgd = new Sgd(0.9, 0.1);
        Map<String, float[]> p = Map.of("w", new float[] {1f});
        // step 1: d = g + λp = 0.5 + 0.1 = 0.6; b = d; p = 1 - 0.1·0.6 = 0.94
        sgd.step(p, Map.of("w", new float[] {0.5f}), 0.1);
        assertEquals(0.94f, p.get("w")[0], 1e-7f);
        // step 2: d = 0.5 + 0.094 = 0.594; b = 0.9·0.6 + 0.594 = 1.134; p = 0.94 - 0.1134 = 0.8266
        sgd.step(p, Map.of("w", new float[] {0.5f}), 0.1);
        assertEquals(0.8266f, p.get("w")[0], 1e-6f);
        assertEquals(2, sgd.steps());
    }

    @Test
    void optimizerStateSurvivesARoundTripAndContinuesIdentically() {
        for (boolean adam : new boolean[] {true, false}) {
            Optimizer a = adam ? new AdamW(AdamW.Settings.defaults()) : new Sgd(0.9, 0.01);
            Optimizer b = adam ? new AdamW(AdamW.Settings.defaults()) : new Sgd(0.9, 0.01);
            Map<String, float[]> pa = new LinkedHashMap<>(Map.of("w", new float[] {1f, -2f, 3f}));
            Map<String, float[]> grads = Map.of("w", new float[] {0.1f, -0.2f, 0.3f});
            a.step(pa, grads, 0.01);
            a.step(pa, grads, 0.01);
            Map<String, float[]> pb = new LinkedHashMap<>(Map.of("w", pa.get("w").clone()));
            b.restore(a.state(), a.steps());
            a.step(pa, grads, 0.01);
            b.step(pb, grads, 0.01);
            assertArrayEquals(pa.get("w"), pb.get("w"), 0f, a.name());
            Optimizer other = adam ? new Sgd(0.9, 0) : new AdamW(AdamW.Settings.defaults());
            assertThrows(Peft4jException.class, () -> other.restore(a.state(), 1), a.name());
        }
    }
}
