package io.peft4j.devices;

import io.peft4j.core.pkg.Manifest;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * A model as a backend runs it.
 *
 * @param path            the package directory or model file it was opened from
 * @param mode            the package's mode ({@code base} for a bare ONNX model)
 * @param inputs          what a caller feeds, in the model's order (a multi package's adapter
 *                        index excluded: the backend fills it from the selection)
 * @param outputs         the model's outputs, in its order
 * @param baseFingerprint the base model's fingerprint from the manifest, or null
 * @param maxRank         the largest LoRA rank the package's adapter inputs take (0: not a side
 *                        or multi package)
 * @param manifest        the package's manifest; empty for a bare model
 */
public record ModelInfo(Path path, Manifest.Mode mode, List<TensorSpec> inputs, List<TensorSpec> outputs,
                        String baseFingerprint, int maxRank, Optional<Manifest> manifest) {

    public ModelInfo {
        inputs = List.copyOf(inputs);
        outputs = List.copyOf(outputs);
    }

    public Optional<TensorSpec> input(String name) {
        return inputs.stream().filter(t -> t.name().equals(name)).findFirst();
    }

    public Optional<TensorSpec> output(String name) {
        return outputs.stream().filter(t -> t.name().equals(name)).findFirst();
    }
}
