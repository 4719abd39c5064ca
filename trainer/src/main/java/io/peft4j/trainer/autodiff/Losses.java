package io.peft4j.trainer.autodiff;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.DataType;

/**
 * The standard losses, as graph nodes. Each reads one model output and declares one label input;
 * each reduces to the mean, as PyTorch does by default.
 */
public final class Losses {

    private Losses() {
    }

    /**
     * Softmax cross-entropy of {@code logits} ({@code [batch, classes]}) against int64 class indices
     * ({@code [batch]}, input {@code labels}), averaged over the batch:
     * {@code -mean(log_softmax(logits)[i, labels[i]])}.
     */
    public static Loss softmaxCrossEntropy(String logits) {
        return softmaxCrossEntropy(logits, "labels");
    }

    public static Loss softmaxCrossEntropy(String logitsOutput, String labelsInput) {
        return c -> {
            String logits = c.modelOutput(logitsOutput);
            ValueType t = c.type(logits);
            if (t.hasRank() && t.rank() != 2) {
                throw Peft4jException.shape("softmax cross-entropy needs logits of shape [batch, classes]; '"
                        + logits + "' is " + t);
            }
            String labels = c.addLabelInput(labelsInput, DataType.INT64, batchDim(t));
            String logp = c.build("LogSoftmax").in(logits).attr("axis", 1L).out();
            String classes = c.squeeze(c.dim(logits, 1), 0);
            String range = c.op("Range", c.scalar(0, DataType.INT64), classes, c.scalar(1, DataType.INT64));
            String onehot = c.cast(c.op("Equal", c.unsqueeze(labels, 1), range), c.dtype(logits));
            String picked = c.reduce("ReduceSum", c.op("Mul", onehot, logp), new long[] {1}, false);
            return c.op("Neg", c.reduce("ReduceMean", picked, null, false));
        };
    }

    /**
     * Binary cross-entropy with logits against float targets of the same shape (input
     * {@code labels}), averaged over all elements, in the stable form
     * {@code mean(max(x, 0) - x·y + log(1 + exp(-|x|)))}.
     */
    public static Loss binaryCrossEntropyWithLogits(String logits) {
        return binaryCrossEntropyWithLogits(logits, "labels");
    }

    public static Loss binaryCrossEntropyWithLogits(String logitsOutput, String labelsInput) {
        return c -> {
            String x = c.modelOutput(logitsOutput);
            String y = c.addLabelInput(labelsInput, c.dtype(x), dimsOf(c.type(x)));
            String softplus = c.op("Softplus", c.op("Neg", c.op("Abs", x)));
            String v = c.op("Add", c.op("Sub", c.op("Relu", x), c.op("Mul", x, y)), softplus);
            return c.reduce("ReduceMean", v, null, false);
        };
    }

    /** Mean squared error against float targets of the same shape (input {@code targets}). */
    public static Loss meanSquaredError(String prediction) {
        return meanSquaredError(prediction, "targets");
    }

    public static Loss meanSquaredError(String predictionOutput, String targetsInput) {
        return c -> {
            String p = c.modelOutput(predictionOutput);
            String y = c.addLabelInput(targetsInput, c.dtype(p), dimsOf(c.type(p)));
            String d = c.op("Sub", p, y);
            return c.reduce("ReduceMean", c.op("Mul", d, d), null, false);
        };
    }

    private static Object batchDim(ValueType t) {
        long d = t.dim(0);
        return d >= 0 ? (Object) d : "batch";
    }

    private static Object[] dimsOf(ValueType t) {
        if (!t.hasRank()) {
            return null;
        }
        Object[] d = new Object[t.rank()];
        for (int i = 0; i < d.length; i++) {
            d[i] = t.dim(i) >= 0 ? (Object) t.dim(i) : (i == 0 ? "batch" : null);
        }
        return d;
    }
}
