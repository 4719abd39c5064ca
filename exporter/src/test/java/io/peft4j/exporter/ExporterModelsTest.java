package io.peft4j.exporter;

import io.peft4j.devices.ort.OrtBackend;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.OnnxChecker;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;
import java.util.function.Function;
import java.util.function.Supplier;
import java.util.stream.Stream;

import static io.peft4j.exporter.ExportTests.paths;
import static io.peft4j.exporter.ExportTests.relDiff;
import static io.peft4j.exporter.ExportTests.rowDiff;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Real models through {@link Exporter} and the package files it writes, in every mode: for two
 * adapters a and b, the merged package of a, the side package of both (ONNX Runtime's LoRA API)
 * and the multi package of both (one batch mixing base, a and b) agree to 1e-4 relative, and the
 * base model, the side package without adapter and multi index 0 to 1e-6. Every graph passes
 * the ONNX checker.
 */
class ExporterModelsTest {

    static final double ADAPTER_TOL = 1e-4;
    static final double OFF_TOL = 1e-6;

    record Case(String name, Supplier<Path> model, BiFunction<Integer, Long, Map<String, Tensor>> inputs,
                Function<Model, AdapterConfig> a, Function<Model, AdapterConfig> b, double sigma) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Case> cases() {
        Supplier<Path> resnet = () -> Assets.shared("models/resnet18.onnx");
        Supplier<Path> mobilenet = () -> Assets.shared("models/mobilenet_v3_small.onnx");
        Supplier<Path> miniLm = Assets::miniLm;
        return Stream.of(
                new Case("resnet18-lora", resnet, ExportTests::image,
                        m -> AdapterConfig.lora(4, 8, paths(m, t -> true)),
                        m -> AdapterConfig.lora(2, 4, List.of("conv1", "layer3.0.conv1", "fc")), 0.02),
                new Case("resnet18-ia3", resnet, ExportTests::image,
                        m -> AdapterConfig.ia3(paths(m, t -> true), List.of("fc", "layer4.1.conv2")),
                        m -> AdapterConfig.ia3(List.of("layer1.0.conv1", "fc"), List.of("fc")), 0.1),
                new Case("mobilenet_v3_small-lora", mobilenet, ExportTests::image,
                        m -> AdapterConfig.lora(4, 8, paths(m, t -> t.groups() == 1)),
                        m -> AdapterConfig.lora(8, 8, List.of("classifier.0", "classifier.3")), 0.02),
                new Case("mobilenet_v3_small-ia3", mobilenet, ExportTests::image,
                        m -> AdapterConfig.ia3(paths(m, t -> true), List.of("classifier.3", "features.1.block.0.0")),
                        m -> AdapterConfig.ia3(List.of("classifier.3"), List.of("classifier.3")), 0.1),
                new Case("all-MiniLM-L6-v2-lora", miniLm, ExportTests::tokens,
                        m -> AdapterConfig.lora(8, 16, List.of("query", "value")),
                        m -> AdapterConfig.lora(4, 8, List.of("query")), 0.05),
                new Case("all-MiniLM-L6-v2-ia3", miniLm, ExportTests::tokens,
                        m -> AdapterConfig.ia3(List.of("key", "value", "intermediate.dense", "output.dense"),
                                List.of("output.dense")),
                        m -> AdapterConfig.ia3(List.of("value"), List.of()), 0.1));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void mergedSideAndMultiAgree(Case c, @TempDir Path tmp) {
        long t0 = System.nanoTime();
        Path baseFile = c.model().get();
        Model base = OnnxIO.read(baseFile);
        AdapterBundle a = ExportTests.randomAdapter(base, c.a().apply(base), 1, c.sigma());
        AdapterBundle b = ExportTests.randomAdapter(base, c.b().apply(base), 2, c.sigma());
        List<NamedAdapter> both = List.of(new NamedAdapter("a", a), new NamedAdapter("b", b));
        // validation runs on the multi export only: the test compares every package itself
        ExportOptions quiet = ExportOptions.of(Manifest.Mode.merged).withValidate(false);
        Exporter.export(base, both.subList(0, 1), quiet, tmp.resolve("merged"));
        Exporter.export(base, both, ExportOptions.of(Manifest.Mode.side).withValidate(false), tmp.resolve("side"));
        ExportReport multi = Exporter.export(base, both, ExportOptions.of(Manifest.Mode.multi), tmp.resolve("multi"));
        assertTrue(multi.ok(), multi.checks().toString());
        for (String p : List.of("merged", "side", "multi")) {
            OnnxChecker.check(tmp.resolve(p).resolve("model.onnx"));
        }

        Map<String, Tensor> in = c.inputs().apply(3, 5L);
        Map<String, Tensor> mixed = new LinkedHashMap<>(in);
        mixed.put("adapter_index", Tensor.ofLongs(new long[] {3}, 0, 1, 2));
        Tensor yBase;
        Tensor yMergedA;
        Tensor ySideOff;
        Tensor ySideA;
        Tensor ySideB;
        Tensor yMulti;
        Tensor yMulti0;
        try (OrtBackend pb = OrtBackend.open(baseFile); OrtBackend pm = OrtBackend.open(tmp.resolve("merged"));
             OrtBackend ps = OrtBackend.open(tmp.resolve("side")); OrtBackend pk = OrtBackend.open(tmp.resolve("multi"))) {
            String out = pb.info().outputs().get(0).name();
            yBase = pb.run(in, null).get(out);
            yMergedA = pm.run(in, "a").get(out);
            ySideOff = ps.run(in, null).get(out);
            ySideA = ps.run(in, "a").get(out);
            ySideB = ps.run(in, "b").get(out);
            yMulti = pk.run(mixed, null).get(out);
            yMulti0 = pk.run(in, null).get(out);
        }
        double mergedVsSide = relDiff(yMergedA, ySideA);
        double rowA = Math.max(rowDiff(yMulti, ySideA, 1), rowDiff(yMulti, yMergedA, 1));
        double rowB = rowDiff(yMulti, ySideB, 2);
        double off = relDiff(ySideOff, yBase);
        double row0 = Math.max(rowDiff(yMulti, yBase, 0), relDiff(yMulti0, yBase));
        System.out.printf("export %-24s merged-vs-side(a) %.2e  multi-row-a %.2e  multi-row-b %.2e  side-off-vs-base %.2e  "
                        + "multi-0-vs-base %.2e  adapter effect %.2e / %.2e  (%.1f s)%n", c, mergedVsSide, rowA, rowB, off, row0,
                relDiff(ySideA, yBase), relDiff(ySideB, yBase), (System.nanoTime() - t0) / 1e9);
        assertTrue(relDiff(ySideA, yBase) > 1e-3 && relDiff(ySideB, yBase) > 1e-3, c + ": adapters must change the output");
        assertTrue(mergedVsSide <= ADAPTER_TOL, c + ": merged vs side " + mergedVsSide);
        assertTrue(rowA <= ADAPTER_TOL, c + ": multi row a " + rowA);
        assertTrue(rowB <= ADAPTER_TOL, c + ": multi row b " + rowB);
        assertTrue(off <= OFF_TOL, c + ": side without adapter vs base " + off);
        assertTrue(row0 <= OFF_TOL, c + ": multi index 0 vs base " + row0);
    }
}
