package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The batches of one epoch, in order, prepared ahead by background threads.
 *
 * <p>Batch {@code b} holds the examples {@code order[b·size .. (b+1)·size)} (the last batch may be
 * smaller). While the caller works on one batch, {@code threads} threads prepare the next ones; at
 * most {@code prefetch} batches are being prepared or waiting at any time, so memory stays bounded.
 *
 * <p>Deterministic: with augmentation, batch {@code b} gets a random source seeded from
 * {@code (seed, epoch, b)} only, so the same arguments give the same batches whatever the number of
 * threads (0 prepares each batch in the caller's thread when it is asked for).
 *
 * <p>A failure while preparing a batch surfaces from {@link #next()} as a {@link Peft4jException}
 * with the same code, naming the batch, the epoch and the example that fails (found by preparing
 * the batch's examples one at a time) in front of the dataset's message, which names the file or
 * row at fault; the loader is closed then. Anything else that goes wrong (a bug, not bad data)
 * surfaces as an {@link IllegalStateException} with the same context. {@link #close()} cancels what is
 * pending and stops the threads; it is idempotent and throws nothing. Use from one thread.
 */
public final class BatchLoader implements Iterator<Batch>, AutoCloseable {

    private static final AtomicInteger POOLS = new AtomicInteger();

    private final Dataset dataset;
    private final int[] order;
    private final int batchSize;
    private final long seed;
    private final int epoch;
    private final boolean augment;
    private final int batches;
    private final int prefetch;
    private final ExecutorService pool;
    private final ArrayDeque<Future<Batch>> pending = new ArrayDeque<>();
    private int submitted;
    private int delivered;
    private long waitedNanos;
    private boolean closed;

    /**
     * A loader that prepares up to {@code 2 × threads} batches ahead.
     *
     * @param order     the examples of this epoch, in order (indices into {@code dataset})
     * @param augment   whether batches get a random source for augmentation (training) or none
     * @param threads   background threads; 0 prepares each batch in the caller's thread
     */
    public BatchLoader(Dataset dataset, int[] order, int batchSize, long seed, int epoch, boolean augment, int threads) {
        this(dataset, order, batchSize, seed, epoch, augment, threads, Math.max(1, 2 * threads));
    }

    /** As above, with at most {@code prefetch} batches prepared ahead (at least 1). */
    public BatchLoader(Dataset dataset, int[] order, int batchSize, long seed, int epoch, boolean augment, int threads,
                       int prefetch) {
        if (batchSize < 1) {
            throw Peft4jException.invalid("batch size must be at least 1, got " + batchSize);
        }
        if (threads < 0 || threads > 1024) {
            throw Peft4jException.invalid("loader threads must be 0..1024, got " + threads);
        }
        if (prefetch < 1) {
            throw Peft4jException.invalid("prefetch must be at least 1 batch, got " + prefetch);
        }
        for (int i : order) {
            if (i < 0 || i >= dataset.size()) {
                throw Peft4jException.invalid("example index " + i + " is outside the dataset of " + dataset.size());
            }
        }
        this.dataset = dataset;
        this.order = order.clone();
        this.batchSize = batchSize;
        this.seed = seed;
        this.epoch = epoch;
        this.augment = augment;
        this.batches = (order.length + batchSize - 1) / batchSize;
        this.prefetch = prefetch;
        this.pool = threads == 0 ? null : Executors.newFixedThreadPool(threads, daemonThreads());
        fill();
    }

    private static ThreadFactory daemonThreads() {
        int id = POOLS.incrementAndGet();
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, "peft4j-data-" + id + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    /**
     * Starts the epoch at batch {@code first} (a run resumed in the middle of an epoch): the batches
     * before it are neither prepared nor delivered, and the ones after it are exactly those of a
     * loader that started at 0. Only before the first {@link #next()}.
     */
    public BatchLoader startAt(int first) {
        if (delivered != 0) {
            throw new IllegalStateException("startAt comes before the first batch is taken");
        }
        if (first < 0 || first > batches) {
            throw Peft4jException.invalid("batch " + first + " is outside the " + batches + " batches of epoch " + epoch);
        }
        for (Future<Batch> f : pending) {
            f.cancel(true);
        }
        pending.clear();
        submitted = first;
        delivered = first;
        fill();
        return this;
    }

    /** Number of batches in this epoch. */
    public int batches() {
        return batches;
    }

    /** Time the caller spent in {@link #next()} waiting for a batch that was not ready. */
    public long waitedNanos() {
        return waitedNanos;
    }

    /** True when no thread of this loader runs any more. */
    boolean terminated() {
        return pool == null || pool.isTerminated();
    }

    /** The indices of batch {@code b}. */
    int[] indices(int b) {
        return Arrays.copyOfRange(order, b * batchSize, Math.min(order.length, (b + 1) * batchSize));
    }

    /** The random source of batch {@code b}, or null without augmentation. */
    SplittableRandom random(int b) {
        return augment ? new SplittableRandom(Splits.mix(seed, epoch, b)) : null;
    }

    private Batch prepare(int b) {
        return dataset.batch(indices(b), random(b));
    }

    private void fill() {
        if (pool == null) {
            return;
        }
        while (!closed && submitted < batches && pending.size() < prefetch) {
            int b = submitted++;
            pending.add(pool.submit(() -> prepare(b)));
        }
    }

    @Override
    public boolean hasNext() {
        return !closed && delivered < batches;
    }

    @Override
    public Batch next() {
        if (closed) {
            throw new IllegalStateException("the batch loader is closed");
        }
        if (delivered >= batches) {
            throw new NoSuchElementException("all " + batches + " batches of epoch " + epoch + " were delivered");
        }
        int b = delivered;
        long t0 = System.nanoTime();
        try {
            Batch batch;
            if (pool == null) {
                batch = prepare(b);
            } else {
                Future<Batch> f = pending.poll();
                fill();
                batch = f.get();
            }
            delivered++;
            fill();
            return batch;
        } catch (ExecutionException e) {
            close();
            throw failure(b, e.getCause());
        } catch (RuntimeException e) {
            close();
            throw failure(b, e);
        } catch (InterruptedException e) {
            close();
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for batch " + b + " of epoch " + epoch, e);
        } finally {
            waitedNanos += System.nanoTime() - t0;
        }
    }

    private RuntimeException failure(int b, Throwable cause) {
        if (cause instanceof Error err) {
            throw err;
        }
        String where = "batch " + b + " of epoch " + epoch + culprit(b).map(i -> ", example " + i).orElse("");
        if (cause instanceof Peft4jException p) {
            return new Peft4jException(p.code(), where + ": " + p.getMessage(), p);
        }
        if (cause instanceof CancellationException) {
            return new IllegalStateException(where + " was cancelled", cause);
        }
        return new IllegalStateException(where + " failed: " + cause, cause);
    }

    /** The first example of batch {@code b} that fails on its own, if one does. */
    private Optional<Integer> culprit(int b) {
        SplittableRandom rng = random(b);
        for (int i : indices(b)) {
            try {
                dataset.batch(new int[] {i}, rng);
            } catch (RuntimeException e) {
                return Optional.of(i);
            }
        }
        return Optional.empty();
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (Future<Batch> f : pending) {
            f.cancel(true);
        }
        pending.clear();
        if (pool != null) {
            pool.shutdownNow();
            try {
                pool.awaitTermination(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
