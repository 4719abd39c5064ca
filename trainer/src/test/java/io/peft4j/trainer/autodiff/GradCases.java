package io.peft4j.trainer.autodiff;

import io.peft4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

import static io.peft4j.trainer.autodiff.GradCheck.B;
import static io.peft4j.trainer.autodiff.GradCheck.Domain.AWAY_FROM_ZERO;
import static io.peft4j.trainer.autodiff.GradCheck.Domain.DISTINCT;
import static io.peft4j.trainer.autodiff.GradCheck.Domain.POSITIVE;
import static io.peft4j.trainer.autodiff.GradCheck.Domain.UNIT;
import static io.peft4j.trainer.autodiff.GradCheck.of;

/**
 * The checker's cases: for every rule, the attribute variants that matter. Cases run in float64
 * unless ONNX Runtime 1.23's CPU provider implements the op (or an op its gradient uses) only for
 * float32; those say {@code f32()} with the reason.
 */
final class GradCases {

    private GradCases() {
    }

    static List<GradCheck.Case> all() {
        List<GradCheck.Case> l = new ArrayList<>();
        // ---- binary element-wise, with broadcasting (static and run-time axes)
        for (String op : List.of("Add", "Sub", "Mul", "Div")) {
            GradCheck.Domain d = op.equals("Div") ? POSITIVE : GradCheck.Domain.ANY;
            l.add(of(op).label("same shape").x("a", d, 2, 3).x("b", d, 2, 3));
            l.add(of(op).label("broadcast bias").x("a", d, B, 3, 4).x("b", d, 4).batches(2, 3));
            l.add(of(op).label("broadcast both ways").x("a", d, 2, 1, 4).x("b", d, 3, 1));
            l.add(of(op).label("broadcast, run-time axes").x("a", d, 2, 1, 4).x("b", d, 3, 1).noShapes());
            l.add(of(op).label("frozen second operand").x("a", d, 2, 3).frozen("b", d, 3));
        }
        l.add(of("Add").label("opset 11 keepdims broadcast").opset(11).x("a", B, 3, 4).x("b", B, 3, 1).batches(1, 3));
        l.add(of("Pow").label("constant exponent 2").x("x", 2, 3).constant("p", Tensor.scalar(2f)));
        l.add(of("Pow").label("constant exponent 3").x("x", 2, 3).constant("p", Tensor.scalar(3f)));
        l.add(of("Pow").label("exponent too").x("x", POSITIVE, 2, 3).x("p", 3));
        l.add(of("Sum").x("a", 2, 3).x("b", 3).x("c", 2, 1));
        l.add(of("Where").data("cond", Tensor.ofBools(new long[] {2, 3}, true, false, true, false, false, true))
                .x("a", 2, 3).x("b", 3));
        // ---- unary
        l.add(of("Neg").x("x", 2, 3));
        l.add(of("Abs").x("x", AWAY_FROM_ZERO, 2, 3));
        l.add(of("Sqrt").x("x", POSITIVE, 2, 3));
        l.add(of("Reciprocal").x("x", POSITIVE, 2, 3));
        l.add(of("Exp").x("x", 2, 3));
        l.add(of("Log").x("x", POSITIVE, 2, 3));
        l.add(of("Erf").f32().x("x", 2, 3));                    // Erf: float only
        l.add(of("Tanh").x("x", 2, 3));
        l.add(of("Sigmoid").x("x", 2, 3));
        l.add(of("Softplus").f32().x("x", 2, 3));               // Softplus: float only
        l.add(of("Relu").x("x", AWAY_FROM_ZERO, 2, 3));
        l.add(of("LeakyRelu").x("x", AWAY_FROM_ZERO, 2, 3).attrs(b -> b.attr("alpha", 0.1f)));
        l.add(of("Clip").label("min and max").x("x", AWAY_FROM_ZERO, 3, 4)
                .constant("lo", Tensor.scalar(-0.5f)).constant("hi", Tensor.scalar(0.7f)));
        l.add(of("Clip").label("max only").x("x", AWAY_FROM_ZERO, 3, 4).none().constant("hi", Tensor.scalar(0.6f)));
        l.add(of("HardSigmoid").f32()   // float only
                .x("x", 3, 4).attrs(b -> b.attr("alpha", 0.3f).attr("beta", 0.4f)));
        l.add(of("HardSwish").f32().x("x", 4, 5));         // runs as its HardSigmoid function body: float only
        l.add(of("Gelu").label("exact").opset(20).f32()      // its gradient uses Erf: float only
                .x("x", 2, 3));
        l.add(of("Gelu").label("tanh").opset(20).x("x", 2, 3).attrs(b -> b.attr("approximate", "tanh")));
        l.add(of("Identity").x("x", 2, 3));
        l.add(of("Dropout").label("inference").x("x", 2, 3));
        l.add(of("Cast").label("double to float").x("x", 2, 3).attrs(b -> b.attr("to", 1L)).outType(io.peft4j.core.tensor.DataType.FLOAT));
        // ---- softmax and reductions
        l.add(of("Softmax").label("last axis").x("x", 2, 3, 4));
        l.add(of("Softmax").label("axis 1").x("x", 2, 3, 4).attrs(b -> b.attr("axis", 1L)));
        l.add(of("Softmax").label("opset 11 coerced, axis 1").opset(11).x("x", 2, 3, 4).attrs(b -> b.attr("axis", 1L)));
        l.add(of("Softmax").label("opset 11 last axis").opset(11).x("x", 2, 3, 4).attrs(b -> b.attr("axis", -1L)));
        l.add(of("LogSoftmax").label("last axis").x("x", 3, 5));
        l.add(of("LogSoftmax").label("axis 0").x("x", 3, 5).attrs(b -> b.attr("axis", 0L)));
        l.add(of("LogSoftmax").label("opset 11 coerced").opset(11).x("x", 2, 3, 4).attrs(b -> b.attr("axis", 1L)));
        l.add(of("ReduceSum").label("axes keepdims").x("x", 2, 3, 4).ints("axes", 1).attrs(b -> b.attr("keepdims", 1L)));
        l.add(of("ReduceSum").label("negative axes, no keepdims").x("x", 2, 3, 4).ints("axes", -1, 0).attrs(b -> b.attr("keepdims", 0L)));
        l.add(of("ReduceSum").label("all axes").x("x", 2, 3).attrs(b -> b.attr("keepdims", 0L)));
        l.add(of("ReduceSum").label("opset 11 attribute axes").opset(11).x("x", 2, 3, 4).attrs(b -> b.attr("axes", new long[] {-2}).attr("keepdims", 0L)));
        l.add(of("ReduceMean").label("axes keepdims").x("x", 2, 3, 4).attrs(b -> b.attr("axes", new long[] {2})));
        l.add(of("ReduceMean").label("negative axes, no keepdims, batch").x("x", B, 3, 4)
                .attrs(b -> b.attr("axes", -1L, 1L).attr("keepdims", 0L)).batches(2, 5));
        l.add(of("ReduceMean").label("opset 18 axes input").opset(18).x("x", 2, 3, 4).ints("axes", 0, 2).attrs(b -> b.attr("keepdims", 0L)));
        // ---- linear algebra
        l.add(of("MatMul").label("2-D").x("a", 3, 4).x("b", 4, 5));
        l.add(of("MatMul").label("batched × matrix").x("a", B, 3, 4).x("b", 4, 5).batches(2, 3));
        l.add(of("MatMul").label("batched × batched").x("a", 2, 3, 4).x("b", 2, 4, 5));
        l.add(of("MatMul").label("broadcast batch").x("a", 2, 1, 3, 4).x("b", 3, 4, 2));
        l.add(of("MatMul").label("broadcast batch, run-time axes").x("a", 2, 1, 3, 4).x("b", 3, 4, 2).noShapes()
                .attrs(b -> { }));
        l.add(of("MatMul").label("vector × matrix").x("a", 4).x("b", 4, 5));
        l.add(of("MatMul").label("matrix × vector").x("a", 3, 4).x("b", 4));
        l.add(of("MatMul").label("opset 11 batched").opset(11).x("a", B, 3, 4).x("b", 4, 5).batches(1, 2));
        for (long ta = 0; ta < 2; ta++) {
            for (long tb = 0; tb < 2; tb++) {
                long fa = ta;
                long fb = tb;
                l.add(of("Gemm").label("transA " + ta + " transB " + tb)
                        .x("a", ta == 0 ? new long[] {3, 4} : new long[] {4, 3})
                        .x("b", tb == 0 ? new long[] {4, 5} : new long[] {5, 4})
                        .x("c", 5)
                        .attrs(b -> b.attr("transA", fa).attr("transB", fb).attr("alpha", 0.7f).attr("beta", 1.3f)));
            }
        }
        l.add(of("Gemm").label("matrix C, no alpha").x("a", 3, 4).x("b", 5, 4).x("c", 3, 1).attrs(b -> b.attr("transB", 1L)));
        // ---- convolution (ORT's Conv and ConvTranspose run in float32 only)
        l.add(of("Conv").label("3x3 pad 1").f32().x("x", B, 3, 5, 5).x("w", 4, 3, 3, 3).x("b", 4)
                .attrs(b -> b.attr("pads", 1, 1, 1, 1)).batches(1, 2));
        l.add(of("Conv").label("frozen weight, flipped kernel").f32().x("x", 2, 3, 5, 5).frozen("w", GradCheck.Domain.ANY, 4, 3, 3, 3)
                .attrs(b -> b.attr("pads", 1, 1, 1, 1)));
        l.add(of("Conv").label("stride 2, asymmetric pads").f32().x("x", 2, 2, 7, 6).x("w", 3, 2, 3, 2)
                .attrs(b -> b.attr("strides", 2, 2).attr("pads", 1, 0, 0, 1)));
        l.add(of("Conv").label("stride 2, odd size, frozen weight").f32().x("x", 1, 2, 8, 8).frozen("w", GradCheck.Domain.ANY, 3, 2, 3, 3)
                .attrs(b -> b.attr("strides", 2, 2).attr("pads", 1, 1, 1, 1)));
        l.add(of("Conv").label("dilation 2").f32().x("x", 1, 2, 7, 7).x("w", 2, 2, 3, 3)
                .attrs(b -> b.attr("dilations", 2, 2).attr("pads", 2, 2, 2, 2)));
        l.add(of("Conv").label("groups 2, frozen weight").f32().x("x", 2, 4, 5, 5).frozen("w", GradCheck.Domain.ANY, 6, 2, 3, 3)
                .attrs(b -> b.attr("group", 2L).attr("pads", 1, 1, 1, 1)));
        // frozen strided weights, small inputs: the input gradient in phases (one Conv per output phase, DepthToSpace)
        l.add(of("Conv").label("phases: stride 2, asymmetric pads, frozen weight").f32().x("x", 2, 3, 4, 4)
                .frozen("w", GradCheck.Domain.ANY, 4, 3, 3, 2).attrs(b -> b.attr("strides", 2, 2).attr("pads", 1, 0, 0, 0)));
        l.add(of("Conv").label("phases: 5x5 stride 2 pad 2, frozen weight").f32().x("x", 1, 2, 4, 4)
                .frozen("w", GradCheck.Domain.ANY, 3, 2, 5, 5).attrs(b -> b.attr("strides", 2, 2).attr("pads", 2, 2, 2, 2)));
        l.add(of("Conv").label("phases: 4x4 stride 3 pad 1, frozen weight").f32().x("x", 1, 2, 6, 6)
                .frozen("w", GradCheck.Domain.ANY, 2, 2, 4, 4).attrs(b -> b.attr("strides", 3, 3).attr("pads", 1, 1, 1, 1)));
        l.add(of("Conv").label("phases: 2x2 stride 2 with bias, frozen weight").f32().x("x", 2, 3, 4, 2)
                .frozen("w", GradCheck.Domain.ANY, 2, 3, 2, 2).x("b", 2).attrs(b -> b.attr("strides", 2, 2)));
        l.add(of("Conv").label("depthwise stride 2, frozen weight").f32().x("x", 2, 3, 6, 6).frozen("w", GradCheck.Domain.ANY, 3, 1, 3, 3)
                .attrs(b -> b.attr("group", 3L).attr("strides", 2, 2).attr("pads", 1, 1, 1, 1)));
        l.add(of("Conv").label("groups 2, trainable weight as input-only").f32().x("x", 2, 4, 5, 5).frozen("w", GradCheck.Domain.ANY, 4, 2, 1, 1)
                .attrs(b -> b.attr("group", 2L)));
        // grouped weights: each group's samples become its input channels
        l.add(of("Conv").label("groups 2, weight").f32().x("x", B, 4, 5, 5).x("w", 6, 2, 3, 3).x("b", 6)
                .attrs(b -> b.attr("group", 2L).attr("pads", 1, 1, 1, 1)).batches(1, 3));
        l.add(of("Conv").label("depthwise stride 2, weight").f32().x("x", 2, 3, 6, 6).x("w", 3, 1, 3, 3)
                .attrs(b -> b.attr("group", 3L).attr("strides", 2, 2).attr("pads", 1, 1, 1, 1)));
        l.add(of("Conv").label("depthwise 5x5 stride 2, odd size, weight only").f32().frozen("x", GradCheck.Domain.ANY, 2, 4, 7, 7)
                .x("w", 4, 1, 5, 5).attrs(b -> b.attr("group", 4L).attr("strides", 2, 2).attr("pads", 2, 2, 2, 2)));
        l.add(of("Conv").label("depthwise, channel multiplier 2, dilation 2").f32().x("x", 1, 2, 7, 7).x("w", 4, 1, 3, 3)
                .attrs(b -> b.attr("group", 2L).attr("dilations", 2, 2).attr("pads", 2, 2, 2, 2)));
        l.add(of("Conv").label("groups 2, 1x1 weight").f32().x("x", 2, 4, 3, 3).x("w", 4, 2, 1, 1)
                .attrs(b -> b.attr("group", 2L)));
        l.add(of("Conv").label("groups 3, 1-D weight").f32().x("x", 2, 6, 8).x("w", 3, 2, 3)
                .attrs(b -> b.attr("group", 3L).attr("pads", 1, 1)));
        l.add(of("Conv").label("1x1").f32().x("x", B, 4, 3, 3).x("w", 2, 4, 1, 1).batches(2, 3));
        l.add(of("Conv").label("1x1, unknown sizes").f32().x("x", 2, 4, 3, 2).x("w", 2, 4, 1, 1)
                .attrs(b -> b.attr("kernel_shape", 1, 1)).noShapes());
        l.add(of("Conv").label("auto_pad SAME_UPPER stride 2").f32().x("x", 1, 2, 5, 5).x("w", 2, 2, 3, 3)
                .attrs(b -> b.attr("auto_pad", "SAME_UPPER").attr("strides", 2, 2)));
        l.add(of("Conv").label("auto_pad SAME_LOWER").f32().x("x", 1, 2, 4, 4).x("w", 2, 2, 2, 2)
                .attrs(b -> b.attr("auto_pad", "SAME_LOWER")));
        l.add(of("Conv").label("auto_pad VALID, unknown sizes").f32().x("x", 1, 2, 6, 5).x("w", 3, 2, 3, 3)
                .attrs(b -> b.attr("auto_pad", "VALID").attr("strides", 2, 2).attr("kernel_shape", 3, 3)).noShapes());
        l.add(of("Conv").label("1-D").f32().x("x", 2, 3, 9).x("w", 2, 3, 3).attrs(b -> b.attr("pads", 1, 1)));
        // trainable weights with fewer output than input channels (LoRA's A): both gradients from the
        // output gradient spread over the kernel taps (per-sample products, or one product over the batch)
        l.add(of("Conv").label("taps: 3x3 pad 1, bias").f32().x("x", B, 4, 5, 5).x("w", 2, 4, 3, 3).x("b", 2)
                .attrs(b -> b.attr("pads", 1, 1, 1, 1)).batches(1, 3));
        l.add(of("Conv").label("taps: one product over the batch").f32().x("x", B, 12, 3, 3).x("w", 1, 12, 3, 3)
                .attrs(b -> b.attr("pads", 1, 1, 1, 1)).batches(1, 2));
        l.add(of("Conv").label("taps: stride 2 pad 1").f32().x("x", 2, 8, 6, 6).x("w", 2, 8, 3, 3)
                .attrs(b -> b.attr("strides", 2, 2).attr("pads", 1, 1, 1, 1)));
        l.add(of("Conv").label("taps: stride 2, asymmetric pads and kernel").f32().x("x", 1, 10, 7, 6).x("w", 2, 10, 3, 2)
                .attrs(b -> b.attr("strides", 2, 2).attr("pads", 1, 0, 0, 1)));
        l.add(of("Conv").label("taps: dilation 2").f32().x("x", 1, 6, 7, 7).x("w", 2, 6, 3, 3)
                .attrs(b -> b.attr("dilations", 2, 2).attr("pads", 2, 2, 2, 2)));
        l.add(of("Conv").label("taps: 1x1 stride 2").f32().x("x", 2, 8, 4, 4).x("w", 1, 8, 1, 1)
                .attrs(b -> b.attr("strides", 2, 2)));
        l.add(of("Conv").label("taps: SAME_UPPER stride 2").f32().x("x", 1, 6, 5, 5).x("w", 2, 6, 3, 3)
                .attrs(b -> b.attr("auto_pad", "SAME_UPPER").attr("strides", 2, 2)));
        l.add(of("Conv").label("taps: weight only (frozen input)").f32().frozen("x", GradCheck.Domain.ANY, 2, 6, 4, 4)
                .x("w", 2, 6, 3, 3).attrs(b -> b.attr("pads", 1, 1, 1, 1)));
        l.add(of("Conv").label("taps: 2x2 positions").f32().x("x", B, 6, 2, 2)
                .x("w", 2, 6, 3, 3).attrs(b -> b.attr("pads", 1, 1, 1, 1)).batches(1, 3));
        l.add(of("Conv").label("taps: 1-D").f32().x("x", 2, 6, 9).x("w", 2, 6, 3).attrs(b -> b.attr("pads", 1, 1)));
        // ---- pooling (AveragePool, GlobalAveragePool: float only; MaxPool has double kernels)
        l.add(of("MaxPool").label("2x2 stride 2").x("x", DISTINCT, B, 2, 4, 4)
                .attrs(b -> b.attr("kernel_shape", 2, 2).attr("strides", 2, 2)).batches(1, 2));
        l.add(of("MaxPool").label("3x3 stride 2 pad 1 (overlapping)").x("x", DISTINCT, 2, 2, 5, 5)
                .attrs(b -> b.attr("kernel_shape", 3, 3).attr("strides", 2, 2).attr("pads", 1, 1, 1, 1)));
        l.add(of("AveragePool").label("2x2 stride 2").f32().x("x", B, 2, 4, 4)
                .attrs(b -> b.attr("kernel_shape", 2, 2).attr("strides", 2, 2)).batches(1, 3));
        l.add(of("AveragePool").label("3x3 stride 1 pad 1, pads not counted").f32().x("x", 2, 2, 4, 5)
                .attrs(b -> b.attr("kernel_shape", 3, 3).attr("pads", 1, 1, 1, 1)));
        l.add(of("AveragePool").label("3x3 stride 2 pad 1, pads counted").f32().x("x", 1, 2, 5, 5)
                .attrs(b -> b.attr("kernel_shape", 3, 3).attr("strides", 2, 2).attr("pads", 1, 1, 1, 1).attr("count_include_pad", 1L)));
        l.add(of("GlobalAveragePool").f32().x("x", B, 3, 4, 5).batches(1, 2));
        l.add(of("GlobalAveragePool").label("unknown sizes").f32().x("x", 2, 3, 4, 5).noShapes());
        // ---- normalization
        l.add(of("BatchNormalization").label("frozen statistics").x("x", B, 3, 4, 4).frozen("scale", GradCheck.Domain.ANY, 3)
                .frozen("bias", GradCheck.Domain.ANY, 3).frozen("mean", GradCheck.Domain.ANY, 3).frozen("var", POSITIVE, 3).batches(1, 2));
        l.add(of("BatchNormalization").label("trainable scale and bias").x("x", 2, 3, 4).x("scale", 3).x("bias", 3)
                .frozen("mean", GradCheck.Domain.ANY, 3).frozen("var", POSITIVE, 3).attrs(b -> b.attr("epsilon", 1e-3f)));
        l.add(of("LayerNormalization").label("last axis").x("x", B, 3, 4).x("scale", 4).x("bias", 4).batches(2, 3));
        l.add(of("LayerNormalization").label("last two axes").x("x", 2, 3, 4).x("scale", 3, 4).x("bias", 3, 4)
                .attrs(b -> b.attr("axis", -2L)));
        // ---- shapes and data movement
        l.add(of("Flatten").x("x", 2, 3, 4).attrs(b -> b.attr("axis", 2L)));
        l.add(of("Reshape").x("x", B, 3, 4).ints("shape", 0, -1, 2).batches(2, 3));
        l.add(of("Squeeze").x("x", 2, 1, 3).ints("axes", 1));
        l.add(of("Squeeze").label("opset 11").opset(11).x("x", 2, 1, 3).attrs(b -> b.attr("axes", new long[] {-2})));
        l.add(of("Unsqueeze").x("x", 2, 3).ints("axes", 0, -1));
        l.add(of("Unsqueeze").label("opset 11").opset(11).x("x", 2, 3).attrs(b -> b.attr("axes", new long[] {1})));
        l.add(of("Transpose").x("x", 2, 3, 4).attrs(b -> b.attr("perm", 2, 0, 1)));
        l.add(of("Transpose").label("default perm").x("x", 2, 3, 4));
        l.add(of("Concat").x("a", 2, 3).x("b", 2, 2).frozen("c", GradCheck.Domain.ANY, 2, 1).x("d", 2, 4).attrs(b -> b.attr("axis", -1L)));
        l.add(of("Concat").label("run-time sizes").x("a", 2, 3).x("b", 1, 3).attrs(b -> b.attr("axis", 0L)).noShapes());
        l.add(of("Split").label("equal parts").x("x", 2, 6).attrs(b -> b.attr("axis", 1L)).outputs(3));
        l.add(of("Split").label("sizes").x("x", 5, 2).ints("split", 2, 3).outputs(2));
        l.add(of("Slice").label("pad path").x("x", 4, 5).ints("starts", 1, -3).ints("ends", 3, 100).ints("axes", 0, 1));
        l.add(of("Slice").label("steps").x("x", 4, 6).ints("starts", 5, 0).ints("ends", 0, 6).ints("axes", 1, 0).ints("steps", -2, 2));
        l.add(of("Slice").label("run-time shapes").x("x", 4, 5).ints("starts", 1).ints("ends", -1).ints("axes", 1).noShapes());
        l.add(of("Gather").label("axis 0, repeated rows").x("x", 4, 3).data("i", Tensor.ofLongs(new long[] {2, 2}, 1, 3, 1, -1)));
        l.add(of("Gather").label("axis 1, scalar index").x("x", 2, 4, 3).data("i", Tensor.ofLongs(new long[0], 2))
                .attrs(b -> b.attr("axis", 1L)));
        l.add(of("Gather").label("opset 11, distinct constant indices").opset(11).x("x", 4, 3)
                .constant("i", Tensor.ofLongs(new long[] {2}, 3, 0)));
        l.add(of("Expand").x("x", 3, 1).ints("shape", 2, 3, 4));
        l.add(of("Expand").label("run-time axes").x("x", 3, 1).ints("shape", 2, 1, 4).noShapes());
        l.add(of("Pad").label("constant pads").x("x", 2, 3).ints("pads", 1, 0, 2, 1));
        l.add(of("Pad").label("opset 18 axes").opset(18).x("x", 2, 3).ints("pads", 1, 2).none().ints("axes", 1));
        return l;
    }
}
