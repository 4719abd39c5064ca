package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class IdxTest {

    /** 5 images of 4×3 whose pixel j of image i is 10·i + j; labels 0, 1, 2, 1, 0. */
    private static Path write(Path dir, String prefix, boolean gzip) {
        byte[] px = new byte[5 * 12];
        for (int i = 0; i < 5; i++) {
            for (int j = 0; j < 12; j++) {
                px[i * 12 + j] = (byte) (10 * i + j);
            }
        }
        String gz = gzip ? ".gz" : "";
        Fixtures.idx(dir.resolve(prefix + "-labels-idx1-ubyte" + gz), new int[] {5}, new byte[] {0, 1, 2, 1, 0}, gzip);
        return Fixtures.idx(dir.resolve(prefix + "-images-idx3-ubyte" + gz), new int[] {5, 4, 3}, px, gzip);
    }

    private static Peft4jException refused(Path images, ModelInputs model) {
        return assertThrows(Peft4jException.class, () -> Datasets.open(DataSpec.builder(images).build(), model));
    }

    @Test
    void plainAndGzippedFilesGiveScaledNormalizedImages(@TempDir Path dir) {
        for (boolean gzip : new boolean[] {false, true}) {
            Path images = write(dir, gzip ? "z" : "p", gzip);
            DataSplit s = Datasets.open(DataSpec.builder(images).build(), Fixtures.imageModel(1, 4, 3));
            Dataset ds = s.train();
            assertEquals(List.of("0", "1", "2"), ds.classes());
            assertEquals(5, ds.size());
            Batch b = ds.batch(new int[] {3, 0}, null);
            assertArrayEquals(new long[] {1, 0}, b.labels());
            Tensor x = b.inputs().get("pixel_values");
            assertArrayEquals(new long[] {2, 1, 4, 3}, x.shape());
            float[] v = x.toFloatArray();
            for (int j = 0; j < 12; j++) {
                assertEquals(((30 + j) / 255f - 0.5f) / 0.5f, v[j], 1e-6f);
                assertEquals((j / 255f - 0.5f) / 0.5f, v[12 + j], 1e-6f);
            }
            assertEquals(ImageDataset.Cache.IN_MEMORY, ((ImageDataset) ds).cache());
        }
    }

    @Test
    void theModelDecidesSizeAndChannels(@TempDir Path dir) {
        Path images = write(dir, "train", false);
        Dataset ds = Datasets.open(DataSpec.builder(images).augment(true).build(), Fixtures.imageModel(3, 8, 6)).train();
        Tensor x = ds.batch(new int[] {1, 2}, new java.util.SplittableRandom(1)).inputs().get("pixel_values");
        assertArrayEquals(new long[] {2, 3, 8, 6}, x.shape());
        float[] v = x.toFloatArray();
        float r = v[0] * DataSpec.IMAGENET_STD[0] + DataSpec.IMAGENET_MEAN[0];
        float g = v[48] * DataSpec.IMAGENET_STD[1] + DataSpec.IMAGENET_MEAN[1];
        assertEquals(r, g, 1e-5f, "gray fills every channel");
    }

    @Test
    void aTestFileIsValidationDataWithTheTrainingClasses(@TempDir Path dir) {
        Path train = write(dir, "train", true);
        Path test = write(dir, "t10k", false);
        DataSplit s = Datasets.open(DataSpec.builder(train).validation(test).build(), Fixtures.imageModel(1, 4, 3));
        assertEquals(5, s.validation().orElseThrow().size());
        Fixtures.idx(dir.resolve("bad-labels-idx1-ubyte"), new int[] {5}, new byte[] {0, 1, 3, 1, 0}, false);
        Fixtures.idx(dir.resolve("bad-images-idx3-ubyte"), new int[] {5, 4, 3}, new byte[60], false);
        Peft4jException e = assertThrows(Peft4jException.class, () -> Datasets.open(
                DataSpec.builder(train).validation(dir.resolve("bad-images-idx3-ubyte")).build(), Fixtures.imageModel(1, 4, 3)));
        assertTrue(e.getMessage().contains("label 2 is 3, out of range for the 3 classes"), e.getMessage());
    }

    @Test
    void damagedFilesAreRefusedByName(@TempDir Path dir) throws Exception {
        ModelInputs model = Fixtures.imageModel(1, 4, 3);
        Path images = write(dir, "a", false);
        byte[] good = Files.readAllBytes(images);

        byte[] magic = good.clone();
        magic[1] = 7;
        Files.write(images, magic);
        Peft4jException e = refused(images, model);
        assertEquals(ErrorCode.MALFORMED, e.code());
        assertTrue(e.getMessage().contains(images + " is not an IDX file"), e.getMessage());

        Files.write(images, Arrays.copyOf(good, good.length - 7));
        e = refused(images, model);
        assertTrue(e.getMessage().contains(images + " is truncated: shape [5, 4, 3] needs 60 bytes of data, the file has 53"),
                e.getMessage());

        Files.write(images, Arrays.copyOf(good, 10));
        assertTrue(refused(images, model).getMessage().contains("truncated in its header"));

        byte[] longer = Arrays.copyOf(good, good.length + 3);
        Files.write(images, longer);
        assertTrue(refused(images, model).getMessage().contains("3 bytes after"));

        byte[] floats = good.clone();
        floats[2] = 0x0D;
        Files.write(images, floats);
        assertEquals(ErrorCode.UNSUPPORTED, refused(images, model).code());

        Files.write(images, good);
        byte[] gz = Files.readAllBytes(write(dir, "g", true));
        Path gzImages = dir.resolve("g-images-idx3-ubyte.gz");
        Files.write(gzImages, Arrays.copyOf(gz, gz.length / 2));
        e = refused(gzImages, model);
        assertTrue(e.getMessage().contains(gzImages + " is a damaged gzip file"), e.getMessage());
    }

    @Test
    void labelsMustBeThereAndMatchTheImages(@TempDir Path dir) throws Exception {
        ModelInputs model = Fixtures.imageModel(1, 4, 3);
        Path images = write(dir, "a", false);
        Path labels = dir.resolve("a-labels-idx1-ubyte");
        Fixtures.idx(labels, new int[] {4}, new byte[] {0, 1, 2, 1}, false);
        assertTrue(refused(images, model).getMessage().contains("has 5 images but " + labels + " has 4 labels"));
        Fixtures.idx(labels, new int[] {5, 1}, new byte[] {0, 1, 2, 1, 0}, false);
        assertEquals(ErrorCode.SHAPE_MISMATCH, refused(images, model).code());
        Files.delete(labels);
        Peft4jException e = refused(images, model);
        assertEquals(ErrorCode.IO, e.code());
        assertTrue(e.getMessage().contains("no labels beside " + images + ": expected a-labels-idx1-ubyte[.gz]"),
                e.getMessage());
        Path flat = Fixtures.idx(dir.resolve("flat-images-idx3-ubyte"), new int[] {5, 12}, new byte[60], false);
        Fixtures.idx(dir.resolve("flat-labels-idx1-ubyte"), new int[] {5}, new byte[5], false);
        assertTrue(refused(flat, model).getMessage().contains("images are [count, rows, columns]"));
    }
}
