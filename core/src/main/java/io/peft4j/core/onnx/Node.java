package io.peft4j.core.onnx;

import com.google.protobuf.ByteString;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.proto.Onnx.AttributeProto;
import io.peft4j.core.onnx.proto.Onnx.AttributeProto.AttributeType;
import io.peft4j.core.onnx.proto.Onnx.GraphProto;
import io.peft4j.core.onnx.proto.Onnx.NodeProto;
import io.peft4j.core.onnx.proto.Onnx.StringStringEntryProto;
import io.peft4j.core.tensor.Tensor;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One operator invocation in a {@link Graph}. Inputs and outputs are value names ({@code ""} marks
 * an omitted optional input). Changing an input goes through {@link #setInput(int, String)} so that
 * the owning graph's producer and consumer indices stay current. Attributes are kept as ONNX
 * {@code AttributeProto}s, with typed accessors; subgraph attributes (If, Loop, Scan) are kept as
 * protos and their references to outer values count as uses of those values.
 */
public final class Node {

    private String name;
    private final String opType;
    private final String domain;
    private final List<String> inputs;
    private final List<String> outputs;
    private final LinkedHashMap<String, AttributeProto> attributes = new LinkedHashMap<>();
    private String docString = "";
    private String overload = "";
    private List<StringStringEntryProto> metadata = List.of();
    Graph graph;

    Node(String name, String domain, String opType, List<String> inputs, List<String> outputs) {
        this.name = name;
        this.domain = domain == null ? "" : domain;
        this.opType = opType;
        this.inputs = new ArrayList<>(inputs);
        this.outputs = new ArrayList<>(outputs);
    }

    static Node fromProto(NodeProto p) {
        Node n = new Node(p.getName(), p.getDomain(), p.getOpType(), p.getInputList(), p.getOutputList());
        for (AttributeProto a : p.getAttributeList()) {
            n.attributes.put(a.getName(), a);
        }
        n.docString = p.getDocString();
        n.overload = p.getOverload();
        n.metadata = List.copyOf(p.getMetadataPropsList());
        return n;
    }

    NodeProto toProto() {
        NodeProto.Builder b = NodeProto.newBuilder().setOpType(opType).addAllInput(inputs).addAllOutput(outputs);
        if (!name.isEmpty()) {
            b.setName(name);
        }
        if (!domain.isEmpty()) {
            b.setDomain(domain);
        }
        if (!docString.isEmpty()) {
            b.setDocString(docString);
        }
        if (!overload.isEmpty()) {
            b.setOverload(overload);
        }
        b.addAllAttribute(attributes.values());
        b.addAllMetadataProps(metadata);
        return b.build();
    }

    public String name() {
        return name;
    }

    public String opType() {
        return opType;
    }

    /** The operator domain; {@code ""} is the default ONNX domain. */
    public String domain() {
        return domain;
    }

    /** True for {@code opType} in the default ONNX domain. */
    public boolean is(String op) {
        return opType.equals(op) && (domain.isEmpty() || domain.equals("ai.onnx"));
    }

    public Graph graph() {
        return graph;
    }

    public List<String> inputs() {
        return Collections.unmodifiableList(inputs);
    }

    public List<String> outputs() {
        return Collections.unmodifiableList(outputs);
    }

    /** Input {@code i}, or {@code ""} when it is omitted or beyond the last one given. */
    public String input(int i) {
        return i < inputs.size() ? inputs.get(i) : "";
    }

    public String output(int i) {
        return outputs.get(i);
    }

    public boolean hasInput(int i) {
        return !input(i).isEmpty();
    }

    /** Rewires input {@code i} (the index may be one past the end, to append). */
    public void setInput(int i, String value) {
        if (i < 0 || i > inputs.size()) {
            throw Peft4jException.invalid("node " + name + " has " + inputs.size() + " inputs; cannot set input " + i);
        }
        if (graph != null) {
            graph.unindexNode(this);
        }
        if (i == inputs.size()) {
            inputs.add(value);
        } else {
            inputs.set(i, value);
        }
        if (graph != null) {
            graph.indexNode(this);
        }
    }

    /** For the graph's own rewiring, which updates the indices around it. */
    void setInputUnindexed(int i, String value) {
        inputs.set(i, value);
    }

    /** For the graph's own renaming, which updates the producer index around it. */
    void setOutputUnindexed(int i, String value) {
        outputs.set(i, value);
    }

    public String docString() {
        return docString;
    }

    // ---------------------------------------------------------------- attributes

    public Map<String, AttributeProto> attributes() {
        return Collections.unmodifiableMap(attributes);
    }

    public boolean hasAttribute(String attr) {
        return attributes.containsKey(attr);
    }

    public long attrInt(String attr, long defaultValue) {
        AttributeProto a = attributes.get(attr);
        return a == null ? defaultValue : typed(a, AttributeType.INT).getI();
    }

    public float attrFloat(String attr, float defaultValue) {
        AttributeProto a = attributes.get(attr);
        return a == null ? defaultValue : typed(a, AttributeType.FLOAT).getF();
    }

    public String attrString(String attr, String defaultValue) {
        AttributeProto a = attributes.get(attr);
        return a == null ? defaultValue : typed(a, AttributeType.STRING).getS().toStringUtf8();
    }

    /** An INTS attribute, or {@code defaultValue} (may be null) when absent. */
    public long[] attrInts(String attr, long[] defaultValue) {
        AttributeProto a = attributes.get(attr);
        if (a == null) {
            return defaultValue;
        }
        return typed(a, AttributeType.INTS).getIntsList().stream().mapToLong(Long::longValue).toArray();
    }

    public float[] attrFloats(String attr, float[] defaultValue) {
        AttributeProto a = attributes.get(attr);
        if (a == null) {
            return defaultValue;
        }
        List<Float> l = typed(a, AttributeType.FLOATS).getFloatsList();
        float[] out = new float[l.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = l.get(i);
        }
        return out;
    }

    public Tensor attrTensor(String attr) {
        AttributeProto a = attributes.get(attr);
        if (a == null) {
            throw Peft4jException.notFound("node " + name + " (" + opType + ") has no attribute '" + attr + "'");
        }
        return TensorProtos.toTensor(typed(a, AttributeType.TENSOR).getT(), "attribute " + attr + " of node " + name);
    }

    private AttributeProto typed(AttributeProto a, AttributeType want) {
        AttributeType t = a.hasType() ? a.getType() : inferType(a);
        if (t != want) {
            throw Peft4jException.malformed("attribute '" + a.getName() + "' of node " + name + " (" + opType
                    + ") is " + t + ", expected " + want);
        }
        return a;
    }

    private static AttributeType inferType(AttributeProto a) {
        if (a.hasF()) return AttributeType.FLOAT;
        if (a.hasI()) return AttributeType.INT;
        if (a.hasS()) return AttributeType.STRING;
        if (a.hasT()) return AttributeType.TENSOR;
        if (a.hasG()) return AttributeType.GRAPH;
        if (a.getFloatsCount() > 0) return AttributeType.FLOATS;
        if (a.getIntsCount() > 0) return AttributeType.INTS;
        if (a.getStringsCount() > 0) return AttributeType.STRINGS;
        return AttributeType.UNDEFINED;
    }

    public Node setAttr(String attr, long value) {
        return put(AttributeProto.newBuilder().setName(attr).setType(AttributeType.INT).setI(value).build());
    }

    public Node setAttr(String attr, float value) {
        return put(AttributeProto.newBuilder().setName(attr).setType(AttributeType.FLOAT).setF(value).build());
    }

    public Node setAttr(String attr, String value) {
        return put(AttributeProto.newBuilder().setName(attr).setType(AttributeType.STRING)
                .setS(ByteString.copyFrom(value, StandardCharsets.UTF_8)).build());
    }

    public Node setAttr(String attr, long[] values) {
        AttributeProto.Builder b = AttributeProto.newBuilder().setName(attr).setType(AttributeType.INTS);
        for (long v : values) {
            b.addInts(v);
        }
        return put(b.build());
    }

    public Node setAttr(String attr, float[] values) {
        AttributeProto.Builder b = AttributeProto.newBuilder().setName(attr).setType(AttributeType.FLOATS);
        for (float v : values) {
            b.addFloats(v);
        }
        return put(b.build());
    }

    public Node setAttr(String attr, Tensor value) {
        return put(AttributeProto.newBuilder().setName(attr).setType(AttributeType.TENSOR)
                .setT(TensorProtos.toProto(null, value)).build());
    }

    /** Sets a prepared attribute (its name is the key). */
    public Node put(AttributeProto a) {
        AttributeProto old = attributes.get(a.getName());
        boolean reindex = graph != null && (!subgraphs(a).isEmpty() || (old != null && !subgraphs(old).isEmpty()));
        if (reindex) {
            graph.unindexNode(this);
        }
        attributes.put(a.getName(), a);
        if (reindex) {
            for (GraphProto sg : subgraphs(a)) {
                graph.reserveSubgraphNames(sg);
            }
            graph.indexNode(this);
        }
        return this;
    }

    public void removeAttr(String attr) {
        AttributeProto old = attributes.get(attr);
        boolean reindex = graph != null && old != null && !subgraphs(old).isEmpty();
        if (reindex) {
            graph.unindexNode(this);
        }
        attributes.remove(attr);
        if (reindex) {
            graph.indexNode(this);
        }
    }

    /** Subgraphs held by this node's attributes (If branches, Loop and Scan bodies). */
    public List<GraphProto> subgraphs() {
        List<GraphProto> out = new ArrayList<>();
        for (AttributeProto a : attributes.values()) {
            out.addAll(subgraphs(a));
        }
        return out;
    }

    private static List<GraphProto> subgraphs(AttributeProto a) {
        List<GraphProto> out = new ArrayList<>();
        if (a.hasG()) {
            out.add(a.getG());
        }
        out.addAll(a.getGraphsList());
        return out;
    }

    void rename(String newName) {
        this.name = newName;
    }

    /** Replaces references to {@code from} inside subgraph attributes (outer-scope uses). */
    void renameInSubgraphs(String from, String to) {
        for (Map.Entry<String, AttributeProto> e : attributes.entrySet()) {
            AttributeProto a = e.getValue();
            if (subgraphs(a).isEmpty()) {
                continue;
            }
            AttributeProto.Builder b = a.toBuilder();
            if (a.hasG()) {
                b.setG(Subgraphs.renameOuter(a.getG(), from, to));
            }
            for (int i = 0; i < a.getGraphsCount(); i++) {
                b.setGraphs(i, Subgraphs.renameOuter(a.getGraphs(i), from, to));
            }
            e.setValue(b.build());
        }
    }

    @Override
    public String toString() {
        return opType + " " + name + " " + inputs + " -> " + outputs;
    }
}
