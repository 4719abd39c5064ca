package io.peft4j.trainer.optim;

import io.peft4j.core.Peft4jException;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Stochastic gradient descent with momentum and (coupled, L2) weight decay, computed as PyTorch's
 * {@code torch.optim.SGD} does (no dampening, no Nesterov), in float32:
 *
 * <pre>
 * d ← g + λ·p
 * b ← d                      on the first step,   b ← μ·b + d   after   (only when μ &gt; 0)
 * p ← p − lr · (μ &gt; 0 ? b : d)
 * </pre>
 */
public final class Sgd implements Optimizer {

    private final double momentum;
    private final double weightDecay;
    private final Map<String, float[]> buffers = new LinkedHashMap<>();
    private long steps;

    /**
     * @param momentum    μ, in [0, 1)
     * @param weightDecay λ, ≥ 0, added to the gradient as PyTorch's SGD does
     */
    public Sgd(double momentum, double weightDecay) {
        if (!(momentum >= 0 && momentum < 1)) {
            throw Peft4jException.invalid("SGD momentum must be in [0, 1), got " + momentum);
        }
        if (!(weightDecay >= 0) || Double.isInfinite(weightDecay)) {
            throw Peft4jException.invalid("SGD weight decay must be non-negative and finite, got " + weightDecay);
        }
        this.momentum = momentum;
        this.weightDecay = weightDecay;
    }

    @Override
    public String name() {
        return "sgd";
    }

    @Override
    public void step(Map<String, float[]> params, Map<String, float[]> grads, double lr) {
        Optimizer.checkStep("SGD", params, grads);
        Optimizer.checkLr("SGD", lr);
        steps++;
        float l = (float) lr;
        float wd = (float) weightDecay;
        float mu = (float) momentum;
        for (Map.Entry<String, float[]> e : params.entrySet()) {
            float[] p = e.getValue();
            float[] g = grads.get(e.getKey());
            if (mu == 0) {
                for (int i = 0; i < p.length; i++) {
                    p[i] -= l * (g[i] + wd * p[i]);
                }
                continue;
            }
            float[] b = buffers.get(e.getKey());
            if (b == null) {
                b = new float[p.length];
                for (int i = 0; i < p.length; i++) {
                    b[i] = g[i] + wd * p[i];
                }
                buffers.put(e.getKey(), b);
            } else {
                if (b.length != p.length) {
                    throw Peft4jException.shape("SGD: parameter '" + e.getKey() + "' changed size from " + b.length + " to " + p.length);
                }
                for (int i = 0; i < p.length; i++) {
                    b[i] = mu * b[i] + g[i] + wd * p[i];
                }
            }
            for (int i = 0; i < p.length; i++) {
                p[i] -= l * b[i];
            }
        }
    }

    @Override
    public long steps() {
        return steps;
    }

    @Override
    public Map<String, float[]> state() {
        Map<String, float[]> s = new LinkedHashMap<>();
        buffers.forEach((k, v) -> s.put("momentum/" + k, v.clone()));
        return s;
    }

    @Override
    public void restore(Map<String, float[]> state, long steps) {
        if (steps < 0) {
            throw Peft4jException.invalid("SGD: a step count cannot be negative, got " + steps);
        }
        Map<String, float[]> b = new LinkedHashMap<>();
        for (Map.Entry<String, float[]> e : state.entrySet()) {
            if (!e.getKey().startsWith("momentum/")) {
                throw Peft4jException.invalid("SGD state has an entry '" + e.getKey() + "' it does not know (from another optimizer?)");
            }
            b.put(e.getKey().substring("momentum/".length()), e.getValue().clone());
        }
        buffers.clear();
        buffers.putAll(b);
        this.steps = steps;
    }
}
