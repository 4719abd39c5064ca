package io.peft4j.core.modules;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

class ModulePathsTest {

    @Test
    void scopedNodeNamesGiveTorchModulePaths() {
        assertEquals("conv1", ModulePaths.fromNodeName("/conv1/Conv"));
        assertEquals("fc", ModulePaths.fromNodeName("/fc/Gemm"));
        assertEquals("layer1.0.conv1", ModulePaths.fromNodeName("/layer1/layer1.0/conv1/Conv"));
        assertEquals("layer2.0.downsample.0", ModulePaths.fromNodeName("/layer2/layer2.0/downsample/downsample.0/Conv"));
        assertEquals("features.1.block.0.0", ModulePaths.fromNodeName("/features/features.1/block/block.0/block.0.0/Conv"));
        assertEquals("features.1.block.1.fc1", ModulePaths.fromNodeName("/features/features.1/block/block.1/fc1/Conv"));
        assertEquals("classifier.3", ModulePaths.fromNodeName("/classifier/classifier.3/Gemm"));
        assertEquals("encoder.layer.0.attention.self.query",
                ModulePaths.fromNodeName("/encoder/layer.0/attention/self/query/MatMul"));
        assertEquals("encoder.layer.11.output.dense", ModulePaths.fromNodeName("/encoder/layer.11/output/dense/MatMul"));
        // nested containers: ModuleList inside a Sequential (blocks.0.0 under blocks.0)
        assertEquals("blocks.0.0.attn", ModulePaths.fromNodeName("/blocks/blocks.0/blocks.0.0/attn/MatMul"));
    }

    @Test
    void unscopedNamesFallBack() {
        assertNull(ModulePaths.fromNodeName("Gemm_12"));
        assertNull(ModulePaths.fromNodeName("/Flatten"));
        assertEquals("fc", ModulePaths.fromWeightName("fc.weight"));
        assertEquals("encoder.layer.0.attention.self.query", ModulePaths.fromWeightName("encoder.layer.0.attention.self.query.weight"));
        assertNull(ModulePaths.fromWeightName("onnx::MatMul_787"));
        assertEquals("MatMul_45", ModulePaths.sanitize("MatMul_45"));
        assertEquals("my_node_.x", ModulePaths.sanitize("my node/.x"));
        assertEquals(List.of("fc", "Gemm_3"), ModulePaths.candidates("Gemm_3", "fc.weight"));
        assertEquals(List.of("layer1.0.conv1", "layer1_layer1.0_conv1_Conv"),
                ModulePaths.candidates("/layer1/layer1.0/conv1/Conv", "onnx::Conv_12"));
        // the ambiguous scope chain is settled by the parameter's name...
        assertEquals("layer1.layer1.0.conv1",
                ModulePaths.candidates("/layer1/layer1.0/conv1/Conv", "layer1.layer1.0.conv1.weight").get(0));
        // ...but a tied weight used by another module does not override that module's scope
        assertEquals("cls.predictions.decoder",
                ModulePaths.candidates("/cls/predictions/decoder/MatMul", "embeddings.word_embeddings.weight").get(0));
    }
}
