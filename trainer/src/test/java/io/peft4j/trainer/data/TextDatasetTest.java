package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Text data with the all-MiniLM-L6-v2 tokenizer (bert-base-uncased vocabulary) from the test class path. */
class TextDatasetTest {

    private static final long CLS = 101;
    private static final long SEP = 102;

    @TempDir
    static Path shared;
    static Path tokenizerJson;

    @BeforeAll
    static void extractTokenizer() throws Exception {
        tokenizerJson = shared.resolve("tokenizer.json");
        try (InputStream in = TextDatasetTest.class.getResourceAsStream(TextTokenizer.MINILM_RESOURCE)) {
            assertTrue(in != null, "the MiniLM jar is a test dependency of the trainer");
            Files.copy(in, tokenizerJson);
        }
    }

    private static ModelInputs bert(DataType type, long seq, boolean types) {
        ModelInputs.Input ids = new ModelInputs.Input("input_ids", type, new long[] {-1, seq});
        ModelInputs.Input mask = new ModelInputs.Input("attention_mask", type, new long[] {-1, seq});
        return types ? ModelInputs.of(ids, mask, new ModelInputs.Input("token_type_ids", type, new long[] {-1, seq}))
                : ModelInputs.of(ids, mask);
    }

    private static Path tsv(Path dir, String name, String content) throws Exception {
        return Files.writeString(dir.resolve(name), content);
    }

    @Test
    void theMiniLmTokenizerGivesBertIds() {
        try (TextTokenizer t = TextTokenizer.bundledMiniLm(128).orElseThrow()) {
            assertArrayEquals(new long[] {CLS, 7592, 2088, SEP}, t.ids("hello world"));
            assertArrayEquals(new long[] {CLS, 7592, 2088, SEP}, t.ids("Hello World"), "uncased");
            assertEquals(0, t.padId());
            assertTrue(t.source().startsWith("classpath:"));
        }
        if (System.getenv("DJL_OFFLINE") == null) {
            assertEquals("true", System.getProperty("ai.djl.offline"), "DJL may not download its library at run time");
        }
        try (TextTokenizer t = TextTokenizer.open(tokenizerJson, 4)) {
            long[] ids = t.ids("hello world again and again");
            assertArrayEquals(new long[] {CLS, 7592, 2088, SEP}, ids, "truncated to 4 with [SEP] kept last");
            TextTokenizer.Encoded e = t.encode(List.of("hello", "hello world again"));
            assertEquals(1, e.truncated());
            assertArrayEquals(new long[] {0, 0, 0}, e.typeIds()[0]);
        }
    }

    @Test
    void aTokenizerBesideTheModelIsFound(@TempDir Path dir) throws Exception {
        Path model = Files.write(dir.resolve("model.onnx"), new byte[1]);
        assertTrue(TextTokenizer.besideModel(model).isEmpty());
        Files.copy(tokenizerJson, dir.resolve("tokenizer.json"));
        assertEquals(dir.resolve("tokenizer.json").toAbsolutePath(), TextTokenizer.besideModel(model).orElseThrow());
    }

    @Test
    void badTokenizersAreRefusedByName(@TempDir Path dir) throws Exception {
        Path missing = dir.resolve("none.json");
        Peft4jException e = assertThrows(Peft4jException.class, () -> TextTokenizer.open(missing, 8));
        assertEquals(ErrorCode.IO, e.code());
        assertTrue(e.getMessage().contains(missing.toString()));
        Path notJson = Files.writeString(dir.resolve("a.json"), "vocab: [1, 2]");
        assertEquals(ErrorCode.MALFORMED, assertThrows(Peft4jException.class, () -> TextTokenizer.open(notJson, 8)).code());
        Path noModel = Files.writeString(dir.resolve("b.json"), "{\"version\": \"1.0\"}");
        e = assertThrows(Peft4jException.class, () -> TextTokenizer.open(noModel, 8));
        assertTrue(e.getMessage().contains(noModel + " is not a Hugging Face tokenizer.json"), e.getMessage());
        Path badModel = Files.writeString(dir.resolve("c.json"), "{\"model\": {\"type\": \"Nonsense\"}}");
        e = assertThrows(Peft4jException.class, () -> TextTokenizer.open(badModel, 8));
        assertEquals(ErrorCode.MALFORMED, e.code());
        assertTrue(e.getMessage().contains(badModel.toString()), e.getMessage());
    }

    @Test
    void batchesPadToTheLongestTextWithAMask(@TempDir Path dir) throws Exception {
        Path f = tsv(dir, "t.tsv", "spam\thello world\nham\thello\nham\tworld\n");
        DataSpec spec = DataSpec.builder(f).tokenizer(tokenizerJson).build();
        Dataset ds = Datasets.open(spec, bert(DataType.INT64, -1, true)).train();
        assertEquals(List.of("ham", "spam"), ds.classes());
        assertEquals(1, ds.label(0));
        Batch b = ds.batch(new int[] {1, 0}, null);
        assertEquals(List.of("input_ids", "attention_mask", "token_type_ids"), List.copyOf(b.inputs().keySet()));
        Tensor ids = b.inputs().get("input_ids");
        assertArrayEquals(new long[] {2, 4}, ids.shape());
        assertArrayEquals(new long[] {CLS, 7592, SEP, 0, CLS, 7592, 2088, SEP}, ids.toLongArray());
        assertArrayEquals(new long[] {1, 1, 1, 0, 1, 1, 1, 1}, b.inputs().get("attention_mask").toLongArray());
        assertArrayEquals(new long[8], b.inputs().get("token_type_ids").toLongArray());
        assertArrayEquals(new long[] {0, 1}, b.labels());
        assertArrayEquals(new long[] {1, 3}, ds.batch(new int[] {2}, null).inputs().get("input_ids").shape());
        assertTrue(ds.describe().contains("3 texts, 2 classes"), ds.describe());
    }

    @Test
    void paddingToMaxLengthOrTheModelsFixedLength(@TempDir Path dir) throws Exception {
        Path f = tsv(dir, "t.tsv", "0\thello world\n1\thello\n");
        DataSpec toMax = DataSpec.builder(f).tokenizer(tokenizerJson).maxLength(6).padding(DataSpec.Padding.MAX_LENGTH).build();
        Batch b = Datasets.open(toMax, bert(DataType.INT64, -1, false)).train().batch(new int[] {0, 1}, null);
        assertEquals(List.of("input_ids", "attention_mask"), List.copyOf(b.inputs().keySet()), "no token types: not fed");
        assertArrayEquals(new long[] {2, 6}, b.inputs().get("input_ids").shape());

        DataSpec longer = DataSpec.builder(f).tokenizer(tokenizerJson).build();
        Dataset fixed = Datasets.open(longer, bert(DataType.INT32, 3, true)).train();
        Batch fb = fixed.batch(new int[] {0, 1}, null);
        Tensor ids = fb.inputs().get("input_ids");
        assertEquals(DataType.INT32, ids.dtype());
        assertArrayEquals(new long[] {CLS, 7592, SEP, CLS, 7592, SEP}, ids.toLongArray(), "truncated to the model's 3");
        assertEquals(List.of("0", "1"), fixed.classes());
    }

    @Test
    void labelsAreCheckedAgainstTheTrainingClasses(@TempDir Path dir) throws Exception {
        Path train = tsv(dir, "train.tsv", "a\tpos\nb\tneg\nc\tpos\n");
        Path val = tsv(dir, "val.tsv", "d\tneg\ne\tmeh\n");
        DataSpec spec = DataSpec.builder(train).validation(val).tokenizer(tokenizerJson).build();
        Peft4jException e = assertThrows(Peft4jException.class, () -> Datasets.open(spec, bert(DataType.INT64, -1, true)));
        assertTrue(e.getMessage().contains(val + " line 2: label 'meh' is not one of the training classes [neg, pos]"),
                e.getMessage());

        Path ints = tsv(dir, "i.tsv", "a\t0\nb\t2\nc\t2\n");
        Path intVal = tsv(dir, "iv.tsv", "d\t3\ne\t1\n");
        e = assertThrows(Peft4jException.class, () -> Datasets.open(DataSpec.builder(ints).validation(intVal)
                .tokenizer(tokenizerJson).build(), bert(DataType.INT64, -1, true)));
        assertTrue(e.getMessage().contains("line 1: label '3' is out of range for the 3 classes"), e.getMessage());
        Path negative = tsv(dir, "n.tsv", "a\t0\nb\t-1\nc\t1\n");
        e = assertThrows(Peft4jException.class, () -> Datasets.open(DataSpec.builder(negative).tokenizer(tokenizerJson).build(),
                bert(DataType.INT64, -1, true)));
        assertTrue(e.getMessage().contains(negative + " line 2: label -1 is negative"), e.getMessage());

        DataSplit ok = Datasets.open(DataSpec.builder(ints).validation(tsv(dir, "ok.tsv", "x\t1\n"))
                .tokenizer(tokenizerJson).build(), bert(DataType.INT64, -1, true));
        assertEquals(List.of("0", "1", "2"), ok.validation().orElseThrow().classes());
        assertEquals(1, ok.validation().orElseThrow().label(0));
    }

    @Test
    void modelsThatAreNotTextModelsAreRefused(@TempDir Path dir) throws Exception {
        Path f = tsv(dir, "t.tsv", "a\tpos\nb\tneg\nc\tpos\n");
        DataSpec spec = DataSpec.builder(f).tokenizer(tokenizerJson).build();
        assertEquals(ErrorCode.NOT_FOUND, assertThrows(Peft4jException.class,
                () -> Datasets.open(spec, Fixtures.imageModel(3, 8, 8))).code());
        ModelInputs extra = ModelInputs.of(new ModelInputs.Input("input_ids", DataType.INT64, new long[] {-1, -1}),
                new ModelInputs.Input("position_ids", DataType.INT64, new long[] {-1, -1}));
        assertTrue(assertThrows(Peft4jException.class, () -> Datasets.open(spec, extra)).getMessage().contains("'position_ids'"));
        ModelInputs floats = ModelInputs.of(new ModelInputs.Input("input_ids", DataType.FLOAT, new long[] {-1, -1}));
        assertEquals(ErrorCode.SHAPE_MISMATCH, assertThrows(Peft4jException.class, () -> Datasets.open(spec, floats)).code());
    }

    @Test
    void withoutATokenizerTheBundledMiniLmOneIsUsed(@TempDir Path dir) throws Exception {
        Path f = tsv(dir, "t.tsv", "hello world\tx\ngoodbye\ty\nhello\tx\n");
        Dataset ds = Datasets.open(DataSpec.builder(f).build(), bert(DataType.INT64, -1, true)).train();
        assertTrue(ds.describe().contains("classpath:"), ds.describe());
        long[] ids = ds.batch(new int[] {0}, null).inputs().get("input_ids").toLongArray();
        assertArrayEquals(new long[] {CLS, 7592, 2088, SEP}, ids);
        assertFalse(Arrays.equals(ids, ds.batch(new int[] {1}, null).inputs().get("input_ids").toLongArray()));
    }
}
