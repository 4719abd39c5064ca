package io.peft4j.devices;

import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RowsTest {

    @Test
    void gatherThenScatterRestoresTheBatch() {
        float[] v = new float[5 * 3];
        for (int i = 0; i < v.length; i++) {
            v[i] = i;
        }
        Tensor t = Tensor.ofFloats(new long[] {5, 3}, v);
        int[] even = {0, 2, 4};
        int[] odd = {3, 1};
        Tensor e = Rows.gather(t, even);
        Tensor o = Rows.gather(t, odd);
        assertArrayEquals(new float[] {0, 1, 2, 6, 7, 8, 12, 13, 14}, e.toFloatArray());
        assertArrayEquals(new float[] {9, 10, 11, 3, 4, 5}, o.toFloatArray());
        Tensor back = Rows.scatter(List.of(e, o), List.of(even, odd), 5, "t");
        assertTrue(back.contentEquals(t));
        Tensor joined = Rows.concat(List.of(e, o), "t");
        assertArrayEquals(new long[] {5, 3}, joined.shape());
        assertEquals(9f, joined.getFloat(9));
    }

    @Test
    void stringsAndLongsToo() {
        Tensor s = Tensor.ofStrings(new long[] {3}, List.of(b("x"), b("yy"), b("zzz")));
        Tensor g = Rows.gather(s, new int[] {2, 0});
        assertEquals("zzz", new String(g.strings().get(0), StandardCharsets.UTF_8));
        Tensor back = Rows.scatter(List.of(g, Rows.gather(s, new int[] {1})), List.of(new int[] {2, 0}, new int[] {1}), 3, "s");
        assertEquals("yy", new String(back.strings().get(1), StandardCharsets.UTF_8));
        Tensor l = Tensor.ofLongs(new long[] {2, 2}, 1, 2, 3, 4);
        assertArrayEquals(new long[] {3, 4, 1, 2}, Rows.concat(List.of(Rows.gather(l, new int[] {1}), Rows.gather(l, new int[] {0})), "l").toLongArray());
    }

    @Test
    void mismatchedPartsAndScalarsAreRefused() {
        Tensor a = Tensor.ofFloats(new long[] {1, 2}, 1, 2);
        Tensor b = Tensor.ofFloats(new long[] {1, 3}, 1, 2, 3);
        assertThrows(io.peft4j.core.Peft4jException.class, () -> Rows.concat(List.of(a, b), "out"));
        assertThrows(io.peft4j.core.Peft4jException.class, () -> Rows.gather(Tensor.scalar(1f), new int[] {0}));
    }

    private static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
