package io.peft4j.trainer.autodiff;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.OnnxChecker;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.Consumer;

/**
 * The generic gradient checker: a tiny graph around one node, a loss {@code Σ_k sum(out_k ⊙ W_k)}
 * with random weights {@code W_k} (so every output element gets its own random output gradient),
 * the gradient graph run in ONNX Runtime, compared with central finite differences of the same loss
 * run in ONNX Runtime. Inputs are drawn inside each op's domain; the seed is in every failure.
 *
 * <p>Tolerances: float64 uses h = 1e-6, |analytic − numeric| ≤ 1e-6 + 1e-5·|numeric| (truncation
 * error ~h²·f''' ≈ 1e-12, rounding ~1e-16·|L|/h ≈ 1e-10·|L|). float32 (ops ONNX Runtime only runs in
 * float) uses h = 1e-2 and 5e-3 + 2e-2·|numeric|: rounding of a float32 loss of ~100 O(1) terms is
 * ~1e-6·|L|, divided by 2h that is ~1e-3; truncation ~h²·f'''/6 ≈ 2e-5. A wrong rule is off by O(1).
 */
final class GradCheck {

    /** Placeholder for the batch dimension in input shapes; replaced by each batch size. */
    static final long B = -1;

    enum Domain { ANY, POSITIVE, AWAY_FROM_ZERO, DISTINCT, UNIT }

    record In(String name, long[] shape, Kind kind, Domain domain, Tensor value) {
    }

    enum Kind { TRAINABLE, FROZEN, DATA, CONSTANT }

    static final class Case {
        final String op;
        String label;
        long opset = 17;
        DataType dtype = DataType.DOUBLE;
        final List<In> inputs = new ArrayList<>();
        Consumer<Graph.NodeBuilder> attrs = b -> { };
        int outputs = 1;
        DataType outType;
        long[] batchSizes = {2};
        boolean declareShapes = true;
        long seed = 42;
        int maxCoords = 24;

        Case(String op) {
            this.op = op;
            this.label = op;
        }

        Case label(String l) {
            this.label = op + " " + l;
            return this;
        }

        Case opset(long v) {
            this.opset = v;
            return this;
        }

        Case f32() {
            this.dtype = DataType.FLOAT;
            return this;
        }

        /** A trainable input (a graph input that gets a gradient). */
        Case x(String name, long... shape) {
            return x(name, Domain.ANY, shape);
        }

        Case x(String name, Domain d, long... shape) {
            inputs.add(new In(name, shape, Kind.TRAINABLE, d, null));
            return this;
        }

        /** A frozen float input (an initializer, random values). */
        Case frozen(String name, Domain d, long... shape) {
            inputs.add(new In(name, shape, Kind.FROZEN, d, null));
            return this;
        }

        /** A non-float data input (fed at run time, no gradient). */
        Case data(String name, Tensor value) {
            inputs.add(new In(name, value.shape(), Kind.DATA, Domain.ANY, value));
            return this;
        }

        /** A constant (initializer) input. */
        Case constant(String name, Tensor value) {
            inputs.add(new In(name, value.shape(), Kind.CONSTANT, Domain.ANY, value));
            return this;
        }

        Case ints(String name, long... v) {
            return constant(name, Tensor.ofLongs(new long[] {v.length}, v));
        }

        /** An omitted optional input. */
        Case none() {
            inputs.add(new In("", new long[0], Kind.CONSTANT, Domain.ANY, null));
            return this;
        }

        Case attrs(Consumer<Graph.NodeBuilder> a) {
            this.attrs = a;
            return this;
        }

        /** The element type of the outputs when not the inputs' one. */
        Case outType(DataType t) {
            this.outType = t;
            return this;
        }

        Case outputs(int n) {
            this.outputs = n;
            return this;
        }

        Case batches(long... sizes) {
            this.batchSizes = sizes;
            return this;
        }

        /** Declares inputs without shapes, so that rules take their run-time-shape paths. */
        Case noShapes() {
            this.declareShapes = false;
            return this;
        }

        Case seed(long s) {
            this.seed = s;
            return this;
        }

        @Override
        public String toString() {
            return label;
        }
    }

    static Case of(String op) {
        return new Case(op);
    }

    // ---------------------------------------------------------------- running a case

    static Model forwardModel(Case c) {
        Model m = new Model("check_" + c.op, c.opset);
        Graph g = m.graph();
        Random r = new Random(c.seed ^ 0x5eed);
        List<String> ins = new ArrayList<>();
        for (In in : c.inputs) {
            ins.add(in.name());
            switch (in.kind()) {
                case TRAINABLE -> g.addInput(declare(in.name(), c.dtype, in.shape(), c.declareShapes));
                case DATA -> g.addInput(declare(in.name(), in.value().dtype(), in.shape(), c.declareShapes));
                case FROZEN -> g.setInitializer(in.name(), random(r, in.domain(), concrete(in.shape(), 2), c.dtype));
                case CONSTANT -> {
                    if (!in.name().isEmpty()) {
                        Tensor v = in.value().dtype().isFloatingPoint() ? in.value().to(c.dtype) : in.value();
                        g.setInitializer(in.name(), v);
                    }
                }
            }
        }
        Graph.NodeBuilder b = g.build(c.op).in(ins.toArray(new String[0]));
        String[] outs = new String[c.outputs];
        for (int i = 0; i < outs.length; i++) {
            outs[i] = "y" + i;
        }
        b.outputs(outs);
        c.attrs.accept(b);
        b.add();
        for (String o : outs) {
            g.addOutput(ValueInfos.tensor(o, c.outType != null ? c.outType : c.dtype, (Object[]) null));
        }
        return m;
    }

    private static io.peft4j.core.onnx.proto.Onnx.ValueInfoProto declare(String name, DataType dt, long[] shape, boolean withShape) {
        Object[] d = new Object[shape.length];
        for (int i = 0; i < d.length; i++) {
            d[i] = !withShape ? null : shape[i] == B ? (Object) "N" : (Object) shape[i];
        }
        return ValueInfos.tensor(name, dt, d);
    }

    static long[] concrete(long[] shape, long batch) {
        long[] s = shape.clone();
        for (int i = 0; i < s.length; i++) {
            if (s[i] == B) {
                s[i] = batch;
            }
        }
        return s;
    }

    static Tensor random(Random r, Domain d, long[] shape, DataType dt) {
        int n = (int) Tensor.numel(shape);
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = switch (d) {
                case ANY -> r.nextGaussian();
                case POSITIVE -> 0.5 + 1.5 * r.nextDouble();
                case UNIT -> 0.1 + 0.8 * r.nextDouble();
                case AWAY_FROM_ZERO -> (r.nextBoolean() ? 1 : -1) * (0.2 + r.nextDouble());
                case DISTINCT -> 0;
            };
        }
        if (d == Domain.DISTINCT) {
            // a shuffled ramp: every pair of values is at least 0.05 apart
            List<Integer> order = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                order.add(i);
            }
            java.util.Collections.shuffle(order, r);
            for (int i = 0; i < n; i++) {
                v[i] = -2 + 0.05 * order.get(i) + 0.001 * r.nextDouble();
            }
        }
        return Tensor.ofDoubles(shape, v).to(dt);
    }

    /** The weighted-sum loss over every output of the node. */
    static Loss weightedSum(int outputs) {
        return lc -> {
            String total = null;
            for (int i = 0; i < outputs; i++) {
                String y = lc.modelOutput("y" + i);
                String w = lc.addLabelInput("w" + i, lc.dtype(y), new Object[lc.rank(y)]);
                String s = lc.reduce("ReduceSum", lc.op("Mul", y, w), null, false);
                total = total == null ? s : lc.op("Add", total, s);
            }
            return total;
        };
    }

    /** Builds the gradient graph once and checks it at every batch size of the case. */
    static void check(Case c) {
        Model forward = forwardModel(c);
        // declare the outputs' ranks (the ONNX checker wants a shape on graph outputs)
        Map<String, Tensor> probe = new LinkedHashMap<>();
        Random r = new Random(c.seed);
        for (In in : c.inputs) {
            if (in.kind() == Kind.TRAINABLE) {
                probe.put(in.name(), random(r, in.domain(), concrete(in.shape(), c.batchSizes[0]), c.dtype));
            } else if (in.kind() == Kind.DATA) {
                probe.put(in.name(), in.value());
            }
        }
        Map<String, Tensor> shapes = io.peft4j.core.testkit.Ort.run(forward, probe);
        for (int i = 0; i < c.outputs; i++) {
            forward.graph().removeOutput("y" + i);
            Tensor y = shapes.get("y" + i);
            forward.graph().addOutput(ValueInfos.tensor("y" + i, y.dtype(), new Object[y.rank()]));
        }
        OnnxChecker.check(forward);
        List<String> trainable = c.inputs.stream().filter(i -> i.kind() == Kind.TRAINABLE).map(In::name).toList();
        GradientGraph gg = GradientBuilder.build(forward, trainable, weightedSum(c.outputs));
        OnnxChecker.check(gg.model());
        boolean f64 = c.dtype == DataType.DOUBLE;
        try (Session fwd = new Session(forward, 1, f64); Session grad = new Session(gg.model(), 1, f64)) {
            for (long batch : c.batchSizes) {
                checkAt(c, gg, fwd, grad, batch);
            }
        }
    }

    private static void checkAt(Case c, GradientGraph gg, Session fwd, Session grad, long batch) {
        long seed = c.seed * 31 + batch;
        Random r = new Random(seed);
        Map<String, Tensor> feeds = new LinkedHashMap<>();
        for (In in : c.inputs) {
            if (in.kind() == Kind.TRAINABLE) {
                feeds.put(in.name(), random(r, in.domain(), concrete(in.shape(), batch), c.dtype));
            } else if (in.kind() == Kind.DATA) {
                feeds.put(in.name(), in.value());
            }
        }
        Map<String, Tensor> outs = fwd.run(feeds);
        for (int i = 0; i < c.outputs; i++) {
            Tensor y = outs.get("y" + i);
            feeds.put("w" + i, random(r, Domain.ANY, y.shape(), y.dtype()));
        }
        Map<String, Tensor> result = grad.run(feeds);
        // the loss's precision decides (a Cast to float makes a float loss of double inputs)
        boolean f64 = c.dtype == DataType.DOUBLE && (c.outType == null || c.outType == DataType.DOUBLE);
        double h = f64 ? 1e-6 : 1e-2;
        double atol = f64 ? 1e-6 : 5e-3;
        double rtol = f64 ? 1e-5 : 2e-2;
        for (String t : gg.trainable()) {
            Tensor analytic = result.get(gg.gradientOf(t));
            Tensor x = feeds.get(t);
            if (!Arrays.equals(analytic.shape(), x.shape())) {
                throw new AssertionError(c + " (seed " + seed + ", batch " + batch + "): gradient of " + t + " has shape "
                        + Arrays.toString(analytic.shape()) + ", the tensor " + Arrays.toString(x.shape()));
            }
            for (int idx : coordinates(r, (int) x.numel(), c.maxCoords)) {
                double up = lossWith(grad, gg, feeds, t, x, idx, h);
                double down = lossWith(grad, gg, feeds, t, x, idx, -h);
                double numeric = (up - down) / (2 * h);
                double a = analytic.getDouble(idx);
                if (!(Math.abs(a - numeric) <= atol + rtol * Math.abs(numeric))) {
                    throw new AssertionError(c + " (seed " + seed + ", batch " + batch + ", " + c.dtype + "): d loss / d "
                            + t + "[" + idx + "] = " + a + " analytic, " + numeric + " by central differences");
                }
            }
        }
    }

    private static double lossWith(Session s, GradientGraph gg, Map<String, Tensor> feeds, String t, Tensor x, int idx, double h) {
        double[] v = x.toDoubleArray();
        v[idx] += h;
        Map<String, Tensor> f = new HashMap<>(feeds);
        f.put(t, Tensor.ofDoubles(x.shape(), v).to(x.dtype()));
        return s.run(f, Set.of(gg.loss())).get(gg.loss()).getDouble(0);
    }

    private static int[] coordinates(Random r, int n, int max) {
        if (n <= max) {
            int[] all = new int[n];
            for (int i = 0; i < n; i++) {
                all[i] = i;
            }
            return all;
        }
        return r.ints(0, n).distinct().limit(max).toArray();
    }

    private GradCheck() {
    }
}
