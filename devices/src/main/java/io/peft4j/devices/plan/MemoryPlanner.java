package io.peft4j.devices.plan;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.pkg.ModelPackage;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.profile.DeviceProfile;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Estimates the memory a model package needs on a device profile, and says what would fit when it
 * does not. The parts:
 * <ul>
 *   <li><b>weights</b>: the initializers' bytes; fp32 ones at half for {@code fp16} and a quarter for
 *       {@code int8} (weights already stored in fp16 stay as they are);</li>
 *   <li><b>activations</b>: the peak of live intermediate values at the batch, from
 *       {@link ActivationProfile} (scaled like the weights for lower precisions);</li>
 *   <li><b>workspace</b>: the profile's TensorRT workspace ({@code workspace_mib});</li>
 *   <li><b>adapters</b>: a side package holds, per adapter, one set of its adapter inputs at the
 *       package's max rank; a multi package's K adapters are stacked in its weights (initializers
 *       named {@code ...lora_stack...} or {@code ...ia3_stack...}), counted here instead.</li>
 * </ul>
 * What the runtime itself takes (ONNX Runtime's library and arena slack, the JVM) is not counted.
 * The model is read and probed once; {@link #plan} is then cheap for any profile, batch and precision.
 */
public final class MemoryPlanner {

    /** Above this share of the usable memory a plan that fits is flagged as tight. */
    static final double TIGHT = 0.9;

    private final String what;
    private final Manifest.Mode mode;
    private final long fp32Weights;
    private final long otherWeights;
    private final long fp32Adapters;
    private final long otherAdapters;
    private final int adapterCount;
    private final int maxRank;
    private final ActivationProfile activations;

    private MemoryPlanner(String what, Manifest.Mode mode, Model model, int adapterCount, int maxRank, long otherDim) {
        this.what = what;
        this.mode = mode;
        this.adapterCount = adapterCount;
        this.maxRank = maxRank;
        Graph g = model.graph();
        long fw = 0;
        long ow = 0;
        long fa = 0;
        long oa = 0;
        for (Map.Entry<String, Tensor> e : g.initializers().entrySet()) {
            Tensor t = e.getValue();
            long bytes = t.dtype() == DataType.STRING ? 0 : t.byteSize();
            boolean fp32 = t.dtype() == DataType.FLOAT;
            boolean adapter = mode == Manifest.Mode.multi
                    ? e.getKey().contains("lora_stack") || e.getKey().contains("ia3_stack")
                    : mode == Manifest.Mode.side && g.isGraphInput(e.getKey());
            if (adapter && mode == Manifest.Mode.side) {
                // the defaults are weights the session holds; each adapter holds one more set
                if (fp32) {
                    fw += bytes;
                    fa += bytes;
                } else {
                    ow += bytes;
                    oa += bytes;
                }
            } else if (adapter) {
                if (fp32) {
                    fa += bytes;
                } else {
                    oa += bytes;
                }
            } else if (fp32) {
                fw += bytes;
            } else {
                ow += bytes;
            }
        }
        this.fp32Weights = fw;
        this.otherWeights = ow;
        this.fp32Adapters = fa;
        this.otherAdapters = oa;
        this.activations = ActivationProfile.probe(model, otherDim);
    }

    /**
     * Reads a model package directory (or an {@code .onnx} file) and probes its activations.
     *
     * @param otherDim the size of dynamic axes other than the batch (e.g. a sequence length)
     */
    public static MemoryPlanner of(Path modelOrPackage, long otherDim) {
        if (Files.isDirectory(modelOrPackage)) {
            ModelPackage p = ModelPackage.open(modelOrPackage);
            Manifest m = p.manifest();
            return new MemoryPlanner("package " + modelOrPackage, m.mode(), p.readModel(), m.adapters().size(), m.maxRank(),
                    otherDim);
        }
        if (!Files.isRegularFile(modelOrPackage)) {
            throw new Peft4jException(ErrorCode.IO, "model not found: " + modelOrPackage
                    + " (give a model package directory or an .onnx file)");
        }
        return new MemoryPlanner(modelOrPackage.toString(), Manifest.Mode.base, OnnxIO.read(modelOrPackage), 0, 0, otherDim);
    }

    /** The bytes of an fp32 value at {@code precision}. */
    static double scale(String precision) {
        return switch (precision) {
            case "fp32" -> 1.0;
            case "fp16" -> 0.5;
            case "int8" -> 0.25;
            default -> throw Peft4jException.invalid("unknown precision '" + precision + "'; the precisions are "
                    + DeviceProfile.PRECISIONS);
        };
    }

    /**
     * The plan for {@code profile} at {@code batch} and {@code precision}.
     *
     * @param hostMemoryBytes the host's memory, for profiles whose memory is the host's
     */
    public MemoryPlan plan(DeviceProfile profile, long hostMemoryBytes, int batch, String precision) {
        if (batch < 1) {
            throw Peft4jException.invalid("the batch size must be at least 1, got " + batch);
        }
        double s = scale(precision);
        if (!profile.supports(precision)) {
            throw Peft4jException.invalid("profile '" + profile.id() + "' does not run " + precision + "; its precisions are "
                    + profile.precisions());
        }
        MemoryPlan p = bare(profile, hostMemoryBytes, batch, precision, s, List.of(), List.of());
        List<String> warnings = new ArrayList<>();
        List<String> suggestions = new ArrayList<>();
        if (batch > profile.maxBatch()) {
            warnings.add("batch " + batch + " is above the profile's max batch " + profile.maxBatch());
        }
        if (p.fits() && p.total() > TIGHT * p.usable()) {
            warnings.add(String.format(java.util.Locale.ROOT, "it takes %.0f%% of the usable memory", 100.0 * p.total() / p.usable()));
        }
        if (!p.fits()) {
            if (!precision.equals("fp16") && s > 0.5 && profile.supports("fp16")) {
                MemoryPlan h = bare(profile, hostMemoryBytes, batch, "fp16", 0.5, List.of(), List.of());
                suggestions.add("--precision fp16: " + MemoryPlan.mib(h.total()) + (h.fits() ? "" : " (still too much)"));
            }
            int fitting = largestBatch(profile, hostMemoryBytes, batch - 1, precision, s);
            suggestions.add(fitting > 0 ? "--batch " + fitting + ": "
                    + MemoryPlan.mib(bare(profile, hostMemoryBytes, fitting, precision, s, List.of(), List.of()).total())
                    : "no batch size fits at " + precision + " (even batch 1 needs "
                    + MemoryPlan.mib(bare(profile, hostMemoryBytes, 1, precision, s, List.of(), List.of()).total()) + ")");
            if (mode == Manifest.Mode.multi && p.adapters() > 0) {
                suggestions.add("a merged package per adapter instead of multi: about " + MemoryPlan.mib(p.total() - p.adapters())
                        + " each (without the " + adapterCount + " stacked adapters)");
            }
            if (mode == Manifest.Mode.side && adapterCount > 1) {
                suggestions.add("fewer side adapters: each takes " + MemoryPlan.mib(p.adapters() / adapterCount));
            }
        }
        return new MemoryPlan(p.profile(), p.mode(), batch, precision, p.weights(), p.activations(), p.workspace(),
                p.adapters(), p.adapterNote(), p.usable(), warnings, suggestions);
    }

    /** The largest batch in 1..{@code upTo} that fits, or 0 (the total grows with the batch). */
    private int largestBatch(DeviceProfile profile, long host, int upTo, String precision, double s) {
        int lo = 0;
        int hi = upTo;
        while (lo < hi) {
            int mid = (int) (((long) lo + hi + 1) / 2);
            if (bare(profile, host, mid, precision, s, List.of(), List.of()).fits()) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return lo;
    }

    private MemoryPlan bare(DeviceProfile profile, long host, int batch, String precision, double s, List<String> w,
                            List<String> sug) {
        long weights = Math.round(fp32Weights * s) + otherWeights;
        long act = activations.peakBytes(batch, s);
        long adapterBytes = Math.round(fp32Adapters * s) + otherAdapters;
        String note;
        switch (mode) {
            case side -> {
                note = adapterCount + " adapter(s) of " + MemoryPlan.mib(adapterBytes) + " each at max rank " + maxRank
                        + "; on the CPU each merged session (serve --merged-sessions N) adds 2 to 3 times the weights, "
                        + "about " + MemoryPlan.mib(weights * 5 / 2) + " (bench/merged-memory), not counted";
                adapterBytes *= adapterCount;
            }
            case multi -> note = adapterCount + " adapter(s) stacked in the graph at max rank " + maxRank;
            case merged -> note = "merged into the weights";
            default -> note = "none";
        }
        return new MemoryPlan(profile.id(), mode.name(), batch, precision, weights, act, profile.workspaceMiB() << 20,
                adapterBytes, note, profile.usableBytes(host), w, sug);
    }

    /** What was planned ({@code package DIR} or the model file). */
    public String what() {
        return what;
    }

    /** The activation profile the plans use. */
    public ActivationProfile activations() {
        return activations;
    }
}
