package io.peft4j.core.safetensors;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.safetensors.SafetensorsFile.Entry;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reads and validates the header of a safetensors file. Every problem becomes a MALFORMED
 * {@link Peft4jException} naming the source, the tensor and what is wrong.
 */
final class SafetensorsHeader {

    /** Longest name or value quoted in a message; the rest is elided. */
    private static final int QUOTE_LIMIT = 120;

    private static final JsonFactory JSON = JsonFactory.builder()
            // the header's size is already bounded; let a long metadata string through
            .streamReadConstraints(StreamReadConstraints.builder()
                    .maxStringLength((int) SafetensorsFile.MAX_HEADER_BYTES)
                    .maxNameLength((int) SafetensorsFile.MAX_HEADER_BYTES)
                    .maxNestingDepth(16)
                    .maxNumberLength(1000)
                    .build())
            .build();

    private final Map<String, String> metadata;
    private final List<Entry> entriesInDataOrder;

    private SafetensorsHeader(Map<String, String> metadata, List<Entry> entriesInDataOrder) {
        this.metadata = metadata;
        this.entriesInDataOrder = entriesInDataOrder;
    }

    Map<String, String> metadata() {
        return metadata;
    }

    List<Entry> entriesInDataOrder() {
        return entriesInDataOrder;
    }

    /**
     * Checks the 8-byte header length against the total size and returns it.
     *
     * @param lengthBytes the first {@code min(8, totalSize)} bytes
     */
    static long checkHeaderLength(String source, ByteBuffer lengthBytes, long totalSize) {
        if (totalSize < 8) {
            throw Peft4jException.malformed(source + " is " + totalSize
                    + " bytes long, shorter than the 8-byte header length that starts every safetensors file");
        }
        long n = lengthBytes.order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        if (n < 0 || n > SafetensorsFile.MAX_HEADER_BYTES) {
            throw Peft4jException.malformed(source + ": header length " + Long.toUnsignedString(n)
                    + " exceeds the limit of " + SafetensorsFile.MAX_HEADER_BYTES + " bytes");
        }
        if (n > totalSize - 8) {
            throw Peft4jException.malformed(source + ": header length " + n
                    + " goes beyond the end of the file (" + totalSize + " bytes)");
        }
        return n;
    }

    /** Parses the header JSON and checks every entry against a data section of {@code dataLength} bytes. */
    static SafetensorsHeader parse(String source, byte[] header, long dataLength) {
        if (header.length == 0) {
            throw Peft4jException.malformed(source + ": the header is empty");
        }
        if (header[0] != '{') {
            throw Peft4jException.malformed(source + ": the header must start with '{', found byte 0x"
                    + String.format("%02x", header[0] & 0xff));
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(header))
                    .toString();
        } catch (CharacterCodingException e) {
            throw Peft4jException.malformed(source + ": the header is not valid UTF-8");
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        List<Entry> entries = new ArrayList<>();
        try (JsonParser p = JSON.createParser(text)) {
            new Reader(source, p, metadata, entries).readRoot();
        } catch (IOException e) { // Jackson's parse errors and stream-constraint violations
            throw new Peft4jException(Peft4jException.ErrorCode.MALFORMED,
                    source + ": the header is not valid JSON: " + jsonMessage(e), e);
        }
        // data order; the sort is stable, so zero-size tensors at one offset keep their header order
        List<Entry> sorted = new ArrayList<>(entries);
        sorted.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        checkCoverage(source, sorted, dataLength);
        return new SafetensorsHeader(metadata, sorted);
    }

    /** The tensors must cover the data section exactly: no gap, no overlap, nothing left over. */
    private static void checkCoverage(String source, List<Entry> sorted, long dataLength) {
        long expected = 0;
        String previous = null;
        for (Entry e : sorted) {
            if (e.end() > dataLength) {
                throw Peft4jException.malformed(source + ": tensor " + quote(e.name()) + " has data_offsets ["
                        + e.begin() + ", " + e.end() + "] beyond the data section of " + dataLength + " bytes");
            }
            if (e.begin() < expected) {
                throw Peft4jException.malformed(source + ": tensor " + quote(e.name()) + " (data_offsets ["
                        + e.begin() + ", " + e.end() + "]) overlaps tensor " + quote(previous)
                        + " which ends at " + expected);
            }
            if (e.begin() > expected) {
                throw Peft4jException.malformed(source + ": gap in the data section: bytes " + expected
                        + " to " + e.begin() + " belong to no tensor (before tensor " + quote(e.name()) + ")");
            }
            expected = e.end();
            previous = e.name();
        }
        if (expected != dataLength) {
            throw Peft4jException.malformed(source + ": the data section has " + dataLength
                    + " bytes but the tensors cover only " + expected + "; bytes " + expected + " to "
                    + dataLength + " belong to no tensor");
        }
    }

    /** A streaming reader of the header object; keeps track of the tensor it is in for messages. */
    private static final class Reader {
        private final String source;
        private final JsonParser p;
        private final Map<String, String> metadata;
        private final List<Entry> entries;

        Reader(String source, JsonParser p, Map<String, String> metadata, List<Entry> entries) {
            this.source = source;
            this.p = p;
            this.metadata = metadata;
            this.entries = entries;
        }

        void readRoot() throws IOException {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw fail(null, "the header must be a JSON object");
            }
            Set<String> seen = new HashSet<>();
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String key = p.currentName();
                if (!seen.add(key)) {
                    throw fail(null, "duplicate key " + quote(key) + " in the header");
                }
                if (!isValidUnicode(key)) {
                    throw fail(null, "key " + quote(key) + " holds an unpaired surrogate escape, which is not Unicode text");
                }
                if (SafetensorsFile.METADATA_KEY.equals(key)) {
                    readMetadata();
                } else {
                    entries.add(readEntry(key));
                }
            }
            // nextToken() returned END_OBJECT (anything else is a Jackson syntax error)
            JsonToken after = p.nextToken();
            if (after != null) {
                throw fail(null, "trailing content after the header's JSON object");
            }
        }

        private void readMetadata() throws IOException {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw fail(null, "__metadata__ must be an object of strings, found " + describe(p.currentToken()));
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String key = p.currentName();
                JsonToken t = p.nextToken();
                if (t != JsonToken.VALUE_STRING) {
                    throw fail(null, "__metadata__ value " + quote(key) + " must be a string, found " + describe(t));
                }
                if (!isValidUnicode(key) || !isValidUnicode(p.getText())) {
                    throw fail(null, "__metadata__ entry " + quote(key)
                            + " holds an unpaired surrogate escape, which is not Unicode text");
                }
                if (metadata.put(key, p.getText()) != null) {
                    throw fail(null, "duplicate key " + quote(key) + " in __metadata__");
                }
            }
        }

        private Entry readEntry(String name) throws IOException {
            JsonToken t = p.nextToken();
            if (t != JsonToken.START_OBJECT) {
                throw fail(name, "entry must be a JSON object, found " + describe(t));
            }
            String dtypeName = null;
            long[] shape = null;
            long[] offsets = null;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                switch (field) {
                    case "dtype" -> {
                        if (dtypeName != null) {
                            throw fail(name, "duplicate field 'dtype'");
                        }
                        JsonToken v = p.nextToken();
                        if (v != JsonToken.VALUE_STRING) {
                            throw fail(name, "'dtype' must be a string, found " + describe(v));
                        }
                        dtypeName = p.getText();
                    }
                    case "shape" -> {
                        if (shape != null) {
                            throw fail(name, "duplicate field 'shape'");
                        }
                        shape = readLongArray(name, "shape");
                    }
                    case "data_offsets" -> {
                        if (offsets != null) {
                            throw fail(name, "duplicate field 'data_offsets'");
                        }
                        offsets = readLongArray(name, "data_offsets");
                    }
                    default -> throw fail(name, "unexpected field " + quote(field)
                            + " (an entry has only dtype, shape and data_offsets)");
                }
            }
            if (dtypeName == null) {
                throw fail(name, "missing field 'dtype'");
            }
            if (shape == null) {
                throw fail(name, "missing field 'shape'");
            }
            if (offsets == null) {
                throw fail(name, "missing field 'data_offsets'");
            }
            DataType dtype = dtypeOf(name, dtypeName);
            long count;
            try {
                count = Tensor.numel(shape);
            } catch (ArithmeticException e) {
                throw fail(name, "shape " + Arrays.toString(shape) + ": the element count overflows 64 bits");
            }
            if (offsets.length != 2) {
                throw fail(name, "'data_offsets' must hold exactly two integers, found " + offsets.length);
            }
            long begin = offsets[0];
            long end = offsets[1];
            if (begin > end) {
                throw fail(name, "data_offsets [" + begin + ", " + end + "]: begin > end");
            }
            long bytes;
            try {
                bytes = dtype.byteSize(count);
            } catch (ArithmeticException | Peft4jException e) {
                throw fail(name, dtypeName + " shape " + Arrays.toString(shape)
                        + ": the byte size overflows 64 bits");
            }
            if (end - begin != bytes) {
                throw fail(name, dtypeName + " shape " + Arrays.toString(shape) + " needs " + bytes
                        + " bytes, but data_offsets [" + begin + ", " + end + "] hold " + (end - begin));
            }
            return new Entry(name, dtype, shape, begin, end);
        }

        /** An array of non-negative integers that fit in a long; its length is bounded by the header size. */
        private long[] readLongArray(String name, String field) throws IOException {
            JsonToken t = p.nextToken();
            if (t != JsonToken.START_ARRAY) {
                throw fail(name, quote(field) + " must be an array of integers, found " + describe(t));
            }
            long[] values = new long[4];
            int n = 0;
            while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
                if (t != JsonToken.VALUE_NUMBER_INT) {
                    throw fail(name, quote(field) + " must hold non-negative integers, found " + describe(t));
                }
                JsonParser.NumberType nt = p.getNumberType();
                if (nt != JsonParser.NumberType.INT && nt != JsonParser.NumberType.LONG) {
                    throw fail(name, quote(field) + " value " + quote(p.getText())
                            + " does not fit in a signed 64-bit integer");
                }
                long v = p.getLongValue();
                if (v < 0) {
                    throw fail(name, quote(field) + " value " + v + " is negative");
                }
                if (n == values.length) {
                    values = Arrays.copyOf(values, n * 2);
                }
                values[n++] = v;
            }
            return Arrays.copyOf(values, n);
        }

        private DataType dtypeOf(String name, String dtypeName) {
            for (DataType d : DataType.values()) {
                if (dtypeName.equals(d.safetensorsName())) {
                    return d;
                }
            }
            throw fail(name, "unknown dtype " + quote(dtypeName));
        }

        private Peft4jException fail(String tensor, String what) {
            String where = tensor == null ? "" : " tensor " + quote(tensor) + ":";
            return Peft4jException.malformed(source + ":" + where + " " + what);
        }
    }

    private static String describe(JsonToken t) {
        if (t == null) {
            return "end of input";
        }
        return switch (t) {
            case START_OBJECT -> "an object";
            case START_ARRAY -> "an array";
            case VALUE_STRING -> "a string";
            case VALUE_NUMBER_INT -> "an integer";
            case VALUE_NUMBER_FLOAT -> "a non-integer number";
            case VALUE_TRUE, VALUE_FALSE -> "a boolean";
            case VALUE_NULL -> "null";
            default -> t.toString();
        };
    }

    private static String jsonMessage(IOException e) {
        String m = e instanceof com.fasterxml.jackson.core.JacksonException je ? je.getOriginalMessage() : e.getMessage();
        if (m == null) {
            return e.getClass().getSimpleName();
        }
        return m.length() > 300 ? m.substring(0, 300) + "..." : m;
    }

    /** False if {@code s} holds a surrogate that is not part of a pair (JSON can encode one as {@code \\ud800}). */
    static boolean isValidUnicode(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                return false;
            }
        }
        return true;
    }

    /** A name or value in single quotes, shortened if long, with control characters escaped. */
    static String quote(String s) {
        if (s == null) {
            return "(none)";
        }
        StringBuilder b = new StringBuilder("'");
        int limit = Math.min(s.length(), QUOTE_LIMIT);
        for (int i = 0; i < limit; i++) {
            char c = s.charAt(i);
            if (c < 0x20 || c == 0x7f) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        if (s.length() > limit) {
            b.append("...(").append(s.length()).append(" chars)");
        }
        return b.append('\'').toString();
    }
}
