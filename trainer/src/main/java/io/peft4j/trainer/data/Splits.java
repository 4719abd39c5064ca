package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * Seeded, stratified train/validation splits and epoch orders. Everything here is a pure function
 * of its arguments: the same labels, fraction and seed give the same split on every machine.
 */
public final class Splits {

    /**
     * Indices into a dataset, for training and for validation; each ascending, disjoint, and
     * together every index once.
     */
    public record Split(int[] train, int[] validation) {
        public Split {
            train = train.clone();
            validation = validation.clone();
        }

        @Override
        public int[] train() {
            return train.clone();
        }

        @Override
        public int[] validation() {
            return validation.clone();
        }
    }

    private Splits() {
    }

    /**
     * Holds out about {@code fraction} of each class for validation: {@code round(fraction × n)}
     * examples of a class of {@code n}, at least 1 when {@code n ≥ 2} and always leaving at least one
     * for training; a class with one example stays in training. Which examples are held out depends
     * on the seed and on the class's examples only, not on the other classes.
     *
     * @param labels   the label of every example, non-negative
     * @param fraction in (0, 1)
     */
    public static Split stratified(int[] labels, double fraction, long seed) {
        if (!(fraction > 0 && fraction < 1)) {
            throw Peft4jException.invalid("the validation fraction must be in (0, 1), got " + fraction);
        }
        TreeMap<Integer, List<Integer>> byClass = new TreeMap<>();
        for (int i = 0; i < labels.length; i++) {
            if (labels[i] < 0) {
                throw Peft4jException.invalid("example " + i + " has the negative label " + labels[i]);
            }
            byClass.computeIfAbsent(labels[i], k -> new ArrayList<>()).add(i);
        }
        boolean[] held = new boolean[labels.length];
        int heldCount = 0;
        for (var e : byClass.entrySet()) {
            List<Integer> members = e.getValue();
            int n = members.size();
            if (n < 2) {
                continue;
            }
            int k = (int) Math.min(n - 1, Math.max(1, Math.round(fraction * n)));
            int[] order = members.stream().mapToInt(Integer::intValue).toArray();
            shuffle(order, new SplittableRandom(mix(seed, e.getKey(), 0x5eed)));
            for (int j = 0; j < k; j++) {
                held[order[j]] = true;
            }
            heldCount += k;
        }
        int[] train = new int[labels.length - heldCount];
        int[] val = new int[heldCount];
        int t = 0;
        int v = 0;
        for (int i = 0; i < labels.length; i++) {
            if (held[i]) {
                val[v++] = i;
            } else {
                train[t++] = i;
            }
        }
        return new Split(train, val);
    }

    /** Every index {@code 0 .. n-1} once, in an order that depends on {@code seed} and {@code epoch}. */
    public static int[] shuffled(int n, long seed, int epoch) {
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        shuffle(order, new SplittableRandom(mix(seed, epoch, 0x0DE7)));
        return order;
    }

    /** The labels of every example of {@code ds}. */
    public static int[] labels(Dataset ds) {
        int[] out = new int[ds.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ds.label(i);
        }
        return out;
    }

    /** Fisher–Yates. */
    static void shuffle(int[] a, SplittableRandom rng) {
        for (int i = a.length - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1);
            int tmp = a[i];
            a[i] = a[j];
            a[j] = tmp;
        }
    }

    /** A 64-bit seed from three numbers, every bit of each affecting every bit of the result. */
    public static long mix(long a, long b, long c) {
        long h = fmix(a ^ 0x9E3779B97F4A7C15L);
        h = fmix(h ^ (b + 0x632BE59BD9B4E019L));
        return fmix(h ^ (c + 0x2545F4914F6CDD1DL));
    }

    private static long fmix(long k) {
        k ^= k >>> 33;
        k *= 0xff51afd7ed558ccdL;
        k ^= k >>> 33;
        k *= 0xc4ceb9fe1a85ec53L;
        k ^= k >>> 33;
        return k;
    }
}
