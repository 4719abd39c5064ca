package io.peft4j.core.peft;

/** How {@link Peft#inject} places an adapter's tensors in the graph. */
public enum InjectMode {
    /**
     * Initializers named by their PEFT keys. The trainer turns the trainable ones into graph
     * inputs itself.
     */
    INITIALIZERS,
    /**
     * Required graph inputs named by their PEFT keys: the side-graph mode, where an
     * {@code .onnx_adapter} file's parameters are these inputs. A run with no adapter feeds
     * {@link Peft.Injection#offFeeds()} (LoRA: zero A and B and a zero scale; IA3: ones). ONNX
     * Runtime's Java {@code OrtSession.run} accepts feeds only for such inputs.
     */
    INPUTS,
    /**
     * As {@link #INPUTS}, and each input also gets an initializer of the same name holding its
     * off value, so that a run that feeds nothing gives the base model (ONNX's overridable
     * initializers; ONNX Runtime's LoRA adapter API overrides them, while its Java
     * {@code OrtSession.run} refuses feeds for them).
     */
    INPUTS_WITH_DEFAULTS
}
