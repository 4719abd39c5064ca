package io.peft4j.core.image;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.tensor.Tensor;

import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.List;

/**
 * Decoding images (PNG, JPEG, BMP, GIF through ImageIO) and turning them into model input:
 * resize with bilinear interpolation on pixel centres (as PIL and PyTorch's
 * {@code align_corners=False} do), gray or RGB, scaled to [0,1], normalized per channel, NCHW.
 * Images are measured before they are decoded, and ones over {@link #MAX_PIXELS} are refused, so a
 * small file that claims to be enormous cannot exhaust memory.
 */
public final class Images {

    /** The largest image decoded: 64 megapixels. */
    public static final long MAX_PIXELS = 64L << 20;

    private Images() {
    }

    public static BufferedImage read(Path file) {
        try {
            return decode(Files.readAllBytes(file), file.toString());
        } catch (java.nio.file.NoSuchFileException e) {
            throw new Peft4jException(ErrorCode.IO, "image not found: " + file, e);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    public static BufferedImage decode(byte[] bytes, String what) {
        // in memory: ImageIO's default stream for a byte array goes through a temporary file cache
        try (ImageInputStream in = new javax.imageio.stream.MemoryCacheImageInputStream(new ByteArrayInputStream(bytes))) {
            Iterator<ImageReader> readers = in == null ? null : ImageIO.getImageReaders(in);
            if (readers == null || !readers.hasNext()) {
                throw Peft4jException.malformed(what + " is not an image peft4j can read (PNG, JPEG, BMP or GIF)");
            }
            ImageReader r = readers.next();
            try {
                r.setInput(in, true, true);
                long pixels = (long) r.getWidth(0) * r.getHeight(0);
                if (r.getWidth(0) <= 0 || r.getHeight(0) <= 0 || pixels > MAX_PIXELS) {
                    throw Peft4jException.invalid(what + " is " + r.getWidth(0) + "x" + r.getHeight(0)
                            + " pixels; images up to " + MAX_PIXELS + " pixels are accepted");
                }
                BufferedImage img = r.read(0);
                if (img == null) {
                    throw Peft4jException.malformed(what + " could not be decoded");
                }
                return img;
            } finally {
                r.dispose();
            }
        } catch (IOException | RuntimeException e) {
            if (e instanceof Peft4jException p) {
                throw p;
            }
            throw new Peft4jException(ErrorCode.MALFORMED, what + " is not a readable image: " + e.getMessage(), e);
        }
    }

    /**
     * One image as a {@code [channels, height, width]} float array, resized and normalized:
     * {@code (pixel / 255 - mean[c]) / std[c]}. Gray images give every RGB channel the same value;
     * color images become gray by ITU-R BT.601 luma, as PIL's {@code convert("L")} does.
     */
    public static float[] toChw(BufferedImage img, int height, int width, int channels, float[] mean, float[] std) {
        if (channels != 1 && channels != 3) {
            throw Peft4jException.invalid("images have 1 or 3 channels, not " + channels);
        }
        if (mean.length != channels || std.length != channels) {
            throw Peft4jException.invalid("mean and std need " + channels + " values each");
        }
        int w0 = img.getWidth();
        int h0 = img.getHeight();
        float[][] planes = new float[channels][w0 * h0];
        java.awt.image.Raster raster = img.getRaster();
        if (img.getColorModel().getColorSpace().getType() == java.awt.color.ColorSpace.TYPE_GRAY) {
            // the stored gray levels as they are: getRGB would pass them through a gamma conversion
            // (a stored 128 reads back as about 188)
            int bits = raster.getSampleModel().getSampleSize(0);
            float toByte = 255f / ((1 << bits) - 1);
            float[] gray = new float[w0 * h0];
            for (int y = 0; y < h0; y++) {
                for (int x = 0; x < w0; x++) {
                    gray[y * w0 + x] = raster.getSample(x, y, 0) * toByte;
                }
            }
            for (float[] plane : planes) {
                System.arraycopy(gray, 0, plane, 0, gray.length);
            }
            return normalize(planes, h0, w0, height, width, channels, mean, std);
        }
        int[] argb = img.getRGB(0, 0, w0, h0, null, 0, w0);
        for (int i = 0; i < argb.length; i++) {
            int p = argb[i];
            float r = (p >> 16) & 0xff;
            float g = (p >> 8) & 0xff;
            float b = p & 0xff;
            if (channels == 1) {
                planes[0][i] = (r * 299 + g * 587 + b * 114) / 1000f;
            } else {
                planes[0][i] = r;
                planes[1][i] = g;
                planes[2][i] = b;
            }
        }
        return normalize(planes, h0, w0, height, width, channels, mean, std);
    }

    private static float[] normalize(float[][] planes, int h0, int w0, int height, int width, int channels, float[] mean,
                                     float[] std) {
        float[] out = new float[channels * height * width];
        for (int c = 0; c < channels; c++) {
            float[] resized = resizeBilinear(planes[c], h0, w0, height, width);
            for (int i = 0; i < resized.length; i++) {
                out[c * height * width + i] = (resized[i] / 255f - mean[c]) / std[c];
            }
        }
        return out;
    }

    /** Bilinear resize of one plane, sampling at pixel centres; edges are clamped. */
    static float[] resizeBilinear(float[] src, int h0, int w0, int h, int w) {
        if (h == h0 && w == w0) {
            return src.clone();
        }
        float[] dst = new float[h * w];
        double sy = (double) h0 / h;
        double sx = (double) w0 / w;
        for (int y = 0; y < h; y++) {
            double fy = Math.max(0, (y + 0.5) * sy - 0.5);
            int y0 = Math.min((int) fy, h0 - 1);
            int y1 = Math.min(y0 + 1, h0 - 1);
            double wy = fy - y0;
            for (int x = 0; x < w; x++) {
                double fx = Math.max(0, (x + 0.5) * sx - 0.5);
                int x0 = Math.min((int) fx, w0 - 1);
                int x1 = Math.min(x0 + 1, w0 - 1);
                double wx = fx - x0;
                double top = src[y0 * w0 + x0] * (1 - wx) + src[y0 * w0 + x1] * wx;
                double bottom = src[y1 * w0 + x0] * (1 - wx) + src[y1 * w0 + x1] * wx;
                dst[y * w + x] = (float) (top * (1 - wy) + bottom * wy);
            }
        }
        return dst;
    }

    /** A batch {@code [n, channels, height, width]} from images. */
    public static Tensor batch(List<BufferedImage> images, int height, int width, int channels, float[] mean, float[] std) {
        int per = channels * height * width;
        float[] all = new float[images.size() * per];
        for (int i = 0; i < images.size(); i++) {
            System.arraycopy(toChw(images.get(i), height, width, channels, mean, std), 0, all, i * per, per);
        }
        return Tensor.ofFloats(new long[] {images.size(), channels, height, width}, all);
    }
}
