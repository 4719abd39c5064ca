package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.tensor.DataType;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * The graph inputs a dataset has to feed: name, element type and shape, with {@code -1} for every
 * dimension that is not a fixed number (symbolic, unknown). Immutable; built from a model with
 * {@link #of(Model)} or by hand in tests.
 */
public record ModelInputs(List<Input> inputs) {

    /** One graph input. */
    public record Input(String name, DataType type, long[] shape) {
        public Input {
            if (name == null || name.isEmpty()) {
                throw Peft4jException.invalid("a model input needs a name");
            }
            if (type == null) {
                throw Peft4jException.invalid("model input '" + name + "' has no element type");
            }
            shape = shape.clone();
            for (long d : shape) {
                if (d < -1) {
                    throw Peft4jException.invalid("model input '" + name + "' has dimension " + d
                            + "; dimensions are sizes or -1 (dynamic)");
                }
            }
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }

        public int rank() {
            return shape.length;
        }

        /** Dimension {@code axis}, {@code -1} when dynamic. */
        public long dim(int axis) {
            return shape[axis];
        }

        /** {@code FLOAT[?,3,64,64]}. */
        public String describe() {
            StringBuilder b = new StringBuilder(type.name()).append('[');
            for (int i = 0; i < shape.length; i++) {
                b.append(i > 0 ? "," : "").append(shape[i] < 0 ? "?" : Long.toString(shape[i]));
            }
            return b.append(']').toString();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Input i && name.equals(i.name) && type == i.type && Arrays.equals(shape, i.shape);
        }

        @Override
        public int hashCode() {
            return (name.hashCode() * 31 + type.hashCode()) * 31 + Arrays.hashCode(shape);
        }

        @Override
        public String toString() {
            return name + ":" + describe();
        }
    }

    public ModelInputs {
        inputs = List.copyOf(inputs);
        Set<String> seen = new HashSet<>();
        for (Input i : inputs) {
            if (!seen.add(i.name())) {
                throw Peft4jException.invalid("model input '" + i.name() + "' is listed twice");
            }
        }
    }

    public static ModelInputs of(Input... inputs) {
        return new ModelInputs(List.of(inputs));
    }

    /**
     * The inputs of {@code model}'s main graph that a caller feeds: graph inputs that are not also
     * initializers (older exporters list weights as inputs too). Every input must be a tensor with
     * a declared element type and rank.
     */
    public static ModelInputs of(Model model) {
        Graph g = model.graph();
        List<Input> out = new ArrayList<>();
        for (ValueInfoProto v : g.inputs()) {
            if (g.hasInitializer(v.getName())) {
                continue;
            }
            DataType type = ValueInfos.elementType(v).orElseThrow(() -> Peft4jException.unsupported(
                    "model input '" + v.getName() + "' is " + ValueInfos.describe(v) + ", not a tensor with an element type"));
            List<Object> dims = ValueInfos.dims(v).orElseThrow(() -> Peft4jException.unsupported(
                    "model input '" + v.getName() + "' declares no shape; datasets need at least its rank"));
            long[] shape = new long[dims.size()];
            for (int i = 0; i < shape.length; i++) {
                shape[i] = dims.get(i) instanceof Long l && l >= 0 ? l : -1;
            }
            out.add(new Input(v.getName(), type, shape));
        }
        return new ModelInputs(out);
    }

    public Optional<Input> find(String name) {
        return inputs.stream().filter(i -> i.name().equals(name)).findFirst();
    }

    public List<String> names() {
        return inputs.stream().map(Input::name).toList();
    }

    /** {@code [x:FLOAT[?,3,64,64]]}, for messages. */
    public String describe() {
        return inputs.toString();
    }
}
