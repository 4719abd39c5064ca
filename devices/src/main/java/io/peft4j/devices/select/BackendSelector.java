package io.peft4j.devices.select;

import io.peft4j.core.Peft4jException;
import io.peft4j.devices.detect.Detected;
import io.peft4j.devices.profile.DeviceProfile;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Chooses the backend for a device: walks the profile's {@code backends} in order and takes the
 * first one whose {@link BackendProvider#availability} is usable, recording why each one before it
 * was skipped. When none is usable it fails with every reason; it never falls back to a backend the
 * profile does not list.
 */
public final class BackendSelector {

    private final Map<String, BackendProvider> providers = new LinkedHashMap<>();

    /** The providers peft4j knows, by id: {@code tensorrt}, {@code ort-tensorrt}, {@code ort-cuda}, {@code ort-cpu}. */
    public static BackendSelector standard() {
        return new BackendSelector(List.of(GatedProvider.tensorRt(), GatedProvider.ortTensorRt(), GatedProvider.ortCuda(),
                new OrtCpuProvider()));
    }

    /** A selector over {@code providers} (ids must be distinct). */
    public BackendSelector(List<BackendProvider> providers) {
        for (BackendProvider p : providers) {
            if (this.providers.putIfAbsent(p.id(), p) != null) {
                throw Peft4jException.invalid("two backend providers have the id '" + p.id() + "'");
            }
        }
    }

    /** The providers, in the order given. */
    public List<BackendProvider> providers() {
        return List.copyOf(providers.values());
    }

    /** One line of {@link #report}: a backend, whether it is usable, why, and whether the profile lists it. */
    public record Entry(String backend, boolean usable, boolean inProfile, String reason) {
    }

    /**
     * Every known backend's availability on {@code detected} with {@code profile}: the profile's
     * backends in its order first, then the others (not in its order).
     */
    public List<Entry> report(DeviceProfile profile, Detected detected) {
        List<Entry> out = new ArrayList<>();
        for (String id : profile.backends()) {
            Availability a = availability(id, profile, detected);
            out.add(new Entry(id, a.usable(), true, a.reason()));
        }
        for (BackendProvider p : providers.values()) {
            if (!profile.backends().contains(p.id())) {
                Availability a = p.availability(profile, detected);
                out.add(new Entry(p.id(), a.usable(), false, a.reason()));
            }
        }
        return out;
    }

    /** The first usable backend in {@code profile}'s order, or UNSUPPORTED with every reason. */
    public Selection select(DeviceProfile profile, Detected detected) {
        List<Selection.Skipped> skipped = new ArrayList<>();
        for (String id : profile.backends()) {
            Availability a = availability(id, profile, detected);
            if (a.usable()) {
                return new Selection(profile, providers.get(id), a.reason(), skipped);
            }
            skipped.add(new Selection.Skipped(id, a.reason()));
        }
        StringBuilder b = new StringBuilder("no backend of profile '" + profile.id() + "' is usable here: ");
        for (int i = 0; i < skipped.size(); i++) {
            b.append(i == 0 ? "" : "; ").append(skipped.get(i).backend()).append(": ").append(skipped.get(i).reason());
        }
        throw Peft4jException.unsupported(b + " (add \"ort-cpu\" to its backends to run on the CPU)");
    }

    private Availability availability(String id, DeviceProfile profile, Detected detected) {
        BackendProvider p = providers.get(id);
        if (p == null) {
            return Availability.unusable("no provider for '" + id + "' in this build");
        }
        try {
            return p.availability(profile, detected);
        } catch (RuntimeException | LinkageError e) {
            return Availability.unusable("checking it failed: " + e);
        }
    }
}
