package io.peft4j.trainer.data;

import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.Ort;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The data sources on the shared datasets and real models; skipped when an asset is missing. */
class RealDataTest {

    private static boolean finite(Tensor t) {
        for (float v : t.toFloatArray()) {
            if (!Float.isFinite(v)) {
                return false;
            }
        }
        return true;
    }

    @Test
    void neuDetFeedsResnet18() {
        Path neu = Assets.shared("data/neu-det");
        Path resnet = Assets.shared("models/resnet18.onnx");
        ModelInputs inputs = ModelInputs.of(OnnxIO.read(resnet));
        DataSplit s = Datasets.open(DataSpec.builder(neu).valSplit(0.2).seed(1).augment(true).build(), inputs);
        assertEquals(List.of("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"), s.classes());
        assertEquals(1440, s.train().size());
        Dataset val = s.validation().orElseThrow();
        assertEquals(360, val.size());
        int[] perClass = new int[6];
        for (int i = 0; i < val.size(); i++) {
            perClass[val.label(i)]++;
        }
        assertArrayEquals(new int[] {60, 60, 60, 60, 60, 60}, perClass);
        assertEquals(64, s.preprocessing().orElseThrow().height());
        String input = inputs.inputs().get(0).name();
        try (BatchLoader l = new BatchLoader(s.train(), Splits.shuffled(s.train().size(), 1, 0), 16, 1, 0, true, 2)) {
            Batch b = l.next();
            assertArrayEquals(new long[] {16, 3, 64, 64}, b.inputs().get(input).shape());
            Map<String, Tensor> out = Ort.run(resnet, b.inputs());
            Tensor logits = out.values().iterator().next();
            assertArrayEquals(new long[] {16, 6}, logits.shape());
            assertTrue(finite(logits));
        }
    }

    @Test
    void fashionMnistTrainAndTestFiles() {
        Path train = Assets.shared("data/fashion-mnist/train-images-idx3-ubyte.gz");
        Path test = Assets.shared("data/fashion-mnist/t10k-images-idx3-ubyte.gz");
        DataSplit s = Datasets.open(DataSpec.builder(train).validation(test).build(), Fixtures.imageModel(1, 28, 28));
        assertEquals(60000, s.train().size());
        assertEquals(10000, s.validation().orElseThrow().size());
        assertEquals(10, s.classes().size());
        int[] counts = new int[10];
        for (int y : Splits.labels(s.train())) {
            counts[y]++;
        }
        assertArrayEquals(IntStream.range(0, 10).map(i -> 6000).toArray(), counts, "Fashion-MNIST is balanced");
        float[] x = s.train().batch(new int[] {0}, null).inputs().get("pixel_values").toFloatArray();
        float min = Float.MAX_VALUE;
        float max = -Float.MAX_VALUE;
        for (float v : x) {
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        assertEquals(-1f, min, 1e-6f, "0 maps to -1 with mean 0.5, std 0.5");
        assertTrue(max > 0.5f && max <= 1f, "bright pixels near 1: " + max);
        Dataset rgb = Datasets.open(DataSpec.builder(train).build(), Fixtures.imageModel(3, 64, 64)).train();
        assertArrayEquals(new long[] {2, 3, 64, 64}, rgb.batch(new int[] {0, 1}, null).inputs().get("pixel_values").shape());
    }

    @Test
    void smsSpamFeedsMiniLm() {
        Path sms = Assets.shared("data/sms-spam/sms.tsv");
        Path minilm = Assets.miniLm();
        ModelInputs inputs = ModelInputs.of(OnnxIO.read(minilm));
        assertEquals(List.of("input_ids", "attention_mask", "token_type_ids"), inputs.names());
        DataSplit s = Datasets.open(DataSpec.builder(sms).valSplit(0.1).seed(2).build(), inputs);
        assertEquals(List.of("ham", "spam"), s.classes());
        Dataset val = s.validation().orElseThrow();
        assertEquals(5574, s.train().size() + val.size());
        assertEquals(747, IntStream.of(Splits.labels(s.train())).sum() + IntStream.of(Splits.labels(val)).sum());
        assertEquals(75, IntStream.of(Splits.labels(val)).sum(), "10% of the spam");
        Batch b = s.train().batch(new int[] {0, 1, 2}, null);
        long[] ids = b.inputs().get("input_ids").toLongArray();
        assertEquals(101, ids[0]);
        assertTrue(b.inputs().get("input_ids").dim(1) <= 128);
        Map<String, Tensor> out = Ort.run(minilm, b.inputs());
        Tensor hidden = out.values().iterator().next();
        assertEquals(3, hidden.dim(0));
        assertEquals(b.inputs().get("input_ids").dim(1), hidden.dim(1));
        assertTrue(finite(hidden));
    }

    @Test
    void onNeuDetTheCacheGivesWhatDecodingEachFileGives() {
        Path neu = Assets.shared("data/neu-det");
        ModelInputs model = Fixtures.imageModel(3, 64, 64);
        Dataset cached = Datasets.open(DataSpec.builder(neu).build(), model).train();
        Dataset lazy = Datasets.open(DataSpec.builder(neu).cacheBytes(0).build(), model).train();
        assertEquals(ImageDataset.Cache.SOURCE, ((ImageDataset) cached).cache());
        assertEquals(ImageDataset.Cache.NONE, ((ImageDataset) lazy).cache());
        int[] some = Splits.shuffled(cached.size(), 3, 0);
        int[] idx = java.util.Arrays.copyOf(some, 64);
        assertArrayEquals(cached.batch(idx, new SplittableRandom(4)).inputs().get("pixel_values").toFloatArray(),
                lazy.batch(idx, new SplittableRandom(4)).inputs().get("pixel_values").toFloatArray());
        assertTrue(cached.describe().contains("1800 images, 6 classes"), cached.describe());
    }
}
