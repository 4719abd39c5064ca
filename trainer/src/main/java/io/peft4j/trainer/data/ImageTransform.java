package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Pixels to model input: an optional random crop and horizontal flip, a bilinear resize to
 * {@code height × width} sampling at pixel centres, gray ↔ RGB, then {@code (v / 255 - mean[c]) / std[c]},
 * planar. Without augmentation the result is the same, to the bit, as
 * {@link io.peft4j.core.image.Images#toChw} on the same samples (the arithmetic is the same:
 * luma {@code (299 r + 587 g + 114 b) / 1000} before resizing, interpolation in double).
 * Immutable and thread-safe.
 */
final class ImageTransform {

    /** The random crop keeps between this fraction of each side and all of it. */
    static final double MIN_CROP = 0.8;

    final int channels;
    final int height;
    final int width;
    private final float[] mean;
    private final float[] std;

    ImageTransform(int channels, int height, int width, float[] mean, float[] std) {
        if (channels != 1 && channels != 3) {
            throw Peft4jException.invalid("images have 1 or 3 channels, not " + channels);
        }
        if (mean.length != channels || std.length != channels) {
            throw Peft4jException.invalid("mean and std need " + channels + " values each");
        }
        this.channels = channels;
        this.height = height;
        this.width = width;
        this.mean = mean.clone();
        this.std = std.clone();
    }

    float[] mean() {
        return mean.clone();
    }

    float[] std() {
        return std.clone();
    }

    int size() {
        return channels * height * width;
    }

    /** A window of an image ({@code y, x, height, width}) and whether it is mirrored left to right. */
    record Crop(int y, int x, int height, int width, boolean flip) {
        static Crop full(Pixels p) {
            return new Crop(0, 0, p.height(), p.width(), false);
        }

        /**
         * A random crop of a {@code h × w} image: a side fraction uniform in [{@value #MIN_CROP}, 1] (the
         * same for both sides), a uniform position, and a flip with probability 1/2; always the same
         * draws in the same order.
         */
        static Crop draw(SplittableRandom rng, int h, int w) {
            double s = MIN_CROP + (1 - MIN_CROP) * rng.nextDouble();
            int ch = Math.max(1, (int) Math.round(s * h));
            int cw = Math.max(1, (int) Math.round(s * w));
            int y = rng.nextInt(h - ch + 1);
            int x = rng.nextInt(w - cw + 1);
            return new Crop(y, x, ch, cw, rng.nextBoolean());
        }
    }

    /**
     * Writes the model input for {@code p} to {@code out[off .. off + size())}; {@code rng} non-null
     * augments with a {@link Crop#draw random crop and flip}.
     */
    void apply(Pixels p, SplittableRandom rng, float[] out, int off) {
        apply(p, rng == null ? Crop.full(p) : Crop.draw(rng, p.height(), p.width()), out, off);
    }

    /** Writes the model input for the window {@code crop} of {@code p}. */
    void apply(Pixels p, Crop crop, float[] out, int off) {
        int cy = crop.y();
        int cx = crop.x();
        int ch = crop.height();
        int cw = crop.width();
        boolean flip = crop.flip();
        if (cy < 0 || cx < 0 || ch < 1 || cw < 1 || cy + ch > p.height() || cx + cw > p.width()) {
            throw new IllegalArgumentException(crop + " is outside a " + p.height() + "x" + p.width() + " image");
        }
        int plane = height * width;
        if (channels == 1 && p.channels() == 3) {
            float[] luma = luma(p);
            resize(luma, 0, p.width(), cy, cx, ch, cw, flip, out, off);
            normalize(out, off, plane, 0);
            return;
        }
        for (int c = 0; c < channels; c++) {
            int o = off + c * plane;
            if (c > 0 && p.channels() == 1) {
                System.arraycopy(out, off, out, o, plane);
            } else {
                resize(p.data(), p.offset() + c * p.height() * p.width(), p.width(), cy, cx, ch, cw, flip, out, o);
            }
        }
        for (int c = 0; c < channels; c++) {
            normalize(out, off + c * plane, plane, c);
        }
    }

    /**
     * {@code p} resized to this transform's size as 8-bit samples (rounded), with as many channels
     * as the model takes or fewer (gray stays one plane): what a cache at model resolution keeps.
     */
    Pixels resized(Pixels p) {
        int plane = height * width;
        int outChannels = channels == 1 || p.channels() == 1 ? 1 : 3;
        float[] f = new float[outChannels * plane];
        if (outChannels == 1 && p.channels() == 3) {
            resize(luma(p), 0, p.width(), 0, 0, p.height(), p.width(), false, f, 0);
        } else {
            for (int c = 0; c < outChannels; c++) {
                resize(p.data(), p.offset() + c * p.height() * p.width(), p.width(), 0, 0, p.height(), p.width(), false,
                        f, c * plane);
            }
        }
        byte[] b = new byte[f.length];
        for (int i = 0; i < f.length; i++) {
            b[i] = (byte) Math.max(0, Math.min(255, Math.round(f[i])));
        }
        return new Pixels(outChannels, height, width, b);
    }

    private void normalize(float[] out, int off, int n, int c) {
        float m = mean[c];
        float s = std[c];
        for (int i = off; i < off + n; i++) {
            out[i] = (out[i] / 255f - m) / s;
        }
    }

    private static float[] luma(Pixels p) {
        int n = p.height() * p.width();
        byte[] d = p.data();
        int o = p.offset();
        float[] l = new float[n];
        for (int i = 0; i < n; i++) {
            float r = d[o + i] & 0xff;
            float g = d[o + n + i] & 0xff;
            float b = d[o + 2 * n + i] & 0xff;
            l[i] = (r * 299 + g * 587 + b * 114) / 1000f;
        }
        return l;
    }

    // The two kernels below are the same code over byte and float samples.

    /** Bilinear resize of the window {@code (cy, cx, ch, cw)} of a plane {@code stride} wide. */
    private void resize(byte[] src, int base, int stride, int cy, int cx, int ch, int cw, boolean flip, float[] out, int off) {
        Axis ax = Axis.of(cw, width, flip);
        Axis ay = Axis.of(ch, height, false);
        for (int y = 0; y < height; y++) {
            int r0 = base + (cy + ay.lo[y]) * stride + cx;
            int r1 = base + (cy + ay.hi[y]) * stride + cx;
            double wy = ay.w[y];
            int o = off + y * width;
            for (int x = 0; x < width; x++) {
                int a = ax.lo[x];
                int b = ax.hi[x];
                double wx = ax.w[x];
                float tl = src[r0 + a] & 0xff;
                float tr = src[r0 + b] & 0xff;
                float bl = src[r1 + a] & 0xff;
                float br = src[r1 + b] & 0xff;
                double top = tl * (1 - wx) + tr * wx;
                double bottom = bl * (1 - wx) + br * wx;
                out[o + x] = (float) (top * (1 - wy) + bottom * wy);
            }
        }
    }

    private void resize(float[] src, int base, int stride, int cy, int cx, int ch, int cw, boolean flip, float[] out, int off) {
        Axis ax = Axis.of(cw, width, flip);
        Axis ay = Axis.of(ch, height, false);
        for (int y = 0; y < height; y++) {
            int r0 = base + (cy + ay.lo[y]) * stride + cx;
            int r1 = base + (cy + ay.hi[y]) * stride + cx;
            double wy = ay.w[y];
            int o = off + y * width;
            for (int x = 0; x < width; x++) {
                int a = ax.lo[x];
                int b = ax.hi[x];
                double wx = ax.w[x];
                double top = src[r0 + a] * (1 - wx) + src[r0 + b] * wx;
                double bottom = src[r1 + a] * (1 - wx) + src[r1 + b] * wx;
                out[o + x] = (float) (top * (1 - wy) + bottom * wy);
            }
        }
    }

    /**
     * Where each output position samples along one axis: the two source positions and the weight
     * of the second. Pixel centres map onto pixel centres; positions before the first centre clamp
     * to it, as PIL and PyTorch's {@code align_corners=False} do.
     */
    private record Axis(int[] lo, int[] hi, double[] w) {
        static Axis of(int from, int to, boolean flip) {
            int[] lo = new int[to];
            int[] hi = new int[to];
            double[] w = new double[to];
            double scale = (double) from / to;
            for (int i = 0; i < to; i++) {
                double f = Math.max(0, (i + 0.5) * scale - 0.5);
                int a = Math.min((int) f, from - 1);
                lo[i] = a;
                hi[i] = Math.min(a + 1, from - 1);
                w[i] = f - a;
            }
            if (flip) {
                reverse(lo);
                reverse(hi);
                for (int i = 0, j = to - 1; i < j; i++, j--) {
                    double t = w[i];
                    w[i] = w[j];
                    w[j] = t;
                }
            }
            return new Axis(lo, hi, w);
        }

        private static void reverse(int[] a) {
            for (int i = 0, j = a.length - 1; i < j; i++, j--) {
                int t = a[i];
                a[i] = a[j];
                a[j] = t;
            }
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Axis x && Arrays.equals(lo, x.lo) && Arrays.equals(hi, x.hi) && Arrays.equals(w, x.w);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(lo);
        }
    }
}
