package io.peft4j.devices.trt;

import org.bytedeco.cuda.cudart.cudaDeviceProp;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.tensorrt.global.nvinfer;
import org.bytedeco.tensorrt.global.nvonnxparser;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Whether TensorRT can run here, and what it runs on. TensorRT comes from the host ({@code
 * libnvinfer.so.10}, {@code libnvonnxparser.so.10}: JetPack on a Jetson, the TensorRT packages or
 * tarball elsewhere, found through the library path); the JavaCPP presets bring only the JNI glue.
 * The probe loads the libraries once and never throws: a missing library, a C library too old for
 * the presets (JetPack 5), no CUDA driver or no GPU each give a reason instead.
 */
public final class TensorRt {

    /**
     * What the probe found.
     *
     * @param usable   whether engines can be built and run
     * @param reason   why not (null when usable)
     * @param version  TensorRT's version, e.g. {@code 10.15.1} (null when not loaded)
     * @param cuda     the CUDA runtime and driver versions, e.g. {@code runtime 13.0, driver 13.0}
     * @param gpus     the GPUs CUDA sees
     */
    public record Availability(boolean usable, String reason, String version, String cuda, List<Gpu> gpus) {
        public Availability {
            gpus = List.copyOf(gpus);
        }
    }

    /** A GPU as CUDA reports it: name, compute capability, memory. */
    public record Gpu(int index, String name, int major, int minor, long memoryBytes) {
        /** {@code 8.7}, {@code 9.0}. */
        public String computeCapability() {
            return major + "." + minor;
        }
    }

    private static volatile Availability probed;

    private TensorRt() {
    }

    /** The probe's result, computed on first use. */
    public static Availability availability() {
        Availability a = probed;
        if (a == null) {
            synchronized (TensorRt.class) {
                a = probed;
                if (a == null) {
                    a = probe();
                    probed = a;
                }
            }
        }
        return a;
    }

    /** Fails with the probe's reason when TensorRT cannot run here. */
    public static Availability require() {
        Availability a = availability();
        if (!a.usable()) {
            throw new io.peft4j.core.Peft4jException(io.peft4j.core.Peft4jException.ErrorCode.UNSUPPORTED,
                    "TensorRT is not usable here: " + a.reason());
        }
        return a;
    }

    private static Availability probe() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "");
        if (!os.contains("linux") || !(arch.equals("amd64") || arch.equals("x86_64") || arch.equals("aarch64"))) {
            return new Availability(false, "TensorRT native runs on Linux x86-64 and Linux arm64 (Jetson); this is "
                    + System.getProperty("os.name") + " " + arch, null, null, List.of());
        }
        String cudaVersions;
        List<Gpu> gpus = new ArrayList<>();
        try {
            Loader.load(cudart.class);
            int[] v = new int[1];
            int rt = cudart.cudaRuntimeGetVersion(v) == 0 ? v[0] : -1;
            int drv = cudart.cudaDriverGetVersion(v) == 0 ? v[0] : -1;
            cudaVersions = "runtime " + cudaVersion(rt) + ", driver " + cudaVersion(drv);
            if (drv <= 0) {
                return new Availability(false, "no NVIDIA driver is loaded (CUDA " + cudaVersions + ")", null, cudaVersions, gpus);
            }
            int[] n = new int[1];
            int err = cudart.cudaGetDeviceCount(n);
            if (err != 0 || n[0] == 0) {
                return new Availability(false, "CUDA sees no GPU (" + (err != 0 ? "cudaGetDeviceCount: "
                        + cudart.cudaGetErrorString(err).getString() : "0 devices") + "; CUDA " + cudaVersions + ")",
                        null, cudaVersions, gpus);
            }
            for (int i = 0; i < n[0]; i++) {
                try (cudaDeviceProp p = new cudaDeviceProp()) {
                    if (cudart.cudaGetDeviceProperties(p, i) == 0) {
                        gpus.add(new Gpu(i, p.name().getString().trim(), p.major(), p.minor(), p.totalGlobalMem()));
                    }
                }
            }
        } catch (Throwable t) {
            return new Availability(false, "the CUDA runtime cannot be loaded: " + explain(t), null, null, gpus);
        }
        String version;
        try {
            Loader.load(nvinfer.class);
            Loader.load(nvonnxparser.class);
            int v = nvinfer.getInferLibVersion();
            version = trtVersion(v);
            if (v / 10000 < 10 && v < 10000) {
                // TensorRT 8 and older encode major*1000 + minor*100 + patch
                return new Availability(false, "TensorRT " + version + " is too old: peft4j needs TensorRT 10.3 or newer",
                        version, cudaVersions, gpus);
            }
        } catch (Throwable t) {
            return new Availability(false, "TensorRT cannot be loaded: " + explain(t), null, cudaVersions, gpus);
        }
        return new Availability(true, null, version, cudaVersions, gpus);
    }

    /** TensorRT 10 encodes its version as major·10000 + minor·100 + patch. */
    static String trtVersion(int v) {
        if (v >= 10000) {
            return (v / 10000) + "." + (v / 100 % 100) + "." + (v % 100);
        }
        return (v / 1000) + "." + (v / 100 % 10) + "." + (v % 100);
    }

    private static String cudaVersion(int v) {
        return v <= 0 ? "none" : (v / 1000) + "." + (v % 1000 / 10);
    }

    /** A loading failure as a user can act on it. */
    static String explain(Throwable t) {
        Throwable root = t;
        StringBuilder msg = new StringBuilder();
        while (root != null) {
            if (root.getMessage() != null) {
                if (msg.length() > 0) {
                    msg.append(": ");
                }
                msg.append(root.getMessage());
            }
            root = root.getCause() == root ? null : root.getCause();
        }
        String m = msg.length() == 0 ? t.getClass().getSimpleName() : msg.toString();
        java.util.regex.Matcher missing = java.util.regex.Pattern.compile("(lib[\\w.+-]+?\\.so[\\w.]*): cannot open shared object file")
                .matcher(m);
        String lib = missing.find() ? missing.group(1) : null;
        if (m.contains("GLIBC_")) {
            return m + " (the C library is older than the JavaCPP presets need: JetPack 5 and other glibc 2.31 systems "
                    + "cannot run them; use JetPack 6 or newer, or the ONNX Runtime backend)";
        }
        if (lib != null && lib.startsWith("libcuda.so")) {
            return "no NVIDIA driver here (" + lib + " not found)";
        }
        if (lib != null && lib.startsWith("libcudart")) {
            return "the CUDA runtime " + lib + " is not installed (the presets need CUDA 13 by default, CUDA 12.6 with "
                    + "the -Pjetpack6 build)";
        }
        if (lib != null && (lib.startsWith("libnvinfer") || lib.startsWith("libnvonnxparser"))) {
            return "TensorRT's " + lib + " is not installed (install TensorRT 10 — JetPack 6 on a Jetson, or NVIDIA's "
                    + "TensorRT packages — and put its libraries on LD_LIBRARY_PATH)";
        }
        if (m.contains("nvinfer") || m.contains("nvonnxparser")) {
            return m + " (install TensorRT 10 — JetPack 6 on a Jetson, or NVIDIA's TensorRT packages — and put "
                    + "libnvinfer.so.10 and libnvonnxparser.so.10 on LD_LIBRARY_PATH)";
        }
        return lib != null ? lib + " not found: " + m : m;
    }
}
