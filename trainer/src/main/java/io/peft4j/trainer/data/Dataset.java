package io.peft4j.trainer.data;

import java.util.List;
import java.util.SplittableRandom;

/**
 * Labelled examples for classification, addressed by index {@code 0 .. size()-1}.
 *
 * <p>A dataset knows how to turn examples into the model's input tensors (images resized and
 * normalized, text tokenized, NumPy rows as given); the training loop never looks inside them.
 * {@link #batch} is called from loader threads, several at a time, so implementations are
 * thread-safe; nothing here holds native memory.
 */
public interface Dataset {

    /** Number of examples. */
    int size();

    /** Class names; a label is an index into this list. */
    List<String> classes();

    /** The label of example {@code i}, in {@code [0, classes().size())}. */
    int label(int i);

    /**
     * The tensors for the examples {@code indices}, in that order: every model input this dataset
     * feeds (batch dimension first) and their labels.
     *
     * @param augment random source for augmentation (training batches), or {@code null} for none
     *                (evaluation, and datasets that are used exactly as given)
     */
    Batch batch(int[] indices, SplittableRandom augment);

    /** What the data is, for provenance and the summary: kind, source, count (one line). */
    String describe();
}
