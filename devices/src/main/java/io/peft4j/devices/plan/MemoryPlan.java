package io.peft4j.devices.plan;

import java.util.List;
import java.util.Locale;

/**
 * The memory a model package needs on a device profile at one batch size and precision, against
 * what the profile lets a model use, with what to change when it does not fit.
 *
 * @param profile     the profile's id
 * @param mode        the package's mode ({@code base} for a bare model)
 * @param batch       the batch size planned for
 * @param precision   {@code fp32}, {@code fp16} or {@code int8}
 * @param weights     bytes of the base weights (initializers) at that precision
 * @param activations peak bytes of live intermediate values at that batch ({@link ActivationProfile})
 * @param workspace   the profile's TensorRT workspace in bytes (0 on the CPU)
 * @param adapters    bytes the adapters add: side packages one set of adapter inputs at the max rank
 *                    per adapter, multi packages their K stacked adapters
 * @param adapterNote how {@code adapters} was counted, in words
 * @param usable      bytes the profile lets a model use
 * @param warnings    things to know even when it fits (above the profile's max batch, close to the limit)
 * @param suggestions when it does not fit: changes that would make it fit, each with its estimate
 */
public record MemoryPlan(String profile, String mode, int batch, String precision, long weights, long activations,
                         long workspace, long adapters, String adapterNote, long usable, List<String> warnings,
                         List<String> suggestions) {

    public MemoryPlan {
        warnings = List.copyOf(warnings);
        suggestions = List.copyOf(suggestions);
    }

    /** Weights + activations + workspace + adapters. */
    public long total() {
        return weights + activations + workspace + adapters;
    }

    /** Whether the total is within what the profile lets a model use. */
    public boolean fits() {
        return total() <= usable;
    }

    /** Several lines: each part, the total against the usable memory, warnings and suggestions. */
    public String describe() {
        StringBuilder b = new StringBuilder();
        b.append(String.format(Locale.ROOT, "Memory plan: %s package on profile '%s', batch %d, %s%n", mode, profile, batch,
                precision));
        b.append(String.format(Locale.ROOT, "  weights      %10s%n", mib(weights)));
        b.append(String.format(Locale.ROOT, "  activations  %10s  (peak of live values at batch %d)%n", mib(activations), batch));
        b.append(String.format(Locale.ROOT, "  workspace    %10s%n", mib(workspace)));
        b.append(String.format(Locale.ROOT, "  adapters     %10s  (%s)%n", mib(adapters), adapterNote));
        b.append(String.format(Locale.ROOT, "  total        %10s  of %s usable: %s%n", mib(total()), mib(usable),
                fits() ? "fits" : "DOES NOT FIT"));
        warnings.forEach(w -> b.append("  warning: ").append(w).append('\n'));
        suggestions.forEach(s -> b.append("  would fit: ").append(s).append('\n'));
        return b.toString();
    }

    /** {@code 42.7 MiB}; below 1 MiB in KiB ({@code 364.0 KiB}). */
    public static String mib(long bytes) {
        return bytes < (1L << 20) ? String.format(Locale.ROOT, "%.1f KiB", bytes / 1024.0)
                : String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
    }
}
