package io.peft4j.runtime;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.AdapterInfo;
import io.peft4j.devices.AdapterSelection;
import io.peft4j.devices.InferenceBackend;
import io.peft4j.devices.InferenceResult;
import io.peft4j.devices.ModelInfo;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The scheduler against a backend that records what it is asked to run and can be held. */
class ModelSchedulerTest {

    /** Client threads of their own: the common pool has a single thread on a 2-core machine. */
    private static final java.util.concurrent.ExecutorService POOL = java.util.concurrent.Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "client");
        t.setDaemon(true);
        return t;
    });

    /** y[r] = x[r] * 10 + (adapter "b" ? 1 : 0), for x [n, 1]; unknown adapter names fail. */
    static final class FakeBackend implements InferenceBackend {
        final List<Integer> passes = new CopyOnWriteArrayList<>();
        final List<AdapterSelection> selections = new CopyOnWriteArrayList<>();
        volatile CountDownLatch hold;
        volatile boolean closed;

        @Override
        public String name() {
            return "fake";
        }

        @Override
        public ModelInfo info() {
            throw new UnsupportedOperationException();
        }

        @Override
        public List<AdapterInfo> adapters() {
            return List.of();
        }

        @Override
        public AdapterInfo register(String name, AdapterBundle bundle) {
            throw new UnsupportedOperationException();
        }

        @Override
        public boolean unregister(String name) {
            return false;
        }

        @Override
        public InferenceResult run(Map<String, Tensor> inputs, AdapterSelection adapters, Set<String> outputs) {
            CountDownLatch h = hold;
            if (h != null) {
                try {
                    h.await(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            Tensor x = inputs.get("x");
            int n = (int) x.dim(0);
            List<String> rows = new ArrayList<>();
            if (adapters instanceof AdapterSelection.PerRow p) {
                rows.addAll(p.rows());
            } else {
                for (int i = 0; i < n; i++) {
                    rows.add(adapters instanceof AdapterSelection.Single s ? s.name() : null);
                }
            }
            Map<String, Long> used = new LinkedHashMap<>();
            float[] y = x.toFloatArray();
            for (int i = 0; i < n; i++) {
                String a = rows.get(i);
                if (a != null && !a.equals("a") && !a.equals("b")) {
                    throw Peft4jException.notFound("no adapter '" + a + "'");
                }
                y[i] = y[i] * 10 + ("b".equals(a) ? 1 : 0);
                if (a != null) {
                    used.put(a, 7L);
                }
            }
            passes.add(n);
            selections.add(adapters);
            return new InferenceResult(Map.of("y", Tensor.ofFloats(new long[] {n, 1}, y)), used);
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    private static void awaitDepth(ModelScheduler s, int n) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (s.depth() < n) {
            assertTrue(System.nanoTime() < end, "the queue never held " + n + " requests (it holds " + s.depth() + ")");
            Thread.sleep(1);
        }
    }

    private static Map<String, Tensor> x(float... v) {
        return Map.of("x", Tensor.ofFloats(new long[] {v.length, 1}, v));
    }

    private static SchedulingConfig settings(boolean batching, int rows, long delayMicros, int queue, int workers, long timeout) {
        return new SchedulingConfig(batching, rows, delayMicros, queue, workers, timeout);
    }

    @Test
    void queuedRequestsRunAsOneBatchAndEachGetsItsRowsAndAdapters() throws Exception {
        FakeBackend be = new FakeBackend();
        be.hold = new CountDownLatch(1);
        ModelScheduler s = new ModelScheduler("m", be, settings(true, 16, 100_000, 64, 1, 30_000), new RuntimeMetrics());
        try {
            // the first request occupies the worker; the next ones queue up and then join one batch
            // its own outputs: a batch of its own, which holds the worker
            CompletableFuture<InferenceResult> first = CompletableFuture.supplyAsync(() -> s.run(x(0), AdapterSelection.none(),
                    Set.of("first")), POOL);
            Thread.sleep(100);   // the worker has taken it and is held
            List<CompletableFuture<InferenceResult>> rest = new ArrayList<>();
            rest.add(CompletableFuture.supplyAsync(() -> s.run(x(1, 2), AdapterSelection.of("b"), Set.of()), POOL));
            rest.add(CompletableFuture.supplyAsync(() -> s.run(x(3), AdapterSelection.of("a"), Set.of()), POOL));
            rest.add(CompletableFuture.supplyAsync(() -> s.run(x(4, 5), AdapterSelection.perRow(Arrays.asList(null, "b")), Set.of()), POOL));
            awaitDepth(s, 3);
            be.hold.countDown();
            be.hold = null;
            assertArrayEquals(new float[] {0}, first.get(10, TimeUnit.SECONDS).outputs().get("y").toFloatArray());
            assertArrayEquals(new float[] {11, 21}, rest.get(0).get(10, TimeUnit.SECONDS).outputs().get("y").toFloatArray());
            assertEquals(Map.of("b", 7L), rest.get(0).get().adapterVersions());
            assertArrayEquals(new float[] {30}, rest.get(1).get().outputs().get("y").toFloatArray());
            assertArrayEquals(new float[] {40, 51}, rest.get(2).get().outputs().get("y").toFloatArray());
            assertEquals(List.of(1, 5), be.passes, "one pass for the first, one batch of 5 rows for the rest");
            // one row per adapter choice, in the order the requests arrived (which the client threads decide)
            List<String> rows = new ArrayList<>(((AdapterSelection.PerRow) be.selections.get(1)).rows());
            rows.replaceAll(r -> r == null ? "base" : r);
            rows.sort(null);
            assertEquals(List.of("a", "b", "b", "b", "base"), rows);
        } finally {
            s.close();
        }
    }

    @Test
    void aBadRequestInABatchFailsAloneAndUnbatchableRequestsRunAlone() throws Exception {
        FakeBackend be = new FakeBackend();
        be.hold = new CountDownLatch(1);
        ModelScheduler s = new ModelScheduler("m", be, settings(true, 16, 100_000, 64, 1, 30_000), new RuntimeMetrics());
        try {
            // its own outputs: a batch of its own, which holds the worker
            CompletableFuture<InferenceResult> first = CompletableFuture.supplyAsync(() -> s.run(x(0), AdapterSelection.none(),
                    Set.of("first")), POOL);
            Thread.sleep(100);
            CompletableFuture<InferenceResult> good = CompletableFuture.supplyAsync(() -> s.run(x(1), AdapterSelection.of("a"), Set.of()), POOL);
            CompletableFuture<InferenceResult> bad = CompletableFuture.supplyAsync(() -> s.run(x(2), AdapterSelection.of("zz"), Set.of()), POOL);
            CompletableFuture<InferenceResult> other = CompletableFuture.supplyAsync(() -> s.run(x(3), AdapterSelection.none(), Set.of("y")), POOL);
            awaitDepth(s, 3);
            be.hold.countDown();
            be.hold = null;
            first.get(10, TimeUnit.SECONDS);
            assertArrayEquals(new float[] {10}, good.get(10, TimeUnit.SECONDS).outputs().get("y").toFloatArray());
            Exception e = assertThrows(Exception.class, () -> bad.get(10, TimeUnit.SECONDS));
            assertTrue(e.getCause() instanceof Peft4jException p && p.getMessage().contains("zz"), e.toString());
            assertArrayEquals(new float[] {30}, other.get(10, TimeUnit.SECONDS).outputs().get("y").toFloatArray(),
                    "other outputs: another batch");
        } finally {
            s.close();
        }
    }

    @Test
    void aFullQueueIs429AndAWaitPastTheTimeoutIs503() throws Exception {
        FakeBackend be = new FakeBackend();
        be.hold = new CountDownLatch(1);
        RuntimeMetrics metrics = new RuntimeMetrics();
        ModelScheduler s = new ModelScheduler("m", be, settings(false, 1, 0, 2, 1, 300), metrics);
        try {
            List<CompletableFuture<Object>> waiting = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                waiting.add(CompletableFuture.supplyAsync(() -> {
                    try {
                        return s.run(x(1), AdapterSelection.none(), Set.of());
                    } catch (ApiException e) {
                        return e;
                    }
                }, POOL));
                Thread.sleep(30);
            }
            awaitDepth(s, 2);
            ApiException full = assertThrows(ApiException.class, () -> s.run(x(1), AdapterSelection.none(), Set.of()));
            assertEquals(429, full.status().getCode());
            assertEquals("1", full.headers().get("Retry-After"));
            for (CompletableFuture<Object> w : waiting) {
                Object r = w.get(10, TimeUnit.SECONDS);
                assertTrue(r instanceof ApiException a && a.status().getCode() == 503 && a.getMessage().contains("300 ms"), r.toString());
            }
            assertTrue(metrics.scrape().contains("reason=\"queue_full\""), metrics.scrape());
            assertTrue(metrics.scrape().contains("reason=\"timeout\""));
        } finally {
            be.hold.countDown();
            s.close();
        }
        for (int i = 0; i < 100 && !be.closed; i++) {
            Thread.sleep(20);
        }
        assertTrue(be.closed, "closing the scheduler closes the backend once its queue is done");
        assertEquals(1, be.passes.size(), "requests given up while queued are not run");
    }
}
