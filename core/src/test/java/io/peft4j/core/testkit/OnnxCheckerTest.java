package io.peft4j.core.testkit;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.proto.Onnx.TensorProto;
import io.peft4j.core.onnx.proto.Onnx.TensorShapeProto;
import io.peft4j.core.onnx.proto.Onnx.TypeProto;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class OnnxCheckerTest {

    /** A float tensor value with a symbolic ("N") or fixed dimension per entry. */
    static ValueInfoProto floatValue(String name, Object... dims) {
        TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
        for (Object d : dims) {
            if (d instanceof String s) {
                shape.addDim(TensorShapeProto.Dimension.newBuilder().setDimParam(s));
            } else {
                shape.addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(((Number) d).longValue()));
            }
        }
        return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(
                TypeProto.Tensor.newBuilder().setElemType(TensorProto.DataType.FLOAT_VALUE).setShape(shape))).build();
    }

    /** x [N,4] -> MatMul with a [4,k] initializer -> Relu -> y [N,3]. */
    static Model matmulRelu(int weightRows) {
        Model m = new Model("matmul_relu", 17);
        Graph g = m.graph();
        g.addInput(floatValue("x", "N", 4));
        float[] w = new float[weightRows * 3];
        for (int i = 0; i < w.length; i++) {
            w[i] = (i % 5) - 2f;
        }
        g.setInitializer("w", Tensor.ofFloats(new long[] {weightRows, 3}, w));
        String h = g.op("MatMul", "x", "w");
        g.build("Relu").in(h).outputs("y").add();
        g.addOutput(floatValue("y", "N", 3));
        return m;
    }

    @Test
    void acceptsAValidModelBuiltWithTheGraphApi() {
        Model m = matmulRelu(4);
        assertDoesNotThrow(() -> OnnxChecker.check(m));
        assertDoesNotThrow(() -> OnnxChecker.check(OnnxIO.toBytes(m)));
    }

    @Test
    void checksAModelFile(@TempDir Path dir) {
        Path file = dir.resolve("m.onnx");
        OnnxIO.write(matmulRelu(4), file);
        assertDoesNotThrow(() -> OnnxChecker.check(file));

        Path bad = dir.resolve("bad.onnx");
        OnnxIO.write(matmulRelu(5), bad);
        assertThrows(AssertionError.class, () -> OnnxChecker.check(bad));
    }

    @Test
    void checksAModelWithExternalData(@TempDir Path dir) {
        Model m = matmulRelu(4);
        Path file = dir.resolve("ext.onnx");
        OnnxIO.write(m, file, new OnnxIO.WriteOptions(OnnxIO.ExternalData.ALL, null, 0));
        assertTrue(dir.resolve("ext.onnx.data").toFile().isFile());
        assertDoesNotThrow(() -> OnnxChecker.check(file));
    }

    @Test
    void rejectsANodeReadingAnUndefinedValue() {
        Model m = matmulRelu(4);
        Graph g = m.graph();
        String z = g.op("Relu", "nowhere");
        g.addOutput(floatValue(z));
        AssertionError e = assertThrows(AssertionError.class, () -> OnnxChecker.check(m));
        assertTrue(e.getMessage().contains("nowhere"), e.getMessage());
    }

    @Test
    void rejectsAMatMulWithMismatchedInnerDimensions() {
        Model m = matmulRelu(5);
        AssertionError e = assertThrows(AssertionError.class, () -> OnnxChecker.check(m));
        assertTrue(e.getMessage().contains("MatMul") || e.getMessage().toLowerCase().contains("dimension"), e.getMessage());
        assertThrows(AssertionError.class, () -> OnnxChecker.inferShapes(m));
    }

    @Test
    void rejectsAModelWithoutOpsetImports() {
        byte[] noOpset = OnnxIO.toProto(matmulRelu(4)).toBuilder().clearOpsetImport().build().toByteArray();
        AssertionError e = assertThrows(AssertionError.class, () -> OnnxChecker.check(noOpset));
        assertTrue(e.getMessage().toLowerCase().contains("opset"), e.getMessage());
    }

    @Test
    void rejectsBytesThatAreNotAModel() {
        assertThrows(AssertionError.class, () -> OnnxChecker.check(new byte[] {(byte) 0xff, (byte) 0xff, 3}));
    }

    @Test
    void inferShapesAddsValueInfoForIntermediateValues() {
        Model m = matmulRelu(4);
        String hidden = m.graph().nodes().get(0).output(0);
        assertTrue(m.graph().valueInfo().isEmpty());

        Model inferred = OnnxChecker.inferShapes(m);
        ValueInfoProto v = inferred.graph().valueInfo().get(hidden);
        assertTrue(v != null, "no value_info for " + hidden + ": " + inferred.graph().valueInfo().keySet());
        TypeProto.Tensor t = v.getType().getTensorType();
        assertEquals(TensorProto.DataType.FLOAT_VALUE, t.getElemType());
        assertEquals(2, t.getShape().getDimCount());
        assertEquals("N", t.getShape().getDim(0).getDimParam());
        assertEquals(3, t.getShape().getDim(1).getDimValue());
        // the rest of the model is unchanged
        assertEquals(m.graph().nodes().size(), inferred.graph().nodes().size());
        assertTrue(inferred.graph().initializers().get("w").contentEquals(m.graph().initializer("w")));
        assertDoesNotThrow(() -> OnnxChecker.check(inferred));
    }
}
