package io.peft4j.core.modules;

import io.peft4j.core.tensor.DataType;

import java.util.Arrays;

/**
 * A layer a PEFT method can adapt: a MatMul or Gemm with a constant weight (PyTorch's Linear), a
 * Conv (Conv1d/2d/3d), or a Gather over a constant table (Embedding).
 *
 * @param path         the PyTorch module path ({@code layer1.0.conv1})
 * @param kind         what sort of layer it is
 * @param nodeName     the ONNX node
 * @param opType       the node's op
 * @param weight       the weight initializer's name
 * @param bias         the bias initializer's name when the node itself takes it (Gemm, Conv), else
 *                     {@code null}; a MatMul's bias lives in a separate Add and is not recorded
 * @param weightShape  the weight's shape as stored in the graph
 * @param dtype        the weight's element type
 * @param layout       how the stored weight is laid out
 * @param inFeatures   input features (channels for Conv, vocabulary size for Embedding)
 * @param outFeatures  output features (channels for Conv, embedding width for Embedding)
 * @param groups       Conv groups (1 for other kinds)
 * @param parameters   elements of the weight plus the recorded bias
 */
public record TargetLayer(String path, Kind kind, String nodeName, String opType, String weight, String bias,
                          long[] weightShape, DataType dtype, Layout layout, long inFeatures, long outFeatures,
                          long groups, long parameters) {

    /** The PyTorch module a layer corresponds to. */
    public enum Kind {
        LINEAR, CONV, EMBEDDING
    }

    /** How a weight is stored. */
    public enum Layout {
        /** {@code [in, out]}: ONNX MatMul, Gemm with transB = 0. */
        IN_OUT,
        /** {@code [out, in]}: PyTorch Linear, Gemm with transB = 1. */
        OUT_IN,
        /** {@code [out, in/groups, k...]}: Conv. */
        CONV_OUT_IN_K,
        /** {@code [num_embeddings, dim]}: Gather over an embedding table. */
        EMBEDDING
    }

    public TargetLayer {
        weightShape = weightShape.clone();
    }

    @Override
    public long[] weightShape() {
        return weightShape.clone();
    }

    @Override
    public String toString() {
        return path + " " + opType + " " + Arrays.toString(weightShape) + " " + layout;
    }
}
