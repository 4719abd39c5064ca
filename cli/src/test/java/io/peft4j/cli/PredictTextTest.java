package io.peft4j.cli;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.trainer.data.TextTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code predict --text}: texts are tokenized, padded to the longest and fed to {@code input_ids}
 * and {@code attention_mask}; bad combinations and models without text inputs are refused.
 */
class PredictTextTest {

    @TempDir
    Path tmp;

    /**
     * A text "classifier" whose logits show what it was fed: class 0 scores the number of attended
     * tokens (the attention mask's sum), class 1 the largest token id / 10000.
     */
    private static Model tokenCounter() {
        Model m = new Model("token_counter", 17);
        Graph g = m.graph();
        g.addInput(ValueInfos.tensor("input_ids", DataType.INT64, "batch", "seq"));
        g.addInput(ValueInfos.tensor("attention_mask", DataType.INT64, "batch", "seq"));
        g.setInitializer("axes", Tensor.ofLongs(new long[] {1}, 1));
        g.setInitializer("scale", Tensor.ofFloats(new long[0], 1e-4f));
        String mask = g.build("Cast").in("attention_mask").attr("to", 1L).out();
        String count = g.build("ReduceSum").in(mask, "axes").attr("keepdims", 1L).out();
        String ids = g.build("Cast").in("input_ids").attr("to", 1L).out();
        String max = g.build("ReduceMax").in(ids).attr("axes", new long[] {1}).attr("keepdims", 1L).out();
        String scaled = g.op("Mul", max, "scale");
        g.build("Concat").in(count, scaled).attr("axis", 1L).outputs("logits").add();
        g.addOutput(ValueInfos.tensor("logits", DataType.FLOAT, "batch", 2));
        return m;
    }

    @Test
    void tokenizesPadsAndFeedsTheTexts() throws Exception {
        Path model = tmp.resolve("counter.onnx");
        OnnxIO.write(tokenCounter(), model);
        Path tokenizer = tmp.resolve("tokenizer.json");
        try (InputStream in = PredictTextTest.class.getResourceAsStream(TextTokenizer.MINILM_RESOURCE)) {
            Files.copy(in, tokenizer);
        }
        String[] texts = {"Call now to claim your prize", "ok"};
        CliRun p = CliRun.of("predict", "--model", model.toString(), "--tokenizer", tokenizer.toString(), "--top", "2",
                "--text", texts[0], "--text", texts[1]);
        assertEquals(0, p.exitCode(), p.err());
        String[] lines = p.out().split("\\R");
        assertEquals(6, lines.length, p.out());
        try (TextTokenizer tok = TextTokenizer.open(tokenizer, 128)) {
            for (int i = 0; i < 2; i++) {
                long[] ids = tok.ids(texts[i]);
                long max = 0;
                for (long id : ids) {
                    max = Math.max(max, id);
                }
                // the shorter text is padded: its mask still sums to its own length
                double[] prob = PredictCommand.softmax(new float[] {ids.length, max * 1e-4f});
                assertEquals("\"" + texts[i] + "\"", lines[i * 3], p.out());
                int best = prob[0] >= prob[1] ? 0 : 1;
                assertEquals(String.format(Locale.ROOT, "  %.4f  class %d", prob[best], best), lines[i * 3 + 1], p.out());
            }
        }
    }

    @Test
    void refusesBadInput() throws Exception {
        Path cnn = tmp.resolve("cnn.onnx");
        OnnxIO.write(TinyModels.cnn(1), cnn);
        CliRun noText = CliRun.of("predict", "--model", cnn.toString(), "--text", "hello");
        assertEquals(2, noText.exitCode());
        assertTrue(noText.err().contains("--text needs a model with an input 'input_ids'"), noText.err());

        CliRun both = CliRun.of("predict", "--model", cnn.toString(), "--text", "hello", "image.png");
        assertEquals(2, both.exitCode());
        assertTrue(both.err().contains("give one kind of input"), both.err());

        Path model = tmp.resolve("counter.onnx");
        OnnxIO.write(tokenCounter(), model);
        CliRun noTokenizer = CliRun.of("predict", "--model", model.toString(), "--tokenizer", tmp.resolve("none.json").toString(),
                "--text", "hello");
        assertEquals(2, noTokenizer.exitCode());
        assertTrue(noTokenizer.err().contains("tokenizer not found"), noTokenizer.err());

        CliRun short1 = CliRun.of("predict", "--model", model.toString(), "--max-length", "1", "--text", "hello");
        assertEquals(2, short1.exitCode());
        assertTrue(short1.err().contains("--max-length must be at least 2"), short1.err());
    }
}
