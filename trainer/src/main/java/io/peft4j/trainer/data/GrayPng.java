package io.peft4j.trainer.data;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;
import java.util.zip.Deflater;

/**
 * Encodes 8-bit grayscale images as PNG (color type 0, bit depth 8, no interlace, filter type 0
 * on every row): small, and fast enough to write thousands of small images per second. The pixel
 * data decodes to exactly the samples given; the compressed bytes are those of the JDK's zlib.
 */
final class GrayPng {

    private static final byte[] SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

    private GrayPng() {
    }

    /** The PNG file for the {@code width × height} samples at {@code pixels[offset ..]}, row by row. */
    static byte[] encode(byte[] pixels, int offset, int width, int height) {
        if (width < 1 || height < 1 || offset < 0 || offset + (long) width * height > pixels.length) {
            throw new IllegalArgumentException("no " + width + "x" + height + " image at " + offset + " in " + pixels.length
                    + " bytes");
        }
        byte[] raw = new byte[(width + 1) * height];
        for (int y = 0; y < height; y++) {
            System.arraycopy(pixels, offset + y * width, raw, y * (width + 1) + 1, width);
        }
        Deflater deflater = new Deflater(Deflater.DEFAULT_COMPRESSION);
        byte[] packed;
        try {
            deflater.setInput(raw);
            deflater.finish();
            ByteArrayOutputStream z = new ByteArrayOutputStream(raw.length / 2 + 64);
            byte[] buf = new byte[8192];
            while (!deflater.finished()) {
                int k = deflater.deflate(buf);
                z.write(buf, 0, k);
            }
            packed = z.toByteArray();
        } finally {
            deflater.end();
        }
        ByteArrayOutputStream png = new ByteArrayOutputStream(packed.length + 64);
        png.writeBytes(SIGNATURE);
        byte[] ihdr = new byte[13];
        putInt(ihdr, 0, width);
        putInt(ihdr, 4, height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 0; // gray
        chunk(png, "IHDR", ihdr);
        chunk(png, "IDAT", packed);
        chunk(png, "IEND", new byte[0]);
        return png.toByteArray();
    }

    private static void chunk(ByteArrayOutputStream out, String type, byte[] data) {
        byte[] head = new byte[8];
        putInt(head, 0, data.length);
        byte[] t = type.getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(t, 0, head, 4, 4);
        out.write(head, 0, 8);
        out.writeBytes(data);
        CRC32 crc = new CRC32();
        crc.update(t);
        crc.update(data);
        byte[] c = new byte[4];
        putInt(c, 0, (int) crc.getValue());
        out.writeBytes(c);
    }

    private static void putInt(byte[] b, int at, int v) {
        b[at] = (byte) (v >>> 24);
        b[at + 1] = (byte) (v >>> 16);
        b[at + 2] = (byte) (v >>> 8);
        b[at + 3] = (byte) v;
    }
}
