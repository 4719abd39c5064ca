package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.image.Images;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ImageTransformTest {

    private static final float[] MEAN3 = DataSpec.IMAGENET_MEAN;
    private static final float[] STD3 = DataSpec.IMAGENET_STD;
    private static final float[] MEAN1 = {0.5f};
    private static final float[] STD1 = {0.5f};

    private static float[] apply(ImageTransform t, Pixels p, ImageTransform.Crop crop) {
        float[] out = new float[t.size()];
        t.apply(p, crop, out, 0);
        return out;
    }

    @Test
    void withoutAugmentationMatchesCoreImagesToTheBit() {
        Random r = new Random(1);
        BufferedImage img = Fixtures.image(r, 37, 23, false);
        Pixels p = ImageFiles.pixels(img);
        assertEquals(3, p.channels());
        for (int[] size : new int[][] {{16, 20}, {23, 37}, {64, 48}, {5, 3}}) {
            ImageTransform rgb = new ImageTransform(3, size[0], size[1], MEAN3, STD3);
            assertArrayEquals(Images.toChw(img, size[0], size[1], 3, MEAN3, STD3), apply(rgb, p, ImageTransform.Crop.full(p)),
                    "RGB at " + Arrays.toString(size));
            ImageTransform gray = new ImageTransform(1, size[0], size[1], MEAN1, STD1);
            assertArrayEquals(Images.toChw(img, size[0], size[1], 1, MEAN1, STD1), apply(gray, p, ImageTransform.Crop.full(p)),
                    "luma at " + Arrays.toString(size));
        }
    }

    @Test
    void anRgbImageWithEqualChannelsIsKeptAsOnePlaneAndGivesTheSameInput() {
        BufferedImage img = new BufferedImage(9, 7, BufferedImage.TYPE_INT_RGB);
        Random r = new Random(2);
        for (int y = 0; y < 7; y++) {
            for (int x = 0; x < 9; x++) {
                int v = r.nextInt(256);
                img.setRGB(x, y, v << 16 | v << 8 | v);
            }
        }
        Pixels p = ImageFiles.pixels(img);
        assertEquals(1, p.channels());
        assertEquals(63, p.bytes());
        assertArrayEquals(Images.toChw(img, 12, 10, 3, MEAN3, STD3),
                apply(new ImageTransform(3, 12, 10, MEAN3, STD3), p, ImageTransform.Crop.full(p)));
        assertArrayEquals(Images.toChw(img, 12, 10, 1, MEAN1, STD1),
                apply(new ImageTransform(1, 12, 10, MEAN1, STD1), p, ImageTransform.Crop.full(p)));
    }

    @Test
    void rasterLayoutsAreReadAsGetRgbReadsThem() {
        Random r = new Random(10);
        BufferedImage rgb = Fixtures.image(r, 30, 20, false);
        for (int type : new int[] {BufferedImage.TYPE_3BYTE_BGR, BufferedImage.TYPE_4BYTE_ABGR, BufferedImage.TYPE_INT_ARGB,
                BufferedImage.TYPE_USHORT_565_RGB}) {
            BufferedImage img = new BufferedImage(30, 20, type);
            img.createGraphics().drawImage(rgb, 0, 0, null);
            for (BufferedImage view : new BufferedImage[] {img, img.getSubimage(7, 3, 17, 11)}) {
                Pixels p = ImageFiles.pixels(view);
                assertEquals(3, p.channels());
                for (int y = 0; y < view.getHeight(); y++) {
                    for (int x = 0; x < view.getWidth(); x++) {
                        int argb = view.getRGB(x, y);
                        assertEquals((argb >> 16) & 0xff, p.get(0, y, x), "type " + type + " red at " + x + "," + y);
                        assertEquals((argb >> 8) & 0xff, p.get(1, y, x));
                        assertEquals(argb & 0xff, p.get(2, y, x));
                    }
                }
            }
        }
        BufferedImage gray = Fixtures.image(r, 12, 9, true);
        Pixels g = ImageFiles.pixels(gray.getSubimage(2, 1, 8, 6));
        assertEquals(1, g.channels());
        assertEquals(gray.getRaster().getSample(5, 4, 0), g.get(0, 3, 3));
    }

    @Test
    void aGrayPngKeepsTheValuesItStores(@TempDir Path dir) {
        BufferedImage img = Fixtures.image(new Random(3), 11, 5, true);
        Path file = Fixtures.write(img, "png", dir.resolve("g.png"));
        Pixels p = ImageFiles.decode(file);
        assertEquals(1, p.channels());
        for (int y = 0; y < 5; y++) {
            for (int x = 0; x < 11; x++) {
                assertEquals(img.getRaster().getSample(x, y, 0), p.get(0, y, x), "pixel " + x + "," + y);
            }
        }
        assertEquals(ImageFiles.Header.class, ImageFiles.probe(file).getClass());
        assertEquals(new ImageFiles.Header(11, 5, 1), ImageFiles.probe(file));
    }

    @Test
    void aCropIsTheResizedSubimage() {
        BufferedImage img = Fixtures.image(new Random(4), 40, 30, false);
        Pixels p = ImageFiles.pixels(img);
        ImageTransform t = new ImageTransform(3, 16, 16, MEAN3, STD3);
        float[] got = apply(t, p, new ImageTransform.Crop(3, 5, 20, 15, false));
        assertArrayEquals(Images.toChw(img.getSubimage(5, 3, 15, 20), 16, 16, 3, MEAN3, STD3), got);
    }

    @Test
    void aFlipMirrorsEachRow() {
        BufferedImage img = Fixtures.image(new Random(5), 25, 18, false);
        Pixels p = ImageFiles.pixels(img);
        ImageTransform t = new ImageTransform(3, 12, 14, MEAN3, STD3);
        float[] plain = apply(t, p, new ImageTransform.Crop(2, 1, 15, 20, false));
        float[] flipped = apply(t, p, new ImageTransform.Crop(2, 1, 15, 20, true));
        for (int c = 0; c < 3; c++) {
            for (int y = 0; y < 12; y++) {
                for (int x = 0; x < 14; x++) {
                    int o = (c * 12 + y) * 14;
                    assertEquals(plain[o + x], flipped[o + 13 - x], 0f);
                }
            }
        }
        assertFalse(Arrays.equals(plain, flipped));
    }

    @Test
    void randomCropsStayInsideTheImageAndKeepMostOfIt() {
        SplittableRandom rng = new SplittableRandom(6);
        boolean flipped = false;
        boolean straight = false;
        int smallest = Integer.MAX_VALUE;
        for (int i = 0; i < 2000; i++) {
            ImageTransform.Crop c = ImageTransform.Crop.draw(rng, 200, 100);
            assertTrue(c.y() >= 0 && c.x() >= 0 && c.y() + c.height() <= 200 && c.x() + c.width() <= 100, c.toString());
            assertTrue(c.height() >= 160 && c.width() >= 80, c.toString());
            smallest = Math.min(smallest, c.height());
            flipped |= c.flip();
            straight |= !c.flip();
        }
        assertTrue(flipped && straight);
        assertTrue(smallest < 165, "crops reach down to 80% of a side, smallest was " + smallest);
        assertEquals(ImageTransform.Crop.draw(new SplittableRandom(9), 50, 60), ImageTransform.Crop.draw(new SplittableRandom(9), 50, 60));
        assertEquals(new ImageTransform.Crop(0, 0, 1, 1, false).height(),
                ImageTransform.Crop.draw(new SplittableRandom(1), 1, 1).height());
        ImageTransform t = new ImageTransform(3, 4, 4, MEAN3, STD3);
        Pixels p = ImageFiles.pixels(Fixtures.image(new Random(1), 8, 8, false));
        assertThrows(IllegalArgumentException.class, () -> apply(t, p, new ImageTransform.Crop(4, 0, 5, 8, false)));
    }

    @Test
    void aModelSizeCacheRoundsToBytesAndCostsAtMostHalfALevel() {
        BufferedImage img = Fixtures.image(new Random(7), 50, 41, false);
        Pixels p = ImageFiles.pixels(img);
        for (int channels : new int[] {1, 3}) {
            float[] mean = channels == 3 ? MEAN3 : MEAN1;
            float[] std = channels == 3 ? STD3 : STD1;
            ImageTransform t = new ImageTransform(channels, 24, 20, mean, std);
            Pixels small = t.resized(p);
            assertEquals(channels, small.channels());
            assertEquals(24, small.height());
            float[] exact = apply(t, p, ImageTransform.Crop.full(p));
            float[] viaCache = apply(t, small, ImageTransform.Crop.full(small));
            for (int i = 0; i < exact.length; i++) {
                float s = std[i / (24 * 20)];
                assertEquals(exact[i], viaCache[i], 0.5f / 255f / s + 1e-6f, "sample " + i);
            }
        }
    }

    @Test
    void refusesBadChannelCountsAndStats() {
        assertThrows(Peft4jException.class, () -> new ImageTransform(2, 4, 4, new float[2], new float[] {1, 1}));
        assertThrows(Peft4jException.class, () -> new ImageTransform(3, 4, 4, MEAN1, STD1));
    }

    @Test
    void aTruncatedJpegIsRefusedByName(@TempDir Path dir) throws Exception {
        byte[] jpeg = Fixtures.encode(Fixtures.image(new Random(8), 64, 64, false), "jpeg");
        Path file = dir.resolve("cut.jpg");
        Files.write(file, Arrays.copyOf(jpeg, jpeg.length / 2));
        ImageFiles.probe(file);
        Peft4jException e = assertThrows(Peft4jException.class, () -> ImageFiles.decode(file));
        assertEquals(Peft4jException.ErrorCode.MALFORMED, e.code());
        assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
    }
}
