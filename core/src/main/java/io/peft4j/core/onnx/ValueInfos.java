package io.peft4j.core.onnx;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.proto.Onnx.TensorShapeProto;
import io.peft4j.core.onnx.proto.Onnx.TypeProto;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.tensor.DataType;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** Making and reading typed value declarations (graph inputs, outputs, value info). */
public final class ValueInfos {

    private ValueInfos() {
    }

    /**
     * A tensor value; each dimension is a number, a symbolic name ({@code "batch"}) or {@code null}
     * (unknown). {@code dims == null} means the rank itself is unknown.
     */
    public static ValueInfoProto tensor(String name, DataType type, Object... dims) {
        TypeProto.Tensor.Builder t = TypeProto.Tensor.newBuilder().setElemType(type.onnxCode());
        if (dims != null) {
            TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
            for (Object d : dims) {
                TensorShapeProto.Dimension.Builder db = TensorShapeProto.Dimension.newBuilder();
                if (d instanceof Number n) {
                    db.setDimValue(n.longValue());
                } else if (d instanceof String p) {
                    db.setDimParam(p);
                } else if (d != null) {
                    throw Peft4jException.invalid("a dimension is a number, a name or null, got " + d);
                }
                s.addDim(db);
            }
            t.setShape(s);
        }
        return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(t)).build();
    }

    /** The element type of a tensor value, if declared. */
    public static Optional<DataType> elementType(ValueInfoProto v) {
        if (!v.getType().hasTensorType() || v.getType().getTensorType().getElemType() == 0) {
            return Optional.empty();
        }
        return Optional.of(DataType.fromOnnx(v.getType().getTensorType().getElemType()));
    }

    /**
     * Dimensions of a tensor value: Long for known sizes, String for symbolic ones, null for
     * unknown ones; empty when the shape is not declared.
     */
    public static Optional<List<Object>> dims(ValueInfoProto v) {
        if (!v.getType().hasTensorType() || !v.getType().getTensorType().hasShape()) {
            return Optional.empty();
        }
        List<Object> out = new ArrayList<>();
        for (TensorShapeProto.Dimension d : v.getType().getTensorType().getShape().getDimList()) {
            if (d.hasDimValue()) {
                out.add(d.getDimValue());
            } else if (d.hasDimParam()) {
                out.add(d.getDimParam());
            } else {
                out.add(null);
            }
        }
        return Optional.of(out);
    }

    /** A short description: {@code FLOAT[batch,3,64,64]}, {@code sequence}, … */
    public static String describe(ValueInfoProto v) {
        TypeProto t = v.getType();
        if (t.hasTensorType()) {
            String et = elementType(v).map(Enum::name).orElse("?");
            return et + dims(v).map(d -> d.stream().map(x -> x == null ? "?" : x.toString()).toList().toString()
                    .replace(" ", "")).orElse("[?]");
        }
        if (t.hasSequenceType()) {
            return "sequence";
        }
        if (t.hasMapType()) {
            return "map";
        }
        if (t.hasOptionalType()) {
            return "optional";
        }
        if (t.hasSparseTensorType()) {
            return "sparse_tensor";
        }
        return "?";
    }
}
