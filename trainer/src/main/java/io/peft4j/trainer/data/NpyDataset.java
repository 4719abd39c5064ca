package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Npy;
import io.peft4j.core.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * A NumPy pair: {@code X.npy} ({@code [n, ...]}, the element type of the model's one input) and
 * {@code Y.npy} (int64 or int32 labels {@code [n]}), used exactly as given: rows are gathered into
 * batches byte for byte, with no resizing, normalization or augmentation. Both files are read into
 * memory when the dataset is made, and checked against the model's input and each other there.
 */
final class NpyDataset implements Dataset {

    private final Path xFile;
    private final Tensor x;
    private final int[] labels;
    private final List<String> classes;
    private final ModelInputs.Input input;
    private final long[] rowShape;
    private final int rowBytes;

    /**
     * @param classes the class names, or null to make {@code "0" .. "max label"} from these labels
     */
    NpyDataset(Path xFile, Path yFile, ModelInputs.Input input, List<String> classes) {
        for (Path p : List.of(xFile, yFile)) {
            if (!Files.exists(p)) {
                throw new Peft4jException(Peft4jException.ErrorCode.IO, "NumPy file not found: " + p);
            }
        }
        Tensor xs = Npy.read(xFile);
        Tensor ys = Npy.read(yFile);
        if (xs.dtype() != input.type()) {
            throw Peft4jException.shape(xFile + " holds " + xs.dtype() + " values; the model input '" + input.name()
                    + "' takes " + input.type());
        }
        if (xs.rank() != input.rank()) {
            throw Peft4jException.shape(xFile + " has shape " + Arrays.toString(xs.shape()) + " (rank " + xs.rank()
                    + "); the model input '" + input.name() + "' is " + input.describe() + " (rank " + input.rank() + ")");
        }
        for (int d = 1; d < xs.rank(); d++) {
            if (input.dim(d) >= 0 && input.dim(d) != xs.dim(d)) {
                throw Peft4jException.shape(xFile + " has shape " + Arrays.toString(xs.shape()) + "; the model input '"
                        + input.name() + "' is " + input.describe() + " (dimension " + d + " differs)");
            }
        }
        if (input.dim(0) >= 0 && input.dim(0) != xs.dim(0)) {
            throw Peft4jException.shape("the model input '" + input.name() + "' has a fixed batch size of " + input.dim(0)
                    + "; training needs a dynamic batch dimension");
        }
        if (ys.dtype() != DataType.INT64 && ys.dtype() != DataType.INT32) {
            throw Peft4jException.shape(yFile + " holds " + ys.dtype() + " labels; labels are int64 or int32");
        }
        if (ys.rank() != 1) {
            throw Peft4jException.shape(yFile + " has shape " + Arrays.toString(ys.shape()) + "; labels are one per example, [n]");
        }
        if (ys.dim(0) != xs.dim(0)) {
            throw Peft4jException.shape(xFile + " has " + xs.dim(0) + " examples but " + yFile + " has " + ys.dim(0)
                    + " labels");
        }
        if (xs.dim(0) == 0) {
            throw Peft4jException.invalid(xFile + " holds no examples");
        }
        long[] y = ys.toLongArray();
        long max = -1;
        for (int i = 0; i < y.length; i++) {
            if (y[i] < 0) {
                throw Peft4jException.invalid(yFile + ": label " + i + " is " + y[i] + "; labels are class indexes from 0");
            }
            if (classes != null && y[i] >= classes.size()) {
                throw Peft4jException.invalid(yFile + ": label " + i + " is " + y[i] + ", out of range for the "
                        + classes.size() + " classes of the training data");
            }
            if (y[i] > 100_000) {
                throw Peft4jException.invalid(yFile + ": label " + i + " is " + y[i] + "; more than 100000 classes is not "
                        + "a classification peft4j trains");
            }
            max = Math.max(max, y[i]);
        }
        this.xFile = xFile;
        this.x = xs;
        this.labels = Arrays.stream(y).mapToInt(v -> (int) v).toArray();
        this.classes = classes != null ? List.copyOf(classes)
                : IntStream.rangeClosed(0, (int) max).mapToObj(Integer::toString).toList();
        this.input = input;
        this.rowShape = Arrays.copyOfRange(xs.shape(), 1, xs.rank());
        this.rowBytes = Math.toIntExact(xs.byteSize() / xs.dim(0));
    }

    @Override
    public int size() {
        return labels.length;
    }

    @Override
    public List<String> classes() {
        return classes;
    }

    @Override
    public int label(int i) {
        return labels[i];
    }

    /** Rows {@code indices} of X, copied; {@code rng} is ignored (the data is used as given). */
    @Override
    public Batch batch(int[] indices, SplittableRandom rng) {
        ByteBuffer src = x.bytes();
        ByteBuffer out = ByteBuffer.allocate(Math.multiplyExact(indices.length, rowBytes));
        long[] y = new long[indices.length];
        for (int k = 0; k < indices.length; k++) {
            int i = indices[k];
            out.put(src.slice(i * rowBytes, rowBytes));
            y[k] = labels[i];
        }
        out.flip();
        long[] shape = new long[rowShape.length + 1];
        shape[0] = indices.length;
        System.arraycopy(rowShape, 0, shape, 1, rowShape.length);
        return new Batch(Map.of(input.name(), Tensor.wrap(x.dtype(), shape, out)), y);
    }

    @Override
    public String describe() {
        return "NumPy " + xFile + ": " + size() + " examples " + Arrays.toString(rowShape) + " " + x.dtype() + ", "
                + classes.size() + " classes, as given";
    }
}
