package io.peft4j.core.safetensors;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SafetensorsRoundTripTest {

    @TempDir
    Path dir;

    /** Every dtype safetensors can hold, as [2,3], a scalar and a zero-element tensor, with random bytes. */
    static Map<String, Tensor> everyDtype(long seed) {
        Random r = new Random(seed);
        Map<String, Tensor> m = new LinkedHashMap<>();
        for (DataType d : DataType.values()) {
            if (d.safetensorsName() == null) {
                continue;
            }
            m.put("matrix." + d.safetensorsName(), randomTensor(r, d, 2, 3));
            m.put("scalar." + d.safetensorsName(), randomTensor(r, d));
            m.put("empty." + d.safetensorsName(), randomTensor(r, d, 3, 0));
        }
        return m;
    }

    static Tensor randomTensor(Random r, DataType d, long... shape) {
        byte[] b = new byte[(int) d.byteSize(Tensor.numel(shape))];
        r.nextBytes(b);
        if (d == DataType.BOOL) {
            for (int i = 0; i < b.length; i++) {
                b[i] &= 1;
            }
        }
        return Tensor.ofBytes(d, shape, b);
    }

    @Test
    void everyDtypeScalarAndEmptyTensorRoundTrips() {
        Map<String, Tensor> tensors = everyDtype(1);
        assertEquals(45, tensors.size(), "15 safetensors dtypes x 3 shapes");
        Map<String, String> meta = Map.of("format", "pt", "note", "héllo \"quoted\" \n ✓");
        Path file = dir.resolve("all.safetensors");
        Safetensors.write(file, tensors, meta);

        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals(meta, f.metadata());
            assertEquals(tensors.keySet(), new HashSet<>(f.names()));
            for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
                Tensor read = f.tensor(e.getKey());
                assertTrue(e.getValue().contentEquals(read), e.getKey());
                assertTrue(read.bytes().isDirect(), "open() returns views over the mapping");
                SafetensorsFile.Entry entry = f.entry(e.getKey());
                assertEquals(e.getValue().dtype(), entry.dtype());
                assertArrayEquals(e.getValue().shape(), entry.shape());
                assertEquals(e.getValue().byteSize(), entry.byteSize());
            }
        }
        Map<String, Tensor> all = SafetensorsFile.readAll(file);
        assertEquals(tensors.keySet(), all.keySet());
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            assertTrue(e.getValue().contentEquals(all.get(e.getKey())), e.getKey());
            assertFalse(all.get(e.getKey()).bytes().isDirect(), "readAll() copies onto the heap");
        }
        try (SafetensorsFile p = SafetensorsFile.parse(ByteBuffer.wrap(Safetensors.toBytes(tensors, meta)))) {
            for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
                assertTrue(e.getValue().contentEquals(p.tensor(e.getKey())), e.getKey());
            }
        }
    }

    @Test
    void readerAndReadAllAgreeAndNamesFollowTheData() {
        Path file = dir.resolve("x.safetensors");
        Safetensors.write(file, everyDtype(2), null);
        Map<String, Tensor> all = SafetensorsFile.readAll(file);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals(List.copyOf(all.keySet()), f.names());
            assertEquals(Map.of(), f.metadata());
            long previousEnd = 0;
            for (SafetensorsFile.Entry e : f.entries()) {
                assertEquals(previousEnd, e.begin(), "names() is in data order");
                previousEnd = e.end();
                assertTrue(all.get(e.name()).contentEquals(f.tensor(e.name())));
            }
        }
    }

    @Test
    void valuesSurviveTheTrip() {
        Map<String, Tensor> m = new LinkedHashMap<>();
        m.put("f", Tensor.ofFloats(new long[] {2, 2}, 1.5f, -2f, Float.NaN, Float.MIN_VALUE));
        m.put("l", Tensor.ofLongs(new long[] {2}, Long.MIN_VALUE, Long.MAX_VALUE));
        m.put("h", Tensor.ofFp16Bits(new long[] {3}, (short) 0x3C00, (short) 0xFC00, (short) 0x7E00));
        m.put("b", Tensor.ofBf16Bits(new long[] {1}, (short) 0x4049));
        m.put("z", Tensor.ofBools(new long[] {3}, true, false, true));
        m.put("s", Tensor.scalar(7L));
        Map<String, Tensor> back = readBack(m);
        assertArrayEquals(new float[] {1.5f, -2f, Float.NaN, Float.MIN_VALUE}, back.get("f").toFloatArray());
        assertArrayEquals(new long[] {Long.MIN_VALUE, Long.MAX_VALUE}, back.get("l").toLongArray());
        assertEquals((short) 0x7E00, back.get("h").fp16Bits().get(2));
        assertEquals(3.140625f, back.get("b").getFloat(0));
        assertEquals(1, back.get("z").getLong(2));
        assertEquals(0, back.get("s").rank());
        assertEquals(7L, back.get("s").getLong(0));
    }

    private static Map<String, Tensor> readBack(Map<String, Tensor> m) {
        Map<String, Tensor> out = new HashMap<>();
        try (SafetensorsFile f = SafetensorsFile.parse(ByteBuffer.wrap(Safetensors.toBytes(m)))) {
            for (String n : f.names()) {
                out.put(n, SafetensorsFile.copyToHeap(f.tensor(n)));
            }
        }
        return out;
    }

    @Test
    void parseReadsFromThePositionOfAnyBuffer() {
        byte[] bytes = Safetensors.toBytes(Map.of("w", Tensor.ofFloats(new long[] {3}, 1, 2, 3)));
        ByteBuffer direct = ByteBuffer.allocateDirect(bytes.length + 5);
        direct.position(5);
        direct.put(bytes);
        direct.position(5);
        try (SafetensorsFile f = SafetensorsFile.parse(direct)) {
            assertArrayEquals(new float[] {1, 2, 3}, f.tensor("w").toFloatArray());
        }
        assertEquals(5, direct.position(), "the caller's position is left alone");
    }

    @Test
    void emptyFileHasNoTensors() {
        byte[] bytes = Safetensors.toBytes(Map.of());
        assertEquals("{}      ", new String(bytes, 8, bytes.length - 8, StandardCharsets.UTF_8));
        assertEquals(8, ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong());
        try (SafetensorsFile f = SafetensorsFile.parse(ByteBuffer.wrap(bytes))) {
            assertEquals(List.of(), f.names());
        }
    }

    @Test
    void outputIsDeterministicAndAligned() throws IOException {
        Map<String, Tensor> tensors = everyDtype(3);
        List<String> keys = new ArrayList<>(tensors.keySet());
        Collections.shuffle(keys, new Random(4));
        Map<String, Tensor> shuffled = new LinkedHashMap<>();
        for (String k : keys) {
            shuffled.put(k, tensors.get(k));
        }
        Map<String, String> meta1 = new LinkedHashMap<>();
        meta1.put("b", "2");
        meta1.put("a", "1");
        Map<String, String> meta2 = new HashMap<>(Map.of("a", "1", "b", "2"));

        Path one = dir.resolve("one.safetensors");
        Path two = dir.resolve("two.safetensors");
        Safetensors.write(one, tensors, meta1);
        Safetensors.write(two, shuffled, meta2);
        assertEquals(-1, Files.mismatch(one, two), "same content, same bytes");
        assertArrayEquals(Files.readAllBytes(one), Safetensors.toBytes(shuffled, meta1));

        byte[] bytes = Files.readAllBytes(one);
        long headerLength = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, (8 + headerLength) % 8, "data section starts at a multiple of 8");
        try (SafetensorsFile f = SafetensorsFile.open(one)) {
            for (SafetensorsFile.Entry e : f.entries()) {
                assertEquals(0, (8 + headerLength + e.begin()) % e.dtype().elementSize(),
                        e.name() + " is aligned to its element size");
            }
        }
    }

    @Test
    void atomicWriteLeavesOnlyTheTarget() throws IOException {
        Path file = dir.resolve("model.safetensors");
        Safetensors.write(file, Map.of("a", Tensor.scalar(1f)));
        Safetensors.write(file, Map.of("b", Tensor.scalar(2f)));
        assertEquals(List.of(file), listDir());
        assertEquals(List.of("b"), List.copyOf(SafetensorsFile.readAll(file).keySet()));
    }

    @Test
    void failedMoveLeavesTheTargetAndNoTemporaryFile() throws IOException {
        // a non-empty directory where the file should go: the temporary file is written, the move fails
        Path target = dir.resolve("taken.safetensors");
        Files.createDirectory(target);
        Files.writeString(target.resolve("keep.txt"), "old");
        Peft4jException e = assertThrows(Peft4jException.class,
                () -> Safetensors.write(target, Map.of("a", Tensor.scalar(1f))));
        assertEquals(ErrorCode.IO, e.code());
        assertTrue(e.getMessage().contains("taken.safetensors"), e.getMessage());
        assertEquals("old", Files.readString(target.resolve("keep.txt")));
        assertEquals(List.of(target), listDir());
    }

    @Test
    void missingDirectoryIsAnIoError() {
        Peft4jException e = assertThrows(Peft4jException.class,
                () -> Safetensors.write(dir.resolve("no/such/dir/x.safetensors"), Map.of()));
        assertEquals(ErrorCode.IO, e.code());
    }

    @Test
    void writerRefusesWhatSafetensorsCannotHold() {
        Tensor ok = Tensor.scalar(1f);
        assertRefused(ErrorCode.UNSUPPORTED, "STRING",
                Map.of("s", Tensor.ofStrings(new long[] {1}, List.of(new byte[] {1}))));
        assertRefused(ErrorCode.UNSUPPORTED, "INT4", Map.of("q", Tensor.zeros(DataType.INT4, 4)));
        assertRefused(ErrorCode.UNSUPPORTED, "COMPLEX64", Map.of("c", Tensor.zeros(DataType.COMPLEX64, 1)));
        assertRefused(ErrorCode.INVALID_ARGUMENT, "empty", Map.of("", ok));
        assertRefused(ErrorCode.INVALID_ARGUMENT, "reserved", Map.of("__metadata__", ok));
        assertRefused(ErrorCode.INVALID_ARGUMENT, "surrogate", Map.of("a\uD800b", ok));
        Map<String, Tensor> withNull = new HashMap<>();
        withNull.put("n", null);
        assertRefused(ErrorCode.INVALID_ARGUMENT, "is null", withNull);
        Map<String, String> badMeta = new HashMap<>();
        badMeta.put("k", null);
        Peft4jException e = assertThrows(Peft4jException.class, () -> Safetensors.toBytes(Map.of("a", ok), badMeta));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
        // nothing is written for refused input
        Path file = dir.resolve("never.safetensors");
        assertThrows(Peft4jException.class, () -> Safetensors.write(file, Map.of("", ok)));
        assertFalse(Files.exists(file));
    }

    private static void assertRefused(ErrorCode code, String fragment, Map<String, Tensor> tensors) {
        Peft4jException e = assertThrows(Peft4jException.class, () -> Safetensors.toBytes(tensors));
        assertEquals(code, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
    }

    @Test
    void closeIsIdempotentAndTensorsOutliveIt() {
        Path file = dir.resolve("c.safetensors");
        Safetensors.write(file, Map.of("a", Tensor.ofFloats(new long[] {2}, 1f, 2f)));
        SafetensorsFile f = SafetensorsFile.open(file);
        Tensor a = f.tensor("a");
        f.close();
        f.close();
        Peft4jException e = assertThrows(Peft4jException.class, () -> f.tensor("a"));
        assertEquals(ErrorCode.IO, e.code());
        assertTrue(e.getMessage().contains("closed") && e.getMessage().contains("c.safetensors"), e.getMessage());
        assertThrows(Peft4jException.class, f::names);
        assertThrows(Peft4jException.class, f::metadata);
        assertArrayEquals(new float[] {1f, 2f}, a.toFloatArray());
    }

    @Test
    void unknownNameIsNotFound() {
        try (SafetensorsFile f = SafetensorsFile.parse(ByteBuffer.wrap(Safetensors.toBytes(Map.of("a", Tensor.scalar(1f)))))) {
            Peft4jException e = assertThrows(Peft4jException.class, () -> f.tensor("b"));
            assertEquals(ErrorCode.NOT_FOUND, e.code());
            assertTrue(e.getMessage().contains("'b'"), e.getMessage());
            assertFalse(f.contains("b"));
            assertTrue(f.contains("a"));
        }
    }

    @Test
    void missingFileIsAnIoError() {
        Peft4jException e = assertThrows(Peft4jException.class,
                () -> SafetensorsFile.open(dir.resolve("absent.safetensors")));
        assertEquals(ErrorCode.IO, e.code());
        assertTrue(e.getMessage().contains("absent.safetensors"), e.getMessage());
    }

    @Test
    void fileOver2GiBIsMappedPerTensorAndRefusesATensorOver2GiB() throws IOException {
        long big = (1L << 31) + 8; // one U8 tensor just over 2 GiB, then a small F32 tensor
        String json = "{\"big\":{\"dtype\":\"U8\",\"shape\":[" + big + "],\"data_offsets\":[0," + big + "]},"
                + "\"small\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" + big + "," + (big + 8) + "]}}";
        byte[] header = json.getBytes(StandardCharsets.UTF_8);
        Path file = dir.resolve("big.safetensors");
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length);
            raf.write(len.array());
            raf.write(header);
            long dataStart = 8 + header.length;
            raf.setLength(dataStart + big); // sparse: no disk space used for the big tensor
            raf.seek(dataStart + big);
            ByteBuffer small = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putFloat(1.5f).putFloat(-3f);
            raf.write(small.array());
        }
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals(List.of("big", "small"), f.names());
            assertArrayEquals(new float[] {1.5f, -3f}, f.tensor("small").toFloatArray());
            assertEquals(big, f.entry("big").byteSize());
            Peft4jException e = assertThrows(Peft4jException.class, () -> f.tensor("big"));
            assertEquals(ErrorCode.UNSUPPORTED, e.code());
            assertTrue(e.getMessage().contains("'big'") && e.getMessage().contains("2 GiB"), e.getMessage());
        } finally {
            Files.delete(file);
        }
    }

    private List<Path> listDir() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.sorted().toList();
        }
    }
}
