package io.peft4j.trainer.optim;

import java.util.Map;

/**
 * Gradient clipping by the global L2 norm, as PyTorch's {@code clip_grad_norm_} does: the norm is
 * taken over every gradient together; when it exceeds {@code maxNorm}, every gradient is scaled by
 * {@code maxNorm / (norm + 1e-6)}.
 */
public final class GradClip {

    private GradClip() {
    }

    /** The global L2 norm of {@code grads} (accumulated in double). */
    public static double norm(Map<String, float[]> grads) {
        double s = 0;
        for (float[] g : grads.values()) {
            for (float x : g) {
                s += (double) x * x;
            }
        }
        return Math.sqrt(s);
    }

    /**
     * Scales {@code grads} in place so that their global norm is at most {@code maxNorm}
     * ({@code maxNorm ≤ 0}: no clipping). Returns the norm before clipping.
     */
    public static double clip(Map<String, float[]> grads, double maxNorm) {
        double n = norm(grads);
        if (maxNorm > 0 && Double.isFinite(n)) {
            double coef = maxNorm / (n + 1e-6);
            if (coef < 1) {
                float c = (float) coef;
                for (float[] g : grads.values()) {
                    for (int i = 0; i < g.length; i++) {
                        g[i] *= c;
                    }
                }
            }
        }
        return n;
    }
}
