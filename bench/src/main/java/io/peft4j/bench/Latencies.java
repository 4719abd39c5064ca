package io.peft4j.bench;

import java.util.Arrays;

/**
 * Request latencies of one measurement, in nanoseconds, and their order statistics. Percentiles
 * are nearest-rank: {@code percentile(q)} is the smallest recorded latency that at least a
 * fraction {@code q} of all recorded latencies do not exceed (so p50 of an even count is the lower
 * middle value, and p100 the maximum); no interpolation, every reported value was measured.
 *
 * <p>Not thread-safe: each client records into its own instance and {@link #merge} joins them.
 */
public final class Latencies {

    private long[] nanos = new long[1024];
    private int size;
    private boolean sorted = true;

    /** Records one latency; negative values are refused. */
    public void add(long latencyNanos) {
        if (latencyNanos < 0) {
            throw new IllegalArgumentException("a latency cannot be negative, got " + latencyNanos + " ns");
        }
        if (size == nanos.length) {
            nanos = Arrays.copyOf(nanos, size * 2);
        }
        if (size > 0 && latencyNanos < nanos[size - 1]) {
            sorted = false;
        }
        nanos[size++] = latencyNanos;
    }

    /** Adds every latency of {@code other} to this one. */
    public Latencies merge(Latencies other) {
        for (int i = 0; i < other.size; i++) {
            add(other.nanos[i]);
        }
        return this;
    }

    /** A copy of the recorded latencies (in nanoseconds). */
    public long[] values() {
        return Arrays.copyOf(nanos, size);
    }

    public int count() {
        return size;
    }

    /** The nearest-rank percentile {@code q} (0 &lt; q ≤ 1) in nanoseconds; there must be at least one latency. */
    public long percentile(double q) {
        if (!(q > 0 && q <= 1)) {
            throw new IllegalArgumentException("a percentile is a fraction in (0, 1], got " + q);
        }
        if (size == 0) {
            throw new IllegalStateException("no latencies recorded");
        }
        sort();
        int rank = (int) Math.ceil(q * size - 1e-9);
        return nanos[Math.max(rank, 1) - 1];
    }

    /** The arithmetic mean in nanoseconds (NaN when empty). */
    public double mean() {
        if (size == 0) {
            return Double.NaN;
        }
        double s = 0;
        for (int i = 0; i < size; i++) {
            s += nanos[i];
        }
        return s / size;
    }

    public long max() {
        return percentile(1);
    }

    /** p50, p95, p99, mean and max in milliseconds, for a report. */
    public Summary summary() {
        return size == 0 ? new Summary(0, Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN)
                : new Summary(size, percentile(0.50) / 1e6, percentile(0.95) / 1e6, percentile(0.99) / 1e6, mean() / 1e6,
                        max() / 1e6);
    }

    private void sort() {
        if (!sorted) {
            Arrays.sort(nanos, 0, size);
            sorted = true;
        }
    }

    /** Order statistics of one measurement, in milliseconds ({@code NaN} when nothing was recorded). */
    public record Summary(int count, double p50, double p95, double p99, double mean, double max) {
    }
}
