package io.peft4j.core.onnx;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.onnx.proto.Onnx.ModelProto;
import io.peft4j.core.onnx.proto.Onnx.StringStringEntryProto;
import io.peft4j.core.onnx.proto.Onnx.TensorProto;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.util.AtomicFiles;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;

/**
 * Reads and writes ONNX models.
 *
 * <p>Reading memory-maps the file and parses it without copying tensor bytes; initializers kept in
 * external data files (ONNX's {@code data_location = EXTERNAL}, used by models over 2 GB) are
 * memory-mapped too, after their location, offset and length are checked against the model's
 * directory and the file's size. Writing goes to temporary files that are moved into place, so a
 * failure never leaves a half-written file; initializers that were external stay external (in one
 * data file beside the model) unless {@link WriteOptions} says otherwise. A model and its data file
 * are two renames: a crash between them (data first) leaves the old model beside the new data.
 */
public final class OnnxIO {

    /** Protobuf cannot serialize a message of 2 GiB or more. */
    static final long PROTOBUF_LIMIT = Integer.MAX_VALUE;
    /** External tensors start at multiples of this, so each can be mapped efficiently. */
    static final int EXTERNAL_ALIGNMENT = 64;

    private OnnxIO() {
    }

    /** Where initializers go when a model is written. */
    public enum ExternalData {
        /** External where they were external when read; everything else inline. */
        KEEP,
        /** Every initializer of at least {@code sizeThreshold} bytes goes to the data file. */
        ALL,
        /** Everything inline (refused when the model would pass protobuf's 2 GiB limit). */
        NONE
    }

    /**
     * @param externalData  which initializers are written to the data file
     * @param dataFileName  the data file's name, beside the model; null means {@code <model file>.data}
     * @param sizeThreshold with {@link ExternalData#ALL}: smaller initializers stay inline
     */
    public record WriteOptions(ExternalData externalData, String dataFileName, long sizeThreshold) {
        public WriteOptions {
            if (externalData == null) {
                throw Peft4jException.invalid("externalData must be given");
            }
            if (sizeThreshold < 0) {
                throw Peft4jException.invalid("sizeThreshold must be >= 0");
            }
            if (dataFileName != null && (dataFileName.isEmpty() || dataFileName.contains("/")
                    || dataFileName.contains("\\") || dataFileName.equals("..") || dataFileName.equals("."))) {
                throw Peft4jException.invalid("external data file name must be a plain file name, got '" + dataFileName + "'");
            }
        }

        public static WriteOptions keep() {
            return new WriteOptions(ExternalData.KEEP, null, 1024);
        }

        public static WriteOptions inline() {
            return new WriteOptions(ExternalData.NONE, null, 0);
        }

        public static WriteOptions allExternal() {
            return new WriteOptions(ExternalData.ALL, null, 1024);
        }
    }

    // ---------------------------------------------------------------- reading

    /** Reads a model file, resolving external data against the file's directory. */
    public static Model read(Path file) {
        ModelProto proto = readProto(file);
        refuseNestedExternalData(proto.getGraph(), true, file.toString());
        Path dir = file.toAbsolutePath().getParent();
        try (ExternalDataReader ext = new ExternalDataReader(dir, file)) {
            Graph g = Graph.fromProto(proto.getGraph(), t -> ext.tensor(t));
            return Model.fromProto(proto, g);
        }
    }

    /** Reads a model from bytes; a model that refers to external data is refused. */
    public static Model read(byte[] bytes, String what) {
        ModelProto proto = parse(CodedInputStream.newInstance(bytes), what);
        Graph g = Graph.fromProto(proto.getGraph(), t -> TensorProtos.toTensor(t, "initializer '" + t.getName() + "' of " + what));
        return Model.fromProto(proto, g);
    }

    /** Parses and sanity-checks the model proto in {@code file} (external data is not resolved). */
    public static ModelProto readProto(Path file) {
        if (!Files.exists(file)) {
            throw new Peft4jException(ErrorCode.IO, "model file not found: " + file);
        }
        if (Files.isDirectory(file)) {
            throw new Peft4jException(ErrorCode.IO, file + " is a directory, not an ONNX model file");
        }
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size == 0) {
                throw Peft4jException.malformed(file + " is not an ONNX model: the file is empty");
            }
            if (size >= PROTOBUF_LIMIT) {
                throw Peft4jException.malformed(file + " is " + size + " bytes; an ONNX model file must be under 2 GiB "
                        + "(larger models keep their weights in external data files)");
            }
            MappedByteBuffer buf = ch.map(FileChannel.MapMode.READ_ONLY, 0, size);
            CodedInputStream in = CodedInputStream.newInstance(buf);
            in.enableAliasing(true);
            return parse(in, file.toString());
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    private static ModelProto parse(CodedInputStream in, String what) {
        in.setSizeLimit(Integer.MAX_VALUE);
        in.setRecursionLimit(1000);
        ModelProto p;
        try {
            p = ModelProto.parseFrom(in);
        } catch (InvalidProtocolBufferException e) {
            String msg = String.valueOf(e.getMessage());
            if (msg.contains("ended unexpectedly") || msg.contains("truncated")) {
                throw new Peft4jException(ErrorCode.MALFORMED, what + " is truncated or not an ONNX model (" + msg + ")", e);
            }
            throw new Peft4jException(ErrorCode.MALFORMED, what + " is not an ONNX model (" + msg + ")", e);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read " + what + ": " + e.getMessage(), e);
        }
        if (!p.hasGraph()) {
            throw Peft4jException.malformed(what + " is not an ONNX model: it has no graph");
        }
        if (p.getIrVersion() <= 0) {
            throw Peft4jException.malformed(what + " is not an ONNX model: it has no IR version");
        }
        if (p.getIrVersion() >= 3 && p.getOpsetImportCount() == 0) {
            throw Peft4jException.malformed(what + " is not a valid ONNX model: it imports no opset");
        }
        return p;
    }

    /**
     * External data is resolved for the main graph's initializers. Anywhere else (subgraph
     * initializers, Constant and other attribute tensors, sparse initializers) it is refused: a
     * rewrite would otherwise move the data file's contents under references it does not update.
     */
    private static void refuseNestedExternalData(io.peft4j.core.onnx.proto.Onnx.GraphProto g, boolean main, String what) {
        if (!main) {
            for (TensorProto t : g.getInitializerList()) {
                refuseExternal(t, "subgraph initializer '" + t.getName() + "'", what);
            }
        }
        for (io.peft4j.core.onnx.proto.Onnx.SparseTensorProto s : g.getSparseInitializerList()) {
            refuseExternal(s.getValues(), "sparse initializer '" + s.getValues().getName() + "'", what);
            refuseExternal(s.getIndices(), "sparse initializer '" + s.getValues().getName() + "'", what);
        }
        for (io.peft4j.core.onnx.proto.Onnx.NodeProto n : g.getNodeList()) {
            for (io.peft4j.core.onnx.proto.Onnx.AttributeProto a : n.getAttributeList()) {
                String where = "attribute '" + a.getName() + "' of node '" + n.getName() + "'";
                if (a.hasT()) {
                    refuseExternal(a.getT(), where, what);
                }
                for (TensorProto t : a.getTensorsList()) {
                    refuseExternal(t, where, what);
                }
                if (a.hasG()) {
                    refuseNestedExternalData(a.getG(), false, what);
                }
                for (io.peft4j.core.onnx.proto.Onnx.GraphProto sg : a.getGraphsList()) {
                    refuseNestedExternalData(sg, false, what);
                }
            }
        }
    }

    private static void refuseExternal(TensorProto t, String where, String what) {
        if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
            throw Peft4jException.unsupported(what + ": " + where + " keeps its data in an external file; peft4j reads "
                    + "external data for the main graph's initializers only");
        }
    }

    /** Maps external data regions; closing releases the channels (mappings stay valid). */
    private static final class ExternalDataReader implements AutoCloseable {
        private final Path dir;
        private final Path modelFile;
        private final Map<Path, FileChannel> channels = new HashMap<>();

        ExternalDataReader(Path dir, Path modelFile) {
            this.dir = dir;
            this.modelFile = modelFile;
        }

        Tensor tensor(TensorProto t) {
            String what = "initializer '" + t.getName() + "' of " + modelFile;
            if (t.getDataLocation() != TensorProto.DataLocation.EXTERNAL) {
                return TensorProtos.toTensor(t, what);
            }
            String location = null;
            long offset = 0;
            long length = -1;
            for (StringStringEntryProto e : t.getExternalDataList()) {
                switch (e.getKey()) {
                    case "location" -> location = e.getValue();
                    case "offset" -> offset = parseLong(e.getValue(), "offset", what);
                    case "length" -> length = parseLong(e.getValue(), "length", what);
                    default -> {
                        // checksum and unknown keys are informational
                    }
                }
            }
            if (location == null || location.isEmpty()) {
                throw Peft4jException.malformed(what + " is stored externally but names no location");
            }
            var dtype = TensorProtos.dataType(t, what);
            long[] shape = TensorProtos.dims(t, what);
            long expected = dtype.byteSize(Tensor.numel(shape));
            if (length >= 0 && length != expected) {
                throw Peft4jException.malformed(what + ": external length " + length + " does not match its type and shape ("
                        + expected + " bytes)");
            }
            Path file = resolve(location, what);
            try {
                FileChannel ch = channels.get(file);
                if (ch == null) {
                    ch = FileChannel.open(file, StandardOpenOption.READ);
                    channels.put(file, ch);
                }
                long size = ch.size();
                if (offset > size || expected > size - offset) {
                    throw Peft4jException.malformed(what + ": external data [" + offset + ", " + (offset + expected)
                            + ") runs past the end of " + location + " (" + size + " bytes)");
                }
                if (expected > Integer.MAX_VALUE - 8) {
                    throw Peft4jException.unsupported(what + " is larger than 2 GiB, which one Java buffer cannot map");
                }
                ByteBuffer region = expected == 0 ? ByteBuffer.allocate(0) : ch.map(FileChannel.MapMode.READ_ONLY, offset, expected);
                return Tensor.wrap(dtype, shape, region);
            } catch (NoSuchFileException e) {
                throw new Peft4jException(ErrorCode.IO, what + ": external data file not found: " + file, e);
            } catch (IOException e) {
                throw new Peft4jException(ErrorCode.IO, what + ": cannot read external data " + file + ": " + e.getMessage(), e);
            }
        }

        private Path resolve(String location, String what) {
            Path rel;
            try {
                rel = Path.of(location);
            } catch (java.nio.file.InvalidPathException e) {
                throw Peft4jException.malformed(what + ": external data location '" + location.replace("\0", "\\0")
                        + "' is not a valid path");
            }
            if (rel.isAbsolute()) {
                throw Peft4jException.malformed(what + ": external data location '" + location + "' must be relative to the model");
            }
            Path file = dir.resolve(rel).normalize();
            if (!file.startsWith(dir.normalize())) {
                throw Peft4jException.malformed(what + ": external data location '" + location + "' points outside the model's directory");
            }
            try {
                if (Files.exists(file) && !file.toRealPath().startsWith(dir.toRealPath())) {
                    throw Peft4jException.malformed(what + ": external data location '" + location + "' links outside the model's directory");
                }
            } catch (IOException e) {
                throw new Peft4jException(ErrorCode.IO, what + ": cannot resolve " + file + ": " + e.getMessage(), e);
            }
            return file;
        }

        private static long parseLong(String v, String key, String what) {
            try {
                long l = Long.parseLong(v.trim());
                if (l < 0) {
                    throw Peft4jException.malformed(what + ": negative external data " + key + " " + v);
                }
                return l;
            } catch (NumberFormatException e) {
                throw Peft4jException.malformed(what + ": external data " + key + " '" + v + "' is not a number");
            }
        }

        @Override
        public void close() {
            for (FileChannel ch : channels.values()) {
                try {
                    ch.close();
                } catch (IOException ignored) {
                    // read-only channel: nothing to lose
                }
            }
        }
    }

    // ---------------------------------------------------------------- writing

    /** Writes with {@link WriteOptions#keep()}. */
    public static void write(Model model, Path file) {
        write(model, file, WriteOptions.keep());
    }

    /**
     * Writes {@code model} to {@code file} (and, when some initializers go external, a data file
     * beside it). Both are written under temporary names and moved into place, data file first.
     */
    public static void write(Model model, Path file, WriteOptions options) {
        Path dir = file.toAbsolutePath().getParent();
        String dataName = options.dataFileName() != null ? options.dataFileName() : file.getFileName() + ".data";
        Graph g = model.graph();
        long inlineBytes = 0;
        for (Map.Entry<String, Tensor> e : g.initializers().entrySet()) {
            if (!goesExternal(options, g, e.getKey(), e.getValue(), false)) {
                inlineBytes += e.getValue().byteSize();
            }
        }
        if (options.externalData() == ExternalData.NONE && inlineBytes >= PROTOBUF_LIMIT - (64L << 20)) {
            throw Peft4jException.unsupported("the model's weights (" + inlineBytes + " bytes) are over protobuf's 2 GiB "
                    + "limit for one file; write them as external data");
        }
        boolean forceExternal = options.externalData() != ExternalData.NONE && inlineBytes >= PROTOBUF_LIMIT - (64L << 20);
        try {
            Files.createDirectories(dir);
            Path dataTmp = null;
            ModelProto proto;
            try (ExternalDataWriter ext = new ExternalDataWriter(dir, dataName)) {
                proto = model.headerProto().setGraph(g.toProto((name, t, wasExternal) -> {
                    if (t.dtype() != io.peft4j.core.tensor.DataType.STRING
                            && goesExternal(options, g, name, t, forceExternal)) {
                        return ext.append(name, t);
                    }
                    return TensorProtos.toProto(name, t);
                })).build();
                dataTmp = ext.finish();
            }
            long size = proto.getSerializedSize();
            if (size < 0 || size >= PROTOBUF_LIMIT) {
                AtomicFiles.deleteQuietly(dataTmp);
                throw Peft4jException.unsupported("the model is over protobuf's 2 GiB limit; write its weights as external data");
            }
            // both files complete before either moves: the window for a mismatched pair is two renames
            Path modelTmp;
            try {
                modelTmp = AtomicFiles.writeTemp(file, out -> writeProto(proto, out));
            } catch (Peft4jException e) {
                AtomicFiles.deleteQuietly(dataTmp);
                throw e;
            }
            try {
                if (dataTmp != null) {
                    AtomicFiles.moveIntoPlace(dataTmp, dir.resolve(dataName));
                    dataTmp = null;
                }
                AtomicFiles.moveIntoPlace(modelTmp, file);
            } finally {
                AtomicFiles.deleteQuietly(dataTmp);
                AtomicFiles.deleteQuietly(Files.exists(modelTmp) ? modelTmp : null);
            }
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot write " + file + ": " + e.getMessage(), e);
        }
    }

    private static boolean goesExternal(WriteOptions o, Graph g, String name, Tensor t, boolean force) {
        return switch (o.externalData()) {
            case NONE -> false;
            case KEEP -> g.isStoredExternally(name) || (force && t.byteSize() >= 1024);
            case ALL -> t.byteSize() >= o.sizeThreshold();
        };
    }

    private static void writeProto(ModelProto proto, OutputStream out) throws IOException {
        CodedOutputStream cos = CodedOutputStream.newInstance(out, 1 << 16);
        proto.writeTo(cos);
        cos.flush();
    }

    /** The model as bytes, every initializer inline (for in-memory ONNX Runtime sessions). */
    public static byte[] toBytes(Model model) {
        ModelProto p = toProto(model);
        if (p.getSerializedSize() < 0) {
            throw Peft4jException.unsupported("the model is over protobuf's 2 GiB limit and cannot be held in one byte array");
        }
        return p.toByteArray();
    }

    /** The model as a proto, every initializer inline. */
    public static ModelProto toProto(Model model) {
        long bytes = 0;
        for (Tensor t : model.graph().initializers().values()) {
            bytes += t.byteSize();
        }
        if (bytes >= PROTOBUF_LIMIT - (64L << 20)) {
            throw Peft4jException.unsupported("the model's weights (" + bytes + " bytes) are over protobuf's 2 GiB limit "
                    + "for one message; write it to a file with external data");
        }
        return model.headerProto().setGraph(model.graph().toProto((name, t, wasExternal) -> TensorProtos.toProto(name, t))).build();
    }

    /** Appends tensors to a temporary data file, aligned, and describes where each went. */
    private static final class ExternalDataWriter implements AutoCloseable {
        private final Path dir;
        private final String location;
        private Path tmp;
        private FileChannel ch;
        private long offset;
        private boolean finished;

        ExternalDataWriter(Path dir, String location) {
            this.dir = dir;
            this.location = location;
        }

        TensorProto append(String name, Tensor t) {
            try {
                if (ch == null) {
                    tmp = Files.createTempFile(dir, "." + location + ".", ".tmp");
                    AtomicFiles.shareLikeTarget(tmp, dir.resolve(location));
                    ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
                }
                long pad = (EXTERNAL_ALIGNMENT - offset % EXTERNAL_ALIGNMENT) % EXTERNAL_ALIGNMENT;
                if (pad > 0) {
                    writeFully(ByteBuffer.allocate((int) pad));
                    offset += pad;
                }
                long start = offset;
                ByteBuffer data = t.bytes();
                writeFully(data);
                offset += t.byteSize();
                return TensorProtos.header(name, t)
                        .setDataLocation(TensorProto.DataLocation.EXTERNAL)
                        .addExternalData(entry("location", location))
                        .addExternalData(entry("offset", Long.toString(start)))
                        .addExternalData(entry("length", Long.toString(t.byteSize())))
                        .build();
            } catch (IOException e) {
                throw new Peft4jException(ErrorCode.IO, "cannot write external data for " + name + ": " + e.getMessage(), e);
            }
        }

        private void writeFully(ByteBuffer b) throws IOException {
            while (b.hasRemaining()) {
                ch.write(b);
            }
        }

        private static StringStringEntryProto entry(String k, String v) {
            return StringStringEntryProto.newBuilder().setKey(k).setValue(v).build();
        }

        /** Flushes and returns the temporary file, or null when nothing went external. */
        Path finish() throws IOException {
            finished = true;
            if (ch == null) {
                return null;
            }
            ch.force(true);
            ch.close();
            return tmp;
        }

        @Override
        public void close() throws IOException {
            if (ch != null && ch.isOpen()) {
                ch.close();
            }
            if (!finished && tmp != null) {
                Files.deleteIfExists(tmp);
            }
        }
    }
}
