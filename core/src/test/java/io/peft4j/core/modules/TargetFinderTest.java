package io.peft4j.core.modules;

import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TargetFinderTest {

    private static Map<String, TargetLayer> byPath(Model m) {
        return TargetFinder.find(m.graph()).stream().collect(Collectors.toMap(TargetLayer::path, Function.identity()));
    }

    @Test
    void tinyModelLayersWithLayouts() {
        Map<String, TargetLayer> t = byPath(TinyModels.cnn(1));
        assertEquals(List.of("conv1", "fc1", "fc2"), t.keySet().stream().sorted().toList());
        assertEquals(TargetLayer.Layout.IN_OUT, t.get("fc1").layout());
        assertEquals(4, t.get("fc1").inFeatures());
        assertEquals(6, t.get("fc1").outFeatures());
        assertEquals(TargetLayer.Layout.OUT_IN, t.get("fc2").layout());
        assertEquals(6, t.get("fc2").inFeatures());
        assertEquals(3, t.get("fc2").outFeatures());
        assertEquals(3 * 6 + 3, t.get("fc2").parameters());
        assertEquals(TargetLayer.Kind.CONV, t.get("conv1").kind());
        assertEquals(4 * 9 + 4, t.get("conv1").parameters());
    }

    @Test
    void resnet18HasTorchvisionModulePaths() {
        Model m = OnnxIO.read(Assets.shared("models/resnet18.onnx"));
        List<TargetLayer> layers = TargetFinder.find(m.graph());
        assertEquals(21, layers.size(), "20 convolutions and the fc layer");
        Map<String, TargetLayer> t = layers.stream().collect(Collectors.toMap(TargetLayer::path, Function.identity()));
        assertArrayEquals(new long[] {64, 64, 3, 3}, t.get("layer1.0.conv1").weightShape());
        assertArrayEquals(new long[] {128, 64, 1, 1}, t.get("layer2.0.downsample.0").weightShape());
        assertArrayEquals(new long[] {6, 512}, t.get("fc").weightShape());
        assertEquals(TargetLayer.Layout.OUT_IN, t.get("fc").layout());
        assertEquals("fc.weight", t.get("fc").weight());
        // every path is the name of its weight without ".weight", as torchvision's named_modules() gives
        for (TargetLayer l : layers) {
            assertEquals(l.path() + ".weight", l.weight(), l.toString());
        }
        assertEquals(BatchNormFolding.Status.KEPT, BatchNormFolding.detect(m.graph()).status());
    }

    @Test
    void mobilenetV3HasDepthwiseConvolutionsWithGroups() {
        Model m = OnnxIO.read(Assets.shared("models/mobilenet_v3_small.onnx"));
        Map<String, TargetLayer> t = byPath(m);
        assertEquals(54, t.size(), "52 convolutions and 2 linear layers");
        TargetLayer dw = t.get("features.1.block.0.0");
        assertEquals(16, dw.groups(), "depthwise 3x3 over 16 channels");
        assertArrayEquals(new long[] {16, 1, 3, 3}, dw.weightShape());
        assertEquals(16, dw.inFeatures());
        assertArrayEquals(new long[] {8, 16, 1, 1}, t.get("features.1.block.1.fc1").weightShape());
        assertArrayEquals(new long[] {1024, 576}, t.get("classifier.0").weightShape());
        for (TargetLayer l : t.values()) {
            assertEquals(l.path() + ".weight", l.weight(), l.toString());
        }
    }

    @Test
    void miniLmHasHuggingFaceBertPaths() {
        Model m = OnnxIO.read(Assets.miniLm());
        Map<String, TargetLayer> t = byPath(m);
        // 6 layers x (query, key, value, attention.output.dense, intermediate.dense, output.dense) + 3 embeddings
        assertEquals(6 * 6 + 3, t.size(), t.keySet().toString());
        TargetLayer q = t.get("encoder.layer.0.attention.self.query");
        assertEquals("MatMul", q.opType());
        assertEquals(TargetLayer.Layout.IN_OUT, q.layout());
        assertArrayEquals(new long[] {384, 384}, q.weightShape());
        assertArrayEquals(new long[] {384, 1536}, t.get("encoder.layer.5.intermediate.dense").weightShape());
        assertArrayEquals(new long[] {1536, 384}, t.get("encoder.layer.5.output.dense").weightShape());
        assertEquals(1536, t.get("encoder.layer.5.output.dense").inFeatures());
        TargetLayer emb = t.get("embeddings.word_embeddings");
        assertEquals(TargetLayer.Kind.EMBEDDING, emb.kind());
        assertArrayEquals(new long[] {30522, 384}, emb.weightShape());
        assertTrue(t.containsKey("embeddings.position_embeddings"));
        assertTrue(t.containsKey("embeddings.token_type_embeddings"));
        assertEquals(BatchNormFolding.Status.NONE, BatchNormFolding.detect(m.graph()).status());
    }

    @Test
    void initializersThatAreAlsoInputsAreStillWeights() {
        // IR < 4 lists every initializer as a graph input too; keep_initializers_as_inputs does the same later
        Model m = TinyModels.cnn(1);
        for (String w : List.of("conv1.weight", "fc1_w", "fc2.weight")) {
            m.graph().addInput(io.peft4j.core.onnx.ValueInfos.tensor(w, io.peft4j.core.tensor.DataType.FLOAT,
                    (Object[]) null));
        }
        m.setIrVersion(3);
        assertEquals(List.of("conv1", "fc1", "fc2"), byPath(m).keySet().stream().sorted().toList());
    }

    @Test
    void foldedBatchNormIsRecognised() {
        // PyTorch's exporter names folded conv weights onnx::Conv_<n> and leaves no BatchNorm node
        Model m = TinyModels.cnn(1);
        Graph g = m.graph();
        var conv = g.node("/conv1/Conv");
        g.setInitializer("onnx::Conv_12", g.initializer("conv1.weight"));
        conv.setInput(1, "onnx::Conv_12");
        g.removeInitializer("conv1.weight");
        BatchNormFolding.Report r = BatchNormFolding.detect(g);
        assertEquals(BatchNormFolding.Status.FOLDED, r.status());
        assertEquals(1, r.convsRenamed());
        // the path still comes from the node's scope, not from the exporter's weight name
        assertTrue(Arrays.asList(byPath(m).keySet().toArray()).contains("conv1"));
    }
}
