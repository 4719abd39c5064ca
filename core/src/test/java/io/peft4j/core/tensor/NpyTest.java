package io.peft4j.core.tensor;

import io.peft4j.core.Peft4jException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class NpyTest {

    @TempDir
    Path dir;

    @Test
    void readsWhatNumpyWrote() throws Exception {
        // labels.npy of the PyTorch reference: np.save of int64 [1, 4]
        Path p = Path.of(NpyTest.class.getResource("/reference/resnet18-lora/labels.npy").toURI());
        Tensor t = Npy.read(p);
        assertEquals(DataType.INT64, t.dtype());
        assertArrayEquals(new long[] {1, 4}, t.toLongArray());
        Tensor x = Npy.read(p.resolveSibling("x.npy"));
        assertArrayEquals(new long[] {2, 3, 64, 64}, x.shape());
        // numpy writes exactly what we write for the same array
        assertArrayEquals(Files.readAllBytes(p), Npy.toBytes(t));
        assertArrayEquals(Files.readAllBytes(p.resolveSibling("x.npy")), Npy.toBytes(x));
    }

    @Test
    void roundTripsEveryType() {
        for (Tensor t : new Tensor[] {Tensor.ofFloats(new long[] {2, 2}, 1, 2, 3, 4), Tensor.scalar(3L),
                Tensor.ofBools(new long[] {3}, true, false, true), Tensor.ofInt8(new long[] {1}, (byte) -3),
                Tensor.ofDoubles(new long[] {0, 5}), Tensor.ofInts(new long[] {1, 1, 1}, 7)}) {
            Tensor back = Npy.parse(Npy.toBytes(t), "t");
            assertTrue(t.contentEquals(back), t.toString());
            assertEquals(0, (Npy.toBytes(t).length - t.byteSize()) % 64, "header padded to 64 bytes");
        }
    }

    @Test
    void malformedFilesAreRefused() throws Exception {
        byte[] good = Npy.toBytes(Tensor.ofFloats(new long[] {2, 3}, 1, 2, 3, 4, 5, 6));
        assertMalformed(Arrays.copyOf(good, 5), "only 5 bytes");
        assertMalformed("not numpy at all".getBytes(), "magic");
        assertMalformed(Arrays.copyOf(good, good.length - 4), "needs 24 bytes");
        byte[] longer = Arrays.copyOf(good, good.length + 4);
        assertMalformed(longer, "needs 24 bytes");
        byte[] hugeHeader = good.clone();
        hugeHeader[8] = (byte) 0xff;
        hugeHeader[9] = (byte) 0xff;
        assertMalformed(hugeHeader, "runs past the end");
        String h = new String(good, java.nio.charset.StandardCharsets.ISO_8859_1);
        assertMalformed(h.replace("(2, 3)", "(2, x)").getBytes(java.nio.charset.StandardCharsets.ISO_8859_1), "not a tuple");
        assertMalformed(h.replace("(2, 3)", "(-2, 3)").getBytes(java.nio.charset.StandardCharsets.ISO_8859_1), "negative");
        Peft4jException e = assertThrows(Peft4jException.class, () -> Npy.parse(
                h.replace("'<f4'", "'<c8'").getBytes(java.nio.charset.StandardCharsets.ISO_8859_1), "c"));
        assertEquals(Peft4jException.ErrorCode.UNSUPPORTED, e.code());
        e = assertThrows(Peft4jException.class, () -> Npy.parse(
                h.replace("False", "True ").getBytes(java.nio.charset.StandardCharsets.ISO_8859_1), "f"));
        assertTrue(e.getMessage().contains("Fortran"), e.getMessage());
        e = assertThrows(Peft4jException.class, () -> Npy.read(dir.resolve("missing.npy")));
        assertEquals(Peft4jException.ErrorCode.IO, e.code());
    }

    private static void assertMalformed(byte[] bytes, String part) {
        Peft4jException e = assertThrows(Peft4jException.class, () -> Npy.parse(bytes, "in.npy"));
        assertEquals(Peft4jException.ErrorCode.MALFORMED, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(part) && e.getMessage().contains("in.npy"), e.getMessage());
    }
}
