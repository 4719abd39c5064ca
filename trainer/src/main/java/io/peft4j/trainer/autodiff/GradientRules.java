package io.peft4j.trainer.autodiff;

import io.peft4j.core.Peft4jException;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * The one table of gradient rules, keyed by (domain, op type, first opset version the entry applies
 * to). An entry is a {@link Kind#RULE rule}, an explicit {@link Kind#NO_GRADIENT "no gradient"}
 * (outputs that carry none: shapes, comparisons, indices, constants) or an explicit
 * {@link Kind#NOT_DIFFERENTIABLE "must not be differentiated"} (an error with a reason when the op
 * lies on a gradient path). An op without an entry on a gradient path is an error too.
 */
public final class GradientRules {

    /** What an entry says about its op. */
    public enum Kind { RULE, NO_GRADIENT, NOT_DIFFERENTIABLE }

    /**
     * One entry of the table.
     *
     * @param domain       operator domain, {@code ""} for ONNX
     * @param opType       operator type
     * @param sinceVersion the first opset version of {@code domain} the entry applies to
     * @param kind         rule, no gradient, or must not be differentiated
     * @param rule         the rule (kind RULE), else null
     * @param reason       why (kinds other than RULE), else null
     */
    public record Entry(String domain, String opType, int sinceVersion, Kind kind, GradientRule rule, String reason) {
    }

    private final Map<String, TreeMap<Integer, Entry>> table = new LinkedHashMap<>();

    public GradientRules() {
    }

    /** The standard table: every rule peft4j ships. */
    public static GradientRules standard() {
        GradientRules r = new GradientRules();
        // element-wise arithmetic (broadcasting)
        r.rule("Add", 7, ElementwiseRules::add);
        r.rule("Sub", 7, ElementwiseRules::sub);
        r.rule("Mul", 7, ElementwiseRules::mul);
        r.rule("Div", 7, ElementwiseRules::div);
        r.rule("Pow", 7, ElementwiseRules::pow);
        r.rule("Sum", 8, ElementwiseRules::sum);
        r.rule("Where", 9, ElementwiseRules::where);
        // element-wise unary
        r.rule("Neg", 6, ElementwiseRules::neg);
        r.rule("Abs", 6, ElementwiseRules::abs);
        r.rule("Sqrt", 6, ElementwiseRules::sqrt);
        r.rule("Reciprocal", 6, ElementwiseRules::reciprocal);
        r.rule("Exp", 6, ElementwiseRules::exp);
        r.rule("Log", 6, ElementwiseRules::log);
        r.rule("Erf", 9, ElementwiseRules::erf);
        r.rule("Tanh", 6, ElementwiseRules::tanh);
        r.rule("Sigmoid", 6, ElementwiseRules::sigmoid);
        r.rule("Softplus", 1, ElementwiseRules::softplus);
        r.rule("Relu", 6, ElementwiseRules::relu);
        r.rule("LeakyRelu", 6, ElementwiseRules::leakyRelu);
        r.rule("Clip", 11, ElementwiseRules::clip);
        r.rule("HardSigmoid", 6, ElementwiseRules::hardSigmoid);
        r.rule("HardSwish", 14, ElementwiseRules::hardSwish);
        r.rule("Gelu", 20, ElementwiseRules::gelu);
        r.rule("Identity", 1, ElementwiseRules::identity);
        r.rule("Dropout", 7, ElementwiseRules::dropout);
        r.rule("Cast", 6, ElementwiseRules::cast);
        // softmax and reductions
        r.rule("Softmax", 1, ReduceRules::softmaxCoerced);
        r.rule("Softmax", 13, ReduceRules::softmax);
        r.rule("LogSoftmax", 1, ReduceRules::logSoftmaxCoerced);
        r.rule("LogSoftmax", 13, ReduceRules::logSoftmax);
        r.rule("ReduceSum", 1, ReduceRules::reduceSum);
        r.rule("ReduceMean", 1, ReduceRules::reduceMean);
        // linear algebra, convolution, pooling, normalization
        r.rule("MatMul", 1, NnRules::matMul);
        r.rule("Gemm", 7, NnRules::gemm);
        r.rule("Conv", 1, NnRules::conv);
        r.rule("MaxPool", 12, NnRules::maxPool);
        r.rule("AveragePool", 7, NnRules::averagePool);
        r.rule("GlobalAveragePool", 1, NnRules::globalAveragePool);
        r.rule("BatchNormalization", 9, NnRules::batchNorm);
        r.rule("LayerNormalization", 17, NnRules::layerNorm);
        // shape and data movement
        r.rule("Flatten", 1, ShapeRules::reshapeBack);
        r.rule("Reshape", 5, ShapeRules::reshapeBack);
        r.rule("Squeeze", 1, ShapeRules::reshapeBack);
        r.rule("Unsqueeze", 1, ShapeRules::reshapeBack);
        r.rule("Transpose", 1, ShapeRules::transpose);
        r.rule("Concat", 4, ShapeRules::concat);
        r.rule("Split", 2, ShapeRules::split);
        r.rule("Slice", 10, ShapeRules::slice);
        r.rule("Gather", 1, ShapeRules::gather);
        r.rule("Expand", 8, ShapeRules::expand);
        r.rule("Pad", 11, ShapeRules::pad);

        // outputs that carry no gradient
        for (String op : List.of("Shape", "Size", "ConstantOfShape", "Constant", "Equal", "Less", "Greater",
                "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "Range", "ArgMax", "ArgMin", "NonZero",
                "OneHot", "IsNaN", "IsInf", "Sign", "Floor", "Ceil", "Round", "EyeLike", "RandomNormal",
                "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli")) {
            r.noGradient(op, 1, "its outputs are integers, booleans, piecewise constant or independent of its inputs");
        }
        // must not be differentiated
        r.notDifferentiable("If", 1, "control flow is not differentiated; export the model without it");
        r.notDifferentiable("Loop", 1, "control flow is not differentiated; export the model without it");
        r.notDifferentiable("Scan", 1, "control flow is not differentiated; export the model without it");
        r.notDifferentiable("QuantizeLinear", 1, "quantized graphs are not trained; train on the float model");
        r.notDifferentiable("DequantizeLinear", 1, "quantized graphs are not trained; train on the float model");
        r.notDifferentiable("DynamicQuantizeLinear", 1, "quantized graphs are not trained; train on the float model");
        return r;
    }

    private static String key(String domain, String opType) {
        String d = domain == null || domain.equals("ai.onnx") ? "" : domain;
        return d + ":" + opType;
    }

    private void put(Entry e) {
        TreeMap<Integer, Entry> versions = table.computeIfAbsent(key(e.domain(), e.opType()), k -> new TreeMap<>());
        if (versions.containsKey(e.sinceVersion())) {
            throw Peft4jException.invalid("a gradient entry for " + e.opType() + " since opset " + e.sinceVersion()
                    + " is already registered");
        }
        versions.put(e.sinceVersion(), e);
    }

    /** Registers a rule for an ONNX op from opset {@code since} on; refused when one is registered there. */
    public GradientRules rule(String opType, int since, GradientRule rule) {
        return rule("", opType, since, rule);
    }

    public GradientRules rule(String domain, String opType, int since, GradientRule rule) {
        put(new Entry(domain, opType, since, Kind.RULE, rule, null));
        return this;
    }

    public GradientRules noGradient(String opType, int since, String reason) {
        put(new Entry("", opType, since, Kind.NO_GRADIENT, null, reason));
        return this;
    }

    public GradientRules notDifferentiable(String opType, int since, String reason) {
        put(new Entry("", opType, since, Kind.NOT_DIFFERENTIABLE, null, reason));
        return this;
    }

    /** The entry for an op at the model's opset of its domain: the newest one not newer than it. */
    public Optional<Entry> lookup(String domain, String opType, long opset) {
        TreeMap<Integer, Entry> versions = table.get(key(domain, opType));
        if (versions == null) {
            return Optional.empty();
        }
        Map.Entry<Integer, Entry> e = versions.floorEntry((int) Math.min(opset, Integer.MAX_VALUE));
        return e == null ? Optional.empty() : Optional.of(e.getValue());
    }

    /** Every entry, in registration order of op types. */
    public List<Entry> entries() {
        List<Entry> out = new ArrayList<>();
        for (TreeMap<Integer, Entry> v : table.values()) {
            out.addAll(v.values());
        }
        return Collections.unmodifiableList(out);
    }
}
