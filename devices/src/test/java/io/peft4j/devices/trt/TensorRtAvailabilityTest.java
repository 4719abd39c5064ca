package io.peft4j.devices.trt;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.core.onnx.OnnxIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The TensorRT probe on whatever machine runs the tests: where TensorRT cannot run (no GPU, no
 * libnvinfer) it says why and opening a backend fails with that reason, before anything else;
 * where it can, it reports a TensorRT 10 version and at least one GPU. Settings are validated.
 */
class TensorRtAvailabilityTest {

    @Test
    void probeGivesAReasonOrAVersion(@TempDir Path tmp) {
        TensorRt.Availability a = TensorRt.availability();
        System.out.println("TensorRT probe: " + a);
        if (a.usable()) {
            assertNull(a.reason());
            assertNotNull(a.version());
            assertTrue(a.version().startsWith("10."), a.version());
            assertFalse(a.gpus().isEmpty());
            return;
        }
        assertNotNull(a.reason());
        assertFalse(a.reason().isBlank());
        Path model = tmp.resolve("cnn.onnx");
        OnnxIO.write(TinyModels.cnn(1), model);
        Peft4jException e = assertThrows(Peft4jException.class, () -> TensorRtBackend.open(model, EngineSettings.defaults()));
        assertEquals(Peft4jException.ErrorCode.UNSUPPORTED, e.code());
        assertTrue(e.getMessage().contains(a.reason()), e.getMessage());
    }

    @Test
    void probeIsCachedAndStable() {
        assertTrue(TensorRt.availability() == TensorRt.availability());
    }

    @Test
    void versionsDecode() {
        assertEquals("10.3.0", TensorRt.trtVersion(100300));
        assertEquals("10.15.1", TensorRt.trtVersion(101501));
        assertEquals("8.6.1", TensorRt.trtVersion(8601));
    }

    @Test
    void loadFailuresAreExplained() {
        String glibc = TensorRt.explain(new UnsatisfiedLinkError("libjninvinfer.so: /lib/aarch64-linux-gnu/libc.so.6: "
                + "version `GLIBC_2.34' not found"));
        assertTrue(glibc.contains("JetPack 5"), glibc);
        String missing = TensorRt.explain(new UnsatisfiedLinkError("no nvinfer in java.library.path"));
        assertTrue(missing.contains("LD_LIBRARY_PATH"), missing);
        String driver = TensorRt.explain(new UnsatisfiedLinkError("no jnicudart in java.library.path: /usr/lib: "
                + "/root/.javacpp/cache/x/libjnicudart.so: libcuda.so.1: cannot open shared object file: No such file or directory"));
        assertEquals("no NVIDIA driver here (libcuda.so.1 not found)", driver);
        String trt = TensorRt.explain(new UnsatisfiedLinkError("/x/libjninvinfer.so: libnvinfer.so.10: cannot open shared object "
                + "file: No such file or directory"));
        assertTrue(trt.startsWith("TensorRT's libnvinfer.so.10 is not installed"), trt);
    }

    @Test
    void settingsAreValidated() {
        assertEquals("fp16", EngineSettings.defaults().precision());
        Peft4jException int8 = assertThrows(Peft4jException.class, () -> EngineSettings.defaults().withPrecision("int8"));
        assertEquals(Peft4jException.ErrorCode.UNSUPPORTED, int8.code());
        assertTrue(int8.getMessage().contains("calibration"));
        assertThrows(Peft4jException.class, () -> EngineSettings.defaults().withPrecision("fp64"));
        assertThrows(Peft4jException.class, () -> EngineSettings.defaults().withBatch(16, 8));
        assertThrows(Peft4jException.class, () -> new EngineSettings("fp32", 1024, 8, 8, 16, -1, false, null));
        assertThrows(Peft4jException.class, () -> new EngineSettings("fp32", 1L << 30, 8, 8, 16, -2, false, null));
    }
}
