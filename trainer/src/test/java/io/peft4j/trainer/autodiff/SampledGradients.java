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

    /** Returns the worst |analytic − numeric| / (max|grad|) seen; fails above {@code tol}. */
    static double check(String what, Session s, GradientGraph gg, Map<String, Tensor> feeds, Map<String, Tensor> result,
                        String trainable, int top, int random, double h, double tol, long seed) {
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
            if (Math.abs(a[idx] - numeric) > tol * max + 1e-4) {
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
}
