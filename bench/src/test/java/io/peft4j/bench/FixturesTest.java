package io.peft4j.bench;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The side-model edit the benchmark makes so that ONNX Runtime's adapter loader takes the scaling inputs. */
class FixturesTest {

    @Test
    void scalarInputsBecomeOneElementVectorsWithTheirDefaults() {
        Model m = new Model("t", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, 2L, 3L));
        g.addInput(ValueInfos.tensor("s", DataType.FLOAT));
        g.setInitializer("s", Tensor.scalar(0f));
        g.build("Mul").name("scale").in("x", "s").outputs("y").add();
        g.addOutput(ValueInfos.tensor("y", DataType.FLOAT, 2L, 3L));

        Map<String, Tensor> feeds = new LinkedHashMap<>();
        feeds.put("s", Tensor.scalar(2f));
        feeds.put("x", Tensor.zeros(DataType.FLOAT, 2, 3));
        Map<String, Tensor> out = Fixtures.scalarsAsVectors(m, feeds);

        assertArrayEquals(new long[] {1}, out.get("s").shape());
        assertEquals(2f, out.get("s").toFloatArray()[0]);
        assertArrayEquals(new long[] {2, 3}, out.get("x").shape(), "non-scalars are left alone");
        assertArrayEquals(new long[] {1}, g.initializer("s").shape());
        assertEquals(1, g.inputs().stream().filter(v -> v.getName().equals("s")).findFirst().orElseThrow()
                .getType().getTensorType().getShape().getDimCount());
        assertEquals(List.of("x", "s"), g.node("scale").inputs());
    }
}
