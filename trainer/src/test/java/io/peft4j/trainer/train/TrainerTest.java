package io.peft4j.trainer.train;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.peft.Heads;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.safetensors.SafetensorsFile;
import io.peft4j.core.tensor.Npy;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainerTest {

    @TempDir
    Path tmp;

    private Path tinyBase() {
        Path p = tmp.resolve("tiny.onnx");
        if (!Files.exists(p)) {
            OnnxIO.write(TinyModels.cnn(5), p);
        }
        return p;
    }

    private TrainSettings tiny(String out) {
        TrainSettings s = new TrainSettings();
        s.base = tinyBase();
        s.out = tmp.resolve(out);
        s.threads = 1;
        s.batch = 8;
        s.rank = 2;
        s.alpha = 4;
        s.lr = 0.02;
        return s;
    }

    /** The parity check: one SGD step at lr 1 equals PyTorch's torch.optim.SGD step. */
    @Test
    void oneSgdStepMatchesPyTorch() {
        Path base = Assets.shared("models/resnet18.onnx");
        Path ref = Path.of("src/test/resources/reference/resnet18-sgd-step");
        TrainSettings s = new TrainSettings();
        s.base = base;
        s.out = tmp.resolve("out");
        s.initAdapter = ref.resolve("adapter");
        s.method = TrainSettings.Method.LORA;
        s.optimizer = "sgd";
        s.lr = 1;
        s.momentum = 0;
        s.weightDecay = 0.0;
        s.maxGradNorm = 0;
        s.steps = 1;
        s.batch = 8;
        s.shuffle = false;
        s.threads = 2;
        Tensor x = Npy.read(ref.resolve("x.npy"));
        long[] y = Npy.read(ref.resolve("y.npy")).toLongArray();
        TrainResult r = new Trainer(s, null).run(new ArrayDataset("input", x, y, List.of("0", "1", "2", "3", "4", "5")), null);
        assertTrue(r.adapter());
        Map<String, Tensor> got = AdapterBundle.read(r.output()).tensors();
        Map<String, Tensor> want = SafetensorsFile.readAll(ref.resolve("updated.safetensors"));
        assertEquals(want.keySet(), got.keySet());
        double worst = 0;
        for (String k : want.keySet()) {
            assertArrayEquals(want.get(k).shape(), got.get(k).shape(), k);
            worst = Math.max(worst, Ort.maxRelDiff(want.get(k), got.get(k)));
        }
        System.out.printf("one SGD step vs PyTorch: worst relative difference %.3g over %d tensors%n", worst, want.size());
        assertTrue(worst < 1e-3, "worst relative difference " + worst);
        assertEquals(1L, ((Number) r.metrics().get("steps")).longValue());
    }

    @Test
    void loraWithANewHeadLearnsAndTheBundleBindsToTheBase() {
        TrainSettings s = tiny("lora");
        s.headClasses = 3;
        s.epochs = 8;
        ArrayDataset train = ArrayDataset.levels(96, 1);
        ArrayDataset val = ArrayDataset.levels(48, 2);
        TrainResult r = new Trainer(s, null).run(train, val);
        assertTrue(r.evaluation().accuracy() > 0.9, "val accuracy " + r.evaluation().accuracy());
        AdapterBundle b = AdapterBundle.read(r.output());
        assertEquals(List.of("fc2"), b.config().modulesToSave());
        assertTrue(b.tensors().containsKey("base_model.model.fc2.weight"));
        assertEquals("replace", Heads.specOf(b.config()).orElseThrow().kind());
        // the bundle applies to the untouched base: the same logits as the trainer's evaluation
        Model m = OnnxIO.read(s.base);
        Peft.merge(m, AdapterBinding.bind(m, b));
        Tensor xb = val.batch(new int[] {0, 1, 2, 3, 4, 5}, null).inputs().get("x");
        Tensor logits = Ort.run(m, Map.of("x", xb)).get("logits");
        for (int i = 0; i < 6; i++) {
            float[] row = java.util.Arrays.copyOfRange(logits.toFloatArray(), i * 3, i * 3 + 3);
            int arg = row[0] >= row[1] && row[0] >= row[2] ? 0 : row[1] >= row[2] ? 1 : 2;
            assertEquals(val.label(i), arg, "row " + i);
        }
        for (String f : List.of("metrics.json", "metrics.jsonl", "curves.png", "adapter_config.json")) {
            assertTrue(Files.isRegularFile(s.out.resolve(f)), f);
        }
        Map<String, Object> m2 = r.metrics();
        assertTrue(((Number) m2.get("trainable_params")).longValue() < ((Number) m2.get("total_params")).longValue());
        assertTrue(((Number) m2.get("train_step_ms_median")).doubleValue() > 0);
    }

    @Test
    void resumingAfterAnInterruptionGivesTheUninterruptedResult() throws Exception {
        ArrayDataset train = ArrayDataset.levels(40, 3);
        TrainSettings a = tiny("a");
        a.epochs = 3;
        a.checkpointEvery = 2;
        a.dropout = 0.1;   // the masks, too, must come out the same after a resume
        new Trainer(a, null).run(train, null);

        TrainSettings b = tiny("b");
        b.epochs = 3;
        b.checkpointEvery = 2;
        b.dropout = 0.1;
        AtomicInteger seen = new AtomicInteger();
        TrainListener crash = new TrainListener() {
            @Override
            public void step(long step, long total, double loss, double lr) {
                if (seen.incrementAndGet() == 7) {
                    throw new IllegalStateException("simulated crash at step 7");
                }
            }
        };
        assertThrows(IllegalStateException.class, () -> new Trainer(b, crash).run(train, null));
        assertFalse(Files.exists(b.out.resolve("adapter_model.safetensors")));
        b.resume = true;
        new Trainer(b, null).run(train, null);
        Map<String, Tensor> ta = AdapterBundle.read(a.out).tensors();
        Map<String, Tensor> tb = AdapterBundle.read(b.out).tensors();
        for (String k : ta.keySet()) {
            assertArrayEquals(ta.get(k).toFloatArray(), tb.get(k).toFloatArray(), 0f, k);
        }
        List<String> la = Files.readAllLines(a.out.resolve("metrics.jsonl"));
        List<String> lb = Files.readAllLines(b.out.resolve("metrics.jsonl"));
        assertEquals(la, lb);
    }

    @Test
    void ia3TrainsAndWritesAPeftIa3Bundle() {
        TrainSettings s = tiny("ia3");
        s.method = TrainSettings.Method.IA3;
        s.targets = "conv1|fc1";
        s.feedforward = "fc1";
        s.epochs = 2;
        TrainResult r = new Trainer(s, null).run(ArrayDataset.levels(32, 7), null);
        AdapterBundle b = AdapterBundle.read(r.output());
        assertEquals("IA3", b.config().peftType());
        assertEquals(List.of("fc1"), b.config().feedforwardModules());
        assertArrayEquals(new long[] {1, 4, 1, 1}, b.tensors().get("base_model.model.conv1.ia3_l").shape());   // PEFT: Conv2d [1, out, 1, 1]
        assertArrayEquals(new long[] {1, 4}, b.tensors().get("base_model.model.fc1.ia3_l").shape());
        // trained away from PEFT's initial ones
        float[] v = b.tensors().get("base_model.model.conv1.ia3_l").toFloatArray();
        assertTrue(java.util.stream.IntStream.range(0, v.length).anyMatch(i -> v[i] != 1f));
    }

    /** With nothing to learn (lr 0) the metric never improves: the run stops after --patience evaluations. */
    @Test
    void earlyStoppingStopsAfterPatienceEvaluationsAndKeepsTheBest() {
        TrainSettings s = tiny("early");
        s.optimizer = "sgd";
        s.lr = 1e-12;
        s.epochs = 10;
        s.patience = 2;
        s.monitor = "val_loss";
        TrainResult r = new Trainer(s, null).run(ArrayDataset.levels(24, 8), ArrayDataset.levels(12, 9));
        assertEquals(Boolean.TRUE, r.metrics().get("stopped_early"));
        long steps = ((Number) r.metrics().get("steps")).longValue();
        assertTrue(steps < 10 * 3, "steps " + steps);
        assertTrue(String.valueOf(r.metrics().get("stop_reason")).contains("did not improve for 2 evaluations"));
    }

    @Test
    void divergenceStopsWithAClearMessageAndWritesNoResult() {
        TrainSettings s = tiny("nan");
        s.optimizer = "sgd";
        s.lr = 1e30;
        s.maxGradNorm = 0;
        s.headClasses = 3;
        s.epochs = 5;
        Peft4jException e = assertThrows(Peft4jException.class, () -> new Trainer(s, null).run(ArrayDataset.levels(32, 4), null));
        assertTrue(e.getMessage().contains("training diverged at step"), e.getMessage());
        assertFalse(Files.exists(s.out.resolve("adapter_model.safetensors")));
    }

    @Test
    void fullAndHeadOnlyWriteAModelThatRuns() {
        for (TrainSettings.Method method : List.of(TrainSettings.Method.FULL, TrainSettings.Method.HEAD)) {
            TrainSettings s = tiny(method.cli());
            s.method = method;
            s.headClasses = 3;
            s.epochs = 2;
            TrainResult r = new Trainer(s, null).run(ArrayDataset.levels(32, 5), ArrayDataset.levels(12, 6));
            assertFalse(r.adapter());
            Model m = OnnxIO.read(r.output());
            assertFalse(m.metadata().containsKey(Heads.BASE_FINGERPRINT_METADATA));
            Tensor y = Ort.run(m, Map.of("x", TinyModels.input(1, 2))).get("logits");
            assertArrayEquals(new long[] {2, 3}, y.shape());
            long trainable = ((Number) r.metrics().get("trainable_params")).longValue();
            assertEquals(method == TrainSettings.Method.HEAD ? 3 * 6 + 3 : 4 * 9 + 4 + 24 + 6 + 18 + 3, trainable, method.cli());
        }
    }

    @Test
    void badSettingsAndDataAreRefusedClearly() {
        TrainSettings s = tiny("bad");
        ArrayDataset sixClasses = new ArrayDataset("x", TinyModels.input(1, 4), new long[] {0, 1, 2, 5},
                List.of("a", "b", "c", "d", "e", "f"));
        Peft4jException e = assertThrows(Peft4jException.class, () -> new Trainer(s, null).run(sixClasses, null));
        assertTrue(e.getMessage().contains("--head-classes 6"), e.getMessage());

        TrainSettings t = tiny("bad2");
        t.targets = "nothing\\.here";
        e = assertThrows(Peft4jException.class, () -> new Trainer(t, null).run(ArrayDataset.levels(8, 1), null));
        assertTrue(e.getMessage().contains("selects no layer"), e.getMessage());

        TrainSettings u = tiny("bad3");
        u.dropout = 1.0;
        e = assertThrows(Peft4jException.class, () -> new Trainer(u, null));
        assertTrue(e.getMessage().contains("--dropout"), e.getMessage());

        // an adapter made for another base
        TrainSettings v = tiny("first");
        v.epochs = 1;
        new Trainer(v, null).run(ArrayDataset.levels(8, 1), null);
        Path other = tmp.resolve("other.onnx");
        OnnxIO.write(TinyModels.cnn(99), other);
        TrainSettings w = tiny("second");
        w.base = other;
        w.initAdapter = v.out;
        e = assertThrows(Peft4jException.class, () -> new Trainer(w, null).run(ArrayDataset.levels(8, 1), null));
        assertEquals(Peft4jException.ErrorCode.FINGERPRINT_MISMATCH, e.code());
    }
}
