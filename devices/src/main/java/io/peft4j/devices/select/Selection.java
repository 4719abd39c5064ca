package io.peft4j.devices.select;

import io.peft4j.devices.InferenceBackend;
import io.peft4j.devices.profile.DeviceProfile;

import java.nio.file.Path;
import java.util.List;

/**
 * The backend chosen for a device profile, with the reason it is usable and, for every backend the
 * profile prefers to it, the reason it was skipped. A selection that skipped any backend is a
 * fallback and says so ({@link #fellBack()}, {@link #describe()}): it is never silent.
 *
 * @param profile the profile whose backend order was walked
 * @param chosen  the first usable backend
 * @param reason  why it is usable
 * @param skipped the backends before it in the profile's order, each with the reason it is not usable
 */
public record Selection(DeviceProfile profile, BackendProvider chosen, String reason, List<Skipped> skipped) {

    /** A backend that was not usable, and why. */
    public record Skipped(String backend, String reason) {
    }

    public Selection {
        skipped = List.copyOf(skipped);
    }

    /** Whether a backend the profile prefers was skipped. */
    public boolean fellBack() {
        return !skipped.isEmpty();
    }

    /** Opens a model with the chosen backend ({@code threads} 0: the profile's). */
    public InferenceBackend open(Path modelOrPackage, int threads) {
        return chosen.open(modelOrPackage, profile, threads);
    }

    /** One paragraph: the backend chosen for the profile, and each one skipped with its reason. */
    public String describe() {
        StringBuilder b = new StringBuilder("backend '").append(chosen.id()).append("' for profile '").append(profile.id())
                .append("': ").append(reason);
        if (fellBack()) {
            b.append("; fell back past ");
            for (int i = 0; i < skipped.size(); i++) {
                Skipped s = skipped.get(i);
                b.append(i == 0 ? "" : "; ").append('\'').append(s.backend()).append("' (").append(s.reason()).append(')');
            }
        }
        return b.toString();
    }
}
