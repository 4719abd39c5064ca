package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.image.Images;

import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.ImageTypeSpecifier;
import javax.imageio.stream.ImageInputStream;
import javax.imageio.stream.MemoryCacheImageInputStream;
import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.ComponentSampleModel;
import java.awt.image.DataBuffer;
import java.awt.image.DataBufferByte;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * Reading image files into {@link Pixels}: a cheap header probe (format, size, channels) and a full
 * decode through ImageIO with an in-memory stream (ImageIO's default file-backed cache halves the
 * decode rate). Samples are read from the raster as stored: a gray PNG keeps its values (Java's
 * {@code getRGB} would pass them through a gamma conversion). Every error names the file.
 */
final class ImageFiles {

    /** Size and channel count of an image file, from its header. */
    record Header(int width, int height, int channels) {
        long bytes() {
            return (long) width * height * channels;
        }
    }

    private ImageFiles() {
    }

    /** Reads the header of {@code file} without decoding it; refuses non-images and oversized images. */
    static Header probe(Path file) {
        try (InputStream raw = Files.newInputStream(file);
             ImageInputStream in = new MemoryCacheImageInputStream(raw)) {
            ImageReader r = reader(in, file);
            try {
                r.setInput(in, true, true);
                int w = r.getWidth(0);
                int h = r.getHeight(0);
                checkSize(w, h, file);
                int channels = 3;
                Iterator<ImageTypeSpecifier> types = r.getImageTypes(0);
                if (types != null && types.hasNext()) {
                    ColorModel cm = types.next().getColorModel();
                    if (cm != null && cm.getColorSpace().getType() == ColorSpace.TYPE_GRAY) {
                        channels = 1;
                    }
                }
                return new Header(w, h, channels);
            } finally {
                r.dispose();
            }
        } catch (NoSuchFileException e) {
            throw new Peft4jException(ErrorCode.IO, "image not found: " + file, e);
        } catch (IOException | RuntimeException e) {
            throw failure(e, file, "is not a readable image");
        }
    }

    /** Decodes {@code file}. */
    static Pixels decode(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new Peft4jException(ErrorCode.IO, "image not found: " + file, e);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read " + file + ": " + e.getMessage(), e);
        }
        try (ImageInputStream in = new MemoryCacheImageInputStream(new ByteArrayInputStream(bytes))) {
            ImageReader r = reader(in, file);
            try {
                r.setInput(in, true, true);
                checkSize(r.getWidth(0), r.getHeight(0), file);
                // ImageIO reports a truncated JPEG as a warning and fills the rest with gray; PIL refuses it, and so do we
                List<String> warnings = new ArrayList<>();
                r.addIIOReadWarningListener((reader, warning) -> warnings.add(warning));
                BufferedImage img = r.read(0);
                if (img == null) {
                    throw Peft4jException.malformed(file + " could not be decoded");
                }
                if (!warnings.isEmpty()) {
                    throw Peft4jException.malformed(file + " is damaged: " + String.join("; ", warnings));
                }
                return pixels(img);
            } finally {
                r.dispose();
            }
        } catch (IOException | RuntimeException e) {
            throw failure(e, file, "could not be decoded");
        }
    }

    private static ImageReader reader(ImageInputStream in, Path file) {
        Iterator<ImageReader> readers = ImageIO.getImageReaders(in);
        if (!readers.hasNext()) {
            throw Peft4jException.malformed(file + " is not an image peft4j can read (PNG, JPEG, BMP or GIF)");
        }
        return readers.next();
    }

    private static void checkSize(int w, int h, Path file) {
        if (w <= 0 || h <= 0 || (long) w * h > Images.MAX_PIXELS) {
            throw Peft4jException.invalid(file + " is " + w + "x" + h + " pixels; images up to " + Images.MAX_PIXELS
                    + " pixels are accepted");
        }
    }

    private static Peft4jException failure(Exception e, Path file, String what) {
        if (e instanceof Peft4jException p) {
            return p;
        }
        return new Peft4jException(ErrorCode.MALFORMED, file + " " + what + ": " + e.getMessage(), e);
    }

    /**
     * The samples of {@code img}: 8-bit gray and RGB rasters are read as stored (16-bit gray is
     * scaled to 8 bits); anything else (palettes, premultiplied alpha, other color spaces) through
     * {@code getRGB}. Alpha is dropped. RGB images whose channels are all equal become one plane.
     */
    static Pixels pixels(BufferedImage img) {
        int w = img.getWidth();
        int h = img.getHeight();
        int n = w * h;
        ColorModel cm = img.getColorModel();
        Raster raster = img.getRaster();
        int csType = cm.getColorSpace().getType();
        int transfer = raster.getTransferType();
        boolean plain = !cm.isAlphaPremultiplied() && !(cm instanceof java.awt.image.IndexColorModel);
        boolean rgb8 = plain && cm.getColorSpace().isCS_sRGB() && transfer == DataBuffer.TYPE_BYTE && raster.getNumBands() >= 3
                && cm.getComponentSize(0) == 8 && cm.getComponentSize(1) == 8 && cm.getComponentSize(2) == 8;
        boolean gray8 = plain && csType == ColorSpace.TYPE_GRAY && transfer == DataBuffer.TYPE_BYTE && cm.getComponentSize(0) == 8;
        if ((rgb8 || gray8) && raster.getDataBuffer() instanceof DataBufferByte db && db.getNumBanks() == 1
                && raster.getSampleModel() instanceof ComponentSampleModel sm) {
            return direct(db, sm, raster, w, h, gray8 ? 1 : 3);
        }
        if (plain && csType == ColorSpace.TYPE_GRAY && (transfer == DataBuffer.TYPE_BYTE || transfer == DataBuffer.TYPE_USHORT)
                && cm.getComponentSize(0) <= 16) {
            int bits = cm.getComponentSize(0);
            int[] s = raster.getSamples(0, 0, w, h, 0, (int[]) null);
            byte[] out = new byte[n];
            int max = (1 << bits) - 1;
            for (int i = 0; i < n; i++) {
                out[i] = (byte) (bits == 8 ? s[i] : (s[i] * 255 + max / 2) / max);
            }
            return new Pixels(1, h, w, out);
        }
        byte[] out = new byte[3 * n];
        if (rgb8) {
            int[] s = null;
            for (int c = 0; c < 3; c++) {
                s = raster.getSamples(0, 0, w, h, c, s);
                for (int i = 0; i < n; i++) {
                    out[c * n + i] = (byte) s[i];
                }
            }
        } else {
            int[] argb = img.getRGB(0, 0, w, h, null, 0, w);
            for (int i = 0; i < n; i++) {
                int p = argb[i];
                out[i] = (byte) (p >> 16);
                out[n + i] = (byte) (p >> 8);
                out[2 * n + i] = (byte) p;
            }
        }
        return grayIfEqual(out, h, w);
    }

    /** 8-bit samples straight from the raster's array (ImageIO's usual JPEG, PNG and BMP layouts). */
    private static Pixels direct(DataBufferByte db, ComponentSampleModel sm, Raster raster, int w, int h, int bands) {
        byte[] src = db.getData();
        int ps = sm.getPixelStride();
        int ss = sm.getScanlineStride();
        int[] bo = sm.getBandOffsets();
        int[] bank = sm.getBankIndices();
        for (int b : bank) {
            if (b != 0) {
                throw new IllegalStateException("a one-bank raster names bank " + b);
            }
        }
        int base = db.getOffset() - raster.getSampleModelTranslateY() * ss - raster.getSampleModelTranslateX() * ps;
        int n = w * h;
        byte[] out = new byte[bands * n];
        if (bands == 1) {
            int i = 0;
            for (int y = 0; y < h; y++) {
                int p = base + bo[0] + y * ss;
                for (int x = 0; x < w; x++, p += ps) {
                    out[i++] = src[p];
                }
            }
            return new Pixels(1, h, w, out);
        }
        int diff = 0;
        int i = 0;
        for (int y = 0; y < h; y++) {
            int p = base + y * ss;
            for (int x = 0; x < w; x++, p += ps, i++) {
                byte r = src[p + bo[0]];
                byte g = src[p + bo[1]];
                byte b = src[p + bo[2]];
                out[i] = r;
                out[n + i] = g;
                out[2 * n + i] = b;
                diff |= (r ^ g) | (r ^ b);
            }
        }
        return diff == 0 ? new Pixels(1, h, w, java.util.Arrays.copyOf(out, n)) : new Pixels(3, h, w, out);
    }

    /** Planar RGB as one plane when its three channels are equal everywhere. */
    private static Pixels grayIfEqual(byte[] rgb, int h, int w) {
        int n = h * w;
        for (int i = 0; i < n; i++) {
            if (rgb[i] != rgb[n + i] || rgb[i] != rgb[2 * n + i]) {
                return new Pixels(3, h, w, rgb);
            }
        }
        return new Pixels(1, h, w, java.util.Arrays.copyOf(rgb, n));
    }
}
