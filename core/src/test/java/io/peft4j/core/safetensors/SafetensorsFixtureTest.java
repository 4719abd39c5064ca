package io.peft4j.core.safetensors;

import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Reads {@code safetensors/fixture.safetensors}, written by {@code make_fixture.py} (Python standard
 * library only, reproducing the Hugging Face library's layout), and checks every value.
 */
class SafetensorsFixtureTest {

    private static Path fixture() throws URISyntaxException {
        return Path.of(SafetensorsFixtureTest.class.getResource("/safetensors/fixture.safetensors").toURI());
    }

    @Test
    void readsTheFixtureWrittenOutsideJava() throws Exception {
        try (SafetensorsFile f = SafetensorsFile.open(fixture())) {
            assertEquals(Map.of("format", "pt"), f.metadata());
            // data order: I64, F64, F32 (a, f), BF16, F16, BOOL
            assertEquals(List.of("b.index", "e.scalar", "a.weight", "f.empty", "d.bf16", "c.half", "g.attn_mask"),
                    f.names());

            Tensor a = f.tensor("a.weight");
            assertEquals(DataType.FLOAT, a.dtype());
            assertArrayEquals(new long[] {2, 3}, a.shape());
            assertArrayEquals(new float[] {0, 1, 2, 3, 4, 5}, a.toFloatArray());

            Tensor b = f.tensor("b.index");
            assertEquals(DataType.INT64, b.dtype());
            assertArrayEquals(new long[] {-1, 1L << 62, Long.MIN_VALUE}, b.toLongArray());

            Tensor c = f.tensor("c.half");
            assertEquals(DataType.FLOAT16, c.dtype());
            assertArrayEquals(new long[] {2, 3}, c.shape());
            short[] bits = new short[6];
            c.fp16Bits().get(bits);
            assertArrayEquals(new short[] {0x3C00, (short) 0xC000, 0x3800, 0x7C00, 0x7BFF, 0x0001}, bits);
            float[] halves = c.toFloatArray();
            assertArrayEquals(new float[] {1f, -2f, 0.5f, Float.POSITIVE_INFINITY, 65504f, 0x1p-24f}, halves);

            Tensor d = f.tensor("d.bf16");
            assertEquals(DataType.BFLOAT16, d.dtype());
            float[] bf = d.toFloatArray();
            assertEquals(1f, bf[0]);
            assertEquals(-1.5f, bf[1]);
            assertEquals(3.140625f, bf[2]);
            assertTrue(Float.isNaN(bf[3]));

            Tensor e = f.tensor("e.scalar");
            assertEquals(DataType.DOUBLE, e.dtype());
            assertEquals(0, e.rank());
            assertEquals(2.5, e.getDouble(0));

            Tensor empty = f.tensor("f.empty");
            assertArrayEquals(new long[] {0, 4}, empty.shape());
            assertEquals(0, empty.byteSize());

            Tensor mask = f.tensor("g.attn_mask");
            assertEquals(DataType.BOOL, mask.dtype());
            assertArrayEquals(new long[] {1, 0, 1}, mask.toLongArray());
        }
    }

    @Test
    void javaWriterProducesTheFixtureBytes() throws Exception {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        try (SafetensorsFile f = SafetensorsFile.open(fixture())) {
            // insertion order differs from the file's, so the writer's own ordering is what is tested
            List<String> names = new ArrayList<>(f.names());
            Collections.reverse(names);
            for (String name : names) {
                tensors.put(name, SafetensorsFile.copyToHeap(f.tensor(name)));
            }
        }
        byte[] expected = Files.readAllBytes(fixture());
        assertArrayEquals(expected, Safetensors.toBytes(tensors, Map.of("format", "pt")));
    }

    @Test
    void fixtureParsesFromMemoryToo() throws IOException {
        byte[] bytes;
        try (InputStream in = SafetensorsFixtureTest.class.getResourceAsStream("/safetensors/fixture.safetensors")) {
            bytes = in.readAllBytes();
        }
        try (SafetensorsFile f = SafetensorsFile.parse(ByteBuffer.wrap(bytes), "fixture upload")) {
            assertEquals(7, f.names().size());
            assertEquals(3.0f, f.tensor("a.weight").getFloat(3));
        }
    }
}
