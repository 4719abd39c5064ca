package io.peft4j.trainer.optim;

import io.peft4j.core.Peft4jException;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Adam with decoupled weight decay (Loshchilov &amp; Hutter), computed as PyTorch's
 * {@code torch.optim.AdamW} does (single-tensor path, no amsgrad), in float32 like it:
 *
 * <pre>
 * p ← p · (1 − lr·λ)                       decay first, on the weights, not through the gradient
 * m ← β₁·m + (1 − β₁)·g
 * v ← β₂·v + (1 − β₂)·g²
 * p ← p − lr / (1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
 * </pre>
 *
 * The trainable values are float arrays owned by the caller (what a {@code GradientSession}
 * takes); {@link #step} updates them in place. The moments are kept per tensor name and made on the
 * first step that sees the name. Not thread-safe.
 */
public final class AdamW implements Optimizer {

    /**
     * The hyper-parameters; {@link #defaults()} are PyTorch's.
     *
     * @param lr          learning rate, &gt; 0
     * @param beta1       first-moment decay, in [0, 1)
     * @param beta2       second-moment decay, in [0, 1)
     * @param eps         added to the denominator, &gt; 0
     * @param weightDecay decoupled weight decay λ, ≥ 0 (applied as {@code p ← p·(1 − lr·λ)})
     */
    public record Settings(double lr, double beta1, double beta2, double eps, double weightDecay) {
        public Settings {
            if (!(lr > 0) || Double.isInfinite(lr)) {
                throw Peft4jException.invalid("AdamW learning rate must be positive and finite, got " + lr);
            }
            if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
                throw Peft4jException.invalid("AdamW betas must be in [0, 1), got " + beta1 + ", " + beta2);
            }
            if (!(eps > 0) || Double.isInfinite(eps)) {
                throw Peft4jException.invalid("AdamW eps must be positive and finite, got " + eps);
            }
            if (!(weightDecay >= 0) || Double.isInfinite(weightDecay)) {
                throw Peft4jException.invalid("AdamW weight decay must be non-negative and finite, got " + weightDecay);
            }
        }

        /** PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2. */
        public static Settings defaults() {
            return new Settings(1e-3, 0.9, 0.999, 1e-8, 1e-2);
        }

        public Settings withLr(double newLr) {
            return new Settings(newLr, beta1, beta2, eps, weightDecay);
        }

        public Settings withWeightDecay(double newWeightDecay) {
            return new Settings(lr, beta1, beta2, eps, newWeightDecay);
        }
    }

    private final Settings settings;
    private final Map<String, float[]> m = new LinkedHashMap<>();
    private final Map<String, float[]> v = new LinkedHashMap<>();
    private long steps;

    public AdamW(Settings settings) {
        this.settings = settings;
    }

    public Settings settings() {
        return settings;
    }

    /** Steps taken so far. */
    public long steps() {
        return steps;
    }

    /** Floats of optimizer state held (two moments per trainable element seen). */
    public long stateFloats() {
        long n = 0;
        for (float[] a : m.values()) {
            n += 2L * a.length;
        }
        return n;
    }

    @Override
    public String name() {
        return "adamw";
    }

    /** One update at the settings' learning rate; see {@link #step(Map, Map, double)}. */
    public void step(Map<String, float[]> params, Map<String, float[]> grads) {
        step(params, grads, settings.lr());
    }

    /**
     * One update of every tensor in {@code params} from its gradient in {@code grads}, in place,
     * at learning rate {@code lr} (the settings' other values apply). Every parameter needs a
     * gradient of its length; gradients of other names are refused.
     */
    @Override
    public void step(Map<String, float[]> params, Map<String, float[]> grads, double lr) {
        Optimizer.checkStep("AdamW", params, grads);
        Optimizer.checkLr("AdamW", lr);
        for (Map.Entry<String, float[]> e : params.entrySet()) {
            float[] mm = m.get(e.getKey());
            if (mm != null && mm.length != e.getValue().length) {
                throw Peft4jException.shape("AdamW: parameter '" + e.getKey() + "' changed size from " + mm.length
                        + " to " + e.getValue().length);
            }
        }
        steps++;
        double bc1 = 1 - Math.pow(settings.beta1(), steps);
        double bc2 = 1 - Math.pow(settings.beta2(), steps);
        float decay = (float) (1 - lr * settings.weightDecay());
        float b1 = (float) settings.beta1();
        float b2 = (float) settings.beta2();
        float c1 = (float) (1 - settings.beta1());
        float c2 = (float) (1 - settings.beta2());
        float stepSize = (float) (lr / bc1);
        float bc2Sqrt = (float) Math.sqrt(bc2);
        float eps = (float) settings.eps();
        for (Map.Entry<String, float[]> e : params.entrySet()) {
            float[] p = e.getValue();
            float[] g = grads.get(e.getKey());
            float[] mm = m.computeIfAbsent(e.getKey(), k -> new float[p.length]);
            float[] vv = v.computeIfAbsent(e.getKey(), k -> new float[p.length]);
            for (int i = 0; i < p.length; i++) {
                float gi = g[i];
                float mi = b1 * mm[i] + c1 * gi;
                float vi = b2 * vv[i] + c2 * gi * gi;
                mm[i] = mi;
                vv[i] = vi;
                p[i] = p[i] * decay - stepSize * mi / ((float) Math.sqrt(vi) / bc2Sqrt + eps);
            }
        }
    }

    @Override
    public Map<String, float[]> state() {
        Map<String, float[]> s = new LinkedHashMap<>();
        m.forEach((k, a) -> s.put("m/" + k, a.clone()));
        v.forEach((k, a) -> s.put("v/" + k, a.clone()));
        return s;
    }

    @Override
    public void restore(Map<String, float[]> state, long stepCount) {
        if (stepCount < 0) {
            throw Peft4jException.invalid("AdamW: a step count cannot be negative, got " + stepCount);
        }
        Map<String, float[]> mm = new LinkedHashMap<>();
        Map<String, float[]> vv = new LinkedHashMap<>();
        for (Map.Entry<String, float[]> e : state.entrySet()) {
            String k = e.getKey();
            if (k.startsWith("m/")) {
                mm.put(k.substring(2), e.getValue().clone());
            } else if (k.startsWith("v/")) {
                vv.put(k.substring(2), e.getValue().clone());
            } else {
                throw Peft4jException.invalid("AdamW state has an entry '" + k + "' it does not know (from another optimizer?)");
            }
        }
        if (!mm.keySet().equals(vv.keySet())) {
            throw Peft4jException.invalid("AdamW state is incomplete: first moments for " + mm.keySet()
                    + ", second moments for " + vv.keySet());
        }
        m.clear();
        m.putAll(mm);
        v.clear();
        v.putAll(vv);
        steps = stepCount;
    }
}
