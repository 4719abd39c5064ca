package io.peft4j.bench;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.AdapterSelection;
import io.peft4j.devices.ort.OrtBackend;

import java.nio.file.Path;
import java.util.Map;

/**
 * A model run the way {@code peft4j serve} runs it: through {@link OrtBackend} ({@link Bench#THREADS}
 * intra-op threads, its own pool), the workload's batch converted to ONNX Runtime tensors on every
 * run, as a server does per request.
 */
final class Served implements AutoCloseable {

    private final OrtBackend backend;
    private final Map<String, Tensor> inputs;
    private final AdapterSelection adapter;

    private Served(OrtBackend backend, Map<String, Tensor> inputs, String adapter) {
        this.backend = backend;
        this.inputs = inputs;
        this.adapter = AdapterSelection.of(adapter);
    }

    /** {@code model} (a package or an .onnx file) with no merged sessions, running {@code adapter} (null: none). */
    static Served open(Workload w, Path model, String adapter) {
        return new Served(OrtBackend.open(model, new OrtBackend.Options(Bench.THREADS, 1, false)), w.inputs(42), adapter);
    }

    /**
     * A side package with one merged session, running {@code adapter}: returns once the adapter's
     * merged session is built and in use (at most 120 s), so that only the steady state is timed.
     */
    static Served withMergedSession(Workload w, Path sidePackage, String adapter) throws InterruptedException {
        OrtBackend b = OrtBackend.open(sidePackage, new OrtBackend.Options(Bench.THREADS, 1, false).withMergedSessions(1));
        Served s = new Served(b, w.inputs(42), adapter);
        long t0 = System.nanoTime();
        try {
            awaitMergedSession(b, s.inputs, adapter, 120);
        } catch (RuntimeException | InterruptedException e) {
            s.close();
            throw e;
        }
        System.err.printf(java.util.Locale.ROOT, "bench: the merged session of %s was ready %.2f s after its first run%n", adapter,
                (System.nanoTime() - t0) / 1e9);
        return s;
    }

    /**
     * Runs {@code adapter} (null: the base model) on {@code b} with {@code inputs} until it has its
     * merged session; refused after {@code maxSeconds} (the log says why a build failed).
     */
    static void awaitMergedSession(OrtBackend b, Map<String, Tensor> inputs, String adapter, int maxSeconds)
            throws InterruptedException {
        long t0 = System.nanoTime();
        while (!b.hasMergedSession(adapter)) {
            b.run(inputs, AdapterSelection.of(adapter), null);
            if (System.nanoTime() - t0 > maxSeconds * 1_000_000_000L) {
                throw Peft4jException.invalid("no merged session for " + (adapter == null ? "the base model" : "adapter '"
                        + adapter + "'") + " of " + b.info().path() + " after " + maxSeconds + " s (see the log for why)");
            }
            Thread.sleep(20);
        }
    }

    /** One run; returns the first output, for the benchmark to hand to JMH. */
    Object run() {
        return backend.run(inputs, adapter, null).outputs().values().iterator().next();
    }

    @Override
    public void close() {
        backend.close();
    }
}
