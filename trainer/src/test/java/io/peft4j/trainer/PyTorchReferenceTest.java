package io.peft4j.trainer;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.peft.InjectMode;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.safetensors.SafetensorsFile;
import io.peft4j.core.tensor.Npy;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.OnnxChecker;
import io.peft4j.trainer.autodiff.GradientBuilder;
import io.peft4j.trainer.autodiff.GradientGraph;
import io.peft4j.trainer.autodiff.Losses;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The gradient engine against PyTorch 1.13 on the shared resnet18 with LoRA (r = 4, alpha = 8) on
 * its 20 convolutions and fc: core's fixture {@code /reference/resnet18-lora/} (written by
 * {@code make_resnet18_reference.py}, which adds LoRA with torch.nn.functional, independent of
 * peft4j) holds the adapter, a batch, PyTorch's logits and d(mean softmax cross-entropy)/d(every
 * LoRA tensor). The adapter is bound and injected as initializers, its tensors made trainable, and
 * one {@link GradientSession} step computes logits and gradients: logits within 1e-4 of the largest
 * |logit|, each gradient within 1e-3 of its tensor's largest |gradient|.
 */
class PyTorchReferenceTest {

    private static final List<String> FILES = List.of("x.npy", "labels.npy", "y1.npy", "grads.safetensors",
            "adapter/adapter_config.json", "adapter/adapter_model.safetensors");

    /** The fixture directory: core's test resources as files, or copied out of core's test jar. */
    static Path fixture() {
        URL u = PyTorchReferenceTest.class.getResource("/reference/resnet18-lora/x.npy");
        if (u == null) {
            throw new AssertionError("/reference/resnet18-lora is not on the test classpath (core's test-jar)");
        }
        try {
            if (u.getProtocol().equals("file")) {
                return Path.of(u.toURI()).getParent();
            }
            Path dir = Files.createTempDirectory("resnet18-lora");
            for (String f : FILES) {
                Path p = dir.resolve(f);
                Files.createDirectories(p.getParent());
                try (InputStream in = PyTorchReferenceTest.class.getResourceAsStream("/reference/resnet18-lora/" + f)) {
                    Files.copy(in, p);
                }
            }
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (URISyntaxException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void resnet18LoraLogitsAndGradientsMatchPyTorch() {
        Path dir = fixture();
        Model m = OnnxIO.read(Assets.shared("models/resnet18.onnx"));
        AdapterBundle adapter = AdapterBundle.read(dir.resolve("adapter"));
        Peft.Injection inj = Peft.inject(m, AdapterBinding.bind(m, adapter), InjectMode.INITIALIZERS);
        assertEquals(42, inj.trainable().size());
        GradientGraph gg = GradientBuilder.build(m, inj.trainable(), Losses.softmaxCrossEntropy("logits"));
        OnnxChecker.check(gg.model());

        // graph value → PEFT key
        Map<String, String> keyOf = new LinkedHashMap<>();
        inj.values().forEach((key, value) -> keyOf.put(value, key));
        Map<String, float[]> params = new LinkedHashMap<>();
        for (String t : gg.trainable()) {
            params.put(t, m.graph().initializer(t).toFloatArray());
        }
        Map<String, Tensor> batch = Map.of("input", Npy.read(dir.resolve("x.npy")), "labels", Npy.read(dir.resolve("labels.npy")));
        Tensor y1 = Npy.read(dir.resolve("y1.npy"));
        Map<String, Tensor> expected = SafetensorsFile.readAll(dir.resolve("grads.safetensors"));
        assertEquals(expected.keySet(), adapter.tensors().keySet());

        GradientSession.Step step;
        try (GradientSession s = new GradientSession(gg, 2, List.of("logits"))) {
            step = s.step(batch, params);
        }
        Tensor logits = step.outputs().get("logits");
        assertArrayEquals(y1.shape(), logits.shape());
        double logitErr = relErr(logits.toFloatArray(), y1.toFloatArray());
        System.out.printf("resnet18 LoRA vs PyTorch 1.13: logits max |diff| / max |logit| = %.2e (loss %.6f)%n", logitErr,
                step.loss());
        assertTrue(logitErr <= 1e-4, "logits differ from PyTorch's by " + logitErr + " of the largest logit");

        double worst = 0;
        String worstKey = null;
        assertEquals(expected.size(), step.gradients().size());
        for (Map.Entry<String, float[]> e : step.gradients().entrySet()) {
            String key = keyOf.get(e.getKey());
            Tensor pt = expected.get(key);
            assertTrue(pt != null, "no PyTorch gradient for " + key + " (graph value " + e.getKey() + ")");
            assertEquals(pt.numel(), e.getValue().length, key);
            double err = relErr(e.getValue(), pt.toFloatArray());
            if (err > worst) {
                worst = err;
                worstKey = key;
            }
            assertTrue(err <= 1e-3, "d loss / d " + key + " differs from PyTorch's by " + err + " of its largest |gradient|");
        }
        System.out.printf("resnet18 LoRA vs PyTorch 1.13: %d gradients, worst max |diff| / max |grad| = %.2e (%s)%n",
                step.gradients().size(), worst, worstKey);
    }

    /** max |a − b| / max |b|. */
    static double relErr(float[] a, float[] b) {
        double diff = 0;
        double scale = 0;
        for (int i = 0; i < a.length; i++) {
            diff = Math.max(diff, Math.abs((double) a[i] - b[i]));
            scale = Math.max(scale, Math.abs(b[i]));
        }
        return diff / scale;
    }
}
