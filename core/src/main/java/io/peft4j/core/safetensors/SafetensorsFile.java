package io.peft4j.core.safetensors;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A safetensors file opened for reading: a validated header and a view of the data section.
 *
 * <p>The format is an 8-byte little-endian unsigned header length {@code N}, {@code N} bytes of
 * UTF-8 JSON (an object mapping tensor names to {@code {"dtype", "shape", "data_offsets"}}, plus an
 * optional {@code "__metadata__"} object of strings, possibly padded at its end with spaces), then
 * the data section, which the tensors must cover exactly, without gaps or overlaps.
 *
 * <p><b>What maps, what copies, who closes.</b> {@link #open(Path)} memory-maps the file read-only;
 * {@link #tensor(String)} returns a {@link Tensor} that is a view over the mapped bytes, not a copy.
 * {@link #parse(ByteBuffer)} does the same over bytes already in memory. {@link #readAll(Path)}
 * copies every tensor onto the heap and closes the file before it returns. The caller of
 * {@code open} or {@code parse} owns the returned object and must {@link #close()} it (use
 * try-with-resources). Java has no safe way to unmap a file explicitly, so tensors obtained before
 * {@code close()} stay readable after it; the mapping is released by the garbage collector once
 * no tensor refers to it. If another process truncates the file while it is mapped, reading a
 * tensor can fail with a JVM {@code InternalError}; use {@link #readAll(Path)} for files that may
 * change underneath.
 *
 * <p><b>Validation.</b> Opening or parsing checks the whole header and the layout of the data
 * section, so every {@link #tensor(String)} of an opened file succeeds. Anything wrong is reported
 * as a {@link Peft4jException} with code {@link Peft4jException.ErrorCode#MALFORMED} (or
 * {@link Peft4jException.ErrorCode#UNSUPPORTED}) whose message names the file, the tensor and the
 * problem; no other exception escapes for any input. The header may be at most
 * {@link #MAX_HEADER_BYTES} bytes, the same limit as the reference Rust implementation.
 *
 * <p>Files up to 2 GiB are mapped in one piece. Larger files are mapped one tensor at a time on
 * request, and a single tensor larger than 2 GiB (the limit of a Java buffer) cannot be returned:
 * {@link #tensor(String)} reports it as UNSUPPORTED.
 *
 * <p>Instances are safe to use from several threads; {@code close()} while another thread is
 * reading a tensor is not.
 */
public final class SafetensorsFile implements AutoCloseable {

    /** The largest header accepted, in bytes (100 MB, as in the reference implementation). */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    /** The header key under which the file's string metadata is stored. */
    public static final String METADATA_KEY = "__metadata__";

    /** A tensor's header entry: its name, type, shape and place in the data section. */
    public record Entry(String name, DataType dtype, long[] shape, long begin, long end) {
        public Entry {
            shape = shape.clone();
        }

        /** A copy of the shape. */
        @Override
        public long[] shape() {
            return shape.clone();
        }

        /** Bytes of data, {@code end - begin}. */
        public long byteSize() {
            return end - begin;
        }

        public long numel() {
            return Tensor.numel(shape);
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Entry e && name.equals(e.name) && dtype == e.dtype
                    && Arrays.equals(shape, e.shape) && begin == e.begin && end == e.end;
        }

        @Override
        public int hashCode() {
            return name.hashCode() * 31 + Arrays.hashCode(shape);
        }

        @Override
        public String toString() {
            return name + ": " + dtype + " " + Arrays.toString(shape) + " [" + begin + ", " + end + ")";
        }
    }

    private final String source;
    private final Map<String, Entry> entries;
    private final List<String> names;
    private final Map<String, String> metadata;
    /** The whole data section, when it fits in one buffer; otherwise null. */
    private volatile ByteBuffer data;
    /** The open file, when the data section is mapped tensor by tensor; otherwise null. */
    private volatile FileChannel channel;
    private final long dataStart;
    private volatile boolean closed;

    private SafetensorsFile(String source, SafetensorsHeader header, ByteBuffer data,
                            FileChannel channel, long dataStart) {
        this.source = source;
        this.metadata = Collections.unmodifiableMap(header.metadata());
        Map<String, Entry> byName = new LinkedHashMap<>();
        for (Entry e : header.entriesInDataOrder()) {
            byName.put(e.name(), e);
        }
        this.entries = Collections.unmodifiableMap(byName);
        this.names = List.copyOf(byName.keySet());
        this.data = data;
        this.channel = channel;
        this.dataStart = dataStart;
    }

    // ---------------------------------------------------------------- opening

    /**
     * Opens and validates a safetensors file, memory-mapping it read-only. The caller must close
     * the result.
     *
     * @throws Peft4jException IO if the file cannot be read, MALFORMED if it is not a valid
     *                         safetensors file
     */
    public static SafetensorsFile open(Path path) {
        String source = "safetensors file '" + path + "'";
        FileChannel ch = null;
        boolean keepChannel = false;
        try {
            ch = FileChannel.open(path, StandardOpenOption.READ);
            long size = ch.size();
            ByteBuffer lengthBytes = readFully(ch, 0, (int) Math.min(8, size));
            long headerLength = SafetensorsHeader.checkHeaderLength(source, lengthBytes, size);
            ByteBuffer headerBytes = readFully(ch, 8, (int) headerLength);
            long dataStart = 8 + headerLength;
            SafetensorsHeader header = SafetensorsHeader.parse(source, headerBytes.array(), size - dataStart);
            SafetensorsFile file;
            if (size <= Integer.MAX_VALUE) {
                // one mapping for the whole data section; it stays valid after the channel is closed
                ByteBuffer section = ch.map(FileChannel.MapMode.READ_ONLY, dataStart, size - dataStart);
                file = new SafetensorsFile(source, header, section, null, dataStart);
            } else {
                file = new SafetensorsFile(source, header, null, ch, dataStart);
                keepChannel = true;
            }
            return file;
        } catch (IOException e) {
            throw new Peft4jException(Peft4jException.ErrorCode.IO,
                    "cannot read " + source + ": " + e, e);
        } finally {
            if (ch != null && !keepChannel) {
                closeQuietly(ch);
            }
        }
    }

    /**
     * Parses and validates a safetensors file held in memory, from {@code bytes}' position to its
     * limit. Nothing is copied except the header: tensors are read-only views over {@code bytes},
     * which the caller must not change while they are in use. The position of {@code bytes} is
     * not changed.
     *
     * @throws Peft4jException MALFORMED if the bytes are not a valid safetensors file
     */
    public static SafetensorsFile parse(ByteBuffer bytes) {
        return parse(bytes, "in-memory safetensors data");
    }

    /**
     * Like {@link #parse(ByteBuffer)}, naming the data {@code description} (an upload's file name,
     * say) in error messages.
     */
    public static SafetensorsFile parse(ByteBuffer bytes, String description) {
        String source = "safetensors data '" + description + "'";
        ByteBuffer all = bytes.slice().asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
        long size = all.remaining();
        ByteBuffer lengthBytes = all.slice(0, (int) Math.min(8, size));
        long headerLength = SafetensorsHeader.checkHeaderLength(source, lengthBytes, size);
        byte[] header = new byte[(int) headerLength];
        all.get(8, header);
        int dataStart = 8 + (int) headerLength;
        SafetensorsHeader parsed = SafetensorsHeader.parse(source, header, size - dataStart);
        ByteBuffer section = all.slice(dataStart, (int) size - dataStart);
        return new SafetensorsFile(source, parsed, section, null, dataStart);
    }

    /**
     * Reads every tensor of a file into heap memory and closes the file. The returned tensors are
     * copies that do not refer to the file, so it may be replaced or deleted afterwards, and the
     * temporary mapping is released by the garbage collector. The map iterates in
     * {@link #names()} order.
     *
     * @throws Peft4jException as {@link #open(Path)}; UNSUPPORTED if a tensor is over 2 GiB
     */
    public static Map<String, Tensor> readAll(Path path) {
        try (SafetensorsFile file = open(path)) {
            Map<String, Tensor> out = new LinkedHashMap<>();
            for (String name : file.names()) {
                out.put(name, copyToHeap(file.tensor(name)));
            }
            return out;
        }
    }

    // ---------------------------------------------------------------- access

    /**
     * The tensor names in data-section order (ascending {@code data_offsets}; zero-size tensors that
     * share an offset keep their header order). Unmodifiable.
     */
    public List<String> names() {
        checkOpen();
        return names;
    }

    public boolean contains(String name) {
        checkOpen();
        return entries.containsKey(name);
    }

    /** The {@code __metadata__} strings, in header order; empty if the file has none. Unmodifiable. */
    public Map<String, String> metadata() {
        checkOpen();
        return metadata;
    }

    /** The header entry of a tensor: type, shape and offsets, without touching its data. */
    public Entry entry(String name) {
        checkOpen();
        Entry e = entries.get(name);
        if (e == null) {
            throw Peft4jException.notFound(source + " has no tensor " + SafetensorsHeader.quote(name));
        }
        return e;
    }

    /** All header entries, in {@link #names()} order. */
    public List<Entry> entries() {
        checkOpen();
        return List.copyOf(entries.values());
    }

    /**
     * The named tensor as a read-only view over the file's bytes (no copy). It stays valid after
     * {@link #close()}.
     *
     * @throws Peft4jException NOT_FOUND for an unknown name, UNSUPPORTED for a tensor over 2 GiB
     */
    public Tensor tensor(String name) {
        Entry e = entry(name);
        ByteBuffer section = data;
        FileChannel ch = channel;
        if (section == null && ch == null) {
            checkOpen(); // closed by another thread since entry()
        }
        long length = e.byteSize();
        if (length > Integer.MAX_VALUE) {
            throw Peft4jException.unsupported(source + ": tensor " + SafetensorsHeader.quote(name)
                    + " has " + length + " bytes; tensors over 2 GiB cannot be held in one Java buffer");
        }
        ByteBuffer bytes;
        if (section != null) {
            bytes = section.slice((int) e.begin(), (int) length);
        } else {
            try {
                bytes = ch.map(FileChannel.MapMode.READ_ONLY, dataStart + e.begin(), length);
            } catch (IOException ex) {
                throw new Peft4jException(Peft4jException.ErrorCode.IO, "cannot map tensor "
                        + SafetensorsHeader.quote(name) + " of " + source + ": " + ex, ex);
            }
        }
        return Tensor.wrap(e.dtype(), e.shape(), bytes.order(ByteOrder.LITTLE_ENDIAN));
    }

    /** Where the data comes from, as used in messages (e.g. {@code safetensors file 'a.safetensors'}). */
    public String source() {
        return source;
    }

    /**
     * Releases the file. Idempotent; never throws. Afterwards every method except this one and
     * {@link #source()} fails with an IO error. Tensors already returned stay valid.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        data = null;
        if (channel != null) {
            closeQuietly(channel);
            channel = null;
        }
    }

    // ---------------------------------------------------------------- helpers

    private void checkOpen() {
        if (closed) {
            throw new Peft4jException(Peft4jException.ErrorCode.IO, source + " is closed");
        }
    }

    static Tensor copyToHeap(Tensor t) {
        ByteBuffer src = t.bytes();
        byte[] copy = new byte[src.remaining()];
        src.get(copy);
        return Tensor.wrap(t.dtype(), t.shape(), ByteBuffer.wrap(copy));
    }

    private static ByteBuffer readFully(FileChannel ch, long position, int length) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        while (buf.hasRemaining()) {
            int n = ch.read(buf, position + buf.position());
            if (n < 0) {
                throw new IOException("file ended early (was it changed while being read?)");
            }
        }
        return buf.flip();
    }

    private static void closeQuietly(FileChannel ch) {
        try {
            ch.close();
        } catch (IOException ignored) {
            // nothing was written, so there is nothing to lose
        }
    }
}
