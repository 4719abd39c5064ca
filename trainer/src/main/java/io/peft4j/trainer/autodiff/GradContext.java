package io.peft4j.trainer.autodiff;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.Node;

/**
 * What a {@link GradientRule} sees: its node, the gradients of the node's outputs (null where no
 * gradient flows back), which inputs need a gradient, and an {@link Emitter} for new nodes.
 */
public final class GradContext extends Emitter {

    private final Node node;
    private final String[] outGrads;
    private final boolean[] needs;
    private final String[] inGrads;

    GradContext(Emitter parent, Node node, String[] outGrads, boolean[] needs) {
        super(parent);
        this.node = node;
        this.outGrads = outGrads;
        this.needs = needs;
        this.inGrads = new String[needs.length];
    }

    /** The forward node (read its attributes; do not edit it). */
    public Node node() {
        return node;
    }

    public String input(int i) {
        return node.input(i);
    }

    public boolean hasInput(int i) {
        return node.hasInput(i);
    }

    public String output(int i) {
        return node.output(i);
    }

    public int outputCount() {
        return node.outputs().size();
    }

    public long attrInt(String name, long def) {
        return node.attrInt(name, def);
    }

    public float attrFloat(String name, float def) {
        return node.attrFloat(name, def);
    }

    public long[] attrInts(String name, long[] def) {
        return node.attrInts(name, def);
    }

    public String attrString(String name, String def) {
        return node.attrString(name, def);
    }

    /** The gradient of output {@code i}, or null when none flows back to it. */
    public String outGrad(int i) {
        return i < outGrads.length ? outGrads[i] : null;
    }

    /** The gradient of output {@code i}, zeros shaped like the output when none flows back. */
    public String outGradOrZeros(int i) {
        String g = outGrad(i);
        return g != null ? g : zerosLike(output(i));
    }

    /** Whether input {@code i} needs a gradient (it depends on a trainable tensor). */
    public boolean needsGrad(int i) {
        return i < needs.length && needs[i];
    }

    /** Whether any input needs a gradient. */
    public boolean needsAny() {
        for (boolean b : needs) {
            if (b) {
                return true;
            }
        }
        return false;
    }

    /** Reports the gradient of input {@code i} (ignored when that input needs none). */
    public void setGrad(int i, String grad) {
        if (needsGrad(i)) {
            if (type(grad).equals(ValueType.UNKNOWN)) {
                typed(grad, type(input(i)));
            }
            inGrads[i] = grad;
        }
    }

    String[] inputGrads() {
        return inGrads;
    }

    /**
     * The gradient {@code grad} (shaped like output 0) summed to the shape of input {@code i}: the
     * gradient of the broadcasting that an element-wise op does.
     */
    public String unbroadcast(String grad, int i) {
        return reduceToShapeOf(grad, type(output(0)), input(i));
    }

    /** An UNSUPPORTED error that names this node. */
    public Peft4jException unsupported(String why) {
        return Peft4jException.unsupported("cannot differentiate " + describe(node) + ": " + why);
    }
}
