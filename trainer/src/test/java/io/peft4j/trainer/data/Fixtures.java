package io.peft4j.trainer.data;

import io.peft4j.core.tensor.DataType;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.zip.GZIPOutputStream;

/** Small generated data files for the data tests. */
final class Fixtures {

    private Fixtures() {
    }

    /** Model inputs of an image classifier {@code FLOAT[?, c, h, w]} (-1 = dynamic). */
    static ModelInputs imageModel(long c, long h, long w) {
        return ModelInputs.of(new ModelInputs.Input("pixel_values", DataType.FLOAT, new long[] {-1, c, h, w}));
    }

    /** A random RGB image, or gray when {@code gray}. */
    static BufferedImage image(Random r, int w, int h, boolean gray) {
        BufferedImage img = new BufferedImage(w, h, gray ? BufferedImage.TYPE_BYTE_GRAY : BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                if (gray) {
                    img.getRaster().setSample(x, y, 0, r.nextInt(256));
                } else {
                    img.setRGB(x, y, r.nextInt(1 << 24));
                }
            }
        }
        return img;
    }

    static Path write(BufferedImage img, String format, Path file) {
        try {
            Files.createDirectories(file.getParent());
            if (!ImageIO.write(img, format, file.toFile())) {
                throw new IllegalStateException("no ImageIO writer for " + format);
            }
            return file;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static byte[] encode(BufferedImage img, String format) {
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ImageIO.write(img, format, out);
            return out.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * {@code dir/<class>/img<i>.png}: {@code perClass[k]} images of class {@code classes[k]}, random
     * RGB, sizes between 20 and 40 pixels.
     */
    static Path imageFolder(Path dir, String[] classes, int[] perClass, long seed) {
        Random r = new Random(seed);
        for (int k = 0; k < classes.length; k++) {
            for (int i = 0; i < perClass[k]; i++) {
                String fmt = i % 3 == 0 ? "png" : i % 3 == 1 ? "jpg" : "bmp";
                write(image(r, 20 + r.nextInt(21), 20 + r.nextInt(21), false), fmt.equals("jpg") ? "jpeg" : fmt,
                        dir.resolve(classes[k]).resolve("img" + i + "." + fmt));
            }
        }
        return dir;
    }

    /** An IDX file of unsigned bytes with {@code dims}; gzip'd when {@code gzip}. */
    static Path idx(Path file, int[] dims, byte[] data, boolean gzip) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        b.write(0);
        b.write(0);
        b.write(0x08);
        b.write(dims.length);
        for (int d : dims) {
            b.write(d >>> 24);
            b.write(d >>> 16);
            b.write(d >>> 8);
            b.write(d);
        }
        b.writeBytes(data);
        byte[] bytes = b.toByteArray();
        try {
            if (gzip) {
                ByteArrayOutputStream z = new ByteArrayOutputStream();
                try (GZIPOutputStream g = new GZIPOutputStream(z)) {
                    g.write(bytes);
                }
                bytes = z.toByteArray();
            }
            Files.createDirectories(file.toAbsolutePath().getParent());
            Files.write(file, bytes);
            return file;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
