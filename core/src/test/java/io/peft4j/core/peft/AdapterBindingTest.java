package io.peft4j.core.peft;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.peft.ia3.Ia3Method;
import io.peft4j.core.peft.lora.LoraMethod;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.OnnxChecker;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Binding adapters to graphs: every way an adapter can fail to fit, reported at once and clearly. */
class AdapterBindingTest {

    private static AdapterBundle loraFor(Model m, List<String> targets) {
        return PeftFixtures.randomAdapter(m, AdapterConfig.lora(2, 4, targets), 1, 0.1);
    }

    /** The same adapter without its peft4j block: as Hugging Face PEFT writes it. */
    private static AdapterBundle fromPytorch(AdapterBundle b) {
        return b.withConfig(b.config().withPeft4j(null));
    }

    @Test
    void unknownTargetIsRefusedNamingTheGraphsLayers() {
        Peft4jException e = assertThrows(Peft4jException.class,
                () -> AdapterBinding.select(TinyModels.cnn(1), AdapterConfig.lora(2, 4, List.of("attn"))));
        assertEquals(ErrorCode.NOT_FOUND, e.code());
        assertTrue(e.getMessage().contains("selects no layer") && e.getMessage().contains("fc2"), e.getMessage());
    }

    @Test
    void everyKeyThatMapsNowhereAndEveryBadShapeIsListedInOneMessage() {
        Model m = TinyModels.cnn(1);
        AdapterBundle good = fromPytorch(loraFor(m, List.of("conv1", "fc1")));
        Map<String, Tensor> t = new LinkedHashMap<>(good.tensors());
        t.put("base_model.model.fc9.lora_A.weight", Tensor.zeros(DataType.FLOAT, 2, 6));
        t.put("base_model.model.fc1.lora_C.weight", Tensor.zeros(DataType.FLOAT, 2, 6));
        t.put("base_model.model.fc1.lora_B.weight", Tensor.zeros(DataType.FLOAT, 5, 2));   // fc1 has 6 outputs
        Peft4jException e = assertThrows(Peft4jException.class, () -> AdapterBinding.bind(m, new AdapterBundle(good.config(), t)));
        String msg = e.getMessage();
        assertEquals(ErrorCode.NOT_FOUND, e.code(), msg);
        assertTrue(msg.contains("3 problems"), msg);
        assertTrue(msg.contains("base_model.model.fc9.lora_A.weight maps nowhere") && msg.contains("no layer at module path 'fc9'"), msg);
        assertTrue(msg.contains("base_model.model.fc1.lora_C.weight maps nowhere"), msg);
        assertTrue(msg.contains("base_model.model.fc1.lora_B.weight has shape [5, 2], expected [6, 2]"), msg);
    }

    @Test
    void aShapeMismatchAloneIsAShapeError() {
        Model m = TinyModels.cnn(1);
        AdapterBundle good = loraFor(m, List.of("conv1"));
        Map<String, Tensor> t = new LinkedHashMap<>(good.tensors());
        t.put("base_model.model.conv1.lora_A.weight", Tensor.zeros(DataType.FLOAT, 2, 1, 5, 5));
        Peft4jException e = assertThrows(Peft4jException.class, () -> AdapterBinding.bind(m, new AdapterBundle(good.config(), t)));
        assertEquals(ErrorCode.SHAPE_MISMATCH, e.code());
        assertTrue(e.getMessage().contains("expected [2, 1, 3, 3]"), e.getMessage());
    }

    @Test
    void anAdapterForAnotherBaseIsRefused() {
        AdapterBundle a = loraFor(TinyModels.cnn(1), List.of("fc2"));
        Peft4jException e = assertThrows(Peft4jException.class, () -> AdapterBinding.bind(TinyModels.cnn(2), a));
        assertEquals(ErrorCode.FINGERPRINT_MISMATCH, e.code());
    }

    /** tiny CNN as PyTorch exports it with BatchNorm folded: weight renamed onnx::Conv_12, no BatchNormalization. */
    private static Model folded() {
        Model m = TinyModels.cnn(1);
        Graph g = m.graph();
        g.setInitializer("onnx::Conv_12", g.initializer("conv1.weight"));
        g.node("/conv1/Conv").setInput(1, "onnx::Conv_12");
        g.removeInitializer("conv1.weight");
        return m;
    }

    @Test
    void aPytorchAdapterOnAFoldedConvIsRefusedWithTheReason() {
        Model m = folded();
        AdapterBundle a = fromPytorch(loraFor(m, List.of("conv1", "fc2")));
        Peft4jException e = assertThrows(Peft4jException.class, () -> AdapterBinding.bind(m, a));
        assertEquals(ErrorCode.UNSUPPORTED, e.code());
        assertTrue(e.getMessage().contains("module conv1") && e.getMessage().contains("BatchNorm folded")
                && e.getMessage().contains("do_constant_folding=False"), e.getMessage());
        // trained here on the folded graph (peft4j block present): it merges exactly, so it binds
        assertEquals(2, AdapterBinding.bind(m, loraFor(m, List.of("conv1", "fc2"))).modules().size());
    }

    @Test
    void aPytorchAdapterBindsWhenTheGraphKeepsBatchNorm() {
        Model m = folded();
        Graph g = m.graph();
        Random r = new Random(3);
        for (String p : List.of("scale", "bias", "mean")) {
            g.setInitializer("bn1." + p, TinyModels.randn(r, 4));
        }
        g.setInitializer("bn1.var", Tensor.ofFloats(new long[] {4}, 1, 2, 3, 4));
        String conv = g.node("/conv1/Conv").output(0);
        String base = g.detachProducer(conv);
        g.build("BatchNormalization").name("/bn1/BatchNormalization").in(base, "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var")
                .outputs(conv).add();
        g.sortTopologically();
        OnnxChecker.check(m);
        AdapterBinding b = AdapterBinding.bind(m, fromPytorch(loraFor(m, List.of("conv1"))));
        assertEquals("conv1", b.modules().get(0).target().path());
    }

    @Test
    void depthwiseConvolutionsAreReportedNotSkipped() {
        Model m = OnnxIO.read(Assets.shared("models/mobilenet_v3_small.onnx"));
        AdapterConfig everything = new AdapterConfig("LORA", 4, 8, List.of(), ".*", 0, "none", false, false, false, List.of(),
                Map.of(), Map.of(), List.of(), null, Map.of());
        Peft4jException e = assertThrows(Peft4jException.class, () -> AdapterBinding.select(m, everything));
        assertEquals(ErrorCode.UNSUPPORTED, e.code());
        assertTrue(e.getMessage().contains("features.1.block.0.0") && e.getMessage().contains("groups = 16"), e.getMessage());
        assertEquals(11, e.getMessage().split("\n").length - 1, "one line per depthwise convolution");
    }

    @Test
    void modulesToSaveReplaceWeightsInTheGraphsLayout() {
        Model m = TinyModels.cnn(1);
        AdapterConfig c = new AdapterConfig("LORA", 2, 4, List.of("conv1"), null, 0, "none", false, false, false,
                List.of("fc1"), Map.of(), Map.of(), List.of(), null, Map.of());
        AdapterBundle a = AdapterBinding.init(m, c, 1);
        Map<String, Tensor> t = new LinkedHashMap<>(a.tensors());
        Tensor w = TinyModels.randn(new Random(1), 6, 4);   // PyTorch Linear [out, in]; the MatMul stores [in, out]
        t.put("base_model.model.fc1.weight", w);
        t.put("base_model.model.fc1.bias", TinyModels.randn(new Random(2), 6));
        AdapterBinding b = AdapterBinding.bind(m, new AdapterBundle(a.config(), t));
        assertEquals(2, b.saved().size());
        AdapterBinding.Saved weight = b.saved().stream().filter(s -> s.key().endsWith(".weight")).findFirst().orElseThrow();
        assertEquals("fc1_w", weight.initializer());
        assertArrayEquals(new long[] {4, 6}, weight.value().shape());
        assertEquals(w.toFloatArray()[1 * 4 + 2], weight.value().toFloatArray()[2 * 6 + 1]);
        assertEquals("fc1.bias", b.saved().stream().filter(s -> s.key().endsWith(".bias")).findFirst().orElseThrow().initializer());
    }

    @Test
    void embeddingsAreNotIa3Targets() {
        Model m = OnnxIO.read(Assets.miniLm());
        Peft4jException e = assertThrows(Peft4jException.class,
                () -> AdapterBinding.select(m, AdapterConfig.ia3(List.of("word_embeddings"), List.of())));
        assertTrue(e.getMessage().contains("embedding"), e.getMessage());
    }

    @Test
    void aMatMulWhoseWeightIsNotAMatrixIsExplained() {
        Model m = new Model("bmm", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, 2, 3, 4));
        g.setInitializer("proj.weight", Tensor.zeros(DataType.FLOAT, 2, 4, 5));
        g.build("MatMul").name("/proj/MatMul").in("x", "proj.weight").outputs("y").add();
        g.addOutput(ValueInfos.tensor("y", DataType.FLOAT, 2, 3, 5));
        AdapterBundle a = new AdapterBundle(AdapterConfig.lora(2, 4, List.of("proj")),
                Map.of("base_model.model.proj.lora_A.weight", Tensor.zeros(DataType.FLOAT, 2, 4),
                        "base_model.model.proj.lora_B.weight", Tensor.zeros(DataType.FLOAT, 5, 2)));
        Peft4jException e = assertThrows(Peft4jException.class, () -> AdapterBinding.bind(m, a));
        assertTrue(e.getMessage().contains("exists as node /proj/MatMul (MatMul)"), e.getMessage());
    }

    @Test
    void freshAdaptersAreInitialisedAsPeftDoes() {
        Model m = OnnxIO.read(Assets.miniLm());
        AdapterBundle lora = AdapterBinding.init(m, AdapterConfig.lora(8, 16, List.of("query", "word_embeddings")), 7);
        Tensor a = lora.tensors().get("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight");
        double bound = 1 / Math.sqrt(384);
        double max = 0;
        for (float v : a.toFloatArray()) {
            max = Math.max(max, Math.abs(v));
        }
        assertTrue(max <= bound && max > 0.9 * bound, "kaiming_uniform(a=√5) bound 1/√fan_in: " + max);
        assertTrue(isZero(lora.tensors().get("base_model.model.encoder.layer.0.attention.self.query.lora_B.weight")));
        assertTrue(isZero(lora.tensors().get("base_model.model.embeddings.word_embeddings.lora_embedding_A")));
        assertFalse(isZero(lora.tensors().get("base_model.model.embeddings.word_embeddings.lora_embedding_B")));
        assertArrayEquals(new long[] {8, 30522}, lora.tensors().get("base_model.model.embeddings.word_embeddings.lora_embedding_A").shape());
        assertArrayEquals(new long[] {384, 8}, lora.tensors().get("base_model.model.embeddings.word_embeddings.lora_embedding_B").shape());
        AdapterBundle ia3 = AdapterBinding.init(m, AdapterConfig.ia3(List.of("key", "output.dense"), List.of("output.dense")), 7);
        assertArrayEquals(new long[] {384, 1}, ia3.tensors().get("base_model.model.encoder.layer.0.attention.self.key.ia3_l").shape());
        assertArrayEquals(new long[] {1, 1536}, ia3.tensors().get("base_model.model.encoder.layer.0.output.dense.ia3_l").shape());
        assertEquals(1f, ia3.tensors().get("base_model.model.encoder.layer.0.output.dense.ia3_l").toFloatArray()[5]);
        // a fresh LoRA adapter leaves the model as it was
        Model injected = PeftFixtures.copy(m);
        Peft.inject(injected, AdapterBinding.bind(m, lora), InjectMode.INITIALIZERS);
        Map<String, Tensor> in = PeftMethodContractTest.tokens(2);
        assertTrue(PeftFixtures.relDiff(Ort.run(injected, in).get("last_hidden_state"), Ort.run(m, in).get("last_hidden_state")) < 1e-6);
    }

    @Test
    void conv2dIa3ShapesFollowPeft() {
        TargetLayer conv = new io.peft4j.core.modules.TargetLayer("c", TargetLayer.Kind.CONV, "n", "Conv", "w", null,
                new long[] {8, 4, 3, 3}, DataType.FLOAT, TargetLayer.Layout.CONV_OUT_IN_K, 4, 8, 1, 0);
        assertArrayEquals(new long[] {1, 8, 1, 1}, new Ia3Method().shapes(conv, AdapterConfig.ia3(List.of("c"), List.of())).get("ia3_l"));
        assertArrayEquals(new long[] {1, 4, 1, 1}, new Ia3Method().shapes(conv, AdapterConfig.ia3(List.of("c"), List.of("c"))).get("ia3_l"));
        Map<String, long[]> lora = new LoraMethod().shapes(conv, AdapterConfig.lora(2, 4, List.of("c")));
        assertArrayEquals(new long[] {2, 4, 3, 3}, lora.get("lora_A.weight"));
        assertArrayEquals(new long[] {8, 2, 1, 1}, lora.get("lora_B.weight"));
    }

    private static boolean isZero(Tensor t) {
        for (float v : t.toFloatArray()) {
            if (v != 0) {
                return false;
            }
        }
        return true;
    }
}
