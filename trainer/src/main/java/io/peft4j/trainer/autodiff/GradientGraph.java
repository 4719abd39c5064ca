package io.peft4j.trainer.autodiff;

import io.peft4j.core.onnx.Model;

import java.util.List;
import java.util.Map;

/**
 * The training graph that {@link GradientBuilder} builds: one model computing the loss, the
 * model's outputs and the gradient of the loss for every trainable tensor.
 *
 * @param model        the model; its inputs are the data inputs, {@code labelInputs} and the trainable tensors
 * @param loss         name of the scalar loss output
 * @param outputs      names of the original model outputs (still outputs)
 * @param gradients    trainable tensor name to the name of its gradient output, in the order given
 * @param labelInputs  names of the inputs the loss added (labels, targets)
 * @param trainable    the trainable tensors (now graph inputs), in the order given
 */
public record GradientGraph(Model model, String loss, List<String> outputs, Map<String, String> gradients,
                            List<String> labelInputs, List<String> trainable) {

    public GradientGraph {
        outputs = List.copyOf(outputs);
        gradients = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(gradients));
        labelInputs = List.copyOf(labelInputs);
        trainable = List.copyOf(trainable);
    }

    /** The name of the gradient output of {@code trainableTensor}. */
    public String gradientOf(String trainableTensor) {
        String g = gradients.get(trainableTensor);
        if (g == null) {
            throw io.peft4j.core.Peft4jException.notFound("'" + trainableTensor + "' is not a trainable tensor of this graph; "
                    + "trainable: " + gradients.keySet());
        }
        return g;
    }
}
