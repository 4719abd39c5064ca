package io.peft4j.trainer.train;

import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.peft.InjectMode;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.OnnxChecker;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LoraDropoutTest {

    /** The tiny CNN with LoRA on conv1, dropout before lora_A, and the masked input as an extra output. */
    private static Model model(double p) {
        Model m = TinyModels.cnn(3);
        AdapterConfig c = AdapterConfig.lora(2, 4, List.of("conv1", "fc1", "fc2"));
        Peft.inject(m, AdapterBinding.bind(m, AdapterBinding.init(m, c, 1)), InjectMode.INITIALIZERS);
        assertEquals(3, LoraDropout.apply(m, p));
        m.graph().addOutput(io.peft4j.core.onnx.ValueInfos.tensor(m.graph().node("conv1/lora_dropout/apply").output(0),
                io.peft4j.core.tensor.DataType.FLOAT, "batch", 1L, 8L, 8L));
        return m;
    }

    private static float[] masked(Model m, long seed) {
        float[] ones = new float[64 * 64];
        java.util.Arrays.fill(ones, 1f);
        Map<String, Tensor> out = Ort.run(m, Map.of("x", Tensor.ofFloats(new long[] {64, 1, 8, 8}, ones),
                LoraDropout.SEED_INPUT, Tensor.ofLongs(new long[] {1}, seed)));
        return out.get(m.graph().node("conv1/lora_dropout/apply").output(0)).toFloatArray();
    }

    @Test
    void masksKeepOneMinusPScaledAndChangeWithTheSeedOnly() {
        Model m = model(0.25);
        OnnxChecker.check(m);
        float[] a = masked(m, 12345);
        int kept = 0;
        int runs = 0;
        for (int i = 0; i < a.length; i++) {
            assertTrue(a[i] == 0f || Math.abs(a[i] - 1 / 0.75f) < 1e-6, "value " + a[i]);
            if (a[i] != 0f) {
                kept++;
            }
            if (i > 0 && (a[i] != 0f) == (a[i - 1] != 0f)) {
                runs++;
            }
        }
        double keep = (double) kept / a.length;
        System.out.printf("dropout 0.25 on 4096 elements: kept %.4f, neighbours alike %.4f%n", keep, (double) runs / (a.length - 1));
        assertEquals(0.75, keep, 0.03);
        // neighbours are independent: P(alike) = 0.75² + 0.25² = 0.625
        assertEquals(0.625, (double) runs / (a.length - 1), 0.03);
        assertArrayEquals(a, masked(m, 12345));
        assertFalse(java.util.Arrays.equals(a, masked(m, 12346)));
    }

    @Test
    void trainingWithDropoutRunsAndTheAdapterRecordsIt(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp) {
        ArrayDataset train = ArrayDataset.levels(48, 3);
        TrainSettings s = new TrainSettings();
        s.base = tmp.resolve("tiny.onnx");
        io.peft4j.core.onnx.OnnxIO.write(TinyModels.cnn(5), s.base);
        s.out = tmp.resolve("a");
        s.threads = 1;
        s.batch = 8;
        s.rank = 2;
        s.dropout = 0.1;
        s.epochs = 2;
        TrainResult r = new Trainer(s, null).run(train, null);
        assertEquals(0.1, io.peft4j.core.adapter.AdapterBundle.read(r.output()).config().loraDropout(), 1e-12);
    }
}
