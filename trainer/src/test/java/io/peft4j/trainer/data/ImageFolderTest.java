package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.image.Images;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ImageFolderTest {

    private static final String[] CLASSES = {"scratch", "dent", "ok"};

    private static Path folder(Path dir) {
        return Fixtures.imageFolder(dir.resolve("train"), CLASSES, new int[] {4, 5, 3}, 1);
    }

    private static DataSplit open(DataSpec.Builder spec, ModelInputs model) {
        return Datasets.open(spec.build(), model);
    }

    private static int[] all(Dataset ds) {
        return IntStream.range(0, ds.size()).toArray();
    }

    @Test
    void classesAreSortedFolderNamesAndBatchesAreWhatEachFileGives(@TempDir Path dir) throws Exception {
        Path root = folder(dir);
        Files.writeString(root.resolve("ok").resolve("notes.txt"), "not an image");
        Files.createDirectories(root.resolve(".hidden"));
        DataSplit split = open(DataSpec.builder(root), Fixtures.imageModel(3, 16, 12));
        Dataset ds = split.train();
        assertEquals(List.of("dent", "ok", "scratch"), ds.classes());
        assertEquals(12, ds.size());
        assertTrue(split.validation().isEmpty());
        assertEquals(ImageDataset.Cache.SOURCE, ((ImageDataset) ds).cache());
        Batch b = ds.batch(all(ds), null);
        Tensor x = b.inputs().get("pixel_values");
        assertArrayEquals(new long[] {12, 3, 16, 12}, x.shape());
        assertArrayEquals(new long[] {0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2}, b.labels());
        // file order within a class is by name: img0.png, img1.jpg, img2.bmp, img3.png, img4.jpg
        Path dent1 = root.resolve("dent").resolve("img1.jpg");
        float[] expected = Images.toChw(Images.read(dent1), 16, 12, 3, DataSpec.IMAGENET_MEAN, DataSpec.IMAGENET_STD);
        float[] got = Arrays.copyOfRange(x.toFloatArray(), 3 * 16 * 12, 2 * 3 * 16 * 12);
        assertArrayEquals(expected, got, "the second dent image, decoded as core's Images decodes it");
        Manifest.Preprocessing pre = split.preprocessing().orElseThrow();
        assertEquals(new Manifest.Preprocessing("pixel_values", 16, 12, 3, List.of(0.485f * 1.0, 0.456f * 1.0, 0.406f * 1.0),
                List.of(0.229f * 1.0, 0.224f * 1.0, 0.225f * 1.0)), pre);
        assertTrue(ds.describe().contains("12 images, 3 classes"), ds.describe());
    }

    @Test
    void everyCacheGivesTheSameBatches(@TempDir Path dir) {
        Path root = folder(dir);
        ModelInputs model = Fixtures.imageModel(3, 16, 16);
        ImageDataset source = (ImageDataset) open(DataSpec.builder(root), model).train();
        ImageDataset resized = (ImageDataset) open(DataSpec.builder(root).cacheBytes(12 * 3 * 16 * 16), model).train();
        ImageDataset none = (ImageDataset) open(DataSpec.builder(root).cacheBytes(0), model).train();
        assertEquals(ImageDataset.Cache.SOURCE, source.cache());
        assertEquals(ImageDataset.Cache.RESIZED, resized.cache());
        assertEquals(ImageDataset.Cache.NONE, none.cache());
        float[] a = source.batch(all(source), null).inputs().get("pixel_values").toFloatArray();
        float[] c = none.batch(all(none), null).inputs().get("pixel_values").toFloatArray();
        float[] r = resized.batch(all(resized), null).inputs().get("pixel_values").toFloatArray();
        assertArrayEquals(a, c, "no cache = decoded at source size");
        for (int i = 0; i < a.length; i++) {
            assertEquals(a[i], r[i], 0.5f / 255f / 0.224f + 1e-6f, "a model-size cache rounds to 8 bits");
        }
    }

    @Test
    void grayAndRgbConvertBothWays(@TempDir Path dir) {
        Random r = new Random(3);
        Path root = dir.resolve("g");
        Fixtures.write(Fixtures.image(r, 10, 10, true), "png", root.resolve("a").resolve("gray.png"));
        Fixtures.write(Fixtures.image(r, 10, 10, false), "png", root.resolve("b").resolve("rgb.png"));
        Dataset three = open(DataSpec.builder(root), Fixtures.imageModel(3, 10, 10)).train();
        float[] x3 = three.batch(new int[] {0}, null).inputs().get("pixel_values").toFloatArray();
        for (int i = 0; i < 100; i++) {
            float v = (x3[i] * 0.229f + 0.485f);
            assertEquals(v, x3[100 + i] * 0.224f + 0.456f, 1e-5f, "a gray image fills every channel with its value");
        }
        Dataset one = open(DataSpec.builder(root), Fixtures.imageModel(1, 10, 10)).train();
        Tensor x1 = one.batch(new int[] {0, 1}, null).inputs().get("pixel_values");
        assertArrayEquals(new long[] {2, 1, 10, 10}, x1.shape());
        assertEquals(List.of(0.5), open(DataSpec.builder(root), Fixtures.imageModel(1, 10, 10))
                .preprocessing().orElseThrow().mean(), "1-channel default mean is 0.5");
    }

    @Test
    void augmentationNeedsBothTheOptionAndARandomSourceAndIsReproducible(@TempDir Path dir) {
        Path root = folder(dir);
        ModelInputs model = Fixtures.imageModel(3, 16, 16);
        Dataset plain = open(DataSpec.builder(root), model).train();
        Dataset aug = open(DataSpec.builder(root).augment(true), model).train();
        int[] idx = all(plain);
        float[] base = plain.batch(idx, null).inputs().get("pixel_values").toFloatArray();
        assertArrayEquals(base, plain.batch(idx, new SplittableRandom(1)).inputs().get("pixel_values").toFloatArray(),
                "without --augment a random source changes nothing");
        assertArrayEquals(base, aug.batch(idx, null).inputs().get("pixel_values").toFloatArray(),
                "without a random source nothing is augmented");
        float[] a1 = aug.batch(idx, new SplittableRandom(5)).inputs().get("pixel_values").toFloatArray();
        float[] a2 = aug.batch(idx, new SplittableRandom(5)).inputs().get("pixel_values").toFloatArray();
        assertArrayEquals(a1, a2);
        assertFalse(Arrays.equals(base, a1));
    }

    @Test
    void aValidationSplitIsStratifiedAndNeverAugmented(@TempDir Path dir) {
        Path root = Fixtures.imageFolder(dir.resolve("t"), CLASSES, new int[] {10, 10, 10}, 2);
        DataSplit s = open(DataSpec.builder(root).valSplit(0.2).seed(3).augment(true), Fixtures.imageModel(3, 8, 8));
        Dataset val = s.validation().orElseThrow();
        assertEquals(24, s.train().size());
        assertEquals(6, val.size());
        int[] perClass = new int[3];
        for (int i = 0; i < val.size(); i++) {
            perClass[val.label(i)]++;
        }
        assertArrayEquals(new int[] {2, 2, 2}, perClass);
        int[] idx = all(val);
        assertArrayEquals(val.batch(idx, null).inputs().get("pixel_values").toFloatArray(),
                val.batch(idx, new SplittableRandom(9)).inputs().get("pixel_values").toFloatArray());
        DataSplit again = open(DataSpec.builder(root).valSplit(0.2).seed(3), Fixtures.imageModel(3, 8, 8));
        assertArrayEquals(Splits.labels(val), Splits.labels(again.validation().orElseThrow()));
    }

    @Test
    void aValidationFolderMustHaveTheSameClasses(@TempDir Path dir) {
        Path train = folder(dir);
        Path val = Fixtures.imageFolder(dir.resolve("val"), CLASSES, new int[] {1, 1, 1}, 4);
        DataSplit s = open(DataSpec.builder(train).validation(val), Fixtures.imageModel(3, 8, 8));
        assertEquals(3, s.validation().orElseThrow().size());
        assertEquals(s.train().classes(), s.validation().orElseThrow().classes());
        Path other = Fixtures.imageFolder(dir.resolve("other"), new String[] {"dent", "ok", "rust"}, new int[] {1, 1, 1}, 5);
        Peft4jException e = assertThrows(Peft4jException.class,
                () -> open(DataSpec.builder(train).validation(other), Fixtures.imageModel(3, 8, 8)));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
        assertTrue(e.getMessage().contains("missing: [scratch]") && e.getMessage().contains("not in training: [rust]"),
                e.getMessage());
    }

    @Test
    void sizesComeFromTheModelOrTheSpec(@TempDir Path dir) {
        Path root = folder(dir);
        Dataset dynamic = open(DataSpec.builder(root), Fixtures.imageModel(-1, -1, -1)).train();
        assertArrayEquals(new long[] {1, 3, 224, 224}, dynamic.batch(new int[] {0}, null).inputs().get("pixel_values").shape());
        Dataset given = open(DataSpec.builder(root).imageSize(32, 24), Fixtures.imageModel(3, -1, -1)).train();
        assertArrayEquals(new long[] {1, 3, 32, 24}, given.batch(new int[] {0}, null).inputs().get("pixel_values").shape());
        Peft4jException e = assertThrows(Peft4jException.class,
                () -> open(DataSpec.builder(root).imageSize(32, 32), Fixtures.imageModel(3, 64, 64)));
        assertTrue(e.getMessage().contains("takes 64x64 images"), e.getMessage());
    }

    @Test
    void modelsWithoutASingleImageInputAreRefused(@TempDir Path dir) {
        Path root = folder(dir);
        ModelInputs text = ModelInputs.of(new ModelInputs.Input("input_ids", DataType.INT64, new long[] {-1, -1}));
        assertTrue(assertThrows(Peft4jException.class, () -> open(DataSpec.builder(root), text)).getMessage()
                .contains("no image input"));
        ModelInputs twoChannels = Fixtures.imageModel(2, 8, 8);
        assertEquals(ErrorCode.UNSUPPORTED, assertThrows(Peft4jException.class,
                () -> open(DataSpec.builder(root), twoChannels)).code());
        ModelInputs extra = ModelInputs.of(new ModelInputs.Input("x", DataType.FLOAT, new long[] {-1, 3, 8, 8}),
                new ModelInputs.Input("scale", DataType.FLOAT, new long[] {1}));
        assertTrue(assertThrows(Peft4jException.class, () -> open(DataSpec.builder(root), extra)).getMessage()
                .contains("'scale'"));
        ModelInputs fixedBatch = ModelInputs.of(new ModelInputs.Input("x", DataType.FLOAT, new long[] {1, 3, 8, 8}));
        assertTrue(assertThrows(Peft4jException.class, () -> open(DataSpec.builder(root), fixedBatch)).getMessage()
                .contains("fixed batch size"));
        assertThrows(Peft4jException.class, () -> open(DataSpec.builder(root).mean(0.1f, 0.2f, 0.3f),
                Fixtures.imageModel(1, 8, 8)));
    }

    @Test
    void badFoldersAreRefusedByName(@TempDir Path dir) throws Exception {
        ModelInputs model = Fixtures.imageModel(3, 8, 8);
        Path missing = dir.resolve("nope");
        Peft4jException e = assertThrows(Peft4jException.class, () -> open(DataSpec.builder(missing), model));
        assertEquals(ErrorCode.IO, e.code());
        assertTrue(e.getMessage().contains(missing.toString()));

        Path empty = Files.createDirectories(dir.resolve("empty"));
        e = assertThrows(Peft4jException.class, () -> open(DataSpec.builder(empty), model));
        assertTrue(e.getMessage().contains(empty + " is empty"), e.getMessage());

        Path loose = dir.resolve("loose");
        Fixtures.write(Fixtures.image(new Random(1), 4, 4, false), "png", loose.resolve("a.png"));
        e = assertThrows(Peft4jException.class, () -> open(DataSpec.builder(loose), model));
        assertTrue(e.getMessage().contains("no class folders"), e.getMessage());

        Path noImages = folder(dir.resolve("x"));
        Path ok = noImages.resolve("ok");
        try (var files = Files.list(ok)) {
            for (Path f : files.toList()) {
                Files.delete(f);
            }
        }
        Files.writeString(ok.resolve("readme.txt"), "x");
        e = assertThrows(Peft4jException.class, () -> open(DataSpec.builder(noImages), model));
        assertTrue(e.getMessage().contains("class folder " + ok + " has no images"), e.getMessage());
    }

    @Test
    void anImageThatIsNotAnImageIsReportedWhenTheDataOpens(@TempDir Path dir) throws Exception {
        Path root = folder(dir);
        Path bad = root.resolve("dent").resolve("img9.png");
        Files.writeString(bad, "this is not a PNG");
        for (long cache : new long[] {-1, 0}) {
            Peft4jException e = assertThrows(Peft4jException.class,
                    () -> open(DataSpec.builder(root).cacheBytes(cache), Fixtures.imageModel(3, 8, 8)));
            assertEquals(ErrorCode.MALFORMED, e.code());
            assertTrue(e.getMessage().contains(bad.toString()), e.getMessage());
        }
    }

    @Test
    void aDamagedImageFailsAtOpenWhenCachedElseItsBatchNamingTheFile(@TempDir Path dir) throws Exception {
        Path root = folder(dir);
        Path bad = root.resolve("ok").resolve("img1.jpg");
        byte[] jpeg = Files.readAllBytes(bad);
        Files.write(bad, Arrays.copyOf(jpeg, jpeg.length * 2 / 3));
        ModelInputs model = Fixtures.imageModel(3, 8, 8);
        Peft4jException atOpen = assertThrows(Peft4jException.class, () -> open(DataSpec.builder(root), model));
        assertTrue(atOpen.getMessage().contains(bad.toString()), atOpen.getMessage());

        Dataset lazy = open(DataSpec.builder(root).cacheBytes(0), model).train();
        int[] order = all(lazy);
        try (BatchLoader loader = new BatchLoader(lazy, order, 4, 1, 0, false, 2)) {
            loader.next();
            Peft4jException e = assertThrows(Peft4jException.class, loader::next);
            assertEquals(ErrorCode.MALFORMED, e.code());
            assertTrue(e.getMessage().startsWith("batch 1 of epoch 0, example 6: " + bad), e.getMessage());
        }
    }
}
