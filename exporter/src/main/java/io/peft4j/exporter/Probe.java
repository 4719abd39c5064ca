package io.peft4j.exporter;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * The probe batch validation runs on: the caller's tensors where given, else seeded random data
 * shaped like each input, its first symbolic axis (the batch) {@value #BATCH} and other symbolic
 * axes {@value #OTHER_AXIS}. Float inputs are standard normal; integer inputs that index a
 * constant table (token ids, token types) are uniform over the table's rows, other integer
 * inputs (attention masks) are ones.
 */
final class Probe {

    static final long BATCH = 2;
    static final long OTHER_AXIS = 8;

    private Probe() {
    }

    /** The inputs a caller feeds: graph inputs that are not initializers (IR < 4 models list both). */
    static List<ValueInfoProto> callerInputs(Model m) {
        List<ValueInfoProto> out = new ArrayList<>();
        for (ValueInfoProto v : m.graph().inputs()) {
            if (!m.graph().hasInitializer(v.getName())) {
                out.add(v);
            }
        }
        return out;
    }

    static Map<String, Tensor> of(Model base, Map<String, Tensor> given, long seed) {
        List<ValueInfoProto> inputs = callerInputs(base);
        List<String> names = inputs.stream().map(ValueInfoProto::getName).toList();
        Map<String, Tensor> probe = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : given.entrySet()) {
            String name = e.getKey();
            if (name == null || name.isEmpty()) {
                if (given.size() != 1 || names.size() != 1) {
                    throw Peft4jException.invalid("a probe without an input name needs a model with one input; name each: "
                            + "--probe INPUT=FILE.npy for " + names);
                }
                name = names.get(0);
            }
            if (!names.contains(name)) {
                throw Peft4jException.notFound("probe input '" + name + "' is not an input of the base model; its inputs are " + names);
            }
            probe.put(name, e.getValue());
        }
        Random r = new Random(seed);
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (ValueInfoProto v : inputs) {
            Tensor t = probe.get(v.getName());
            out.put(v.getName(), t != null ? t : random(base.graph(), v, r));
        }
        return out;
    }

    private static Tensor random(Graph g, ValueInfoProto v, Random r) {
        DataType dt = ValueInfos.elementType(v).orElseThrow(() -> Peft4jException.unsupported("input '" + v.getName()
                + "' has no tensor type; give a probe for it (--probe " + v.getName() + "=FILE.npy)"));
        List<Object> dims = ValueInfos.dims(v).orElseThrow(() -> Peft4jException.unsupported("input '" + v.getName()
                + "' has no declared shape; give a probe for it (--probe " + v.getName() + "=FILE.npy)"));
        long[] shape = new long[dims.size()];
        boolean batch = false;
        for (int i = 0; i < shape.length; i++) {
            if (dims.get(i) instanceof Long l && l >= 0) {
                shape[i] = l;
            } else {
                shape[i] = batch ? OTHER_AXIS : BATCH;
                batch = true;
            }
        }
        int n = Math.toIntExact(Tensor.numel(shape));
        if (dt.isFloatingPoint()) {
            float[] f = new float[n];
            for (int i = 0; i < n; i++) {
                f[i] = (float) r.nextGaussian();
            }
            return Tensor.ofFloats(shape, f).to(dt);
        }
        if (dt == DataType.INT64 || dt == DataType.INT32) {
            long bound = tableRows(g, v.getName());
            long[] l = new long[n];
            for (int i = 0; i < n; i++) {
                l[i] = bound > 0 ? (long) (r.nextDouble() * bound) : 1;
            }
            Tensor t = Tensor.ofLongs(shape, l);
            return dt == DataType.INT64 ? t : t.to(dt);
        }
        if (dt == DataType.BOOL) {
            boolean[] b = new boolean[n];
            Arrays.fill(b, true);
            return Tensor.ofBools(shape, b);
        }
        throw Peft4jException.unsupported("cannot make a random probe for input '" + v.getName() + "' of type " + dt
                + "; give one (--probe " + v.getName() + "=FILE.npy)");
    }

    /** The fewest rows among constant tables that a Gather indexes with this input, or 0. */
    private static long tableRows(Graph g, String input) {
        long rows = 0;
        for (Node n : g.consumers(input)) {
            if (n.is("Gather") && n.inputs().size() > 1 && n.input(1).equals(input) && g.hasInitializer(n.input(0))
                    && n.attrInt("axis", 0) == 0) {
                long d = g.initializer(n.input(0)).dim(0);
                rows = rows == 0 ? d : Math.min(rows, d);
            }
        }
        return rows;
    }
}
