package io.peft4j.bench;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.IntFunction;

/**
 * A closed-loop load: N clients, each on its own thread, send their next request as soon as the
 * previous one has answered. All clients first run a warm-up (not recorded), then one common
 * measurement window opens; a request is recorded when it starts inside the window and finishes
 * before the window closes. The window closes after the measurement time or when the phase's
 * request budget is spent, whichever comes first, so that every phase is bounded in time and in
 * requests. A request that throws is an error: counted, its latency not recorded, the first
 * message kept.
 */
public final class LoadDriver {

    /** One request of one client; throws on any failure (a non-200 status, a wrong answer). */
    @FunctionalInterface
    public interface Call {
        void call() throws Exception;
    }

    /**
     * What one phase measured.
     *
     * @param clients    concurrent clients
     * @param seconds    length of the measurement window actually used
     * @param latencies  the latencies of the successful requests recorded in the window
     * @param errors     requests that failed in the window (warm-up failures count too: they are failures)
     * @param firstError the first failure's message, or null
     */
    public record Result(int clients, double seconds, Latencies latencies, int errors, String firstError) {
        /** Successful requests per second in the window. */
        public double throughput() {
            return seconds > 0 ? latencies.count() / seconds : Double.NaN;
        }
    }

    private LoadDriver() {
    }

    /**
     * Runs one phase: {@code clients} threads, each calling the {@link Call} that {@code client}
     * makes for it (index 0..clients-1), {@code warmup} unrecorded, then at most {@code measure} and
     * at most {@code maxRequests} recorded requests in all.
     */
    public static Result run(int clients, Duration warmup, Duration measure, int maxRequests, IntFunction<Call> client)
            throws InterruptedException {
        return run(clients, warmup, measure, maxRequests, client, null);
    }

    /**
     * As {@link #run(int, Duration, Duration, int, IntFunction)}, and runs {@code atWindowOpen}
     * (when not null) on the calling thread as the measurement window opens, while the clients go
     * on (e.g. to read the server's counters after the warm-up).
     */
    public static Result run(int clients, Duration warmup, Duration measure, int maxRequests, IntFunction<Call> client,
                             Runnable atWindowOpen) throws InterruptedException {
        if (clients < 1) {
            throw new IllegalArgumentException("at least one client, got " + clients);
        }
        if (maxRequests < 1) {
            throw new IllegalArgumentException("at least one request, got " + maxRequests);
        }
        List<Call> calls = new ArrayList<>();
        for (int i = 0; i < clients; i++) {
            calls.add(client.apply(i));
        }
        long start = System.nanoTime() + warmup.toNanos();
        long deadline = start + measure.toNanos();
        AtomicInteger budget = new AtomicInteger(maxRequests);
        AtomicInteger errors = new AtomicInteger();
        AtomicReference<String> firstError = new AtomicReference<>();
        AtomicReference<Long> closedAt = new AtomicReference<>(deadline);
        List<Latencies> perClient = new ArrayList<>();
        CountDownLatch done = new CountDownLatch(clients);
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < clients; i++) {
            Latencies mine = new Latencies();
            perClient.add(mine);
            Call call = calls.get(i);
            Thread t = new Thread(() -> {
                try {
                    while (true) {
                        long t0 = System.nanoTime();
                        if (t0 >= closedAt.get()) {
                            return;
                        }
                        boolean measured = t0 >= start;
                        if (measured && budget.getAndDecrement() <= 0) {
                            closedAt.accumulateAndGet(t0, Math::min);
                            return;
                        }
                        try {
                            call.call();
                        } catch (Exception | AssertionError e) {
                            errors.incrementAndGet();
                            firstError.compareAndSet(null, e.getClass().getSimpleName() + ": " + e.getMessage());
                            continue;
                        }
                        long t1 = System.nanoTime();
                        if (measured && t1 <= closedAt.get()) {
                            mine.add(t1 - t0);
                        }
                    }
                } finally {
                    done.countDown();
                }
            }, "load-client-" + i);
            t.setDaemon(true);
            threads.add(t);
        }
        threads.forEach(Thread::start);
        if (atWindowOpen != null) {
            long wait = start - System.nanoTime();
            if (wait > 0) {
                Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
            }
            atWindowOpen.run();
        }
        done.await();
        Latencies all = new Latencies();
        perClient.forEach(all::merge);
        double seconds = Math.max(0, closedAt.get() - start) / 1e9;
        return new Result(clients, seconds, all, errors.get(), firstError.get());
    }
}
