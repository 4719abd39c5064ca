package io.peft4j.core.testkit;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.adapter.PeftKey;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.tensor.Tensor;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/** Adapters for tests. */
public final class TestAdapters {

    private TestAdapters() {
    }

    /**
     * An adapter for {@code model} with random non-zero tensors (PEFT's zero B would hide a wrong
     * merge): LoRA entries ~ N(0, sigma), IA3 vectors ~ 1 + N(0, sigma); bound to the model's
     * fingerprint as {@link AdapterBinding#init} binds it.
     */
    public static AdapterBundle random(Model model, AdapterConfig config, long seed, double sigma) {
        AdapterBundle fresh = AdapterBinding.init(model, config, seed);
        Random r = new Random(seed * 31 + 7);
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : fresh.tensors().entrySet()) {
            float[] v = new float[(int) e.getValue().numel()];
            boolean ia3 = PeftKey.parse(e.getKey()).role().equals("ia3_l");
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) ((ia3 ? 1 : 0) + r.nextGaussian() * sigma);
            }
            out.put(e.getKey(), Tensor.ofFloats(e.getValue().shape(), v));
        }
        return new AdapterBundle(fresh.config(), out);
    }
}
