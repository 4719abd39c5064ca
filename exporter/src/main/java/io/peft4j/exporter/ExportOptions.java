package io.peft4j.exporter;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.Tensor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * How {@link Exporter} writes a package.
 *
 * @param mode          {@code merged} (one adapter folded into the weights), {@code side} (adapter
 *                      tensors are graph inputs with base-model defaults, one {@code .onnx_adapter}
 *                      per adapter), {@code multi} (K adapters stacked behind {@code adapter_index})
 *                      or {@code base} (the base model alone)
 * @param fp16          store weights as float16 (compute, inputs and outputs stay float32; see {@link Fp16})
 * @param maxRank       side and multi: the LoRA rank every adapter is padded to (an adapter above it
 *                      is refused); 0: the largest rank among the adapters
 * @param validate      run the package in ONNX Runtime on a probe batch and refuse it when it
 *                      differs from the reference by more than the tolerance
 * @param probe         probe inputs by input name ("" for a model's only input); missing ones are
 *                      seeded random data
 * @param seed          the probe's seed
 * @param tolerance     largest relative difference validation accepts; 0: the default for the
 *                      precision ({@link #DEFAULT_TOLERANCE}, {@link #DEFAULT_FP16_TOLERANCE})
 * @param labels        class labels for the manifest, or empty
 * @param preprocessing image preprocessing for the manifest, or null
 * @param provenance    extra provenance entries (the CLI's command line, the toolkit version)
 * @param progress      receives one line per long step; null for none
 */
public record ExportOptions(Manifest.Mode mode, boolean fp16, int maxRank, boolean validate, Map<String, Tensor> probe,
                            long seed, double tolerance, List<String> labels, Manifest.Preprocessing preprocessing,
                            Map<String, Object> provenance, Consumer<String> progress) {

    /** Relative tolerance of a float32 export: an adapter's output, and the base output with none. */
    public static final double DEFAULT_TOLERANCE = 1e-4;
    /** Relative tolerance of a float16-weight export against the float32 reference. */
    public static final double DEFAULT_FP16_TOLERANCE = 2e-2;

    public ExportOptions {
        if (mode == null) {
            throw Peft4jException.invalid("an export needs a mode (merged, side, multi or base)");
        }
        if (maxRank < 0) {
            throw Peft4jException.invalid("--max-rank must not be negative, got " + maxRank);
        }
        if (!(tolerance >= 0) || Double.isInfinite(tolerance)) {
            throw Peft4jException.invalid("--tolerance must be a non-negative number, got " + tolerance);
        }
        probe = Collections.unmodifiableMap(new LinkedHashMap<>(probe == null ? Map.of() : probe));
        labels = List.copyOf(labels == null ? List.of() : labels);
        provenance = Collections.unmodifiableMap(new LinkedHashMap<>(provenance == null ? Map.of() : provenance));
        progress = progress == null ? line -> { } : progress;
    }

    /** Defaults for a mode: float32, max rank from the adapters, validated on a random probe (seed 0). */
    public static ExportOptions of(Manifest.Mode mode) {
        return new ExportOptions(mode, false, 0, true, Map.of(), 0, 0, List.of(), null, Map.of(), null);
    }

    public ExportOptions withFp16(boolean v) {
        return new ExportOptions(mode, v, maxRank, validate, probe, seed, tolerance, labels, preprocessing, provenance, progress);
    }

    public ExportOptions withMaxRank(int v) {
        return new ExportOptions(mode, fp16, v, validate, probe, seed, tolerance, labels, preprocessing, provenance, progress);
    }

    public ExportOptions withValidate(boolean v) {
        return new ExportOptions(mode, fp16, maxRank, v, probe, seed, tolerance, labels, preprocessing, provenance, progress);
    }

    public ExportOptions withProbe(Map<String, Tensor> v, long s) {
        return new ExportOptions(mode, fp16, maxRank, validate, v, s, tolerance, labels, preprocessing, provenance, progress);
    }

    public ExportOptions withTolerance(double v) {
        return new ExportOptions(mode, fp16, maxRank, validate, probe, seed, v, labels, preprocessing, provenance, progress);
    }

    public ExportOptions withLabels(List<String> v) {
        return new ExportOptions(mode, fp16, maxRank, validate, probe, seed, tolerance, v, preprocessing, provenance, progress);
    }

    public ExportOptions withPreprocessing(Manifest.Preprocessing v) {
        return new ExportOptions(mode, fp16, maxRank, validate, probe, seed, tolerance, labels, v, provenance, progress);
    }

    public ExportOptions withProvenance(Map<String, Object> v) {
        return new ExportOptions(mode, fp16, maxRank, validate, probe, seed, tolerance, labels, preprocessing, v, progress);
    }

    public ExportOptions withProgress(Consumer<String> v) {
        return new ExportOptions(mode, fp16, maxRank, validate, probe, seed, tolerance, labels, preprocessing, provenance, v);
    }

    /** The tolerance in effect. */
    public double effectiveTolerance() {
        return tolerance > 0 ? tolerance : fp16 ? DEFAULT_FP16_TOLERANCE : DEFAULT_TOLERANCE;
    }
}
