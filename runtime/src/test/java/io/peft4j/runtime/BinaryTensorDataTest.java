package io.peft4j.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.TestAdapters;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.exporter.ExportOptions;
import io.peft4j.exporter.Exporter;
import io.peft4j.exporter.NamedAdapter;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Triton's binary tensor data extension over HTTP on loopback: binary inputs give exactly what
 * the same JSON request gives, binary outputs hold exactly the JSON outputs' values, JSON and
 * binary inputs mix in one request, and every malformed binary request is a 400 that says what is
 * wrong while the server keeps serving.
 */
class BinaryTensorDataTest {

    private static final List<String> TARGETS = List.of("conv1", "fc1", "fc2");
    private static final String H = InferCodec.HEADER_LENGTH;

    @TempDir
    static Path tmp;

    static Peft4jServer server;
    static Http http;
    static Tensor x;

    @BeforeAll
    static void start() {
        Path repo = tmp.resolve("repo");
        Model base = TinyModels.cnn(1);
        AdapterBundle a = TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 11, 0.3);
        Exporter.export(base, List.of(new NamedAdapter("a", a)), ExportOptions.of(Manifest.Mode.side), repo.resolve("m"));
        Exporter.export(twoInputs(), List.of(), ExportOptions.of(Manifest.Mode.base), repo.resolve("two"));
        x = TinyModels.input(5, 4);
        server = Peft4jServer.start(Peft4jServer.Options.of(repo));
        http = new Http(server.uri(), null);
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.close();
        }
    }

    /** x FP32 [batch,4] and k INT64 [batch,4]: y = x · k (FP32), pos = y > 0 (BOOL). */
    static Model twoInputs() {
        Model m = new Model("two_inputs", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, "batch", 4));
        g.addInput(ValueInfos.tensor("k", DataType.INT64, "batch", 4));
        g.setInitializer("zero", Tensor.scalar(0f));
        String kf = g.build("Cast").in("k").attr("to", 1L).out();
        g.build("Mul").in("x", kf).outputs("y").add();
        g.build("Greater").in("y", "zero").outputs("pos").add();
        g.addOutput(ValueInfos.tensor("y", DataType.FLOAT, "batch", 4));
        g.addOutput(ValueInfos.tensor("pos", DataType.BOOL, "batch", 4));
        return m;
    }

    // ---------------------------------------------------------------- helpers

    static byte[] le(float[] v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) {
            b.putFloat(f);
        }
        return b.array();
    }

    static byte[] le(long[] v) {
        ByteBuffer b = ByteBuffer.allocate(8 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (long l : v) {
            b.putLong(l);
        }
        return b.array();
    }

    static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : parts) {
            out.writeBytes(p);
        }
        return out.toByteArray();
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** The JSON of a request for model m with x as binary tensor data and adapter a; {@code more}: further fields. */
    static byte[] binaryX(String more) {
        return utf8("{\"inputs\":[{\"name\":\"x\",\"shape\":[4,1,8,8],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":"
                + 4 * x.numel() + "}}],\"parameters\":{\"adapter\":\"a\"}" + more + "}");
    }

    /** A binary answer: its JSON (parsed) and the bytes after it. */
    record Split(JsonNode json, byte[] binary) {
    }

    static Split split(HttpResponse<byte[]> r) {
        assertEquals(200, r.statusCode(), () -> new String(r.body(), StandardCharsets.UTF_8));
        assertEquals("application/octet-stream", r.headers().firstValue("Content-Type").orElse(""));
        int n = Integer.parseInt(r.headers().firstValue(H).orElseThrow(() -> new AssertionError("no " + H + " header")));
        try {
            JsonNode json = Http.JSON.readTree(r.body(), 0, n);
            byte[] rest = new byte[r.body().length - n];
            System.arraycopy(r.body(), n, rest, 0, rest.length);
            return new Split(json, rest);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static float[] floats(byte[] b) {
        ByteBuffer buf = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        float[] v = new float[b.length / 4];
        for (int i = 0; i < v.length; i++) {
            v[i] = buf.getFloat();
        }
        return v;
    }

    static float[] jsonFloats(JsonNode output) {
        JsonNode d = output.get("data");
        float[] v = new float[d.size()];
        for (int i = 0; i < v.length; i++) {
            v[i] = Float.parseFloat(d.get(i).asText());
        }
        return v;
    }

    private static void assertError(Http.Reply r, String fragment) {
        assertEquals(400, r.status(), r.toString());
        assertNotNull(r.error(), "an {\"error\": ...} body: " + r);
        assertTrue(r.error().contains(fragment), "'" + r.error() + "' should mention '" + fragment + "'");
        assertStillServing();
    }

    private static void assertStillServing() {
        Http.Reply ok = http.post("/v2/models/m/infer", Http.inferBody("x", x, Map.of("adapter", "a"), null));
        assertEquals(200, ok.status(), ok.toString());
    }

    // ---------------------------------------------------------------- tests

    @Test
    void serverMetadataListsTheExtension() {
        JsonNode ext = http.get("/v2").json().get("extensions");
        assertTrue(ext.toString().contains("\"binary_tensor_data\""), ext.toString());
    }

    @Test
    void aBinaryRequestAnswersExactlyWhatTheJsonRequestAnswers() {
        Http.Reply json = http.post("/v2/models/m/infer", Http.inferBody("x", x, Map.of("adapter", "a"), "j1"));
        assertEquals(200, json.status(), json.toString());
        byte[] body = concat(binaryX(""), le(x.toFloatArray()));
        // tritonclient sends no Content-Type; curl-style clients send application/octet-stream
        for (Map<String, String> headers : List.of(Map.of(H, "" + binaryX("").length),
                Map.of(H, "" + binaryX("").length, "Content-Type", "application/octet-stream"))) {
            Http.Reply bin = http.post("/v2/models/m/infer", body, headers);
            assertEquals(200, bin.status(), bin.toString());
            assertEquals("application/json", bin.raw().headers().firstValue("Content-Type").orElse(""));
            assertFalse(bin.raw().headers().firstValue(H).isPresent(), "an all-JSON answer has no " + H);
            assertArrayEquals(jsonFloats(json.json().get("outputs").get(0)), jsonFloats(bin.json().get("outputs").get(0)));
            assertEquals(json.json().get("parameters"), bin.json().get("parameters"));
        }
        // the versioned path takes it too
        Http.Reply v = http.post("/v2/models/m/versions/1/infer", body, Map.of(H, "" + binaryX("").length));
        assertEquals(200, v.status(), v.toString());
    }

    @Test
    void binaryOutputsHoldExactlyTheJsonOutputsValues() {
        Http.Reply json = http.post("/v2/models/m/infer", Http.inferBody("x", x, Map.of("adapter", "a"), null));
        float[] want = jsonFloats(json.json().get("outputs").get(0));
        // asked for per output
        byte[] head = binaryX(",\"outputs\":[{\"name\":\"logits\",\"parameters\":{\"binary_data\":true}}]");
        Split s = split(http.postRaw("/v2/models/m/infer", concat(head, le(x.toFloatArray())), Map.of(H, "" + head.length)));
        JsonNode out = s.json().get("outputs").get(0);
        assertEquals("logits", out.get("name").asText());
        assertEquals("[4,3]", out.get("shape").toString());
        assertEquals(4 * 3 * 4, out.get("parameters").get("binary_data_size").asInt());
        assertFalse(out.has("data"), "a binary output carries no data in its JSON");
        assertArrayEquals(want, floats(s.binary()));
        // asked for by the request for all outputs, from an all-JSON request
        String all = "{\"inputs\":[{\"name\":\"x\",\"shape\":[4,1,8,8],\"datatype\":\"FP32\",\"data\":"
                + Http.JSON.valueToTree(x.toFloatArray()) + "}],\"parameters\":{\"adapter\":\"a\",\"binary_data_output\":true}}";
        Split t = split(http.postRaw("/v2/models/m/infer", utf8(all), Map.of("Content-Type", "application/json")));
        assertArrayEquals(want, floats(t.binary()));
        // an output's own binary_data false overrides the request's binary_data_output
        String off = all.replace("}}", "},\"outputs\":[{\"name\":\"logits\",\"parameters\":{\"binary_data\":false}}]}");
        Http.Reply j = http.post("/v2/models/m/infer", off);
        assertEquals("application/json", j.raw().headers().firstValue("Content-Type").orElse(""), j.toString());
        assertArrayEquals(want, jsonFloats(j.json().get("outputs").get(0)));
    }

    @Test
    void jsonAndBinaryInputsMixInOneRequest() {
        float[] xv = {1.5f, -2f, 0.25f, 3f, -0.5f, 7f, 1e-3f, -1e3f};
        long[] kv = {2, 3, -4, 0, 5, -1, 1000, 2};
        float[] y = new float[xv.length];
        boolean[] pos = new boolean[xv.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = xv[i] * (float) kv[i];
            pos[i] = y[i] > 0;
        }
        String xJson = "{\"name\":\"x\",\"shape\":[2,4],\"datatype\":\"FP32\",\"data\":" + Http.JSON.valueToTree(xv) + "}";
        String kJson = "{\"name\":\"k\",\"shape\":[2,4],\"datatype\":\"INT64\",\"data\":" + Http.JSON.valueToTree(kv) + "}";
        String xBin = "{\"name\":\"x\",\"shape\":[2,4],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":32}}";
        String kBin = "{\"name\":\"k\",\"shape\":[2,4],\"datatype\":\"INT64\",\"parameters\":{\"binary_data_size\":64}}";
        String outs = ",\"outputs\":[{\"name\":\"y\"},{\"name\":\"pos\",\"parameters\":{\"binary_data\":true}}]}";
        record Case(String json, byte[] binary) {
        }
        for (Case c : List.of(
                new Case("{\"inputs\":[" + xBin + "," + kJson + "]" + outs, le(xv)),
                new Case("{\"inputs\":[" + xJson + "," + kBin + "]" + outs, le(kv)),
                new Case("{\"inputs\":[" + kBin + "," + xBin + "]" + outs, concat(le(kv), le(xv))))) {
            byte[] head = utf8(c.json());
            Split s = split(http.postRaw("/v2/models/two/infer", concat(head, c.binary()), Map.of(H, "" + head.length)));
            JsonNode outputs = s.json().get("outputs");
            assertEquals("y", outputs.get(0).get("name").asText());
            assertArrayEquals(y, jsonFloats(outputs.get(0)), c.json());
            assertEquals("BOOL", outputs.get(1).get("datatype").asText());
            assertEquals(8, outputs.get(1).get("parameters").get("binary_data_size").asInt());
            for (int i = 0; i < pos.length; i++) {
                assertEquals(pos[i] ? 1 : 0, s.binary()[i], "pos[" + i + "]");
            }
        }
    }

    @Test
    void malformedBinaryRequestsAreSpecific400s() {
        byte[] head = binaryX("");
        byte[] data = le(x.toFloatArray());
        byte[] body = concat(head, data);
        String path = "/v2/models/m/infer";
        assertError(http.post(path, body, Map.of(H, "" + (body.length + 1))), "but the body has only " + body.length + " bytes");
        assertError(http.post(path, body, Map.of(H, "twelve")), "must be the length of the JSON in bytes");
        assertError(http.post(path, body, Map.of(H, "-3")), "must be the length of the JSON in bytes");
        assertError(http.post(path, body, Map.of()), "has parameters.binary_data_size but the request has no " + H);
        assertError(http.post(path, concat(body, new byte[] {1, 2, 3}), Map.of(H, "" + head.length)),
                "bytes after its " + head.length + "-byte JSON");
        assertError(http.post(path, concat(head, new byte[12]), Map.of(H, "" + head.length)), "only 12 bytes of binary data are left");
        byte[] wrongSize = utf8(new String(head, StandardCharsets.UTF_8).replace("\"binary_data_size\":1024", "\"binary_data_size\":1020"));
        assertError(http.post(path, concat(wrongSize, new byte[1020]), Map.of(H, "" + wrongSize.length)),
                "binary_data_size is 1020 bytes; shape [4, 1, 8, 8] of FP32 takes 1024");
        byte[] both = utf8(new String(head, StandardCharsets.UTF_8).replace("\"parameters\":{\"binary", "\"data\":[1],\"parameters\":{\"binary"));
        assertError(http.post(path, concat(both, data), Map.of(H, "" + both.length)), "has both data and parameters.binary_data_size");
        byte[] negative = utf8(new String(head, StandardCharsets.UTF_8).replace("\"binary_data_size\":1024", "\"binary_data_size\":-1"));
        assertError(http.post(path, concat(negative, data), Map.of(H, "" + negative.length)), "must be a non-negative integer");
        // a header cut inside the JSON: the JSON is malformed
        assertError(http.post(path, body, Map.of(H, "" + (head.length - 5))), "malformed JSON");
        String badFlag = "{\"inputs\":[],\"outputs\":[{\"name\":\"logits\",\"parameters\":{\"binary_data\":\"yes\"}}]}";
        assertError(http.post(path, badFlag), "outputs[].parameters.binary_data must be true or false");
    }
}
