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

    // ---------------------------------------------------------------- numbers, bit for bit

    /** Reads {@code texts} as FP32 data, with datatype and shape before data (typed) and after it (generic). */
    private static void assertParsedLikeParseFloat(List<String> texts) {
        String data = String.join(",", texts);
        String[] bodies = {
            "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1," + texts.size() + "],\"data\":[" + data + "]}]}",
            "{\"inputs\":[{\"name\":\"x\",\"data\":[" + data + "],\"datatype\":\"FP32\",\"shape\":[1," + texts.size() + "]}]}"};
        for (String body : bodies) {
            float[] got = read(body).inputs().get(0).tensor().toFloatArray();
            for (int i = 0; i < texts.size(); i++) {
                float want = Float.parseFloat(texts.get(i));
                assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got[i]),
                        texts.get(i) + " read as " + got[i] + ", Float.parseFloat gives " + want + (body.startsWith("{\"inputs\":[{\"name\":\"x\",\"data")
                                ? " (data before datatype)" : ""));
            }
        }
    }

    @Test
    void fp32DataIsBitForBitWhatFloatParseFloatReads() {
        assertParsedLikeParseFloat(List.of("1", "-1", "0", "-0", "0.0", "-0.0", "1e-45", "1.4e-45", "7e-46", "1.401298464324817e-45",
                "1.1754942E-38", "1.17549435E-38", "3.4028235e38", "-3.4028235E+38", "3.4028235677973366e38", "1e39", "-1e39",
                "1E10", "2.5e-3", "16777217", "16777216.5", "9007199254740993", "123456789012345678901234567890",
                "0.1", "0.30000000000000004", "3.14159265358979323846264338327950288419716939937510", "1.00000005960464477539062500001",
                "1.000000059604644775390625", "1.0000000596046447753906249999", "4.9406564584124654E-324", "1e-400", "6.02214076e23"));
        // float-to-text and double-to-text round trips, and the exact decimal of points halfway between
        // two floats and just beside them (where rounding through a double would go wrong)
        java.util.Random r = new java.util.Random(7);
        List<String> texts = new java.util.ArrayList<>();
        for (int i = 0; i < 3000; i++) {
            float f = Float.intBitsToFloat(r.nextInt() & 0x7f7fffff) * (r.nextBoolean() ? 1 : -1);
            if (Float.isNaN(f) || Float.isInfinite(f)) {
                continue;
            }
            texts.add(Float.toString(f));
            texts.add(Double.toString(r.nextGaussian() * Math.pow(10, r.nextInt(60) - 30)));
            java.math.BigDecimal mid = new java.math.BigDecimal((double) f).add(new java.math.BigDecimal((double) Math.nextUp(f)))
                    .divide(java.math.BigDecimal.valueOf(2));
            texts.add(mid.toString());
            texts.add(mid.add(mid.ulp()).toString());
            texts.add(mid.subtract(mid.ulp()).toString());
        }
        assertParsedLikeParseFloat(texts);
    }

    // ---------------------------------------------------------------- binary tensor data

    private static InferCodec.Request readBinary(String json, byte[] binary) {
        byte[] head = json.getBytes(StandardCharsets.UTF_8);
        byte[] body = Arrays.copyOf(head, head.length + binary.length);
        System.arraycopy(binary, 0, body, head.length, binary.length);
        return InferCodec.read(body, head.length, 1024);
    }

    private static byte[] lengthPrefixed(String... values) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        for (String v : values) {
            byte[] b = v.getBytes(StandardCharsets.UTF_8);
            out.writeBytes(java.nio.ByteBuffer.allocate(4).order(java.nio.ByteOrder.LITTLE_ENDIAN).putInt(b.length).array());
            out.writeBytes(b);
        }
        return out.toByteArray();
    }

    @Test
    void binaryInputsOfEveryKind() {
        byte[] strings = lengthPrefixed("hello", "", "wörld");
        byte[] fp16 = {0x00, 0x38, 0x00, (byte) 0xc0};   // 0.5, -2
        byte[] bools = {1, 0};
        byte[] int32 = {7, 0, 0, 0, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff};
        byte[] all = new byte[strings.length + fp16.length + bools.length + int32.length];
        System.arraycopy(strings, 0, all, 0, strings.length);
        System.arraycopy(fp16, 0, all, strings.length, 4);
        System.arraycopy(bools, 0, all, strings.length + 4, 2);
        System.arraycopy(int32, 0, all, strings.length + 6, 8);
        InferCodec.Request r = readBinary("""
                {"inputs": [
                  {"name": "s", "shape": [3], "datatype": "BYTES", "parameters": {"binary_data_size": %d}},
                  {"name": "h", "shape": [2], "datatype": "FP16", "parameters": {"binary_data_size": 4}},
                  {"name": "j", "shape": [2], "datatype": "FP32", "data": [1.5, 2]},
                  {"name": "b", "shape": [2], "datatype": "BOOL", "parameters": {"binary_data_size": 2, "other": [1]}},
                  {"name": "i", "shape": [2], "datatype": "INT32", "parameters": {"binary_data_size": 8}}],
                 "parameters": {"binary_data_output": true},
                 "outputs": [{"name": "y", "parameters": {"binary_data": false}}, {"name": "z"}]}
                """.formatted(strings.length), all);
        Map<String, Tensor> t = InferCodec.tensors(r.inputs());
        assertEquals(List.of("hello", "", "wörld"), t.get("s").strings().stream().map(b -> new String(b, StandardCharsets.UTF_8)).toList());
        assertArrayEquals(new float[] {0.5f, -2}, t.get("h").toFloatArray());
        assertArrayEquals(new float[] {1.5f, 2}, t.get("j").toFloatArray());
        assertEquals(0, t.get("b").byteView().get(1));
        assertArrayEquals(new int[] {7, -1}, t.get("i").toIntArray());
        assertTrue(!r.binary("y") && r.binary("z") && r.binary("unnamed"), "binary_data overrides binary_data_output");
    }

    private static void binaryRefused(String json, byte[] binary, String fragment) {
        ApiException e = assertThrows(ApiException.class, () -> readBinary(json, binary));
        assertEquals(400, e.status().getCode());
        assertTrue(e.getMessage().contains(fragment), "'" + e.getMessage() + "' should mention '" + fragment + "'");
    }

    @Test
    void malformedBinaryDataIsRefused() {
        String bytes = "{\"inputs\":[{\"name\":\"s\",\"shape\":[2],\"datatype\":\"BYTES\",\"parameters\":{\"binary_data_size\":%d}}]}";
        byte[] two = lengthPrefixed("ab", "c");
        binaryRefused(bytes.formatted(two.length - 1), Arrays.copyOf(two, two.length - 1), "says 1 bytes but only 0");
        binaryRefused(bytes.formatted(2), new byte[] {1, 0}, "ends inside the 4-byte length of element 0");
        binaryRefused(bytes.formatted(6), Arrays.copyOf(two, 6), "holds 1 elements; shape [2] needs 2");
        binaryRefused("{\"inputs\":[{\"name\":\"b\",\"shape\":[2],\"datatype\":\"BOOL\",\"parameters\":{\"binary_data_size\":2}}]}",
                new byte[] {1, 2}, "BOOL binary data must be bytes 0 or 1, got 2 at element 1");
        binaryRefused("{\"inputs\":[{\"name\":\"b\",\"shape\":[2],\"datatype\":\"BOOL\",\"parameters\":{\"binary_data_size\":\"2\"}}]}",
                new byte[] {1, 0}, "binary_data_size must be a non-negative integer");
        binaryRefused("{\"inputs\":[{\"name\":\"b\",\"shape\":[1],\"datatype\":\"INT64\",\"parameters\":{\"binary_data_size\":8}}],"
                + "\"parameters\":{\"binary_data_output\":1}}", new byte[8], "parameters.binary_data_output must be true or false");
        ApiException zero = assertThrows(ApiException.class, () -> InferCodec.read(new byte[] {'{', '}'}, 0, 1024));
        assertTrue(zero.getMessage().contains("is 0"), zero.getMessage());
    }

    @Test
    void binaryOutputsFollowTheJsonInOrder() throws Exception {
        Map<String, Tensor> out = new LinkedHashMap<>();
        out.put("y", Tensor.ofFloats(new long[] {2}, 1.5f, -0.0f));
        out.put("j", Tensor.ofLongs(new long[] {1}, 42));
        out.put("s", Tensor.ofStrings(new long[] {2}, List.of("ab".getBytes(StandardCharsets.UTF_8), new byte[0])));
        out.put("h", Tensor.ofFp16Bits(new long[] {1}, (short) 0x3800));
        InferCodec.Body b = InferCodec.write("m", null, Map.of(), out, n -> !n.equals("j"));
        assertTrue(b.binary());
        var json = Http.JSON.readTree(b.bytes(), 0, b.headerLength());
        var outputs = json.get("outputs");
        assertEquals(8, outputs.get(0).get("parameters").get("binary_data_size").asInt());
        assertTrue(outputs.get(0).get("data") == null);
        assertEquals(42, outputs.get(1).get("data").get(0).asLong());
        assertTrue(outputs.get(1).get("parameters") == null);
        assertEquals(4 + 2 + 4, outputs.get(2).get("parameters").get("binary_data_size").asInt());
        assertEquals(2, outputs.get(3).get("parameters").get("binary_data_size").asInt());
        byte[] tail = Arrays.copyOfRange(b.bytes(), b.headerLength(), b.bytes().length);
        assertArrayEquals(new byte[] {0, 0, (byte) 0xc0, 0x3f, 0, 0, 0, (byte) 0x80, 2, 0, 0, 0, 'a', 'b', 0, 0, 0, 0, 0x00, 0x38}, tail);
        InferCodec.Body none = InferCodec.write("m", null, Map.of(), out, n -> false);
        assertEquals(-1, none.headerLength());
        assertArrayEquals(InferCodec.write("m", null, Map.of(), out), none.bytes());
    }
}
