package io.peft4j.trainer;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.adapter.PeftKey;
import io.peft4j.core.modules.TargetFinder;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.peft.InjectMode;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.peft.lora.LoraMethod;
import io.peft4j.core.tensor.Tensor;

import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.function.Predicate;
import java.util.regex.Pattern;

/**
 * LoRA injected for training tests: a fresh adapter on the layers a predicate picks, initialised
 * as PEFT does except that B is random (PEFT starts B at zero, which makes every gradient of A
 * zero), injected as initializers. The injected tensors are then made trainable by the gradient
 * builder.
 */
public final class LoraFixture {

    private LoraFixture() {
    }

    /** Every Conv with groups = 1 and every Gemm: what issue 4 asks of the vision models. */
    public static final Predicate<TargetLayer> CONVS_AND_GEMMS = t ->
            (t.kind() == TargetLayer.Kind.CONV && t.groups() == 1) || t.opType().equals("Gemm");

    /** A config that targets exactly these module paths (a full-match regex: no suffix matching). */
    public static AdapterConfig config(int r, double alpha, List<String> modules) {
        String regex = String.join("|", modules.stream().map(Pattern::quote).toList());
        return new AdapterConfig("LORA", r, alpha, List.of(), regex, 0.0, "none", false, false, false, List.of(),
                Map.of(), Map.of(), List.of(), null, Map.of());
    }

    /** The module paths of the layers {@code which} picks. */
    public static List<String> modules(Model m, Predicate<TargetLayer> which) {
        return TargetFinder.find(m.graph()).stream().filter(which).map(TargetLayer::path).toList();
    }

    /** Injects a fresh LoRA adapter on {@code modules} with B ~ N(0, bStd²); returns what was injected. */
    public static Peft.Injection inject(Model m, AdapterConfig config, long seed, double bStd) {
        AdapterBundle fresh = AdapterBinding.init(m, config, seed);
        Random r = new Random(seed + 1);
        Map<String, Tensor> tensors = new TreeMap<>(fresh.tensors());
        for (Map.Entry<String, Tensor> e : fresh.tensors().entrySet()) {
            if (PeftKey.parse(e.getKey()).role().equals(LoraMethod.B)) {
                float[] b = new float[Math.toIntExact(e.getValue().numel())];
                for (int i = 0; i < b.length; i++) {
                    b[i] = (float) (r.nextGaussian() * bStd);
                }
                tensors.put(e.getKey(), Tensor.ofFloats(e.getValue().shape(), b));
            }
        }
        AdapterBinding binding = AdapterBinding.bind(m, new AdapterBundle(fresh.config(), tensors));
        return Peft.inject(m, binding, InjectMode.INITIALIZERS);
    }
}
