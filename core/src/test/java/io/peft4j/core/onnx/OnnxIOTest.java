package io.peft4j.core.onnx;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.onnx.proto.Onnx.ModelProto;
import io.peft4j.core.onnx.proto.Onnx.StringStringEntryProto;
import io.peft4j.core.onnx.proto.Onnx.TensorProto;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class OnnxIOTest {

    @TempDir
    Path dir;

    private static final Tensor X = TinyModels.input(11, 4);

    private static Tensor logits(Model m) {
        return Ort.run(m, Map.of("x", X)).get("logits");
    }

    @Test
    void inlineRoundTripKeepsEverything() {
        Model m = TinyModels.cnn(1);
        m.metadata().put("purpose", "test");
        Path f = dir.resolve("m.onnx");
        OnnxIO.write(m, f, OnnxIO.WriteOptions.inline());
        Model back = OnnxIO.read(f);
        assertEquals(OnnxIO.toProto(m), OnnxIO.toProto(back));
        assertEquals("test", back.metadata().get("purpose"));
        assertFalse(Files.exists(dir.resolve("m.onnx.data")));
        assertEquals(0.0, Ort.maxAbsDiff(logits(m), Ort.run(f, Map.of("x", X)).get("logits")));
    }

    @Test
    void externalDataIsWrittenReadAndKept() throws IOException {
        Model m = TinyModels.cnn(2);
        Path f = dir.resolve("ext.onnx");
        OnnxIO.write(m, f, new OnnxIO.WriteOptions(OnnxIO.ExternalData.ALL, null, 0));
        Path data = dir.resolve("ext.onnx.data");
        assertTrue(Files.size(data) > 0);
        ModelProto p = OnnxIO.readProto(f);
        for (TensorProto t : p.getGraph().getInitializerList()) {
            assertEquals(TensorProto.DataLocation.EXTERNAL, t.getDataLocation(), t.getName());
            assertFalse(t.hasRawData());
        }
        // ONNX Runtime resolves our external data file on its own: the independent check of the layout
        assertEquals(0.0, Ort.maxAbsDiff(logits(m), Ort.run(f, Map.of("x", X)).get("logits")));

        Model back = OnnxIO.read(f);
        assertTrue(back.graph().isStoredExternally("conv1.weight"));
        for (var e : m.graph().initializers().entrySet()) {
            assertTrue(e.getValue().contentEquals(back.graph().initializer(e.getKey())), e.getKey());
        }
        // KEEP writes them external again, into the new file's own data file
        Path f2 = dir.resolve("sub").resolve("again.onnx");
        OnnxIO.write(back, f2);
        assertTrue(Files.exists(f2.resolveSibling("again.onnx.data")));
        assertEquals(0.0, Ort.maxAbsDiff(logits(m), Ort.run(f2, Map.of("x", X)).get("logits")));

        // overwriting the file the tensors are mapped from is safe: old mappings keep their inode
        OnnxIO.write(back, f);
        assertEquals(0.0, Ort.maxAbsDiff(logits(m), Ort.run(f, Map.of("x", X)).get("logits")));
        assertNoTempFiles(dir);
    }

    @Test
    void constantWeightsLiftToInitializers() {
        Model m = TinyModels.cnn(4);
        Tensor expected = logits(m);
        // turn every initializer into a Constant node, as some exporters do
        Graph g = m.graph();
        for (String name : g.initializers().keySet().toArray(new String[0])) {
            Tensor t = g.initializer(name);
            String tmp = g.freshName(name + "_const");
            g.build("Constant").outputs(tmp).attr("value", t).add();
            g.replaceAllUses(name, tmp);
            g.removeInitializer(name);
        }
        g.sortTopologically();
        assertTrue(g.initializers().isEmpty());
        assertEquals(0.0, Ort.maxAbsDiff(expected, logits(m)));
        assertTrue(LiftConstants.run(m));
        assertEquals(6, g.initializers().size());
        assertTrue(g.nodes().stream().noneMatch(n -> n.is("Constant")));
        assertEquals(0.0, Ort.maxAbsDiff(expected, logits(m)));
        assertFalse(LiftConstants.run(m), "a second run changes nothing");
    }

    @Test
    void missingDirectoryEmptyAndNonOnnxFilesGetClearErrors() throws IOException {
        Peft4jException e = assertThrows(Peft4jException.class, () -> OnnxIO.read(dir.resolve("nope.onnx")));
        assertEquals(ErrorCode.IO, e.code());
        assertTrue(e.getMessage().contains("not found"), e.getMessage());

        e = assertThrows(Peft4jException.class, () -> OnnxIO.read(dir));
        assertTrue(e.getMessage().contains("is a directory"), e.getMessage());

        Path empty = Files.write(dir.resolve("empty.onnx"), new byte[0]);
        e = assertThrows(Peft4jException.class, () -> OnnxIO.read(empty));
        assertEquals(ErrorCode.MALFORMED, e.code());
        assertTrue(e.getMessage().contains("empty"), e.getMessage());

        Path text = Files.writeString(dir.resolve("readme.onnx"), "# not a model\nhello world\n");
        e = assertThrows(Peft4jException.class, () -> OnnxIO.read(text));
        assertEquals(ErrorCode.MALFORMED, e.code());
        assertTrue(e.getMessage().contains("not an ONNX model"), e.getMessage());

        Path png = Files.write(dir.resolve("img.onnx"), new byte[] {(byte) 0x89, 'P', 'N', 'G', 13, 10, 26, 10, 0, 0, 0, 13});
        e = assertThrows(Peft4jException.class, () -> OnnxIO.read(png));
        assertEquals(ErrorCode.MALFORMED, e.code());
    }

    @Test
    void truncatedModelsAreReportedAsTruncated() throws IOException {
        byte[] full = OnnxIO.toBytes(TinyModels.cnn(1));
        int rejected = 0;
        for (int cut : new int[] {full.length - 1, full.length - 7, full.length / 2, full.length / 3, 5}) {
            Path f = Files.write(dir.resolve("cut" + cut + ".onnx"), Arrays.copyOf(full, cut));
            Peft4jException e = assertThrows(Peft4jException.class, () -> OnnxIO.read(f), "cut at " + cut);
            assertEquals(ErrorCode.MALFORMED, e.code());
            assertTrue(e.getMessage().contains("truncated") || e.getMessage().contains("not an ONNX model")
                    || e.getMessage().contains("needs"), e.getMessage());
            rejected++;
        }
        assertEquals(5, rejected);
    }

    @Test
    void hostileExternalDataLocationsAreRefused() throws IOException {
        Model m = TinyModels.cnn(1);
        Path f = dir.resolve("h.onnx");
        OnnxIO.write(m, f, new OnnxIO.WriteOptions(OnnxIO.ExternalData.ALL, null, 0));
        ModelProto good = OnnxIO.readProto(f);
        long dataSize = Files.size(dir.resolve("h.onnx.data"));

        assertRefused(good, "location", "../../etc/passwd", "outside the model's directory");
        assertRefused(good, "location", "/etc/passwd", "must be relative");
        assertRefused(good, "offset", Long.toString(dataSize), "past the end");
        assertRefused(good, "offset", "-4", "negative");
        assertRefused(good, "offset", "12abc", "not a number");
        assertRefused(good, "length", "3", "does not match");
        assertRefused(good, "location", "missing.bin", "not found");

        Files.createSymbolicLink(dir.resolve("link.bin"), Path.of("/etc/hostname"));
        assertRefused(good, "location", "link.bin", "links outside");
    }

    private void assertRefused(ModelProto good, String key, String value, String messagePart) throws IOException {
        ModelProto.Builder b = good.toBuilder();
        TensorProto.Builder t = b.getGraphBuilder().getInitializerBuilder(0);
        boolean replaced = false;
        for (int i = 0; i < t.getExternalDataCount(); i++) {
            if (t.getExternalData(i).getKey().equals(key)) {
                t.setExternalData(i, StringStringEntryProto.newBuilder().setKey(key).setValue(value));
                replaced = true;
            }
        }
        assertTrue(replaced);
        Path bad = Files.write(dir.resolve("bad-" + key + ".onnx"), b.build().toByteArray());
        Peft4jException e = assertThrows(Peft4jException.class, () -> OnnxIO.read(bad), key + "=" + value);
        assertTrue(e.getMessage().contains(messagePart), e.getMessage());
        assertTrue(e.getMessage().contains(t.getName()), "names the tensor: " + e.getMessage());
    }

    @Test
    void aFailedWriteLeavesTheOldFilesAndNoTemporaries() throws IOException {
        Model m = TinyModels.cnn(1);
        Path f = dir.resolve("keep.onnx");
        OnnxIO.write(m, f, OnnxIO.WriteOptions.inline());
        byte[] before = Files.readAllBytes(f);
        // the data file's name is taken by a non-empty directory: the move fails
        Files.createDirectories(dir.resolve("keep.onnx.data").resolve("x"));
        Model other = TinyModels.cnn(9);
        Peft4jException e = assertThrows(Peft4jException.class,
                () -> OnnxIO.write(other, f, new OnnxIO.WriteOptions(OnnxIO.ExternalData.ALL, null, 0)));
        assertEquals(ErrorCode.IO, e.code());
        assertArrayEquals(before, Files.readAllBytes(f));
        assertNoTempFiles(dir);
    }

    @Test
    void writeOptionsAreValidated() {
        assertThrows(Peft4jException.class, () -> new OnnxIO.WriteOptions(OnnxIO.ExternalData.ALL, "../x.data", 0));
        assertThrows(Peft4jException.class, () -> new OnnxIO.WriteOptions(OnnxIO.ExternalData.ALL, "a/b", 0));
        assertThrows(Peft4jException.class, () -> new OnnxIO.WriteOptions(OnnxIO.ExternalData.ALL, null, -1));
        assertThrows(Peft4jException.class, () -> new OnnxIO.WriteOptions(null, null, 0));
    }

    @Test
    void typedFieldTensorsReadLikeRawOnes() {
        TensorProto typed = TensorProto.newBuilder().setName("t").setDataType(1).addDims(2).addDims(2)
                .addFloatData(1).addFloatData(2).addFloatData(3).addFloatData(4).build();
        Tensor t = TensorProtos.toTensor(typed, "t");
        assertArrayEquals(new float[] {1, 2, 3, 4}, t.toFloatArray());
        TensorProto fp16 = TensorProto.newBuilder().setDataType(10).addDims(2).addInt32Data(0x3c00).addInt32Data(0xc000).build();
        assertArrayEquals(new float[] {1, -2}, TensorProtos.toTensor(fp16, "h").toFloatArray());
        TensorProto wrongCount = typed.toBuilder().addFloatData(5).build();
        Peft4jException e = assertThrows(Peft4jException.class, () -> TensorProtos.toTensor(wrongCount, "t"));
        assertTrue(e.getMessage().contains("float_data has 5 values"), e.getMessage());
        TensorProto wrongRaw = TensorProto.newBuilder().setDataType(1).addDims(3)
                .setRawData(com.google.protobuf.ByteString.copyFrom("abcd", StandardCharsets.US_ASCII)).build();
        e = assertThrows(Peft4jException.class, () -> TensorProtos.toTensor(wrongRaw, "w"));
        assertTrue(e.getMessage().contains("needs 12 bytes"), e.getMessage());
    }

    @Test
    void absurdShapesBadPathsAndNestedExternalDataAreRefused() throws IOException {
        ModelProto good = OnnxIO.toProto(TinyModels.cnn(1));
        ModelProto.Builder huge = good.toBuilder();
        huge.getGraphBuilder().getInitializerBuilder(0).clearDims().addDims(1L << 62).clearRawData();
        Peft4jException e = assertThrows(Peft4jException.class, () -> OnnxIO.read(huge.build().toByteArray(), "huge"));
        assertEquals(ErrorCode.MALFORMED, e.code());
        assertTrue(e.getMessage().contains("overflows"), e.getMessage());

        Path f = dir.resolve("n.onnx");
        OnnxIO.write(TinyModels.cnn(1), f, new OnnxIO.WriteOptions(OnnxIO.ExternalData.ALL, null, 0));
        ModelProto ext = OnnxIO.readProto(f);
        ModelProto.Builder nul = ext.toBuilder();
        TensorProto.Builder t = nul.getGraphBuilder().getInitializerBuilder(0);
        t.setExternalData(0, StringStringEntryProto.newBuilder().setKey("location").setValue("a\0b"));
        Path bad = Files.write(dir.resolve("nul.onnx"), nul.build().toByteArray());
        e = assertThrows(Peft4jException.class, () -> OnnxIO.read(bad));
        assertTrue(e.getMessage().contains("not a valid path"), e.getMessage());

        // a Constant node whose value lives in the external file: refused, not silently mis-rewritten
        ModelProto.Builder nested = ext.toBuilder();
        TensorProto w = nested.getGraph().getInitializer(0);
        nested.getGraphBuilder().removeInitializer(0).addNode(0, io.peft4j.core.onnx.proto.Onnx.NodeProto.newBuilder()
                .setOpType("Constant").setName("c").addOutput(w.getName())
                .addAttribute(io.peft4j.core.onnx.proto.Onnx.AttributeProto.newBuilder().setName("value")
                        .setType(io.peft4j.core.onnx.proto.Onnx.AttributeProto.AttributeType.TENSOR).setT(w)));
        Path nestedFile = Files.write(dir.resolve("nested.onnx"), nested.build().toByteArray());
        e = assertThrows(Peft4jException.class, () -> OnnxIO.read(nestedFile));
        assertEquals(ErrorCode.UNSUPPORTED, e.code());
        assertTrue(e.getMessage().contains("attribute 'value' of node 'c'"), e.getMessage());

        e = assertThrows(Peft4jException.class, () -> io.peft4j.core.tensor.DataType.fromOnnx(24));
        assertEquals(ErrorCode.UNSUPPORTED, e.code());
    }

    @Test
    void writtenFilesAreReadableByOthers() throws IOException {
        Path f = dir.resolve("shared.onnx");
        OnnxIO.write(TinyModels.cnn(1), f, new OnnxIO.WriteOptions(OnnxIO.ExternalData.ALL, null, 0));
        assertEquals("rw-r--r--", java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(f)));
        assertEquals("rw-r--r--", java.nio.file.attribute.PosixFilePermissions.toString(
                Files.getPosixFilePermissions(dir.resolve("shared.onnx.data"))));
    }

    static void assertNoTempFiles(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            assertEquals(0, s.filter(p -> p.getFileName().toString().endsWith(".tmp")).count(), "temporary files left in " + dir);
        }
    }
}
