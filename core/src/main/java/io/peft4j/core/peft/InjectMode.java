package io.peft4j.core.peft;

/** How {@link Peft#inject} places an adapter's tensors in the graph. */
public enum InjectMode {
    /**
     * Initializers named by their PEFT keys. The trainer turns the trainable ones into graph
     * inputs itself.
     */
    INITIALIZERS,
    /**
     * Graph inputs named by their PEFT keys, each with an initializer of the same name as its
     * default that switches the adapter off, so that a run that feeds nothing gives the base
     * model's output. The side-graph mode: an {@code .onnx_adapter} file's parameters are these
     * inputs.
     */
    INPUTS
}
