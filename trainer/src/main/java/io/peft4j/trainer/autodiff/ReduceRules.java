package io.peft4j.trainer.autodiff;

/** Gradient rules of Softmax, LogSoftmax and the reductions. */
final class ReduceRules {

    private ReduceRules() {
    }

    /** Softmax from opset 13: one axis (default -1). dx = y·(g − Σ g·y). */
    static void softmax(GradContext c) {
        long axis = c.attrInt("axis", -1);
        String y = c.output(0);
        String gy = c.op("Mul", c.outGrad(0), y);
        String s = c.reduce("ReduceSum", gy, new long[] {axis}, true);
        c.setGrad(0, c.op("Sub", gy, c.op("Mul", y, s)));
    }

    /** Softmax before opset 13: over the input flattened to 2-D at {@code axis} (default 1). */
    static void softmaxCoerced(GradContext c) {
        long axis = c.attrInt("axis", 1);
        String y = c.output(0);
        String g = c.outGrad(0);
        if (lastAxis(c, axis)) {
            String gy = c.op("Mul", g, y);
            c.setGrad(0, c.op("Sub", gy, c.op("Mul", y, c.reduce("ReduceSum", gy, new long[] {-1}, true))));
            return;
        }
        String y2 = flatten(c, y, axis);
        String gy = c.op("Mul", flatten(c, g, axis), y2);
        String dx = c.op("Sub", gy, c.op("Mul", y2, c.reduce("ReduceSum", gy, new long[] {1}, true)));
        c.setGrad(0, c.reshapeLike(dx, c.input(0)));
    }

    /** LogSoftmax from opset 13. dx = g − exp(y)·Σ g. */
    static void logSoftmax(GradContext c) {
        long axis = c.attrInt("axis", -1);
        String g = c.outGrad(0);
        String s = c.reduce("ReduceSum", g, new long[] {axis}, true);
        c.setGrad(0, c.op("Sub", g, c.op("Mul", c.op("Exp", c.output(0)), s)));
    }

    static void logSoftmaxCoerced(GradContext c) {
        long axis = c.attrInt("axis", 1);
        String g = c.outGrad(0);
        if (lastAxis(c, axis)) {
            String s = c.reduce("ReduceSum", g, new long[] {-1}, true);
            c.setGrad(0, c.op("Sub", g, c.op("Mul", c.op("Exp", c.output(0)), s)));
            return;
        }
        String g2 = flatten(c, g, axis);
        String s = c.reduce("ReduceSum", g2, new long[] {1}, true);
        String dx = c.op("Sub", g2, c.op("Mul", c.op("Exp", flatten(c, c.output(0), axis)), s));
        c.setGrad(0, c.reshapeLike(dx, c.input(0)));
    }

    private static boolean lastAxis(GradContext c, long axis) {
        int r = c.rank(c.input(0));
        return axis == -1 || (r >= 0 && axis == r - 1);
    }

    private static String flatten(GradContext c, String x, long axis) {
        return c.build("Flatten").in(x).attr("axis", axis).out();
    }

    static void reduceSum(GradContext c) {
        reduceGrad(c, false);
    }

    static void reduceMean(GradContext c) {
        reduceGrad(c, true);
    }

    /** dx = g broadcast back over the reduced axes (divided by their size for a mean). */
    private static void reduceGrad(GradContext c, boolean mean) {
        String x = c.input(0);
        String g = c.outGrad(0);
        int rank = c.rank(x);
        boolean keep = c.attrInt("keepdims", 1) != 0;
        long[] axes = c.inference().reduceAxes(c.node(), rank);
        boolean axesGiven = c.reduceAxesAsInput(c.node().opType()) ? c.hasInput(1) : c.node().hasAttribute("axes");
        if (axes != null && axes.length == 0) {
            c.setGrad(0, g);    // noop_with_empty_axes
            return;
        }
        if (!keep && axesGiven) {
            if (axes == null) {
                throw c.unsupported("keepdims = 0 with axes that are not known at build time");
            }
            g = c.unsqueeze(g, axes);
        }
        if (mean) {
            g = c.op("Div", g, c.op("Div", c.sizeAs(x, x), c.sizeAs(c.output(0), x)));
        }
        c.setGrad(0, c.op("Expand", g, c.shape(x)));
    }
}
