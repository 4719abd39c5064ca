package io.peft4j.trainer.autodiff;

import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.Optional;

/** Gradient rules of element-wise ops; binary ones sum the gradient over broadcast axes. */
final class ElementwiseRules {

    private ElementwiseRules() {
    }

    static void add(GradContext c) {
        String g = c.outGrad(0);
        for (int i = 0; i < 2; i++) {
            if (c.needsGrad(i)) {
                c.setGrad(i, c.unbroadcast(g, i));
            }
        }
    }

    static void sub(GradContext c) {
        String g = c.outGrad(0);
        if (c.needsGrad(0)) {
            c.setGrad(0, c.unbroadcast(g, 0));
        }
        if (c.needsGrad(1)) {
            c.setGrad(1, c.unbroadcast(c.op("Neg", g), 1));
        }
    }

    static void sum(GradContext c) {
        String g = c.outGrad(0);
        for (int i = 0; i < c.node().inputs().size(); i++) {
            if (c.needsGrad(i)) {
                c.setGrad(i, c.unbroadcast(g, i));
            }
        }
    }

    static void mul(GradContext c) {
        String g = c.outGrad(0);
        if (c.needsGrad(0)) {
            c.setGrad(0, c.unbroadcast(c.op("Mul", g, c.input(1)), 0));
        }
        if (c.needsGrad(1)) {
            c.setGrad(1, c.unbroadcast(c.op("Mul", g, c.input(0)), 1));
        }
    }

    static void div(GradContext c) {
        String g = c.outGrad(0);
        String b = c.input(1);
        if (c.needsGrad(0)) {
            c.setGrad(0, c.unbroadcast(c.op("Div", g, b), 0));
        }
        if (c.needsGrad(1)) {
            // d(a/b)/db = -y/b
            c.setGrad(1, c.unbroadcast(c.op("Neg", c.op("Div", c.op("Mul", g, c.output(0)), b)), 1));
        }
    }

    static void pow(GradContext c) {
        String g = c.outGrad(0);
        String x = c.input(0);
        String p = c.input(1);
        if (c.needsGrad(0)) {
            Optional<Tensor> pc = c.constant(p);
            String local;
            if (pc.isPresent() && isAll(pc.get(), 2.0)) {
                local = c.op("Mul", x, c.scalarLike(2.0, x));
            } else if (pc.isPresent() && isAll(pc.get(), 1.0)) {
                local = null;
            } else {
                String pe = c.dtype(p) == c.dtype(x) ? p : c.cast(p, c.dtype(x));
                local = c.op("Mul", pe, c.op("Pow", x, c.op("Sub", pe, c.scalarLike(1.0, x))));
            }
            c.setGrad(0, c.unbroadcast(local == null ? g : c.op("Mul", g, local), 0));
        }
        if (c.needsGrad(1)) {
            // d(x^p)/dp = y·ln(x)
            c.setGrad(1, c.unbroadcast(c.op("Mul", c.op("Mul", g, c.output(0)), c.op("Log", x)), 1));
        }
    }

    private static boolean isAll(Tensor t, double v) {
        if (!t.dtype().isFloatingPoint() && t.dtype() != DataType.INT64 && t.dtype() != DataType.INT32) {
            return false;
        }
        for (long i = 0; i < t.numel(); i++) {
            if (t.getDouble(i) != v) {
                return false;
            }
        }
        return t.numel() > 0;
    }

    static void where(GradContext c) {
        String g = c.outGrad(0);
        String cond = c.input(0);
        String zero = c.scalarLike(0.0, c.output(0));
        if (c.needsGrad(1)) {
            c.setGrad(1, c.unbroadcast(c.op("Where", cond, g, zero), 1));
        }
        if (c.needsGrad(2)) {
            c.setGrad(2, c.unbroadcast(c.op("Where", cond, zero, g), 2));
        }
    }

    static void neg(GradContext c) {
        c.setGrad(0, c.op("Neg", c.outGrad(0)));
    }

    static void abs(GradContext c) {
        c.setGrad(0, c.op("Mul", c.outGrad(0), c.op("Sign", c.input(0))));
    }

    static void sqrt(GradContext c) {
        // d sqrt(x) = 1 / (2 y)
        c.setGrad(0, c.op("Div", c.op("Mul", c.outGrad(0), c.scalarLike(0.5, c.output(0))), c.output(0)));
    }

    static void reciprocal(GradContext c) {
        String y = c.output(0);
        c.setGrad(0, c.op("Neg", c.op("Mul", c.outGrad(0), c.op("Mul", y, y))));
    }

    static void exp(GradContext c) {
        c.setGrad(0, c.op("Mul", c.outGrad(0), c.output(0)));
    }

    static void log(GradContext c) {
        c.setGrad(0, c.op("Div", c.outGrad(0), c.input(0)));
    }

    static void erf(GradContext c) {
        String x = c.input(0);
        String local = c.op("Mul", c.scalarLike(2.0 / Math.sqrt(Math.PI), x), c.op("Exp", c.op("Neg", c.op("Mul", x, x))));
        c.setGrad(0, c.op("Mul", c.outGrad(0), local));
    }

    static void tanh(GradContext c) {
        String y = c.output(0);
        c.setGrad(0, c.op("Mul", c.outGrad(0), c.op("Sub", c.scalarLike(1.0, y), c.op("Mul", y, y))));
    }

    static void sigmoid(GradContext c) {
        String y = c.output(0);
        c.setGrad(0, c.op("Mul", c.outGrad(0), c.op("Mul", y, c.op("Sub", c.scalarLike(1.0, y), y))));
    }

    static void softplus(GradContext c) {
        c.setGrad(0, c.op("Mul", c.outGrad(0), c.op("Sigmoid", c.input(0))));
    }

    static void relu(GradContext c) {
        String y = c.output(0);
        c.setGrad(0, c.op("Where", c.op("Greater", y, c.scalarLike(0.0, y)), c.outGrad(0), c.scalarLike(0.0, y)));
    }

    static void leakyRelu(GradContext c) {
        String x = c.input(0);
        String g = c.outGrad(0);
        float alpha = c.attrFloat("alpha", 0.01f);
        String scaled = c.op("Mul", g, c.scalarLike(alpha, x));
        c.setGrad(0, c.op("Where", c.op("Greater", x, c.scalarLike(0.0, x)), g, scaled));
    }

    static void clip(GradContext c) {
        String x = c.input(0);
        String cond = null;
        if (c.hasInput(1)) {
            cond = c.op("Not", c.op("Less", x, c.input(1)));
        }
        if (c.hasInput(2)) {
            String upper = c.op("Not", c.op("Greater", x, c.input(2)));
            cond = cond == null ? upper : c.op("And", cond, upper);
        }
        c.setGrad(0, cond == null ? c.outGrad(0) : c.op("Where", cond, c.outGrad(0), c.scalarLike(0.0, x)));
    }

    static void hardSigmoid(GradContext c) {
        String y = c.output(0);
        float alpha = c.attrFloat("alpha", 0.2f);
        String inside = c.op("And", c.op("Greater", y, c.scalarLike(0.0, y)), c.op("Less", y, c.scalarLike(1.0, y)));
        c.setGrad(0, c.op("Where", inside, c.op("Mul", c.outGrad(0), c.scalarLike(alpha, y)), c.scalarLike(0.0, y)));
    }

    static void hardSwish(GradContext c) {
        // y = x·clamp(x/6 + 1/2, 0, 1): dy/dx = 0 below -3, 1 above 3, x/3 + 1/2 between
        String x = c.input(0);
        String mid = c.op("Add", c.op("Div", x, c.scalarLike(3.0, x)), c.scalarLike(0.5, x));
        String upper = c.op("Where", c.op("Greater", x, c.scalarLike(3.0, x)), c.scalarLike(1.0, x), mid);
        String d = c.op("Where", c.op("Less", x, c.scalarLike(-3.0, x)), c.scalarLike(0.0, x), upper);
        c.setGrad(0, c.op("Mul", c.outGrad(0), d));
    }

    static void gelu(GradContext c) {
        String x = c.input(0);
        String local;
        if (c.attrString("approximate", "none").equals("tanh")) {
            // y = x/2·(1 + tanh(u)), u = √(2/π)(x + 0.044715x³)
            double k = Math.sqrt(2.0 / Math.PI);
            String x2 = c.op("Mul", x, x);
            String u = c.op("Mul", c.scalarLike(k, x), c.op("Add", x, c.op("Mul", c.scalarLike(0.044715, x), c.op("Mul", x2, x))));
            String t = c.op("Tanh", u);
            String du = c.op("Mul", c.scalarLike(k, x), c.op("Add", c.scalarLike(1.0, x), c.op("Mul", c.scalarLike(3 * 0.044715, x), x2)));
            String left = c.op("Mul", c.scalarLike(0.5, x), c.op("Add", c.scalarLike(1.0, x), t));
            String right = c.op("Mul", c.op("Mul", c.scalarLike(0.5, x), x), c.op("Mul", c.op("Sub", c.scalarLike(1.0, x), c.op("Mul", t, t)), du));
            local = c.op("Add", left, right);
        } else {
            // Φ(x) + x·φ(x)
            String cdf = c.op("Mul", c.scalarLike(0.5, x), c.op("Add", c.scalarLike(1.0, x),
                    c.op("Erf", c.op("Mul", x, c.scalarLike(1 / Math.sqrt(2), x)))));
            String pdf = c.op("Mul", c.scalarLike(1 / Math.sqrt(2 * Math.PI), x),
                    c.op("Exp", c.op("Mul", c.op("Mul", x, x), c.scalarLike(-0.5, x))));
            local = c.op("Add", cdf, c.op("Mul", x, pdf));
        }
        c.setGrad(0, c.op("Mul", c.outGrad(0), local));
    }

    static void identity(GradContext c) {
        c.setGrad(0, c.outGrad(0));
    }

    static void dropout(GradContext c) {
        if (c.hasInput(2)) {
            Optional<Tensor> mode = c.constant(c.input(2));
            if (mode.isEmpty() || mode.get().getDouble(0) != 0) {
                throw c.unsupported("Dropout is differentiated in inference mode only (training_mode must be a false constant)");
            }
        }
        c.setGrad(0, c.outGrad(0));
    }

    static void cast(GradContext c) {
        DataType from = c.dtype(c.input(0));
        DataType to = c.dtype(c.output(0));
        if (!from.isFloatingPoint() || !to.isFloatingPoint()) {
            return;
        }
        c.setGrad(0, from == to ? c.outGrad(0) : c.cast(c.outGrad(0), from));
    }
}
