package io.peft4j.exporter;

import io.peft4j.devices.ort.OnnxAdapterFile;
import io.peft4j.devices.ort.OrtBackend;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.pkg.ModelPackage;
import io.peft4j.core.tensor.Npy;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.OnnxChecker;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * ONNX Runtime's own LoRA API, driven directly (not through {@link OrtBackend}), on our exported
 * side package and our {@code .onnx_adapter} files: {@code OrtLoraAdapter} +
 * {@code RunOptions.addActiveLoraAdapter} gives the merged package's output, switching adapters
 * in one session needs no reload, and a run without one gives the base model.
 */
class ExportedSideOrtApiTest {

    @TempDir
    Path tmp;

    static Tensor run(OrtSession s, String input, Tensor x, OrtLoraAdapter adapter) throws OrtException {
        try (OnnxTensor t = Ort.toOrt(x); OrtSession.RunOptions o = new OrtSession.RunOptions()) {
            if (adapter != null) {
                o.addActiveLoraAdapter(adapter);
            }
            try (OrtSession.Result r = s.run(Map.of(input, t), o)) {
                return Ort.fromOrt((OnnxTensor) r.get(0));
            }
        }
    }

    static OrtSession open(Path model) throws OrtException {
        try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
            o.setSessionLogLevel(ai.onnxruntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR);
            return Ort.env().createSession(model.toString(), o);
        }
    }

    /** Side package of adapters, merged package of each; ORT's API on the side one equals each merged one. */
    void check(Model base, String input, Tensor x, Map<String, AdapterBundle> adapters, double tol) throws OrtException {
        List<NamedAdapter> named = adapters.entrySet().stream().map(e -> new NamedAdapter(e.getKey(), e.getValue())).toList();
        ModelPackage side = ModelPackage.open(Exporter.export(base, named, ExportOptions.of(Manifest.Mode.side),
                tmp.resolve("side")).out());
        OnnxChecker.check(side.modelFile());
        Tensor yBase = Ort.run(base, Map.of(input, x)).values().iterator().next();
        try (OrtSession s = open(side.modelFile())) {
            assertEquals(Set.of(input), s.getInputNames(), "adapter inputs have defaults: not required");
            assertTrue(ExportTests.relDiff(run(s, input, x, null), yBase) <= 1e-6, "no adapter = base");
            for (NamedAdapter a : named) {
                Path merged = Exporter.export(base, List.of(a), ExportOptions.of(Manifest.Mode.merged).withValidate(false),
                        tmp.resolve("merged-" + a.name())).out().resolve("model.onnx");
                OnnxChecker.check(merged);
                Tensor want = Ort.run(merged, Map.of(input, x)).values().iterator().next();
                Path file = side.dir().resolve(side.manifest().adapter(a.name()).onnxAdapter());
                OnnxAdapterFile parsed = OnnxAdapterFile.read(file);
                assertTrue(parsed.parameters().keySet().stream().allMatch(k -> k.startsWith("base_model.model.")));
                try (OrtLoraAdapter lora = OrtLoraAdapter.create(file.toString())) {
                    double d = ExportTests.relDiff(run(s, input, x, lora), want);
                    System.out.printf("ORT LoRA API on exported side package, adapter %-6s vs merged package: %.2e (%d params)%n",
                            a.name(), d, parsed.parameters().size());
                    assertTrue(d <= tol, a.name() + ": " + d);
                }
                // switching back to no adapter in the same session
                assertTrue(ExportTests.relDiff(run(s, input, x, null), yBase) <= 1e-6);
            }
        }
    }

    @Test
    void tinyModelTwoAdaptersOfDifferentRanks() throws OrtException {
        Model m = TinyModels.cnn(3);
        Map<String, AdapterBundle> a = new LinkedHashMap<>();
        a.put("r2", ExportTests.randomAdapter(m, AdapterConfig.lora(2, 4, List.of("conv1", "fc1", "fc2")), 1, 0.3));
        a.put("r5", ExportTests.randomAdapter(m, AdapterConfig.lora(5, 5, List.of("fc2")), 2, 0.3));
        check(m, "x", TinyModels.input(9, 3), a, 1e-4);
    }

    @Test
    void resnet18WithThePytorchReferenceAdapter() throws OrtException {
        Model m = OnnxIO.read(Assets.shared("models/resnet18.onnx"));
        Path ref = Assets.resnetReference();
        check(m, "input", Npy.read(ref.resolve("x.npy")), Map.of("adapter", AdapterBundle.read(ref.resolve("adapter"))), 1e-4);
    }
}
