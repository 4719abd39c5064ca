package io.peft4j.trainer.data;

import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Images (from files or an in-memory array) as one float input {@code [n, channels, height, width]}
 * of the model, prepared by an {@link ImageTransform}.
 *
 * <p>Decoded images are kept in memory between epochs when they fit in the cache budget: at their
 * own size if all of them fit (batches are then exactly what decoding each file would give, and
 * crops come from the full image), else resized to the model's size as 8-bit samples if those fit,
 * else none (each batch decodes its files). Caches are filled when the dataset is made, on several
 * threads, so a file that does not decode is reported before training starts; without a cache,
 * every file's header was read when it was listed, and a file that fails to decode later fails
 * its batch with the file's name.
 */
final class ImageDataset implements Dataset {

    /** Where the pixels come from. */
    interface Source {
        int size();

        /** Decodes example {@code i}; thread-safe; failures name the file. */
        Pixels load(int i);

        /** What example {@code i} is, for messages: a file, or a file and an index. */
        String name(int i);

        /** True when {@link #load} only points into memory (nothing to cache). */
        boolean inMemory();

        /** Bytes that caching every decoded image at its own size would take, at most. */
        long decodedBytes();
    }

    /** What is kept in memory between epochs. */
    enum Cache {
        /** The source is an array in memory already. */
        IN_MEMORY,
        /** Every decoded image at its own size. */
        SOURCE,
        /** Every image resized to the model's size, 8 bits per sample. */
        RESIZED,
        /** Nothing: each batch decodes its files. */
        NONE
    }

    private final String origin;
    private final List<String> classes;
    private final int[] labels;
    private final Source source;
    private final ImageTransform transform;
    private final String input;
    private final boolean augment;
    private final Cache cache;
    private final Pixels[] cached;
    private final long cachedBytes;
    private final long budget;

    /**
     * @param origin  what the data is, for {@link #describe()} ("image folder /data/neu-det")
     * @param budget  bytes the cache may take
     * @param workers threads that fill the cache
     */
    ImageDataset(String origin, List<String> classes, int[] labels, Source source, ImageTransform transform, String input,
                 boolean augment, long budget, int workers) {
        if (labels.length != source.size()) {
            throw new IllegalArgumentException(labels.length + " labels for " + source.size() + " images");
        }
        this.origin = origin;
        this.classes = List.copyOf(classes);
        this.labels = labels.clone();
        this.source = source;
        this.transform = transform;
        this.input = input;
        this.augment = augment;
        this.budget = budget;
        int n = source.size();
        long resizedBytes = (long) n * transform.height * transform.width * Math.min(3, transform.channels);
        if (source.inMemory()) {
            cache = Cache.IN_MEMORY;
        } else if (source.decodedBytes() <= budget) {
            cache = Cache.SOURCE;
        } else if (resizedBytes <= budget) {
            cache = Cache.RESIZED;
        } else {
            cache = Cache.NONE;
        }
        if (cache == Cache.SOURCE || cache == Cache.RESIZED) {
            Pixels[] all = new Pixels[n];
            Parallel.forEach(n, workers, i -> {
                Pixels p = source.load(i);
                all[i] = cache == Cache.SOURCE ? p : transform.resized(p);
            });
            long bytes = 0;
            for (Pixels p : all) {
                bytes += p.bytes();
            }
            cached = all;
            cachedBytes = bytes;
        } else {
            cached = null;
            cachedBytes = 0;
        }
    }

    Cache cache() {
        return cache;
    }

    /** Bytes the cache holds. */
    long cachedBytes() {
        return cachedBytes;
    }

    ImageTransform transform() {
        return transform;
    }

    String input() {
        return input;
    }

    @Override
    public int size() {
        return labels.length;
    }

    @Override
    public List<String> classes() {
        return classes;
    }

    @Override
    public int label(int i) {
        return labels[i];
    }

    @Override
    public Batch batch(int[] indices, SplittableRandom rng) {
        int per = transform.size();
        float[] all = new float[Math.multiplyExact(indices.length, per)];
        long[] y = new long[indices.length];
        SplittableRandom aug = augment ? rng : null;
        for (int k = 0; k < indices.length; k++) {
            int i = indices[k];
            Pixels p = cached != null ? cached[i] : source.load(i);
            transform.apply(p, aug, all, k * per);
            y[k] = labels[i];
        }
        ByteBuffer b = ByteBuffer.allocate(Math.multiplyExact(all.length, 4)).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(all);
        Tensor x = Tensor.wrap(DataType.FLOAT,
                new long[] {indices.length, transform.channels, transform.height, transform.width}, b);
        return new Batch(Map.of(input, x), y);
    }

    @Override
    public String describe() {
        String mem = switch (cache) {
            case IN_MEMORY -> "in memory";
            case SOURCE -> "decoded images cached (" + mb(cachedBytes) + ")";
            case RESIZED -> "images cached at model size (" + mb(cachedBytes) + ")";
            case NONE -> "decoded per batch (more than the " + mb(budget) + " cache budget)";
        };
        return String.format(Locale.ROOT, "%s: %d images, %d classes, %s %dx%dx%d%s, %s", origin, size(), classes.size(),
                input, transform.channels, transform.height, transform.width, augment ? ", augmented" : "", mem);
    }

    private static String mb(long bytes) {
        return String.format(Locale.ROOT, "%.1f MB", bytes / 1e6);
    }
}
