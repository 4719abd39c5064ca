package io.peft4j.devices.select;

import io.peft4j.devices.InferenceBackend;
import io.peft4j.devices.detect.Detected;
import io.peft4j.devices.profile.DeviceProfile;

import java.nio.file.Path;

/**
 * One way to run models (a backend, e.g. {@code ort-cpu}), as {@link BackendSelector} sees it: it
 * says whether it can run on a device, and why not, without loading anything heavy, and opens a
 * model with the device profile's settings.
 *
 * <p>Backends built elsewhere plug in through {@link java.util.ServiceLoader}: a class that
 * implements this interface, listed in {@code META-INF/services/io.peft4j.devices.select.BackendProvider},
 * supplies the backend of its {@link #id()} once the selector's own checks for that id (classes on
 * the classpath, a GPU detected, the Jetson release) pass. That is how the TensorRT native backend
 * ({@code tensorrt}) and ONNX Runtime's GPU execution providers ({@code ort-cuda},
 * {@code ort-tensorrt}) are wired in.
 */
public interface BackendProvider {

    /** The backend's name as profiles list it: one of {@link DeviceProfile#BACKENDS}. */
    String id();

    /** Whether this backend can run on {@code detected} with {@code profile}'s settings, and why (not). */
    Availability availability(DeviceProfile profile, Detected detected);

    /**
     * Opens a model package directory or an {@code .onnx} file with {@code profile}'s settings.
     *
     * @param threads CPU threads one run may use; 0 for the profile's {@code threads}
     */
    InferenceBackend open(Path modelOrPackage, DeviceProfile profile, int threads);
}
