package io.peft4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.core.inspect.ModelInspection;
import io.peft4j.core.modules.BatchNormFolding;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.OnnxIO;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;

/** {@code peft4j inspect MODEL.onnx [--json]}. */
@Command(name = "inspect",
        header = "Show the inputs, outputs and the layers an adapter can target in an ONNX model.",
        description = {
            "Show what an ONNX model offers to PEFT: its inputs and outputs, opsets, parameter count,",
            "whether BatchNorm was folded into the convolutions, and every layer an adapter can target",
            "(Linear as MatMul/Gemm, Conv, Embedding as Gather) under the module path PyTorch gives it",
            "(e.g. layer1.0.conv1) - the names to use in --targets and that Hugging Face PEFT adapters use."},
        mixinStandardHelpOptions = true)
public final class InspectCommand implements Callable<Integer> {

    @Spec
    private CommandSpec spec;

    @Parameters(index = "0", paramLabel = "MODEL.onnx", description = "The ONNX model file (external data is read from beside it).")
    private Path model;

    @Option(names = "--json", description = "Print one JSON object instead of text (for scripts).")
    private boolean json;

    @Override
    public Integer call() throws Exception {
        ModelInspection r = ModelInspection.of(OnnxIO.read(model));
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            ObjectMapper m = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
            out.println(m.writeValueAsString(toJson(r)));
        } else {
            printText(r, out);
        }
        out.flush();
        return 0;
    }

    static ObjectNode toJson(Path file, ModelInspection r) {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("file", file.toString());
        return toJson(r, o);
    }

    private ObjectNode toJson(ModelInspection r) {
        return toJson(model, r);
    }

    private static ObjectNode toJson(ModelInspection r, ObjectNode o) {
        o.put("ir_version", r.irVersion());
        o.put("producer", r.producer());
        ObjectNode opsets = o.putObject("opsets");
        r.opsets().forEach((d, v) -> opsets.put(d.isEmpty() ? "ai.onnx" : d, v));
        o.set("inputs", values(r.inputs()));
        o.set("outputs", values(r.outputs()));
        o.put("nodes", r.nodes());
        ObjectNode ops = o.putObject("ops");
        r.ops().forEach(ops::put);
        o.put("parameters", r.parameters());
        o.put("weight_bytes", r.weightBytes());
        o.put("external_tensors", r.externalTensors());
        o.put("constants_lifted", r.liftedConstants());
        BatchNormFolding.Report bn = r.batchNorm();
        ObjectNode b = o.putObject("batch_norm");
        b.put("status", bn.status().name().toLowerCase());
        b.put("batch_norm_nodes", bn.batchNormNodes());
        b.put("convs", bn.convs());
        b.put("convs_followed_by_batch_norm", bn.convsWithBatchNorm());
        b.put("convs_with_folded_weights", bn.convsRenamed());
        ArrayNode modules = o.putArray("modules");
        for (TargetLayer t : r.targets()) {
            ObjectNode m = modules.addObject();
            m.put("path", t.path());
            m.put("kind", t.kind().name().toLowerCase());
            m.put("op", t.opType());
            m.put("node", t.nodeName());
            m.put("weight", t.weight());
            ArrayNode shape = m.putArray("weight_shape");
            Arrays.stream(t.weightShape()).forEach(shape::add);
            m.put("layout", layout(t.layout()));
            m.put("dtype", t.dtype().name());
            m.put("in_features", t.inFeatures());
            m.put("out_features", t.outFeatures());
            m.put("groups", t.groups());
            if (t.bias() == null) {
                m.putNull("bias");
            } else {
                m.put("bias", t.bias());
            }
            m.put("parameters", t.parameters());
        }
        return o;
    }

    private static ArrayNode values(List<ModelInspection.Value> vs) {
        ArrayNode a = JsonNodeFactory.instance.arrayNode();
        for (ModelInspection.Value v : vs) {
            ObjectNode n = a.addObject();
            n.put("name", v.name());
            n.put("type", v.type());
            if (v.shape() == null) {
                n.putNull("shape");
            } else {
                ArrayNode s = n.putArray("shape");
                for (Object d : v.shape()) {
                    if (d instanceof Long l) {
                        s.add(l);
                    } else if (d instanceof String p) {
                        s.add(p);
                    } else {
                        s.addNull();
                    }
                }
            }
        }
        return a;
    }

    static String layout(TargetLayer.Layout l) {
        return switch (l) {
            case IN_OUT -> "[in,out]";
            case OUT_IN -> "[out,in]";
            case CONV_OUT_IN_K -> "[out,in/groups,k...]";
            case EMBEDDING -> "[num_embeddings,dim]";
        };
    }

    private void printText(ModelInspection r, PrintWriter out) throws java.io.IOException {
        out.printf("model       %s (%s)%n", model, Format.bytes(Files.size(model)));
        String opsets = r.opsets().entrySet().stream()
                .map(e -> (e.getKey().isEmpty() ? "ai.onnx" : e.getKey()) + " " + e.getValue())
                .collect(Collectors.joining(", "));
        out.printf("producer    %s, IR %d, opsets %s%n", r.producer().isEmpty() ? "(unknown)" : r.producer(), r.irVersion(), opsets);
        for (ModelInspection.Value v : r.inputs()) {
            out.printf("input       %s %s%n", v.name(), shape(v));
        }
        for (ModelInspection.Value v : r.outputs()) {
            out.printf("output      %s %s%n", v.name(), shape(v));
        }
        String topOps = r.ops().entrySet().stream().sorted(Map.Entry.<String, Integer>comparingByValue().reversed())
                .limit(8).map(e -> e.getKey() + " " + e.getValue()).collect(Collectors.joining(", "));
        out.printf("nodes       %d (%s%s)%n", r.nodes(), topOps, r.ops().size() > 8 ? ", ..." : "");
        out.printf("parameters  %s (%s of weights%s)%n", Format.count(r.parameters()), Format.bytes(r.weightBytes()),
                r.externalTensors() > 0 ? ", " + r.externalTensors() + " tensors in external data" : "");
        if (r.liftedConstants() > 0) {
            out.printf("constants   %d Constant nodes treated as initializers%n", r.liftedConstants());
        }
        BatchNormFolding.Report bn = r.batchNorm();
        out.printf("batchnorm   %s%n", switch (bn.status()) {
            case KEPT -> "kept: " + bn.convsWithBatchNorm() + " of " + bn.convs() + " convolutions feed a BatchNormalization "
                    + "(adapters trained in PyTorch map onto these weights)";
            case FOLDED -> "folded into " + bn.convsRenamed() + " of " + bn.convs() + " convolutions (exporter-renamed weights); "
                    + "adapters trained in PyTorch on the unfolded model do not map onto them";
            case MIXED -> "mixed: " + bn.convsWithBatchNorm() + " convolutions keep BatchNorm, " + bn.convsRenamed() + " look folded";
            case NONE -> "none found" + (bn.convs() > 0 ? " (no BatchNormalization nodes, no sign of folding)" : "");
        });
        out.println();
        out.printf("targetable modules (%d):%n", r.targets().size());
        if (r.targets().isEmpty()) {
            out.println("  (none: no MatMul/Gemm with a constant weight, Conv or Gather over a constant table)");
            return;
        }
        int w = Math.max(4, r.targets().stream().mapToInt(t -> t.path().length()).max().orElse(4));
        out.printf("  %-" + w + "s  %-6s  %-9s  %-20s  %-20s  %s%n", "PATH", "OP", "KIND", "WEIGHT SHAPE", "LAYOUT", "PARAMS");
        for (TargetLayer t : r.targets()) {
            String kind = t.kind().name().toLowerCase() + (t.groups() > 1 ? " g" + t.groups() : "");
            out.printf("  %-" + w + "s  %-6s  %-9s  %-20s  %-20s  %s%n", t.path(), t.opType(), kind,
                    Arrays.toString(t.weightShape()).replace(" ", ""), layout(t.layout()), Format.count(t.parameters()));
        }
    }

    private static String shape(ModelInspection.Value v) {
        if (v.shape() == null) {
            return v.type() + "[?]";
        }
        return v.type() + v.shape().stream().map(d -> d == null ? "?" : d.toString()).collect(Collectors.joining(",", "[", "]"));
    }
}
