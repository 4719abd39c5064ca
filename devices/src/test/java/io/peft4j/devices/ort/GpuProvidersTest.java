package io.peft4j.devices.ort;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtProvider;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * ONNX Runtime's GPU providers as configured from {@link OrtBackend.GpuProvider}: the TensorRT
 * provider's optimization profile covers every fed input's dynamic axes, and where this ONNX
 * Runtime has no GPU provider (the CPU jar) opening fails with the reason instead of running on the
 * CPU unnoticed.
 */
class GpuProvidersTest {

    @Test
    void tensorRtProfileShapesCoverTheDynamicAxes() {
        Model m = TinyModels.cnn(1);
        String[] s = GpuProviders.profileShapes(m.graph(), 32);
        assertArrayEquals(new String[] {"x:1x1x8x8", "x:8x1x8x8", "x:32x1x8x8"}, s);
        Model bert = new Model("b", 17);
        bert.graph().addInput(io.peft4j.core.onnx.ValueInfos.tensor("ids", io.peft4j.core.tensor.DataType.INT64, "batch", "seq"));
        bert.graph().addInput(io.peft4j.core.onnx.ValueInfos.tensor("fixed", io.peft4j.core.tensor.DataType.FLOAT, 2, 3));
        assertArrayEquals(new String[] {"ids:1x1,fixed:2x3", "ids:4x128,fixed:2x3", "ids:4x256,fixed:2x3"},
                GpuProviders.profileShapes(bert.graph(), 4));
        Model still = new Model("s", 17);
        still.graph().addInput(io.peft4j.core.onnx.ValueInfos.tensor("fixed", io.peft4j.core.tensor.DataType.FLOAT, 2, 3));
        assertNull(GpuProviders.profileShapes(still.graph(), 4));
    }

    @Test
    void withoutTheGpuJarOpeningOnAGpuProviderSaysWhy(@TempDir Path tmp) {
        Assumptions.assumeFalse(OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA),
                "this ONNX Runtime has its CUDA provider; the test checks the refusal without it");
        Path model = tmp.resolve("m.onnx");
        OnnxIO.write(TinyModels.cnn(1), model);
        for (String kind : new String[] {"cuda", "tensorrt"}) {
            OrtBackend.Options o = new OrtBackend.Options(1, 1, true, new OrtBackend.GpuProvider(kind, 0, true, tmp, 1 << 20, 8));
            Peft4jException e = assertThrows(Peft4jException.class, () -> OrtBackend.open(model, o));
            assertEquals(Peft4jException.ErrorCode.UNSUPPORTED, e.code());
            assertTrue(e.getMessage().contains("-Pgpu"), e.getMessage());
        }
        assertThrows(Peft4jException.class, () -> new OrtBackend.GpuProvider("rocm", 0, true, null, 0, 8));
    }
}
