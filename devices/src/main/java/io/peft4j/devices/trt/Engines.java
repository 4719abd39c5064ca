package io.peft4j.devices.trt;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.util.AtomicFiles;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.tensorrt.global.nvinfer;
import org.bytedeco.tensorrt.global.nvinfer.BuilderFlag;
import org.bytedeco.tensorrt.global.nvinfer.DeviceType;
import org.bytedeco.tensorrt.global.nvinfer.MemoryPoolType;
import org.bytedeco.tensorrt.global.nvinfer.OptProfileSelector;
import org.bytedeco.tensorrt.global.nvonnxparser;
import org.bytedeco.tensorrt.nvinfer.Dims64;
import org.bytedeco.tensorrt.nvinfer.IBuilder;
import org.bytedeco.tensorrt.nvinfer.IBuilderConfig;
import org.bytedeco.tensorrt.nvinfer.IHostMemory;
import org.bytedeco.tensorrt.nvinfer.ILogger;
import org.bytedeco.tensorrt.nvinfer.INetworkDefinition;
import org.bytedeco.tensorrt.nvinfer.IOptimizationProfile;
import org.bytedeco.tensorrt.nvinfer.ITensor;
import org.bytedeco.tensorrt.nvonnxparser.IParser;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * Builds serialized TensorRT engines (plans) from ONNX models and keeps them in a cache directory.
 * A plan is tied to the GPU model and the TensorRT version it was built with, so the cache key is
 * SHA-256 over the ONNX bytes, the {@link EngineSettings}, the GPU's name and compute capability
 * and TensorRT's version: a plan is reused only where it is valid. Cache files are written to a
 * temporary name and moved into place.
 */
public final class Engines {

    /**
     * A plan and how it was obtained.
     *
     * @param plan         the serialized engine
     * @param key          its cache key (hex)
     * @param fromCache    whether it was read from the cache rather than built
     * @param buildSeconds the build time (0 when read from the cache)
     */
    public record Built(byte[] plan, String key, boolean fromCache, double buildSeconds) {
    }

    private Engines() {
    }

    /** The cache key of {@code onnx} built with {@code settings} on this GPU and TensorRT. */
    public static String key(byte[] onnx, EngineSettings settings) {
        TensorRt.Availability a = TensorRt.require();
        TensorRt.Gpu gpu = a.gpus().get(0);
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update(onnx);
            sha.update(("\n" + settings.key() + "\n" + gpu.name() + " sm" + gpu.computeCapability() + "\nTensorRT " + a.version())
                    .getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(sha.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Reads the plan for {@code onnx} from {@code alsoLookIn} (e.g. a package's {@code engines}
     * folder) or the cache, or builds it (and caches it when a cache dir is set).
     */
    public static Built buildOrLoad(byte[] onnx, EngineSettings settings, String what, Path... alsoLookIn) {
        String key = key(onnx, settings);
        for (Path dir : alsoLookIn) {
            Path p = dir.resolve(key + ".plan");
            if (Files.isRegularFile(p)) {
                try {
                    return new Built(Files.readAllBytes(p), key, true, 0);
                } catch (IOException e) {
                    throw new Peft4jException(ErrorCode.IO, "cannot read engine " + p + ": " + e.getMessage(), e);
                }
            }
        }
        Path cached = settings.cacheDir() == null ? null : settings.cacheDir().resolve(key + ".plan");
        if (cached != null && Files.isRegularFile(cached)) {
            try {
                return new Built(Files.readAllBytes(cached), key, true, 0);
            } catch (IOException e) {
                throw new Peft4jException(ErrorCode.IO, "cannot read cached engine " + cached + ": " + e.getMessage(), e);
            }
        }
        long t0 = System.nanoTime();
        byte[] plan = build(onnx, settings, what);
        double seconds = (System.nanoTime() - t0) / 1e9;
        if (cached != null) {
            try {
                Files.createDirectories(settings.cacheDir());
            } catch (IOException e) {
                throw new Peft4jException(ErrorCode.IO, "cannot create the engine cache " + settings.cacheDir() + ": "
                        + e.getMessage(), e);
            }
            AtomicFiles.write(cached, plan);
        }
        return new Built(plan, key, false, seconds);
    }

    /** Builds a plan; the failure names the parser's or builder's errors. */
    public static byte[] build(byte[] onnx, EngineSettings s, String what) {
        TensorRt.require();
        ILogger logger = TrtLogger.INSTANCE;
        TrtLogger.INSTANCE.drainErrors();
        IBuilder builder = nvinfer.createInferBuilder(logger);
        if (builder == null || builder.isNull()) {
            throw new IllegalStateException("TensorRT could not create a builder: " + TrtLogger.INSTANCE.drainErrors());
        }
        INetworkDefinition network = builder.createNetworkV2(0);
        IParser parser = nvonnxparser.createParser(network, logger);
        try (BytePointer bytes = new BytePointer(onnx)) {
            if (!parser.parse(bytes, onnx.length)) {
                List<String> errors = new ArrayList<>();
                for (int i = 0; i < parser.getNbErrors(); i++) {
                    errors.add(parser.getError(i).desc());
                }
                throw Peft4jException.unsupported("TensorRT's ONNX parser refuses " + what + ": " + String.join("; ", errors));
            }
        }
        IBuilderConfig config = builder.createBuilderConfig();
        config.setMemoryPoolLimit(MemoryPoolType.kWORKSPACE, s.workspaceBytes());
        if (s.precision().equals("fp16")) {
            config.setFlag(BuilderFlag.kFP16);
        } else {
            // fp32 means fp32: no TF32 matrix products (10-bit mantissas) behind the caller's back
            config.clearFlag(BuilderFlag.kTF32);
        }
        if (s.refittable()) {
            config.setFlag(BuilderFlag.kREFIT);
        }
        if (s.dlaCore() >= 0) {
            int cores = builder.getNbDLACores();
            if (s.dlaCore() >= cores) {
                throw Peft4jException.invalid("DLA core " + s.dlaCore() + " asked for, but this device has "
                        + (cores == 0 ? "no DLA" : cores + " DLA core" + (cores == 1 ? "" : "s")));
            }
            config.setDefaultDeviceType(DeviceType.kDLA);
            config.setDLACore(s.dlaCore());
            config.setFlag(BuilderFlag.kGPU_FALLBACK);
        }
        IOptimizationProfile profile = builder.createOptimizationProfile();
        boolean dynamic = false;
        for (int i = 0; i < network.getNbInputs(); i++) {
            ITensor t = network.getInput(i);
            Dims64 d = t.getDimensions();
            int rank = d.nbDims();
            boolean any = false;
            long[] min = new long[rank];
            long[] opt = new long[rank];
            long[] max = new long[rank];
            for (int k = 0; k < rank; k++) {
                long v = d.d(k);
                if (v >= 0) {
                    min[k] = opt[k] = max[k] = v;
                } else if (k == 0) {
                    min[k] = 1;
                    opt[k] = s.optBatch();
                    max[k] = s.maxBatch();
                    any = true;
                } else {
                    min[k] = 1;
                    opt[k] = Math.max(1, s.maxDynamic() / 2);
                    max[k] = s.maxDynamic();
                    any = true;
                }
            }
            if (any) {
                dynamic = true;
                String name = t.getName();
                profile.setDimensions(name, OptProfileSelector.kMIN, dims(min));
                profile.setDimensions(name, OptProfileSelector.kOPT, dims(opt));
                profile.setDimensions(name, OptProfileSelector.kMAX, dims(max));
            }
        }
        if (dynamic) {
            config.addOptimizationProfile(profile);
        }
        IHostMemory plan = builder.buildSerializedNetwork(network, config);
        if (plan == null || plan.isNull() || plan.size() == 0) {
            throw Peft4jException.unsupported("TensorRT could not build an engine for " + what + ": "
                    + String.join("; ", TrtLogger.INSTANCE.drainErrors()));
        }
        byte[] out = new byte[Math.toIntExact(plan.size())];
        new BytePointer(plan.data()).capacity(plan.size()).get(out);
        return out;
    }

    static Dims64 dims(long... d) {
        Dims64 x = new Dims64();
        x.nbDims(d.length);
        for (int i = 0; i < d.length; i++) {
            x.d(i, d[i]);
        }
        return x;
    }
}
