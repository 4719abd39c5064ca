package io.peft4j.devices;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.Tensor;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

/** Checks a run's inputs against a model, the same way for every backend. */
public final class Inputs {

    private Inputs() {
    }

    /**
     * Checks names, element types and fixed dimensions of {@code inputs} against {@code info};
     * {@code extra} is an input the caller may give besides the model's (a multi package's adapter
     * index), or null. Returns the batch size: dimension 0, shared by every input of rank 1 or
     * more (1 when all are scalars). {@code what} names the model in messages.
     */
    public static long check(ModelInfo info, Map<String, Tensor> inputs, String extra, String what) {
        List<String> names = info.inputs().stream().map(TensorSpec::name).toList();
        for (String n : inputs.keySet()) {
            if (!names.contains(n) && !n.equals(extra)) {
                throw Peft4jException.notFound(what + " has no input '" + n + "'; its inputs are " + names);
            }
        }
        List<String> missing = names.stream().filter(n -> !inputs.containsKey(n)).toList();
        if (!missing.isEmpty()) {
            throw Peft4jException.notFound(what + " needs input" + (missing.size() == 1 ? " " : "s ") + missing
                    + " (its inputs are " + names + ")");
        }
        long batch = -1;
        for (TensorSpec s : info.inputs()) {
            Tensor t = inputs.get(s.name());
            if (t.dtype() != s.dtype()) {
                throw Peft4jException.shape("input '" + s.name() + "' takes " + s.dtype() + ", got " + t.dtype());
            }
            if (!s.accepts(t.shape())) {
                throw Peft4jException.shape("input '" + s.name() + "' takes shape " + s.describeShape() + " (-1: any size), got "
                        + Arrays.toString(t.shape()));
            }
            if (t.rank() > 0) {
                if (batch >= 0 && t.dim(0) != batch) {
                    throw Peft4jException.shape("inputs disagree on the batch size: '" + s.name() + "' has " + t.dim(0)
                            + " rows, an earlier input " + batch);
                }
                batch = t.dim(0);
            }
        }
        return Math.max(batch, 1);
    }
}
