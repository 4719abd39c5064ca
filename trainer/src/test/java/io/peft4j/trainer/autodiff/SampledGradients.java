package io.peft4j.trainer.autodiff;

import io.peft4j.core.tensor.Tensor;

import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.Set;

/**
 * Central differences on sampled coordinates of a whole training graph (float32 models): the
 * coordinates with the largest analytic gradients (where the numeric estimate is well above the
 * float32 noise floor) plus random ones, compared with a tolerance relative to the largest
 * gradient of the tensor plus an absolute 1e-4: a float32 loss of O(1) carries rounding noise
 * ~1e-7, which central differences with h ~ 1e-3 turn into ~1e-4, and a ReLU crossing its kink
 * inside [x − h, x + h] adds as much again.
 */
final class SampledGradients {

    private SampledGradients() {
    }

    /** Returns the worst |analytic − numeric| / (max|grad|) seen; fails above {@code tol} (plus 1e-4 absolute). */
    static double check(String what, Session s, GradientGraph gg, Map<String, Tensor> feeds, Map<String, Tensor> result,
                        String trainable, int top, int random, double h, double tol, long seed) {
        return check(what, s, gg, feeds, result, trainable, top, random, h, tol, 1e-4, seed);
    }

    /**
     * As above with the absolute allowance {@code abs} instead of 1e-4: about 2·ulp(loss) / h, the
     * float32 rounding of two loss evaluations turned into a slope (1e-5 for a loss of O(1) and
     * h = 1e-2).
     */
    static double check(String what, Session s, GradientGraph gg, Map<String, Tensor> feeds, Map<String, Tensor> result,
                        String trainable, int top, int random, double h, double tol, double abs, long seed) {
        Tensor analytic = result.get(gg.gradientOf(trainable));
        float[] a = analytic.toFloatArray();
        double max = 0;
        for (float v : a) {
            max = Math.max(max, Math.abs(v));
        }
        if (max == 0) {
            throw new AssertionError(what + ": gradient of " + trainable + " is all zeros");
        }
        Integer[] order = new Integer[a.length];
        for (int i = 0; i < a.length; i++) {
            order[i] = i;
        }
        java.util.Arrays.sort(order, (p, q) -> Float.compare(Math.abs(a[q]), Math.abs(a[p])));
        Random r = new Random(seed);
        java.util.Set<Integer> coords = new java.util.LinkedHashSet<>();
        for (int i = 0; i < Math.min(top, a.length); i++) {
            coords.add(order[i]);
        }
        while (coords.size() < Math.min(top + random, a.length)) {
            coords.add(r.nextInt(a.length));
        }
        double worst = 0;
        Tensor x = feeds.get(trainable);
        for (int idx : coords) {
            double numeric = (loss(s, gg, feeds, trainable, x, idx, h) - loss(s, gg, feeds, trainable, x, idx, -h)) / (2 * h);
            double err = Math.abs(a[idx] - numeric) / max;
            worst = Math.max(worst, err);
            if (System.getProperty("peft4j.debug.fd") != null) {
                System.out.printf("  %s[%d]: analytic %.6e numeric %.6e%n", trainable, idx, a[idx], numeric);
            }
            if (Math.abs(a[idx] - numeric) > tol * max + abs) {
                throw new AssertionError(what + " (seed " + seed + "): d loss / d " + trainable + "[" + idx + "] = " + a[idx]
                        + " analytic, " + numeric + " by central differences (max |grad| " + max + ")");
            }
        }
        return worst;
    }

    private static double loss(Session s, GradientGraph gg, Map<String, Tensor> feeds, String t, Tensor x, int idx, double h) {
        float[] v = x.toFloatArray();
        v[idx] += (float) h;
        Map<String, Tensor> f = new HashMap<>(feeds);
        f.put(t, Tensor.ofFloats(x.shape(), v));
        return s.run(f, Set.of(gg.loss())).get(gg.loss()).getDouble(0);
    }

    /**
     * Directional derivatives, for tensors whose single coordinates move a float32 loss less than
     * its rounding (deep in a network with small gradients): along d = g/|g| (the derivative is |g|)
     * and along a random unit direction over the 64 largest coordinates, with h chosen so that the
     * loss moves by about 1e-3 of itself, at most 0.1 (further, ReLUs and hard sigmoids bend the line). Fails when |analytic − numeric| > tol·|analytic|.
     */
    static void directional(String what, Session s, GradientGraph gg, Map<String, Tensor> feeds, Map<String, Tensor> result,
                            String trainable, double tol, long seed) {
        float[] g = result.get(gg.gradientOf(trainable)).toFloatArray();
        double loss = Math.abs(result.get(gg.loss()).getDouble(0));
        Random r = new Random(seed);
        Integer[] order = new Integer[g.length];
        for (int i = 0; i < g.length; i++) {
            order[i] = i;
        }
        java.util.Arrays.sort(order, (p, q) -> Float.compare(Math.abs(g[q]), Math.abs(g[p])));
        double[][] dirs = new double[2][g.length];
        for (int i = 0; i < g.length; i++) {
            dirs[0][i] = g[i];
        }
        for (int i = 0; i < Math.min(64, g.length); i++) {
            dirs[1][order[i]] = r.nextGaussian();
        }
        for (double[] d : dirs) {
            double norm = 0;
            for (double v : d) {
                norm += v * v;
            }
            norm = Math.sqrt(norm);
            double analytic = 0;
            for (int i = 0; i < d.length; i++) {
                d[i] /= norm;
                analytic += g[i] * d[i];
            }
            double h = Math.min(0.1, 1e-3 * Math.max(loss, 1e-3) / Math.max(Math.abs(analytic), 1e-30));
            double numeric = (along(s, gg, feeds, trainable, d, h) - along(s, gg, feeds, trainable, d, -h)) / (2 * h);
            if (Math.abs(analytic - numeric) > tol * Math.abs(analytic)) {
                throw new AssertionError(what + " (seed " + seed + "): directional derivative of the loss along a direction in "
                        + trainable + " = " + analytic + " analytic, " + numeric + " by central differences (h " + h + ")");
            }
        }
    }

    private static double along(Session s, GradientGraph gg, Map<String, Tensor> feeds, String t, double[] d, double h) {
        Tensor x = feeds.get(t);
        float[] v = x.toFloatArray();
        for (int i = 0; i < v.length; i++) {
            v[i] += (float) (h * d[i]);
        }
        Map<String, Tensor> f = new HashMap<>(feeds);
        f.put(t, Tensor.ofFloats(x.shape(), v));
        return s.run(f, Set.of(gg.loss())).get(gg.loss()).getDouble(0);
    }
}
