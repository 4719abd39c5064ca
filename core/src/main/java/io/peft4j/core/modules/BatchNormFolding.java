package io.peft4j.core.modules;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Node;

/**
 * Whether a model's BatchNormalization layers were folded into its convolutions.
 *
 * <p>PyTorch's exporter folds BatchNorm into Conv by default (constant folding in eval mode). The
 * folded weights are new tensors, which the exporter names {@code onnx::Conv_<n>} instead of the
 * module's {@code <path>.weight}. So: BatchNormalization nodes reading a Conv's output mean KEPT;
 * no such nodes and Conv weights named by the exporter mean FOLDED; neither means NONE (the model
 * has no BatchNorm, or its names give no evidence).
 */
public final class BatchNormFolding {

    private BatchNormFolding() {
    }

    /** What {@link #detect} concluded. */
    public enum Status {
        KEPT, FOLDED, MIXED, NONE
    }

    /**
     * @param status           the conclusion
     * @param batchNormNodes   BatchNormalization nodes in the graph
     * @param convsWithBatchNorm  Conv nodes whose output feeds a BatchNormalization
     * @param convsRenamed     Conv nodes whose weight carries an exporter-made name ({@code onnx::Conv_})
     * @param convs            Conv nodes
     */
    public record Report(Status status, int batchNormNodes, int convsWithBatchNorm, int convsRenamed, int convs) {
    }

    public static Report detect(Graph g) {
        int bn = 0;
        int convs = 0;
        int withBn = 0;
        int renamed = 0;
        for (Node n : g.nodes()) {
            if (n.is("BatchNormalization")) {
                bn++;
            }
            if (n.is("Conv") && !n.outputs().isEmpty()) {
                convs++;
                if (n.input(1).startsWith("onnx::Conv_")) {
                    renamed++;
                }
                for (Node c : g.consumers(n.output(0))) {
                    if (c.is("BatchNormalization")) {
                        withBn++;
                        break;
                    }
                }
            }
        }
        Status s;
        if (withBn > 0 && renamed > 0) {
            s = Status.MIXED;
        } else if (withBn > 0) {
            s = Status.KEPT;
        } else if (renamed > 0) {
            s = Status.FOLDED;
        } else {
            s = Status.NONE;
        }
        return new Report(s, bn, withBn, renamed, convs);
    }
}
