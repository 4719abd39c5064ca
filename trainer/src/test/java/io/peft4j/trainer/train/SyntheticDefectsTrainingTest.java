package io.peft4j.trainer.train;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.trainer.data.DataSplit;
import io.peft4j.trainer.data.ModelInputs;
import io.peft4j.trainer.data.SyntheticDefects;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The synthetic defects are learnable: a tiny CNN trained for a few steps on metal images beats chance on held-out ones. */
class SyntheticDefectsTrainingTest {

    @TempDir
    Path tmp;

    @Test
    void aTinyCnnBeatsChanceAfterAFewSteps() {
        Path base = tmp.resolve("tiny.onnx");
        Model m = tinyCnn(3);
        OnnxIO.write(m, base);
        DataSplit data = new SyntheticDefects(SyntheticDefects.METAL, 16, 1).open(60, 40, ModelInputs.of(m), false);
        TrainSettings s = new TrainSettings();
        s.base = base;
        s.out = tmp.resolve("out");
        s.method = TrainSettings.Method.FULL;
        s.lr = 1e-2;
        s.steps = 300;
        s.batch = 32;
        s.threads = 2;
        TrainResult r = new Trainer(s, null).run(data.train(), data.validation().orElseThrow());
        Evaluation e = r.evaluation();
        assertEquals(200, e.examples());
        System.out.printf("tiny CNN on synthetic metal, %d steps: held-out accuracy %.3f%n", s.steps, e.accuracy());
        // chance is 0.2; 0.35 is more than five standard deviations above it for 200 examples
        assertTrue(e.accuracy() > 0.35, "held-out accuracy " + e.accuracy() + " after " + s.steps + " steps");
    }

    /** conv 1→8 (stride 1), conv 8→16 (stride 2), global average pooling, Linear 16→5, for 16×16 gray images. */
    private static Model tinyCnn(long seed) {
        Random r = new Random(seed);
        Model m = new Model("tiny_defects", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("image", DataType.FLOAT, "batch", 1, 16, 16));
        String h = "image";
        int in = 1;
        int[] channels = {8, 16};
        for (int i = 0; i < channels.length; i++) {
            String w = g.addInitializer("conv" + i + ".weight", he(r, in * 9, channels[i], in, 3, 3));
            String b = g.addInitializer("conv" + i + ".bias", Tensor.zeros(DataType.FLOAT, channels[i]));
            h = g.build("Conv").name("/conv" + i + "/Conv").in(h, w, b).attr("kernel_shape", 3, 3).attr("pads", 1, 1, 1, 1)
                    .attr("strides", i + 1, i + 1).out();
            h = g.op("Relu", h);
            in = channels[i];
        }
        h = g.build("GlobalAveragePool").in(h).out();
        h = g.build("Flatten").in(h).attr("axis", 1L).out();
        g.build("Gemm").name("/fc/Gemm").in(h, g.addInitializer("fc.weight", he(r, in, 5, in)),
                g.addInitializer("fc.bias", Tensor.zeros(DataType.FLOAT, 5))).attr("transB", 1L).outputs("logits").add();
        g.addOutput(ValueInfos.tensor("logits", DataType.FLOAT, "batch", 5));
        return m;
    }

    private static Tensor he(Random r, int fanIn, long... shape) {
        float[] v = new float[(int) Tensor.numel(shape)];
        double std = Math.sqrt(2.0 / fanIn);
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (r.nextGaussian() * std);
        }
        return Tensor.ofFloats(shape, v);
    }
}
