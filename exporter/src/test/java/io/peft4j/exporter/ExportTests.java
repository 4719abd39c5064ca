package io.peft4j.exporter;

import io.peft4j.core.tensor.Tensor;

/** Comparisons shared by the exporter tests. */
final class ExportTests {

    private ExportTests() {
    }

    /** Largest |a - b| over the largest |b|. */
    static double relDiff(Tensor a, Tensor b) {
        if (a.numel() != b.numel()) {
            throw new AssertionError("element counts differ: " + a + " vs " + b);
        }
        double m = 0;
        double scale = 0;
        for (long i = 0; i < a.numel(); i++) {
            m = Math.max(m, Math.abs(a.getDouble(i) - b.getDouble(i)));
            scale = Math.max(scale, Math.abs(b.getDouble(i)));
        }
        return m / Math.max(scale, 1e-12);
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
}
