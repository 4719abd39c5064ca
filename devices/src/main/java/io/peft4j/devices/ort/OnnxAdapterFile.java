package io.peft4j.devices.ort;

import com.google.flatbuffers.FlatBufferBuilder;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.util.AtomicFiles;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * ONNX Runtime's LoRA adapter file ({@code .onnx_adapter}): a FlatBuffer with file identifier
 * {@code TORT} whose root table is
 * <pre>
 * table Adapter   { format_version:int; adapter_version:int; model_version:int; parameters:[Parameter]; }
 * table Parameter { name:string; dims:[int64]; data_type:TensorDataType; raw_data:[uint8] (force_align: 8); }
 * </pre>
 * with {@code TensorDataType} an {@code int32} enum numbered as ONNX's element types (1 = FLOAT …
 * 20 = FLOAT8E5M2FNUZ; 0 = UNDEFINED). This is ONNX Runtime's {@code adapter_schema.fbs}
 * ({@code onnxruntime/lora/adapter_format/}); format version 1 is the only one it reads. Element
 * data is little-endian, in row-major order.
 *
 * <p>A session opened on a model whose graph inputs carry these names (with initializers as
 * defaults) takes the parameters as inputs on a run where the adapter is active
 * ({@code OrtLoraAdapter} + {@code RunOptions.addActiveLoraAdapter}, ONNX Runtime ≥ 1.20).
 *
 * <p>Writing keeps the parameters in the map's order and aligns each {@code raw_data} to 8 bytes
 * from the start of the file, as the schema asks, so that a memory-mapped file gives aligned
 * tensors. Reading checks every offset, length and type against the bytes (the checks of
 * FlatBuffers' verifier and of ONNX Runtime's loader) and reports any fault as
 * {@link ErrorCode#MALFORMED}; no other exception escapes for bad content. The record's
 * {@code equals} compares tensors by identity, like {@link Tensor} itself.
 *
 * @param formatVersion  the file format's version; always {@link #FORMAT_VERSION} once read
 * @param adapterVersion the adapter's own version number (free for the writer to choose)
 * @param modelVersion   the version of the model the adapter was made for (free for the writer)
 * @param parameters     tensors by graph-input name, in file order; unmodifiable
 */
public record OnnxAdapterFile(int formatVersion, int adapterVersion, int modelVersion,
                              Map<String, Tensor> parameters) {

    /** The file name extension ONNX Runtime uses. */
    public static final String EXTENSION = ".onnx_adapter";

    /** The FlatBuffers file identifier, at bytes 4..7. */
    public static final String FILE_IDENTIFIER = "TORT";

    /** The format version written, and the only one ONNX Runtime (up to 1.23 at least) reads. */
    public static final int FORMAT_VERSION = 1;

    /** Alignment of each parameter's data from the start of the file (the schema's force_align). */
    static final int DATA_ALIGNMENT = 8;

    /** Files are read into, and written from, one Java array. */
    private static final long MAX_FILE_BYTES = Integer.MAX_VALUE - 1024L;

    // Field slots (vtable index = id), in schema order.
    private static final int ADAPTER_FORMAT_VERSION = 0;
    private static final int ADAPTER_ADAPTER_VERSION = 1;
    private static final int ADAPTER_MODEL_VERSION = 2;
    private static final int ADAPTER_PARAMETERS = 3;
    private static final int PARAMETER_NAME = 0;
    private static final int PARAMETER_DIMS = 1;
    private static final int PARAMETER_DATA_TYPE = 2;
    private static final int PARAMETER_RAW_DATA = 3;

    /** FlatBuffers' verifier's default limit on tables in one buffer (the Adapter and its parameters). */
    private static final long MAX_TABLES = 1_000_000;

    /** The largest {@code TensorDataType} value in the schema (FLOAT8E5M2FNUZ). */
    private static final int MAX_SCHEMA_DATA_TYPE = 20;

    public OnnxAdapterFile {
        Objects.requireNonNull(parameters, "parameters");
        parameters = Collections.unmodifiableMap(new LinkedHashMap<>(parameters));
    }

    // ---------------------------------------------------------------- writing

    /**
     * Writes {@code parameters} to {@code file} atomically (the directory must exist). Refused
     * with {@link ErrorCode#INVALID_ARGUMENT} or {@link ErrorCode#UNSUPPORTED}, before anything is
     * written, for an empty or non-UTF-16-clean name, a scalar (ONNX Runtime refuses parameters
     * without dims), an element type the schema lacks (STRING, 4-bit types) or one ONNX Runtime
     * cannot load (COMPLEX64, COMPLEX128).
     */
    public static void write(Path file, Map<String, Tensor> parameters, int adapterVersion, int modelVersion) {
        byte[] bytes = toBytes(parameters, adapterVersion, modelVersion);
        AtomicFiles.write(file, bytes);
    }

    /** Writes this adapter's parameters and versions to {@code file}; see {@link #write(Path, Map, int, int)}. */
    public void writeTo(Path file) {
        write(file, parameters, adapterVersion, modelVersion);
    }

    /** The file's bytes; see {@link #write(Path, Map, int, int)} for what is refused. */
    public static byte[] toBytes(Map<String, Tensor> parameters, int adapterVersion, int modelVersion) {
        Objects.requireNonNull(parameters, "parameters");
        List<byte[]> names = new ArrayList<>(parameters.size());
        List<Tensor> tensors = new ArrayList<>(parameters.size());
        long estimate = 64;
        for (Map.Entry<String, Tensor> e : parameters.entrySet()) {
            byte[] name = encodeName(e.getKey());
            Tensor t = e.getValue();
            checkWritable(e.getKey(), t);
            names.add(name);
            tensors.add(t);
            estimate += 64 + align(name.length + 1L, 4) + 8L * t.rank() + align(t.byteSize(), DATA_ALIGNMENT)
                    + DATA_ALIGNMENT;
            if (estimate > MAX_FILE_BYTES) {
                throw Peft4jException.unsupported("the adapter's parameters add up to more than "
                        + MAX_FILE_BYTES + " bytes, the most one .onnx_adapter file written here can hold");
            }
        }

        FlatBufferBuilder b = new FlatBufferBuilder((int) estimate);
        int[] params = new int[tensors.size()];
        for (int i = 0; i < params.length; i++) {
            Tensor t = tensors.get(i);
            int name = b.createString(ByteBuffer.wrap(names.get(i)));
            long[] shape = t.shape();
            b.startVector(Long.BYTES, shape.length, Long.BYTES);
            for (int k = shape.length - 1; k >= 0; k--) {
                b.addLong(shape[k]);
            }
            int dims = b.endVector();
            ByteBuffer data = t.bytes();
            b.createUnintializedVector(1, data.remaining(), DATA_ALIGNMENT).put(data);
            int raw = b.endVector();
            b.startTable(4);
            b.addOffset(PARAMETER_RAW_DATA, raw, 0);
            b.addInt(PARAMETER_DATA_TYPE, t.dtype().onnxCode(), 0);
            b.addOffset(PARAMETER_DIMS, dims, 0);
            b.addOffset(PARAMETER_NAME, name, 0);
            params[i] = b.endTable();
        }
        int vector = b.createVectorOfTables(params);
        b.startTable(4);
        b.addOffset(ADAPTER_PARAMETERS, vector, 0);
        b.addInt(ADAPTER_MODEL_VERSION, modelVersion, 0);
        b.addInt(ADAPTER_ADAPTER_VERSION, adapterVersion, 0);
        b.addInt(ADAPTER_FORMAT_VERSION, FORMAT_VERSION, 0);
        int root = b.endTable();
        b.finish(root, FILE_IDENTIFIER);
        return b.sizedByteArray();
    }

    private static byte[] encodeName(String name) {
        if (name == null || name.isEmpty()) {
            throw Peft4jException.invalid("an .onnx_adapter parameter needs a name (the graph input it feeds)");
        }
        try {
            ByteBuffer b = StandardCharsets.UTF_8.newEncoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .encode(CharBuffer.wrap(name));
            byte[] out = new byte[b.remaining()];
            b.get(out);
            return out;
        } catch (CharacterCodingException e) {
            throw Peft4jException.invalid("parameter name '" + name + "' is not valid Unicode (unpaired surrogate)");
        }
    }

    private static void checkWritable(String name, Tensor t) {
        if (t == null) {
            throw Peft4jException.invalid("parameter '" + name + "' has no tensor");
        }
        DataType dt = t.dtype();
        if (dt == DataType.STRING || dt.onnxCode() > MAX_SCHEMA_DATA_TYPE) {
            throw Peft4jException.unsupported("parameter '" + name + "' is " + dt
                    + ": ONNX Runtime's adapter format holds numeric types FLOAT..FLOAT8E5M2FNUZ only");
        }
        if (dt == DataType.COMPLEX64 || dt == DataType.COMPLEX128) {
            throw Peft4jException.unsupported("parameter '" + name + "' is " + dt
                    + ": the schema lists it, but ONNX Runtime cannot load complex adapter parameters");
        }
        if (t.rank() == 0) {
            throw Peft4jException.unsupported("parameter '" + name + "' is a scalar: ONNX Runtime's adapter "
                    + "loader refuses parameters without dims; give it shape [1]");
        }
    }

    private static long align(long n, int a) {
        return (n + a - 1) / a * a;
    }

    // ---------------------------------------------------------------- reading

    /**
     * Reads and checks an adapter file. A file that is not one, is cut short or inconsistent is
     * refused with {@link ErrorCode#MALFORMED}; another format version, or complex parameters
     * (which ONNX Runtime cannot load), with {@link ErrorCode#UNSUPPORTED}; a missing or
     * unreadable file with {@link ErrorCode#IO}. What this accepts, ONNX Runtime's loader accepts.
     * The tensors share one array holding the file.
     */
    public static OnnxAdapterFile read(Path file) {
        byte[] bytes;
        try {
            long size = Files.size(file);
            if (size > MAX_FILE_BYTES) {
                throw Peft4jException.unsupported(file + ": " + size + " bytes is more than an .onnx_adapter "
                        + "file read here may hold (" + MAX_FILE_BYTES + ")");
            }
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new Peft4jException(ErrorCode.IO, "no adapter file at " + file, e);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read " + file + ": " + e.getMessage(), e);
        }
        return new Parser(bytes, file.toString(), false).parse();
    }

    /** Reads an adapter from bytes (copied: the caller may reuse the array); see {@link #read(Path)}. */
    public static OnnxAdapterFile fromBytes(byte[] bytes, String what) {
        Objects.requireNonNull(bytes, "bytes");
        return new Parser(bytes, what == null ? "adapter" : what, true).parse();
    }

    /** Offsets of each parameter's {@code raw_data} bytes from the start of the file, in file order. */
    static long[] rawDataOffsets(byte[] bytes) {
        Parser p = new Parser(bytes, "adapter", true);
        p.parse();
        return p.dataOffsets.stream().mapToLong(Long::longValue).toArray();
    }

    /**
     * A bounds-checked walk over the FlatBuffer: every position is checked before it is read, so
     * that a fault is reported with what and where, not as an index exception.
     */
    private static final class Parser {
        private final ByteBuffer buf;
        private final int size;
        private final String what;
        private final boolean copyData;
        final List<Long> dataOffsets = new ArrayList<>();

        Parser(byte[] bytes, String what, boolean copyData) {
            this.buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
            this.size = bytes.length;
            this.what = what;
            this.copyData = copyData;
        }

        OnnxAdapterFile parse() {
            if (size < 8) {
                throw bad("not an ONNX Runtime adapter file: " + size + " bytes is too short for a FlatBuffer "
                        + "header (root offset and file identifier)");
            }
            byte[] id = new byte[4];
            buf.get(4, id);
            if (!Arrays.equals(id, FILE_IDENTIFIER.getBytes(StandardCharsets.US_ASCII))) {
                throw bad("not an ONNX Runtime adapter file: expected file identifier '" + FILE_IDENTIFIER
                        + "' at bytes 4..7, found " + printable(id));
            }
            long root = u32(0);
            if (root == 0) {
                throw bad("the root offset is 0 (points to itself)");
            }
            Table adapter = table(root, "the root table (Adapter)");
            int formatVersion = adapter.int32(ADAPTER_FORMAT_VERSION, "Adapter.format_version");
            if (formatVersion != FORMAT_VERSION) {
                throw new Peft4jException(ErrorCode.UNSUPPORTED, what + ": adapter format version "
                        + formatVersion + " is not supported (this reader, like ONNX Runtime, knows version "
                        + FORMAT_VERSION + ")");
            }
            int adapterVersion = adapter.int32(ADAPTER_ADAPTER_VERSION, "Adapter.adapter_version");
            int modelVersion = adapter.int32(ADAPTER_MODEL_VERSION, "Adapter.model_version");
            long vec = adapter.offset(ADAPTER_PARAMETERS, "Adapter.parameters");
            if (vec < 0) {
                throw bad("the adapter has no parameters vector");
            }
            long count = vector(vec, Integer.BYTES, "Adapter.parameters");
            if (count >= MAX_TABLES) {
                throw bad(count + " parameters; FlatBuffers' verifier, which ONNX Runtime runs, allows at most "
                        + (MAX_TABLES - 1));
            }
            Map<String, Tensor> params = new LinkedHashMap<>();
            for (long i = 0; i < count; i++) {
                long slot = vec + 4 + 4 * i;
                String where = "parameter " + i;
                Table p = table(slot + u32(slot), where);
                String name = name(p, where);
                if (params.containsKey(name)) {
                    throw bad(where + ": duplicate parameter name '" + name + "'");
                }
                params.put(name, tensor(p, where + " ('" + name + "')"));
            }
            return new OnnxAdapterFile(formatVersion, adapterVersion, modelVersion, params);
        }

        private String name(Table p, String where) {
            long s = p.offset(PARAMETER_NAME, where + " name");
            if (s < 0) {
                throw bad(where + " has no name");
            }
            long len = vector(s, 1, where + " name");
            long end = s + 4 + len;
            if (end >= size) {
                throw bad(where + ": name runs past the end of the file (no terminating zero byte)");
            }
            if (buf.get((int) end) != 0) {
                throw bad(where + ": name is not terminated by a zero byte at offset " + end);
            }
            if (len == 0) {
                throw bad(where + " has an empty name");
            }
            try {
                return StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(buf.slice((int) (s + 4), (int) len))
                        .toString();
            } catch (CharacterCodingException e) {
                throw bad(where + ": name is not valid UTF-8");
            }
        }

        private Tensor tensor(Table p, String where) {
            long d = p.offset(PARAMETER_DIMS, where + " dims");
            if (d < 0) {
                throw bad(where + " has no dims");
            }
            long rank = vector(d, Long.BYTES, where + " dims");
            if (rank == 0) {
                throw bad(where + " has empty dims; ONNX Runtime refuses scalar parameters");
            }
            long[] shape = new long[(int) rank];
            for (int k = 0; k < rank; k++) {
                shape[k] = buf.getLong((int) (d + 4 + 8L * k));
                if (shape[k] < 0) {
                    throw bad(where + ": negative dimension " + shape[k] + " in dims");
                }
            }
            long numel;
            try {
                numel = 1;
                for (long dim : shape) {
                    numel = Math.multiplyExact(numel, dim);
                }
            } catch (ArithmeticException e) {
                throw bad(where + ": dims " + describe(shape) + " have more elements than a long holds");
            }
            int code = p.int32(PARAMETER_DATA_TYPE, where + " data_type");
            DataType dt = dataType(code, where);
            long r = p.offset(PARAMETER_RAW_DATA, where + " raw_data");
            if (r < 0) {
                throw bad(where + " has no raw_data");
            }
            long length = vector(r, 1, where + " raw_data");
            long expected = numel > Long.MAX_VALUE / 16 ? -1 : dt.byteSize(numel);
            if (length != expected) {
                throw bad(where + ": dims " + describe(shape) + " of " + dt + " need "
                        + (expected < 0 ? "more than 2^59" : String.valueOf(expected))
                        + " bytes of raw_data, the file has " + length);
            }
            dataOffsets.add(r + 4);
            ByteBuffer data = buf.slice((int) (r + 4), (int) length);
            if (copyData) {
                byte[] copy = new byte[(int) length];
                data.get(copy);
                data = ByteBuffer.wrap(copy);
            }
            return Tensor.wrap(dt, shape, data);
        }

        private DataType dataType(int code, String where) {
            if (code == 0) {
                throw bad(where + " has data type UNDEFINED (0)");
            }
            if (code == DataType.STRING.onnxCode()) {
                throw bad(where + " has data type STRING, which the adapter format cannot hold (raw bytes only)");
            }
            if (code < 0 || code > MAX_SCHEMA_DATA_TYPE) {
                throw bad(where + " has unknown data type " + code + " (the schema knows 1.."
                        + MAX_SCHEMA_DATA_TYPE + ")");
            }
            DataType dt = DataType.fromOnnx(code);
            if (dt == DataType.COMPLEX64 || dt == DataType.COMPLEX128) {
                throw new Peft4jException(ErrorCode.UNSUPPORTED, what + ": " + where + " has data type " + dt
                        + ", which the schema lists but ONNX Runtime cannot load");
            }
            return dt;
        }

        // ------------------------------------------------------------ FlatBuffers primitives

        /** A table: position checked and 4-aligned, its vtable in bounds. */
        private Table table(long pos, String where) {
            need(pos, 4, where);
            if (pos % 4 != 0) {
                throw bad(where + ": table at offset " + pos + " is not 4-byte aligned");
            }
            long vt = pos - buf.getInt((int) pos);
            need(vt, 4, where + " vtable");
            if (vt % 2 != 0) {
                throw bad(where + ": vtable at offset " + vt + " is not 2-byte aligned");
            }
            int vtSize = Short.toUnsignedInt(buf.getShort((int) vt));
            if (vtSize < 4 || vtSize % 2 != 0) {
                throw bad(where + ": vtable at offset " + vt + " has invalid size " + vtSize);
            }
            need(vt, vtSize, where + " vtable");
            return new Table(pos, vt, vtSize);
        }

        /** Checks a vector's length prefix at {@code pos} and its elements; returns the length. */
        private long vector(long pos, int elemSize, String where) {
            need(pos, 4, where);
            if (pos % 4 != 0) {
                throw bad(where + ": vector at offset " + pos + " is not 4-byte aligned");
            }
            long n = u32(pos);
            if (n * elemSize > size - pos - 4) {
                throw bad(where + ": " + n + " elements of " + elemSize + " bytes at offset " + pos
                        + " run past the end of the file (" + size + " bytes)");
            }
            return n;
        }

        private long u32(long pos) {
            need(pos, 4, "offset");
            return Integer.toUnsignedLong(buf.getInt((int) pos));
        }

        private void need(long pos, long length, String where) {
            if (pos < 0 || pos + length > size) {
                throw bad(where + ": offset " + pos + (length > 1 ? ".." + (pos + length - 1) : "")
                        + " is outside the file (" + size + " bytes; truncated or corrupt)");
            }
        }

        private Peft4jException bad(String message) {
            return Peft4jException.malformed(what + ": " + message);
        }

        private final class Table {
            private final long pos;
            private final long vtable;
            private final int vtableSize;

            Table(long pos, long vtable, int vtableSize) {
                this.pos = pos;
                this.vtable = vtable;
                this.vtableSize = vtableSize;
            }

            /** The field's absolute position, or -1 when the field is absent. */
            private long field(int slot, int width, String where) {
                int entry = 4 + 2 * slot;
                if (entry + 2 > vtableSize) {
                    return -1;
                }
                int voffset = Short.toUnsignedInt(buf.getShort((int) (vtable + entry)));
                if (voffset == 0) {
                    return -1;
                }
                long at = pos + voffset;
                need(at, width, where);
                if (at % width != 0) {
                    throw bad(where + ": field at offset " + at + " is not " + width + "-byte aligned");
                }
                return at;
            }

            int int32(int slot, String where) {
                long at = field(slot, 4, where);
                return at < 0 ? 0 : buf.getInt((int) at);
            }

            /** The absolute position an offset field points to, or -1 when absent. */
            long offset(int slot, String where) {
                long at = field(slot, 4, where);
                if (at < 0) {
                    return -1;
                }
                long offset = u32(at);
                if (offset == 0) {
                    throw bad(where + ": offset at " + at + " points to itself");
                }
                long target = at + offset;
                need(target, 1, where);
                return target;
            }
        }
    }

    private static String describe(long[] shape) {
        if (shape.length <= 8) {
            return Arrays.toString(shape);
        }
        return Arrays.toString(Arrays.copyOf(shape, 8)).replace("]", ", … (" + shape.length + " dims)]");
    }

    private static String printable(byte[] id) {
        StringBuilder s = new StringBuilder("'");
        for (byte c : id) {
            s.append(c >= 0x20 && c < 0x7f ? String.valueOf((char) c) : String.format("\\x%02x", c & 0xff));
        }
        return s.append('\'').toString();
    }

    @Override
    public String toString() {
        return "OnnxAdapterFile[format " + formatVersion + ", adapter " + adapterVersion + ", model "
                + modelVersion + ", " + parameters.size() + " parameters " + parameters.keySet() + "]";
    }
}
