package io.peft4j.trainer.optim;

import io.peft4j.core.Peft4jException;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class AdamWTest {

    private static final double TOL = 2e-6;

    /**
     * Three steps on two tensors against {@code torch.optim.AdamW(lr=0.01, betas=(0.9, 0.999),
     * eps=1e-8, weight_decay=0.1)} in PyTorch 1.13 (float32), including a zero gradient (only the
     * decay moves that weight) and a zero weight.
     */
    @Test
    void matchesPyTorch() {
        Map<String, float[]> params = new LinkedHashMap<>();
        params.put("p", new float[] {0.5f, -1.25f, 2.0f, 0.0f, -0.003f});
        params.put("q", new float[] {1.0f, -2.0f, 0.25f, 4.0f});
        float[][][] grads = {
                {{0.1f, -0.2f, 0.0f, 1.5f, -3.0f}, {0.5f, 0.5f, -1.0f, 0.01f}},
                {{-0.3f, 0.2f, 0.7f, -1.5f, 2.0f}, {0.0f, 0.5f, 2.0f, -0.02f}},
                {{0.05f, 0.4f, -0.7f, 0.5f, 1.0f}, {-0.5f, 0.25f, 1.0f, 0.03f}}};
        double[][][] expected = {
                {{0.4895000159740448, -1.2387499809265137, 1.9980000257492065, -0.010000000707805157, 0.007003000937402248},
                        {0.9890000224113464, -2.008000135421753, 0.25975000858306885, 3.9860000610351562}},
                {{0.4939524233341217, -1.2380375862121582, 1.988560676574707, -0.009463685564696789, 0.008441203273832798},
                        {0.9813104867935181, -2.0159921646118164, 0.25582921504974365, 3.985675096511841}},
                {{0.4962334632873535, -1.2422515153884888, 1.987023949623108, -0.010524827055633068, 0.007800563704222441},
                        {0.9811878800392151, -2.0233943462371826, 0.2503809928894043, 3.978256940841675}}};
        AdamW opt = new AdamW(new AdamW.Settings(0.01, 0.9, 0.999, 1e-8, 0.1));
        for (int s = 0; s < 3; s++) {
            opt.step(params, Map.of("p", grads[s][0], "q", grads[s][1]));
            for (int i = 0; i < 5; i++) {
                assertEquals(expected[s][0][i], params.get("p")[i], TOL, "p[" + i + "] after step " + (s + 1));
            }
            for (int i = 0; i < 4; i++) {
                assertEquals(expected[s][1][i], params.get("q")[i], TOL, "q[" + i + "] after step " + (s + 1));
            }
        }
        assertEquals(3, opt.steps());
        assertEquals(18, opt.stateFloats());
    }

    /** With a zero gradient the update is the decoupled decay alone: p·(1 − lr·λ), not a gradient term. */
    @Test
    void decayIsDecoupled() {
        Map<String, float[]> params = Map.of("w", new float[] {2.0f, -4.0f});
        new AdamW(new AdamW.Settings(0.1, 0.9, 0.999, 1e-8, 0.5)).step(params, Map.of("w", new float[2]));
        assertEquals(2.0 * 0.95, params.get("w")[0], 1e-6);
        assertEquals(-4.0 * 0.95, params.get("w")[1], 1e-6);
    }

    @Test
    void refusesMismatchedGradients() {
        AdamW opt = new AdamW(AdamW.Settings.defaults());
        Map<String, float[]> params = Map.of("w", new float[3]);
        assertThrows(Peft4jException.class, () -> opt.step(params, Map.of()));
        assertThrows(Peft4jException.class, () -> opt.step(params, Map.of("w", new float[2])));
        assertThrows(Peft4jException.class, () -> opt.step(params, Map.of("w", new float[3], "x", new float[1])));
        assertEquals(0, opt.steps());
        assertThrows(Peft4jException.class, () -> new AdamW.Settings(0, 0.9, 0.999, 1e-8, 0));
        assertThrows(Peft4jException.class, () -> new AdamW.Settings(1e-3, 1, 0.999, 1e-8, 0));
        assertThrows(Peft4jException.class, () -> new AdamW.Settings(1e-3, 0.9, 0.999, 1e-8, -1));
    }
}
