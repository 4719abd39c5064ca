package io.peft4j.bench;

import ai.onnxruntime.OrtEnvironment;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** What the report says about the machine it ran on. Each probe falls back to "unknown". */
public final class Machine {

    private Machine() {
    }

    /** Label → value, in report order. */
    public static Map<String, String> describe() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("CPU", cpu());
        m.put("Cores", Runtime.getRuntime().availableProcessors() + " (as the JVM sees them)");
        m.put("RAM", ram());
        m.put("OS", os());
        m.put("Java", System.getProperty("java.vm.name", "?") + " " + System.getProperty("java.runtime.version", "?")
                + " (" + System.getProperty("java.vendor", "?") + ")");
        m.put("ONNX Runtime", onnxRuntime());
        m.put("Load average", load());
        return m;
    }

    static String cpu() {
        for (String line : lines("/proc/cpuinfo")) {
            if (line.startsWith("model name")) {
                return line.substring(line.indexOf(':') + 1).trim();
            }
        }
        return System.getProperty("os.arch", "unknown");
    }

    static String ram() {
        for (String line : lines("/proc/meminfo")) {
            if (line.startsWith("MemTotal:")) {
                String[] f = line.trim().split("\\s+");
                try {
                    return String.format(Locale.ROOT, "%.1f GiB", Long.parseLong(f[1]) / 1024.0 / 1024.0);
                } catch (RuntimeException e) {
                    break;
                }
            }
        }
        return String.format(Locale.ROOT, "unknown (JVM max heap %.1f GiB)", Runtime.getRuntime().maxMemory() / 1073741824.0);
    }

    static String os() {
        String pretty = null;
        for (String line : lines("/etc/os-release")) {
            if (line.startsWith("PRETTY_NAME=")) {
                pretty = line.substring("PRETTY_NAME=".length()).replace("\"", "");
            }
        }
        String kernel = System.getProperty("os.name") + " " + System.getProperty("os.version") + " " + System.getProperty("os.arch");
        return pretty == null ? kernel : pretty + ", " + kernel;
    }

    static String onnxRuntime() {
        try {
            OrtEnvironment env;
            try {
                env = OrtSupport.env();
            } catch (IllegalStateException otherEnvironment) {
                // the process made ONNX Runtime's environment itself (the load test's OrtBackend)
                env = OrtEnvironment.getEnvironment();
            }
            return env.getVersion() + " (CPU execution provider; providers available: "
                    + OrtEnvironment.getAvailableProviders() + ")";
        } catch (RuntimeException | LinkageError e) {
            return "unknown (" + e.getMessage() + ")";
        }
    }

    /**
     * The share of all cores kept busy (by any process) over the next {@code millis}, from
     * {@code /proc/stat}; NaN where it cannot be read. Taken before a benchmark starts, it tells
     * whether other work is running, which the load average (a decaying mean that still counts a
     * benchmark that just ended) cannot.
     */
    static double busyShare(long millis) {
        long[] a = cpuTicks();
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Double.NaN;
        }
        long[] b = cpuTicks();
        if (a == null || b == null || b[0] <= a[0]) {
            return Double.NaN;
        }
        return 1.0 - (double) (b[1] - a[1]) / (b[0] - a[0]);
    }

    /** Total and idle (idle + iowait) ticks of all cores, or null. */
    private static long[] cpuTicks() {
        List<String> l = lines("/proc/stat");
        if (l.isEmpty() || !l.get(0).startsWith("cpu ")) {
            return null;
        }
        String[] f = l.get(0).trim().split("\\s+");
        long total = 0;
        for (int i = 1; i < f.length; i++) {
            total += Long.parseLong(f[i]);
        }
        long idle = Long.parseLong(f[4]) + (f.length > 5 ? Long.parseLong(f[5]) : 0);
        return new long[] {total, idle};
    }

    /** The 1, 5 and 15 minute load averages now. */
    static String load() {
        List<String> l = lines("/proc/loadavg");
        if (l.isEmpty()) {
            return "unknown";
        }
        String[] f = l.get(0).trim().split("\\s+");
        return f.length >= 3 ? f[0] + " " + f[1] + " " + f[2] : "unknown";
    }

    private static List<String> lines(String file) {
        try {
            return Files.readAllLines(Path.of(file));
        } catch (IOException | RuntimeException e) {
            return List.of();
        }
    }
}
