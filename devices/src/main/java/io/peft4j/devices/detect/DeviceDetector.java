package io.peft4j.devices.detect;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Finds out what device this is by reading the files Linux and the NVIDIA drivers publish, under a
 * root directory ({@code /} on a real machine; tests pass fixture trees):
 * {@code /proc/device-tree/model} and {@code /etc/nv_tegra_release} (Jetson),
 * {@code /proc/driver/nvidia/version} and {@code /proc/driver/nvidia/gpus/}{@code *}{@code /information}
 * (a discrete NVIDIA GPU), {@code /proc/meminfo} and {@code /proc/cpuinfo}. A file that is missing
 * means "not present"; a file that is there but unreadable or malformed is an error naming it.
 * Nothing is executed and nothing is loaded, so detection is safe and fast on any machine.
 */
public final class DeviceDetector {

    private static final Pattern L4T = Pattern.compile("#\\s*R(\\d+)\\s*\\(release\\),\\s*REVISION:\\s*([0-9.]+)");
    private static final Pattern DRIVER = Pattern.compile("Kernel Module\\s+(?:for\\s+\\S+\\s+)?([0-9]+(?:\\.[0-9]+)+)");
    private static final Pattern MEMTOTAL = Pattern.compile("(?m)^MemTotal:\\s+(\\d+)\\s*kB");

    private DeviceDetector() {
    }

    /** Detects this machine (root {@code /}). */
    public static Detected detect() {
        return detect(Path.of("/"));
    }

    /** Detects the machine whose files are under {@code root}. */
    public static Detected detect(Path root) {
        if (!Files.isDirectory(root)) {
            throw new Peft4jException(ErrorCode.IO, "detection root not found: " + root);
        }
        Optional<String> model = read(root, "proc/device-tree/model").map(DeviceDetector::stripNul).filter(s -> !s.isEmpty());
        Optional<Detected.L4t> l4t = read(root, "etc/nv_tegra_release").map(t -> parseL4t(t, root));
        long memTotal = read(root, "proc/meminfo").map(t -> parseMemTotal(t, root)).orElse(0L);
        Optional<String> driver = read(root, "proc/driver/nvidia/version").flatMap(t -> {
            Matcher m = DRIVER.matcher(t);
            return m.find() ? Optional.of(m.group(1)) : Optional.empty();
        });
        List<String> gpus = gpus(root);
        String cpuinfo = read(root, "proc/cpuinfo").orElse("");
        int cores = 0;
        Optional<String> cpuModel = Optional.empty();
        Set<String> features = new HashSet<>();
        boolean arm = false;
        boolean x86 = false;
        for (String line : cpuinfo.split("\n")) {
            int colon = line.indexOf(':');
            if (colon < 0) {
                continue;
            }
            String key = line.substring(0, colon).strip();
            String value = line.substring(colon + 1).strip();
            switch (key) {
                case "processor" -> cores++;
                case "model name" -> cpuModel = cpuModel.or(() -> Optional.of(value));
                case "flags" -> {
                    features.addAll(List.of(value.split("\\s+")));
                    x86 |= features.contains("lm") || features.contains("sse2");
                }
                case "Features" -> features.addAll(List.of(value.split("\\s+")));
                case "CPU architecture" -> arm |= value.equals("8") || value.equals("AArch64");
                default -> {
                }
            }
        }
        String arch = arm ? "aarch64" : x86 ? "x86_64" : normalizeArch(System.getProperty("os.arch", "unknown"));
        return new Detected(root, arch, model, l4t, memTotal, driver, gpus, cores, cpuModel, features);
    }

    private static String normalizeArch(String a) {
        return switch (a) {
            case "amd64", "x86_64" -> "x86_64";
            case "aarch64", "arm64" -> "aarch64";
            default -> a;
        };
    }

    private static String stripNul(String s) {
        int nul = s.indexOf('\0');
        return (nul >= 0 ? s.substring(0, nul) : s).strip();
    }

    static Detected.L4t parseL4t(String text, Path root) {
        Matcher m = L4T.matcher(text);
        if (!m.find()) {
            throw Peft4jException.malformed(root.resolve("etc/nv_tegra_release") + " does not start like '# R36 (release), "
                    + "REVISION: 4.3, ...': " + firstLine(text));
        }
        String rev = m.group(2);
        return new Detected.L4t(Integer.parseInt(m.group(1)), rev.endsWith(".") ? rev.substring(0, rev.length() - 1) : rev);
    }

    private static long parseMemTotal(String text, Path root) {
        Matcher m = MEMTOTAL.matcher(text);
        if (!m.find()) {
            throw Peft4jException.malformed(root.resolve("proc/meminfo") + " has no 'MemTotal: N kB' line");
        }
        return Long.parseLong(m.group(1)) * 1024;
    }

    private static List<String> gpus(Path root) {
        Path dir = root.resolve("proc/driver/nvidia/gpus");
        List<String> out = new ArrayList<>();
        if (!Files.isDirectory(dir)) {
            return out;
        }
        try (Stream<Path> s = Files.list(dir)) {
            for (Path bus : s.sorted().toList()) {
                Path info = bus.resolve("information");
                String model = "NVIDIA GPU at " + bus.getFileName();
                if (Files.isRegularFile(info)) {
                    for (String line : readFile(info).split("\n")) {
                        if (line.toLowerCase(Locale.ROOT).startsWith("model:")) {
                            model = line.substring(line.indexOf(':') + 1).strip();
                            break;
                        }
                    }
                }
                out.add(model);
            }
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot list " + dir + ": " + e.getMessage(), e);
        }
        return out;
    }

    private static Optional<String> read(Path root, String relative) {
        Path f = root.resolve(relative);
        return Files.isRegularFile(f) ? Optional.of(readFile(f)) : Optional.empty();
    }

    private static String readFile(Path f) {
        try {
            return new String(Files.readAllBytes(f), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read " + f + ": " + e.getMessage(), e);
        }
    }

    private static String firstLine(String text) {
        String t = text.strip();
        int nl = t.indexOf('\n');
        return nl < 0 ? t : t.substring(0, nl);
    }
}
