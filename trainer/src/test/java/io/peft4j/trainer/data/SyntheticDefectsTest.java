package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.trainer.data.SyntheticDefects.Defect;
import io.peft4j.trainer.data.SyntheticDefects.Split;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import java.util.zip.CRC32;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SyntheticDefectsTest {

    private static final SyntheticDefects METAL = new SyntheticDefects(SyntheticDefects.METAL, 32, 7);

    @Test
    void theSameCallGivesTheSameBytesAndAnyOtherArgumentOthers() {
        SyntheticDefects again = new SyntheticDefects(SyntheticDefects.line("metal"), 32, 7);
        for (Defect d : Defect.values()) {
            byte[] a = METAL.image(Split.TRAIN, d, 3);
            assertEquals(32 * 32, a.length);
            assertArrayEquals(a, again.image(Split.TRAIN, d, 3), d.label());
            assertFalse(Arrays.equals(a, METAL.image(Split.TRAIN, d, 4)), "another index: " + d);
            assertFalse(Arrays.equals(a, METAL.image(Split.TEST, d, 3)), "the test split: " + d);
            assertFalse(Arrays.equals(a, new SyntheticDefects(SyntheticDefects.METAL, 32, 8).image(Split.TRAIN, d, 3)),
                    "another seed: " + d);
            assertFalse(Arrays.equals(a, new SyntheticDefects(SyntheticDefects.METAL_DIM, 32, 7).image(Split.TRAIN, d, 3)),
                    "another line: " + d);
        }
    }

    /**
     * Golden checksums: the pixels are a function of the arguments alone, on every machine and JVM.
     * A change to the generator that changes them must bump {@link SyntheticDefects#GENERATOR_VERSION}
     * and these values.
     */
    @Test
    void pixelsMatchTheGoldenChecksums() {
        assertEquals(1, SyntheticDefects.GENERATOR_VERSION);
        long[] want = GOLDEN;
        int k = 0;
        for (SyntheticDefects.Line line : SyntheticDefects.lines()) {
            SyntheticDefects g = new SyntheticDefects(line, 32, 42);
            for (Defect d : Defect.values()) {
                assertEquals(want[k++], crc(g.image(Split.TRAIN, d, 0)), line.name() + " " + d.label());
            }
        }
        assertEquals(want[k], crc(new SyntheticDefects(SyntheticDefects.FABRIC, 61, 42).image(Split.TEST, Defect.CRACK, 9)));
    }

    private static final long[] GOLDEN = {
        254695643L, 2157195195L, 2467550817L, 3666185846L, 1333443012L, // metal
        2710027212L, 4096556653L, 4047893505L, 101513803L, 3380150708L, // metal-dim
        1984591305L, 2659215804L, 2251301111L, 11207230L, 1943332222L, // fabric
        1901902507L, // fabric, 61x61, test split, crack 9
    };

    private static long crc(byte[] b) {
        CRC32 c = new CRC32();
        c.update(b);
        return c.getValue();
    }

    @Test
    void anySizeShowsTheSameSurface() {
        byte[] small = new SyntheticDefects(SyntheticDefects.METAL, 32, 7).image(Split.TRAIN, Defect.SPOT, 1);
        byte[] large = new SyntheticDefects(SyntheticDefects.METAL, 64, 7).image(Split.TRAIN, Defect.SPOT, 1);
        assertEquals(64 * 64, large.length);
        // 2×2 averages of the large image follow the small one (noise and grain are drawn per pixel)
        double err = 0;
        for (int y = 0; y < 32; y++) {
            for (int x = 0; x < 32; x++) {
                int s = (large[(2 * y) * 64 + 2 * x] & 0xff) + (large[(2 * y) * 64 + 2 * x + 1] & 0xff)
                        + (large[(2 * y + 1) * 64 + 2 * x] & 0xff) + (large[(2 * y + 1) * 64 + 2 * x + 1] & 0xff);
                err += Math.abs(s / 4.0 - (small[y * 32 + x] & 0xff));
            }
        }
        assertTrue(err / 1024 < 12, "mean difference " + err / 1024);
        assertEquals(8 * 8, new SyntheticDefects(SyntheticDefects.FABRIC, 8, 7).image(Split.TEST, Defect.CRACK, 0).length);
    }

    @Test
    void aDefectChangesAFewPixelsOfTheSameSurface() {
        // the same key draws the same surface and lighting for every class: the difference is the defect
        for (SyntheticDefects.Line line : SyntheticDefects.lines()) {
            for (long key = 0; key < 30; key++) {
                byte[] good = new byte[1024];
                DefectRenderer.render(line, Defect.GOOD, key, 32, good, 0);
                for (Defect d : List.of(Defect.SCRATCH, Defect.SPOT, Defect.CRACK, Defect.INCLUSION)) {
                    byte[] bad = new byte[1024];
                    DefectRenderer.render(line, d, key, 32, bad, 0);
                    int changed = 0;
                    int largest = 0;
                    for (int i = 0; i < 1024; i++) {
                        int diff = Math.abs((bad[i] & 0xff) - (good[i] & 0xff));
                        changed += diff > 2 ? 1 : 0;
                        largest = Math.max(largest, diff);
                    }
                    // faint defects in dim light change a few pixels by a few levels; none covers a third of the image
                    String what = line.name() + " " + d.label() + " key " + key;
                    assertTrue(changed >= 2 && changed <= 340, what + ": " + changed + " pixels changed");
                    assertTrue(largest >= 5, what + ": largest change " + largest);
                }
            }
        }
    }

    @Test
    void linesDiffer() {
        double dimMean = 0;
        double metalMean = 0;
        SyntheticDefects dim = new SyntheticDefects(SyntheticDefects.METAL_DIM, 32, 7);
        for (int i = 0; i < 40; i++) {
            metalMean += mean(METAL.image(Split.TRAIN, Defect.GOOD, i));
            dimMean += mean(dim.image(Split.TRAIN, Defect.GOOD, i));
        }
        assertTrue(dimMean < 0.75 * metalMean, "metal-dim is darker: " + dimMean / 40 + " vs " + metalMean / 40);
        // fabric's weave repeats every 4 reference pixels; brushed metal has no such period across its streaks
        assertTrue(periodicity(new SyntheticDefects(SyntheticDefects.FABRIC, 32, 7)) > periodicity(METAL) + 0.2);
    }

    /** Mean correlation of pixels 4 apart vertically minus 2 apart: high for a period-4 weave. */
    private static double periodicity(SyntheticDefects g) {
        double sum = 0;
        for (int i = 0; i < 20; i++) {
            byte[] p = g.image(Split.TRAIN, Defect.GOOD, i);
            sum += correlation(p, 4) - correlation(p, 2);
        }
        return sum / 20;
    }

    private static double correlation(byte[] p, int dy) {
        double m = mean(p);
        double num = 0;
        double den = 0;
        for (int y = 0; y + dy < 32; y++) {
            for (int x = 0; x < 32; x++) {
                double a = (p[y * 32 + x] & 0xff) - m;
                double b = (p[(y + dy) * 32 + x] & 0xff) - m;
                num += a * b;
                den += a * a;
            }
        }
        return num / den;
    }

    private static double mean(byte[] p) {
        double s = 0;
        for (byte b : p) {
            s += b & 0xff;
        }
        return s / p.length;
    }

    @Test
    void aDatasetHoldsEveryClassEquallyInFolderOrder() {
        ModelInputs model = Fixtures.imageModel(1, 32, 32);
        Dataset ds = METAL.dataset(Split.TEST, 7, model);
        assertEquals(List.of("crack", "good", "inclusion", "scratch", "spot"), ds.classes());
        assertEquals(35, ds.size());
        int[] counts = new int[5];
        for (int i = 0; i < ds.size(); i++) {
            counts[ds.label(i)]++;
            assertEquals(i / 7, ds.label(i));
        }
        assertArrayEquals(new int[] {7, 7, 7, 7, 7}, counts);
        Batch b = ds.batch(new int[] {0, 8}, null);
        float[] x = b.inputs().get("pixel_values").toFloatArray();
        assertArrayEquals(new long[] {0, 1}, b.labels());
        byte[] crack0 = METAL.image(Split.TEST, Defect.CRACK, 0);
        byte[] good1 = METAL.image(Split.TEST, Defect.GOOD, 1);
        for (int i = 0; i < 1024; i++) {
            assertEquals(((crack0[i] & 0xff) / 255f - 0.5f) / 0.5f, x[i], 1e-6f);
            assertEquals(((good1[i] & 0xff) / 255f - 0.5f) / 0.5f, x[1024 + i], 1e-6f);
        }
        assertTrue(ds.describe().contains("synthetic metal test"), ds.describe());

        DataSplit split = METAL.open(4, 2, Fixtures.imageModel(3, 48, 48), true);
        assertEquals(20, split.train().size());
        assertEquals(10, split.validation().orElseThrow().size());
        assertArrayEquals(new long[] {10, 3, 48, 48}, split.validation().get().batch(IntStream.range(0, 10).toArray(), null)
                .inputs().get("pixel_values").shape());
        assertEquals(48, split.preprocessing().orElseThrow().height());
    }

    @Test
    void foldersHoldPngsThatDecodeToTheSamePixelsAndTrainTheSame(@TempDir Path tmp) throws Exception {
        Path dir = tmp.resolve("metal");
        SyntheticDefects.Written w = METAL.write(dir, Split.TRAIN, 3, 2);
        assertEquals(15, w.images());
        for (String c : SyntheticDefects.CLASSES) {
            try (Stream<Path> s = Files.list(dir.resolve(c))) {
                assertEquals(List.of(c + "_00000.png", c + "_00001.png", c + "_00002.png"),
                        s.map(p -> p.getFileName().toString()).sorted().toList());
            }
        }
        Pixels p = ImageFiles.decode(dir.resolve("scratch/scratch_00002.png"));
        assertEquals(1, p.channels());
        assertArrayEquals(METAL.image(Split.TRAIN, Defect.SCRATCH, 2), Arrays.copyOfRange(p.data(), p.offset(),
                p.offset() + 1024));
        String meta = Files.readString(dir.resolve("synth.json"));
        assertTrue(meta.contains("\"line\" : \"metal\"") && meta.contains("\"seed\" : 7") && meta.contains("\"split\" : \"train\""),
                meta);

        // the folder, read as peft4j train reads it, gives the model exactly what the dataset gives
        ModelInputs model = Fixtures.imageModel(1, 32, 32);
        Dataset fromFiles = Datasets.open(DataSpec.builder(dir).build(), model).train();
        Dataset direct = METAL.dataset(Split.TRAIN, 3, model);
        int[] all = IntStream.range(0, 15).toArray();
        assertEquals(direct.classes(), fromFiles.classes());
        Batch a = fromFiles.batch(all, null);
        Batch b = direct.batch(all, null);
        assertArrayEquals(b.labels(), a.labels());
        assertArrayEquals(b.inputs().get("pixel_values").toFloatArray(), a.inputs().get("pixel_values").toFloatArray());

        // written again: the same bytes
        Path again = tmp.resolve("again");
        METAL.write(again, Split.TRAIN, 3, 1);
        assertArrayEquals(Files.readAllBytes(dir.resolve("spot/spot_00001.png")), Files.readAllBytes(again.resolve("spot/spot_00001.png")));
    }

    @Test
    void writingRefusesANonEmptyFolderAndLeavesNothingBehind(@TempDir Path tmp) throws Exception {
        Path full = Files.createDirectories(tmp.resolve("full"));
        Files.writeString(full.resolve("keep.txt"), "mine");
        Peft4jException e = assertThrows(Peft4jException.class, () -> METAL.write(full, Split.TRAIN, 2, 1));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
        assertTrue(e.getMessage().contains("exists and is not empty"), e.getMessage());
        assertEquals("mine", Files.readString(full.resolve("keep.txt")));

        Path file = Files.writeString(tmp.resolve("file"), "x");
        assertEquals(ErrorCode.IO, assertThrows(Peft4jException.class, () -> METAL.write(file, Split.TRAIN, 2, 1)).code());

        Path empty = Files.createDirectories(tmp.resolve("empty"));
        assertEquals(10, METAL.write(empty, Split.TEST, 2, 1).images());
        assertTrue(Files.isRegularFile(empty.resolve("good/good_00001.png")));
        try (Stream<Path> s = Files.list(tmp)) {
            assertEquals(List.of("empty", "file", "full"), s.map(p -> p.getFileName().toString()).sorted().toList(),
                    "no temporary folder is left");
        }
    }

    @Test
    void badArgumentsAreClearErrors() {
        Peft4jException line = assertThrows(Peft4jException.class, () -> SyntheticDefects.line("wood"));
        assertEquals(ErrorCode.NOT_FOUND, line.code());
        assertEquals("unknown production line 'wood'; the lines are metal, metal-dim, fabric", line.getMessage());
        assertEquals(ErrorCode.INVALID_ARGUMENT, assertThrows(Peft4jException.class,
                () -> new SyntheticDefects(SyntheticDefects.METAL, 7, 1)).code());
        assertTrue(assertThrows(Peft4jException.class, () -> new SyntheticDefects(SyntheticDefects.METAL, 4096, 1))
                .getMessage().contains("8..2048"));
        assertThrows(Peft4jException.class, () -> METAL.dataset(Split.TRAIN, 0, Fixtures.imageModel(1, 32, 32)));
        assertThrows(Peft4jException.class, () -> METAL.image(Split.TRAIN, Defect.GOOD, -1));
        assertEquals("unknown split 'val'; use train or test",
                assertThrows(Peft4jException.class, () -> Split.parse("val")).getMessage());
        assertEquals(ErrorCode.NOT_FOUND, assertThrows(Peft4jException.class, () -> Defect.of("dent")).code());
        assertThrows(Peft4jException.class, () -> new SyntheticDefects.Lighting(1, 0.2f, 0.1f, -0.01f));
        assertThrows(Peft4jException.class, () -> new SyntheticDefects.Line("Metal 2", "x", SyntheticDefects.METAL.surface(),
                SyntheticDefects.METAL.lighting(), SyntheticDefects.METAL.appearance()));
    }

    @Test
    void segmentsCoverThePixelsTheyCross() {
        float[] cov = DefectRenderer.coverage(new float[] {4, 16.5f, 28, 16.5f, 0.5f}, 32, 1);
        assertEquals(1f, cov[16 * 32 + 10]);
        assertEquals(0f, cov[18 * 32 + 10]);
        assertEquals(0f, cov[16 * 32 + 30], "beyond the end");
        float[] wide = DefectRenderer.coverage(new float[] {4, 16.5f, 28, 16.5f, 0.5f}, 64, 2);
        assertEquals(1f, wide[33 * 64 + 20]);
        assertEquals(0f, wide[36 * 64 + 20]);
    }
}
