package io.peft4j.trainer.data;

/**
 * One decoded image: 8-bit samples, planar ({@code [channels, height, width]} from {@code offset}),
 * 1 channel (gray) or 3 (RGB). Images whose three channels are equal everywhere are kept as one
 * gray plane. The array is shared, never written after the image is made.
 */
record Pixels(int channels, int height, int width, byte[] data, int offset) {

    Pixels {
        if (channels != 1 && channels != 3) {
            throw new IllegalArgumentException("pixels have 1 or 3 channels, not " + channels);
        }
        if (height < 1 || width < 1 || offset < 0 || offset + (long) channels * height * width > data.length) {
            throw new IllegalArgumentException("pixel data does not hold " + channels + "x" + height + "x" + width);
        }
    }

    Pixels(int channels, int height, int width, byte[] data) {
        this(channels, height, width, data, 0);
    }

    /** Bytes of pixel data. */
    long bytes() {
        return (long) channels * height * width;
    }

    /** Sample {@code (c, y, x)} in 0..255. */
    int get(int c, int y, int x) {
        return data[offset + (c * height + y) * width + x] & 0xff;
    }
}
