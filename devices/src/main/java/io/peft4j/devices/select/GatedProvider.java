package io.peft4j.devices.select;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtProvider;
import io.peft4j.core.Peft4jException;
import io.peft4j.devices.InferenceBackend;
import io.peft4j.devices.detect.Detected;
import io.peft4j.devices.profile.DeviceProfile;

import java.nio.file.Path;
import java.util.Optional;
import java.util.ServiceLoader;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * A GPU backend behind its prerequisites: the device must have an NVIDIA GPU, a Jetson must run an
 * L4T release the profile allows (for the JavaCPP TensorRT presets), the native libraries must be on the classpath, and an
 * implementation of the backend must be plugged in (a {@link BackendProvider} with the same id,
 * found through {@link ServiceLoader}). Each check that fails is the reason the backend is not
 * usable; when they all pass, the implementation's own {@link #availability} decides and it opens
 * the model.
 *
 * <ul>
 *   <li>{@code tensorrt}: the JavaCPP TensorRT presets ({@code org.bytedeco.tensorrt.global.nvinfer});</li>
 *   <li>{@code ort-cuda}, {@code ort-tensorrt}: ONNX Runtime's GPU build ({@code onnxruntime_gpu},
 *       Maven profile {@code -Pgpu}), i.e. {@code OrtEnvironment.getAvailableProviders()} lists
 *       {@code CUDA} / {@code TENSOR_RT}.</li>
 * </ul>
 */
public final class GatedProvider implements BackendProvider {

    /** The class whose presence means the JavaCPP TensorRT presets are on the classpath. */
    public static final String NVINFER_CLASS = "org.bytedeco.tensorrt.global.nvinfer";

    private final String id;
    private final String what;
    private final Predicate<Detected> librariesPresent;
    private final String librariesMissing;
    private final Function<String, Optional<BackendProvider>> implementations;
    private final boolean checksL4t;

    /**
     * @param id                the backend id
     * @param what              the backend in words, for messages
     * @param librariesPresent  whether the native libraries it needs are on the classpath
     * @param librariesMissing  the reason when they are not
     * @param implementations   finds the implementation of an id
     * @param checksL4t         whether a Jetson must run the profile's {@code min_l4t} or newer (the
     *                          JavaCPP presets are built against a newer glibc than JetPack 5 has)
     */
    public GatedProvider(String id, String what, Predicate<Detected> librariesPresent, String librariesMissing,
                         Function<String, Optional<BackendProvider>> implementations, boolean checksL4t) {
        this.checksL4t = checksL4t;
        this.id = id;
        this.what = what;
        this.librariesPresent = librariesPresent;
        this.librariesMissing = librariesMissing;
        this.implementations = implementations;
    }

    /** {@code tensorrt}: TensorRT native through the JavaCPP presets. */
    public static GatedProvider tensorRt() {
        return new GatedProvider("tensorrt", "TensorRT (JavaCPP presets)", d -> classPresent(NVINFER_CLASS),
                "the JavaCPP TensorRT presets (" + NVINFER_CLASS + ") are not on the classpath (peft4j-devices "
                        + "depends on org.bytedeco:tensorrt; a trimmed class path left them out)",
                GatedProvider::pluggedIn, true);
    }

    /** {@code ort-cuda}: ONNX Runtime's CUDA execution provider. */
    public static GatedProvider ortCuda() {
        return new GatedProvider("ort-cuda", "ONNX Runtime's CUDA provider", d -> ortLists(OrtProvider.CUDA),
                "this ONNX Runtime does not list the CUDA provider (the CPU jar is on the classpath; the onnxruntime_gpu "
                        + "jar comes with -Pgpu)",
                GatedProvider::pluggedIn, false);
    }

    /** {@code ort-tensorrt}: ONNX Runtime's TensorRT execution provider. */
    public static GatedProvider ortTensorRt() {
        return new GatedProvider("ort-tensorrt", "ONNX Runtime's TensorRT provider", d -> ortLists(OrtProvider.TENSOR_RT),
                "this ONNX Runtime does not list the TensorRT provider (the CPU jar is on the classpath; the "
                        + "onnxruntime_gpu jar comes with -Pgpu)",
                GatedProvider::pluggedIn, false);
    }

    @Override
    public String id() {
        return id;
    }

    @Override
    public Availability availability(DeviceProfile profile, Detected detected) {
        if (!detected.hasNvidiaGpu()) {
            return Availability.unusable("no NVIDIA GPU found (no Jetson device tree or L4T release, and no GPU under "
                    + "/proc/driver/nvidia/gpus)");
        }
        if (checksL4t && detected.isJetson() && profile.minL4tMajor() > 0) {
            if (detected.l4t().isEmpty()) {
                return Availability.unusable("the Jetson Linux release is unknown (no /etc/nv_tegra_release); " + what
                        + " needs L4T R" + profile.minL4tMajor() + " or newer");
            }
            Detected.L4t r = detected.l4t().get();
            if (r.major() < profile.minL4tMajor()) {
                Detected.L4t min = new Detected.L4t(profile.minL4tMajor(), "0");
                return Availability.unusable("L4T " + r.version() + " (" + r.jetpack() + ", " + r.userland()
                        + ") is too old: " + what + " needs L4T R" + profile.minL4tMajor() + " or newer (" + min.jetpack()
                        + ", " + min.userland() + "); upgrade JetPack or use the CPU");
            }
        }
        boolean libs;
        try {
            libs = librariesPresent.test(detected);
        } catch (RuntimeException | LinkageError e) {
            return Availability.unusable(what + " cannot be loaded: " + e);
        }
        if (!libs) {
            return Availability.unusable(librariesMissing);
        }
        Optional<BackendProvider> impl = implementations.apply(id);
        if (impl.isEmpty()) {
            return Availability.unusable("the libraries are there, but no implementation of '" + id + "' is plugged in ("
                    + "META-INF/services/" + BackendProvider.class.getName() + ")");
        }
        return impl.get().availability(profile, detected);
    }

    @Override
    public InferenceBackend open(Path modelOrPackage, DeviceProfile profile, int threads) {
        return implementations.apply(id).orElseThrow(() -> Peft4jException.unsupported("backend '" + id
                + "' is not plugged in")).open(modelOrPackage, profile, threads);
    }

    /** Whether a class is on the classpath (not initialized: no native library is loaded). */
    static boolean classPresent(String name) {
        try {
            Class.forName(name, false, GatedProvider.class.getClassLoader());
            return true;
        } catch (ClassNotFoundException | LinkageError e) {
            return false;
        }
    }

    private static boolean ortLists(OrtProvider p) {
        return OrtEnvironment.getAvailableProviders().contains(p);
    }

    /** The {@link BackendProvider} registered through {@link ServiceLoader} under {@code id}. */
    static Optional<BackendProvider> pluggedIn(String id) {
        for (BackendProvider p : ServiceLoader.load(BackendProvider.class, GatedProvider.class.getClassLoader())) {
            if (p.id().equals(id) && !(p instanceof GatedProvider)) {
                return Optional.of(p);
            }
        }
        return Optional.empty();
    }
}
