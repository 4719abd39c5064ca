package io.peft4j.devices;

import io.peft4j.core.tensor.Tensor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What a run produced: the outputs asked for, in the model's order (tensors copied out of the
 * device, owned by the caller), and the version of each adapter the run used.
 */
public record InferenceResult(Map<String, Tensor> outputs, Map<String, Long> adapterVersions) {

    public InferenceResult {
        outputs = Collections.unmodifiableMap(new LinkedHashMap<>(outputs));
        adapterVersions = Collections.unmodifiableMap(new LinkedHashMap<>(adapterVersions));
    }
}
