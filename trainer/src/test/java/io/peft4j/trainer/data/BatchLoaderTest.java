package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BatchLoaderTest {

    /**
     * Example i has label i % 3; its "input" is [i, a random draw] (the draw is -1 without a random
     * source), so batches show which examples they hold and what augmentation they got.
     */
    private static class Numbers implements Dataset {
        final int n;
        final AtomicInteger active = new AtomicInteger();
        final AtomicInteger maxActive = new AtomicInteger();
        volatile int failAt = -1;
        volatile long sleepMs;

        Numbers(int n) {
            this.n = n;
        }

        @Override
        public int size() {
            return n;
        }

        @Override
        public List<String> classes() {
            return List.of("a", "b", "c");
        }

        @Override
        public int label(int i) {
            return i % 3;
        }

        @Override
        public Batch batch(int[] indices, SplittableRandom rng) {
            maxActive.accumulateAndGet(active.incrementAndGet(), Math::max);
            try {
                if (sleepMs > 0) {
                    Thread.sleep(sleepMs);
                }
                float[] x = new float[indices.length * 2];
                long[] y = new long[indices.length];
                for (int k = 0; k < indices.length; k++) {
                    if (indices[k] == failAt) {
                        throw Peft4jException.malformed("example " + indices[k] + " (file f" + indices[k] + ".png) is damaged");
                    }
                    x[2 * k] = indices[k];
                    x[2 * k + 1] = rng == null ? -1 : rng.nextInt(1000);
                    y[k] = label(indices[k]);
                }
                return new Batch(Map.of("x", Tensor.ofFloats(new long[] {indices.length, 2}, x)), y);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            } finally {
                active.decrementAndGet();
            }
        }

        @Override
        public String describe() {
            return "numbers";
        }
    }

    private static List<float[]> all(BatchLoader loader) {
        List<float[]> out = new ArrayList<>();
        try (loader) {
            while (loader.hasNext()) {
                out.add(loader.next().inputs().get("x").toFloatArray());
            }
        }
        return out;
    }

    @Test
    void batchesFollowTheOrderAndKeepTheLastPartialBatch() {
        Numbers ds = new Numbers(10);
        int[] order = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
        try (BatchLoader l = new BatchLoader(ds, order, 4, 1, 0, false, 2)) {
            assertEquals(3, l.batches());
            Batch b0 = l.next();
            assertArrayEquals(new float[] {9, -1, 8, -1, 7, -1, 6, -1}, b0.inputs().get("x").toFloatArray());
            assertArrayEquals(new long[] {0, 2, 1, 0}, b0.labels());
            assertEquals(4, l.next().size());
            Batch last = l.next();
            assertEquals(2, last.size());
            assertArrayEquals(new float[] {1, -1, 0, -1}, last.inputs().get("x").toFloatArray());
            assertFalse(l.hasNext());
            assertThrows(NoSuchElementException.class, l::next);
        }
    }

    @Test
    void theSameSeedGivesTheSameBatchesWhateverTheThreadCount() {
        Numbers ds = new Numbers(103);
        int[] order = Splits.shuffled(103, 11, 2);
        List<float[]> reference = all(new BatchLoader(ds, order, 8, 42, 2, true, 0));
        for (int threads : new int[] {1, 2, 5}) {
            List<float[]> got = all(new BatchLoader(ds, order, 8, 42, 2, true, threads, 3));
            assertEquals(reference.size(), got.size());
            for (int b = 0; b < got.size(); b++) {
                assertArrayEquals(reference.get(b), got.get(b), threads + " threads, batch " + b);
            }
        }
        List<float[]> otherEpoch = all(new BatchLoader(ds, order, 8, 42, 3, true, 2));
        List<float[]> otherSeed = all(new BatchLoader(ds, order, 8, 43, 2, true, 2));
        assertFalse(Arrays.equals(reference.get(0), otherEpoch.get(0)), "the epoch reseeds augmentation");
        assertFalse(Arrays.equals(reference.get(0), otherSeed.get(0)), "the seed reseeds augmentation");
        assertNotEquals(reference.get(0)[1], reference.get(1)[1], "each batch has its own random source");
    }

    /** A resumed epoch: starting at batch 5 gives batches 5… exactly as a loader that started at 0. */
    @Test
    void startingInsideAnEpochGivesTheSameLaterBatches() {
        Numbers ds = new Numbers(103);
        int[] order = Splits.shuffled(103, 11, 2);
        List<float[]> whole = all(new BatchLoader(ds, order, 8, 42, 2, true, 2));
        List<float[]> tail = all(new BatchLoader(ds, order, 8, 42, 2, true, 2).startAt(5));
        assertEquals(whole.size() - 5, tail.size());
        for (int b = 0; b < tail.size(); b++) {
            assertArrayEquals(whole.get(b + 5), tail.get(b), "batch " + (b + 5));
        }
        assertThrows(io.peft4j.core.Peft4jException.class, () -> new BatchLoader(ds, order, 8, 42, 2, true, 0).startAt(99));
    }

    @Test
    void withoutAugmentationBatchesGetNoRandomSource() {
        for (float[] b : all(new BatchLoader(new Numbers(9), Splits.shuffled(9, 1, 0), 4, 1, 0, false, 2))) {
            for (int k = 1; k < b.length; k += 2) {
                assertEquals(-1f, b[k]);
            }
        }
    }

    @Test
    void prefetchIsBounded() throws Exception {
        Numbers ds = new Numbers(200);
        ds.sleepMs = 5;
        try (BatchLoader l = new BatchLoader(ds, Splits.shuffled(200, 1, 0), 2, 1, 0, false, 4, 3)) {
            Thread.sleep(100);
            assertTrue(ds.maxActive.get() <= 3, "at most prefetch batches are prepared at once: " + ds.maxActive.get());
            int n = 0;
            while (l.hasNext()) {
                l.next();
                n++;
            }
            assertEquals(100, n);
            assertTrue(l.waitedNanos() > 0);
        }
        assertTrue(ds.maxActive.get() >= 2, "threads work in parallel: " + ds.maxActive.get());
    }

    @Test
    void aFailureSurfacesInTheConsumerWithTheExampleAndClosesTheLoader() {
        Numbers ds = new Numbers(40);
        ds.failAt = 22;
        int[] order = java.util.stream.IntStream.range(0, 40).toArray();
        for (int threads : new int[] {0, 3}) {
            BatchLoader l = new BatchLoader(ds, order, 5, 1, 7, true, threads);
            for (int b = 0; b < 4; b++) {
                l.next();
            }
            Peft4jException e = assertThrows(Peft4jException.class, l::next);
            assertEquals(Peft4jException.ErrorCode.MALFORMED, e.code());
            assertTrue(e.getMessage().startsWith("batch 4 of epoch 7, example 22: example 22 (file f22.png)"), e.getMessage());
            assertFalse(l.hasNext());
            assertThrows(IllegalStateException.class, l::next);
            l.close();
            l.close();
        }
    }

    @Test
    void anUnexpectedFailureIsNotDisguisedAsBadInput() {
        Dataset broken = new Numbers(4) {
            @Override
            public Batch batch(int[] indices, SplittableRandom rng) {
                throw new ArithmeticException("bug");
            }
        };
        try (BatchLoader l = new BatchLoader(broken, new int[] {0, 1, 2, 3}, 2, 1, 0, false, 1)) {
            IllegalStateException e = assertThrows(IllegalStateException.class, l::next);
            assertTrue(e.getMessage().startsWith("batch 0 of epoch 0, example 0 failed"), e.getMessage());
            assertEquals(ArithmeticException.class, e.getCause().getClass());
        }
    }

    @Test
    void closeStopsThePreparingThreads() {
        Numbers ds = new Numbers(1000);
        ds.sleepMs = 20;
        BatchLoader l = new BatchLoader(ds, Splits.shuffled(1000, 1, 0), 1, 1, 0, false, 3);
        l.next();
        l.close();
        assertTrue(l.terminated(), "loader threads end on close");
        assertEquals(0, ds.active.get(), "no batch is still being prepared after close");
        l.close();
    }

    @Test
    void refusesBadArguments() {
        Numbers ds = new Numbers(3);
        assertThrows(Peft4jException.class, () -> new BatchLoader(ds, new int[] {0, 1}, 0, 1, 0, false, 1));
        assertThrows(Peft4jException.class, () -> new BatchLoader(ds, new int[] {0, 3}, 1, 1, 0, false, 1));
        assertThrows(Peft4jException.class, () -> new BatchLoader(ds, new int[] {0, -1}, 1, 1, 0, false, 1));
        assertThrows(Peft4jException.class, () -> new BatchLoader(ds, new int[] {0}, 1, 1, 0, false, -1));
        assertThrows(Peft4jException.class, () -> new BatchLoader(ds, new int[] {0}, 1, 1, 0, false, 1, 0));
        try (BatchLoader empty = new BatchLoader(ds, new int[0], 4, 1, 0, false, 2)) {
            assertEquals(0, empty.batches());
            assertFalse(empty.hasNext());
        }
    }
}
