package io.peft4j.devices.ort;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoraAdapter;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.testkit.MutationFuzz;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Ort;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Mutates valid {@code .onnx_adapter} files and reads each result from memory. Every outcome must
 * be a {@link Peft4jException} (MALFORMED, or UNSUPPORTED for another format version), or a file
 * whose tensors all have the bytes their dims and type need, that the writer reproduces, and that
 * ONNX Runtime's own loader ({@code OrtLoraAdapter}) accepts too. Anything else fails with the
 * seed, the iteration and the input saved under {@code target/onnx-adapter-fuzz/}.
 *
 * <p>Runs for {@code -Dpeft4j.adapterfuzz.seconds} (default 3) or {@link #MAX_ITERATIONS}. The
 * seed is printed; {@code -Dpeft4j.adapterfuzz.seed=S} repeats a run and
 * {@code -Dpeft4j.adapterfuzz.iteration=I} with it replays one iteration.
 */
class OnnxAdapterFileFuzzTest {

    static final long MAX_ITERATIONS = 5_000_000L;

    /** Values written over 32-bit words: offsets, lengths, soffsets, type codes, versions. */
    private static final int[] WORDS = {
        0, 1, 2, 3, 4, 7, 8, 12, 16, 20, 21, 64, 255, 256, 0x7fff, 0xffff, 0x10000, -1, -2, -4, -8, -12,
        -16, -64, Integer.MAX_VALUE, Integer.MIN_VALUE, 0x7ffffffc, 0x3fffffff,
    };

    /** Values written over 16-bit vtable entries. */
    private static final int[] SHORTS = {0, 1, 2, 3, 4, 6, 8, 10, 12, 14, 16, 20, 24, 0x7fff, 0xfffe, 0xffff};

    @Test
    void mutatedFilesAreReadOrRejectedCleanly() {
        MutationFuzz.run("onnx_adapter", "peft4j.adapterfuzz", 3, MAX_ITERATIONS, seeds(), OnnxAdapterFileFuzzTest::mutate, OnnxAdapterFileFuzzTest::check);
    }

    /**
     * Reads from memory; only the read may throw a {@link Peft4jException}. An accepted file must
     * be consistent, round-trip through the writer, and load in ONNX Runtime.
     */
    private static void check(byte[] input) {
        OnnxAdapterFile f = OnnxAdapterFile.fromBytes(input, "fuzz input");
        try {
            for (Map.Entry<String, Tensor> e : f.parameters().entrySet()) {
                Tensor t = e.getValue();
                assertTrue(!e.getKey().isEmpty() && t.rank() > 0, e.getKey());
                assertEquals(t.dtype().byteSize(t.numel()), t.bytes().remaining(), e.getKey());
            }
            byte[] again = OnnxAdapterFile.toBytes(f.parameters(), f.adapterVersion(), f.modelVersion());
            OnnxAdapterFile g = OnnxAdapterFile.fromBytes(again, "rewritten");
            assertEquals(f.adapterVersion(), g.adapterVersion());
            assertEquals(f.modelVersion(), g.modelVersion());
            assertEquals(List.copyOf(f.parameters().keySet()), List.copyOf(g.parameters().keySet()));
            for (Map.Entry<String, Tensor> e : f.parameters().entrySet()) {
                assertTrue(e.getValue().contentEquals(g.parameters().get(e.getKey())), e.getKey());
            }
        } catch (Peft4jException e) {
            throw new AssertionError("an accepted file failed after reading: " + e, e);
        }
        Ort.env(); // loads the native library
        try {
            OrtLoraAdapter.create(input).close(); // accepted by both
        } catch (OrtException e) {
            throw new AssertionError("we accept a file that ONNX Runtime refuses: " + e.getMessage(), e);
        }
    }

    private static List<byte[]> seeds() {
        Random r = new Random(3);
        List<byte[]> out = new ArrayList<>();
        Map<String, Tensor> lora = new LinkedHashMap<>();
        lora.put("lora_A", random(r, DataType.FLOAT, 8, 2));
        lora.put("lora_B", random(r, DataType.FLOAT, 2, 4));
        out.add(OnnxAdapterFile.toBytes(lora, 1, 1));

        Map<String, Tensor> mixed = new LinkedHashMap<>();
        mixed.put("/layer1/conv.lora_A", random(r, DataType.FLOAT16, 2, 3, 3, 3));
        mixed.put("b", random(r, DataType.INT8, 5));
        mixed.put("zero_a", Tensor.zeros(DataType.FLOAT, 8, 0));
        mixed.put("zero_b", Tensor.zeros(DataType.FLOAT, 0, 4));
        mixed.put("d", random(r, DataType.DOUBLE, 1, 2));
        mixed.put("idx", random(r, DataType.INT64, 3));
        out.add(OnnxAdapterFile.toBytes(mixed, 0, 12));

        out.add(OnnxAdapterFile.toBytes(Map.of("one", random(r, DataType.BFLOAT16, 1)), -5, Integer.MAX_VALUE));
        out.add(OnnxAdapterFile.toBytes(Map.of(), 3, 4));
        // another builder's layout: every field explicit, versions written even when 0
        out.add(RawAdapterFiles.adapter().add("x", new long[] {2, 2}, 1, new byte[16])
                .add("y", new long[] {3}, 6, new byte[12]).build());
        return out;
    }

    private static Tensor random(Random r, DataType dt, long... shape) {
        byte[] b = new byte[(int) dt.byteSize(Tensor.numel(shape))];
        r.nextBytes(b);
        return Tensor.ofBytes(dt, shape, b);
    }

    private static byte[] mutate(Random r, byte[] in) {
        if (in.length == 0) {
            return new byte[] {(byte) r.nextInt(256)};
        }
        switch (r.nextInt(10)) {
            case 0: { // flip or replace a few bytes, often in the first 64 (header, root table)
                byte[] b = in.clone();
                int n = 1 + r.nextInt(4);
                int span = r.nextBoolean() ? Math.min(b.length, 64) : b.length;
                for (int k = 0; k < n; k++) {
                    int pos = r.nextInt(span);
                    b[pos] = r.nextBoolean() ? (byte) r.nextInt(256) : (byte) (b[pos] ^ (1 << r.nextInt(8)));
                }
                return b;
            }
            case 1: // truncate
                return Arrays.copyOf(in, r.nextInt(in.length));
            case 2: { // extend with zeros or random bytes
                byte[] b = Arrays.copyOf(in, in.length + 1 + r.nextInt(64));
                boolean zeros = r.nextBoolean();
                for (int k = in.length; k < b.length; k++) {
                    b[k] = zeros ? 0 : (byte) r.nextInt(256);
                }
                return b;
            }
            case 3, 4: { // overwrite an aligned 32-bit word: offsets, lengths, soffsets, codes
                if (in.length < 4) {
                    return in;
                }
                byte[] b = in.clone();
                int pos = 4 * r.nextInt(in.length / 4);
                int v = r.nextInt(3) == 0 ? b.length - pos + (r.nextInt(9) - 4) * 4 : WORDS[r.nextInt(WORDS.length)];
                ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(pos, v);
                return b;
            }
            case 5: { // add a small delta to an aligned 32-bit word
                if (in.length < 4) {
                    return in;
                }
                byte[] b = in.clone();
                ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
                int pos = 4 * r.nextInt(in.length / 4);
                bb.putInt(pos, bb.getInt(pos) + r.nextInt(33) - 16);
                return b;
            }
            case 6: { // overwrite a 16-bit word (vtable entries)
                if (in.length < 2) {
                    return in;
                }
                byte[] b = in.clone();
                int pos = 2 * r.nextInt(in.length / 2);
                ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putShort(pos, (short) SHORTS[r.nextInt(SHORTS.length)]);
                return b;
            }
            case 7: { // delete a range
                int from = r.nextInt(in.length);
                int len = 1 + r.nextInt(Math.min(16, in.length - from));
                byte[] b = new byte[in.length - len];
                System.arraycopy(in, 0, b, 0, from);
                System.arraycopy(in, from + len, b, from, in.length - from - len);
                return b;
            }
            case 8: { // insert bytes (a multiple of 4 keeps alignment, often)
                int at = r.nextInt(in.length + 1);
                int len = r.nextBoolean() ? 4 * (1 + r.nextInt(4)) : 1 + r.nextInt(7);
                byte[] b = new byte[in.length + len];
                System.arraycopy(in, 0, b, 0, at);
                System.arraycopy(in, at, b, at + len, in.length - at);
                return b;
            }
            default: { // copy a chunk over another place
                int len = 1 + r.nextInt(Math.min(32, in.length));
                int from = r.nextInt(in.length - len + 1);
                int to = r.nextInt(in.length - len + 1);
                byte[] b = in.clone();
                System.arraycopy(in, from, b, to, len);
                return b;
            }
        }
    }

}
