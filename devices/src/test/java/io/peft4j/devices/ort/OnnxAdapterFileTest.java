package io.peft4j.devices.ort;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static io.peft4j.devices.ort.RawAdapterFiles.adapter;
import static io.peft4j.devices.ort.RawAdapterFiles.floats;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class OnnxAdapterFileTest {

    private static Tensor random(Random r, DataType dt, long... shape) {
        byte[] b = new byte[(int) dt.byteSize(Tensor.numel(shape))];
        r.nextBytes(b);
        return Tensor.ofBytes(dt, shape, b);
    }

    private static void assertSame(Map<String, Tensor> expected, Map<String, Tensor> actual) {
        assertEquals(List.copyOf(expected.keySet()), List.copyOf(actual.keySet()), "names, in order");
        for (Map.Entry<String, Tensor> e : expected.entrySet()) {
            assertTrue(e.getValue().contentEquals(actual.get(e.getKey())), e.getKey() + ": " + actual.get(e.getKey()));
        }
    }

    @Test
    void roundTripsEveryElementTypeOfTheSchema(@TempDir Path dir) {
        Random r = new Random(1);
        Map<String, Tensor> params = new LinkedHashMap<>();
        for (DataType dt : DataType.values()) {
            if (dt != DataType.STRING && dt.onnxCode() <= 20 && dt != DataType.COMPLEX64 && dt != DataType.COMPLEX128) {
                params.put("p_" + dt, random(r, dt, 3, 1 + r.nextInt(5)));
            }
        }
        params.put("zero_rank_a", Tensor.zeros(DataType.FLOAT, 8, 0));
        params.put("zero_rank_b", Tensor.zeros(DataType.FLOAT, 0, 4));
        params.put("vector", random(r, DataType.FLOAT, 5));
        params.put("rank4/conv.lora_A", random(r, DataType.FLOAT16, 2, 3, 3, 3));
        params.put("naïve ünïcode ✓", random(r, DataType.FLOAT, 1));

        Path file = dir.resolve("a" + OnnxAdapterFile.EXTENSION);
        OnnxAdapterFile.write(file, params, 42, -7);
        OnnxAdapterFile f = OnnxAdapterFile.read(file);
        assertEquals(1, f.formatVersion());
        assertEquals(42, f.adapterVersion());
        assertEquals(-7, f.modelVersion());
        assertSame(params, f.parameters());
        for (Map.Entry<String, Tensor> e : f.parameters().entrySet()) {
            assertArrayEquals(params.get(e.getKey()).shape(), e.getValue().shape(), e.getKey());
        }

        // the same bytes from memory; writing what was read gives the same file
        byte[] bytes = OnnxAdapterFile.toBytes(params, 42, -7);
        assertSame(params, OnnxAdapterFile.fromBytes(bytes, "mem").parameters());
        Path again = dir.resolve("b.onnx_adapter");
        f.writeTo(again);
        assertArrayEquals(bytes, readAll(again));
    }

    @Test
    void layoutFollowsTheSchema() {
        Map<String, Tensor> params = new LinkedHashMap<>();
        params.put("a", Tensor.ofFloats(new long[] {1, 3}, 1, 2, 3));
        params.put("bb", Tensor.ofInt8(new long[] {5}, (byte) 1, (byte) 2, (byte) 3, (byte) 4, (byte) 5));
        params.put("ccc", Tensor.ofDoubles(new long[] {2}, 0.5, 0.25));
        byte[] bytes = OnnxAdapterFile.toBytes(params, 0, 0);
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals("TORT", new String(bytes, 4, 4, StandardCharsets.US_ASCII), "file identifier at bytes 4..7");
        assertEquals(0, bytes.length % 8);
        // root table: vtable slot 0 (format_version) holds 1; versions 0 are defaults, left out
        int root = b.getInt(0);
        int vtable = root - b.getInt(root);
        int formatField = Short.toUnsignedInt(b.getShort(vtable + 4));
        assertTrue(formatField > 0);
        assertEquals(1, b.getInt(root + formatField));
        // every raw_data starts 8-aligned from the start of the file (force_align: 8)
        long[] offsets = OnnxAdapterFile.rawDataOffsets(bytes);
        assertEquals(3, offsets.length);
        for (long o : offsets) {
            assertEquals(0, o % OnnxAdapterFile.DATA_ALIGNMENT, "raw_data at " + o);
        }
        assertEquals(1f, b.getFloat((int) offsets[0]));
        OnnxAdapterFile f = OnnxAdapterFile.fromBytes(bytes, "mem");
        assertEquals(0, f.adapterVersion());
        assertEquals(0, f.modelVersion());
    }

    @Test
    void emptyAdapterIsValid() {
        OnnxAdapterFile f = OnnxAdapterFile.fromBytes(OnnxAdapterFile.toBytes(Map.of(), 1, 2), "empty");
        assertTrue(f.parameters().isEmpty());
        assertEquals(1, f.adapterVersion());
    }

    @Test
    void readsWhatAnotherFlatBuffersWriterLaysOut() {
        // fields present with default values, explicit versions, a different builder's choices
        byte[] bytes = adapter().add("x", new long[] {2, 2}, 1, floats(4)).add("y", new long[] {1}, 11, new byte[8]).build();
        OnnxAdapterFile f = OnnxAdapterFile.fromBytes(bytes, "raw");
        assertEquals(7, f.adapterVersion());
        assertEquals(3, f.modelVersion());
        assertEquals(DataType.FLOAT, f.parameters().get("x").dtype());
        assertEquals(DataType.DOUBLE, f.parameters().get("y").dtype());
    }

    @Test
    void writerRefusesWhatTheFormatCannotHold(@TempDir Path dir) {
        Tensor t = Tensor.ofFloats(new long[] {1}, 1);
        assertCode(ErrorCode.INVALID_ARGUMENT, () -> OnnxAdapterFile.toBytes(Map.of("", t), 0, 0), "needs a name");
        assertCode(ErrorCode.INVALID_ARGUMENT, () -> OnnxAdapterFile.toBytes(Map.of("a\ud800", t), 0, 0), "surrogate");
        assertCode(ErrorCode.UNSUPPORTED, () -> OnnxAdapterFile.toBytes(Map.of("s", Tensor.scalar(1f)), 0, 0), "scalar");
        assertCode(ErrorCode.UNSUPPORTED, () -> OnnxAdapterFile.toBytes(
                Map.of("s", Tensor.ofStrings(new long[] {1}, List.of(new byte[] {65}))), 0, 0), "STRING");
        assertCode(ErrorCode.UNSUPPORTED, () -> OnnxAdapterFile.toBytes(
                Map.of("q", Tensor.zeros(DataType.INT4, 4)), 0, 0), "INT4");
        assertCode(ErrorCode.UNSUPPORTED, () -> OnnxAdapterFile.toBytes(
                Map.of("c", Tensor.zeros(DataType.COMPLEX64, 2)), 0, 0), "cannot load complex");
        Path file = dir.resolve("refused.onnx_adapter");
        assertCode(ErrorCode.UNSUPPORTED, () -> OnnxAdapterFile.write(file, Map.of("s", Tensor.scalar(1f)), 0, 0), "scalar");
        assertFalse(Files.exists(file), "nothing written");
        assertCode(ErrorCode.IO, () -> OnnxAdapterFile.write(dir.resolve("no/such/dir/a.onnx_adapter"),
                Map.of("a", t), 0, 0), "cannot write");
    }

    @Test
    void writeIsAtomicAndLeavesNoTemporaryFiles(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("a.onnx_adapter");
        OnnxAdapterFile.write(file, Map.of("a", Tensor.ofFloats(new long[] {1}, 1)), 1, 1);
        OnnxAdapterFile.write(file, Map.of("b", Tensor.ofFloats(new long[] {1}, 2)), 2, 1);
        OnnxAdapterFile f = OnnxAdapterFile.read(file);
        assertEquals(List.of("b"), List.copyOf(f.parameters().keySet()));
        assertEquals(2, f.adapterVersion());
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(List.of(file), s.toList());
        }
    }

    @Test
    void missingFileIsAnIoError(@TempDir Path dir) {
        assertCode(ErrorCode.IO, () -> OnnxAdapterFile.read(dir.resolve("none.onnx_adapter")), "no adapter file");
    }

    // ---------------------------------------------------------------- malformed files

    @Test
    void rejectsAWrongIdentifierOrTooFewBytes() {
        byte[] good = OnnxAdapterFile.toBytes(Map.of("a", Tensor.ofFloats(new long[] {1}, 1)), 0, 0);
        byte[] other = good.clone();
        other[4] = 'O';
        other[5] = 'R';
        other[6] = 'T';
        other[7] = 'M';
        assertMalformed(other, "expected file identifier 'TORT'", "found 'ORTM'");
        assertMalformed(adapter().add("a", new long[] {1}, 1, floats(1)).identifier("ORTX"), "'ORTX'");
        assertMalformed(new byte[0], "too short");
        assertMalformed(new byte[] {8, 0, 0, 0, 'T', 'O', 'R'}, "too short");
        assertMalformed("{\"not\": \"flatbuffers\"}".getBytes(StandardCharsets.UTF_8), "file identifier");
    }

    @Test
    void rejectsEveryTruncation() {
        Map<String, Tensor> params = new LinkedHashMap<>();
        // the first name is written last, at the very end: 7 bytes + its zero byte leave no padding
        // there, so every byte of the file is part of something the reader needs
        params.put("lora_Ax", Tensor.ofFloats(new long[] {2, 2}, 1, 2, 3, 4));
        params.put("lora_B", Tensor.ofFloats(new long[] {2, 1}, 5, 6));
        byte[] good = OnnxAdapterFile.toBytes(params, 1, 1);
        assertEquals('x', good[good.length - 2]);
        for (int n = 0; n < good.length; n++) {
            byte[] cut = Arrays.copyOf(good, n);
            Peft4jException e = assertThrows(Peft4jException.class, () -> OnnxAdapterFile.fromBytes(cut, "cut"),
                    "a file cut to " + n + " of " + good.length + " bytes must be refused");
            assertEquals(ErrorCode.MALFORMED, e.code(), e.getMessage());
        }
    }

    @Test
    void rejectsOffsetsOutOfRange() {
        byte[] good = OnnxAdapterFile.toBytes(Map.of("a", Tensor.ofFloats(new long[] {1}, 1)), 0, 0);
        ByteBuffer b = ByteBuffer.wrap(good).order(ByteOrder.LITTLE_ENDIAN);

        byte[] root = good.clone();
        ByteBuffer.wrap(root).order(ByteOrder.LITTLE_ENDIAN).putInt(0, good.length + 100);
        assertMalformed(root, "root table", "outside the file");

        byte[] unaligned = good.clone();
        ByteBuffer.wrap(unaligned).order(ByteOrder.LITTLE_ENDIAN).putInt(0, 9);
        assertMalformed(unaligned, "not 4-byte aligned");

        byte[] vtable = good.clone();
        int rootPos = b.getInt(0);
        ByteBuffer.wrap(vtable).order(ByteOrder.LITTLE_ENDIAN).putInt(rootPos, -100000);
        assertMalformed(vtable, "vtable", "outside the file");

        // the parameters vector offset pointing past the end
        byte[] params = good.clone();
        int vt = rootPos - b.getInt(rootPos);
        int paramsField = rootPos + Short.toUnsignedInt(b.getShort(vt + 4 + 2 * 3));
        ByteBuffer.wrap(params).order(ByteOrder.LITTLE_ENDIAN).putInt(paramsField, 0x7fff0000);
        assertMalformed(params, "Adapter.parameters", "outside the file");

        // a vector length that runs past the end
        byte[] count = good.clone();
        int vec = paramsField + b.getInt(paramsField);
        ByteBuffer.wrap(count).order(ByteOrder.LITTLE_ENDIAN).putInt(vec, 1_000_000);
        assertMalformed(count, "Adapter.parameters", "run past the end");
    }

    @Test
    void rejectsDataThatDoesNotMatchDimsAndType() {
        assertMalformed(adapter().add("a", new long[] {8, 4}, 1, floats(16)),
                "parameter 0 ('a')", "dims [8, 4] of FLOAT need 128 bytes of raw_data, the file has 64");
        assertMalformed(adapter().add("a", new long[] {2, 2}, 1, floats(8)), "need 16 bytes", "has 32");
        assertMalformed(adapter().add("a", new long[] {2, 2}, 10, floats(4)), "FLOAT16 need 8 bytes");
        assertMalformed(adapter().add("a", new long[] {1L << 30, 1L << 30}, 1, floats(1)), "more than 2^59");
        assertMalformed(adapter().add("a", new long[] {1L << 62, 4, 0}, 1, floats(0)), "more elements than a long");
        assertMalformed(adapter().add("a", new long[] {2, -1}, 1, floats(1)), "negative dimension -1");
    }

    @Test
    void rejectsUnknownAndUnusableDataTypes() {
        assertMalformed(adapter().add("a", new long[] {1}, 21, new byte[1]), "unknown data type 21");
        assertMalformed(adapter().add("a", new long[] {1}, -3, new byte[1]), "unknown data type -3");
        assertMalformed(adapter().add("a", new long[] {1}, 1000, new byte[1]), "unknown data type 1000");
        assertMalformed(adapter().add("a", new long[] {1}, 0, new byte[1]), "UNDEFINED");
        assertMalformed(adapter().add("a", new long[] {1}, null, new byte[1]), "UNDEFINED"); // absent = default 0
        assertMalformed(adapter().add("a", new long[] {1}, 8, new byte[1]), "STRING");
        for (int complex : new int[] {14, 15}) {
            byte[] bytes = adapter().add("c", new long[] {1}, complex, new byte[complex == 14 ? 8 : 16]).build();
            Peft4jException e = assertThrows(Peft4jException.class, () -> OnnxAdapterFile.fromBytes(bytes, "c"));
            assertEquals(ErrorCode.UNSUPPORTED, e.code(), e.getMessage());
            assertTrue(e.getMessage().contains("ONNX Runtime cannot load"), e.getMessage());
        }
    }

    @Test
    void rejectsMissingFieldsDuplicatesAndBadNames() {
        assertMalformed(adapter().add(null, new long[] {1}, 1, floats(1)), "parameter 0 has no name");
        assertMalformed(adapter().add("", new long[] {1}, 1, floats(1)), "empty name");
        assertMalformed(adapter().add("a", null, 1, floats(1)), "has no dims");
        assertMalformed(adapter().add("a", new long[0], 1, floats(1)), "empty dims");
        assertMalformed(adapter().add("a", new long[] {1}, 1, null), "has no raw_data");
        byte[] selfOffset = adapter().add("a", new long[] {1}, 1, floats(1)).build();
        ByteBuffer sb = ByteBuffer.wrap(selfOffset).order(ByteOrder.LITTLE_ENDIAN);
        sb.putInt(0, 0);
        assertMalformed(selfOffset, "root offset is 0");
        assertMalformed(adapter().add("a", new long[] {1}, 1, floats(1)).add("a", new long[] {1}, 1, floats(1)),
                "parameter 1", "duplicate parameter name 'a'");
        RawAdapterFiles noParams = adapter();
        noParams.withParameters = false;
        assertMalformed(noParams, "no parameters vector");

        byte[] good = adapter().add("ab", new long[] {1}, 1, floats(1)).build();
        int at = indexOf(good, "ab".getBytes(StandardCharsets.US_ASCII));
        byte[] invalid = good.clone();
        invalid[at] = (byte) 0xC3; // a lead byte followed by 'b' is not UTF-8
        assertMalformed(invalid, "not valid UTF-8");
        byte[] unterminated = good.clone();
        unterminated[at + 2] = 'x';
        assertMalformed(unterminated, "not terminated by a zero byte");
    }

    @Test
    void refusesOtherFormatVersions() {
        for (Integer v : new Integer[] {2, 0, -1, null}) {
            RawAdapterFiles f = adapter().add("a", new long[] {1}, 1, floats(1));
            f.formatVersion = v;
            Peft4jException e = assertThrows(Peft4jException.class, () -> OnnxAdapterFile.fromBytes(f.build(), "v"));
            assertEquals(ErrorCode.UNSUPPORTED, e.code(), e.getMessage());
            assertTrue(e.getMessage().contains("format version " + (v == null ? 0 : v)), e.getMessage());
        }
    }

    // ---------------------------------------------------------------- helpers

    private static void assertMalformed(RawAdapterFiles f, String... fragments) {
        assertMalformed(f.build(), fragments);
    }

    private static void assertMalformed(byte[] bytes, String... fragments) {
        Peft4jException e = assertThrows(Peft4jException.class, () -> OnnxAdapterFile.fromBytes(bytes, "bad.onnx_adapter"));
        assertEquals(ErrorCode.MALFORMED, e.code(), e.getMessage());
        assertTrue(e.getMessage().startsWith("bad.onnx_adapter: "), e.getMessage());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "'" + f + "' missing from: " + e.getMessage());
        }
    }

    private static void assertCode(ErrorCode code, Runnable r, String fragment) {
        Peft4jException e = assertThrows(Peft4jException.class, r::run);
        assertEquals(code, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(fragment), "'" + fragment + "' missing from: " + e.getMessage());
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int k = 0; k < needle.length; k++) {
                if (hay[i + k] != needle[k]) {
                    continue outer;
                }
            }
            return i;
        }
        throw new AssertionError("not found");
    }

    private static byte[] readAll(Path p) {
        try {
            return Files.readAllBytes(p);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }
}
