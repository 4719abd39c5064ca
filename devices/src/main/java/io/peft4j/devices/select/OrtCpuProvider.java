package io.peft4j.devices.select;

import io.peft4j.devices.InferenceBackend;
import io.peft4j.devices.detect.Detected;
import io.peft4j.devices.ort.OrtBackend;
import io.peft4j.devices.profile.DeviceProfile;

import java.nio.file.Path;

/** {@code ort-cpu}: ONNX Runtime on the CPU ({@link OrtBackend}), usable everywhere. */
public final class OrtCpuProvider implements BackendProvider {

    public static final String ID = "ort-cpu";

    @Override
    public String id() {
        return ID;
    }

    @Override
    public Availability availability(DeviceProfile profile, Detected detected) {
        return Availability.usable("ONNX Runtime's CPU provider runs everywhere (" + detected.arch()
                + (detected.cpuCores() > 0 ? ", " + detected.cpuCores() + " cores" : "") + ")");
    }

    @Override
    public InferenceBackend open(Path modelOrPackage, DeviceProfile profile, int threads) {
        return OrtBackend.open(modelOrPackage, new OrtBackend.Options(threads > 0 ? threads : profile.threads(), 1));
    }
}
