package io.peft4j.core.peft;

import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.tensor.Tensor;

import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;

/**
 * One PEFT method (LoRA, IA3, …) with Hugging Face PEFT's semantics: which layers it adapts, the
 * tensors it keeps per module (PEFT's roles and shapes), how it initialises them, how it rewrites
 * an ONNX graph to apply them, and how it folds them into the base weights.
 *
 * <p>Every per-module operation sees one {@link TargetLayer} and the adapter's config; the
 * orchestration over a whole bundle (binding, validation, atomic merge, the merge log) is
 * {@link Peft}'s and {@link AdapterBinding}'s. Register implementations in {@link PeftMethods}.
 */
public interface PeftMethod {

    /** PEFT's {@code peft_type}: {@code LORA}, {@code IA3}. */
    String peftType();

    /**
     * Why this method cannot adapt {@code target} under {@code config}, or empty when it can. A
     * reason reads as the end of "module m cannot take LoRA: …".
     */
    Optional<String> unsupported(TargetLayer target, AdapterConfig config);

    /** The tensors a module holds, role → shape in PEFT's layout ({@code lora_A.weight → [r, in]}). */
    Map<String, long[]> shapes(TargetLayer target, AdapterConfig config);

    /** Fresh tensors as PEFT initialises them (role → tensor, float32). */
    Map<String, Tensor> init(TargetLayer target, AdapterConfig config, Random rng);

    /** Tensors that make the module act as the base layer (LoRA: B = 0; IA3: ones). */
    Map<String, Tensor> identity(TargetLayer target, AdapterConfig config);

    /**
     * Rewrites the graph so that {@code target} applies the adapter. Its tensors come from
     * {@code slots}, which decides whether they are initializers or graph inputs. Every name the
     * rest of the graph reads stays the same.
     */
    void inject(Model model, TargetLayer target, AdapterConfig config, Map<String, Tensor> tensors, Slots slots);

    /**
     * Rewrites the graph so that {@code target} applies, on each batch row, the adapter that
     * {@code adapter_index} picks for that row ({@code 0} = the base layer, {@code k} =
     * {@code members.get(k - 1)}).
     */
    void injectStacked(Model model, TargetLayer target, List<Member> members, Stack stack);

    /**
     * The base layer's new weights with the adapter folded in: initializer name → tensor, in the
     * stored layout and element type. Computes only; {@link Peft#merge} checks and writes them.
     */
    Map<String, Tensor> merge(Model model, TargetLayer target, AdapterConfig config, Map<String, Tensor> tensors);

    /** One adapter of a stack as it applies to one module; {@code tensors} is null when it leaves the module alone. */
    record Member(AdapterConfig config, Map<String, Tensor> tensors) {
    }
}
