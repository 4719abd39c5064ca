package io.peft4j.devices;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Batch rows (slices along axis 0) of tensors: taking some rows out of a batch, and putting the
 * results of sub-batches back in their places. Used to split a batch by adapter and to join the
 * requests of a dynamic batch; byte copies only, any element type.
 */
public final class Rows {

    private Rows() {
    }

    /** The rows {@code rows} of {@code t}, in that order. */
    public static Tensor gather(Tensor t, int[] rows) {
        requireBatch(t, "tensor");
        long n = t.dim(0);
        long[] shape = t.shape();
        shape[0] = rows.length;
        if (t.dtype() == DataType.STRING) {
            int per = Math.toIntExact(t.numel() / Math.max(1, n));
            List<byte[]> all = t.strings();
            List<byte[]> out = new ArrayList<>(rows.length * per);
            for (int r : rows) {
                checkRow(r, n);
                out.addAll(all.subList(r * per, (r + 1) * per));
            }
            return Tensor.ofStrings(shape, out);
        }
        int rowBytes = Math.toIntExact(t.byteSize() / Math.max(1, n));
        ByteBuffer src = t.bytes();
        ByteBuffer dst = ByteBuffer.allocate(Math.multiplyExact(rowBytes, rows.length)).order(ByteOrder.LITTLE_ENDIAN);
        for (int r : rows) {
            checkRow(r, n);
            dst.put(src.slice(r * rowBytes, rowBytes));
        }
        dst.flip();
        return Tensor.wrap(t.dtype(), shape, dst);
    }

    /**
     * Joins sub-batch results into one batch of {@code total} rows: {@code parts.get(i)} holds the
     * rows {@code rows.get(i)} of the result, in that order. All parts share type and row shape.
     */
    public static Tensor scatter(List<Tensor> parts, List<int[]> rows, int total, String what) {
        Tensor first = parts.get(0);
        requireBatch(first, what);
        long[] shape = first.shape();
        shape[0] = total;
        long[] rowShape = Arrays.copyOfRange(first.shape(), 1, first.rank());
        for (int i = 0; i < parts.size(); i++) {
            Tensor p = parts.get(i);
            requireBatch(p, what);
            if (p.dtype() != first.dtype() || !Arrays.equals(Arrays.copyOfRange(p.shape(), 1, p.rank()), rowShape)
                    || p.dim(0) != rows.get(i).length) {
                throw Peft4jException.shape(what + ": sub-batch results do not line up (" + p + " for " + rows.get(i).length
                        + " rows, the first is " + first + ")");
            }
        }
        if (first.dtype() == DataType.STRING) {
            int per = Math.toIntExact(Tensor.numel(rowShape));
            byte[][] out = new byte[total * per][];
            for (int i = 0; i < parts.size(); i++) {
                List<byte[]> v = parts.get(i).strings();
                int[] rs = rows.get(i);
                for (int k = 0; k < rs.length; k++) {
                    for (int j = 0; j < per; j++) {
                        out[rs[k] * per + j] = v.get(k * per + j);
                    }
                }
            }
            return Tensor.ofStrings(shape, Arrays.asList(out));
        }
        int rowBytes = Math.toIntExact(first.dtype().byteSize(Tensor.numel(rowShape)));
        ByteBuffer dst = ByteBuffer.allocate(Math.multiplyExact(rowBytes, total)).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < parts.size(); i++) {
            ByteBuffer src = parts.get(i).bytes();
            int[] rs = rows.get(i);
            for (int k = 0; k < rs.length; k++) {
                checkRow(rs[k], total);
                dst.put(rs[k] * rowBytes, src, k * rowBytes, rowBytes);
            }
        }
        return Tensor.wrap(first.dtype(), shape, dst);
    }

    /** Joins whole batches one after another along axis 0. */
    public static Tensor concat(List<Tensor> parts, String what) {
        List<int[]> rows = new ArrayList<>();
        int next = 0;
        for (Tensor p : parts) {
            requireBatch(p, what);
            int[] r = new int[Math.toIntExact(p.dim(0))];
            for (int i = 0; i < r.length; i++) {
                r[i] = next++;
            }
            rows.add(r);
        }
        return scatter(parts, rows, next, what);
    }

    private static void requireBatch(Tensor t, String what) {
        if (t.rank() == 0) {
            throw Peft4jException.shape(what + " is a scalar; splitting or joining batches needs a batch axis first");
        }
    }

    private static void checkRow(int r, long n) {
        if (r < 0 || r >= n) {
            throw new IndexOutOfBoundsException("row " + r + " of " + n);
        }
    }
}
