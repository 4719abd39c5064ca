package io.peft4j.runtime;

import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The FP32 fast path of JSON requests ({@link FastFloatData}): what it takes out and what it leaves
 * to jackson, floats bit for bit as {@code Float.parseFloat} reads them (the texts Python, NumPy and
 * Java print, and the hard cases beside points halfway between floats), and errors that point into
 * the body as sent.
 */
class FastFloatDataTest {

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static InferCodec.Request read(String json) {
        return InferCodec.read(utf8(json), 1024);
    }

    @Test
    void takesOutTheFp32DataOfInputsWhoseDatatypeComesFirst() {
        String body = "{\"id\":\"r\",\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1, -2.5 ,3e2]},"
                + "{\"name\":\"n\",\"datatype\":\"INT64\",\"shape\":[2],\"data\":[1,2]},"
                + "{\"name\":\"late\",\"data\":[4,5],\"datatype\":\"FP32\",\"shape\":[2]},"
                + "{\"name\":\"nested\",\"datatype\":\"FP32\",\"shape\":[2,1],\"data\":[[6],[7]]}],"
                + "\"parameters\":{\"data\":[1.5],\"datatype\":\"FP32\"}}";
        FastFloatData.Scan scan = FastFloatData.scan(utf8(body), body.length());
        assertNotNull(scan);
        String left = new String(scan.json, StandardCharsets.UTF_8);
        assertTrue(left.contains("\"data\":\"\\u0000peft4j-data:"), left);
        assertTrue(left.contains("\"data\":[1,2]") && left.contains("\"data\":[4,5]") && left.contains("[[6],[7]]")
                && left.contains("\"parameters\":{\"data\":[1.5]"), "only x's data is taken out: " + left);
        assertEquals(1, left.split("peft4j-data:", -1).length - 1);

        InferCodec.Request r = InferCodec.read(utf8(body), 1024);
        assertArrayEquals(new float[] {1, -2.5f, 300}, r.inputs().get(0).tensor().toFloatArray());
        assertArrayEquals(new long[] {1, 2}, r.inputs().get(1).tensor().toLongArray());
        assertArrayEquals(new float[] {4, 5}, r.inputs().get(2).tensor().toFloatArray());
        assertArrayEquals(new float[] {6, 7}, r.inputs().get(3).tensor().toFloatArray());
        assertEquals("r", r.id());
    }

    @Test
    void leavesBodiesItCannotReadWhole() {
        for (String s : List.of("{\"inputs\":[{\"datatype\":\"FP32\",\"data\":[1,2]}]",      // unclosed
                "{\"inputs\":[{\"datatype\":\"FP32\",\"data\":[01]}]}",                         // not a JSON number
                "{\"inputs\":[{\"datatype\":\"FP32\",\"data\":[1,]}]}",
                "{\"inputs\":[{\"datatype\":\"FP32\",\"data\":[1 2]}]}",
                "{\"inputs\":[{\"datatype\":\"FP32\",\"data\":[NaN]}]}",
                "{\"inputs\":[{\"datatype\":\"FP32\",\"data\":[1]}]} trailing",
                "{\"inputs\":[{\"datatype\":\"FP32\",\"data\":[1]}]}}",
                "{\"inputs\":[{\"datatype\":\"FP32\",\"data\":[\"1\"]}]}",
                "{\"inputs\":[{\"datatype\":\"INT64\",\"data\":[1]}]}",
                "[1,2,3]", "", "{")) {
            FastFloatData.Scan scan = FastFloatData.scan(utf8(s), s.length());
            assertNull(scan, s + " -> " + (scan == null ? "" : new String(scan.json, StandardCharsets.UTF_8)));
        }
        // a number longer than jackson takes: left to jackson, which refuses it
        String longNumber = "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[0."
                + "0".repeat(1200) + "1e1200]}]}";
        assertNull(FastFloatData.scan(utf8(longNumber), longNumber.length()));
        ApiException tooLong = assertThrows(ApiException.class, () -> read(longNumber));
        assertTrue(tooLong.getMessage().contains("malformed JSON"), tooLong.getMessage());
        // deeply nested: refused without a stack overflow
        String deep = "{\"inputs\":[{\"datatype\":\"FP32\",\"data\":[1]}],\"x\":" + "[".repeat(5000) + "]".repeat(5000) + "}";
        assertNull(FastFloatData.scan(utf8(deep), deep.length()));
    }

    @Test
    void errorsPointIntoTheBodyAsSent() {
        String body = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2],\"datatype\":\"FP32\",\"data\":[1,2]}],\n\"outputs\": 5 }";
        ApiException e = assertThrows(ApiException.class, () -> read(body));
        assertTrue(e.getMessage().contains("outputs must be an array"), e.getMessage());
        String malformed = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2],\"datatype\":\"FP32\",\n\"data\":[1,2]}],\n\"id\": tru }";
        ApiException m = assertThrows(ApiException.class, () -> read(malformed));
        assertTrue(m.getMessage().contains("malformed JSON") && m.getMessage().contains("line 3"), m.getMessage());
        ApiException count = assertThrows(ApiException.class,
                () -> read("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2]}]}"));
        assertTrue(count.getMessage().contains("has 2 data elements; shape [1, 3] needs 3"), count.getMessage());
    }

    @Test
    void aClientCannotNameATakenOutArrayNorGiveTwoDatatypes() {
        String forged = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]},"
                + "{\"name\":\"y\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":\"\\u0000peft4j-data:0:0\"}]}";
        ApiException e = assertThrows(ApiException.class, () -> read(forged));
        assertTrue(e.getMessage().contains("input 'y'"), e.getMessage());
        ApiException twice = assertThrows(ApiException.class,
                () -> read("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],\"datatype\":\"INT64\"}]}"));
        assertTrue(twice.getMessage().contains("Duplicate field 'datatype'"), twice.getMessage());
        ApiException data2 = assertThrows(ApiException.class,
                () -> read("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],\"data\":[2]}]}"));
        assertTrue(data2.getMessage().contains("Duplicate field 'data'"), data2.getMessage());
    }

    /** Each text read through the fast path, against Float.parseFloat, bit for bit. */
    private static void assertExact(List<String> texts) {
        StringBuilder sb = new StringBuilder("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,").append(texts.size())
                .append("],\"data\":[");
        for (int i = 0; i < texts.size(); i++) {
            sb.append(i == 0 ? "" : i % 3 == 0 ? ",\n " : ",").append(texts.get(i));
        }
        sb.append("]}]}");
        byte[] body = utf8(sb.toString());
        assertNotNull(FastFloatData.scan(body, body.length), "the fast path takes this body");
        Tensor t = InferCodec.read(body, 1024).inputs().get(0).tensor();
        float[] got = t.toFloatArray();
        for (int i = 0; i < texts.size(); i++) {
            float want = Float.parseFloat(texts.get(i));
            assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got[i]), texts.get(i) + " read as " + got[i]
                    + ", Float.parseFloat gives " + want);
        }
    }

    @Test
    void floatsAreBitForBitWhatFloatParseFloatReads() {
        Random r = new Random(20261122);
        List<String> texts = new ArrayList<>();
        for (int i = 0; i < 20_000; i++) {
            float f = (float) (r.nextGaussian() * Math.pow(10, r.nextInt(16) - 8));
            texts.add(Float.toString(f));                              // Java: shortest repr, E notation
            texts.add(Double.toString(f));                             // NumPy float32 through a Python float
            texts.add(new BigDecimal(f).round(new java.math.MathContext(17)).toString());   // json.dumps, 17 digits
            texts.add(String.format(java.util.Locale.ROOT, "%.9e", f));
            float g = Float.intBitsToFloat(r.nextInt() & 0x7f7fffff);
            if (!Float.isNaN(g) && !Float.isInfinite(g)) {
                BigDecimal mid = new BigDecimal((double) g).add(new BigDecimal((double) Math.nextUp(g))).divide(BigDecimal.valueOf(2));
                texts.add(mid.toString());                             // exactly halfway: ties to even
                texts.add(mid.add(mid.ulp()).toString());
                texts.add(mid.subtract(mid.ulp()).toString());
                texts.add(mid.round(new java.math.MathContext(18)).toString());
            }
        }
        texts.addAll(List.of("0", "-0", "0.0", "-0.0", "0e10", "1", "-1", "16777217", "16777216.5", "9007199254740993",
                "123456789012345678901234567890", "0.000000000000000000000000000001", "1e-45", "7e-46", "1.1754942E-38",
                "3.4028235e38", "3.4028235677973366e38", "3.4028236e38", "1e39", "1E+22", "1e23", "1e-22", "1e-23",
                "0.1", "0.30000000000000004", "1.00000005960464477539062500001", "1.000000059604644775390625",
                "1.0000000596046447753906249999", "100000000000000000000000", "-2.5E-3",
                // just above the overflow threshold 2^128 - 2^103: Infinity, not Float.MAX_VALUE
                "3.40282356779733662e38", "-3.402823567797336617e38", "340282356779733662e21", "3.4028235677973365e38"));
        assertExact(texts);
    }
}
