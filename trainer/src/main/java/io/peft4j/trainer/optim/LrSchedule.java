package io.peft4j.trainer.optim;

import io.peft4j.core.Peft4jException;

import java.util.Locale;

/**
 * The learning rate of each step: constant, or a linear warm-up followed by a cosine decay to zero
 * over the run (what Hugging Face's {@code get_cosine_schedule_with_warmup} computes). Steps count
 * from 0; the rate of step {@code t} is
 *
 * <pre>
 * t &lt; w:        lr · (t + 1) / w          (no warm-up: w = 0)
 * otherwise:    constant: lr;   cosine: lr · ½ (1 + cos(π · (t − w) / max(1, T − w)))
 * </pre>
 *
 * @param kind        the shape after the warm-up
 * @param lr          the peak learning rate
 * @param warmupSteps w, ≥ 0
 * @param totalSteps  T, the run's length in steps, &gt; 0
 */
public record LrSchedule(Kind kind, double lr, long warmupSteps, long totalSteps) {

    public enum Kind {
        CONSTANT, COSINE;

        public static Kind parse(String s) {
            return switch (s.toLowerCase(Locale.ROOT)) {
                case "constant" -> CONSTANT;
                case "cosine" -> COSINE;
                default -> throw Peft4jException.invalid("unknown schedule '" + s + "'; use constant or cosine");
            };
        }
    }

    public LrSchedule {
        if (kind == null) {
            throw Peft4jException.invalid("a schedule needs a kind");
        }
        if (!(lr >= 0) || Double.isInfinite(lr)) {
            throw Peft4jException.invalid("the learning rate must be non-negative and finite, got " + lr);
        }
        if (warmupSteps < 0 || totalSteps < 1) {
            throw Peft4jException.invalid("a schedule needs warm-up ≥ 0 and total steps ≥ 1, got " + warmupSteps + " and " + totalSteps);
        }
    }

    /** The learning rate of step {@code t} (0-based). */
    public double at(long t) {
        if (t < warmupSteps) {
            return lr * (t + 1) / warmupSteps;
        }
        if (kind == Kind.CONSTANT) {
            return lr;
        }
        double progress = (double) (t - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
        return lr * 0.5 * (1 + Math.cos(Math.PI * Math.min(1.0, progress)));
    }
}
