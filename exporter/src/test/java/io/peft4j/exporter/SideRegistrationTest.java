package io.peft4j.exporter;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TestAdapters;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.devices.ort.OrtBackend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An adapter registered at run time on an exported side package (the backend converts its PEFT
 * bundle itself) gives what the exporter's {@code .onnx_adapter} file of the same adapter gives,
 * on float32 and on {@code --fp16} packages (whose weights are read through Casts).
 */
class SideRegistrationTest {

    @ParameterizedTest(name = "fp16 = {0}")
    @ValueSource(booleans = {false, true})
    void registeredBundleEqualsTheExportedAdapter(boolean fp16, @TempDir Path tmp) {
        Model base = TinyModels.cnn(3);
        List<String> targets = List.of("conv1", "fc1", "fc2");
        AdapterBundle a = TestAdapters.random(base, AdapterConfig.lora(2, 4, targets), 1, 0.3);
        AdapterBundle b = TestAdapters.random(base, AdapterConfig.lora(3, 6, targets), 2, 0.3);
        Exporter.export(base, List.of(new NamedAdapter("a", a), new NamedAdapter("b", b)),
                ExportOptions.of(Manifest.Mode.side).withFp16(fp16), tmp.resolve("p"));
        Tensor x = TinyModels.input(4, 5);
        try (OrtBackend be = OrtBackend.open(tmp.resolve("p"))) {
            be.register("a2", a);
            be.register("b2", b);
            for (String n : List.of("a", "b")) {
                Tensor exported = be.run(Map.of("x", x), n).get("logits");
                Tensor registered = be.run(Map.of("x", x), n + "2").get("logits");
                double d = Ort.maxRelDiff(exported, registered);
                assertTrue(d <= 1e-6, "adapter " + n + (fp16 ? " (fp16)" : "") + ": registered vs exported " + d);
                assertTrue(Ort.maxRelDiff(exported, be.run(Map.of("x", x), (String) null).get("logits")) > 1e-3,
                        "the adapter changes the output");
            }
        }
    }
}
