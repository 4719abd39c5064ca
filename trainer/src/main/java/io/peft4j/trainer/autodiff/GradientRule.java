package io.peft4j.trainer.autodiff;

/**
 * The backward rule of one op type: given a node, the gradients of its outputs and which of its
 * inputs need a gradient, emit standard ONNX nodes that compute those input gradients and report
 * them with {@link GradContext#setGrad(int, String)}. A rule sees only its node (inputs, outputs,
 * attributes) and the context; it never edits the forward graph.
 */
@FunctionalInterface
public interface GradientRule {

    void backward(GradContext c);
}
