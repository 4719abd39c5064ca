package io.peft4j.exporter;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * float16 weight storage with float32 compute: each float32 weight (an initializer of at least
 * {@value #MIN_ELEMENTS} elements that is not a graph input) is stored as float16 and read through
 * a {@code Cast(to = FLOAT)} node, so every operator, every input and every output keeps its type.
 *
 * <p>The trade-off: the file (and the download to a device) is half the size and the weights
 * carry float16's rounding (a relative error of at most 2⁻¹¹ each); the arithmetic stays float32,
 * which ONNX Runtime's CPU kernels support for every operator (few have float16 kernels). ONNX
 * Runtime folds the casts into float32 constants when it opens the session, so run time and
 * resident memory are those of the float32 model. A graph computed in float16 throughout (for
 * GPUs with float16 kernels) is the device backends' business.
 *
 * <p>Small tensors (epsilons, scales, shape constants) and values outside float16's range stay
 * float32: rounding them would change the model's arithmetic rather than its weights.
 */
final class Fp16 {

    /** Smaller float tensors stay float32 (they take no room and may be arithmetic constants). */
    static final long MIN_ELEMENTS = 16;
    private static final double MAX_HALF = 65504;

    private Fp16() {
    }

    /** Converts the model's weights in place; returns how many initializers were converted. */
    static int storeWeightsAsFp16(Model model) {
        Graph g = model.graph();
        List<String> names = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : g.initializers().entrySet()) {
            Tensor t = e.getValue();
            if (t.dtype() == DataType.FLOAT && t.numel() >= MIN_ELEMENTS && !g.isGraphInput(e.getKey())
                    && !g.isGraphOutput(e.getKey()) && fitsHalf(t)) {
                names.add(e.getKey());
            }
        }
        model.requireOpset("", 6);
        for (String name : names) {
            Tensor half = g.initializer(name).to(DataType.FLOAT16);
            String stored = g.addInitializer(name + "_fp16", half);
            String cast = g.build("Cast").name(name + "/to_fp32").in(stored).attr("to", (long) DataType.FLOAT.onnxCode()).out();
            g.replaceAllUses(name, cast);
            g.removeInitializer(name);
        }
        g.sortTopologically();
        return names.size();
    }

    private static boolean fitsHalf(Tensor t) {
        float[] v = t.toFloatArray();
        for (float x : v) {
            if (!Float.isFinite(x) || Math.abs(x) > MAX_HALF) {
                return false;
            }
        }
        return true;
    }
}
