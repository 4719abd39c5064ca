package io.peft4j.devices.trt;

import io.peft4j.core.Peft4jException;

import java.nio.file.Path;
import java.util.Locale;

/**
 * How a TensorRT engine is built.
 *
 * @param precision      {@code fp32}, or {@code fp16} (TensorRT may run layers in half precision;
 *                       inputs and outputs keep the model's types)
 * @param workspaceBytes the builder's workspace limit (scratch memory for tactics)
 * @param maxBatch       the largest batch the engine takes (the batch axis is dynamic in 1..max)
 * @param optBatch       the batch size TensorRT tunes its kernels for
 * @param maxDynamic     the largest size of any other dynamic axis (a text model's sequence length)
 * @param dlaCore        the DLA core to run on, with fallback to the GPU ({@code -1}: the GPU only)
 * @param refittable     whether the engine's weights can be replaced later (switching a merged
 *                       adapter by refitting instead of rebuilding)
 * @param cacheDir       where built engines are kept, keyed by model, settings, GPU and TensorRT
 *                       version ({@code null}: no cache)
 */
public record EngineSettings(String precision, long workspaceBytes, int maxBatch, int optBatch, int maxDynamic,
                             int dlaCore, boolean refittable, Path cacheDir) {

    public EngineSettings {
        precision = precision == null ? "fp32" : precision.toLowerCase(Locale.ROOT);
        if (precision.equals("int8")) {
            throw Peft4jException.unsupported("int8 engines need a calibration data set, which peft4j cannot give TensorRT "
                    + "yet; build fp16 (or fp32)");
        }
        if (!precision.equals("fp32") && !precision.equals("fp16")) {
            throw Peft4jException.invalid("precision must be fp32 or fp16, got '" + precision + "'");
        }
        if (workspaceBytes < (1L << 20)) {
            throw Peft4jException.invalid("the TensorRT workspace must be at least 1 MiB, got " + workspaceBytes + " bytes");
        }
        if (maxBatch < 1 || optBatch < 1 || optBatch > maxBatch) {
            throw Peft4jException.invalid("batch sizes must satisfy 1 <= opt <= max, got opt " + optBatch + ", max " + maxBatch);
        }
        if (maxDynamic < 1) {
            throw Peft4jException.invalid("the largest dynamic axis size must be at least 1, got " + maxDynamic);
        }
        if (dlaCore < -1) {
            throw Peft4jException.invalid("the DLA core must be -1 (none) or a core index, got " + dlaCore);
        }
    }

    /** fp16, 1 GiB workspace, batches up to 32 tuned for 8, other dynamic axes up to 256, GPU only, not refittable. */
    public static EngineSettings defaults() {
        return new EngineSettings("fp16", 1L << 30, 32, 8, 256, -1, false, null);
    }

    public EngineSettings withPrecision(String p) {
        return new EngineSettings(p, workspaceBytes, maxBatch, optBatch, maxDynamic, dlaCore, refittable, cacheDir);
    }

    public EngineSettings withRefittable(boolean r) {
        return new EngineSettings(precision, workspaceBytes, maxBatch, optBatch, maxDynamic, dlaCore, r, cacheDir);
    }

    public EngineSettings withCacheDir(Path dir) {
        return new EngineSettings(precision, workspaceBytes, maxBatch, optBatch, maxDynamic, dlaCore, refittable, dir);
    }

    public EngineSettings withBatch(int opt, int max) {
        return new EngineSettings(precision, workspaceBytes, max, opt, maxDynamic, dlaCore, refittable, cacheDir);
    }

    /** The settings as they enter the engine cache key. */
    String key() {
        return precision + ";ws=" + workspaceBytes + ";batch=" + optBatch + "/" + maxBatch + ";dyn=" + maxDynamic
                + ";dla=" + dlaCore + ";refit=" + refittable;
    }
}
