package io.peft4j.devices;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.tensor.Tensor;

import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Runs one model package (or bare ONNX model) on one device with the adapters the package serves.
 *
 * <p>What every implementation guarantees:
 * <ul>
 *   <li>{@link #run} may be called by several threads at once; each call computes entirely with
 *       the adapter versions it found when it started, even when {@link #register} replaces or
 *       {@link #unregister} removes one of them meanwhile (native adapter state is released only
 *       after the last run using it has finished);</li>
 *   <li>bad input (unknown input or adapter names, wrong element types or shapes, a selection the
 *       package's mode cannot serve) fails with a {@link io.peft4j.core.Peft4jException} whose
 *       message says what is wrong, before anything runs where it can be told in advance;</li>
 *   <li>{@link #close()} is idempotent and never throws; runs in flight finish first, later runs
 *       are refused.</li>
 * </ul>
 */
public interface InferenceBackend extends AutoCloseable {

    /** What runs the model, e.g. {@code onnxruntime-cpu}. */
    String name();

    /** The model's mode, inputs, outputs and base fingerprint. */
    ModelInfo info();

    /** The adapters a run can select now, in registration order. */
    List<AdapterInfo> adapters();

    /**
     * Registers {@code bundle} as adapter {@code name}, replacing an adapter of that name
     * atomically (runs already started keep the old one). Checked first against the package's base
     * fingerprint and graph; a package mode that cannot take adapters at run time refuses with
     * {@code UNSUPPORTED}.
     */
    AdapterInfo register(String name, AdapterBundle bundle);

    /** Removes adapter {@code name}; false when there was none. Runs already started keep it. */
    boolean unregister(String name);

    /**
     * Runs a batch. {@code inputs} are the caller's inputs by name (a multi package's adapter
     * index is filled from {@code adapters}); {@code outputs} names the outputs wanted (empty: all).
     */
    InferenceResult run(Map<String, Tensor> inputs, AdapterSelection adapters, Set<String> outputs);

    /** Runs with one adapter for the whole batch ({@code null}: none) and returns every output. */
    default Map<String, Tensor> run(Map<String, Tensor> inputs, String adapter) {
        return run(inputs, AdapterSelection.of(adapter), Set.of()).outputs();
    }

    @Override
    void close();
}
