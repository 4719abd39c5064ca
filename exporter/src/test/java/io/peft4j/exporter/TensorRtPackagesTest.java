package io.peft4j.exporter;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.devices.AdapterSelection;
import io.peft4j.devices.InferenceBackend;
import io.peft4j.devices.ort.OrtBackend;
import io.peft4j.devices.trt.EngineSettings;
import io.peft4j.devices.trt.TensorRt;
import io.peft4j.devices.trt.TensorRtBackend;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static io.peft4j.exporter.ExportTests.relDiff;
import static io.peft4j.exporter.ExportTests.rowDiff;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Exported packages on TensorRT against ONNX Runtime on the CPU (GPU integration tests: skipped,
 * with the probe's reason, where TensorRT cannot run). fp32 engines (TF32 off) agree with ONNX
 * Runtime to 1e-4 relative, fp16 engines to 3e-2; side adapters switch by binding, per-row
 * selections and multi packages mix adapters in one call, adapters registered at run time work on
 * side packages and, by refitting, on base models — a refit back to an adapter gives bit-for-bit
 * what the first refit gave (each refit starts from the base weights) — and a cached engine is
 * reused.
 */
class TensorRtPackagesTest {

    static final double FP32_TOL = 1e-4;
    static final double FP16_TOL = 3e-2;

    static EngineSettings fp32() {
        return EngineSettings.defaults().withPrecision("fp32").withBatch(4, 8);
    }

    @BeforeEach
    void needTensorRt() {
        TensorRt.Availability a = TensorRt.availability();
        Assumptions.assumeTrue(a.usable(), "TensorRT GPU tests skipped: " + a.reason());
        System.out.println("TensorRT " + a.version() + " on " + a.gpus() + ", CUDA " + a.cuda());
    }

    record Exported(Path base, Path merged, Path side, Path multi, AdapterBundle a, AdapterBundle b) {
    }

    static Exported export(Path baseFile, AdapterConfig ca, AdapterConfig cb, double sigma, Path tmp) {
        Model base = OnnxIO.read(baseFile);
        AdapterBundle a = ExportTests.randomAdapter(base, ca, 1, sigma);
        AdapterBundle b = ExportTests.randomAdapter(base, cb, 2, sigma);
        List<NamedAdapter> both = List.of(new NamedAdapter("a", a), new NamedAdapter("b", b));
        Exporter.export(base, both.subList(0, 1), ExportOptions.of(Manifest.Mode.merged).withValidate(false), tmp.resolve("merged"));
        Exporter.export(base, both, ExportOptions.of(Manifest.Mode.side).withValidate(false), tmp.resolve("side"));
        Exporter.export(base, both, ExportOptions.of(Manifest.Mode.multi).withValidate(false), tmp.resolve("multi"));
        return new Exported(baseFile, tmp.resolve("merged"), tmp.resolve("side"), tmp.resolve("multi"), a, b);
    }

    static Tensor out(InferenceBackend be, Map<String, Tensor> in, AdapterSelection s) {
        return be.run(in, s, Set.of()).outputs().values().iterator().next();
    }

    static void everyMode(Exported e, Map<String, Tensor> in, EngineSettings settings, double tol) {
        AdapterSelection a = AdapterSelection.of("a");
        AdapterSelection b = AdapterSelection.of("b");
        AdapterSelection none = AdapterSelection.none();
        int batch = Math.toIntExact(in.values().iterator().next().dim(0));
        String[] rows = new String[batch];
        for (int r = 0; r < batch; r++) {
            rows[r] = r % 3 == 0 ? null : r % 3 == 1 ? "a" : "b";
        }
        AdapterSelection mixed = AdapterSelection.perRow(Arrays.asList(rows));
        try (OrtBackend ob = OrtBackend.open(e.base()); OrtBackend os = OrtBackend.open(e.side());
             TensorRtBackend tb = TensorRtBackend.open(e.base(), settings);
             TensorRtBackend tm = TensorRtBackend.open(e.merged(), settings);
             TensorRtBackend ts = TensorRtBackend.open(e.side(), settings);
             TensorRtBackend tk = TensorRtBackend.open(e.multi(), settings)) {
            Tensor base = out(ob, in, none);
            Tensor refA = out(os, in, a);
            Tensor refB = out(os, in, b);
            assertTrue(relDiff(refA, base) > 1e-3 && relDiff(refB, base) > 1e-3, "the adapters must change the output");
            double dBase = relDiff(out(tb, in, none), base);
            double dMerged = relDiff(out(tm, in, a), refA);
            double dSideOff = relDiff(out(ts, in, none), base);
            double dSideA = relDiff(out(ts, in, a), refA);
            double dSideB = relDiff(out(ts, in, b), refB);
            Tensor sideMixed = out(ts, in, mixed);
            Tensor multiMixed = out(tk, in, mixed);
            double dMixed = 0;
            for (int r = 0; r < batch; r++) {
                Tensor ref = rows[r] == null ? base : rows[r].equals("a") ? refA : refB;
                dMixed = Math.max(dMixed, Math.max(rowDiff(sideMixed, ref, r), rowDiff(multiMixed, ref, r)));
            }
            System.out.printf("TensorRT %s %s: base %.2e merged %.2e side-off %.2e side-a %.2e side-b %.2e mixed %.2e%n",
                    e.base().getFileName(), settings.precision(), dBase, dMerged, dSideOff, dSideA, dSideB, dMixed);
            for (double d : new double[] {dBase, dMerged, dSideOff, dSideA, dSideB, dMixed}) {
                assertTrue(d <= tol, "TensorRT vs ONNX Runtime: " + d + " > " + tol);
            }
        }
    }

    @Test
    void tinyCnnEveryModeFp32(@TempDir Path tmp) {
        Path base = tmp.resolve("cnn.onnx");
        OnnxIO.write(TinyModels.cnn(3), base);
        Exported e = export(base, AdapterConfig.lora(2, 4, List.of("conv1", "fc1", "fc2")),
                AdapterConfig.lora(3, 3, List.of("fc1")), 0.3, tmp);
        everyMode(e, Map.of("x", TinyModels.input(7, 5)), fp32(), FP32_TOL);
    }

    @Test
    void resnet18EveryModeFp32AndFp16(@TempDir Path tmp) {
        Path file = Assets.shared("models/resnet18.onnx");
        Model m = OnnxIO.read(file);
        Exported e = export(file, AdapterConfig.lora(4, 8, ExportTests.paths(m, t -> true)),
                AdapterConfig.lora(2, 4, List.of("conv1", "layer3.0.conv1", "fc")), 0.02, tmp);
        Map<String, Tensor> in = ExportTests.image(6, 11);
        everyMode(e, in, fp32(), FP32_TOL);
        everyMode(e, in, fp32().withPrecision("fp16"), FP16_TOL);
    }

    @Test
    void miniLmSideAndMultiFp32(@TempDir Path tmp) {
        Path file = Assets.miniLm();
        Exported e = export(file, AdapterConfig.lora(8, 16, List.of("query", "value")),
                AdapterConfig.lora(4, 8, List.of("query")), 0.05, tmp);
        everyMode(e, TinyModels.bertTokens(4, 3), fp32(), FP32_TOL);
    }

    @Test
    void adaptersRegisteredAtRunTime(@TempDir Path tmp) {
        Path base = tmp.resolve("cnn.onnx");
        OnnxIO.write(TinyModels.cnn(4), base);
        Exported e = export(base, AdapterConfig.lora(2, 4, List.of("conv1", "fc1", "fc2")),
                AdapterConfig.lora(2, 4, List.of("fc2")), 0.3, tmp);
        AdapterBundle c = ExportTests.randomAdapter(OnnxIO.read(base), AdapterConfig.lora(2, 2, List.of("fc1", "fc2")), 9, 0.3);
        Map<String, Tensor> in = Map.of("x", TinyModels.input(8, 4));
        try (OrtBackend os = OrtBackend.open(e.side()); TensorRtBackend ts = TensorRtBackend.open(e.side(), fp32())) {
            os.register("c", c);
            ts.register("c", c);
            assertTrue(relDiff(out(ts, in, AdapterSelection.of("c")), out(os, in, AdapterSelection.of("c"))) <= FP32_TOL);
            // replaced: later runs use the new version
            ts.register("c", e.a());
            os.register("c", e.a());
            assertTrue(relDiff(out(ts, in, AdapterSelection.of("c")), out(os, in, AdapterSelection.of("a"))) <= FP32_TOL);
            assertEquals(2, ts.adapters().stream().filter(x -> x.name().equals("c")).findFirst().orElseThrow().version());
            assertTrue(ts.unregister("c"));
            Peft4jException gone = assertThrows(Peft4jException.class, () -> out(ts, in, AdapterSelection.of("c")));
            assertEquals(Peft4jException.ErrorCode.NOT_FOUND, gone.code());
        }
    }

    @Test
    void refitSwitchesMergedAdaptersFromTheBaseWeights(@TempDir Path tmp) {
        Path file = Assets.shared("models/resnet18.onnx");
        Model m = OnnxIO.read(file);
        Exported e = export(file, AdapterConfig.lora(4, 8, ExportTests.paths(m, t -> true)),
                AdapterConfig.lora(2, 4, List.of("conv1", "layer3.0.conv1", "fc")), 0.02, tmp);
        Map<String, Tensor> in = ExportTests.image(4, 12);
        try (OrtBackend ob = OrtBackend.open(file); OrtBackend os = OrtBackend.open(e.side());
             TensorRtBackend tr = TensorRtBackend.open(file, fp32().withRefittable(true))) {
            tr.register("a", e.a());
            tr.register("b", e.b());
            Tensor a1 = out(tr, in, AdapterSelection.of("a"));
            Tensor b1 = out(tr, in, AdapterSelection.of("b"));
            Tensor base = out(tr, in, AdapterSelection.none());
            Tensor a2 = out(tr, in, AdapterSelection.of("a"));
            System.out.printf("TensorRT refit resnet18: a %.2e b %.2e base %.2e, last refit %.3f s%n",
                    relDiff(a1, out(os, in, AdapterSelection.of("a"))), relDiff(b1, out(os, in, AdapterSelection.of("b"))),
                    relDiff(base, out(ob, in, AdapterSelection.none())), tr.lastRefitSeconds());
            assertTrue(relDiff(a1, out(os, in, AdapterSelection.of("a"))) <= FP32_TOL);
            assertTrue(relDiff(b1, out(os, in, AdapterSelection.of("b"))) <= FP32_TOL);
            assertTrue(relDiff(base, out(ob, in, AdapterSelection.none())) <= FP32_TOL);
            assertArrayEquals(a1.toFloatArray(), a2.toFloatArray(), "a refit back to 'a' gives what the first refit gave");
        }
    }

    @Test
    void cachedEnginesAreReusedAndBadInputIsRefused(@TempDir Path tmp) {
        Path base = tmp.resolve("cnn.onnx");
        OnnxIO.write(TinyModels.cnn(5), base);
        EngineSettings s = fp32().withCacheDir(tmp.resolve("engines"));
        Map<String, Tensor> in = Map.of("x", TinyModels.input(1, 3));
        Tensor first;
        try (TensorRtBackend t = TensorRtBackend.open(base, s)) {
            assertFalse(t.engineBuild().fromCache());
            first = out(t, in, AdapterSelection.none());
            Peft4jException big = assertThrows(Peft4jException.class,
                    () -> t.run(Map.of("x", TinyModels.input(1, 9)), null));
            assertTrue(big.getMessage().contains("maximum of 8"), big.getMessage());
            Peft4jException shape = assertThrows(Peft4jException.class,
                    () -> t.run(Map.of("x", TinyModels.randn(new Random(1), 2, 1, 9, 9)), null));
            assertEquals(Peft4jException.ErrorCode.SHAPE_MISMATCH, shape.code());
            Peft4jException adapter = assertThrows(Peft4jException.class, () -> t.run(in, "a"));
            assertTrue(adapter.getMessage().contains("no adapter"), adapter.getMessage());
        }
        try (TensorRtBackend t = TensorRtBackend.open(base, s)) {
            assertTrue(t.engineBuild().fromCache());
            assertArrayEquals(first.toFloatArray(), out(t, in, AdapterSelection.none()).toFloatArray());
        }
    }
}
