package io.peft4j.exporter;

import io.peft4j.devices.ort.OrtBackend;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.pkg.ModelPackage;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Npy;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.OnnxChecker;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --fp16}: weights stored as float16 behind Casts, inputs and outputs float32; every mode
 * stays within float16 rounding of the float32 package, and the model file halves.
 */
class Fp16ExportTest {

    static final double FP16_TOL = 1e-2;

    @TempDir
    Path tmp;

    @Test
    void resnet18EveryModeWithinFp16RoundingOfFp32() throws Exception {
        Path baseFile = Assets.shared("models/resnet18.onnx");
        Model base = OnnxIO.read(baseFile);
        Path ref = Assets.resnetReference();
        Tensor x = Npy.read(ref.resolve("x.npy"));
        Tensor y0 = Npy.read(ref.resolve("y0.npy"));
        Tensor y1 = Npy.read(ref.resolve("y1.npy"));
        AdapterBundle a = AdapterBundle.read(ref.resolve("adapter"));
        AdapterBundle b = ExportTests.randomAdapter(base, AdapterConfig.lora(2, 4, List.of("conv1", "fc")), 2, 0.02);
        List<NamedAdapter> both = List.of(new NamedAdapter("a", a), new NamedAdapter("b", b));
        long fp32Bytes = Files.size(baseFile);
        for (Manifest.Mode mode : List.of(Manifest.Mode.merged, Manifest.Mode.side, Manifest.Mode.multi)) {
            List<NamedAdapter> given = mode == Manifest.Mode.merged ? both.subList(0, 1) : both;
            ExportReport r = Exporter.export(base, given, ExportOptions.of(mode).withFp16(true).withProbe(Map.of("input", x), 0),
                    tmp.resolve(mode.name()));
            assertTrue(r.ok(), r.checks().toString());
            Path model = r.out().resolve("model.onnx");
            OnnxChecker.check(model);
            ModelPackage p = ModelPackage.open(r.out());
            assertEquals("fp16", p.manifest().precision());
            assertEquals(List.of(new Manifest.Value("input", "FLOAT", List.of("batch", 3, 64, 64))), p.manifest().inputs());
            assertEquals("FLOAT", p.manifest().outputs().get(0).type());
            long bytes = Files.size(model);
            assertTrue(bytes < fp32Bytes * 0.6, mode + ": " + bytes + " bytes vs float32 " + fp32Bytes);
            try (OrtBackend pr = OrtBackend.open(r.out())) {
                Tensor ya = pr.run(Map.of("input", x), "a").get("logits");
                assertEquals(DataType.FLOAT, ya.dtype());
                double withA = ExportTests.relDiff(ya, y1);
                double off = mode == Manifest.Mode.merged ? Double.NaN : ExportTests.relDiff(pr.run(Map.of("input", x), null).get("logits"), y0);
                System.out.printf("fp16 %-6s model.onnx %.1f MiB (float32 base %.1f MiB): adapter a vs PyTorch %.2e, no adapter vs "
                                + "PyTorch %.2e, validation max rel %.2e%n", mode, bytes / 1048576.0, fp32Bytes / 1048576.0, withA, off,
                        r.maxRel());
                assertTrue(withA <= FP16_TOL, mode + ": " + withA);
                assertTrue(mode == Manifest.Mode.merged || off <= FP16_TOL, mode + ": " + off);
            }
        }
    }
}
