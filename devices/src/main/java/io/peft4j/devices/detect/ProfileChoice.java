package io.peft4j.devices.detect;

import io.peft4j.core.Peft4jException;
import io.peft4j.devices.profile.DeviceProfile;
import io.peft4j.devices.profile.DeviceProfiles;

import java.util.Locale;

/**
 * The profile that fits a detected machine, and why.
 *
 * <p>A Jetson is matched by its device-tree model (the profile's {@code detect} text, ignoring
 * case) and then by memory: of the matching profiles, the one with the smallest {@code memory_mib}
 * that holds {@code MemTotal} (the kernel reports less than the module's nominal memory), so an
 * Orin Nano with 7.3 GiB is the 8 GB module and one with 3.3 GiB the 4 GB one. A machine with an
 * NVIDIA driver and GPU gets a {@code gpu} profile, anything else a {@code cpu} one. Where several
 * profiles tie, the one defined last wins, so a user's profile (loaded after the built-in ones)
 * takes precedence over the built-in one it extends.
 *
 * @param profile the chosen profile
 * @param reason  why, in one sentence
 */
public record ProfileChoice(DeviceProfile profile, String reason) {

    /** The profile in {@code profiles} that fits {@code d}. */
    public static ProfileChoice of(DeviceProfiles profiles, Detected d) {
        if (d.isJetson()) {
            String model = d.boardModel().orElse("");
            String lower = model.toLowerCase(Locale.ROOT);
            long memMiB = d.memTotalBytes() >> 20;
            DeviceProfile best = null;
            DeviceProfile largest = null;
            for (DeviceProfile p : profiles.all()) {
                if (p.kind() != DeviceProfile.Kind.JETSON
                        || !lower.contains(p.detect().orElseThrow().toLowerCase(Locale.ROOT))) {
                    continue;
                }
                long pm = p.memoryMiB().orElse(Long.MAX_VALUE);
                if (largest == null || pm >= largest.memoryMiB().orElse(Long.MAX_VALUE)) {
                    largest = p;
                }
                if (pm >= memMiB && (best == null || pm <= best.memoryMiB().orElse(Long.MAX_VALUE))) {
                    best = p;
                }
            }
            if (best != null) {
                return new ProfileChoice(best, "the device-tree model '" + model + "' contains '" + best.detect().orElseThrow()
                        + "' and MemTotal " + gib(d.memTotalBytes()) + " fits its " + best.memoryMiB().getAsLong() + " MiB");
            }
            if (largest != null) {
                return new ProfileChoice(largest, "the device-tree model '" + model + "' contains '"
                        + largest.detect().orElseThrow() + "'; MemTotal " + gib(d.memTotalBytes())
                        + " is more than any such profile gives, so the largest was taken");
            }
            DeviceProfile cpu = last(profiles, DeviceProfile.Kind.CPU);
            return new ProfileChoice(cpu, "no jetson profile's 'detect' text is in the device-tree model '" + model
                    + "' (add a profile for this board with --profiles); using '" + cpu.id() + "'");
        }
        if (d.hasNvidiaGpu()) {
            DeviceProfile gpu = last(profiles, DeviceProfile.Kind.GPU);
            return new ProfileChoice(gpu, "the NVIDIA driver lists " + String.join(", ", d.gpus()));
        }
        DeviceProfile cpu = last(profiles, DeviceProfile.Kind.CPU);
        return new ProfileChoice(cpu, "no Jetson and no NVIDIA GPU found");
    }

    private static DeviceProfile last(DeviceProfiles profiles, DeviceProfile.Kind kind) {
        DeviceProfile found = null;
        for (DeviceProfile p : profiles.all()) {
            if (p.kind() == kind) {
                found = p;
            }
        }
        if (found == null) {
            throw Peft4jException.notFound("no device profile of kind '" + kind.key() + "' is defined");
        }
        return found;
    }

    static String gib(long bytes) {
        return String.format(Locale.ROOT, "%.1f GiB", bytes / (double) (1L << 30));
    }
}
