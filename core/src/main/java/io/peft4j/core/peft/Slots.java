package io.peft4j.core.peft;

import io.peft4j.core.tensor.Tensor;

/**
 * Where an injected module finds its adapter tensors: {@link InjectMode#INITIALIZERS} makes them
 * initializers, {@link InjectMode#INPUTS} graph inputs. Either way the value is named by the PEFT
 * key of the module and role ({@code base_model.model.fc.lora_A.weight}).
 */
public interface Slots {

    /**
     * The graph value holding tensor {@code role} of the module being injected.
     *
     * @param role     the PEFT role ({@code lora_A.weight}) or a method's own ({@code lora_scaling})
     * @param value    this adapter's tensor
     * @param identity the value that switches the module off (a graph input's default)
     * @param rankAxis the axis whose size may differ between adapters (LoRA's rank), or -1
     * @param trainable whether training updates it (PEFT tensors) or not (derived constants)
     */
    String tensor(String role, Tensor value, Tensor identity, int rankAxis, boolean trainable);
}
