package io.peft4j.devices.profile;

import io.peft4j.core.Peft4jException;

import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.Set;

/**
 * What peft4j knows about one kind of device: its memory and what a model may use of it, its GPU,
 * the precisions it runs, the backends to try in order, and the settings the backends take from it.
 * Profiles are data: the built-in ones are JSON resources, users add their own
 * ({@link DeviceProfiles}). A profile is validated when it is made: every field is in range and
 * every backend and precision name is known.
 *
 * @param id                 the name used on the command line, e.g. {@code orin-nano-8gb}
 * @param name               the display name
 * @param kind               what detection matches it against
 * @param detect             for a Jetson profile, the text {@code /proc/device-tree/model} contains
 *                           (e.g. {@code Orin Nano}); empty for other kinds
 * @param memoryMiB          the device's memory in MiB (for a Jetson, the unified memory); empty
 *                           for "the host's memory, as detected"
 * @param usableMemoryMiB    what a model may use, in MiB; empty when given as a percentage
 * @param usableMemoryPercent what a model may use, in percent of the memory; 0 when given in MiB
 * @param computeCapability  the GPU's CUDA compute capability (e.g. {@code 8.7}); empty where
 *                           unknown or there is no GPU
 * @param dlaCores           deep-learning accelerator cores TensorRT may use (0: none)
 * @param minL4tMajor        for a Jetson, the oldest L4T major release the TensorRT presets run on
 *                           (36 = JetPack 6); 0 for other kinds
 * @param precisions         the precisions the device runs ({@code fp32}, {@code fp16}, {@code int8})
 * @param backends           the backends to try, best first (see {@link #BACKENDS})
 * @param maxBatch           the largest batch the backends are prepared for
 * @param workspaceMiB       the TensorRT builder's workspace limit in MiB
 * @param engineCacheDir     where TensorRT engines are cached ({@code ~} is the user's home)
 * @param threads            CPU threads one model's runs may use
 * @param source             where the profile was defined (a resource or file), for messages
 */
public record DeviceProfile(String id, String name, Kind kind, Optional<String> detect, OptionalLong memoryMiB,
                            OptionalLong usableMemoryMiB, int usableMemoryPercent, Optional<String> computeCapability,
                            int dlaCores, int minL4tMajor, List<String> precisions, List<String> backends, int maxBatch,
                            long workspaceMiB, String engineCacheDir, int threads, String source) {

    /** The backend names a profile may list, best first as the built-in profiles order them. */
    public static final List<String> BACKENDS = List.of("tensorrt", "ort-tensorrt", "ort-cuda", "ort-cpu");

    /** The precisions a profile may list. */
    public static final List<String> PRECISIONS = List.of("fp32", "fp16", "int8");

    /** What a profile describes, and so what detection matches it against. */
    public enum Kind {
        /** An NVIDIA Jetson board (unified memory, L4T). */
        JETSON,
        /** A machine with an NVIDIA GPU and driver (x86 or other). */
        GPU,
        /** A machine where only the CPU runs models. */
        CPU;

        /** The name used in profile files. */
        public String key() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    public DeviceProfile {
        String where = "profile '" + id + "' (" + source + ")";
        if (id == null || !id.matches("[a-z0-9][a-z0-9._-]{0,63}")) {
            throw Peft4jException.invalid("profile id '" + id + "' (" + source + ") must be 1-64 lower-case letters, "
                    + "digits, '.', '_' or '-'");
        }
        if (name == null || name.isBlank()) {
            throw Peft4jException.invalid(where + ": 'name' must not be empty");
        }
        if (kind == null) {
            throw Peft4jException.invalid(where + ": 'kind' is missing");
        }
        if (kind == Kind.JETSON && detect.isEmpty()) {
            throw Peft4jException.invalid(where + ": a jetson profile needs 'detect', the text /proc/device-tree/model "
                    + "contains (e.g. \"Orin Nano\")");
        }
        if (kind != Kind.JETSON && detect.isPresent()) {
            throw Peft4jException.invalid(where + ": 'detect' is only for jetson profiles");
        }
        if (memoryMiB.isPresent() && memoryMiB.getAsLong() < 1) {
            throw Peft4jException.invalid(where + ": 'memory_mib' must be at least 1, got " + memoryMiB.getAsLong());
        }
        if (usableMemoryMiB.isPresent() == (usableMemoryPercent != 0)) {
            throw Peft4jException.invalid(where + ": give exactly one of 'usable_memory_mib' and 'usable_memory_percent'");
        }
        if (usableMemoryMiB.isPresent()) {
            long u = usableMemoryMiB.getAsLong();
            if (u < 1) {
                throw Peft4jException.invalid(where + ": 'usable_memory_mib' must be at least 1, got " + u);
            }
            if (memoryMiB.isEmpty()) {
                throw Peft4jException.invalid(where + ": 'usable_memory_mib' needs a fixed 'memory_mib'; with \"host\" "
                        + "memory give 'usable_memory_percent'");
            }
            if (u > memoryMiB.getAsLong()) {
                throw Peft4jException.invalid(where + ": 'usable_memory_mib' " + u + " exceeds 'memory_mib' "
                        + memoryMiB.getAsLong());
            }
        } else if (usableMemoryPercent < 1 || usableMemoryPercent > 100) {
            throw Peft4jException.invalid(where + ": 'usable_memory_percent' must be 1..100, got " + usableMemoryPercent);
        }
        if (computeCapability.isPresent() && !computeCapability.get().matches("\\d{1,2}\\.\\d{1,2}")) {
            throw Peft4jException.invalid(where + ": 'compute_capability' must look like \"8.7\", got \""
                    + computeCapability.get() + "\"");
        }
        if (kind == Kind.CPU && computeCapability.isPresent()) {
            throw Peft4jException.invalid(where + ": a cpu profile has no 'compute_capability'");
        }
        if (dlaCores < 0 || dlaCores > 8) {
            throw Peft4jException.invalid(where + ": 'dla_cores' must be 0..8, got " + dlaCores);
        }
        if (kind == Kind.JETSON ? minL4tMajor < 1 || minL4tMajor > 99 : minL4tMajor != 0) {
            throw Peft4jException.invalid(where + (kind == Kind.JETSON ? ": 'min_l4t' must be 1..99, got " + minL4tMajor
                    : ": 'min_l4t' is only for jetson profiles"));
        }
        precisions = checkNames(where, "precisions", precisions, PRECISIONS);
        backends = checkNames(where, "backends", backends, BACKENDS);
        if (maxBatch < 1 || maxBatch > 65_536) {
            throw Peft4jException.invalid(where + ": 'max_batch' must be 1..65536, got " + maxBatch);
        }
        if (workspaceMiB < 0 || workspaceMiB > (1L << 30)) {
            throw Peft4jException.invalid(where + ": 'workspace_mib' must be 0..2^30, got " + workspaceMiB);
        }
        if (engineCacheDir == null || engineCacheDir.isBlank()) {
            throw Peft4jException.invalid(where + ": 'engine_cache_dir' must not be empty");
        }
        if (threads < 1 || threads > 1024) {
            throw Peft4jException.invalid(where + ": 'threads' must be 1..1024, got " + threads);
        }
    }

    private static List<String> checkNames(String where, String field, List<String> names, List<String> known) {
        if (names == null || names.isEmpty()) {
            throw Peft4jException.invalid(where + ": '" + field + "' must list at least one of " + known);
        }
        Set<String> seen = new java.util.HashSet<>();
        for (String n : names) {
            if (!known.contains(n)) {
                throw Peft4jException.invalid(where + ": unknown " + (field.equals("backends") ? "backend" : "precision")
                        + " '" + n + "' in '" + field + "'; known: " + known);
            }
            if (!seen.add(n)) {
                throw Peft4jException.invalid(where + ": '" + n + "' is listed twice in '" + field + "'");
            }
        }
        return List.copyOf(names);
    }

    /** The device's memory in bytes; "host" profiles take {@code hostBytes}. */
    public long memoryBytes(long hostBytes) {
        return memoryMiB.isPresent() ? memoryMiB.getAsLong() << 20 : hostBytes;
    }

    /** What a model may use, in bytes; "host" profiles take a percentage of {@code hostBytes}. */
    public long usableBytes(long hostBytes) {
        if (usableMemoryMiB.isPresent()) {
            return usableMemoryMiB.getAsLong() << 20;
        }
        long total = memoryBytes(hostBytes);
        return total < Long.MAX_VALUE / 100 ? total * usableMemoryPercent / 100 : total / 100 * usableMemoryPercent;
    }

    /** Whether the device runs {@code precision} ({@code fp32}, {@code fp16}, {@code int8}). */
    public boolean supports(String precision) {
        return precisions.contains(precision);
    }

    /** The engine cache directory with {@code ~} expanded to the user's home. */
    public java.nio.file.Path engineCachePath() {
        String d = engineCacheDir;
        if (d.equals("~") || d.startsWith("~/")) {
            d = System.getProperty("user.home") + d.substring(1);
        }
        return java.nio.file.Path.of(d);
    }
}
