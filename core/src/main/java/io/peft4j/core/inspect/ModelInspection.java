package io.peft4j.core.inspect;

import io.peft4j.core.modules.BatchNormFolding;
import io.peft4j.core.modules.TargetFinder;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.LiftConstants;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * What {@code peft4j inspect} reports about a model: its interface, opsets, size, the layers PEFT
 * methods can target (with PyTorch module paths) and whether BatchNorm was folded.
 *
 * @param irVersion        the model's IR version
 * @param producer         producer name and version
 * @param opsets           imported opsets, domain ("" = ai.onnx) to version
 * @param inputs           graph inputs that are not initializers
 * @param outputs          graph outputs
 * @param nodes            node count
 * @param ops              node count per op type
 * @param parameters       elements of all floating-point constant tensors
 * @param weightBytes      bytes of all constant tensors
 * @param externalTensors  initializers stored in external data files
 * @param liftedConstants  Constant nodes that hold weights-like tensors (lifted for the analysis)
 * @param targets          the targetable layers
 * @param batchNorm        the BatchNorm folding report
 */
public record ModelInspection(long irVersion, String producer, Map<String, Long> opsets, List<Value> inputs,
                              List<Value> outputs, int nodes, Map<String, Integer> ops, long parameters,
                              long weightBytes, int externalTensors, int liftedConstants, List<TargetLayer> targets,
                              BatchNormFolding.Report batchNorm) {

    /** A graph input or output: name, element type and dimensions (numbers, names or null). */
    public record Value(String name, String type, List<Object> shape) {
    }

    /**
     * Inspects {@code model}. Constant nodes are lifted to initializers first, on the model given
     * (callers that keep using the model get the lifted form, which computes the same outputs).
     */
    public static ModelInspection of(Model model) {
        Graph g = model.graph();
        int constantsBefore = (int) g.nodes().stream().filter(n -> n.is("Constant")).count();
        LiftConstants.run(model);
        int constantsAfter = (int) g.nodes().stream().filter(n -> n.is("Constant")).count();
        List<Value> inputs = new ArrayList<>();
        for (ValueInfoProto v : g.inputs()) {
            if (!g.hasInitializer(v.getName())) {
                inputs.add(value(v));
            }
        }
        List<Value> outputs = g.outputs().stream().map(ModelInspection::value).toList();
        Map<String, Integer> ops = new TreeMap<>();
        for (Node n : g.nodes()) {
            String key = n.domain().isEmpty() || n.domain().equals("ai.onnx") ? n.opType() : n.domain() + "." + n.opType();
            ops.merge(key, 1, Integer::sum);
        }
        long params = 0;
        long bytes = 0;
        int external = 0;
        for (Map.Entry<String, Tensor> e : g.initializers().entrySet()) {
            Tensor t = e.getValue();
            if (t.dtype().isFloatingPoint()) {
                params += t.numel();
            }
            bytes += t.byteSize();
            if (g.isStoredExternally(e.getKey())) {
                external++;
            }
        }
        String producer = (model.producerName() + " " + model.producerVersion()).trim();
        return new ModelInspection(model.irVersion(), producer, new TreeMap<>(model.opsets()), inputs, outputs,
                g.nodes().size(), ops, params, bytes, external, constantsBefore - constantsAfter,
                TargetFinder.find(g), BatchNormFolding.detect(g));
    }

    private static Value value(ValueInfoProto v) {
        String type = ValueInfos.elementType(v).map(Enum::name).orElse(v.getType().hasTensorType() ? "?" : ValueInfos.describe(v));
        return new Value(v.getName(), type, ValueInfos.dims(v).orElse(null));
    }
}
