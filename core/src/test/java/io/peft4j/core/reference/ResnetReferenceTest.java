package io.peft4j.core.reference;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.modules.TargetFinder;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.tensor.Npy;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.Ort;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The PyTorch reference fixture (make_resnet18_reference.py) is about the same model as
 * ../shared/models/resnet18.onnx: its base output matches ONNX Runtime's, and its adapter's modules
 * are the targetable layers peft4j finds.
 */
class ResnetReferenceTest {

    static Path dir() throws Exception {
        return Path.of(ResnetReferenceTest.class.getResource("/reference/resnet18-lora/x.npy").toURI()).getParent();
    }

    @Test
    void pytorchBaseOutputMatchesOnnxRuntime() throws Exception {
        Path model = Assets.shared("models/resnet18.onnx");
        Tensor x = Npy.read(dir().resolve("x.npy"));
        Tensor y0 = Npy.read(dir().resolve("y0.npy"));
        Tensor ort = Ort.run(model, Map.of("input", x)).get("logits");
        double scale = 0;
        for (float v : y0.toFloatArray()) {
            scale = Math.max(scale, Math.abs(v));
        }
        assertTrue(Ort.maxAbsDiff(y0, ort) <= 1e-5 * Math.max(1, scale), "max diff " + Ort.maxAbsDiff(y0, ort));
    }

    @Test
    void adapterModulesAreTheTargetableLayers() throws Exception {
        AdapterBundle b = AdapterBundle.read(dir().resolve("adapter"));
        Set<String> targets = TargetFinder.find(OnnxIO.read(Assets.shared("models/resnet18.onnx")).graph()).stream()
                .map(TargetLayer::path).collect(Collectors.toSet());
        assertEquals(targets, b.byModule().keySet());
        assertEquals(4, b.config().r());
    }
}
