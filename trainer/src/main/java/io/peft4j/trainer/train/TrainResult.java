package io.peft4j.trainer.train;

import java.nio.file.Path;
import java.util.Map;

/**
 * What a run produced.
 *
 * @param output     the adapter bundle directory, or the trained {@code model.onnx}
 * @param adapter    whether {@code output} is an adapter bundle (else a model)
 * @param metrics    what {@code metrics.json} holds
 * @param evaluation the final validation metrics, or null without validation data
 */
public record TrainResult(Path output, boolean adapter, Map<String, Object> metrics, Evaluation evaluation) {
}
