package io.peft4j.devices.ort;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtProvider;
import io.peft4j.devices.InferenceBackend;
import io.peft4j.devices.detect.Detected;
import io.peft4j.devices.profile.DeviceProfile;
import io.peft4j.devices.select.Availability;
import io.peft4j.devices.select.BackendProvider;

import java.nio.file.Path;

/**
 * ONNX Runtime's GPU execution providers for {@link io.peft4j.devices.select.BackendSelector}:
 * {@code ort-cuda} and {@code ort-tensorrt}, usable where this ONNX Runtime lists the provider
 * (the {@code onnxruntime_gpu} jar) and a GPU was detected, opened with the profile's settings (fp16
 * where it lists fp16, its workspace, max batch and engine cache directory).
 */
public abstract class OrtGpuProvider implements BackendProvider {

    private final String id;
    private final String kind;
    private final OrtProvider provider;

    OrtGpuProvider(String id, String kind, OrtProvider provider) {
        this.id = id;
        this.kind = kind;
        this.provider = provider;
    }

    @Override
    public String id() {
        return id;
    }

    @Override
    public Availability availability(DeviceProfile profile, Detected detected) {
        if (!OrtEnvironment.getAvailableProviders().contains(provider)) {
            return Availability.unusable("this ONNX Runtime does not list the " + provider + " provider");
        }
        return Availability.usable("ONNX Runtime's " + provider + " provider is there (onnxruntime_gpu)");
    }

    @Override
    public InferenceBackend open(Path modelOrPackage, DeviceProfile profile, int threads) {
        return OrtBackend.open(modelOrPackage, new OrtBackend.Options(threads > 0 ? threads : profile.threads(), 1, true,
                gpu(profile)));
    }

    /** The GPU provider settings a profile gives. */
    public OrtBackend.GpuProvider gpu(DeviceProfile profile) {
        return new OrtBackend.GpuProvider(kind, 0, profile.precisions().contains("fp16"),
                kind.equals("tensorrt") ? profile.engineCachePath() : null, profile.workspaceMiB() << 20, profile.maxBatch());
    }

    /** {@code ort-cuda}. */
    public static final class Cuda extends OrtGpuProvider {
        public Cuda() {
            super("ort-cuda", "cuda", OrtProvider.CUDA);
        }
    }

    /** {@code ort-tensorrt}. */
    public static final class TensorRt extends OrtGpuProvider {
        public TensorRt() {
            super("ort-tensorrt", "tensorrt", OrtProvider.TENSOR_RT);
        }
    }
}
