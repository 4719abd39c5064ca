package io.peft4j.core.onnx;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.proto.Onnx.AttributeProto;
import io.peft4j.core.onnx.proto.Onnx.GraphProto;
import io.peft4j.core.onnx.proto.Onnx.NodeProto;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GraphTest {

    @Test
    void producersAndConsumersFollowEdits() {
        Model m = TinyModels.cnn(1);
        Graph g = m.graph();
        Node conv = g.node("/conv1/Conv");
        assertEquals(conv, g.producer(conv.output(0)).orElseThrow());
        assertTrue(g.producer("x").isEmpty(), "graph inputs have no producer node");
        assertEquals(List.of(conv), g.consumers("conv1.weight"));
        Node relu = g.consumers(conv.output(0)).get(0);
        assertEquals("Relu", relu.opType());

        // a rewrite: conv → Mul(conv, 2) → relu, written the way the PEFT rewrites will be
        String two = g.addInitializer("two", Tensor.scalar(2f));
        String scaled = g.op("Mul", conv.output(0), two);
        relu.setInput(0, scaled);
        assertEquals(List.of(relu), g.consumers(scaled));
        assertEquals(1, g.consumers(conv.output(0)).size(), "only the Mul reads the conv now");
        assertEquals("Mul", g.consumers(conv.output(0)).get(0).opType());
        g.sortTopologically();
        assertTrue(g.nodes().indexOf(g.producer(scaled).orElseThrow()) < g.nodes().indexOf(relu));

        Tensor x = TinyModels.input(7, 2);
        Tensor before = Ort.run(TinyModels.cnn(1), Map.of("x", x)).get("logits");
        Tensor after = Ort.run(m, Map.of("x", x)).get("logits");
        assertTrue(Ort.maxAbsDiff(before, after) > 1e-4, "doubling the conv output changes the logits");
    }

    @Test
    void anInputDefaultCanBeDroppedLeavingAFixedShapeInput() {
        Model m = TinyModels.cnn(2);
        Graph g = m.graph();
        Tensor w = g.initializer("fc2.weight");
        g.addInput(ValueInfos.tensor("fc2.weight", DataType.FLOAT, "r", 6));
        g.removeInputDefault("fc2.weight");
        assertFalse(g.hasInitializer("fc2.weight"));
        assertTrue(g.isGraphInput("fc2.weight"));
        var dims = g.inputs().stream().filter(v -> v.getName().equals("fc2.weight")).findFirst().orElseThrow()
                .getType().getTensorType().getShape().getDimList();
        assertEquals(List.of(3L, 6L), dims.stream().map(d -> d.getDimValue()).toList(), "declared with the default's shape");
        // fed explicitly, the graph computes what it computed with the default
        Tensor x = TinyModels.input(3, 2);
        Tensor ref = Ort.run(TinyModels.cnn(2), Map.of("x", x)).get("logits");
        Tensor fed = Ort.run(m, Map.of("x", x, "fc2.weight", w)).get("logits");
        assertEquals(0.0, Ort.maxAbsDiff(ref, fed));
        Peft4jException notInput = assertThrows(Peft4jException.class, () -> g.removeInputDefault("fc1_w"));
        assertEquals(Peft4jException.ErrorCode.NOT_FOUND, notInput.code());
    }

    @Test
    void freshNamesNeverCollide() {
        Graph g = TinyModels.cnn(1).graph();
        String a = g.freshName("conv1.weight");
        String b = g.freshName("conv1.weight");
        assertNotEquals("conv1.weight", a);
        assertNotEquals(a, b);
        Node n1 = g.build("Relu").name("/conv1/Conv").in("x").add();
        assertNotEquals("/conv1/Conv", n1.name(), "a taken node name is made unique");
        Peft4jException e = assertThrows(Peft4jException.class, () -> g.build("Relu").in("x").outputs("logits").add());
        assertEquals(Peft4jException.ErrorCode.GRAPH_STATE, e.code(), "a value has one producer");
    }

    @Test
    void replaceAllUsesRewiresReadersButRefusesGraphOutputs() {
        Model m = TinyModels.cnn(2);
        Graph g = m.graph();
        Peft4jException e = assertThrows(Peft4jException.class, () -> g.replaceAllUses("logits", "x"));
        assertEquals(Peft4jException.ErrorCode.GRAPH_STATE, e.code());
        assertTrue(e.getMessage().contains("graph output"), e.getMessage());

        // insert a Neg after the input: rewire the readers first, then add the node that reads x
        String negated = g.freshName("x_neg");
        assertEquals(1, g.replaceAllUses("x", negated));
        g.build("Neg").in("x").outputs(negated).add();
        g.sortTopologically();
        assertEquals("Neg", g.consumers("x").get(0).opType());
        Tensor x = TinyModels.input(3, 2);
        Tensor viaNeg = Ort.run(m, Map.of("x", x)).get("logits");
        float[] neg = x.toFloatArray();
        for (int i = 0; i < neg.length; i++) {
            neg[i] = -neg[i];
        }
        Tensor direct = Ort.run(TinyModels.cnn(2), Map.of("x", Tensor.ofFloats(x.shape(), neg))).get("logits");
        assertEquals(0.0, Ort.maxAbsDiff(viaNeg, direct), 1e-6);
    }

    @Test
    void insertingAfterAValueKeepsTheNewNodeOffTheRewiring() {
        Model m = TinyModels.cnn(2);
        Graph g = m.graph();
        String conv = g.node("/conv1/Conv").output(0);
        String two = g.addInitializer("two", Tensor.scalar(2f));
        Node mul = g.build("Mul").in(conv, two).add();
        Peft4jException e = assertThrows(Peft4jException.class, () -> g.replaceAllUses(conv, mul.output(0)));
        assertTrue(e.getMessage().contains("its own output"), e.getMessage());
        assertEquals(1, g.replaceAllUses(conv, mul.output(0), List.of(mul)));
        assertEquals(List.of(mul), g.consumers(conv));
        g.sortTopologically();
        Tensor x = TinyModels.input(3, 2);
        assertTrue(Ort.maxAbsDiff(Ort.run(TinyModels.cnn(2), Map.of("x", x)).get("logits"),
                Ort.run(m, Map.of("x", x)).get("logits")) > 1e-4);

        Graph c = new Graph("self");
        c.addInput(ValueInfos.tensor("x", DataType.FLOAT, 1));
        c.addNode("", "Add", "a", List.of("x", "a_out"), List.of("a_out"));
        e = assertThrows(Peft4jException.class, c::topologicalOrder);
        assertTrue(e.getMessage().contains("reads its own output"), e.getMessage());
    }

    @Test
    void replacingOrRemovingASubgraphAttributeUpdatesUsesAndNames() {
        Graph g = new Graph("outer");
        g.addInput(ValueInfos.tensor("cond", DataType.BOOL));
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, 2));
        String y = g.op("Neg", "x");
        GraphProto branch = GraphProto.newBuilder().setName("b")
                .addNode(NodeProto.newBuilder().setOpType("Identity").addInput(y).addOutput("inner_tmp"))
                .addOutput(ValueInfos.tensor("inner_tmp", DataType.FLOAT, 2)).build();
        Node n = g.build("If").in("cond").add();
        n.put(AttributeProto.newBuilder().setName("then_branch").setType(AttributeProto.AttributeType.GRAPH).setG(branch).build());
        assertEquals(List.of(n), g.consumers(y));
        assertNotEquals("inner_tmp", g.freshName("inner_tmp"), "names inside an attached subgraph are taken");
        n.removeAttr("then_branch");
        assertTrue(g.consumers(y).isEmpty(), "removing the subgraph removes its uses");
        n.put(AttributeProto.newBuilder().setName("then_branch").setType(AttributeProto.AttributeType.GRAPH).setG(branch).build());
        n.setAttr("then_branch", 3L);
        assertTrue(g.consumers(y).isEmpty(), "replacing the subgraph by a plain attribute removes its uses");
    }

    @Test
    void removingAUsedNodeIsRefusedAndDeadNodesGo() {
        Model m = TinyModels.cnn(3);
        Graph g = m.graph();
        Node conv = g.node("/conv1/Conv");
        Peft4jException e = assertThrows(Peft4jException.class, () -> g.remove(conv));
        assertEquals(Peft4jException.ErrorCode.GRAPH_STATE, e.code());
        int before = g.nodes().size();
        String dead = g.op("Relu", g.op("Neg", "x"));
        assertEquals(before + 2, g.nodes().size());
        assertFalse(g.isUsed(dead));
        assertEquals(2, g.removeDeadNodes());
        assertEquals(before, g.nodes().size());
        g.setInitializer("unused", Tensor.scalar(1f));
        assertEquals(1, g.removeUnusedInitializers());
        assertFalse(g.hasInitializer("unused"));
        assertThrows(Peft4jException.class, () -> g.removeInitializer("conv1.weight"));
    }

    @Test
    void topologicalOrderRestoresAShuffledGraphAndFindsCycles() {
        Model m = TinyModels.cnn(5);
        List<Node> shuffled = new ArrayList<>(m.graph().nodes());
        Collections.shuffle(shuffled, new Random(42));
        GraphProto.Builder gp = OnnxIO.toProto(m).getGraph().toBuilder().clearNode();
        for (Node n : shuffled) {
            gp.addNode(n.toProto());
        }
        Model shuffledModel = OnnxIO.read(OnnxIO.toProto(m).toBuilder().setGraph(gp).build().toByteArray(), "shuffled");
        assertTrue(shuffledModel.graph().sortTopologically());
        Tensor x = TinyModels.input(1, 3);
        assertEquals(0.0, Ort.maxAbsDiff(Ort.run(m, Map.of("x", x)).get("logits"),
                Ort.run(shuffledModel, Map.of("x", x)).get("logits")));
        assertFalse(m.graph().sortTopologically(), "an ordered graph stays as it is");

        Graph c = new Graph("cyclic");
        c.addInput(ValueInfos.tensor("x", DataType.FLOAT, 1));
        c.addNode("", "Add", "a", List.of("x", "b_out"), List.of("a_out"));
        c.addNode("", "Relu", "b", List.of("a_out"), List.of("b_out"));
        Peft4jException e = assertThrows(Peft4jException.class, c::topologicalOrder);
        assertTrue(e.getMessage().contains("cycle") && e.getMessage().contains("a"), e.getMessage());
    }

    @Test
    void subgraphReadsOfOuterValuesCountAsUses() {
        Model m = new Model("if", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("cond", DataType.BOOL));
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, 2));
        String y = g.op("Neg", "x");
        GraphProto thenBranch = GraphProto.newBuilder().setName("then")
                .addNode(NodeProto.newBuilder().setOpType("Identity").addInput(y).addOutput("t_out"))
                .addOutput(ValueInfos.tensor("t_out", DataType.FLOAT, 2)).build();
        GraphProto elseBranch = GraphProto.newBuilder().setName("else")
                .addNode(NodeProto.newBuilder().setOpType("Identity").addInput("x").addOutput("e_out"))
                .addOutput(ValueInfos.tensor("e_out", DataType.FLOAT, 2)).build();
        Node iff = g.build("If").in("cond").outputs("out")
                .attr(AttributeProto.newBuilder().setName("then_branch").setType(AttributeProto.AttributeType.GRAPH)
                        .setG(thenBranch).build())
                .attr(AttributeProto.newBuilder().setName("else_branch").setType(AttributeProto.AttributeType.GRAPH)
                        .setG(elseBranch).build())
                .add();
        g.addOutput(ValueInfos.tensor("out", DataType.FLOAT, 2));
        assertEquals(List.of(iff), g.consumers(y), "the then-branch reads the Neg's output");
        assertEquals(0, g.removeDeadNodes(), "the Neg is alive through the subgraph");
        Node neg = g.producer(y).orElseThrow();
        assertThrows(Peft4jException.class, () -> g.remove(neg));

        // rewiring an outer value rewrites the subgraph that reads it
        String z = g.op("Abs", "x");
        g.replaceAllUses(y, z);
        assertEquals(1, g.removeDeadNodes(), "the Neg has no readers left");
        g.sortTopologically();
        Tensor x = Tensor.ofFloats(new long[] {2}, -1.5f, 2f);
        Tensor out = Ort.run(m, Map.of("cond", Tensor.ofBools(new long[0], true), "x", x)).get("out");
        assertEquals(1.5f, out.getFloat(0));
        assertEquals(2f, out.getFloat(1));
    }

    @Test
    void opsetsAreImportedOnDemandAndNeverSilentlyRaised() {
        Model m = TinyModels.cnn(1);
        m.requireOpset("", 13);
        assertEquals(17, m.opset(""));
        m.requireOpset("com.microsoft", 1);
        assertEquals(1, m.opset("com.microsoft"));
        Peft4jException e = assertThrows(Peft4jException.class, () -> m.requireOpset("ai.onnx", 18));
        assertTrue(e.getMessage().contains("opset 18"), e.getMessage());
    }
}
