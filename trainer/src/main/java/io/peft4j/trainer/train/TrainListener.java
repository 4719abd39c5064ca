package io.peft4j.trainer.train;

/**
 * What a run tells whoever started it, as it goes (the command line draws a progress bar from it).
 * Called on the training thread; implementations return quickly. Every method does nothing by default.
 */
public interface TrainListener {

    /** The run is about to take its first step (or its first after a resume, {@code fromStep} &gt; 0). */
    default void started(long fromStep, long totalSteps, int stepsPerEpoch) {
    }

    /** Step {@code step} (1-based) is done. */
    default void step(long step, long totalSteps, double loss, double lr) {
    }

    /** An evaluation on the validation data finished. */
    default void evaluated(int epoch, long step, Evaluation evaluation) {
    }

    /** A line for the user (a checkpoint written, early stopping, a warning). */
    default void message(String line) {
    }

    /** The loop is over (before the results are written). */
    default void finished() {
    }
}
