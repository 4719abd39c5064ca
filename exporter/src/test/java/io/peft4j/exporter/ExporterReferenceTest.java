package io.peft4j.exporter;

import io.peft4j.devices.ort.OrtBackend;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.pkg.ModelPackage;
import io.peft4j.core.tensor.Npy;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.OnnxChecker;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The PyTorch reference (a PEFT LoRA adapter on resnet18, with PyTorch's outputs) through the
 * exporter and the written package files: merged and side with the adapter give PyTorch's adapted
 * output, side without it PyTorch's base output.
 */
class ExporterReferenceTest {

    static final double REL = 1e-4;

    @TempDir
    Path tmp;

    static double rel(Tensor got, Tensor want) {
        return ExportTests.relDiff(got, want);
    }

    @Test
    void mergedAndSideMatchPyTorch() {
        Path base = Assets.shared("models/resnet18.onnx");
        Path ref = Assets.resnetReference();
        Tensor x = Npy.read(ref.resolve("x.npy"));
        Tensor y0 = Npy.read(ref.resolve("y0.npy"));
        Tensor y1 = Npy.read(ref.resolve("y1.npy"));
        NamedAdapter adapter = NamedAdapter.read(ref.resolve("adapter").toString());
        assertEquals("adapter", adapter.name());

        ExportReport merged = Exporter.export(base, List.of(adapter), ExportOptions.of(Manifest.Mode.merged)
                .withProbe(Map.of("input", x), 0), tmp.resolve("P1"));
        ExportReport side = Exporter.export(base, List.of(adapter), ExportOptions.of(Manifest.Mode.side), tmp.resolve("P2"));
        for (ExportReport r : List.of(merged, side)) {
            assertTrue(r.ok(), r.checks().toString());
            OnnxChecker.check(r.out().resolve("model.onnx"));
            r.checks().forEach(c -> System.out.printf("resnet18 reference %-6s %-40s vs %-28s abs %.2e rel %.2e%n",
                    r.manifest().mode(), c.name(), c.reference(), c.maxAbs(), c.maxRel()));
        }
        try (OrtBackend p1 = OrtBackend.open(tmp.resolve("P1")); OrtBackend p2 = OrtBackend.open(tmp.resolve("P2"))) {
            double m = rel(p1.run(Map.of("input", x), null).get("logits"), y1);
            double s = rel(p2.run(Map.of("input", x), "adapter").get("logits"), y1);
            double off = rel(p2.run(Map.of("input", x), null).get("logits"), y0);
            System.out.printf("resnet18 vs PyTorch: merged %.2e, side %.2e, side off %.2e%n", m, s, off);
            assertTrue(m <= REL, "merged vs PyTorch y1: " + m);
            assertTrue(s <= REL, "side with adapter vs PyTorch y1: " + s);
            assertTrue(off <= REL, "side without adapter vs PyTorch y0: " + off);
        }
        // the package's bundle has the PEFT keys and shapes of the imported one
        AdapterBundle in = AdapterBundle.read(Assets.resnetReference().resolve("adapter"));
        AdapterBundle out = ModelPackage.open(tmp.resolve("P2")).readAdapter("adapter");
        assertEquals(in.tensors().keySet(), out.tensors().keySet());
        in.tensors().forEach((k, v) -> assertTrue(v.contentEquals(out.tensors().get(k)), k));
    }
}
