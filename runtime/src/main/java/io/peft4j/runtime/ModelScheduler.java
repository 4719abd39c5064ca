package io.peft4j.runtime;

import io.micronaut.http.HttpStatus;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.AdapterSelection;
import io.peft4j.devices.InferenceBackend;
import io.peft4j.devices.InferenceResult;
import io.peft4j.devices.Rows;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * One model's requests: a bounded queue (full: 429 with {@code Retry-After}), a few worker threads,
 * and, when batching is on, dynamic batches: the first request waits up to the max delay for
 * others with the same input layout and outputs, up to the max rows; their rows are joined, each
 * row keeps its own adapter (a {@code multi} package runs them in one pass, a {@code side} package
 * one pass per adapter), and each request gets its rows back. A batch that fails is run again one
 * request at a time, so that one bad request fails alone. A request waits at most the timeout
 * (503 after it; a request that times out while queued is not run).
 *
 * <p>{@link #close()} takes no new requests, lets the queued ones run, and then closes the backend.
 */
final class ModelScheduler implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(ModelScheduler.class);

    /** One request: its inputs, the adapter of each row, the outputs it wants. */
    static final class Job {
        final Map<String, Tensor> inputs;
        final AdapterSelection selection;
        final Set<String> outputs;
        final int rows;
        final List<String> rowAdapters;   // null when the request cannot share a batch (no batch axis)
        final String key;
        final CompletableFuture<InferenceResult> result = new CompletableFuture<>();
        volatile boolean abandoned;

        Job(Map<String, Tensor> inputs, AdapterSelection selection, Set<String> outputs) {
            this.inputs = inputs;
            this.selection = selection;
            this.outputs = outputs;
            int n = -1;
            StringBuilder k = new StringBuilder(String.join(",", new java.util.TreeSet<>(outputs))).append('|');
            boolean batchable = !inputs.isEmpty();
            for (Map.Entry<String, Tensor> e : new java.util.TreeMap<>(inputs).entrySet()) {
                Tensor t = e.getValue();
                if (t.rank() == 0 || (n >= 0 && t.dim(0) != n)) {
                    batchable = false;
                    break;
                }
                n = (int) t.dim(0);
                k.append(e.getKey()).append(':').append(t.dtype()).append(Arrays.toString(Arrays.copyOfRange(t.shape(), 1, t.rank())))
                        .append(';');
            }
            this.rows = Math.max(n, 1);
            if (batchable && n > 0) {
                List<String> per = new ArrayList<>(n);
                if (selection instanceof AdapterSelection.PerRow p) {
                    batchable = p.rows().size() == n;
                    per.addAll(p.rows());
                } else {
                    per.addAll(Collections.nCopies(n, selection instanceof AdapterSelection.Single s ? s.name() : null));
                }
                this.rowAdapters = batchable ? per : null;
            } else {
                this.rowAdapters = null;
            }
            this.key = rowAdapters == null ? null : k.toString();
        }
    }

    private final String model;
    private final InferenceBackend backend;
    private final SchedulingConfig settings;
    private final RuntimeMetrics metrics;
    private final ArrayDeque<Job> queue = new ArrayDeque<>();
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final List<Thread> workers = new ArrayList<>();
    private int live;
    private boolean closing;

    ModelScheduler(String model, InferenceBackend backend, SchedulingConfig settings, RuntimeMetrics metrics) {
        this.model = model;
        this.backend = backend;
        this.settings = settings;
        this.metrics = metrics;
        for (int i = 0; i < settings.workers(); i++) {
            Thread t = new Thread(this::work, "peft4j-" + model + "-" + i);
            t.setDaemon(true);
            workers.add(t);
        }
        live = workers.size();
        workers.forEach(Thread::start);
        metrics.queue(model, this::depth);
    }

    InferenceBackend backend() {
        return backend;
    }

    SchedulingConfig settings() {
        return settings;
    }

    int depth() {
        lock.lock();
        try {
            return queue.size();
        } finally {
            lock.unlock();
        }
    }

    /** Queues a request and waits for its result; 429 when the queue is full, 503 after the timeout. */
    InferenceResult run(Map<String, Tensor> inputs, AdapterSelection selection, Set<String> outputs) {
        Job job = new Job(inputs, selection, outputs);
        lock.lock();
        try {
            if (closing) {
                throw new ApiException(HttpStatus.SERVICE_UNAVAILABLE, "model '" + model + "' is being unloaded",
                        Map.of("Retry-After", "1"));
            }
            if (queue.size() >= settings.queueSize()) {
                metrics.rejected(model);
                throw new ApiException(HttpStatus.TOO_MANY_REQUESTS, "model '" + model + "' has " + queue.size()
                        + " requests waiting (its queue holds " + settings.queueSize() + "); retry later",
                        Map.of("Retry-After", "1"));
            }
            queue.addLast(job);
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        try {
            return job.result.get(settings.timeoutMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            job.abandoned = true;
            metrics.timedOut(model);
            throw new ApiException(HttpStatus.SERVICE_UNAVAILABLE, "model '" + model + "' did not answer within "
                    + settings.timeoutMillis() + " ms (peft4j.scheduling.timeout-millis)", Map.of("Retry-After", "1"));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            job.abandoned = true;
            throw new ApiException(HttpStatus.SERVICE_UNAVAILABLE, "interrupted while waiting for model '" + model + "'");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw new IllegalStateException(e.getCause());
        }
    }

    private void work() {
        try {
            while (true) {
                List<Job> batch = next();
                if (batch == null) {
                    return;
                }
                execute(batch);
            }
        } finally {
            boolean last;
            lock.lock();
            try {
                last = --live == 0;
            } finally {
                lock.unlock();
            }
            if (last) {
                backend.close();
            }
        }
    }

    /** The next batch to run, or null when closing and nothing is left. */
    private List<Job> next() {
        lock.lock();
        try {
            Job first;
            while (true) {
                first = queue.pollFirst();
                if (first != null && !first.abandoned) {
                    break;
                }
                if (first == null) {
                    if (closing) {
                        return null;
                    }
                    changed.awaitUninterruptibly();
                }
            }
            List<Job> batch = new ArrayList<>(List.of(first));
            if (!settings.batching() || first.key == null || first.rows >= settings.maxBatchRows()) {
                return batch;
            }
            int rows = first.rows;
            long deadline = System.nanoTime() + TimeUnit.MICROSECONDS.toNanos(settings.maxDelayMicros());
            while (rows < settings.maxBatchRows()) {
                boolean took = false;
                for (Iterator<Job> it = queue.iterator(); it.hasNext() && rows < settings.maxBatchRows(); ) {
                    Job j = it.next();
                    if (j.abandoned) {
                        it.remove();
                    } else if (first.key.equals(j.key) && rows + j.rows <= settings.maxBatchRows()) {
                        it.remove();
                        batch.add(j);
                        rows += j.rows;
                        took = true;
                    }
                }
                long left = deadline - System.nanoTime();
                if (rows >= settings.maxBatchRows() || left <= 0 || closing) {
                    break;
                }
                if (!took) {
                    try {
                        changed.awaitNanos(left);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        break;
                    }
                }
            }
            return batch;
        } finally {
            lock.unlock();
        }
    }

    private void execute(List<Job> batch) {
        if (batch.size() == 1) {
            runAlone(batch.get(0));
            return;
        }
        int total = 0;
        for (Job j : batch) {
            total += j.rows;
        }
        long t0 = System.nanoTime();
        try {
            Map<String, Tensor> joined = new LinkedHashMap<>();
            for (String name : batch.get(0).inputs.keySet()) {
                List<Tensor> parts = new ArrayList<>(batch.size());
                batch.forEach(j -> parts.add(j.inputs.get(name)));
                joined.put(name, Rows.concat(parts, "input '" + name + "'"));
            }
            List<String> rows = new ArrayList<>(total);
            batch.forEach(j -> rows.addAll(j.rowAdapters));
            InferenceResult r = backend.run(joined, selection(rows), batch.get(0).outputs);
            metrics.batch(model, total, System.nanoTime() - t0);
            int start = 0;
            for (Job j : batch) {
                int[] idx = new int[j.rows];
                for (int i = 0; i < idx.length; i++) {
                    idx[i] = start + i;
                }
                start += j.rows;
                Map<String, Tensor> out = new LinkedHashMap<>();
                r.outputs().forEach((k, v) -> out.put(k, Rows.gather(v, idx)));
                Map<String, Long> versions = new LinkedHashMap<>();
                for (String a : new LinkedHashSet<>(j.rowAdapters)) {
                    if (a != null && r.adapterVersions().containsKey(a)) {
                        versions.put(a, r.adapterVersions().get(a));
                    }
                }
                j.result.complete(new InferenceResult(out, versions));
            }
        } catch (RuntimeException e) {
            // one bad request must not fail the others: run each alone
            LOG.debug("batch of {} requests for '{}' failed ({}); running them one by one", batch.size(), model, e.getMessage());
            batch.forEach(this::runAlone);
        }
    }

    private void runAlone(Job j) {
        if (j.abandoned || j.result.isDone()) {
            return;
        }
        long t0 = System.nanoTime();
        try {
            InferenceResult r = backend.run(j.inputs, j.selection, j.outputs);
            metrics.batch(model, j.rows, System.nanoTime() - t0);
            j.result.complete(r);
        } catch (RuntimeException e) {
            j.result.completeExceptionally(e);
        }
    }

    /** The simplest selection for the rows of a batch: none, one adapter, or one per row. */
    static AdapterSelection selection(List<String> rows) {
        String first = rows.get(0);
        for (String r : rows) {
            if (!Objects.equals(r, first)) {
                return AdapterSelection.perRow(rows);
            }
        }
        return AdapterSelection.of(first);
    }

    /** Takes no new requests; the queued ones still run, then the backend closes. */
    @Override
    public void close() {
        lock.lock();
        try {
            closing = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

}
