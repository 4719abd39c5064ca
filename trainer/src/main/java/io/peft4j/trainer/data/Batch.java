package io.peft4j.trainer.data;

import io.peft4j.core.tensor.Tensor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One batch: the model inputs by graph input name (batch dimension first) and the int64 labels.
 */
public record Batch(Map<String, Tensor> inputs, long[] labels) {
    public Batch {
        inputs = Collections.unmodifiableMap(new LinkedHashMap<>(inputs));
        labels = labels.clone();
    }

    /** Number of examples in the batch. */
    public int size() {
        return labels.length;
    }
}
