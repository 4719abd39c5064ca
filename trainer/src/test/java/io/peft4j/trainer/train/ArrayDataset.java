package io.peft4j.trainer.train;

import io.peft4j.core.tensor.Tensor;
import io.peft4j.trainer.data.Batch;
import io.peft4j.trainer.data.Dataset;

import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.SplittableRandom;

/** Examples held as one float tensor [N, ...] and int64 labels, fed as one input: for loop tests. */
final class ArrayDataset implements Dataset {

    private final String input;
    private final Tensor x;
    private final long[] y;
    private final List<String> classes;

    ArrayDataset(String input, Tensor x, long[] y, List<String> classes) {
        this.input = input;
        this.x = x;
        this.y = y.clone();
        this.classes = classes;
    }

    /**
     * {@code n} images [1, 8, 8] for {@link io.peft4j.core.testkit.TinyModels#cnn}: class c has mean
     * level (c − 1) plus N(0, 0.5²) noise, so that the classes can be told apart.
     */
    static ArrayDataset levels(int n, long seed) {
        Random r = new Random(seed);
        float[] v = new float[n * 64];
        long[] y = new long[n];
        for (int i = 0; i < n; i++) {
            y[i] = i % 3;
            for (int j = 0; j < 64; j++) {
                v[i * 64 + j] = (float) ((y[i] - 1) + r.nextGaussian() * 0.5);
            }
        }
        return new ArrayDataset("x", Tensor.ofFloats(new long[] {n, 1, 8, 8}, v), y, List.of("low", "mid", "high"));
    }

    @Override
    public int size() {
        return y.length;
    }

    @Override
    public List<String> classes() {
        return classes;
    }

    @Override
    public int label(int i) {
        return (int) y[i];
    }

    @Override
    public Batch batch(int[] indices, SplittableRandom augment) {
        long row = x.numel() / x.dim(0);
        float[] all = x.toFloatArray();
        float[] out = new float[Math.toIntExact(indices.length * row)];
        long[] labels = new long[indices.length];
        for (int i = 0; i < indices.length; i++) {
            System.arraycopy(all, Math.toIntExact(indices[i] * row), out, Math.toIntExact(i * row), Math.toIntExact(row));
            labels[i] = y[indices[i]];
        }
        long[] shape = x.shape();
        shape[0] = indices.length;
        return new Batch(Map.of(input, Tensor.ofFloats(shape, out)), labels);
    }

    @Override
    public String describe() {
        return "arrays: " + y.length + " examples";
    }
}
