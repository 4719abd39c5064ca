package io.peft4j.exporter;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.modules.TargetFinder;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.TinyModels;

import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Predicate;

/** Comparisons shared by the exporter tests. */
final class ExportTests {

    private ExportTests() {
    }

    /** Largest |a - b| over the largest |b|. */
    static double relDiff(Tensor a, Tensor b) {
        return io.peft4j.core.testkit.Ort.maxRelDiff(a, b);
    }

    /** Relative difference of row {@code r} (axis 0), relative to the reference row's magnitude. */
    static double rowDiff(Tensor a, Tensor ref, int r) {
        float[] x = a.toFloatArray();
        float[] y = ref.toFloatArray();
        int n = (int) (a.numel() / a.dim(0));
        int m = (int) (ref.numel() / ref.dim(0));
        if (n != m) {
            throw new AssertionError("row sizes differ: " + a + " vs " + ref);
        }
        double d = 0;
        double s = 0;
        for (int i = 0; i < n; i++) {
            d = Math.max(d, Math.abs(x[r * n + i] - y[r * n + i]));
            s = Math.max(s, Math.abs(y[r * n + i]));
        }
        return d / Math.max(s, 1e-12);
    }

    /**
     * An adapter with random non-zero tensors (PEFT's zero B would hide a wrong merge): LoRA
     * entries ~ N(0, sigma), IA3 vectors ~ 1 + N(0, sigma); bound to the model's fingerprint.
     */
    static AdapterBundle randomAdapter(Model model, AdapterConfig config, long seed, double sigma) {
        return io.peft4j.core.testkit.TestAdapters.random(model, config, seed, sigma);
    }

    static List<String> paths(Model m, Predicate<TargetLayer> keep) {
        return TargetFinder.find(m.graph()).stream().filter(keep).map(TargetLayer::path).toList();
    }

    static Map<String, Tensor> image(int batch, long seed) {
        return Map.of("input", TinyModels.randn(new Random(seed), batch, 3, 64, 64));
    }

    /** BERT inputs: [CLS] then random word ids, all attended, one segment. */
    static Map<String, Tensor> tokens(int batch, long seed) {
        return TinyModels.bertTokens(batch, seed);
    }
}
