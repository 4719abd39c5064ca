package io.peft4j.core.safetensors;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.testkit.MutationFuzz;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Mutates valid safetensors files and parses each result from memory. Every outcome must be either
 * a successful parse whose tensors all read fully (and which the writer reproduces), or a
 * {@link Peft4jException}; anything else fails the test with the seed, the iteration, and the
 * input saved under {@code target/safetensors-fuzz/}.
 *
 * <p>Runs for {@code -Dpeft4j.fuzz.seconds} (default 20) or {@link #MAX_ITERATIONS}, whichever
 * comes first. The seed is printed; {@code -Dpeft4j.fuzz.seed=S} repeats a run, and
 * {@code -Dpeft4j.fuzz.iteration=I} with it replays just iteration {@code I} (each iteration has its
 * own random generator derived from the seed and its number).
 */
class SafetensorsFuzzTest {

    static final long MAX_ITERATIONS = 20_000_000L;

    /** Values spliced in where the header has a number. */
    private static final String[] NUMBERS = {
        "0", "1", "2", "-1", "-0", "00", "01", "1.5", "4.0", "1e3", "1E400", "-1e-400",
        "99999999999999999999", "18446744073709551615", "18446744073709551616", "9223372036854775807",
        "9223372036854775808", "-9223372036854775808", "4294967296", "2147483647", "2147483648",
        "4611686018427387904", "NaN", "Infinity", "0x10", "null", "true", "\"1\"", "[]", "{}", "[0,0]",
        "9".repeat(1500),
    };

    /** Values spliced in where the header has a string. */
    private static final String[] STRINGS = {
        "\"F32\"", "\"F16\"", "\"BF16\"", "\"F64\"", "\"I64\"", "\"U64\"", "\"BOOL\"", "\"U8\"", "\"I8\"",
        "\"F8_E4M3\"", "\"F8_E5M2\"", "\"I16\"", "\"U16\"", "\"I32\"", "\"U32\"", "\"F4\"", "\"C64\"",
        "\"STRING\"", "\"f32\"", "\"\"", "\"__metadata__\"", "\"dtype\"", "\"shape\"", "\"data_offsets\"",
        "\"a\"", "\"\\u0000\"", "\"\\ud800\"", "\"\\udc00x\"", "\"\\ud83d\\ude00\"", "\"\\\"\"", "\"\\x\"",
        "\"\u00ff\u00fe\"", "\"\u00c3\u00a9\"", "\"\u00ed\u00a0\u0080\"", "1", "null", "[]", "{}",
        "\"" + "n".repeat(5000) + "\"",
    };

    /** Fragments spliced in anywhere in the header (Latin-1 chars stand for single bytes). */
    private static final String[] FRAGMENTS = {
        ",", ":", "{", "}", "[", "]", "\"", "\\", " ", "\n", "\u0000", "\u00ff", "\u00c0\u00af", "\u00ed\u00a0\u0080",
        ",\"x\":{}", ",\"x\":1", ",\"__metadata__\":{\"a\":\"b\"}", ",\"__metadata__\":{\"a\":1}",
        "\"__metadata__\":null,", ",\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}",
        ",\"dtype\":\"F32\"", ",\"shape\":[1]", ",\"data_offsets\":[0,4]", ",\"extra\":[]",
        "[".repeat(3000), "{\"a\":".repeat(3000), "]".repeat(50), "1".repeat(2000), "/* c */", "//",
        "\uFEFF", "\u00ef\u00bb\u00bf", "{}", "{}{}",
    };

    private static final Pattern NUMBER = Pattern.compile("-?\\d+");
    private static final Pattern STRING = Pattern.compile("\"[^\"\\\\]*\"");
    private static final Pattern ENTRY = Pattern.compile("\"[^\"\\\\]*\":\\{[^{}]*\\}");
    private static final Pattern DTYPE = Pattern.compile("\"dtype\":\"[^\"]*\"");
    private static final Pattern SHAPE = Pattern.compile("\"shape\":\\[[^\\]]*\\]");
    private static final Pattern OFFSETS = Pattern.compile("\"data_offsets\":\\[[^\\]]*\\]");

    @Test
    void mutatedFilesAreParsedOrRejectedCleanly() throws IOException {
        MutationFuzz.run("safetensors", "peft4j.fuzz", 20, MAX_ITERATIONS, seeds(), SafetensorsFuzzTest::mutate, SafetensorsFuzzTest::check);
    }

    /**
     * Parses from memory. Only the parse may throw a {@link Peft4jException} (a rejection); once a
     * file is accepted, its tensors must all read fully and the writer must reproduce them.
     */
    private static void check(byte[] input) {
        SafetensorsFile f = SafetensorsFile.parse(ByteBuffer.wrap(input), "fuzz input");
        try (f) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            Map<String, String> metadata = f.metadata();
            long covered = 0;
            for (String name : f.names()) {
                SafetensorsFile.Entry e = f.entry(name);
                Tensor t = f.tensor(name);
                ByteBuffer b = t.bytes();
                byte[] copy = new byte[b.remaining()];
                b.get(copy);
                assertEquals(e.byteSize(), copy.length, name);
                assertEquals(e.numel(), t.numel(), name);
                covered += copy.length;
                tensors.put(name, Tensor.wrap(t.dtype(), t.shape(), ByteBuffer.wrap(copy)));
            }
            long headerLength = ByteBuffer.wrap(input).order(ByteOrder.LITTLE_ENDIAN).getLong();
            assertEquals(input.length - 8 - headerLength, covered, "the tensors cover the data section");
            if (tensors.containsKey("")) {
                return; // readable, but the writer refuses empty names by design
            }
            byte[] again = Safetensors.toBytes(tensors, metadata);
            try (SafetensorsFile g = SafetensorsFile.parse(ByteBuffer.wrap(again))) {
                assertEquals(metadata, g.metadata());
                assertEquals(tensors.keySet(), new HashSet<>(g.names()));
                for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
                    assertTrue(e.getValue().contentEquals(g.tensor(e.getKey())), e.getKey());
                }
            }
        } catch (Peft4jException e) {
            throw new AssertionError("an accepted file failed after parsing: " + e, e);
        }
    }

    private static byte[] mutate(Random r, byte[] in) {
        switch (r.nextInt(12)) {
            case 0: { // flip bytes, mostly in the first 8 + header bytes
                byte[] b = in.clone();
                if (b.length == 0) {
                    return b;
                }
                int n = 1 + r.nextInt(4);
                int span = r.nextBoolean() ? (int) Math.min(b.length, 8 + headerLength(in, 64)) : b.length;
                for (int k = 0; k < n; k++) {
                    int pos = r.nextInt(Math.max(1, span));
                    b[pos] = r.nextBoolean() ? (byte) r.nextInt(256) : (byte) (b[pos] ^ (1 << r.nextInt(8)));
                }
                return b;
            }
            case 1: // truncate
                return Arrays.copyOf(in, in.length == 0 ? 0 : r.nextInt(in.length));
            case 2: { // extend with zeros, spaces or random bytes
                byte[] b = Arrays.copyOf(in, in.length + 1 + r.nextInt(64));
                int kind = r.nextInt(3);
                for (int k = in.length; k < b.length; k++) {
                    b[k] = kind == 0 ? 0 : kind == 1 ? (byte) ' ' : (byte) r.nextInt(256);
                }
                return b;
            }
            case 3: { // rewrite the header length
                if (in.length < 8) {
                    return in;
                }
                long hl = headerLength(in, 0);
                long[] choices = {0, 1, 2, 7, 8, hl - 1, hl + 1, hl + 8, in.length - 8, in.length - 7,
                    100_000_000L, 100_000_001L, Long.MAX_VALUE, -1L, 1L << 32, 1L << 63, r.nextLong(),
                    r.nextInt(Math.max(1, in.length))};
                byte[] b = in.clone();
                ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, choices[r.nextInt(choices.length)]);
                return b;
            }
            default:
                return mutateHeader(r, in);
        }
    }

    /** Edits the header as text (one Latin-1 char per byte) and usually fixes up the header length. */
    private static byte[] mutateHeader(Random r, byte[] in) {
        if (in.length < 8) {
            return in;
        }
        long hl = headerLength(in, 0);
        if (hl < 0 || hl > in.length - 8) {
            return in;
        }
        String h = new String(in, 8, (int) hl, StandardCharsets.ISO_8859_1);
        byte[] data = Arrays.copyOfRange(in, 8 + (int) hl, in.length);
        String m = switch (r.nextInt(9)) {
            case 0 -> replaceOne(r, h, NUMBER, pick(r, NUMBERS, String.valueOf(r.nextInt(data.length + 16))));
            case 1 -> replaceOne(r, h, STRING, pick(r, STRINGS, "\"" + r.nextInt(100) + "\""));
            case 2 -> splice(r, h, pick(r, FRAGMENTS, null));
            case 3 -> { // duplicate an entry
                List<String> found = all(h, ENTRY);
                int brace = h.indexOf('{');
                yield found.isEmpty() || brace < 0 ? h
                        : h.substring(0, brace + 1) + found.get(r.nextInt(found.size())) + "," + h.substring(brace + 1);
            }
            case 4 -> replaceOne(r, h, DTYPE, "\"dtype\":" + pick(r, STRINGS, null));
            case 5 -> replaceOne(r, h, SHAPE, "\"shape\":" + randomList(r, data.length, 4));
            case 6 -> replaceOne(r, h, OFFSETS, "\"data_offsets\":" + randomList(r, data.length, 3));
            case 7 -> { // delete a span
                if (h.isEmpty()) {
                    yield h;
                }
                int a = r.nextInt(h.length());
                yield h.substring(0, a) + h.substring(Math.min(h.length(), a + 1 + r.nextInt(16)));
            }
            default -> { // repeat a span
                if (h.isEmpty()) {
                    yield h;
                }
                int a = r.nextInt(h.length());
                int b = Math.min(h.length(), a + 1 + r.nextInt(32));
                yield h.substring(0, b) + h.substring(a, b) + h.substring(b);
            }
        };
        byte[] header = m.getBytes(StandardCharsets.ISO_8859_1);
        long length = r.nextInt(10) == 0 ? hl : header.length; // sometimes leave the old length
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(length).put(header).put(data);
        return b.array();
    }

    private static String randomList(Random r, int dataLength, int maxLength) {
        int n = r.nextInt(maxLength + 1);
        StringBuilder s = new StringBuilder("[");
        for (int k = 0; k < n; k++) {
            if (k > 0) {
                s.append(',');
            }
            s.append(switch (r.nextInt(8)) {
                case 0 -> "0";
                case 1 -> String.valueOf(1 + r.nextInt(4));
                case 2 -> String.valueOf(dataLength);
                case 3 -> String.valueOf(r.nextInt(dataLength + 9));
                case 4 -> String.valueOf(Math.max(0, dataLength - 1 - r.nextInt(8)));
                case 5 -> pick(r, NUMBERS, null);
                case 6 -> String.valueOf(r.nextLong());
                default -> String.valueOf(1L << r.nextInt(63));
            });
        }
        return s.append(']').toString();
    }

    private static String replaceOne(Random r, String h, Pattern p, String replacement) {
        List<int[]> spans = new ArrayList<>();
        Matcher m = p.matcher(h);
        while (m.find()) {
            spans.add(new int[] {m.start(), m.end()});
        }
        if (spans.isEmpty()) {
            return splice(r, h, replacement);
        }
        int[] s = spans.get(r.nextInt(spans.size()));
        return h.substring(0, s[0]) + replacement + h.substring(s[1]);
    }

    private static String splice(Random r, String h, String fragment) {
        int at = r.nextInt(h.length() + 1);
        return h.substring(0, at) + fragment + h.substring(at);
    }

    private static List<String> all(String h, Pattern p) {
        List<String> out = new ArrayList<>();
        Matcher m = p.matcher(h);
        while (m.find()) {
            out.add(m.group());
        }
        return out;
    }

    private static String pick(Random r, String[] options, String extra) {
        if (extra != null && r.nextInt(options.length + 1) == 0) {
            return extra;
        }
        return options[r.nextInt(options.length)];
    }

    /** The header length stored in the first 8 bytes, or {@code fallback} if there are fewer or it is absurd. */
    private static long headerLength(byte[] in, long fallback) {
        if (in.length < 8) {
            return fallback;
        }
        long hl = ByteBuffer.wrap(in).order(ByteOrder.LITTLE_ENDIAN).getLong();
        return hl < 0 || hl > in.length ? fallback : hl;
    }

    private static List<byte[]> seeds() throws IOException {
        List<byte[]> seeds = new ArrayList<>();
        try (InputStream in = SafetensorsFuzzTest.class.getResourceAsStream("/safetensors/fixture.safetensors")) {
            seeds.add(in.readAllBytes());
        }
        seeds.add(Safetensors.toBytes(Map.of()));
        seeds.add(Safetensors.toBytes(Map.of(), Map.of("format", "pt")));
        seeds.add(Safetensors.toBytes(Map.of("w", Tensor.ofFloats(new long[] {2, 2}, 1, 2, 3, 4))));
        Map<String, Tensor> mixed = new LinkedHashMap<>();
        mixed.put("scalar", Tensor.scalar(3L));
        mixed.put("empty", Tensor.ofFloats(new long[] {0, 3}));
        mixed.put("half", Tensor.ofFp16Bits(new long[] {3}, (short) 1, (short) 2, (short) 3));
        mixed.put("mask", Tensor.ofBools(new long[] {1, 2}, true, false));
        mixed.put("lora_A", Tensor.ofBytes(io.peft4j.core.tensor.DataType.INT8, new long[] {2, 2}, new byte[] {1, -1, 2, -2}));
        seeds.add(Safetensors.toBytes(mixed, Map.of("format", "pt", "peft_type", "LORA")));
        seeds.add(Safetensors.toBytes(SafetensorsRoundTripTest.everyDtype(7)));
        return seeds;
    }

}
