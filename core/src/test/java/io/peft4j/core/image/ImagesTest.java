package io.peft4j.core.image;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import org.junit.jupiter.api.Test;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ImagesTest {

    private static byte[] png(BufferedImage img) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ImageIO.write(img, "png", out);
        return out.toByteArray();
    }

    @Test
    void bilinearResizeMatchesPixelCentreSampling() {
        // 2x2 -> 4x4 with centres: values as PyTorch's interpolate(mode="bilinear", align_corners=False) gives
        float[] src = {0, 100, 200, 300};
        float[] out = Images.resizeBilinear(src, 2, 2, 4, 4);
        assertArrayEquals(new float[] {0, 25, 75, 100, 50, 75, 125, 150, 150, 175, 225, 250, 200, 225, 275, 300}, out, 1e-4f);
        assertArrayEquals(src, Images.resizeBilinear(src, 2, 2, 2, 2));
    }

    @Test
    void normalizesGrayAndColor() throws Exception {
        BufferedImage img = new BufferedImage(3, 2, BufferedImage.TYPE_INT_RGB);
        img.setRGB(0, 0, 0xff0000);
        img.setRGB(1, 0, 0x00ff00);
        img.setRGB(2, 0, 0x0000ff);
        BufferedImage back = Images.decode(png(img), "img.png");
        float[] rgb = Images.toChw(back, 2, 3, 3, new float[] {0, 0, 0}, new float[] {1, 1, 1});
        assertEquals(1f, rgb[0]);
        assertEquals(1f, rgb[6 + 1]);
        assertEquals(1f, rgb[12 + 2]);
        float[] gray = Images.toChw(back, 2, 3, 1, new float[] {0.5f}, new float[] {0.5f});
        assertEquals((0.299f - 0.5f) / 0.5f, gray[0], 1e-5);
        Tensor t = Images.batch(List.of(back, back), 4, 4, 1, new float[] {0}, new float[] {1});
        assertArrayEquals(new long[] {2, 1, 4, 4}, t.shape());
    }

    /** A gray PNG's stored levels reach the model as stored (no gamma conversion on the way). */
    @Test
    void grayImagesKeepTheirStoredLevels() throws Exception {
        BufferedImage img = new BufferedImage(2, 1, BufferedImage.TYPE_BYTE_GRAY);
        img.getRaster().setSample(0, 0, 0, 128);
        img.getRaster().setSample(1, 0, 0, 50);
        java.io.ByteArrayOutputStream png = new java.io.ByteArrayOutputStream();
        javax.imageio.ImageIO.write(img, "png", png);
        BufferedImage back = Images.decode(png.toByteArray(), "gray.png");
        float[] one = Images.toChw(back, 1, 2, 1, new float[] {0}, new float[] {1});
        assertEquals(128 / 255f, one[0], 1e-6f);
        assertEquals(50 / 255f, one[1], 1e-6f);
        float[] three = Images.toChw(back, 1, 2, 3, new float[3], new float[] {1, 1, 1});
        assertEquals(128 / 255f, three[0], 1e-6f);
        assertEquals(128 / 255f, three[2], 1e-6f);
        assertEquals(50 / 255f, three[5], 1e-6f);
    }

    @Test
    void neuImagesDecode() throws Exception {
        Path dir = Assets.shared("data/neu-det/scratches");
        try (var s = Files.list(dir)) {
            Path first = s.sorted().findFirst().orElseThrow();
            BufferedImage img = Images.read(first);
            assertEquals(200, img.getWidth());
            float[] chw = Images.toChw(img, 64, 64, 3, new float[] {0.485f, 0.456f, 0.406f}, new float[] {0.229f, 0.224f, 0.225f});
            assertEquals(3 * 64 * 64, chw.length);
        }
    }

    @Test
    void badImagesAreRefused() throws Exception {
        Peft4jException e = assertThrows(Peft4jException.class, () -> Images.decode("not an image".getBytes(), "x.png"));
        assertEquals(Peft4jException.ErrorCode.MALFORMED, e.code());
        byte[] good = png(new BufferedImage(4, 4, BufferedImage.TYPE_BYTE_GRAY));
        byte[] cut = java.util.Arrays.copyOf(good, good.length / 2);
        e = assertThrows(Peft4jException.class, () -> Images.decode(cut, "cut.png"));
        assertTrue(e.getMessage().contains("cut.png"), e.getMessage());
        // a PNG header claiming 100000 x 100000 pixels is refused before decoding
        byte[] bomb = good.clone();
        java.nio.ByteBuffer.wrap(bomb, 16, 8).putInt(100000).putInt(100000);
        e = assertThrows(Peft4jException.class, () -> Images.decode(bomb, "bomb.png"));
        assertTrue(e.getMessage().contains("pixels"), e.getMessage());
    }
}
