package io.peft4j.core.onnx;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.onnx.proto.Onnx.AttributeProto;
import io.peft4j.core.onnx.proto.Onnx.GraphProto;
import io.peft4j.core.onnx.proto.Onnx.NodeProto;
import io.peft4j.core.onnx.proto.Onnx.SparseTensorProto;
import io.peft4j.core.onnx.proto.Onnx.StringStringEntryProto;
import io.peft4j.core.onnx.proto.Onnx.TensorAnnotation;
import io.peft4j.core.onnx.proto.Onnx.TensorProto;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;

/**
 * A mutable ONNX graph whose indices stay current by themselves: every value has at most one
 * producer (a node output, a graph input or an initializer) and a list of consuming nodes, updated
 * by every edit. One name authority hands out unique value and node names. Edits that would leave
 * the graph inconsistent are refused with {@link ErrorCode#GRAPH_STATE}: removing a node whose
 * outputs are still used, producing a value twice, or silently rewiring a graph output.
 *
 * <p>Written for rewrites that read like the math:
 * <pre>{@code
 * String xa = g.op("MatMul", x, a);                       // x·A
 * String y  = g.op("Add", base, g.op("Mul", g.op("MatMul", xa, b), scale));
 * }</pre>
 */
public final class Graph {

    private String name;
    private String docString = "";
    private final List<ValueInfoProto> inputs = new ArrayList<>();
    private final List<ValueInfoProto> outputs = new ArrayList<>();
    private final LinkedHashMap<String, ValueInfoProto> valueInfo = new LinkedHashMap<>();
    private final LinkedHashMap<String, Tensor> initializers = new LinkedHashMap<>();
    private final Set<String> storedExternally = new HashSet<>();
    private final List<SparseTensorProto> sparseInitializers = new ArrayList<>();
    private final List<TensorAnnotation> quantizationAnnotations = new ArrayList<>();
    private final List<StringStringEntryProto> metadata = new ArrayList<>();
    private final List<Node> nodes = new ArrayList<>();

    private final Map<String, Node> producers = new HashMap<>();
    private final Map<String, List<Node>> uses = new HashMap<>();
    private final Map<String, Node> nodesByName = new HashMap<>();
    private final Set<String> names = new HashSet<>();
    private final Map<String, Integer> nameCounters = new HashMap<>();

    public Graph(String name) {
        this.name = name == null ? "" : name;
    }

    // ---------------------------------------------------------------- proto conversion

    /**
     * Builds a graph from a proto. {@code initializerReader} turns each initializer proto into a
     * tensor (it resolves external data); the names of those it reports external are remembered
     * so that writing keeps them external.
     */
    static Graph fromProto(GraphProto p, Function<TensorProto, Tensor> initializerReader) {
        Graph g = new Graph(p.getName());
        g.docString = p.getDocString();
        for (TensorProto t : p.getInitializerList()) {
            if (t.getName().isEmpty()) {
                throw Peft4jException.malformed("graph '" + p.getName() + "' has an initializer without a name");
            }
            g.initializers.put(t.getName(), initializerReader.apply(t));
            if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
                g.storedExternally.add(t.getName());
            }
            g.names.add(t.getName());
        }
        for (ValueInfoProto v : p.getInputList()) {
            g.inputs.add(v);
            g.names.add(v.getName());
        }
        for (ValueInfoProto v : p.getValueInfoList()) {
            g.valueInfo.put(v.getName(), v);
        }
        g.sparseInitializers.addAll(p.getSparseInitializerList());
        for (SparseTensorProto s : p.getSparseInitializerList()) {
            g.names.add(s.getValues().getName());
        }
        g.quantizationAnnotations.addAll(p.getQuantizationAnnotationList());
        g.metadata.addAll(p.getMetadataPropsList());
        for (NodeProto np : p.getNodeList()) {
            Node n = Node.fromProto(np);
            g.names.add(n.name());
            g.names.addAll(n.inputs());
            g.names.addAll(n.outputs());
            for (GraphProto sg : n.subgraphs()) {
                Subgraphs.allNames(sg, g.names);
            }
            g.nodes.add(n);
            n.graph = g;
            g.indexNode(n);
            for (String out : n.outputs()) {
                if (!out.isEmpty()) {
                    g.producers.putIfAbsent(out, n);
                }
            }
            if (!n.name().isEmpty()) {
                g.nodesByName.putIfAbsent(n.name(), n);
            }
        }
        for (ValueInfoProto v : p.getOutputList()) {
            g.outputs.add(v);
            g.names.add(v.getName());
        }
        return g;
    }

    /** The graph as a proto; {@code initializerWriter} decides how each initializer is stored. */
    GraphProto toProto(InitializerWriter initializerWriter) {
        GraphProto.Builder b = GraphProto.newBuilder();
        if (!name.isEmpty()) {
            b.setName(name);
        }
        if (!docString.isEmpty()) {
            b.setDocString(docString);
        }
        for (Node n : nodes) {
            b.addNode(n.toProto());
        }
        for (Map.Entry<String, Tensor> e : initializers.entrySet()) {
            b.addInitializer(initializerWriter.write(e.getKey(), e.getValue(), storedExternally.contains(e.getKey())));
        }
        b.addAllSparseInitializer(sparseInitializers);
        b.addAllInput(inputs);
        b.addAllOutput(outputs);
        b.addAllValueInfo(valueInfo.values());
        b.addAllQuantizationAnnotation(quantizationAnnotations);
        b.addAllMetadataProps(metadata);
        return b.build();
    }

    /** How an initializer is written: inline or to external data. */
    @FunctionalInterface
    interface InitializerWriter {
        TensorProto write(String name, Tensor tensor, boolean wasExternal);
    }

    // ---------------------------------------------------------------- names

    public String name() {
        return name;
    }

    public void setName(String name) {
        this.name = name;
    }

    /**
     * A name not yet used anywhere in this graph (values, nodes, subgraphs), derived from
     * {@code hint}, and reserved from now on.
     */
    public String freshName(String hint) {
        String base = hint == null || hint.isEmpty() ? "v" : hint;
        if (names.add(base)) {
            return base;
        }
        int k = nameCounters.getOrDefault(base, 0);
        String candidate;
        do {
            k++;
            candidate = base + "_" + k;
        } while (!names.add(candidate));
        nameCounters.put(base, k);
        return candidate;
    }

    // ---------------------------------------------------------------- inputs, outputs, value info

    public List<ValueInfoProto> inputs() {
        return Collections.unmodifiableList(inputs);
    }

    public List<ValueInfoProto> outputs() {
        return Collections.unmodifiableList(outputs);
    }

    public List<String> inputNames() {
        return inputs.stream().map(ValueInfoProto::getName).toList();
    }

    public List<String> outputNames() {
        return outputs.stream().map(ValueInfoProto::getName).toList();
    }

    public Map<String, ValueInfoProto> valueInfo() {
        return Collections.unmodifiableMap(valueInfo);
    }

    public void setValueInfo(ValueInfoProto v) {
        valueInfo.put(v.getName(), v);
    }

    /** Forgets the declared type of value {@code n}, if any (when a rewrite changes its shape). */
    public void removeValueInfo(String n) {
        valueInfo.remove(n);
    }

    public void addInput(ValueInfoProto v) {
        String n = v.getName();
        if (producers.containsKey(n) || inputNames().contains(n)) {
            throw new Peft4jException(ErrorCode.GRAPH_STATE, "value '" + n + "' is already defined; cannot add it as a graph input");
        }
        names.add(n);
        inputs.add(v);
    }

    /** Removes a graph input that nothing uses any more. */
    public void removeInput(String n) {
        if (!consumers(n).isEmpty() || isGraphOutput(n)) {
            throw new Peft4jException(ErrorCode.GRAPH_STATE, "graph input '" + n + "' is still used");
        }
        if (!inputs.removeIf(v -> v.getName().equals(n))) {
            throw Peft4jException.notFound("no graph input named '" + n + "'");
        }
    }

    public void addOutput(ValueInfoProto v) {
        names.add(v.getName());
        outputs.add(v);
    }

    public void removeOutput(String n) {
        if (!outputs.removeIf(v -> v.getName().equals(n))) {
            throw Peft4jException.notFound("no graph output named '" + n + "'");
        }
    }

    /** Re-declares the type and shape of an existing graph output (same name). */
    public void setOutputInfo(ValueInfoProto v) {
        for (int i = 0; i < outputs.size(); i++) {
            if (outputs.get(i).getName().equals(v.getName())) {
                outputs.set(i, v);
                return;
            }
        }
        throw Peft4jException.notFound("no graph output named '" + v.getName() + "'");
    }

    /** Makes graph output {@code old} read value {@code replacement} instead (same type info). */
    public void replaceGraphOutput(String old, String replacement) {
        for (int i = 0; i < outputs.size(); i++) {
            if (outputs.get(i).getName().equals(old)) {
                outputs.set(i, outputs.get(i).toBuilder().setName(replacement).build());
                return;
            }
        }
        throw Peft4jException.notFound("no graph output named '" + old + "'");
    }

    public boolean isGraphInput(String n) {
        for (ValueInfoProto v : inputs) {
            if (v.getName().equals(n)) {
                return true;
            }
        }
        return false;
    }

    public boolean isGraphOutput(String n) {
        for (ValueInfoProto v : outputs) {
            if (v.getName().equals(n)) {
                return true;
            }
        }
        return false;
    }

    // ---------------------------------------------------------------- initializers

    public Map<String, Tensor> initializers() {
        return Collections.unmodifiableMap(initializers);
    }

    public boolean hasInitializer(String n) {
        return initializers.containsKey(n);
    }

    public Tensor initializer(String n) {
        Tensor t = initializers.get(n);
        if (t == null) {
            throw Peft4jException.notFound("graph '" + name + "' has no initializer named '" + n + "'");
        }
        return t;
    }

    /**
     * Sets or replaces an initializer. A replaced one keeps its storage (inline or external); a new
     * one must not clash with a value that a node or graph input already produces.
     */
    public void setInitializer(String n, Tensor t) {
        if (!initializers.containsKey(n) && producers.containsKey(n)) {
            throw new Peft4jException(ErrorCode.GRAPH_STATE, "value '" + n + "' is produced by node "
                    + producers.get(n).name() + "; it cannot also be an initializer");
        }
        names.add(n);
        initializers.put(n, t);
    }

    /** Adds an initializer under a fresh name derived from {@code hint}; returns the name. */
    public String addInitializer(String hint, Tensor t) {
        String n = freshName(hint);
        initializers.put(n, t);
        return n;
    }

    /**
     * Removes the default of graph input {@code n} (an initializer of the same name): the input
     * stays, declared with the default's element type and exact shape, and its consumers read
     * whatever a run feeds. Refused for a value that is not a graph input with a default.
     */
    public void removeInputDefault(String n) {
        if (!isGraphInput(n) || !initializers.containsKey(n)) {
            throw Peft4jException.notFound("graph '" + name + "' has no input '" + n + "' with a default value");
        }
        Tensor t = initializers.remove(n);
        storedExternally.remove(n);
        Object[] dims = new Object[t.rank()];
        for (int i = 0; i < dims.length; i++) {
            dims[i] = t.dim(i);
        }
        ValueInfoProto fixed = ValueInfos.tensor(n, t.dtype(), dims);
        inputs.replaceAll(v -> v.getName().equals(n) ? fixed : v);
    }

    /**
     * Turns graph input {@code n}, which has a default (an initializer of the same name), into a
     * constant: the input declaration goes, the initializer stays, and its readers read it as
     * before (ONNX Runtime may then fold it). Refused for a value that is not an input with a default.
     */
    public void inputToConstant(String n) {
        if (!isGraphInput(n) || !initializers.containsKey(n)) {
            throw Peft4jException.notFound("graph '" + name + "' has no input '" + n + "' with a default value");
        }
        inputs.removeIf(v -> v.getName().equals(n));
    }

    public void removeInitializer(String n) {
        if (!consumers(n).isEmpty() || isGraphOutput(n)) {
            throw new Peft4jException(ErrorCode.GRAPH_STATE, "initializer '" + n + "' is still used by "
                    + consumers(n).stream().map(Node::name).toList());
        }
        if (initializers.remove(n) == null) {
            throw Peft4jException.notFound("graph '" + name + "' has no initializer named '" + n + "'");
        }
        storedExternally.remove(n);
    }

    /** Whether the initializer was read from (and will be written to) an external data file. */
    public boolean isStoredExternally(String n) {
        return storedExternally.contains(n);
    }

    public void setStoredExternally(String n, boolean external) {
        if (external) {
            initializer(n);
            storedExternally.add(n);
        } else {
            storedExternally.remove(n);
        }
    }

    /** Element type of a value when known from an initializer, a graph input/output or value info. */
    public Optional<DataType> elementType(String value) {
        Tensor t = initializers.get(value);
        if (t != null) {
            return Optional.of(t.dtype());
        }
        ValueInfoProto v = valueInfo.get(value);
        if (v == null) {
            for (ValueInfoProto io : inputs) {
                if (io.getName().equals(value)) {
                    v = io;
                }
            }
            for (ValueInfoProto io : outputs) {
                if (io.getName().equals(value)) {
                    v = io;
                }
            }
        }
        if (v != null && v.getType().hasTensorType() && v.getType().getTensorType().getElemType() != 0) {
            return Optional.of(DataType.fromOnnx(v.getType().getTensorType().getElemType()));
        }
        return Optional.empty();
    }

    public List<SparseTensorProto> sparseInitializers() {
        return Collections.unmodifiableList(sparseInitializers);
    }

    // ---------------------------------------------------------------- nodes

    public List<Node> nodes() {
        return Collections.unmodifiableList(nodes);
    }

    public Node node(String nodeName) {
        Node n = nodesByName.get(nodeName);
        if (n == null) {
            throw Peft4jException.notFound("graph '" + name + "' has no node named '" + nodeName + "'");
        }
        return n;
    }

    /** The node that produces {@code value}; empty for graph inputs, initializers and unknown names. */
    public Optional<Node> producer(String value) {
        return Optional.ofNullable(producers.get(value));
    }

    /** Nodes that read {@code value} (directly, or from inside a subgraph), each once. */
    public List<Node> consumers(String value) {
        List<Node> l = uses.get(value);
        if (l == null || l.isEmpty()) {
            return List.of();
        }
        return List.copyOf(new LinkedHashSet<>(l));
    }

    /** Whether anything reads the value: a node, a subgraph or the graph's outputs. */
    public boolean isUsed(String value) {
        List<Node> l = uses.get(value);
        return (l != null && !l.isEmpty()) || isGraphOutput(value);
    }

    /** Starts a new node of the default domain; see {@link NodeBuilder}. */
    public NodeBuilder build(String opType) {
        return new NodeBuilder(this, "", opType);
    }

    /** Adds {@code opType(inputs...)} with one fresh output and returns that output's name. */
    public String op(String opType, String... inputs) {
        return build(opType).in(inputs).out();
    }

    /**
     * Adds a node with the given inputs and outputs. An empty or taken node name is replaced by a
     * fresh one; an output that something already produces is refused.
     */
    public Node addNode(String domain, String opType, String nodeName, List<String> ins, List<String> outs) {
        for (String o : outs) {
            if (o.isEmpty()) {
                continue;
            }
            if (producers.containsKey(o) || initializers.containsKey(o) || isGraphInput(o)) {
                throw new Peft4jException(ErrorCode.GRAPH_STATE, "value '" + o + "' is already produced; a graph "
                        + "value has one producer");
            }
        }
        String finalName = nodeName == null || nodeName.isEmpty() || names.contains(nodeName)
                ? freshName(nodeName == null || nodeName.isEmpty() ? opType : nodeName) : nodeName;
        names.add(finalName);
        names.addAll(outs);
        Node n = new Node(finalName, domain, opType, ins, outs);
        insert(n, nodes.size());
        return n;
    }

    private void insert(Node n, int position) {
        nodes.add(position, n);
        n.graph = this;
        indexNode(n);
        for (String o : n.outputs()) {
            if (!o.isEmpty()) {
                producers.put(o, n);
            }
        }
        nodesByName.putIfAbsent(n.name(), n);
    }

    /**
     * Removes a node. Refused while any of its outputs is still read by a node or is a graph
     * output: rewire those uses first.
     */
    public void remove(Node n) {
        requireOwned(n);
        for (String o : n.outputs()) {
            if (!o.isEmpty() && isUsed(o)) {
                throw new Peft4jException(ErrorCode.GRAPH_STATE, "cannot remove node " + n.name() + ": its output '"
                        + o + "' is still used by " + (isGraphOutput(o) ? "the graph outputs" : consumers(o).stream().map(Node::name).toList()));
            }
        }
        unlink(n);
    }

    /**
     * Replaces a single-output node by an initializer of the same name holding {@code value}; the
     * node's consumers now read the initializer (used to lift Constant nodes and fold constants).
     */
    public void replaceWithInitializer(Node n, Tensor value) {
        requireOwned(n);
        if (n.outputs().size() != 1) {
            throw new Peft4jException(ErrorCode.GRAPH_STATE, "node " + n.name() + " has " + n.outputs().size()
                    + " outputs; only a single-output node can become an initializer");
        }
        unlink(n);
        initializers.put(n.output(0), value);
    }

    private void unlink(Node n) {
        unindexNode(n);
        nodes.remove(n);
        for (String o : n.outputs()) {
            if (producers.get(o) == n) {
                producers.remove(o);
            }
        }
        if (nodesByName.get(n.name()) == n) {
            nodesByName.remove(n.name());
        }
        n.graph = null;
    }

    /**
     * Moves the node output {@code value} onto a fresh name and returns that name, leaving
     * {@code value} without a producer: its consumers and the graph outputs keep reading it, and
     * the caller produces it again from the moved one. This is how a rewrite wraps a layer while
     * every name the rest of the graph (and its callers) sees stays the same:
     * <pre>{@code
     * String base = g.detachProducer(y);                  // the layer now writes `base`
     * g.build("Add").in(base, delta).outputs(y).add();    // y = base + delta
     * }</pre>
     * Refused for values that no node produces (graph inputs, initializers).
     */
    public String detachProducer(String value) {
        Node p = producers.get(value);
        if (p == null) {
            throw new Peft4jException(ErrorCode.GRAPH_STATE, "'" + value + "' is not produced by a node; only node "
                    + "outputs can be detached");
        }
        String moved = freshName(value + "_base");
        for (int i = 0; i < p.outputs().size(); i++) {
            if (p.output(i).equals(value)) {
                p.setOutputUnindexed(i, moved);
            }
        }
        producers.remove(value);
        producers.put(moved, p);
        ValueInfoProto info = valueInfo.get(value);
        if (info != null) {
            valueInfo.put(moved, info.toBuilder().setName(moved).build());
        }
        return moved;
    }

    /**
     * The inverse of {@link #detachProducer}: the node that writes {@code value}, which nothing reads
     * (nor the graph outputs), writes {@code name} instead, a value that no node writes yet (a graph
     * output left without its producer, say). Refused otherwise.
     */
    public void renameProduced(String value, String name) {
        Node p = producers.get(value);
        if (p == null || isUsed(value) || producers.containsKey(name) || initializers.containsKey(name) || isGraphInput(name)) {
            throw new Peft4jException(ErrorCode.GRAPH_STATE, "cannot make the producer of '" + value + "' write '" + name
                    + "': " + (p == null ? "no node writes it" : isUsed(value) ? "it is still read" : "'" + name + "' has a value"));
        }
        for (int i = 0; i < p.outputs().size(); i++) {
            if (p.output(i).equals(value)) {
                p.setOutputUnindexed(i, name);
            }
        }
        producers.remove(value);
        producers.put(name, p);
        names.add(name);
        ValueInfoProto info = valueInfo.remove(value);
        if (info != null && !valueInfo.containsKey(name)) {
            valueInfo.put(name, info.toBuilder().setName(name).build());
        }
    }

    /**
     * Makes every node (and subgraph) that reads {@code old} read {@code replacement} instead.
     * Refused when {@code old} is a graph output, which would change what the graph returns
     * silently; use {@link #replaceGraphOutput} for that. Returns the number of nodes rewired.
     */
    public int replaceAllUses(String old, String replacement) {
        return replaceAllUses(old, replacement, List.of());
    }

    /**
     * {@link #replaceAllUses(String, String)}, leaving the nodes in {@code keep} reading {@code old}:
     * the usual way to insert a node after a value, e.g. {@code y = Add(x, delta)} then
     * {@code replaceAllUses(x, y, List.of(addNode))}. Refused when a rewired node would read its
     * own output.
     */
    public int replaceAllUses(String old, String replacement, List<Node> keep) {
        if (isGraphOutput(old)) {
            throw new Peft4jException(ErrorCode.GRAPH_STATE, "'" + old + "' is a graph output; replacing its uses "
                    + "would not change the output: call replaceGraphOutput explicitly");
        }
        if (old.equals(replacement)) {
            return 0;
        }
        List<Node> users = new ArrayList<>(consumers(old));
        users.removeIf(n -> keep.stream().anyMatch(k -> k == n));
        Node replacementProducer = producers.get(replacement);
        for (Node n : users) {
            if (n == replacementProducer) {
                throw new Peft4jException(ErrorCode.GRAPH_STATE, "node " + n.name() + " reads '" + old + "' and produces '"
                        + replacement + "': rewiring it would make it read its own output (pass it in keep)");
            }
        }
        for (Node n : users) {
            unindexNode(n);
            for (int i = 0; i < n.inputs().size(); i++) {
                if (n.input(i).equals(old)) {
                    n.setInputUnindexed(i, replacement);
                }
            }
            n.renameInSubgraphs(old, replacement);
            indexNode(n);
        }
        return users.size();
    }

    /**
     * Removes nodes whose outputs nothing reads (nor the graph outputs), repeatedly, and returns
     * how many were removed. Initializers are left alone; see {@link #removeUnusedInitializers()}.
     */
    public int removeDeadNodes() {
        int removed = 0;
        boolean changed = true;
        while (changed) {
            changed = false;
            for (int i = nodes.size() - 1; i >= 0; i--) {
                Node n = nodes.get(i);
                boolean live = false;
                for (String o : n.outputs()) {
                    if (!o.isEmpty() && isUsed(o)) {
                        live = true;
                        break;
                    }
                }
                if (!live) {
                    unlink(n);
                    removed++;
                    changed = true;
                }
            }
        }
        return removed;
    }

    /** Removes initializers nothing reads (that are not graph inputs); returns how many. */
    public int removeUnusedInitializers() {
        List<String> dead = new ArrayList<>();
        for (String n : initializers.keySet()) {
            if (!isUsed(n) && !isGraphInput(n)) {
                dead.add(n);
            }
        }
        for (String n : dead) {
            initializers.remove(n);
            storedExternally.remove(n);
        }
        return dead.size();
    }

    /**
     * Nodes in a topological order (stable: among ready nodes, the earlier in the current list
     * comes first). Refused with the nodes involved when the graph has a cycle.
     */
    public List<Node> topologicalOrder() {
        Map<Node, Integer> pending = new IdentityHashMap<>();
        Map<Node, Integer> position = new IdentityHashMap<>();
        for (int i = 0; i < nodes.size(); i++) {
            position.put(nodes.get(i), i);
        }
        java.util.PriorityQueue<Node> ready = new java.util.PriorityQueue<>((a, b) -> position.get(a) - position.get(b));
        for (Node n : nodes) {
            int deps = 0;
            for (String in : allReads(n)) {
                Node p = producers.get(in);
                if (p == n) {
                    throw new Peft4jException(ErrorCode.GRAPH_STATE, "node " + n.name() + " reads its own output '" + in
                            + "' (a cycle of one node)");
                }
                if (p != null) {
                    deps++;
                }
            }
            pending.put(n, deps);
            if (deps == 0) {
                ready.add(n);
            }
        }
        List<Node> order = new ArrayList<>(nodes.size());
        while (!ready.isEmpty()) {
            Node n = ready.poll();
            order.add(n);
            for (String o : n.outputs()) {
                if (o.isEmpty()) {
                    continue;
                }
                List<Node> l = uses.get(o);
                if (l == null) {
                    continue;
                }
                for (Node c : l) {
                    int left = pending.merge(c, -1, Integer::sum);
                    if (left == 0) {
                        ready.add(c);
                    }
                }
            }
        }
        if (order.size() != nodes.size()) {
            List<String> stuck = new ArrayList<>();
            for (Node n : nodes) {
                if (pending.get(n) > 0) {
                    stuck.add(n.name());
                }
            }
            throw new Peft4jException(ErrorCode.GRAPH_STATE, "graph '" + name + "' has a cycle through nodes "
                    + stuck.subList(0, Math.min(10, stuck.size())));
        }
        return order;
    }

    /** Reorders the node list topologically; returns whether the order changed. */
    public boolean sortTopologically() {
        List<Node> order = topologicalOrder();
        if (order.equals(nodes)) {
            return false;
        }
        nodes.clear();
        nodes.addAll(order);
        return true;
    }

    // ---------------------------------------------------------------- index maintenance

    /** Every value a node reads: its inputs and the outer values its subgraphs use (with repeats). */
    private static List<String> allReads(Node n) {
        List<String> reads = new ArrayList<>();
        for (String in : n.inputs()) {
            if (!in.isEmpty()) {
                reads.add(in);
            }
        }
        for (GraphProto sg : n.subgraphs()) {
            reads.addAll(Subgraphs.outerReferences(sg));
        }
        return reads;
    }

    /** Reserves every name used inside a subgraph attached to a node of this graph. */
    void reserveSubgraphNames(GraphProto sg) {
        Subgraphs.allNames(sg, names);
    }

    void indexNode(Node n) {
        for (String in : allReads(n)) {
            uses.computeIfAbsent(in, k -> new ArrayList<>()).add(n);
        }
    }

    void unindexNode(Node n) {
        for (String in : allReads(n)) {
            List<Node> l = uses.get(in);
            if (l != null) {
                l.remove(n);
                if (l.isEmpty()) {
                    uses.remove(in);
                }
            }
        }
    }

    private void requireOwned(Node n) {
        if (n.graph != this) {
            throw new Peft4jException(ErrorCode.GRAPH_STATE, "node " + n.name() + " is not part of graph '" + name + "'");
        }
    }

    // ---------------------------------------------------------------- node builder

    /** Builds one node: {@code g.build("Gemm").in(x, w, b).attr("transB", 1).out()}. */
    public static final class NodeBuilder {
        private final Graph graph;
        private String domain;
        private final String opType;
        private String nodeName = "";
        private final List<String> ins = new ArrayList<>();
        private final List<String> outs = new ArrayList<>();
        private int outputCount = 1;
        private final List<java.util.function.Consumer<Node>> attrs = new ArrayList<>();

        NodeBuilder(Graph graph, String domain, String opType) {
            this.graph = graph;
            this.domain = domain;
            this.opType = opType;
        }

        public NodeBuilder domain(String d) {
            this.domain = d;
            return this;
        }

        /** A hint for the node's name (made unique); output names derive from it. */
        public NodeBuilder name(String hint) {
            this.nodeName = hint;
            return this;
        }

        public NodeBuilder in(String... values) {
            ins.addAll(List.of(values));
            return this;
        }

        /** Explicit output names (must be new). */
        public NodeBuilder outputs(String... names) {
            outs.addAll(List.of(names));
            return this;
        }

        /** Number of fresh outputs to create when none are named. */
        public NodeBuilder outputCount(int n) {
            this.outputCount = n;
            return this;
        }

        public NodeBuilder attr(String n, long v) {
            attrs.add(node -> node.setAttr(n, v));
            return this;
        }

        public NodeBuilder attr(String n, float v) {
            attrs.add(node -> node.setAttr(n, v));
            return this;
        }

        public NodeBuilder attr(String n, String v) {
            attrs.add(node -> node.setAttr(n, v));
            return this;
        }

        public NodeBuilder attr(String n, long... v) {
            attrs.add(node -> node.setAttr(n, v));
            return this;
        }

        public NodeBuilder attr(String n, float[] v) {
            attrs.add(node -> node.setAttr(n, v));
            return this;
        }

        public NodeBuilder attr(String n, Tensor v) {
            attrs.add(node -> node.setAttr(n, v));
            return this;
        }

        public NodeBuilder attr(AttributeProto a) {
            attrs.add(node -> node.put(a));
            return this;
        }

        /** Adds the node and returns it. */
        public Node add() {
            String nodeHint = nodeName.isEmpty() ? opType : nodeName;
            String finalName = graph.freshName(nodeHint);
            List<String> outputNames = new ArrayList<>(outs);
            if (outputNames.isEmpty()) {
                for (int i = 0; i < outputCount; i++) {
                    outputNames.add(graph.freshName(finalName + "_output_" + i));
                }
            }
            Node n = graph.addNodeNamed(domain, opType, finalName, ins, outputNames);
            for (java.util.function.Consumer<Node> a : attrs) {
                a.accept(n);
            }
            return n;
        }

        /** Adds the node and returns its (first) output. */
        public String out() {
            return add().output(0);
        }
    }

    private Node addNodeNamed(String domain, String opType, String reservedName, List<String> ins, List<String> outs) {
        names.remove(reservedName);
        return addNode(domain, opType, reservedName, ins, outs);
    }

    @Override
    public String toString() {
        return "Graph[" + name + ": " + nodes.size() + " nodes, " + initializers.size() + " initializers]";
    }
}
