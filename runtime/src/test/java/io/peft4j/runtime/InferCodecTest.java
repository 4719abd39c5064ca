package io.peft4j.runtime;

import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class InferCodecTest {

    private static InferCodec.Request read(String json) {
        return InferCodec.read(json.getBytes(StandardCharsets.UTF_8), 1024);
    }

    private static void refused(String json, String fragment) {
        ApiException e = assertThrows(ApiException.class, () -> read(json));
        assertEquals(400, e.status().getCode());
        assertTrue(e.getMessage().contains(fragment), "'" + e.getMessage() + "' should mention '" + fragment + "'");
    }

    @Test
    void readsEveryDatatypeFlatOrNestedInAnyFieldOrder() {
        InferCodec.Request r = read("""
                {"id": "r1", "parameters": {"adapter": "a", "other": [1, {"x": 2}]},
                 "inputs": [
                  {"name": "f", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2.5], [-3e2, 4]]},
                  {"data": [1, 2, 3], "name": "i", "datatype": "INT64", "shape": [3]},
                  {"name": "h", "datatype": "FP16", "shape": [2], "data": [0.5, -2]},
                  {"name": "b", "shape": [2], "datatype": "BOOL", "data": [true, false]},
                  {"name": "s", "shape": [1, 2], "datatype": "BYTES", "data": ["hello", "wörld"]},
                  {"name": "k", "shape": [2], "data": [9007199254740993, -1], "datatype": "INT64"},
                  {"name": "u", "shape": [], "datatype": "INT32", "data": 7}
                 ],
                 "outputs": [{"name": "y", "parameters": {"binary_data": false}}]}
                """);
        assertEquals("r1", r.id());
        assertEquals("a", r.adapter());
        assertNull(r.adapters());
        assertEquals(List.of("y"), List.copyOf(r.outputs()));
        Map<String, Tensor> t = InferCodec.tensors(r.inputs());
        assertArrayEquals(new float[] {1, 2.5f, -300, 4}, t.get("f").toFloatArray());
        assertArrayEquals(new long[] {2, 2}, t.get("f").shape());
        assertArrayEquals(new long[] {1, 2, 3}, t.get("i").toLongArray());
        assertEquals(DataType.FLOAT16, t.get("h").dtype());
        assertArrayEquals(new float[] {0.5f, -2}, t.get("h").toFloatArray());
        assertEquals(1, t.get("b").byteView().get(0));
        assertEquals("wörld", new String(t.get("s").strings().get(1), StandardCharsets.UTF_8));
        assertArrayEquals(new long[] {9007199254740993L, -1}, t.get("k").toLongArray(), "exact beyond 2^53");
        assertEquals(0, t.get("u").rank());
        assertEquals(7, t.get("u").toIntArray()[0]);
    }

    @Test
    void perRowAdaptersWithNulls() {
        InferCodec.Request r = read("{\"inputs\":[{\"name\":\"x\",\"shape\":[3],\"datatype\":\"FP32\",\"data\":[1,2,3]}],"
                + "\"parameters\":{\"adapters\":[\"a\",null,\"b\"]}}");
        assertEquals(Arrays.asList("a", null, "b"), r.adapters());
    }

    @Test
    void faultsAreBadRequestsThatSayWhat() {
        refused("", "empty");
        refused("{\"inputs\": [", "malformed JSON");
        refused("{} {}", "trailing");
        refused("{\"inputs\": []}", "no \"inputs\"");
        refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1]}]}", "has 1 data elements");
        refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,\"a\"]}]}", "must be numbers");
        refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"INT64\",\"data\":[1.5]}]}", "must be integers");
        refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"UINT8\",\"data\":[300]}]}", "out of range");
        refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"BOOL\",\"data\":[1]}]}", "true or false");
        refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP8\",\"data\":[1]}]}", "not supported");
        refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[-1],\"datatype\":\"FP32\",\"data\":[1]}]}", "non-negative");
        refused("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"data\":[1]}]}", "no shape");
        refused("{\"inputs\":[{\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", "no name");
        refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]},"
                + "{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", "given twice");
        refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[2000],\"datatype\":\"FP32\",\"data\":[1]}]}", "at most 1024");
        refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}],"
                + "\"parameters\":{\"adapter\":\"a\",\"adapters\":[\"a\"]}}", "not both");
        refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[65536,65536,65536],\"datatype\":\"FP32\",\"data\":[1]}]}",
                "more elements");
        refused("{\"id\": 5, \"inputs\":[]}", "id must be a string");
    }

    @Test
    void writesOutputsFlatRowMajorAndRoundTrips() throws Exception {
        Map<String, Tensor> out = new LinkedHashMap<>();
        out.put("y", Tensor.ofFloats(new long[] {2, 2}, 1, -2.5f, 3e-8f, 4));
        out.put("n", Tensor.ofLongs(new long[] {1}, 42));
        out.put("t", Tensor.ofStrings(new long[] {1}, List.of("ok".getBytes(StandardCharsets.UTF_8))));
        byte[] body = InferCodec.write("m", "id7", Map.of("adapter", "a"), out);
        var json = Http.JSON.readTree(body);
        assertEquals("m", json.get("model_name").asText());
        assertEquals("id7", json.get("id").asText());
        assertEquals("a", json.get("parameters").get("adapter").asText());
        assertEquals("[2,2]", json.get("outputs").get(0).get("shape").toString());
        assertEquals("FP32", json.get("outputs").get(0).get("datatype").asText());
        assertEquals(3e-8f, (float) json.get("outputs").get(0).get("data").get(2).asDouble());
        assertEquals("INT64", json.get("outputs").get(1).get("datatype").asText());
        assertEquals("BYTES", json.get("outputs").get(2).get("datatype").asText());
    }

    @Test
    void aLargeBatchParsesFast() {
        // 8x3x224x224 floats, the size the brief names: one pass, well under a second
        Random r = new Random(1);
        int n = 8 * 3 * 224 * 224;
        StringBuilder sb = new StringBuilder(n * 12);
        sb.append("{\"inputs\":[{\"name\":\"x\",\"shape\":[8,3,224,224],\"datatype\":\"FP32\",\"data\":[");
        float[] want = new float[n];
        for (int i = 0; i < n; i++) {
            want[i] = (float) r.nextGaussian();
            sb.append(i == 0 ? "" : ",").append(want[i]);
        }
        sb.append("]}]}");
        byte[] body = sb.toString().getBytes(StandardCharsets.UTF_8);
        InferCodec.read(body, 1024);   // warm-up
        long t0 = System.nanoTime();
        Tensor t = InferCodec.read(body, 1024).inputs().get(0).tensor();
        double ms = (System.nanoTime() - t0) / 1e6;
        System.out.printf("InferCodec: %d floats (%.1f MB of JSON) parsed in %.0f ms%n", n, body.length / 1e6, ms);
        assertArrayEquals(want, t.toFloatArray());
        assertTrue(ms < 2000, "parsing took " + ms + " ms");
    }
}
