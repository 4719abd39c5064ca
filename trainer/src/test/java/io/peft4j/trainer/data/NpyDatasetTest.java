package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Npy;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class NpyDatasetTest {

    private static final ModelInputs MODEL = ModelInputs.of(new ModelInputs.Input("features", DataType.FLOAT, new long[] {-1, 2, 3}));

    private static float[] values(int n) {
        float[] v = new float[n * 6];
        for (int i = 0; i < v.length; i++) {
            v[i] = i * 0.5f - 3;
        }
        return v;
    }

    private static String pair(Path dir, String name, Tensor x, Tensor y) {
        Path xf = dir.resolve(name + "_x.npy");
        Path yf = dir.resolve(name + "_y.npy");
        Npy.write(xf, x);
        Npy.write(yf, y);
        return xf + "," + yf;
    }

    private static Peft4jException refused(String data, ModelInputs model) {
        return assertThrows(Peft4jException.class, () -> Datasets.open(DataSpec.builder(data).build(), model));
    }

    @Test
    void rowsAreUsedExactlyAsGiven(@TempDir Path dir) {
        String data = pair(dir, "a", Tensor.ofFloats(new long[] {4, 2, 3}, values(4)), Tensor.ofLongs(new long[] {4}, 2, 0, 1, 2));
        DataSplit s = Datasets.open(DataSpec.builder(data).augment(true).build(), MODEL);
        Dataset ds = s.train();
        assertEquals(List.of("0", "1", "2"), ds.classes());
        assertTrue(s.preprocessing().isEmpty());
        Batch b = ds.batch(new int[] {3, 1}, new SplittableRandom(1));
        assertArrayEquals(new long[] {2, 0}, b.labels());
        Tensor x = b.inputs().get("features");
        assertArrayEquals(new long[] {2, 2, 3}, x.shape());
        float[] all = values(4);
        float[] expected = new float[12];
        System.arraycopy(all, 18, expected, 0, 6);
        System.arraycopy(all, 6, expected, 6, 6);
        assertArrayEquals(expected, x.toFloatArray(), 0f);
    }

    @Test
    void int32LabelsAndAValidationPairWork(@TempDir Path dir) {
        String train = pair(dir, "t", Tensor.ofFloats(new long[] {3, 2, 3}, values(3)), Tensor.ofInts(new long[] {3}, 0, 1, 1));
        String val = pair(dir, "v", Tensor.ofFloats(new long[] {2, 2, 3}, values(2)), Tensor.ofInts(new long[] {2}, 1, 1));
        DataSplit s = Datasets.open(DataSpec.builder(train).validation(val).build(), MODEL);
        assertEquals(List.of("0", "1"), s.validation().orElseThrow().classes());
        assertEquals(1, s.validation().orElseThrow().label(0));
        String outOfRange = pair(dir, "w", Tensor.ofFloats(new long[] {2, 2, 3}, values(2)), Tensor.ofInts(new long[] {2}, 1, 2));
        Peft4jException e = assertThrows(Peft4jException.class,
                () -> Datasets.open(DataSpec.builder(train).validation(outOfRange).build(), MODEL));
        assertTrue(e.getMessage().contains("label 1 is 2, out of range for the 2 classes"), e.getMessage());
    }

    @Test
    void mismatchesAreRefusedNamingTheFile(@TempDir Path dir) {
        Tensor x = Tensor.ofFloats(new long[] {3, 2, 3}, values(3));
        Tensor y = Tensor.ofLongs(new long[] {3}, 0, 1, 0);

        String doubles = pair(dir, "d", x.to(DataType.DOUBLE), y);
        Peft4jException e = refused(doubles, MODEL);
        assertEquals(ErrorCode.SHAPE_MISMATCH, e.code());
        assertTrue(e.getMessage().contains("d_x.npy holds DOUBLE values; the model input 'features' takes FLOAT"), e.getMessage());

        String shape = pair(dir, "s", x.reshape(3, 3, 2), y);
        assertTrue(refused(shape, MODEL).getMessage().contains("(dimension 1 differs)"));
        String rank = pair(dir, "r", x.reshape(3, 6), y);
        assertTrue(refused(rank, MODEL).getMessage().contains("rank 2"));

        String count = pair(dir, "c", x, Tensor.ofLongs(new long[] {2}, 0, 1));
        assertTrue(refused(count, MODEL).getMessage().contains("has 3 examples but"));

        String floatLabels = pair(dir, "f", x, Tensor.ofFloats(new long[] {3}, 0, 1, 0));
        assertTrue(refused(floatLabels, MODEL).getMessage().contains("labels are int64 or int32"));

        String matrixLabels = pair(dir, "m", x, Tensor.ofLongs(new long[] {3, 1}, 0, 1, 0));
        assertTrue(refused(matrixLabels, MODEL).getMessage().contains("one per example"));

        String negative = pair(dir, "n", x, Tensor.ofLongs(new long[] {3}, 0, -1, 0));
        e = refused(negative, MODEL);
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
        assertTrue(e.getMessage().contains("n_y.npy: label 1 is -1"), e.getMessage());

        String ok = pair(dir, "ok", x, y);
        ModelInputs two = ModelInputs.of(new ModelInputs.Input("a", DataType.FLOAT, new long[] {-1, 2, 3}),
                new ModelInputs.Input("b", DataType.FLOAT, new long[] {-1}));
        assertEquals(ErrorCode.UNSUPPORTED, refused(ok, two).code());

        Peft4jException missing = refused(dir.resolve("none_x.npy") + "," + dir.resolve("none_y.npy"), MODEL);
        assertEquals(ErrorCode.IO, missing.code());
        assertTrue(missing.getMessage().contains("none_x.npy"));
        assertTrue(refused(dir.resolve("ok_x.npy").toString(), MODEL).getMessage().contains("pair"));
    }
}
