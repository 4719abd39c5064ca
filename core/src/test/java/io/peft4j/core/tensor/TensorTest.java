package io.peft4j.core.tensor;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.testkit.Ort;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TensorTest {

    /** A model casting a float input to {@code to}: ONNX Runtime is the oracle for our conversions. */
    private static Tensor ortCast(Tensor in, DataType to) {
        Model m = new Model("cast", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", in.dtype(), in.numel()));
        g.build("Cast").in("x").attr("to", (long) to.onnxCode()).outputs("y").add();
        g.addOutput(ValueInfos.tensor("y", to, in.numel()));
        return Ort.run(m, Map.of("x", in)).get("y");
    }

    private static float[] interestingFloats() {
        Random r = new Random(2024);
        float[] v = new float[20000];
        int i = 0;
        for (float f : new float[] {0f, -0f, 1f, -1f, 65504f, 65519f, 65520f, 1e-8f, 5.96e-8f, 2.98e-8f, 2.99e-8f,
                6.1e-5f, 6.0e-5f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 3.0e38f, 1.0009765625f,
                1.00048828125f, 1.000732421875f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f}) {
            v[i++] = f;
        }
        while (i < v.length / 2) {
            v[i++] = (float) (r.nextGaussian() * Math.pow(10, r.nextInt(12) - 6));
        }
        while (i < v.length) {
            v[i++] = Float.intBitsToFloat(r.nextInt()); // every exponent, NaNs included
        }
        return v;
    }

    @Test
    void fp16AndBf16ConversionsMatchOnnxRuntime() {
        float[] v = interestingFloats();
        Tensor f = Tensor.ofFloats(new long[] {v.length}, v);
        for (DataType half : new DataType[] {DataType.FLOAT16, DataType.BFLOAT16}) {
            Tensor ours = f.to(half);
            Tensor theirs = ortCast(f, half);
            int mismatches = 0;
            for (int i = 0; i < v.length; i++) {
                short a = ours.bytes().getShort(2 * i);
                short b = theirs.bytes().getShort(2 * i);
                boolean bothNaN = Float.isNaN(ours.getFloat(i)) && Float.isNaN(theirs.getFloat(i));
                if (a != b && !bothNaN) {
                    mismatches++;
                }
            }
            assertEquals(0, mismatches, half + " bit patterns differ from ONNX Runtime's Cast");
            // and back to float: every half value converts exactly
            Tensor back = ours.to(DataType.FLOAT);
            Tensor ortBack = ortCast(ours, DataType.FLOAT);
            for (int i = 0; i < v.length; i++) {
                float a = back.getFloat(i);
                float b = ortBack.getFloat(i);
                assertTrue(a == b || (Float.isNaN(a) && Float.isNaN(b)) || (a == 0 && b == 0),
                        half + " -> float at " + i + ": " + a + " vs " + b);
            }
        }
    }

    @Test
    void everyFp16BitPatternRoundTrips() {
        for (int bits = 0; bits < 0x10000; bits++) {
            float f = Half.fp16ToFloat((short) bits);
            if (Float.isNaN(f)) {
                assertTrue(Float.isNaN(Half.fp16ToFloat(Half.floatToFp16(f))));
                continue;
            }
            assertEquals((short) bits, Half.floatToFp16(f), "pattern 0x" + Integer.toHexString(bits));
        }
        assertEquals(1.0f, Half.fp16ToFloat((short) 0x3c00));
        assertEquals(65504f, Half.fp16ToFloat((short) 0x7bff));
        assertEquals(0x1p-24f, Half.fp16ToFloat((short) 0x0001));
    }

    @Test
    void integerAndBoolConversionsFollowCasts() {
        Tensor f = Tensor.ofFloats(new long[] {5}, -2.7f, -0.5f, 0f, 1.9f, 300.2f);
        assertArrayEquals(new long[] {-2, 0, 0, 1, 300}, f.to(DataType.INT64).toLongArray());
        assertArrayEquals(new long[] {-2, 0, 0, 1, 44}, f.to(DataType.INT8).toLongArray(), "wraps like a C cast");
        assertArrayEquals(new long[] {1, 1, 0, 1, 1}, f.to(DataType.BOOL).toLongArray());
        Tensor i = Tensor.ofLongs(new long[] {3}, -1, 7, 1L << 40);
        assertArrayEquals(new float[] {-1f, 7f, (float) (1L << 40)}, i.to(DataType.FLOAT).toFloatArray());
        assertArrayEquals(new int[] {-1, 7, 0}, i.to(DataType.INT32).toIntArray());
        Tensor b = Tensor.ofBools(new long[] {2}, true, false);
        assertArrayEquals(new double[] {1, 0}, b.to(DataType.DOUBLE).toDoubleArray());
        Tensor u8 = Tensor.wrap(DataType.UINT8, new long[] {2}, java.nio.ByteBuffer.wrap(new byte[] {(byte) 200, 3}));
        assertArrayEquals(new float[] {200f, 3f}, u8.to(DataType.FLOAT).toFloatArray());
        Tensor i8 = Tensor.ofInt8(new long[] {2}, (byte) -100, (byte) 100);
        assertArrayEquals(new float[] {-100f, 100f}, i8.to(DataType.FLOAT16).toFloatArray());
    }

    @Test
    void viewsShareDataAndCheckTheirType() {
        Tensor t = Tensor.ofFloats(new long[] {2, 3}, 1, 2, 3, 4, 5, 6);
        assertEquals(6f, t.floatBuffer().get(5));
        Tensor r = t.reshape(3, 2);
        assertEquals(6f, r.getFloat(5));
        assertArrayEquals(new long[] {3, 2}, r.shape());
        Peft4jException e = assertThrows(Peft4jException.class, t::longBuffer);
        assertTrue(e.getMessage().contains("FLOAT, not INT64"), e.getMessage());
        assertThrows(Peft4jException.class, () -> t.reshape(4, 2));
        assertThrows(Peft4jException.class, () -> Tensor.wrap(DataType.FLOAT, new long[] {3}, java.nio.ByteBuffer.allocate(8)));
        assertThrows(Peft4jException.class, () -> Tensor.zeros(DataType.FLOAT, -1));
        assertThrows(Peft4jException.class, () -> Tensor.zeros(DataType.FLOAT, Long.MAX_VALUE, 4));
        assertTrue(Tensor.zeros(DataType.FLOAT16, 3).contentEquals(Tensor.ofFp16Bits(new long[] {3}, (short) 0, (short) 0, (short) 0)));
        assertEquals(2, DataType.INT4.byteSize(3), "two 4-bit values per byte");
    }
}
