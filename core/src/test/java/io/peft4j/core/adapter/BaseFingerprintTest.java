package io.peft4j.core.adapter;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BaseFingerprintTest {

    @TempDir
    Path dir;

    @Test
    void sameWeightsSameFingerprintWhereverStored() {
        Model m = TinyModels.cnn(1);
        String fp = BaseFingerprint.of(m);
        assertTrue(fp.matches("sha256:[0-9a-f]{64}"), fp);
        assertEquals(fp, BaseFingerprint.of(TinyModels.cnn(1)), "deterministic");

        Path f = dir.resolve("ext.onnx");
        OnnxIO.write(m, f, new OnnxIO.WriteOptions(OnnxIO.ExternalData.ALL, null, 0));
        assertEquals(fp, BaseFingerprint.of(OnnxIO.read(f)), "external data does not change it");

        // weights kept as Constant nodes, as some exporters do, and renamed by another exporter
        Graph g = m.graph();
        Tensor w = g.initializer("fc2.weight");
        String c = g.freshName("onnx::Gemm_17");
        g.build("Constant").outputs(c).attr("value", w).add();
        g.replaceAllUses("fc2.weight", c);
        g.removeInitializer("fc2.weight");
        g.sortTopologically();
        assertEquals(fp, BaseFingerprint.of(m), "names and storage do not enter it");
        // nor do integer shape constants
        g.setInitializer("shape_const", Tensor.ofLongs(new long[] {2}, -1, 6));
        assertEquals(fp, BaseFingerprint.of(m));
    }

    @Test
    void anyWeightChangeChangesIt() {
        Model m = TinyModels.cnn(1);
        String fp = BaseFingerprint.of(m);
        float[] v = m.graph().initializer("fc1_w").toFloatArray();
        v[3] = Math.nextUp(v[3]);
        m.graph().setInitializer("fc1_w", Tensor.ofFloats(new long[] {4, 6}, v));
        assertNotEquals(fp, BaseFingerprint.of(m));
        assertNotEquals(fp, BaseFingerprint.of(TinyModels.cnn(2)));
    }

    @Test
    void malformedFingerprintsAreRefused() {
        assertThrows(Peft4jException.class, () -> BaseFingerprint.validate("md5:abc", "adapter x"));
        assertThrows(Peft4jException.class, () -> BaseFingerprint.validate(null, "adapter x"));
        String ok = BaseFingerprint.of(TinyModels.cnn(1));
        assertEquals(ok, BaseFingerprint.validate(ok, "adapter x"));
        assertTrue(BaseFingerprint.abbreviate(ok).length() < ok.length());
    }
}
