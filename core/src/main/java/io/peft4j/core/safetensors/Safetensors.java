package io.peft4j.core.safetensors;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.util.AtomicFiles;

import java.io.ByteArrayOutputStream;
import java.io.IOException;

import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.WritableByteChannel;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;

/**
 * Writes safetensors files. Reading is {@link SafetensorsFile}.
 *
 * <p><b>Layout.</b> The output is deterministic: the same tensors and metadata give the same bytes.
 * It follows the layout of the Hugging Face {@code safetensors} library: tensors are ordered by
 * dtype, widest first (in the library's dtype order U64, I64, F64, F32, U32, I32, BF16, F16, U16,
 * I16, F8_E4M3, F8_E5M2, I8, U8, BOOL), then by name compared as UTF-8 bytes, which keeps every
 * tensor aligned to its element size. The header is compact JSON with the {@code __metadata__}
 * object first (keys sorted by UTF-8 bytes; left out when the metadata is null or empty), then the
 * tensors in data order, padded with spaces so that the data section starts at a multiple of 8.
 * For the same tensors and at most one metadata entry the bytes equal the library's output (it
 * does not sort several metadata keys, and writes an empty {@code __metadata__} when given one).
 *
 * <p><b>Copies.</b> Neither method keeps a reference to the tensors; {@link #toBytes} copies their
 * bytes into one array, {@link #write} streams them to disk.
 *
 * <p><b>Refused input</b> (nothing is written): a null or empty name, the name
 * {@code __metadata__}, a name or metadata string that is not valid Unicode (a lone surrogate), a
 * null tensor or metadata value (INVALID_ARGUMENT); a tensor whose type safetensors cannot hold,
 * such as STRING or the 4-bit types (UNSUPPORTED); a header over
 * {@link SafetensorsFile#MAX_HEADER_BYTES} (INVALID_ARGUMENT).
 */
public final class Safetensors {

    private static final JsonFactory JSON = new JsonFactory();

    private Safetensors() {
    }

    /** {@link #write(Path, Map, Map)} without metadata. */
    public static void write(Path path, Map<String, Tensor> tensors) {
        write(path, tensors, null);
    }

    /**
     * Writes a safetensors file atomically: the bytes go to a temporary file in the same directory,
     * which is flushed to disk and then renamed over {@code path} (an atomic move where the file
     * system has one, otherwise a plain replace). If anything fails, the temporary file is removed
     * and an existing file at {@code path} is left as it was. The new file gets the default
     * permissions of a newly created file, not those of the file it replaces.
     *
     * @param metadata strings stored under {@code __metadata__}; null or empty for none
     * @throws Peft4jException IO if the file cannot be written; see the class comment for refused input
     */
    public static void write(Path path, Map<String, Tensor> tensors, Map<String, String> metadata) {
        Layout layout = layout(tensors, metadata);
        Path target = path.toAbsolutePath();
        Path dir = target.getParent();
        if (dir == null) {
            throw Peft4jException.invalid("cannot write a safetensors file at '" + path + "': it names no file");
        }
        AtomicFiles.write(target, out -> {
            out.write(layout.prefix());
            WritableByteChannel ch = Channels.newChannel(out);
            for (Tensor t : layout.tensors()) {
                ByteBuffer b = t.bytes();
                while (b.hasRemaining()) {
                    ch.write(b);
                }
            }
        });
    }

    /** {@link #toBytes(Map, Map)} without metadata. */
    public static byte[] toBytes(Map<String, Tensor> tensors) {
        return toBytes(tensors, null);
    }

    /**
     * The bytes of a safetensors file holding {@code tensors} and {@code metadata}, exactly what
     * {@link #write} would put on disk.
     *
     * @throws Peft4jException UNSUPPORTED if the result would exceed 2 GiB (use {@link #write})
     */
    public static byte[] toBytes(Map<String, Tensor> tensors, Map<String, String> metadata) {
        Layout layout = layout(tensors, metadata);
        long total = layout.prefix().length + layout.dataLength();
        if (total > Integer.MAX_VALUE - 8) {
            throw Peft4jException.unsupported("a safetensors file of " + total
                    + " bytes does not fit in a Java array; write it to a file instead");
        }
        byte[] out = new byte[(int) total];
        ByteBuffer b = ByteBuffer.wrap(out);
        b.put(layout.prefix());
        for (Tensor t : layout.tensors()) {
            b.put(t.bytes());
        }
        return out;
    }

    // ---------------------------------------------------------------- layout

    /** The header length and padded header, and the tensors in data order. */
    private record Layout(byte[] prefix, List<Tensor> tensors, long dataLength) {
    }

    private record Named(String name, byte[] utf8, Tensor tensor) {
    }

    /** safetensors dtypes in the reference library's order, narrowest first; files list them widest first. */
    private static final List<String> DTYPE_ORDER = List.of("BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3",
            "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64");

    private static final Comparator<Named> DATA_ORDER = Comparator
            .comparingInt((Named n) -> -DTYPE_ORDER.indexOf(n.tensor().dtype().safetensorsName()))
            .thenComparing(Named::utf8, Arrays::compareUnsigned);

    private static Layout layout(Map<String, Tensor> tensors, Map<String, String> metadata) {
        if (tensors == null) {
            throw Peft4jException.invalid("no tensors given (null map)");
        }
        List<Named> named = new ArrayList<>(tensors.size());
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            String name = e.getKey();
            Tensor t = e.getValue();
            if (name == null || name.isEmpty()) {
                throw Peft4jException.invalid("a safetensors tensor name must not be null or empty");
            }
            if (name.equals(SafetensorsFile.METADATA_KEY)) {
                throw Peft4jException.invalid("'__metadata__' is reserved and cannot name a tensor");
            }
            checkUnicode("tensor name", name);
            if (t == null) {
                throw Peft4jException.invalid("tensor " + SafetensorsHeader.quote(name) + " is null");
            }
            if (t.dtype().safetensorsName() == null) {
                throw Peft4jException.unsupported("tensor " + SafetensorsHeader.quote(name) + " has type "
                        + t.dtype() + ", which safetensors cannot hold");
            }
            named.add(new Named(name, name.getBytes(StandardCharsets.UTF_8), t));
        }
        named.sort(DATA_ORDER);

        List<String> metaKeys = new ArrayList<>();
        if (metadata != null) {
            for (Map.Entry<String, String> e : metadata.entrySet()) {
                if (e.getKey() == null || e.getValue() == null) {
                    throw Peft4jException.invalid("safetensors metadata must not hold null keys or values (key "
                            + SafetensorsHeader.quote(e.getKey()) + ")");
                }
                checkUnicode("metadata key", e.getKey());
                checkUnicode("metadata value", e.getValue());
                metaKeys.add(e.getKey());
            }
            metaKeys.sort(Comparator.comparing((String k) -> k.getBytes(StandardCharsets.UTF_8), Arrays::compareUnsigned));
        }

        ByteArrayOutputStream json = new ByteArrayOutputStream();
        long offset = 0;
        List<Tensor> order = new ArrayList<>(named.size());
        try (JsonGenerator g = JSON.createGenerator(json)) {
            g.writeStartObject();
            if (!metaKeys.isEmpty()) {
                g.writeFieldName(SafetensorsFile.METADATA_KEY);
                g.writeStartObject();
                for (String k : metaKeys) {
                    g.writeStringField(k, metadata.get(k));
                }
                g.writeEndObject();
            }
            for (Named n : named) {
                Tensor t = n.tensor();
                long end = offset + t.byteSize();
                g.writeFieldName(n.name());
                g.writeStartObject();
                g.writeStringField("dtype", t.dtype().safetensorsName());
                g.writeFieldName("shape");
                g.writeStartArray();
                for (long d : t.shape()) {
                    g.writeNumber(d);
                }
                g.writeEndArray();
                g.writeFieldName("data_offsets");
                g.writeStartArray();
                g.writeNumber(offset);
                g.writeNumber(end);
                g.writeEndArray();
                g.writeEndObject();
                offset = end;
                order.add(t);
            }
            g.writeEndObject();
        } catch (IOException e) {
            // a ByteArrayOutputStream does not fail, and the strings were checked above
            throw new IllegalStateException("cannot encode a safetensors header", e);
        }
        int headerLength = json.size();
        int padded = (headerLength + 7) / 8 * 8; // 8 + padded is then a multiple of 8 too
        if (padded > SafetensorsFile.MAX_HEADER_BYTES) {
            throw Peft4jException.invalid("the safetensors header would be " + padded + " bytes, over the limit of "
                    + SafetensorsFile.MAX_HEADER_BYTES + " that readers accept");
        }
        byte[] prefix = new byte[8 + padded];
        ByteBuffer b = ByteBuffer.wrap(prefix).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(padded);
        b.put(json.toByteArray());
        Arrays.fill(prefix, 8 + headerLength, prefix.length, (byte) ' ');
        return new Layout(prefix, order, offset);
    }

    private static void checkUnicode(String what, String s) {
        if (!SafetensorsHeader.isValidUnicode(s)) {
            throw Peft4jException.invalid(what + " " + SafetensorsHeader.quote(s)
                    + " is not valid Unicode (it holds an unpaired surrogate)");
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }
}
