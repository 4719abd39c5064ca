package io.peft4j.devices.ort;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.adapter.BaseFingerprint;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.peft.InjectMode;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.pkg.ModelPackage;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Ort;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Model packages written with core's API alone (the exporter sits above this module): side
 * packages whose {@code .onnx_adapter} files come from {@link Peft#inject} on the base graph, as
 * the exporter makes them, so that the backend's own conversion of bundles can be checked
 * against them; multi and merged packages; references computed unmerged.
 */
final class TestPackages {

    private TestPackages() {
    }

    static Model copy(Model m) {
        return OnnxIO.read(OnnxIO.toBytes(m), "copy");
    }

    /** A LoRA side package; adapters share their target modules, the graph's inputs are padded to {@code maxRank}. */
    static Path side(Path dir, Model base, Map<String, AdapterBundle> adapters, int maxRank) {
        Model model = copy(base);
        AdapterBundle first = adapters.values().iterator().next();
        Map<String, Tensor> padded = new LinkedHashMap<>();
        first.tensors().forEach((k, v) -> {
            int axis = SideAdapters.padAxis(k);
            padded.put(k, axis >= 0 ? SideAdapters.padRank(v, axis, maxRank) : v);
        });
        AdapterConfig c = first.config();
        AdapterBundle union = new AdapterBundle(AdapterConfig.lora(maxRank, c.loraAlpha(), c.targetModules()).withPeft4j(c.peft4j()),
                padded);
        Peft.inject(model, AdapterBinding.bind(model, union), InjectMode.INPUTS_WITH_DEFAULTS);
        try (ModelPackage.Writer w = ModelPackage.writer(dir)) {
            OnnxIO.write(model, w.stage().resolve("model.onnx"));
            List<Manifest.Adapter> entries = new ArrayList<>();
            for (Map.Entry<String, AdapterBundle> a : adapters.entrySet()) {
                Model scratch = copy(base);
                Map<String, Tensor> params = new LinkedHashMap<>();
                Peft.inject(scratch, AdapterBinding.bind(scratch, a.getValue()), InjectMode.INPUTS).feeds().forEach((k, v) -> {
                    int axis = SideAdapters.padAxis(k);
                    params.put(k, axis >= 0 ? SideAdapters.padRank(v, axis, maxRank) : v);
                });
                String bundle = "adapters/" + a.getKey();
                a.getValue().write(w.stage().resolve(bundle));
                OnnxAdapterFile.write(w.stage().resolve(bundle + OnnxAdapterFile.EXTENSION), params, 1, 1);
                entries.add(new Manifest.Adapter(a.getKey(), 0, bundle, bundle + OnnxAdapterFile.EXTENSION,
                        a.getValue().config().peftType(), a.getValue().config().r()));
            }
            return w.commit(manifest(base, Manifest.Mode.side, maxRank, entries, null)).dir();
        }
    }

    /** A multi package: adapter k (in map order) has index k + 1. */
    static Path multi(Path dir, Model base, Map<String, AdapterBundle> adapters, int maxRank) {
        Model model = copy(base);
        List<AdapterBinding> bindings = new ArrayList<>();
        adapters.values().forEach(b -> bindings.add(AdapterBinding.bind(model, b)));
        Peft.injectStacked(model, bindings, maxRank);
        try (ModelPackage.Writer w = ModelPackage.writer(dir)) {
            OnnxIO.write(model, w.stage().resolve("model.onnx"));
            List<Manifest.Adapter> entries = new ArrayList<>();
            int k = 1;
            for (Map.Entry<String, AdapterBundle> a : adapters.entrySet()) {
                String bundle = "adapters/" + a.getKey();
                a.getValue().write(w.stage().resolve(bundle));
                entries.add(new Manifest.Adapter(a.getKey(), k++, bundle, null, a.getValue().config().peftType(),
                        a.getValue().config().r()));
            }
            return w.commit(manifest(base, Manifest.Mode.multi, maxRank, entries, null)).dir();
        }
    }

    /** A merged package of one adapter. */
    static Path merged(Path dir, Model base, String name, AdapterBundle adapter) {
        Model model = copy(base);
        Peft.merge(model, AdapterBinding.bind(model, adapter));
        try (ModelPackage.Writer w = ModelPackage.writer(dir)) {
            OnnxIO.write(model, w.stage().resolve("model.onnx"));
            adapter.write(w.stage().resolve("adapters/" + name));
            List<Manifest.Adapter> entries = List.of(new Manifest.Adapter(name, 0, "adapters/" + name, null,
                    adapter.config().peftType(), adapter.config().r()));
            return w.commit(manifest(base, Manifest.Mode.merged, 0, entries, name)).dir();
        }
    }

    private static Manifest manifest(Model base, Manifest.Mode mode, int maxRank, List<Manifest.Adapter> adapters,
                                     String merged) {
        return new Manifest(Manifest.FORMAT_VERSION, mode, "model.onnx", BaseFingerprint.of(base), "fp32",
                List.of(new Manifest.Value("x", "FLOAT", List.of("batch", 1, 8, 8))),
                List.of(new Manifest.Value("logits", "FLOAT", List.of("batch", 3))), maxRank, adapters, merged, List.of(),
                null, null);
    }

    /** The adapter applied unmerged (tensors as initializers beside the base weights), run in ONNX Runtime. */
    static Tensor reference(Model base, AdapterBundle adapter, Tensor x) {
        Model ref = copy(base);
        if (adapter != null) {
            Peft.inject(ref, AdapterBinding.bind(ref, adapter), InjectMode.INITIALIZERS);
        }
        return Ort.run(ref, Map.of("x", x)).get("logits");
    }
}
