package io.peft4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class InspectCommandTest {

    @TempDir
    Path dir;

    private static Map<String, JsonNode> modules(JsonNode report) {
        Map<String, JsonNode> out = new HashMap<>();
        for (JsonNode m : report.get("modules")) {
            assertTrue(m.get("path").isTextual(), "each module path is a plain string: " + m);
            out.put(m.get("path").asText(), m);
        }
        return out;
    }

    private static JsonNode inspectJson(Path model) throws Exception {
        CliRun r = CliRun.of("inspect", model.toString(), "--json");
        assertEquals(0, r.exitCode(), r.err());
        return new ObjectMapper().readTree(r.out());
    }

    private static List<Long> shape(JsonNode m) {
        return java.util.stream.StreamSupport.stream(m.get("weight_shape").spliterator(), false).map(JsonNode::asLong).toList();
    }

    @Test
    void textReportListsModulesAndInterface() throws Exception {
        Path f = dir.resolve("tiny.onnx");
        OnnxIO.write(TinyModels.cnn(1), f);
        CliRun r = CliRun.of("inspect", f.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("input       x FLOAT[batch,1,8,8]"), r.out());
        assertTrue(r.out().contains("output      logits FLOAT[batch,3]"), r.out());
        assertTrue(r.out().contains("targetable modules (3):"), r.out());
        assertTrue(r.out().contains("fc2") && r.out().contains("[out,in]"), r.out());
        assertTrue(r.out().contains("opsets ai.onnx 17"), r.out());
    }

    @Test
    void jsonOnTheSharedTorchvisionExports() throws Exception {
        JsonNode resnet = inspectJson(Assets.shared("models/resnet18.onnx"));
        Map<String, JsonNode> m = modules(resnet);
        assertEquals(21, m.size());
        assertEquals(List.of(64L, 64L, 3L, 3L), shape(m.get("layer1.0.conv1")));
        assertEquals(List.of(6L, 512L), shape(m.get("fc")));
        assertEquals("[out,in]", m.get("fc").get("layout").asText());
        assertEquals("kept", resnet.get("batch_norm").get("status").asText());
        assertEquals(17, resnet.get("opsets").get("ai.onnx").asInt());
        assertEquals("input", resnet.get("inputs").get(0).get("name").asText());
        assertEquals("batch", resnet.get("inputs").get(0).get("shape").get(0).asText());
        assertEquals(11_189_190, resnet.get("parameters").asLong());

        JsonNode mobilenet = inspectJson(Assets.shared("models/mobilenet_v3_small.onnx"));
        Map<String, JsonNode> mm = modules(mobilenet);
        assertEquals(List.of(16L, 1L, 3L, 3L), shape(mm.get("features.1.block.0.0")));
        assertEquals(16, mm.get("features.1.block.0.0").get("groups").asInt());
        assertEquals(List.of(8L, 16L, 1L, 1L), shape(mm.get("features.1.block.1.fc1")));
        assertEquals(List.of(6L, 1024L), shape(mm.get("classifier.3")));
    }

    @Test
    void jsonOnMiniLm() throws Exception {
        JsonNode report = inspectJson(Assets.miniLm());
        Map<String, JsonNode> m = modules(report);
        JsonNode q = m.get("encoder.layer.0.attention.self.query");
        assertEquals("MatMul", q.get("op").asText());
        assertEquals("[in,out]", q.get("layout").asText());
        assertEquals(List.of(384L, 384L), shape(q));
        for (String p : Arrays.asList("encoder.layer.5.attention.self.key", "encoder.layer.5.attention.self.value",
                "encoder.layer.5.attention.output.dense", "encoder.layer.5.intermediate.dense", "encoder.layer.5.output.dense")) {
            assertTrue(m.containsKey(p), p);
        }
        assertEquals(List.of(30522L, 384L), shape(m.get("embeddings.word_embeddings")));
        assertEquals("embedding", m.get("embeddings.word_embeddings").get("kind").asText());
        assertEquals(11, report.get("opsets").get("ai.onnx").asInt());
    }

    @Test
    void badFilesGetOneLineErrors() throws Exception {
        CliRun missing = CliRun.of("inspect", dir.resolve("nope.onnx").toString());
        assertEquals(2, missing.exitCode());
        assertEquals(1, missing.errLines().length, missing.err());
        assertTrue(missing.err().startsWith("peft4j: error: model file not found"), missing.err());

        Path text = Files.writeString(dir.resolve("notes.onnx"), "these are notes, not a model\n");
        CliRun notOnnx = CliRun.of("inspect", text.toString());
        assertEquals(2, notOnnx.exitCode());
        assertEquals(1, notOnnx.errLines().length, notOnnx.err());
        assertTrue(notOnnx.err().contains("not an ONNX model"), notOnnx.err());

        byte[] full = OnnxIO.toBytes(TinyModels.cnn(1));
        Path cut = Files.write(dir.resolve("cut.onnx"), Arrays.copyOf(full, full.length - 10));
        CliRun truncated = CliRun.of("inspect", cut.toString());
        assertEquals(2, truncated.exitCode());
        assertEquals(1, truncated.errLines().length, truncated.err());
        assertTrue(truncated.err().contains("truncated"), truncated.err());
        assertEquals("", truncated.out());
    }
}
