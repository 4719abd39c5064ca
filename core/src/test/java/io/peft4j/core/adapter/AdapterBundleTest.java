package io.peft4j.core.adapter;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class AdapterBundleTest {

    @TempDir
    Path dir;

    static Path fixture() throws URISyntaxException {
        return Path.of(AdapterBundleTest.class.getResource("/adapters/peft_lora/adapter_config.json").toURI()).getParent();
    }

    private static AdapterBundle loraFor(Model base) {
        Random r = new Random(1);
        Map<String, Tensor> t = new TreeMap<>();
        t.put(PeftKey.of("fc2", "lora_A.weight"), TinyModels.randn(r, 2, 6));
        t.put(PeftKey.of("fc2", "lora_B.weight"), Tensor.zeros(io.peft4j.core.tensor.DataType.FLOAT, 3, 2));
        AdapterConfig c = AdapterConfig.lora(2, 4, List.of("fc2"))
                .withPeft4j(new Peft4jBlock(BaseFingerprint.of(base), Map.of("fc2", "/fc2/Gemm"), Map.of()));
        return new AdapterBundle(c, t);
    }

    @Test
    void readsAnAdapterInThePeftLayout() throws Exception {
        AdapterBundle b = AdapterBundle.read(fixture());
        AdapterConfig c = b.config();
        assertEquals("LORA", c.peftType());
        assertEquals(2, c.r());
        assertEquals(16.0, c.loraAlpha());
        assertEquals(8.0, c.scale(2, 16));
        assertEquals(List.of("fc2", "conv1"), c.targetModules());
        assertEquals(List.of("fc1"), c.modulesToSave());
        assertEquals(0.05, c.loraDropout());
        assertNull(c.peft4j(), "an adapter from PEFT carries no peft4j block");
        assertEquals("tiny-cnn", c.other().get("base_model_name_or_path").asText());

        Map<String, Map<String, Tensor>> m = b.byModule();
        assertEquals(List.of("conv1", "fc1", "fc2"), List.copyOf(m.keySet()));
        assertArrayEquals(new long[] {2, 1, 3, 3}, m.get("conv1").get("lora_A.weight").shape());
        assertArrayEquals(new long[] {4, 2, 1, 1}, m.get("conv1").get("lora_B.weight").shape());
        assertArrayEquals(new long[] {2, 6}, m.get("fc2").get("lora_A.weight").shape());
        assertArrayEquals(new long[] {3, 2}, m.get("fc2").get("lora_B.weight").shape());
        assertArrayEquals(new long[] {6, 4}, m.get("fc1").get("weight").shape());
        // values as the script wrote them: scale * (i - n/2)
        float[] b2 = m.get("fc2").get("lora_B.weight").toFloatArray();
        assertEquals(0.3f * (0 - 3), b2[0], 1e-6);
        assertEquals(0.3f * (5 - 3), b2[5], 1e-6);
        assertEquals(2 * 9 + 4 * 2 + 2 * 6 + 3 * 2 + 24 + 6, b.parameterCount());
        assertFalse(b.requireBase(TinyModels.cnn(1), "tiny"), "nothing to verify without a fingerprint");
    }

    @Test
    void writingKeepsEveryPeftFieldAndTensor() throws Exception {
        AdapterBundle original = AdapterBundle.read(fixture());
        Path out = dir.resolve("copy");
        original.write(out);
        AdapterBundle back = AdapterBundle.read(out);
        assertEquals(original.config(), back.config());
        for (Map.Entry<String, Tensor> e : original.tensors().entrySet()) {
            assertTrue(e.getValue().contentEquals(back.tensors().get(e.getKey())), e.getKey());
        }
        ObjectMapper json = new ObjectMapper();
        JsonNode written = json.readTree(out.resolve(AdapterBundle.CONFIG_FILE).toFile());
        JsonNode peft = json.readTree(fixture().resolve(AdapterBundle.CONFIG_FILE).toFile());
        // every key PEFT wrote is there with its value (lora_alpha 16 stays an integer)
        for (var it = peft.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            assertEquals(peft.get(k), written.get(k), k);
        }
        // byte for byte: PEFT's json.dumps(indent=2, sort_keys=True) layout
        assertEquals(Files.readString(fixture().resolve(AdapterBundle.CONFIG_FILE)),
                Files.readString(out.resolve(AdapterBundle.CONFIG_FILE)));
        // and the safetensors file has the metadata PEFT writes
        try (var f = io.peft4j.core.safetensors.SafetensorsFile.open(out.resolve(AdapterBundle.WEIGHTS_FILE))) {
            assertEquals("pt", f.metadata().get("format"));
        }
    }

    @Test
    void configDefaultsAndMethodFieldsFollowPeft() {
        assertEquals(8, AdapterConfig.parse("{\"peft_type\":\"LORA\"}", "c").r(), "PEFT's default rank");
        AdapterConfig ia3Config = AdapterConfig.ia3(List.of("fc"), List.of("fc"));
        assertEquals(ia3Config, AdapterConfig.parse(ia3Config.toJson(), "ia3"), "an IA3 config round-trips");
        String ia3 = AdapterConfig.ia3(List.of("fc"), List.of()).toJson();
        assertFalse(ia3.contains("\"bias\""), "IA3Config has no bias field: " + ia3);
        assertTrue(ia3.contains("\"feedforward_modules\": []"), ia3);
    }

    @Test
    void anAdapterForAnotherBaseIsRefused() {
        Model base = TinyModels.cnn(1);
        AdapterBundle b = loraFor(base);
        b.write(dir.resolve("a"));
        AdapterBundle back = AdapterBundle.read(dir.resolve("a"));
        assertEquals(BaseFingerprint.of(base), back.config().peft4j().baseFingerprint());
        assertEquals("/fc2/Gemm", back.config().peft4j().moduleMap().get("fc2"));
        assertTrue(back.requireBase(base, "tiny.onnx"));
        Peft4jException e = assertThrows(Peft4jException.class, () -> back.requireBase(TinyModels.cnn(2), "other.onnx"));
        assertEquals(ErrorCode.FINGERPRINT_MISMATCH, e.code());
        assertTrue(e.getMessage().contains("made for another base model") && e.getMessage().contains("other.onnx"), e.getMessage());
    }

    @Test
    void peftKeysParse() {
        assertEquals(new PeftKey("layer1.0.conv1", "lora_A.weight"), PeftKey.parse("base_model.model.layer1.0.conv1.lora_A.weight"));
        assertEquals(new PeftKey("encoder.layer.0.attention.self.query", "lora_B.weight"),
                PeftKey.parse("base_model.model.encoder.layer.0.attention.self.query.lora_B.weight"));
        assertEquals(new PeftKey("embeddings.word_embeddings", "lora_embedding_A"),
                PeftKey.parse("base_model.model.embeddings.word_embeddings.lora_embedding_A"));
        assertEquals(new PeftKey("fc", "ia3_l"), PeftKey.parse("base_model.model.fc.ia3_l"));
        assertEquals(new PeftKey("fc", "lora_magnitude_vector"), PeftKey.parse("base_model.model.fc.lora_magnitude_vector.weight"));
        assertEquals(new PeftKey("classifier", "bias"), PeftKey.parse("base_model.model.classifier.bias"));
        assertEquals(new PeftKey("", "prompt_embeddings"), PeftKey.parse("prompt_embeddings"));
        assertEquals(new PeftKey("fc", "lora_B.bias"), PeftKey.parse("base_model.model.fc.lora_B.bias"));
        assertEquals(new PeftKey("fc.lora_C", "weight"), PeftKey.parse("base_model.model.fc.lora_C.weight"),
                "an unknown adapter tensor names a module no graph has, so binding reports it");
        assertEquals("base_model.model.fc.lora_A.weight", PeftKey.of("fc", "lora_A.weight"));
        Peft4jException e = assertThrows(Peft4jException.class, () -> PeftKey.parse("fc.lora_A.weight"));
        assertTrue(e.getMessage().contains("not a PEFT adapter key"), e.getMessage());
    }

    @Test
    void badBundlesGetClearErrors() throws Exception {
        assertError(dir.resolve("missing"), ErrorCode.IO, "not found");
        Path file = Files.writeString(dir.resolve("file"), "x");
        assertError(file, ErrorCode.IO, "not a directory");
        Path empty = Files.createDirectories(dir.resolve("empty"));
        assertError(empty, ErrorCode.IO, "has no adapter_config.json");

        Path bin = copyFixture("bin");
        Files.delete(bin.resolve(AdapterBundle.WEIGHTS_FILE));
        Files.write(bin.resolve("adapter_model.bin"), new byte[] {1, 2});
        assertError(bin, ErrorCode.UNSUPPORTED, "pickle");

        assertConfigError("{not json", ErrorCode.MALFORMED, "not valid JSON");
        assertConfigError("[1,2]", ErrorCode.MALFORMED, "must hold a JSON object");
        assertConfigError("{\"peft_type\":\"LORA\",\"r\":8,\"r\":4}", ErrorCode.MALFORMED, "Duplicate field 'r'");
        assertConfigError("{\"peft_type\":\"LORA\",\"r\":\"8\"}", ErrorCode.MALFORMED, "'r' must be an integer");
        assertConfigError("{\"peft_type\":\"LORA\",\"r\":0}", ErrorCode.INVALID_ARGUMENT, "rank r must be positive");
        assertConfigError("{\"peft_type\":\"IA3\",\"feedforward_modules\":\"dense\"}", ErrorCode.UNSUPPORTED, "regex string");
        assertConfigError("{\"peft_type\":\"MAGIC\",\"r\":8}", ErrorCode.UNSUPPORTED, "peft_type 'MAGIC'");
        assertConfigError("{\"r\":8}", ErrorCode.MALFORMED, "no peft_type");
        assertConfigError("{\"peft_type\":\"LORA\",\"r\":8,\"target_modules\":[1]}", ErrorCode.MALFORMED, "must hold strings");
        assertConfigError("{\"peft_type\":\"LORA\",\"r\":8,\"target_modules\":\"(\"}", ErrorCode.INVALID_ARGUMENT, "regex");
        assertConfigError("{\"peft_type\":\"LORA\",\"r\":8,\"lora_dropout\":1.5}", ErrorCode.INVALID_ARGUMENT, "lora_dropout");
        assertConfigError("{\"peft_type\":\"LORA\",\"r\":8,\"bias\":\"some\"}", ErrorCode.INVALID_ARGUMENT, "bias must be");
        assertConfigError("{\"peft_type\":\"LORA\",\"r\":8,\"peft4j\":{\"base_fingerprint\":\"abc\"}}",
                ErrorCode.MALFORMED, "sha256");

        Path badWeights = copyFixture("badweights");
        Files.write(badWeights.resolve(AdapterBundle.WEIGHTS_FILE), new byte[] {1, 2, 3});
        Peft4jException e = assertThrows(Peft4jException.class, () -> AdapterBundle.read(badWeights));
        assertEquals(ErrorCode.MALFORMED, e.code());

        Path badKey = copyFixture("badkey");
        io.peft4j.core.safetensors.Safetensors.write(badKey.resolve(AdapterBundle.WEIGHTS_FILE),
                Map.of("lora_A", Tensor.zeros(io.peft4j.core.tensor.DataType.FLOAT, 2)));
        e = assertThrows(Peft4jException.class, () -> AdapterBundle.read(badKey));
        assertTrue(e.getMessage().contains("adapter_model.safetensors") && e.getMessage().contains("'lora_A'"), e.getMessage());
    }

    private Path copyFixture(String name) throws IOException, URISyntaxException {
        Path d = Files.createDirectories(dir.resolve(name));
        for (String f : List.of(AdapterBundle.CONFIG_FILE, AdapterBundle.WEIGHTS_FILE)) {
            Files.copy(fixture().resolve(f), d.resolve(f));
        }
        return d;
    }

    private void assertConfigError(String json, ErrorCode code, String part) throws Exception {
        Path d = copyFixture("cfg" + Integer.toHexString(json.hashCode()));
        Files.writeString(d.resolve(AdapterBundle.CONFIG_FILE), json);
        Peft4jException e = assertThrows(Peft4jException.class, () -> AdapterBundle.read(d), json);
        assertEquals(code, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(part), e.getMessage());
        assertTrue(e.getMessage().contains("adapter_config.json"), "names the file: " + e.getMessage());
    }

    private static void assertError(Path d, ErrorCode code, String part) {
        Peft4jException e = assertThrows(Peft4jException.class, () -> AdapterBundle.read(d));
        assertEquals(code, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(part), e.getMessage());
    }
}
