package io.peft4j.core.onnx;

import com.google.protobuf.ByteString;
import io.peft4j.core.onnx.proto.Onnx.AttributeProto;
import io.peft4j.core.onnx.proto.Onnx.TypeProto;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * Turns {@code Constant} nodes into initializers of the same name. Some exporters keep every
 * weight as a Constant node; after this pass weights are found where the PEFT rewrites look for
 * them. Constants that are graph outputs, and sparse constants, are left as they are.
 */
public final class LiftConstants {

    private LiftConstants() {
    }

    /** Lifts every liftable Constant node of the main graph; returns whether anything changed. */
    public static boolean run(Model model) {
        Graph g = model.graph();
        boolean changed = false;
        for (Node n : new ArrayList<>(g.nodes())) {
            if (!n.is("Constant") || n.outputs().size() != 1 || g.isGraphOutput(n.output(0))) {
                continue;
            }
            Tensor value = value(n);
            if (value == null) {
                continue;
            }
            String out = n.output(0);
            g.replaceWithInitializer(n, value);
            if (model.irVersion() < 4) {
                // before IR 4 every initializer had to be a graph input as well
                g.addInput(ValueInfoProto.newBuilder().setName(out).setType(TypeProto.newBuilder()
                        .setTensorType(TypeProto.Tensor.newBuilder().setElemType(value.dtype().onnxCode()))).build());
            }
            changed = true;
        }
        return changed;
    }

    /** The constant's value as a tensor, or null for the forms that are not lifted (sparse). */
    public static Tensor value(Node n) {
        for (AttributeProto a : n.attributes().values()) {
            switch (a.getName()) {
                case "value":
                    return n.attrTensor("value");
                case "value_float":
                    return Tensor.scalar(n.attrFloat("value_float", 0f));
                case "value_int":
                    return Tensor.scalar(n.attrInt("value_int", 0));
                case "value_floats": {
                    float[] f = n.attrFloats("value_floats", new float[0]);
                    return Tensor.ofFloats(new long[] {f.length}, f);
                }
                case "value_ints": {
                    long[] v = n.attrInts("value_ints", new long[0]);
                    return Tensor.ofLongs(new long[] {v.length}, v);
                }
                case "value_string":
                    n.attrString("value_string", ""); // refuses a mistyped attribute
                    return Tensor.ofStrings(new long[0], List.of(a.getS().toByteArray()));
                case "value_strings": {
                    List<byte[]> l = new ArrayList<>();
                    for (ByteString s : a.getStringsList()) {
                        l.add(s.toByteArray());
                    }
                    return Tensor.ofStrings(new long[] {l.size()}, l);
                }
                default:
                    break;
            }
        }
        return null;
    }
}
