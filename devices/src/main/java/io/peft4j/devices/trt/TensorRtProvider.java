package io.peft4j.devices.trt;

import io.peft4j.devices.InferenceBackend;
import io.peft4j.devices.profile.DeviceProfile;
import io.peft4j.devices.detect.Detected;
import io.peft4j.devices.select.Availability;
import io.peft4j.devices.select.BackendProvider;

import java.nio.file.Path;

/**
 * The {@code tensorrt} backend for {@link io.peft4j.devices.select.BackendSelector}: usable where
 * {@link TensorRt#availability()} says TensorRT runs, opened with the profile's settings — fp16
 * where the profile lists it (else fp32), its workspace, its max batch (tuned for batch 8 or the
 * max, whichever is smaller), engines cached in its engine cache directory. DLA cores are not used
 * by default (a whole network on DLA falls back layer by layer; choose it explicitly through
 * {@link EngineSettings}).
 */
public final class TensorRtProvider implements BackendProvider {

    @Override
    public String id() {
        return "tensorrt";
    }

    @Override
    public Availability availability(DeviceProfile profile, Detected detected) {
        TensorRt.Availability a = TensorRt.availability();
        if (!a.usable()) {
            return Availability.unusable(a.reason());
        }
        TensorRt.Gpu gpu = a.gpus().get(0);
        return Availability.usable("TensorRT " + a.version() + " on " + gpu.name() + " (compute " + gpu.computeCapability()
                + "), CUDA " + a.cuda());
    }

    @Override
    public InferenceBackend open(Path modelOrPackage, DeviceProfile profile, int threads) {
        return TensorRtBackend.open(modelOrPackage, settings(profile));
    }

    /** The engine settings a profile gives. */
    public static EngineSettings settings(DeviceProfile profile) {
        long workspace = profile.workspaceMiB() > 0 ? profile.workspaceMiB() << 20 : EngineSettings.defaults().workspaceBytes();
        int max = profile.maxBatch();
        return new EngineSettings(profile.precisions().contains("fp16") ? "fp16" : "fp32", workspace, max, Math.min(8, max),
                EngineSettings.defaults().maxDynamic(), -1, false, profile.engineCachePath());
    }
}
