package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DatasetsTest {

    private static List<Path> one(Path p) {
        return List.of(p);
    }

    @Test
    void theKindIsToldFromThePath(@TempDir Path dir) throws Exception {
        Path folder = Files.createDirectories(dir.resolve("imgs"));
        Path idx = Files.write(dir.resolve("train-images-idx3-ubyte.gz"), new byte[1]);
        Path idxDot = Files.write(dir.resolve("t10k-images.idx3-ubyte"), new byte[1]);
        Path x = Files.write(dir.resolve("X.npy"), new byte[1]);
        Path y = Files.write(dir.resolve("Y.npy"), new byte[1]);
        DataSpec.Kind auto = DataSpec.Kind.AUTO;
        assertEquals(DataSpec.Kind.IMAGE_FOLDER, Datasets.kind(one(folder), auto));
        assertEquals(DataSpec.Kind.IDX, Datasets.kind(one(idx), auto));
        assertEquals(DataSpec.Kind.IDX, Datasets.kind(one(idxDot), auto));
        assertEquals(DataSpec.Kind.NPY, Datasets.kind(List.of(x, y), auto));
        assertEquals(DataSpec.Kind.NPY, Datasets.kind(DataSpec.paths(x + "," + y), auto));
        for (String ext : new String[] {"tsv", "CSV", "jsonl"}) {
            Path t = Files.writeString(dir.resolve("d." + ext), "x");
            assertEquals(DataSpec.Kind.TEXT, Datasets.kind(one(t), auto));
        }
        Path txt = Files.writeString(dir.resolve("d.txt"), "x");
        assertEquals(DataSpec.Kind.TEXT, Datasets.kind(one(txt), DataSpec.Kind.TEXT), "a declared kind is taken");
    }

    @Test
    void pathsThatAreNoKnownDataAreRefused(@TempDir Path dir) throws Exception {
        Peft4jException e = assertThrows(Peft4jException.class,
                () -> Datasets.kind(one(dir.resolve("missing.tsv")), DataSpec.Kind.AUTO));
        assertEquals(ErrorCode.IO, e.code());
        assertTrue(e.getMessage().contains("missing.tsv"));
        Path txt = Files.writeString(dir.resolve("d.txt"), "x");
        e = assertThrows(Peft4jException.class, () -> Datasets.kind(one(txt), DataSpec.Kind.AUTO));
        assertTrue(e.getMessage().contains("cannot tell what kind of data " + txt + " is"), e.getMessage());
        Path x = Files.write(dir.resolve("X.npy"), new byte[1]);
        assertTrue(assertThrows(Peft4jException.class, () -> Datasets.kind(one(x), DataSpec.Kind.AUTO)).getMessage()
                .contains("pair"));
        assertTrue(assertThrows(Peft4jException.class, () -> Datasets.kind(List.of(x, txt), DataSpec.Kind.AUTO)).getMessage()
                .contains("pair"));
        assertThrows(Peft4jException.class, () -> Datasets.kind(one(x), DataSpec.Kind.NPY));
    }

    @Test
    void validationDataMustBeOfTheSameKind(@TempDir Path dir) throws Exception {
        Path folder = Fixtures.imageFolder(dir.resolve("f"), new String[] {"a", "b"}, new int[] {2, 2}, 1);
        Path tsv = Files.writeString(dir.resolve("v.tsv"), "x\ty\n");
        Peft4jException e = assertThrows(Peft4jException.class, () -> Datasets.open(
                DataSpec.builder(folder).validation(tsv).build(), Fixtures.imageModel(3, 8, 8)));
        assertTrue(e.getMessage().contains("is a text file but the training data is an image folder"), e.getMessage());
    }

    @Test
    void aSplitNeedsAClassWithTwoExamples(@TempDir Path dir) {
        Path folder = Fixtures.imageFolder(dir.resolve("f"), new String[] {"a", "b"}, new int[] {1, 1}, 1);
        Peft4jException e = assertThrows(Peft4jException.class, () -> Datasets.open(
                DataSpec.builder(folder).valSplit(0.5).build(), Fixtures.imageModel(3, 8, 8)));
        assertTrue(e.getMessage().contains("leaves no validation examples"), e.getMessage());
    }

    @Test
    void aSubsetMapsIndicesAndKeepsTheClasses(@TempDir Path dir) {
        String[] classes = {"a", "b"};
        Path folder = Fixtures.imageFolder(dir.resolve("f"), classes, new int[] {3, 3}, 1);
        Dataset ds = Datasets.open(DataSpec.builder(folder).augment(true).build(), Fixtures.imageModel(3, 8, 8)).train();
        Dataset sub = Datasets.subset(ds, new int[] {5, 0, 5});
        assertEquals(3, sub.size());
        assertEquals(ds.classes(), sub.classes());
        assertEquals(1, sub.label(0));
        assertEquals(0, sub.label(1));
        assertArrayEquals(ds.batch(new int[] {0, 5}, new SplittableRandom(3)).inputs().get("pixel_values").toFloatArray(),
                sub.batch(new int[] {1, 2}, new SplittableRandom(3)).inputs().get("pixel_values").toFloatArray(),
                "a subset passes augmentation through");
        assertThrows(Peft4jException.class, () -> Datasets.subset(ds, new int[] {6}));
        assertTrue(sub.describe().contains("3 examples of"), sub.describe());
    }

    @Test
    void specsAreValidatedWhenBuilt(@TempDir Path dir) {
        Path p = dir.resolve("x");
        assertThrows(Peft4jException.class, () -> DataSpec.builder(p).valSplit(1).build());
        assertThrows(Peft4jException.class, () -> DataSpec.builder(p).valSplit(-0.1).build());
        assertThrows(Peft4jException.class, () -> DataSpec.builder(p).valSplit(0.2).validation(p).build());
        assertThrows(Peft4jException.class, () -> DataSpec.builder(p).mean(0.1f, 0.2f).build());
        assertThrows(Peft4jException.class, () -> DataSpec.builder(p).std(0f).build());
        assertThrows(Peft4jException.class, () -> DataSpec.builder(p).std(Float.NaN).build());
        assertThrows(Peft4jException.class, () -> DataSpec.builder(p).imageSize(0, 5).build());
        assertThrows(Peft4jException.class, () -> DataSpec.builder(p).imageSize(20000, 5).build());
        assertThrows(Peft4jException.class, () -> DataSpec.builder(p).maxLength(1).build());
        assertThrows(Peft4jException.class, () -> DataSpec.builder(p).workers(0).build());
        assertThrows(Peft4jException.class, () -> DataSpec.builder(p).cacheBytes(-2).build());
        assertThrows(Peft4jException.class, () -> DataSpec.builder(" "));
        DataSpec s = DataSpec.builder(p).mean(0.5f).std(0.25f).seed(4).augment(true).build();
        assertEquals(s, s.toBuilder().build());
        assertEquals(s.hashCode(), s.toBuilder().build().hashCode());
        assertTrue(s.toString().contains("mean=[0.5]"), s.toString());
        assertTrue(!s.equals(s.toBuilder().std(0.5f).build()));
        assertArrayEquals(new float[] {0.5f}, s.toBuilder().build().mean());
        assertEquals(2, DataSpec.paths("a.npy,b.npy").size());
        assertEquals(1, DataSpec.paths("a,").size());
    }

    @Test
    void modelInputsComeFromTheGraphWithoutInitializers() {
        Model m = new Model("g", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("x", DataType.FLOAT, "batch", 3, 32, null));
        g.addInput(ValueInfos.tensor("w", DataType.FLOAT, 4));
        g.setInitializer("w", Tensor.ofFloats(new long[] {4}, 1, 2, 3, 4));
        g.build("Relu").in("x").outputs("y").add();
        g.addOutput(ValueInfos.tensor("y", DataType.FLOAT, "batch", 3, 32, null));
        ModelInputs in = ModelInputs.of(m);
        assertEquals(List.of("x"), in.names());
        assertArrayEquals(new long[] {-1, 3, 32, -1}, in.inputs().get(0).shape());
        assertEquals("FLOAT[?,3,32,?]", in.inputs().get(0).describe());
        Model noShape = new Model("g", 17);
        noShape.graph().addInput(ValueInfos.tensor("x", DataType.FLOAT, (Object[]) null));
        assertEquals(ErrorCode.UNSUPPORTED, assertThrows(Peft4jException.class, () -> ModelInputs.of(noShape)).code());
        ModelInputs.Input a = new ModelInputs.Input("a", DataType.FLOAT, new long[] {1});
        assertThrows(Peft4jException.class, () -> ModelInputs.of(a, a));
        assertThrows(Peft4jException.class, () -> new ModelInputs.Input("b", DataType.FLOAT, new long[] {-2}));
    }
}
