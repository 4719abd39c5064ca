package io.peft4j.trainer.data;

import io.peft4j.core.pkg.Manifest;

import java.util.List;
import java.util.Optional;

/**
 * What {@link Datasets#open} returns: the training data, the validation data if any (same classes,
 * in the same order), and for images the preprocessing the model was trained with, to be written
 * into a model package's manifest so that {@code predict} prepares images the same way.
 */
public record DataSplit(Dataset train, Optional<Dataset> validation, Optional<Manifest.Preprocessing> preprocessing) {

    public DataSplit {
        if (train == null || validation == null || preprocessing == null) {
            throw new IllegalArgumentException("train, validation and preprocessing must not be null");
        }
        validation.ifPresent(v -> {
            if (!v.classes().equals(train.classes())) {
                throw new IllegalArgumentException("validation classes " + v.classes() + " differ from " + train.classes());
            }
        });
    }

    public List<String> classes() {
        return train.classes();
    }
}
