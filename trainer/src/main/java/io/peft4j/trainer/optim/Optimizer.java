package io.peft4j.trainer.optim;

import java.util.Map;

/**
 * Updates trainable float arrays in place from their gradients, one step at a time, at a learning
 * rate the caller chooses per step (the schedule's). Its state (moments, momentum buffers, the step
 * count) can be taken out and put back, so that a run resumed from a checkpoint continues exactly
 * where it stopped. Not thread-safe.
 */
public interface Optimizer {

    /** The optimizer's name as the command line spells it ({@code adamw}, {@code sgd}). */
    String name();

    /**
     * One update of every tensor in {@code params} from its gradient in {@code grads}, in place,
     * at learning rate {@code lr}. Every parameter needs a gradient of its length.
     */
    void step(Map<String, float[]> params, Map<String, float[]> grads, double lr);

    /** Steps taken so far. */
    long steps();

    /** The state as named float arrays (copies), for a checkpoint; see {@link #restore}. */
    Map<String, float[]> state();

    /** Puts back what {@link #state()} returned, and the step count; refuses state of other shapes. */
    void restore(Map<String, float[]> state, long steps);

    /** Checks params and grads agree (names and lengths); shared by the implementations. */
    static void checkStep(String who, Map<String, float[]> params, Map<String, float[]> grads) {
        for (String name : grads.keySet()) {
            if (!params.containsKey(name)) {
                throw io.peft4j.core.Peft4jException.notFound(who + " got a gradient for '" + name + "', which is not a parameter");
            }
        }
        for (Map.Entry<String, float[]> e : params.entrySet()) {
            float[] g = grads.get(e.getKey());
            if (g == null) {
                throw io.peft4j.core.Peft4jException.notFound(who + " has no gradient for parameter '" + e.getKey() + "'");
            }
            if (g.length != e.getValue().length) {
                throw io.peft4j.core.Peft4jException.shape(who + ": the gradient of '" + e.getKey() + "' has " + g.length
                        + " elements, the parameter " + e.getValue().length);
            }
        }
    }

    /** Checks the learning rate of one step: positive and finite (0 allowed: a warm-up's first step may be 0). */
    static void checkLr(String who, double lr) {
        if (!(lr >= 0) || Double.isInfinite(lr)) {
            throw io.peft4j.core.Peft4jException.invalid(who + " learning rate must be non-negative and finite, got " + lr);
        }
    }
}
