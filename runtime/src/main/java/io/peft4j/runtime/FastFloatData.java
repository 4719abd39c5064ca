package io.peft4j.runtime;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A fast path for the bulk of a JSON inference request: the flat {@code data} arrays of FP32
 * inputs. It scans the body once, and every {@code "data": [numbers]} of an element of the root's
 * {@code inputs} whose {@code "datatype": "FP32"} came before it is parsed here, straight from the
 * bytes into little-endian floats, and replaced in a copy of the JSON by a short string naming it
 * (with a random key of this request, so that a client cannot name one). jackson then parses
 * only what is left, a few hundred bytes. Everything else (other datatypes, nested arrays, data
 * before its datatype, anything unexpected) is left in place for jackson, as is the whole body
 * when its JSON is not well formed: the caller parses the original body then, for jackson's error.
 *
 * <p>Every float is the one {@code Float.parseFloat} gives for the number's text: the decimal is
 * read into at most 18 significant digits and scaled by an exact power of ten in double precision,
 * which is within a few units in the last place of double of the exact value; when that value is
 * further than that from a point halfway between two floats, rounding it gives the float of the
 * exact decimal. Otherwise (and for exponents beyond ±22, subnormal or overflowing results) the
 * text goes to {@code Float.parseFloat}.
 */
final class FastFloatData {

    /** A scanned body: the JSON that is left, and the arrays taken out of it. */
    static final class Scan {
        final byte[] json;
        private final String prefix;
        private final List<ByteBuffer> arrays;
        private final List<Integer> counts;

        private Scan(byte[] json, String prefix, List<ByteBuffer> arrays, List<Integer> counts) {
            this.json = json;
            this.prefix = prefix;
            this.arrays = arrays;
            this.counts = counts;
        }

        /** The array a placeholder string names, or -1 when the string is not one of this scan's. */
        int index(String s) {
            if (!s.startsWith(prefix)) {
                return -1;
            }
            try {
                int k = Integer.parseInt(s.substring(prefix.length()));
                return k >= 0 && k < arrays.size() ? k : -1;
            } catch (NumberFormatException e) {
                return -1;
            }
        }

        /** The floats of array {@code k} (little-endian, written: positioned at the end, as a buffer being filled). */
        ByteBuffer floats(int k) {
            return arrays.get(k);
        }

        int count(int k) {
            return counts.get(k);
        }
    }

    private static final double[] POW10 = new double[23];

    static {
        double p = 1;
        for (int i = 0; i < POW10.length; i++) {
            POW10[i] = p;
            p *= 10;
        }
    }

    private static final int MAX_DEPTH = 64;
    /** jackson's default {@code StreamReadConstraints.maxNumberLength}: longer numbers are its error to report. */
    private static final int MAX_NUMBER_LENGTH = 1000;

    private final byte[] b;
    private final int end;
    private int i;
    private final List<int[]> cuts = new ArrayList<>();   // [start, end) of each array taken out
    private final List<ByteBuffer> arrays = new ArrayList<>();
    private final List<Integer> counts = new ArrayList<>();

    private FastFloatData(byte[] b, int end) {
        this.b = b;
        this.end = end;
    }

    /**
     * Scans the first {@code length} bytes of {@code body}; null when there is nothing to take out
     * or the JSON is not well formed (the caller then parses the body as it is).
     */
    static Scan scan(byte[] body, int length) {
        FastFloatData s = new FastFloatData(body, length);
        try {
            s.ws();
            if (!s.value(0, Role.ROOT)) {
                return null;
            }
            s.ws();
            if (s.i != length || s.cuts.isEmpty()) {
                return null;
            }
        } catch (IndexOutOfBoundsException e) {
            return null;   // ran off the end: not well formed
        }
        return s.result();
    }

    private Scan result() {
        String prefix = "\u0000peft4j-data:" + Long.toHexString(ThreadLocalRandom.current().nextLong()) + ":";
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream(256);
        int from = 0;
        for (int k = 0; k < cuts.size(); k++) {
            int[] c = cuts.get(k);
            out.write(b, from, c[0] - from);
            out.writeBytes(("\"\\u0000" + prefix.substring(1) + k + "\"").getBytes(StandardCharsets.US_ASCII));
            from = c[1];
        }
        out.write(b, from, end - from);
        return new Scan(out.toByteArray(), prefix, arrays, counts);
    }

    /** Where a value sits: what decides whether its arrays are taken out. */
    private enum Role { ROOT, INPUTS, INPUT, OTHER }

    // ---------------------------------------------------------------- structure

    private void ws() {
        i = skipWs(b, i, end);
    }

    /** The first position from {@code p} that is not JSON whitespace (or {@code end}). */
    private static int skipWs(byte[] b, int p, int end) {
        while (p < end && (b[p] == ' ' || b[p] == '\n' || b[p] == '\r' || b[p] == '\t')) {
            p++;
        }
        return p;
    }

    /** One value at {@code i}; false when it is not well formed. */
    private boolean value(int depth, Role role) {
        if (depth > MAX_DEPTH || i >= end) {
            return false;
        }
        byte c = b[i];
        if (c == '{') {
            return object(depth, role);
        }
        if (c == '[') {
            i++;
            ws();
            if (i < end && b[i] == ']') {
                i++;
                return true;
            }
            while (true) {
                ws();
                if (!value(depth + 1, role == Role.INPUTS ? Role.INPUT : Role.OTHER)) {
                    return false;
                }
                int after = afterMember((byte) ']');
                if (after <= 0) {
                    return after == 0;
                }
            }
        }
        if (c == '"') {
            return string() != null || lastStringOk;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            return skipNumber();
        }
        return literal("true") || literal("false") || literal("null");
    }

    private boolean object(int depth, Role role) {
        i++;   // {
        ws();
        if (i < end && b[i] == '}') {
            i++;
            return true;
        }
        boolean fp32 = false;
        while (true) {
            ws();
            if (i >= end || b[i] != '"') {
                return false;
            }
            String key = string();
            if (key == null && !lastStringOk) {
                return false;
            }
            ws();
            if (i >= end || b[i] != ':') {
                return false;
            }
            i++;
            ws();
            if (i >= end) {
                return false;
            }
            if (role == Role.INPUT && "datatype".equals(key) && b[i] == '"') {
                String dt = string();
                if (dt == null && !lastStringOk) {
                    return false;
                }
                fp32 = "FP32".equals(dt);
            } else if (role == Role.INPUT && fp32 && "data".equals(key) && b[i] == '[') {
                int start = i;
                if (!takeFloats()) {
                    i = start;
                    if (!value(depth + 1, Role.OTHER)) {
                        return false;
                    }
                }
            } else if (!value(depth + 1, role == Role.ROOT && "inputs".equals(key) ? Role.INPUTS : Role.OTHER)) {
                return false;
            }
            int after = afterMember((byte) '}');
            if (after <= 0) {
                return after == 0;
            }
        }
    }

    /**
     * After a member of an array or object: 1 when a comma follows (another member comes), 0 when
     * {@code closer} does (the container ends), -1 for anything else; consumes what it read.
     */
    private int afterMember(byte closer) {
        ws();
        if (i >= end) {
            return -1;
        }
        if (b[i] == ',') {
            i++;
            return 1;
        }
        if (b[i] == closer) {
            i++;
            return 0;
        }
        return -1;
    }

    private boolean lastStringOk;

    /**
     * A string at {@code i}: its text when it has no escapes (keys and datatypes), else null with
     * {@link #lastStringOk} telling whether it was well formed.
     */
    private String string() {
        int start = ++i;
        boolean escapes = false;
        while (true) {
            if (i >= end) {
                lastStringOk = false;
                return null;
            }
            byte c = b[i];
            if (c == '"') {
                break;
            }
            if (c == '\\') {
                escapes = true;
                i += 2;
                continue;
            }
            if ((c & 0xff) < 0x20) {
                lastStringOk = false;
                return null;
            }
            i++;
        }
        int stop = i++;
        lastStringOk = true;
        return escapes ? null : new String(b, start, stop - start, StandardCharsets.UTF_8);
    }

    private boolean literal(String word) {
        int n = word.length();
        if (i + n > end) {
            return false;
        }
        for (int k = 0; k < n; k++) {
            if (b[i + k] != word.charAt(k)) {
                return false;
            }
        }
        i += n;
        return true;
    }

    /** A JSON number at {@code i} (strict grammar), skipped; false when it is not one. */
    private boolean skipNumber() {
        int start = i;
        if (b[i] == '-') {
            i++;
        }
        if (i >= end || !digit(b[i])) {
            return false;
        }
        if (b[i] == '0') {
            i++;
        } else {
            while (i < end && digit(b[i])) {
                i++;
            }
        }
        if (i < end && b[i] == '.') {
            i++;
            if (i >= end || !digit(b[i])) {
                return false;
            }
            while (i < end && digit(b[i])) {
                i++;
            }
        }
        if (i < end && (b[i] == 'e' || b[i] == 'E')) {
            i++;
            if (i < end && (b[i] == '+' || b[i] == '-')) {
                i++;
            }
            if (i >= end || !digit(b[i])) {
                return false;
            }
            while (i < end && digit(b[i])) {
                i++;
            }
        }
        return i > start;
    }

    private static boolean digit(byte c) {
        return c >= '0' && c <= '9';
    }

    // ---------------------------------------------------------------- the arrays

    /** A flat array of numbers at {@code i}, parsed and recorded; false (position unspecified) for anything else. */
    private boolean takeFloats() {
        // locals rather than fields in the loop: the JIT keeps them in registers
        final byte[] b = this.b;
        final int end = this.end;
        int start = i;
        int p = i + 1;   // after [
        float[] out = new float[1024];
        int n = 0;
        p = skipWs(b, p, end);
        if (p < end && b[p] == ']') {
            return false;   // empty: left to the caller's checks
        }
        while (true) {
            p = skipWs(b, p, end);
            if (p >= end) {
                return false;
            }
            // one JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
            int from = p;
            boolean negative = false;
            if (b[p] == '-') {
                negative = true;
                p++;
            }
            if (p >= end || b[p] < '0' || b[p] > '9') {
                return false;
            }
            long m = 0;
            int sig = 0;
            int exp10 = 0;
            boolean truncated = false;
            if (b[p] == '0') {
                p++;
            } else {
                while (p < end) {
                    int d = b[p] - '0';
                    if (d < 0 || d > 9) {
                        break;
                    }
                    if (sig < 18) {
                        m = m * 10 + d;
                        sig++;
                    } else {
                        exp10++;
                        truncated |= d != 0;
                    }
                    p++;
                }
            }
            if (p < end && b[p] == '.') {
                p++;
                if (p >= end || b[p] < '0' || b[p] > '9') {
                    return false;
                }
                while (p < end) {
                    int d = b[p] - '0';
                    if (d < 0 || d > 9) {
                        break;
                    }
                    if (sig < 18) {
                        if (m != 0 || d != 0) {
                            m = m * 10 + d;
                            sig++;
                        }
                        exp10--;
                    } else {
                        truncated |= d != 0;
                    }
                    p++;
                }
            }
            if (p < end && (b[p] == 'e' || b[p] == 'E')) {
                p++;
                boolean negExp = false;
                if (p < end && (b[p] == '+' || b[p] == '-')) {
                    negExp = b[p] == '-';
                    p++;
                }
                if (p >= end || b[p] < '0' || b[p] > '9') {
                    return false;
                }
                int e = 0;
                while (p < end) {
                    int d = b[p] - '0';
                    if (d < 0 || d > 9) {
                        break;
                    }
                    if (e < 100_000) {
                        e = e * 10 + d;
                    }
                    p++;
                }
                exp10 += negExp ? -e : e;
            }
            if (p - from > MAX_NUMBER_LENGTH) {
                return false;   // jackson refuses numbers this long; let it say so
            }
            float f;
            if (m == 0 && !truncated) {
                f = negative ? -0.0f : 0.0f;
            } else {
                f = toFloat(m, exp10);
                if (Float.isNaN(f)) {
                    f = Float.parseFloat(new String(b, from, p - from, StandardCharsets.ISO_8859_1));
                } else if (negative) {
                    f = -f;
                }
            }
            if (n == out.length) {
                out = java.util.Arrays.copyOf(out, n * 2);
            }
            out[n++] = f;
            p = skipWs(b, p, end);
            if (p >= end) {
                return false;
            }
            if (b[p] == ',') {
                p++;
            } else if (b[p] == ']') {
                p++;
                break;
            } else {
                return false;
            }
        }
        i = p;
        ByteBuffer buf = ByteBuffer.allocateDirect(n * 4).order(ByteOrder.LITTLE_ENDIAN);
        buf.asFloatBuffer().put(out, 0, n);
        buf.position(n * 4);
        cuts.add(new int[] {start, i});
        arrays.add(buf);
        counts.add(n);
        return true;
    }

    /**
     * {@code m · 10^exp10} rounded to float, when the double computation decides it; NaN when the
     * text must go to {@code Float.parseFloat}.
     */
    static float toFloat(long m, int exp10) {
        if (m == 0 || exp10 < -22 || exp10 > 22) {
            return Float.NaN;
        }
        double d = exp10 >= 0 ? (double) m * POW10[exp10] : (double) m / POW10[-exp10];
        float f = (float) d;
        if (Float.isInfinite(f) || f == Float.MAX_VALUE || f < Float.MIN_NORMAL) {
            // at the ends of the range the neighbour the margin test needs is not a float
            return Float.NaN;
        }
        // m (up to 18 digits, maybe cut) and the scaling are each within an ulp of double or so
        double margin = 8 * Math.ulp(d);
        double lo = ((double) f + (double) Math.nextDown(f)) * 0.5;
        double hi = ((double) f + (double) Math.nextUp(f)) * 0.5;
        return d - lo > margin && hi - d > margin ? f : Float.NaN;
    }
}
