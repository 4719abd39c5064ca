package io.peft4j.bench;

import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

import java.util.Arrays;

/**
 * A paired measurement: a candidate and its baseline run interleaved in the same benchmark
 * invocation, each run timed on its own, so that whatever else the machine does at the time
 * (other processes on its two cores, frequency changes) falls on both alike instead of on
 * whichever happened to run during a busy minute.
 *
 * <p>JMH reports the public fields per iteration as secondary results: the number of runs and the
 * total and median nanoseconds of each side. The report takes the candidate/baseline ratio of the
 * medians per iteration, then its mean and confidence interval over all iterations of all forks.
 * A benchmark that uses a pair times each run through {@link #time} or {@link #once}; its own JMH
 * score is the time of one invocation (both sides together) and means little by itself.
 */
@State(Scope.Thread)
@AuxCounters(AuxCounters.Type.EVENTS)
public class Pair {

    public long candidateRuns;
    public long candidateNanos;
    public long candidateMedianNanos;
    public long baselineRuns;
    public long baselineNanos;
    public long baselineMedianNanos;

    private long[] candidateTimes = new long[64];
    private long[] baselineTimes = new long[64];
    private boolean candidateFirst;

    /** JMH does not reset aux counters: each iteration starts from zero. */
    @Setup(Level.Iteration)
    public void reset() {
        candidateRuns = 0;
        candidateNanos = 0;
        candidateMedianNanos = 0;
        baselineRuns = 0;
        baselineNanos = 0;
        baselineMedianNanos = 0;
    }

    /** JMH collects the counters after the iteration's tear-down. */
    @TearDown(Level.Iteration)
    public void medians() {
        candidateMedianNanos = median(candidateTimes, candidateRuns);
        baselineMedianNanos = median(baselineTimes, baselineRuns);
    }

    private static long median(long[] times, long n) {
        if (n == 0) {
            return 0;
        }
        long[] t = Arrays.copyOf(times, (int) n);
        Arrays.sort(t);
        return n % 2 == 1 ? t[(int) (n / 2)] : (t[(int) (n / 2) - 1] + t[(int) (n / 2)]) / 2;
    }

    /** A timed action. */
    @FunctionalInterface
    interface Run {
        Object run() throws Exception;
    }

    /** Runs the candidate and the baseline once each, in alternating order from one call to the next. */
    Object once(Run candidate, Run baseline) throws Exception {
        candidateFirst = !candidateFirst;
        Object a;
        Object b;
        if (candidateFirst) {
            a = time(true, candidate);
            b = time(false, baseline);
        } else {
            b = time(false, baseline);
            a = time(true, candidate);
        }
        return a == b ? a : b;
    }

    /** Times one run on the given side. */
    Object time(boolean candidate, Run r) throws Exception {
        long t0 = System.nanoTime();
        Object out = r.run();
        long dt = System.nanoTime() - t0;
        if (candidate) {
            candidateTimes = record(candidateTimes, candidateRuns, dt);
            candidateNanos += dt;
            candidateRuns++;
        } else {
            baselineTimes = record(baselineTimes, baselineRuns, dt);
            baselineNanos += dt;
            baselineRuns++;
        }
        return out;
    }

    private static long[] record(long[] times, long n, long dt) {
        long[] t = n < times.length ? times : Arrays.copyOf(times, times.length * 2);
        t[(int) n] = dt;
        return t;
    }
}
