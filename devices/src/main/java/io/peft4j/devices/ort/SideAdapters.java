package io.peft4j.devices.ort;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.Peft4jBlock;
import io.peft4j.core.adapter.PeftKey;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.peft.Slots;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The parameters an adapter bundle feeds a side graph: for each adapter input of the graph (a
 * graph input with an initializer default, named by its PEFT key), this adapter's value, in the
 * default's element type and shape, LoRA factors zero-padded to the graph's rank. What an
 * {@code .onnx_adapter} file of the adapter holds; modules the adapter leaves alone are not among
 * them (they keep their defaults, the base layer).
 *
 * <p>The values are what {@link io.peft4j.core.peft.Peft#inject} gives the adapter on the base
 * graph: the bundle is bound ({@link AdapterBinding}) to the side graph, whose adapted layers are
 * still the base layers, and each module's method computes its tensors through recording
 * {@link Slots}. The bundle's base fingerprint is checked against the package's by the caller,
 * since the side graph's own weights include the adapter defaults.
 */
public final class SideAdapters {

    private SideAdapters() {
    }

    /** Which axis of a LoRA factor is the rank ({@code -1}: none). */
    public static int padAxis(String key) {
        if (key.endsWith("lora_A.weight") || key.endsWith("lora_embedding_A")) {
            return 0;
        }
        if (key.endsWith("lora_B.weight") || key.endsWith("lora_embedding_B")) {
            return 1;
        }
        return -1;
    }

    /** {@code t} with its rank axis zero-padded to {@code rank} (at least its own). */
    public static Tensor padRank(Tensor t, int axis, int rank) {
        long r = t.dim(axis);
        if (r == rank) {
            return t;
        }
        if (r > rank) {
            throw new IllegalArgumentException("cannot pad rank " + r + " down to " + rank);
        }
        long[] shape = t.shape().clone();
        shape[axis] = rank;
        long outer = 1;
        for (int i = 0; i < axis; i++) {
            outer *= t.dim(i);
        }
        long inner = Tensor.numel(t.shape()) / outer / r;
        float[] v = t.toFloatArray();
        float[] o = new float[Math.toIntExact(Tensor.numel(shape))];
        for (long a = 0; a < outer; a++) {
            System.arraycopy(v, Math.toIntExact(a * r * inner), o, Math.toIntExact(a * rank * inner), Math.toIntExact(r * inner));
        }
        return Tensor.ofFloats(shape, o).to(t.dtype());
    }

    /** The side graph's adapter inputs: graph inputs with an initializer default, name → default. */
    public static Map<String, Tensor> adapterInputs(Graph g) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (String n : g.inputNames()) {
            if (g.hasInitializer(n)) {
                out.put(n, g.initializer(n));
            }
        }
        return out;
    }

    /**
     * The parameters {@code bundle} feeds {@code side} (a side graph read fresh for this call: the
     * dry run adds nodes to it). {@code what} names the adapter in messages. Refused when the
     * adapter adapts a module the graph has no input for, or its rank is above the graph's.
     */
    public static Map<String, Tensor> parameters(Model side, AdapterBundle bundle, String what) {
        Graph g = side.graph();
        Map<String, Tensor> defaults = adapterInputs(g);
        if (defaults.isEmpty()) {
            throw Peft4jException.unsupported(what + ": the model has no adapter inputs (it is not a side graph)");
        }
        liftHalfWeights(g);
        AdapterBundle unbound = withoutFingerprint(bundle);
        AdapterBinding binding;
        try {
            binding = AdapterBinding.bind(side, unbound);
        } catch (Peft4jException e) {
            throw new Peft4jException(e.code(), what + ": " + e.getMessage(), e);
        }
        Map<String, Tensor> values = new LinkedHashMap<>();
        for (AdapterBinding.Module m : binding.modules()) {
            String module = m.target().path();
            Slots recording = (role, value, identity, rankAxis, trainable) -> {
                String key = PeftKey.of(module, role);
                values.put(key, value);
                // the rewrite that follows reads this value; it lands in the scratch graph only
                return g.addInitializer("peft4j_dry_run/" + key, value);
            };
            binding.method().inject(side, m.target(), binding.config(), m.tensors(), recording);
        }
        for (AdapterBinding.Saved s : binding.saved()) {
            values.put(s.key(), s.pytorch().to(s.value().dtype()));
        }
        Map<String, Tensor> params = new LinkedHashMap<>();
        List<String> problems = new ArrayList<>();
        ErrorCode code = ErrorCode.SHAPE_MISMATCH;
        for (Map.Entry<String, Tensor> e : values.entrySet()) {
            String key = e.getKey();
            Tensor def = defaults.get(key);
            if (def == null) {
                code = ErrorCode.NOT_FOUND;
                problems.add("it adapts " + key + ", which this side graph does not take as an input (export the package "
                        + "with an adapter that adapts this module, or serve this adapter from another package)");
                continue;
            }
            Tensor v = e.getValue().to(def.dtype());
            int axis = padAxis(key);
            if (axis >= 0 && v.rank() == def.rank() && v.dim(axis) != def.dim(axis)) {
                if (v.dim(axis) > def.dim(axis)) {
                    problems.add(key + " has rank " + v.dim(axis) + ", above the package's max rank " + def.dim(axis)
                            + " (re-export the package with --max-rank " + v.dim(axis) + " or more)");
                    continue;
                }
                v = padRank(v, axis, Math.toIntExact(def.dim(axis)));
            }
            if (!Arrays.equals(v.shape(), def.shape())) {
                problems.add(key + " has shape " + Arrays.toString(v.shape()) + ", the graph's input takes "
                        + Arrays.toString(def.shape()));
                continue;
            }
            params.put(key, v);
        }
        if (!problems.isEmpty()) {
            throw new Peft4jException(code, what + " does not fit this side graph: "
                    + (problems.size() == 1 ? problems.get(0) : String.join("; ", problems)));
        }
        if (params.isEmpty()) {
            throw Peft4jException.invalid(what + " adapts nothing this side graph takes");
        }
        return params;
    }

    /**
     * float16 weights read through {@code Cast(to = FLOAT)} (a package exported with {@code --fp16})
     * as float32 initializers again, so that the layers bind as they do on the base graph.
     */
    static int liftHalfWeights(Graph g) {
        int n = 0;
        for (Node c : new ArrayList<>(g.nodes())) {
            if (c.is("Cast") && c.inputs().size() == 1 && c.outputs().size() == 1 && g.hasInitializer(c.input(0))
                    && !g.isGraphInput(c.input(0)) && g.initializer(c.input(0)).dtype() == DataType.FLOAT16
                    && c.attrInt("to", 0) == DataType.FLOAT.onnxCode()) {
                g.replaceWithInitializer(c, g.initializer(c.input(0)).to(DataType.FLOAT));
                n++;
            }
        }
        return n;
    }

    /** The bundle with its base fingerprint removed (checked by the caller against the package's). */
    static AdapterBundle withoutFingerprint(AdapterBundle b) {
        Peft4jBlock block = b.config().peft4j();
        if (block == null || block.baseFingerprint() == null) {
            return b;
        }
        return b.withConfig(b.config().withPeft4j(new Peft4jBlock(null, block.moduleMap(), block.other())));
    }
}
