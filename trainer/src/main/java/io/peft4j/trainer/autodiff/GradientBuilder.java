package io.peft4j.trainer.autodiff;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.LiftConstants;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reverse-mode differentiation of an ONNX model, written as ONNX: builds one model that computes
 * the loss, the model's outputs and the gradient of the loss with respect to each trainable tensor.
 *
 * <p>The trainable tensors (initializers or graph inputs) become graph inputs; the loss is appended
 * as graph nodes ({@link Loss}); then, in reverse topological order, every node that lies on a path
 * from a trainable tensor to the loss gets its {@link GradientRule} applied, and gradients that
 * meet at a value are summed. Frozen tensors get no gradient and nodes off those paths get none
 * either. Gradient outputs are named {@code <tensor>_grad} (as in ONNX Runtime's training
 * artifacts; made unique when taken). An op on a gradient path with no rule is an error naming the
 * node, the op and a trainable tensor that needs it.
 *
 * <p>The model given is not changed. The opset is kept; models older than opset 11 are refused.
 */
public final class GradientBuilder {

    /** The oldest default-domain opset whose forms the rules emit. */
    public static final long MIN_OPSET = 11;

    private final GradientRules rules;

    public GradientBuilder() {
        this(GradientRules.standard());
    }

    public GradientBuilder(GradientRules rules) {
        this.rules = rules;
    }

    /** Builds the training graph with the standard rules. */
    public static GradientGraph build(Model model, Collection<String> trainable, Loss loss) {
        return new GradientBuilder().training(model, trainable, loss);
    }

    /** The suffix of gradient output names. */
    public static String gradientName(String tensor) {
        return tensor + "_grad";
    }

    public GradientGraph training(Model original, Collection<String> trainableNames, Loss loss) {
        if (trainableNames.isEmpty()) {
            throw Peft4jException.invalid("no trainable tensors given");
        }
        long opset = original.opset("");
        if (opset < MIN_OPSET) {
            throw Peft4jException.unsupported("the model imports ONNX opset " + opset + "; gradients are built for opset "
                    + MIN_OPSET + " and later (convert the model first)");
        }
        Model model = OnnxIO.read(OnnxIO.toBytes(original), "copy of model '" + original.graph().name() + "'");
        LiftConstants.run(model);
        Graph g = model.graph();
        List<String> outputs = g.outputNames();
        List<String> trainable = new ArrayList<>(new LinkedHashSet<>(trainableNames));

        DataType floatType = null;
        for (String t : trainable) {
            DataType dt = makeInput(g, t);
            if (!dt.isFloatingPoint()) {
                throw Peft4jException.invalid("trainable tensor '" + t + "' is " + dt + "; only floating-point tensors train");
            }
            if (floatType != null && floatType != dt) {
                throw Peft4jException.unsupported("trainable tensors of mixed types (" + floatType + ", " + dt
                        + ") are not supported");
            }
            floatType = dt;
        }

        Map<String, String> constants = new HashMap<>();
        Map<String, String> shapes = new HashMap<>();
        Emitter forward = new Emitter(g, opset, TypeInference.run(g, opset), floatType, constants, shapes);
        LossContext lc = new LossContext(forward);
        String lossValue = loss.append(lc);
        if (lossValue == null || (g.producer(lossValue).isEmpty() && !g.isGraphInput(lossValue))) {
            throw Peft4jException.invalid("the loss did not produce a value");
        }

        TypeInference types = TypeInference.run(g, opset);
        Emitter emitter = new Emitter(g, opset, types, floatType, constants, shapes);
        List<Node> order = g.topologicalOrder();
        Set<String> trainableSet = new HashSet<>(trainable);

        // values that depend on a trainable tensor through differentiable ops
        Set<String> dependent = new HashSet<>(trainable);
        for (Node n : order) {
            boolean reads = false;
            for (String in : n.inputs()) {
                reads |= !in.isEmpty() && dependent.contains(in);
            }
            if (!reads) {
                continue;
            }
            GradientRules.Entry e = rules.lookup(n.domain(), n.opType(), model.opset(n.domain())).orElse(null);
            if (e != null && e.kind() == GradientRules.Kind.NO_GRADIENT) {
                continue;
            }
            for (String o : n.outputs()) {
                DataType dt = types.type(o).dtype();
                if (!o.isEmpty() && (dt == null || dt.isFloatingPoint())) {
                    dependent.add(o);
                }
            }
        }
        // values the loss depends on
        Set<String> influencing = new HashSet<>();
        influencing.add(lossValue);
        for (int i = order.size() - 1; i >= 0; i--) {
            Node n = order.get(i);
            boolean feeds = false;
            for (String o : n.outputs()) {
                feeds |= influencing.contains(o);
            }
            if (feeds) {
                for (String in : n.inputs()) {
                    if (!in.isEmpty()) {
                        influencing.add(in);
                    }
                }
            }
        }
        for (String t : trainable) {
            if (!influencing.contains(t)) {
                throw Peft4jException.invalid("trainable tensor '" + t + "' does not influence the loss");
            }
        }

        Map<String, List<String>> contributions = new HashMap<>();
        contributions.computeIfAbsent(lossValue, k -> new ArrayList<>()).add(emitter.scalarLike(1.0, lossValue));
        for (int i = order.size() - 1; i >= 0; i--) {
            Node n = order.get(i);
            String[] outGrads = new String[n.outputs().size()];
            boolean any = false;
            for (int k = 0; k < outGrads.length; k++) {
                String o = n.output(k);
                if (!o.isEmpty() && dependent.contains(o) && influencing.contains(o) && contributions.containsKey(o)) {
                    outGrads[k] = total(emitter, o, contributions);
                    any = true;
                }
            }
            if (!any) {
                continue;
            }
            boolean[] needs = new boolean[n.inputs().size()];
            boolean anyNeed = false;
            for (int k = 0; k < needs.length; k++) {
                String in = n.input(k);
                needs[k] = !in.isEmpty() && dependent.contains(in) && influencing.contains(in);
                anyNeed |= needs[k];
            }
            if (!anyNeed) {
                continue;
            }
            GradientRules.Entry e = rules.lookup(n.domain(), n.opType(), model.opset(n.domain())).orElse(null);
            if (e == null || e.kind() != GradientRules.Kind.RULE) {
                String why = e == null
                        ? "no gradient rule is registered for op " + n.opType() + " at opset " + model.opset(n.domain())
                        : "op " + n.opType() + " must not be differentiated: " + e.reason();
                throw Peft4jException.unsupported(Emitter.describe(n) + " lies on the gradient path of trainable tensor '"
                        + trainableBehind(g, n, trainableSet, dependent) + "', but " + why);
            }
            GradContext c = new GradContext(emitter, n, outGrads, needs);
            e.rule().backward(c);
            String[] inGrads = c.inputGrads();
            for (int k = 0; k < inGrads.length; k++) {
                if (inGrads[k] != null) {
                    contributions.computeIfAbsent(n.input(k), x -> new ArrayList<>()).add(inGrads[k]);
                }
            }
        }

        Map<String, String> gradOutputs = new LinkedHashMap<>();
        for (String t : trainable) {
            if (!contributions.containsKey(t)) {
                throw Peft4jException.invalid("trainable tensor '" + t + "' reaches the loss only through ops that carry "
                        + "no gradient");
            }
            String total = total(emitter, t, contributions);
            String name = g.freshName(gradientName(t));
            g.build("Identity").name("grad/" + t).in(total).outputs(name).add();
            ValueType tt = types.type(t);
            g.addOutput(valueInfo(name, tt.withDtype(floatType)));
            gradOutputs.put(t, name);
        }
        if (!g.isGraphOutput(lossValue)) {
            g.addOutput(ValueInfos.tensor(lossValue, emitter.dtype(lossValue)));
        }
        FoldChannelScales.run(g, emitter::type);
        g.sortTopologically();
        return new GradientGraph(model, lossValue, outputs, gradOutputs, lc.labelInputs(), trainable);
    }

    /** The sum of the contributions to {@code value}'s gradient (one node when several meet). */
    private static String total(Emitter e, String value, Map<String, List<String>> contributions) {
        List<String> l = contributions.get(value);
        if (l.size() > 1) {
            String s = e.op("Sum", l.toArray(new String[0]));
            e.typed(s, e.type(value));
            l.clear();
            l.add(s);
        }
        return l.get(0);
    }

    private static ValueInfoProto valueInfo(String name, ValueType t) {
        if (!t.hasRank()) {
            return ValueInfos.tensor(name, t.dtype(), (Object[]) null);
        }
        Object[] d = new Object[t.rank()];
        for (int i = 0; i < d.length; i++) {
            d[i] = t.dim(i) >= 0 ? (Object) t.dim(i) : null;
        }
        return ValueInfos.tensor(name, t.dtype(), d);
    }

    /** Makes a trainable tensor a graph input (an initializer moves); returns its element type. */
    private static DataType makeInput(Graph g, String t) {
        if (g.hasInitializer(t)) {
            // an initializer (or an input with a default value) becomes a plain graph input
            Tensor value = g.initializer(t);
            String tmp = g.freshName(t + "__moving");
            g.replaceAllUses(t, tmp);
            g.removeInitializer(t);
            if (!g.isGraphInput(t)) {
                Object[] dims = new Object[value.rank()];
                for (int i = 0; i < dims.length; i++) {
                    dims[i] = value.dim(i);
                }
                g.addInput(ValueInfos.tensor(t, value.dtype(), dims));
            }
            g.replaceAllUses(tmp, t);
            return value.dtype();
        }
        for (ValueInfoProto v : g.inputs()) {
            if (v.getName().equals(t)) {
                return ValueInfos.elementType(v).orElseThrow(() -> Peft4jException.invalid(
                        "graph input '" + t + "' declares no element type"));
            }
        }
        throw Peft4jException.notFound("'" + t + "' is neither an initializer nor a graph input of the model");
    }

    /** A trainable tensor from which {@code n} is reached (for error messages). */
    private static String trainableBehind(Graph g, Node n, Set<String> trainable, Set<String> dependent) {
        ArrayDeque<String> queue = new ArrayDeque<>();
        Set<String> seen = new HashSet<>();
        for (String in : n.inputs()) {
            if (dependent.contains(in)) {
                queue.add(in);
            }
        }
        while (!queue.isEmpty()) {
            String v = queue.poll();
            if (!seen.add(v)) {
                continue;
            }
            if (trainable.contains(v)) {
                return v;
            }
            g.producer(v).ifPresent(p -> {
                for (String in : p.inputs()) {
                    if (dependent.contains(in)) {
                        queue.add(in);
                    }
                }
            });
        }
        return trainable.iterator().next();
    }
}
