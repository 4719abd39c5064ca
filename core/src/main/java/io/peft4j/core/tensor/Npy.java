package io.peft4j.core.tensor;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.util.AtomicFiles;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * NumPy {@code .npy} files (format versions 1.0 to 3.0): a magic string, a header that is a
 * Python dict literal ({@code 'descr'}, {@code 'fortran_order'}, {@code 'shape'}), then the data.
 * Reads little-endian float32/float64/float16/int8/uint8/int32/int64/bool in C order; writes
 * version 1.0 with the header padded to a multiple of 64 bytes, as NumPy does.
 */
public final class Npy {

    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    private static final int MAX_HEADER = 1 << 20;
    private static final Pattern DESCR = Pattern.compile("'descr'\\s*:\\s*'([^']*)'");
    private static final Pattern FORTRAN = Pattern.compile("'fortran_order'\\s*:\\s*(True|False)");
    private static final Pattern SHAPE = Pattern.compile("'shape'\\s*:\\s*\\(([^)]*)\\)");

    private Npy() {
    }

    public static Tensor read(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (java.nio.file.NoSuchFileException e) {
            throw new Peft4jException(ErrorCode.IO, "file not found: " + file, e);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read " + file + ": " + e.getMessage(), e);
        }
        return parse(bytes, file.toString());
    }

    public static Tensor parse(byte[] bytes, String what) {
        if (bytes.length < 10) {
            throw Peft4jException.malformed(what + " is not a .npy file: it is only " + bytes.length + " bytes");
        }
        for (int i = 0; i < MAGIC.length; i++) {
            if (bytes[i] != MAGIC[i]) {
                throw Peft4jException.malformed(what + " is not a .npy file (no \\x93NUMPY magic)");
            }
        }
        int major = bytes[6] & 0xff;
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        long headerLen;
        int start;
        if (major == 1) {
            headerLen = b.getShort(8) & 0xffff;
            start = 10;
        } else if (major == 2 || major == 3) {
            if (bytes.length < 12) {
                throw Peft4jException.malformed(what + " is truncated in its header");
            }
            headerLen = b.getInt(8) & 0xffffffffL;
            start = 12;
        } else {
            throw Peft4jException.unsupported(what + " uses .npy format version " + major + ", which is not read");
        }
        if (headerLen > MAX_HEADER || start + headerLen > bytes.length) {
            throw Peft4jException.malformed(what + ": header length " + headerLen + " runs past the end of the file");
        }
        String header = new String(bytes, start, (int) headerLen, major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
        String descr = group(DESCR, header, "descr", what);
        if (group(FORTRAN, header, "fortran_order", what).equals("True")) {
            throw Peft4jException.unsupported(what + " is in Fortran order; save it in C order (np.ascontiguousarray)");
        }
        long[] shape = shape(group(SHAPE, header, "shape", what), what);
        DataType dtype = dtype(descr, what);
        long count;
        try {
            count = Tensor.numel(shape);
        } catch (ArithmeticException e) {
            throw Peft4jException.malformed(what + ": shape overflows");
        }
        long need;
        try {
            need = dtype.byteSize(count);
        } catch (Peft4jException e) {
            throw Peft4jException.malformed(what + ": shape overflows");
        }
        long dataStart = start + headerLen;
        if (bytes.length - dataStart != need) {
            throw Peft4jException.malformed(what + ": a " + descr + " array of shape " + java.util.Arrays.toString(shape)
                    + " needs " + need + " bytes of data, the file has " + (bytes.length - dataStart));
        }
        return Tensor.wrap(dtype, shape, ByteBuffer.wrap(bytes, (int) dataStart, (int) need));
    }

    private static String group(Pattern p, String header, String key, String what) {
        Matcher m = p.matcher(header);
        if (!m.find()) {
            throw Peft4jException.malformed(what + ": the .npy header has no valid '" + key + "'");
        }
        return m.group(1);
    }

    private static long[] shape(String s, String what) {
        List<Long> dims = new ArrayList<>();
        for (String part : s.split(",")) {
            String t = part.trim();
            if (t.isEmpty()) {
                continue;
            }
            try {
                long d = Long.parseLong(t.endsWith("L") ? t.substring(0, t.length() - 1) : t);
                if (d < 0) {
                    throw Peft4jException.malformed(what + ": negative dimension in shape (" + s + ")");
                }
                dims.add(d);
            } catch (NumberFormatException e) {
                throw Peft4jException.malformed(what + ": shape (" + s + ") is not a tuple of integers");
            }
        }
        return dims.stream().mapToLong(Long::longValue).toArray();
    }

    private static DataType dtype(String descr, String what) {
        if (descr.length() >= 2 && descr.charAt(0) == '>' && !descr.endsWith("1")) {
            throw Peft4jException.unsupported(what + " is big-endian (" + descr + "); save it little-endian");
        }
        String d = descr.replaceFirst("^[<|=]", "");
        return switch (d) {
            case "f4" -> DataType.FLOAT;
            case "f8" -> DataType.DOUBLE;
            case "f2" -> DataType.FLOAT16;
            case "i1" -> DataType.INT8;
            case "u1" -> DataType.UINT8;
            case "i2" -> DataType.INT16;
            case "u2" -> DataType.UINT16;
            case "i4" -> DataType.INT32;
            case "u4" -> DataType.UINT32;
            case "i8" -> DataType.INT64;
            case "u8" -> DataType.UINT64;
            case "b1" -> DataType.BOOL;
            default -> throw Peft4jException.unsupported(what + ": .npy dtype '" + descr + "' is not supported");
        };
    }

    private static String descr(DataType t) {
        return switch (t) {
            case FLOAT -> "<f4";
            case DOUBLE -> "<f8";
            case FLOAT16 -> "<f2";
            case INT8 -> "|i1";
            case UINT8 -> "|u1";
            case INT16 -> "<i2";
            case UINT16 -> "<u2";
            case INT32 -> "<i4";
            case UINT32 -> "<u4";
            case INT64 -> "<i8";
            case UINT64 -> "<u8";
            case BOOL -> "|b1";
            default -> throw Peft4jException.unsupported("a " + t + " tensor cannot be saved as .npy");
        };
    }

    /** The bytes of a version 1.0 .npy file holding {@code t}. */
    public static byte[] toBytes(Tensor t) {
        StringBuilder shape = new StringBuilder("(");
        long[] s = t.shape();
        for (int i = 0; i < s.length; i++) {
            shape.append(s[i]).append(s.length == 1 ? "," : (i + 1 < s.length ? ", " : ""));
        }
        shape.append(")");
        String dict = String.format(Locale.ROOT, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr(t.dtype()), shape);
        int total = MAGIC.length + 4 + dict.length() + 1;
        int pad = (64 - total % 64) % 64;
        String header = dict + " ".repeat(pad) + "\n";
        ByteBuffer out = ByteBuffer.allocate(MAGIC.length + 4 + header.length() + (int) t.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
        out.put(MAGIC).put((byte) 1).put((byte) 0).putShort((short) header.length());
        out.put(header.getBytes(StandardCharsets.ISO_8859_1));
        out.put(t.bytes());
        return out.array();
    }

    /** Writes {@code t} to {@code file} atomically. */
    public static void write(Path file, Tensor t) {
        AtomicFiles.write(file, toBytes(t));
    }
}
