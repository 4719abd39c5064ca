package io.peft4j.trainer.autodiff;

/**
 * A loss, appended to the model as graph nodes that read the model's outputs (and label inputs
 * it declares) and compute one scalar. The gradient builder differentiates through these nodes
 * like through any others. See {@link Losses} for the standard ones.
 */
@FunctionalInterface
public interface Loss {

    /** Appends the loss nodes; returns the name of the scalar loss value. */
    String append(LossContext c);
}
