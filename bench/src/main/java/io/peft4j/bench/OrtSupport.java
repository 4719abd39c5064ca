package io.peft4j.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoggingLevel;
import ai.onnxruntime.OrtSession;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/** ONNX Runtime plumbing shared by the benchmarks: one environment, one way to open a session. */
public final class OrtSupport {

    private OrtSupport() {
    }

    private static OrtEnvironment env;

    /**
     * The one environment: one global pool of {@link Bench#THREADS} intra-op threads that every
     * session shares (a paired benchmark has two sessions open, and a second pool spinning while
     * the other session runs would steal its cores), logging errors only (side models declare the
     * LoRA inputs with initializer defaults, and ONNX Runtime warns once per such input). Worker
     * threads spin as ONNX Runtime does by default, unless {@code -Dpeft4j.bench.spin=0}.
     */
    public static synchronized OrtEnvironment env() {
        if (env == null) {
            try (OrtEnvironment.ThreadingOptions t = new OrtEnvironment.ThreadingOptions()) {
                t.setGlobalIntraOpNumThreads(Bench.THREADS);
                t.setGlobalInterOpNumThreads(1);
                t.setGlobalSpinControl(spinning());
                env = OrtEnvironment.getEnvironment(OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, "peft4j-bench", t);
            } catch (OrtException e) {
                throw new IllegalStateException("cannot set up ONNX Runtime's thread pool: " + e.getMessage(), e);
            }
        }
        return env;
    }

    /** Whether ONNX Runtime's worker threads spin while waiting for work ({@code -Dpeft4j.bench.spin}, default yes). */
    public static boolean spinning() {
        return !"0".equals(System.getProperty("peft4j.bench.spin", "1"));
    }

    /**
     * A CPU session on a model file with the benchmark settings: the environment's shared pool of
     * {@link Bench#THREADS} intra-op threads, sequential execution, all graph optimizations.
     */
    public static OrtSession session(Path model) throws OrtException {
        return session(model, null);
    }

    /** {@link #session(Path)}, also writing the graph as optimized to {@code optimizedOut} (null: not). */
    public static OrtSession session(Path model, Path optimizedOut) throws OrtException {
        OrtEnvironment e = env();
        try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
            o.disablePerSessionThreads();
            o.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
            o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            if (optimizedOut != null) {
                o.setOptimizedModelFilePath(optimizedOut.toAbsolutePath().toString());
            }
            return e.createSession(model.toAbsolutePath().toString(), o);
        }
    }

    /** A float32 or int64 tensor as an ONNX Runtime tensor over a direct buffer (copies once). */
    public static OnnxTensor toOrt(Tensor t) throws OrtException {
        ByteBuffer src = t.bytes().order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer direct = ByteBuffer.allocateDirect(Math.toIntExact(t.byteSize())).order(ByteOrder.nativeOrder());
        if (t.dtype() == DataType.FLOAT) {
            FloatBuffer f = direct.asFloatBuffer();
            f.put(src.asFloatBuffer());
            f.rewind();
            return OnnxTensor.createTensor(env(), f, t.shape());
        }
        if (t.dtype() == DataType.INT64) {
            LongBuffer l = direct.asLongBuffer();
            l.put(src.asLongBuffer());
            l.rewind();
            return OnnxTensor.createTensor(env(), l, t.shape());
        }
        throw new IllegalArgumentException("benchmark inputs are float32 or int64, got " + t.dtype());
    }

    /** Every tensor of {@code feeds} as ONNX Runtime tensors, in order. */
    public static Map<String, OnnxTensor> toOrt(Map<String, Tensor> feeds) throws OrtException {
        Map<String, OnnxTensor> out = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, Tensor> e : feeds.entrySet()) {
                out.put(e.getKey(), toOrt(e.getValue()));
            }
        } catch (OrtException | RuntimeException e) {
            close(out);
            throw e;
        }
        return out;
    }

    /** Closes what is not null; never throws. */
    public static void close(AutoCloseable... things) {
        for (AutoCloseable c : things) {
            if (c != null) {
                try {
                    c.close();
                } catch (Exception ignored) {
                    // closing native handles in a benchmark teardown: nothing more to do
                }
            }
        }
    }

    public static void close(Map<String, OnnxTensor> tensors) {
        if (tensors != null) {
            tensors.values().forEach(OrtSupport::close);
        }
    }
}
