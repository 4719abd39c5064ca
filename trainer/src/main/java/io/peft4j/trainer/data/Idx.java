package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Optional;
import java.util.regex.Pattern;
import java.util.zip.GZIPInputStream;

/**
 * IDX files, the format of MNIST and Fashion-MNIST, plain or gzip'd (told by content, not name):
 * two zero bytes, a type byte ({@code 0x08} = unsigned byte, the only type read here), the number
 * of dimensions, each dimension as a big-endian int32, then the data in row-major order. The size
 * the header promises is checked against the data before anything is used.
 */
final class Idx {

    /** A name that marks an IDX image file: {@code train-images-idx3-ubyte[.gz]} (or {@code .idx3-ubyte}). */
    static final Pattern IMAGES = Pattern.compile("(?i).*[-.]idx3-ubyte(\\.gz)?");

    private static final int UBYTE = 0x08;

    /** An IDX array of unsigned bytes. */
    record Array(int[] dims, byte[] data) {
        int count() {
            return dims[0];
        }
    }

    private Idx() {
    }

    static Array read(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new Peft4jException(ErrorCode.IO, "IDX file not found: " + file, e);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read " + file + ": " + e.getMessage(), e);
        }
        if (bytes.length >= 2 && (bytes[0] & 0xff) == 0x1f && (bytes[1] & 0xff) == 0x8b) {
            try (InputStream in = new GZIPInputStream(new ByteArrayInputStream(bytes), 1 << 16)) {
                bytes = in.readAllBytes();
            } catch (IOException e) {
                throw new Peft4jException(ErrorCode.MALFORMED, file + " is a damaged gzip file: " + e.getMessage(), e);
            } catch (OutOfMemoryError e) {
                throw Peft4jException.unsupported(file + " unpacks to more than fits in memory");
            }
        }
        return parse(bytes, file.toString());
    }

    static Array parse(byte[] b, String what) {
        if (b.length < 4 || b[0] != 0 || b[1] != 0) {
            throw Peft4jException.malformed(what + " is not an IDX file (it does not start with two zero bytes)");
        }
        int type = b[2] & 0xff;
        int rank = b[3] & 0xff;
        if (type != UBYTE) {
            throw Peft4jException.unsupported(what + " holds IDX type 0x" + Integer.toHexString(type)
                    + "; only unsigned bytes (0x08) are read");
        }
        if (rank < 1) {
            throw Peft4jException.malformed(what + " declares 0 dimensions");
        }
        int header = 4 + 4 * rank;
        if (b.length < header) {
            throw Peft4jException.malformed(what + " is truncated in its header (" + rank + " dimensions need "
                    + header + " bytes, the file has " + b.length + ")");
        }
        int[] dims = new int[rank];
        long count = 1;
        for (int i = 0; i < rank; i++) {
            int o = 4 + 4 * i;
            dims[i] = ((b[o] & 0xff) << 24) | ((b[o + 1] & 0xff) << 16) | ((b[o + 2] & 0xff) << 8) | (b[o + 3] & 0xff);
            if (dims[i] < 0) {
                throw Peft4jException.malformed(what + " declares dimension " + i + " as " + (dims[i] & 0xffffffffL)
                        + ", more than an IDX reader accepts");
            }
            count *= dims[i];
            if (count > Integer.MAX_VALUE - 64) {
                throw Peft4jException.unsupported(what + " declares " + Arrays.toString(dims) + ": more than 2 GB");
            }
        }
        long have = b.length - header;
        if (have < count) {
            throw Peft4jException.malformed(what + " is truncated: shape " + Arrays.toString(dims) + " needs " + count
                    + " bytes of data, the file has " + have);
        }
        if (have > count) {
            throw Peft4jException.malformed(what + " has " + (have - count) + " bytes after the " + count
                    + " its header " + Arrays.toString(dims) + " declares");
        }
        return new Array(dims, Arrays.copyOfRange(b, header, b.length));
    }

    /**
     * The labels file that goes with an images file: the same name with {@code images} → {@code labels}
     * and {@code idx3} → {@code idx1}, gzip'd or not.
     */
    static Optional<Path> labelsFor(Path images) {
        String name = images.getFileName().toString();
        String base = name.replaceFirst("(?i)\\.gz$", "");
        String labels = base.replace("images", "labels").replace("idx3", "idx1");
        if (labels.equals(base)) {
            return Optional.empty();
        }
        Path dir = images.toAbsolutePath().getParent();
        for (String candidate : new String[] {labels + ".gz", labels}) {
            Path p = dir.resolve(candidate);
            if (Files.isRegularFile(p)) {
                return Optional.of(p);
            }
        }
        return Optional.empty();
    }

    /** The in-memory pixels of an IDX image file, as an image source (one gray plane each). */
    static final class Images implements ImageDataset.Source {
        private final Path file;
        private final int rows;
        private final int cols;
        private final byte[] data;
        private final int count;

        Images(Path file, Array a) {
            if (a.dims().length != 3) {
                throw Peft4jException.shape(file + " holds an IDX array of shape " + Arrays.toString(a.dims())
                        + "; images are [count, rows, columns]");
            }
            if (a.dims()[1] < 1 || a.dims()[2] < 1) {
                throw Peft4jException.shape(file + " holds images of " + a.dims()[1] + "x" + a.dims()[2] + " pixels");
            }
            this.file = file;
            this.count = a.dims()[0];
            this.rows = a.dims()[1];
            this.cols = a.dims()[2];
            this.data = a.data();
        }

        @Override
        public int size() {
            return count;
        }

        @Override
        public Pixels load(int i) {
            return new Pixels(1, rows, cols, data, i * rows * cols);
        }

        @Override
        public String name(int i) {
            return file + " image " + i;
        }

        @Override
        public boolean inMemory() {
            return true;
        }

        @Override
        public long decodedBytes() {
            return data.length;
        }
    }
}
