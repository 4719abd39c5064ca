package io.peft4j.core.safetensors;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** One test per way a safetensors file can be malformed: the code and the message are checked. */
class SafetensorsMalformedTest {

    private static final String NAME = "case.safetensors";

    @TempDir
    Path dir;

    /** A file with the given header text (its exact length, no padding) and {@code dataBytes} zero bytes. */
    static byte[] file(String header, int dataBytes) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        return withLength(h.length, h, new byte[dataBytes]);
    }

    static byte[] withLength(long headerLength, byte[] header, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(headerLength).put(header).put(data);
        return b.array();
    }

    static String entry(String name, String dtype, String shape, String offsets) {
        return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
    }

    /** Parses from memory and expects a MALFORMED error naming the source and containing every fragment. */
    static Peft4jException malformed(byte[] bytes, String... fragments) {
        return rejected(ErrorCode.MALFORMED, bytes, fragments);
    }

    static Peft4jException rejected(ErrorCode code, byte[] bytes, String... fragments) {
        Peft4jException e;
        try (SafetensorsFile f = SafetensorsFile.parse(ByteBuffer.wrap(bytes), NAME)) {
            fail("accepted: " + f.names());
            return null;
        } catch (Peft4jException ex) {
            e = ex;
        }
        assertEquals(code, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(NAME), "names the source: " + e.getMessage());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "'" + f + "' in: " + e.getMessage());
        }
        return e;
    }

    private Peft4jException malformedFile(byte[] bytes, String fragment) throws IOException {
        Path p = dir.resolve("bad-" + System.nanoTime() + ".safetensors");
        Files.write(p, bytes);
        Peft4jException e = assertThrows(Peft4jException.class, () -> SafetensorsFile.open(p).close());
        assertEquals(ErrorCode.MALFORMED, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(p.getFileName().toString()), "names the file: " + e.getMessage());
        assertTrue(e.getMessage().contains(fragment), "'" + fragment + "' in: " + e.getMessage());
        return e;
    }

    // ---------------------------------------------------------------- the well-formed baseline

    @Test
    void baselineIsAccepted() {
        byte[] ok = file("{" + entry("w", "F32", "[2]", "[0,8]") + "}", 8);
        try (SafetensorsFile f = SafetensorsFile.parse(ByteBuffer.wrap(ok))) {
            assertEquals(2, f.tensor("w").numel());
        }
    }

    @Test
    void knownLayoutOfTheReferenceWriter() {
        // the reference library's documented output for one F32 [1,2,3] tensor named attn.0: a 64-byte header
        Map<String, Tensor> t = Map.of("attn.0", Tensor.ofFloats(new long[] {1, 2, 3}, 0, 1, 2, 3, 4, 5));
        byte[] bytes = Safetensors.toBytes(t);
        String header = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
        assertEquals(64, header.length());
        byte[] data = new byte[24];
        ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().put(new float[] {0, 1, 2, 3, 4, 5});
        assertArrayEquals(withLength(64, header.getBytes(StandardCharsets.UTF_8), data), bytes);
        // and for metadata without tensors: padded with five spaces to 40 bytes
        byte[] meta = Safetensors.toBytes(Map.of(), Map.of("framework", "pt"));
        String metaHeader = "{\"__metadata__\":{\"framework\":\"pt\"}}     ";
        assertArrayEquals(withLength(40, metaHeader.getBytes(StandardCharsets.UTF_8), new byte[0]), meta);
    }

    @Test
    void paddingWithSpacesAndOtherJsonWhitespaceIsAccepted() {
        byte[] padded = file("{" + entry("w", "U8", "[1]", "[0,1]") + "}        ", 1);
        try (SafetensorsFile f = SafetensorsFile.parse(ByteBuffer.wrap(padded))) {
            assertEquals(1, f.names().size());
        }
        byte[] spaced = file("{ \"w\" : { \"shape\" : [ 1 ] , \"data_offsets\" : [0,1], \"dtype\":\"U8\" } }\n", 1);
        try (SafetensorsFile f = SafetensorsFile.parse(ByteBuffer.wrap(spaced))) {
            assertEquals(1, f.names().size());
        }
    }

    // ---------------------------------------------------------------- header length

    @Test
    void shorterThan8Bytes() throws IOException {
        malformed(new byte[5], "5 bytes long", "shorter than the 8-byte header length");
        malformed(new byte[0], "0 bytes long");
        malformedFile(new byte[] {1, 0, 0}, "3 bytes long");
    }

    @Test
    void headerLengthBeyondTheFile() throws IOException {
        byte[] b = withLength(100, "{}".getBytes(StandardCharsets.UTF_8), new byte[0]);
        malformed(b, "header length 100 goes beyond the end of the file (10 bytes)");
        malformedFile(b, "goes beyond the end of the file");
    }

    @Test
    void headerLengthAbsurd() throws IOException {
        malformed(withLength(100_000_001L, new byte[0], new byte[0]), "header length 100000001 exceeds the limit of 100000000");
        // 2^64 - 1 as an unsigned number
        malformed(withLength(-1L, new byte[0], new byte[0]), "header length 18446744073709551615 exceeds the limit");
        malformedFile(withLength(Long.MAX_VALUE, new byte[0], new byte[0]), "exceeds the limit");
    }

    @Test
    void emptyHeader() {
        malformed(withLength(0, new byte[0], new byte[0]), "header is empty");
    }

    // ---------------------------------------------------------------- header text

    @Test
    void headerNotUtf8() {
        byte[] h = {'{', '"', 'a', (byte) 0xFF, '"', ':', '1', '}'};
        malformed(withLength(h.length, h, new byte[0]), "not valid UTF-8");
        // an overlong encoding of '/' and an encoded surrogate are not UTF-8 either
        byte[] overlong = {'{', '"', (byte) 0xC0, (byte) 0xAF, '"', ':', '1', '}'};
        malformed(withLength(overlong.length, overlong, new byte[0]), "not valid UTF-8");
        byte[] surrogate = {'{', '"', (byte) 0xED, (byte) 0xA0, (byte) 0x80, '"', ':', '1', '}'};
        malformed(withLength(surrogate.length, surrogate, new byte[0]), "not valid UTF-8");
    }

    @Test
    void headerNotJson() {
        malformed(file("{not json}", 0), "not valid JSON");
        malformed(file("{\"a\":", 0), "not valid JSON");
        malformed(file("{\"a\":{\"dtype\":\"F32\",", 0), "not valid JSON");
    }

    @Test
    void headerNotAnObject() {
        malformed(file("[1,2]", 0), "must start with '{'");
        malformed(file(" {}", 0), "must start with '{'");
        malformed(file("\"{}\"", 0), "must start with '{'");
    }

    @Test
    void trailingGarbage() {
        malformed(file("{}{}", 0), "trailing content after the header's JSON object");
        malformed(file("{}  x", 0), "not valid JSON");
        malformed(file("{}\0\0\0", 0), "not valid JSON");
    }

    @Test
    void fileNamedInTheMessageWhenOpenedFromDisk() throws IOException {
        malformedFile(file("{\"w\":1}", 0), "tensor 'w': entry must be a JSON object");
    }

    // ---------------------------------------------------------------- entries

    @Test
    void entryNotAnObject() {
        malformed(file("{\"w\":[1,2]}", 0), "tensor 'w'", "entry must be a JSON object, found an array");
        malformed(file("{\"w\":\"F32\"}", 0), "tensor 'w'", "found a string");
        malformed(file("{\"w\":null}", 0), "tensor 'w'", "found null");
    }

    @Test
    void missingField() {
        malformed(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "tensor 'w'", "missing field 'data_offsets'");
        malformed(file("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4), "missing field 'shape'");
        malformed(file("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "missing field 'dtype'");
        malformed(file("{\"w\":{}}", 0), "missing field 'dtype'");
    }

    @Test
    void extraField() {
        malformed(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"stride\":[1]}}", 4),
                "tensor 'w'", "unexpected field 'stride'");
    }

    @Test
    void duplicateFieldInAnEntry() {
        malformed(file("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                "tensor 'w'", "duplicate field 'dtype'");
        malformed(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                "duplicate field 'shape'");
        malformed(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"data_offsets\":[0,4]}}", 4),
                "duplicate field 'data_offsets'");
    }

    @Test
    void wrongFieldTypes() {
        malformed(file("{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                "tensor 'w'", "'dtype' must be a string, found an integer");
        malformed(file("{\"w\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4),
                "'shape' must be an array of integers, found a string");
        malformed(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"a\":0}}}", 4),
                "'data_offsets' must be an array of integers, found an object");
        malformed(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[[1]],\"data_offsets\":[0,4]}}", 4),
                "'shape' must hold non-negative integers, found an array");
        malformed(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4),
                "'shape' must hold non-negative integers, found a string");
    }

    @Test
    void unknownDtype() {
        malformed(file("{" + entry("w", "F33", "[1]", "[0,4]") + "}", 4), "tensor 'w'", "unknown dtype 'F33'");
        malformed(file("{" + entry("w", "f32", "[1]", "[0,4]") + "}", 4), "unknown dtype 'f32'");
        malformed(file("{" + entry("w", "", "[1]", "[0,4]") + "}", 4), "unknown dtype ''");
    }

    @Test
    void negativeOrNonIntegerDims() {
        malformed(file("{" + entry("w", "F32", "[-1]", "[0,4]") + "}", 4), "tensor 'w'", "'shape' value -1 is negative");
        malformed(file("{" + entry("w", "F32", "[1.0]", "[0,4]") + "}", 4), "'shape' must hold non-negative integers, found a non-integer number");
        malformed(file("{" + entry("w", "F32", "[1e2]", "[0,400]") + "}", 400), "found a non-integer number");
        malformed(file("{" + entry("w", "F32", "[true]", "[0,4]") + "}", 4), "found a boolean");
        malformed(file("{" + entry("w", "F32", "[99999999999999999999]", "[0,4]") + "}", 4),
                "'shape' value '99999999999999999999' does not fit in a signed 64-bit integer");
    }

    @Test
    void elementCountOverflows() {
        malformed(file("{" + entry("w", "U8", "[4294967296,4294967296]", "[0,0]") + "}", 0),
                "tensor 'w'", "shape [4294967296, 4294967296]: the element count overflows 64 bits");
        malformed(file("{" + entry("w", "F64", "[4611686018427387904]", "[0,0]") + "}", 0),
                "tensor 'w'", "the byte size overflows 64 bits");
    }

    @Test
    void badDataOffsets() {
        malformed(file("{" + entry("w", "F32", "[1]", "[4]") + "}", 4),
                "tensor 'w'", "'data_offsets' must hold exactly two integers, found 1");
        malformed(file("{" + entry("w", "F32", "[1]", "[0,4,8]") + "}", 4), "exactly two integers, found 3");
        malformed(file("{" + entry("w", "F32", "[1]", "[]") + "}", 4), "exactly two integers, found 0");
        malformed(file("{" + entry("w", "F32", "[1]", "[-4,0]") + "}", 4), "'data_offsets' value -4 is negative");
        malformed(file("{" + entry("w", "F32", "[1]", "[0,4.0]") + "}", 4), "'data_offsets' must hold non-negative integers");
        malformed(file("{" + entry("w", "F32", "[1]", "[0,18446744073709551616]") + "}", 4), "does not fit in a signed 64-bit integer");
        malformed(file("{" + entry("w", "F32", "[0]", "[4,0]") + "}", 4), "tensor 'w'", "data_offsets [4, 0]: begin > end");
    }

    @Test
    void endBeyondTheDataSection() {
        malformed(file("{" + entry("w", "F32", "[2]", "[0,8]") + "}", 4),
                "tensor 'w'", "data_offsets [0, 8] beyond the data section of 4 bytes");
        malformed(file("{" + entry("w", "U8", "[1]", "[9223372036854775806,9223372036854775807]") + "}", 4),
                "beyond the data section");
    }

    @Test
    void sizeDoesNotMatchDtypeAndShape() {
        malformed(file("{" + entry("w", "F32", "[2]", "[0,4]") + "}", 4),
                "tensor 'w'", "F32 shape [2] needs 8 bytes, but data_offsets [0, 4] hold 4");
        malformed(file("{" + entry("w", "BF16", "[]", "[0,4]") + "}", 4), "BF16 shape [] needs 2 bytes");
    }

    @Test
    void overlappingTensors() {
        String h = "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[4,12]") + "}";
        malformed(file(h, 12), "tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a' which ends at 8");
        String same = "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[1]", "[0,4]") + "}";
        malformed(file(same, 4), "overlaps tensor");
    }

    @Test
    void gapsBetweenTensors() {
        String h = "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[1]", "[8,12]") + "}";
        malformed(file(h, 12), "gap in the data section: bytes 4 to 8 belong to no tensor (before tensor 'b')");
        malformed(file("{" + entry("a", "F32", "[1]", "[4,8]") + "}", 8), "gap in the data section: bytes 0 to 4");
        malformed(file("{" + entry("a", "F32", "[1]", "[0,4]") + "}", 6),
                "the data section has 6 bytes but the tensors cover only 4");
        malformed(file("{}", 1), "the data section has 1 bytes but the tensors cover only 0");
    }

    @Test
    void zeroSizeTensorsMayShareAnOffset() {
        String h = "{" + entry("a", "F32", "[0]", "[4,4]") + "," + entry("b", "F32", "[1]", "[0,4]") + ","
                + entry("c", "U8", "[0,7]", "[4,4]") + "}";
        try (SafetensorsFile f = SafetensorsFile.parse(ByteBuffer.wrap(file(h, 4)))) {
            assertEquals(java.util.List.of("b", "a", "c"), f.names());
        }
    }

    @Test
    void duplicateKeys() {
        String h = "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("a", "F32", "[1]", "[4,8]") + "}";
        malformed(file(h, 8), "duplicate key 'a' in the header");
        malformed(file("{\"__metadata__\":{},\"__metadata__\":{}}", 0), "duplicate key '__metadata__' in the header");
        malformed(file("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0), "duplicate key 'k' in __metadata__");
    }

    @Test
    void metadataNotAnObjectOfStrings() {
        malformed(file("{\"__metadata__\":[\"a\"]}", 0), "__metadata__ must be an object of strings, found an array");
        malformed(file("{\"__metadata__\":\"pt\"}", 0), "__metadata__ must be an object of strings, found a string");
        malformed(file("{\"__metadata__\":{\"format\":1}}", 0), "__metadata__ value 'format' must be a string, found an integer");
        malformed(file("{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}", 0), "__metadata__ value 'a' must be a string, found an object");
        malformed(file("{\"__metadata__\":{\"a\":null}}", 0), "found null");
    }

    @Test
    void deepNestingIsRejectedWithoutRecursion() {
        String deep = "[".repeat(100_000);
        malformed(file("{\"w\":" + deep, 0), "tensor 'w'", "entry must be a JSON object, found an array");
        malformed(file("{\"__metadata__\":{\"a\":" + "{\"a\":".repeat(100_000), 0), "must be a string, found an object");
    }

    @Test
    void unpairedSurrogateEscapes() {
        malformed(file("{\"a\\ud800\":" + entry("w", "F32", "[0]", "[0,0]").substring(4) + "}", 0),
                "holds an unpaired surrogate escape");
        malformed(file("{\"__metadata__\":{\"k\":\"\\udc00\"}}", 0), "__metadata__ entry 'k' holds an unpaired surrogate");
        // a proper pair is fine
        try (SafetensorsFile f = SafetensorsFile.parse(ByteBuffer.wrap(file("{\"__metadata__\":{\"k\":\"\\ud83d\\ude00\"}}", 0)))) {
            assertEquals("\uD83D\uDE00", f.metadata().get("k"));
        }
    }

    @Test
    void veryLongNamesAreAccepted() {
        String name = "n".repeat(200_000);
        try (SafetensorsFile f = SafetensorsFile.parse(ByteBuffer.wrap(file("{" + entry(name, "U8", "[1]", "[0,1]") + "}", 1)))) {
            assertEquals(name, f.names().get(0));
        }
    }

    @Test
    void longAndOddNamesAreShortenedAndEscapedInMessages() {
        String longName = "x".repeat(10_000);
        Peft4jException e = malformed(file("{\"" + longName + "\":1}", 0), "...(10000 chars)");
        assertTrue(e.getMessage().length() < 500, e.getMessage());
        malformed(file("{\"a\\u0001b\":1}", 0), "tensor 'a\\u0001b'");
    }
}
