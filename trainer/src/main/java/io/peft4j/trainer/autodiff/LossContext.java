package io.peft4j.trainer.autodiff;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;

import java.util.ArrayList;
import java.util.List;

/** What a {@link Loss} sees: the model's values and outputs, and a way to declare label inputs. */
public final class LossContext extends Emitter {

    private final List<String> labelInputs = new ArrayList<>();

    LossContext(Emitter parent) {
        super(parent);
    }

    /** A model output by name; refused when the model has no such output. */
    public String modelOutput(String name) {
        if (!graph().isGraphOutput(name)) {
            throw Peft4jException.notFound("the model has no output named '" + name + "'; outputs: "
                    + graph().outputNames());
        }
        return name;
    }

    /**
     * Declares a new graph input for labels or targets; each dimension is a number, a symbolic name
     * or null. Returns the input's name ({@code name} itself; refused when taken).
     */
    public String addLabelInput(String name, DataType dtype, Object... dims) {
        if (graph().isGraphInput(name) || graph().producer(name).isPresent() || graph().hasInitializer(name)) {
            throw Peft4jException.invalid("cannot add label input '" + name + "': the model already has a value of that name");
        }
        graph().addInput(ValueInfos.tensor(name, dtype, dims));
        typed(name, TypeInference.fromValueInfo(ValueInfos.tensor(name, dtype, dims)));
        labelInputs.add(name);
        return name;
    }

    List<String> labelInputs() {
        return labelInputs;
    }
}
