package io.peft4j.devices.detect;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * What {@link DeviceDetector} found on a machine. Every field comes from a file under
 * {@link #root()} (or, for the architecture when {@code /proc/cpuinfo} does not tell, the JVM);
 * what was not there is empty, never guessed.
 *
 * @param root          the filesystem root read ({@code /} on a real machine)
 * @param arch          {@code aarch64}, {@code x86_64}, or the JVM's {@code os.arch}
 * @param boardModel    {@code /proc/device-tree/model} without its terminating NUL (Jetson and
 *                      other device-tree boards)
 * @param l4t           {@code /etc/nv_tegra_release}: the Jetson Linux (L4T) release
 * @param memTotalBytes {@code MemTotal} of {@code /proc/meminfo} (0: not found)
 * @param nvidiaDriver  the NVIDIA kernel module version from {@code /proc/driver/nvidia/version}
 * @param gpus          the model of each GPU in {@code /proc/driver/nvidia/gpus/}{@code *}{@code /information}
 * @param cpuCores      the logical processors in {@code /proc/cpuinfo} (0: not found)
 * @param cpuModel      the CPU's model name, where {@code /proc/cpuinfo} gives one
 * @param cpuFeatures   the CPU's flags ({@code flags} on x86, {@code Features} on Arm)
 */
public record Detected(Path root, String arch, Optional<String> boardModel, Optional<L4t> l4t, long memTotalBytes,
                       Optional<String> nvidiaDriver, List<String> gpus, int cpuCores, Optional<String> cpuModel,
                       Set<String> cpuFeatures) {

    /** The CPU features that matter to inference kernels, in the order {@link #notableFeatures()} lists them. */
    private static final List<String> NOTABLE = List.of("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni",
            "avx512_bf16", "amx_tile", "asimd", "asimdhp", "asimddp", "sve", "sve2", "bf16", "i8mm");

    public Detected {
        gpus = List.copyOf(gpus);
        cpuFeatures = Set.copyOf(cpuFeatures);
    }

    /**
     * A Jetson Linux release from {@code /etc/nv_tegra_release}, e.g. {@code # R36 (release),
     * REVISION: 4.3, ...}.
     *
     * @param major    the L4T major release (35 = JetPack 5, 36 = JetPack 6, 38 = JetPack 7)
     * @param revision the revision, e.g. {@code 4.3}
     */
    public record L4t(int major, String revision) {

        /** {@code R36.4.3}. */
        public String version() {
            return "R" + major + "." + revision;
        }

        /** The JetPack line that ships this L4T major release, where known. */
        public String jetpack() {
            return switch (major) {
                case 32 -> "JetPack 4";
                case 34, 35 -> "JetPack 5";
                case 36 -> "JetPack 6";
                case 38 -> "JetPack 7";
                default -> "an unknown JetPack";
            };
        }

        /** The Ubuntu release and glibc version of this L4T's root filesystem, where known. */
        public String userland() {
            return switch (major) {
                case 32 -> "Ubuntu 18.04, glibc 2.27";
                case 34, 35 -> "Ubuntu 20.04, glibc 2.31";
                case 36 -> "Ubuntu 22.04, glibc 2.35";
                case 38 -> "Ubuntu 24.04, glibc 2.39";
                default -> "unknown userland";
            };
        }
    }

    /** Whether this is an NVIDIA Jetson (a device-tree model naming one, or an L4T release file). */
    public boolean isJetson() {
        return l4t.isPresent() || boardModel.map(m -> m.contains("Jetson")).orElse(false);
    }

    /** Whether an NVIDIA GPU was found: a Jetson's integrated one, or one the NVIDIA driver lists. */
    public boolean hasNvidiaGpu() {
        return isJetson() || !gpus.isEmpty();
    }

    /** The CPU features that matter to inference kernels that this CPU has, e.g. {@code [avx2, fma]}. */
    public List<String> notableFeatures() {
        List<String> out = new ArrayList<>();
        for (String f : NOTABLE) {
            if (cpuFeatures.contains(f)) {
                out.add(f);
            }
        }
        if (cpuFeatures.contains("asimd")) {
            out.set(out.indexOf("asimd"), "neon/asimd");
        }
        return out;
    }

    /** One line: what the machine is. */
    public String summary() {
        StringBuilder b = new StringBuilder();
        if (isJetson()) {
            b.append(boardModel.orElse("NVIDIA Jetson (model not in the device tree)"));
            l4t.ifPresent(r -> b.append(", L4T ").append(r.version()).append(" (").append(r.jetpack()).append(')'));
        } else if (!gpus.isEmpty()) {
            b.append(arch).append(" with ").append(String.join(", ", gpus));
            nvidiaDriver.ifPresent(v -> b.append(", NVIDIA driver ").append(v));
        } else {
            b.append(arch).append(", no NVIDIA GPU found");
        }
        return b.toString();
    }
}
