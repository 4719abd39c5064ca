package io.peft4j.core.peft;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.peft.lora.LoraMethod;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PeftMethodsTest {

    @Test
    void methodsAreRegisteredOnceByPeftType() {
        assertEquals(List.of("LORA", "IA3"), PeftMethods.all().stream().map(PeftMethod::peftType).toList());
        Peft4jException dup = assertThrows(Peft4jException.class, () -> PeftMethods.register(new LoraMethod()));
        assertTrue(dup.getMessage().contains("already registered"), dup.getMessage());
        Peft4jException unknown = assertThrows(Peft4jException.class, () -> PeftMethods.get("LOHA"));
        assertTrue(unknown.getMessage().contains("LOHA") && unknown.getMessage().contains("LORA, IA3"), unknown.getMessage());
    }

    @Test
    void patternKeysMatchAsPeftsGetPatternKey() {
        // (.*\.)?(key)$ : the key as a whole trailing name, or a regex over the tail
        assertEquals(Optional.of("value"), PeftMatching.patternKey(List.of("value"), "encoder.layer.0.attention.self.value"));
        assertEquals(Optional.empty(), PeftMatching.patternKey(List.of("value"), "encoder.layer.0.attention.self.xvalue"));
        assertEquals(Optional.of("layer\\.0\\..*query"),
                PeftMatching.patternKey(List.of("layer\\.0\\..*query"), "encoder.layer.0.attention.self.query"));
        // the first key that matches wins
        assertEquals(Optional.of("self.query"), PeftMatching.patternKey(List.of("self.query", "query"), "a.self.query"));
        AdapterConfig c = new AdapterConfig("LORA", 8, 16, List.of("query"), null, 0, "none", true, false, false, List.of(),
                Map.of("layer.1.attention.self.query", 4), Map.of("query", 2.0), List.of(), null, Map.of());
        assertEquals(4, PeftMatching.rank(c, "encoder.layer.1.attention.self.query"));
        assertEquals(8, PeftMatching.rank(c, "encoder.layer.11.attention.self.query"));
        assertEquals(2.0 / Math.sqrt(4), PeftMatching.loraScale(c, "encoder.layer.1.attention.self.query"), 1e-12);
        // target_modules: a name or a '.'-suffix; IA3 feedforward: a plain suffix
        assertTrue(PeftMatching.isTarget(c, "encoder.layer.1.attention.self.query"));
        assertFalse(PeftMatching.isTarget(c, "encoder.layer.1.attention.self.subquery"));
        AdapterConfig ia3 = AdapterConfig.ia3(List.of("output.dense"), List.of("output.dense"));
        assertTrue(PeftMatching.isFeedforward(ia3, "encoder.layer.0.attention.output.dense"));
    }

    @Test
    void mergingIntoHalfPrecisionWeightsRoundsOnce() {
        Model m = new Model("half", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT16, 2, 3));
        float[] w = {0.1f, -0.2f, 0.3f, 0.7f, 1.5f, -2.25f};
        g.setInitializer("fc.weight", Tensor.ofFloats(new long[] {3, 2}, w).to(DataType.FLOAT16));
        g.build("MatMul").name("/fc/MatMul").in("x", "fc.weight").outputs("y").add();
        g.addOutput(ValueInfos.tensor("y", DataType.FLOAT16, 2, 2));
        Tensor a = Tensor.ofFloats(new long[] {1, 3}, 0.01f, 0.02f, 0.03f);
        Tensor b = Tensor.ofFloats(new long[] {2, 1}, 0.5f, -0.25f);
        AdapterBinding binding = AdapterBinding.bind(m, new io.peft4j.core.adapter.AdapterBundle(
                AdapterConfig.lora(1, 3, List.of("fc")), Map.of("base_model.model.fc.lora_A.weight", a,
                "base_model.model.fc.lora_B.weight", b)));
        float[] stored = g.initializer("fc.weight").toFloatArray();
        Peft.merge(m, binding);
        Tensor merged = g.initializer("fc.weight");
        assertEquals(DataType.FLOAT16, merged.dtype());
        float[] expected = new float[6];
        for (int i = 0; i < 3; i++) {
            for (int o = 0; o < 2; o++) {
                expected[i * 2 + o] = stored[i * 2 + o] + 3f * b.toFloatArray()[o] * a.toFloatArray()[i];
            }
        }
        Tensor want = Tensor.ofFloats(new long[] {3, 2}, expected).to(DataType.FLOAT16);
        assertTrue(want.contentEquals(merged), "fp16 weight + ΔW computed in float32, rounded once");
    }
}
