package io.peft4j.trainer;

import io.peft4j.core.peft.Heads;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.modules.TargetFinder;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.OnnxChecker;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class HeadsTest {

    private static final int B = 2;
    private static final int S = 3;
    private static final int W = 4;
    private static final int K = 5;

    /** An "encoder" that passes [batch, seq, 4] through a Relu, with an int64 attention mask input. */
    private static Model encoder(long opset) {
        Model m = new Model("encoder", opset);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("h", DataType.FLOAT, "batch", "seq", W));
        g.addInput(ValueInfos.tensor("attention_mask", DataType.INT64, "batch", "seq"));
        g.build("Relu").in("h").outputs("last_hidden_state").add();
        g.addOutput(ValueInfos.tensor("last_hidden_state", DataType.FLOAT, "batch", "seq", W));
        return m;
    }

    private static float[] expected(float[] h, long[] mask, float[] w, float[] bias, Heads.Pooling.Kind kind) {
        float[] out = new float[B * K];
        for (int b = 0; b < B; b++) {
            double[] pooled = new double[W];
            double count = 0;
            for (int s = 0; s < S; s++) {
                double keep = switch (kind) {
                    case FIRST_TOKEN -> s == 0 ? 1 : 0;
                    case MEAN -> 1;
                    case MASKED_MEAN -> mask[b * S + s];
                    case NONE -> throw new AssertionError();
                };
                count += keep;
                for (int j = 0; j < W; j++) {
                    pooled[j] += keep * Math.max(0, h[(b * S + s) * W + j]);
                }
            }
            for (int k = 0; k < K; k++) {
                double v = bias[k];
                for (int j = 0; j < W; j++) {
                    v += pooled[j] / Math.max(count, 1e-9) * w[k * W + j];
                }
                out[b * K + k] = (float) v;
            }
        }
        return out;
    }

    @ParameterizedTest
    @ValueSource(longs = {11, 13, 18})
    void poolingsComputeWhatTheySayAtEveryOpset(long opset) {
        Random r = new Random(opset);
        Tensor h = TinyModels.randn(r, B, S, W);
        long[] mask = {1, 1, 0, 1, 0, 0};
        for (Heads.Pooling p : new Heads.Pooling[] {Heads.Pooling.firstToken(), Heads.Pooling.mean(),
                Heads.Pooling.maskedMean("attention_mask")}) {
            Model m = encoder(opset);
            Heads.Head head = Heads.addClassifier(m, "last_hidden_state", K, p, 7);
            OnnxChecker.check(m);
            assertEquals("logits", head.output());
            assertEquals(java.util.List.of("classifier.weight", "classifier.bias"), head.trainable());
            assertArrayEquals(new long[] {K, W}, m.graph().initializer(head.weight()).shape());
            Tensor logits = Ort.run(m, Map.of("h", h, "attention_mask", Tensor.ofLongs(new long[] {B, S}, mask))).get("logits");
            assertArrayEquals(new long[] {B, K}, logits.shape());
            float[] want = expected(h.toFloatArray(), mask, m.graph().initializer(head.weight()).toFloatArray(),
                    m.graph().initializer(head.bias()).toFloatArray(), p.kind());
            float[] got = logits.toFloatArray();
            for (int i = 0; i < want.length; i++) {
                assertEquals(want[i], got[i], 1e-5, p.kind() + " at opset " + opset + ", logit " + i);
            }
        }
    }

    @Test
    void theHeadIsALinearLayerPeftCanName() {
        Model m = encoder(17);
        Heads.addClassifier(m, "last_hidden_state", K, Heads.Pooling.mean(), 7);
        TargetLayer t = TargetFinder.find(m.graph()).stream().filter(x -> x.path().equals("classifier")).findFirst()
                .orElseThrow();
        assertEquals(TargetLayer.Layout.OUT_IN, t.layout());
        assertEquals(W, t.inFeatures());
        assertEquals(K, t.outFeatures());
        // PyTorch's nn.Linear initialisation: uniform in ±1/√in
        for (float v : m.graph().initializer("classifier.weight").toFloatArray()) {
            assertTrue(Math.abs(v) <= 1 / Math.sqrt(W));
        }
    }

    @Test
    void aPlainFeatureVectorNeedsNoPooling() {
        Model m = TinyModels.cnn(1);
        String features = m.graph().node("/fc1/MatMul").input(0);
        assertTrue(io.peft4j.trainer.autodiff.TypeInference.declare(m, features));
        Heads.Head head = Heads.addClassifier(m, features, 2, Heads.Pooling.none(), "probe", "probe_logits", 3);
        OnnxChecker.check(m);
        assertEquals(features, head.pooled());
        Tensor y = Ort.run(m, Map.of("x", TinyModels.input(2, 3))).get("probe_logits");
        assertArrayEquals(new long[] {3, 2}, y.shape());
    }

    @Test
    void misuseIsRefusedWithTheReason() {
        Model m = encoder(17);
        Peft4jException e = assertThrows(Peft4jException.class,
                () -> Heads.addClassifier(m, "last_hidden_state", K, Heads.Pooling.none(), 1));
        assertTrue(e.getMessage().contains("rank 2"), e.getMessage());
        e = assertThrows(Peft4jException.class, () -> Heads.addClassifier(m, "nope", K, Heads.Pooling.mean(), 1));
        assertEquals(Peft4jException.ErrorCode.NOT_FOUND, e.code());
        e = assertThrows(Peft4jException.class,
                () -> Heads.addClassifier(m, "last_hidden_state", K, Heads.Pooling.maskedMean("mask"), 1));
        assertEquals(Peft4jException.ErrorCode.NOT_FOUND, e.code());
        assertThrows(Peft4jException.class, () -> Heads.addClassifier(m, "last_hidden_state", 0, Heads.Pooling.mean(), 1));
        assertThrows(Peft4jException.class, () -> new Heads.Pooling(Heads.Pooling.Kind.MEAN, "attention_mask"));
        Heads.addClassifier(m, "last_hidden_state", K, Heads.Pooling.mean(), 1);
        e = assertThrows(Peft4jException.class, () -> Heads.addClassifier(m, "last_hidden_state", K, Heads.Pooling.mean(), 1));
        assertEquals(Peft4jException.ErrorCode.GRAPH_STATE, e.code());
    }
}
