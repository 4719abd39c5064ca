package io.peft4j.devices.select;

import java.util.Objects;

/**
 * Whether a backend can run on a device, and the reason in words either way (e.g. "ONNX Runtime's
 * CPU provider is always there", "no NVIDIA GPU found").
 */
public record Availability(boolean usable, String reason) {

    public Availability {
        Objects.requireNonNull(reason, "reason");
    }

    public static Availability usable(String reason) {
        return new Availability(true, reason);
    }

    public static Availability unusable(String reason) {
        return new Availability(false, reason);
    }
}
