package io.peft4j.core.peft;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.modules.TargetFinder;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.OnnxChecker;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.function.IntFunction;
import java.util.function.Supplier;
import java.util.stream.Stream;

import static io.peft4j.core.peft.PeftFixtures.copy;
import static io.peft4j.core.peft.PeftFixtures.relDiff;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The contract every registered PEFT method passes, on small graphs built in code and on real
 * models: merged = injected (ONNX Runtime), side inputs fed = injected, nothing fed = base, a
 * stacked batch gives each row its own adapter (row 0 the base), a second merge and a NaN merge
 * are refused, the bundle survives save/load, and every emitted graph passes the ONNX checker.
 */
class PeftMethodContractTest {

    /** Merged vs injected, relative to the output's magnitude. */
    static final double MERGE_TOL = 1e-4;
    /**
     * Base vs adapter switched off, relative to the output's magnitude. Not 0: the rewritten graph
     * multiplies by exact ones or adds exact zeros, but ONNX Runtime fuses it differently (a Mul
     * after a Conv stops the Conv + BatchNorm fusion, for one).
     */
    static final double OFF_TOL = 1e-6;

    record Case(String name, Supplier<Model> model, IntFunction<Map<String, Tensor>> inputs,
                Function<Model, AdapterConfig> config, double sigma) {
        @Override
        public String toString() {
            return name;
        }
    }

    static List<String> paths(Model m, java.util.function.Predicate<TargetLayer> keep) {
        return TargetFinder.find(m.graph()).stream().filter(keep).map(TargetLayer::path).toList();
    }

    static AdapterConfig lora(int r, double alpha, List<String> targets) {
        return AdapterConfig.lora(r, alpha, targets);
    }

    static AdapterConfig withPatterns(AdapterConfig c, Map<String, Integer> ranks, Map<String, Double> alphas, boolean rslora,
                                      List<String> save) {
        return new AdapterConfig(c.peftType(), c.r(), c.loraAlpha(), c.targetModules(), c.targetRegex(), 0.0, "none", rslora,
                false, false, save, ranks, alphas, c.feedforwardModules(), null, Map.of());
    }

    static Map<String, Tensor> image(int batch, long seed, String name, long... chw) {
        long[] s = new long[chw.length + 1];
        s[0] = batch;
        System.arraycopy(chw, 0, s, 1, chw.length);
        return Map.of(name, PeftFixtures.randn(seed, s));
    }

    static Map<String, Tensor> tokens(int batch) {
        return TinyModels.bertTokens(batch, batch);
    }

    private static Model resnet18() {
        return OnnxIO.read(Assets.shared("models/resnet18.onnx"));
    }

    private static Model mobilenet() {
        return OnnxIO.read(Assets.shared("models/mobilenet_v3_small.onnx"));
    }

    private static Model miniLm() {
        return OnnxIO.read(Assets.miniLm());
    }

    static Stream<Case> cases() {
        return Stream.of(
                new Case("tiny-lora", () -> TinyModels.cnn(1), b -> Map.of("x", TinyModels.input(5, b)),
                        m -> withPatterns(lora(2, 4, List.of("conv1", "fc1", "fc2")), Map.of("fc1", 3), Map.of("conv1", 6.0),
                                false, List.of()), 0.3),
                new Case("tiny-lora-rslora-modules_to_save", () -> TinyModels.cnn(2), b -> Map.of("x", TinyModels.input(6, b)),
                        m -> withPatterns(lora(2, 4, List.of("conv1")), Map.of(), Map.of(), true, List.of("fc1", "fc2")), 0.3),
                new Case("tiny-ia3", () -> TinyModels.cnn(3), b -> Map.of("x", TinyModels.input(7, b)),
                        m -> AdapterConfig.ia3(List.of("conv1", "fc1", "fc2"), List.of("fc2")), 0.3),
                new Case("gemm-attributes-lora", () -> PeftFixtures.gemmVariants(4),
                        b -> Map.of("x", PeftFixtures.randn(8, 6, b)), m -> lora(3, 5, List.of("fc", "head")), 0.3),
                new Case("gemm-attributes-ia3", () -> PeftFixtures.gemmVariants(5),
                        b -> Map.of("x", PeftFixtures.randn(9, 6, b)),
                        m -> AdapterConfig.ia3(List.of("fc", "head"), List.of("fc")), 0.3),
                new Case("resnet18-lora", PeftMethodContractTest::resnet18, b -> image(b, 11, "input", 3, 64, 64),
                        m -> lora(4, 8, paths(m, t -> true)), 0.02),
                new Case("resnet18-ia3", PeftMethodContractTest::resnet18, b -> image(b, 12, "input", 3, 64, 64),
                        m -> AdapterConfig.ia3(paths(m, t -> true), List.of("fc", "layer4.1.conv2")), 0.1),
                new Case("mobilenet_v3_small-lora", PeftMethodContractTest::mobilenet, b -> image(b, 13, "input", 3, 64, 64),
                        m -> lora(4, 8, paths(m, t -> t.groups() == 1)), 0.02),
                new Case("mobilenet_v3_small-ia3", PeftMethodContractTest::mobilenet, b -> image(b, 14, "input", 3, 64, 64),
                        m -> AdapterConfig.ia3(paths(m, t -> true), List.of("classifier.3", "features.1.block.0.0")), 0.1),
                new Case("all-MiniLM-L6-v2-lora", PeftMethodContractTest::miniLm, PeftMethodContractTest::tokens,
                        m -> withPatterns(lora(8, 16, List.of("query", "value", "word_embeddings")), Map.of("value", 4),
                                Map.of("word_embeddings", 4.0), false, List.of()), 0.05),
                new Case("all-MiniLM-L6-v2-ia3", PeftMethodContractTest::miniLm, PeftMethodContractTest::tokens,
                        m -> AdapterConfig.ia3(List.of("key", "value", "intermediate.dense", "output.dense"),
                                List.of("output.dense")), 0.1));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void contract(Case c, @TempDir Path tmp) {
        Model base = c.model().get();
        AdapterConfig config = c.config().apply(base);
        AdapterBundle adapter = PeftFixtures.randomAdapter(base, config, 1, c.sigma());
        Map<String, Tensor> in2 = c.inputs().apply(2);
        String out = base.graph().outputNames().get(0);
        Tensor yBase = Ort.run(base, in2).get(out);

        // save / load round trip
        adapter.write(tmp.resolve("adapter"));
        AdapterBundle loaded = AdapterBundle.read(tmp.resolve("adapter"));
        assertEquals(adapter.config().toJson(), loaded.config().toJson());
        assertEquals(adapter.tensors().keySet(), loaded.tensors().keySet());
        adapter.tensors().forEach((k, v) -> assertTrue(v.contentEquals(loaded.tensors().get(k)), k));
        AdapterBinding binding = AdapterBinding.bind(base, loaded);
        assertTrue(binding.modules().size() + binding.saved().size() > 0);

        // injected with the tensors as initializers
        Model injected = copy(base);
        Peft.Injection inj = Peft.inject(injected, binding, InjectMode.INITIALIZERS);
        OnnxChecker.check(injected);
        assertEquals(adapter.tensors().size(), inj.trainable().size(), "every PEFT tensor is trainable");
        Tensor yInj = Ort.run(injected, in2).get(out);
        int afterBn = loraAfterBatchNorm(base, injected, binding);
        if (c.name().equals("resnet18-lora")) {
            assertEquals(20, afterBn, "every resnet18 Conv feeds a BatchNorm: each LoRA delta goes after it");
        }
        assertTrue(relDiff(yInj, yBase) > 1e-3, c + ": the adapter must visibly change the output, " + relDiff(yInj, yBase));

        // merged: same nodes and names, only weights differ; equals the injected model
        Model merged = copy(base);
        Peft.merge(merged, binding);
        OnnxChecker.check(merged);
        assertEquals(base.graph().nodes().stream().map(Node::toString).toList(),
                merged.graph().nodes().stream().map(Node::toString).toList());
        assertEquals(base.graph().initializers().keySet(), merged.graph().initializers().keySet());
        Tensor yMerged = Ort.run(merged, in2).get(out);
        double mergeDiff = relDiff(yMerged, yInj);
        assertTrue(mergeDiff <= MERGE_TOL, c + ": merged vs injected " + mergeDiff);
        Peft4jException twice = assertThrows(Peft4jException.class, () -> Peft.merge(merged, binding));
        assertTrue(twice.getMessage().contains("already merged"), twice.getMessage());

        // a merge that gives NaN is refused and changes nothing
        Model poisoned = copy(base);
        AdapterBinding nan = AdapterBinding.bind(base, PeftFixtures.poisoned(adapter, Float.NaN));
        Peft4jException e = assertThrows(Peft4jException.class, () -> Peft.merge(poisoned, nan));
        assertTrue(e.getMessage().contains("non-finite"), e.getMessage());
        poisoned.graph().initializers().forEach((k, v) -> assertTrue(v.contentEquals(base.graph().initializer(k)), k));

        // side graph: adapter tensors are inputs; fed = injected, fed the off values = base
        Model side = copy(base);
        Peft.Injection sideInj = Peft.inject(side, binding, InjectMode.INPUTS);
        OnnxChecker.check(side);
        assertEquals(afterBn, loraAfterBatchNorm(base, side, binding));
        Map<String, Tensor> fed = new LinkedHashMap<>(in2);
        fed.putAll(sideInj.feeds());
        double sideDiff = relDiff(Ort.run(side, fed).get(out), yInj);
        assertTrue(sideDiff <= MERGE_TOL, c + ": side vs injected " + sideDiff);
        Map<String, Tensor> off = new LinkedHashMap<>(in2);
        off.putAll(sideInj.offFeeds());
        double offDiff = relDiff(Ort.run(side, off).get(out), yBase);
        assertTrue(offDiff <= OFF_TOL, c + ": side with no adapter vs base " + offDiff);
        // with defaults: nothing fed = base
        Model sideDefaults = copy(base);
        Peft.inject(sideDefaults, binding, InjectMode.INPUTS_WITH_DEFAULTS);
        OnnxChecker.check(sideDefaults);
        assertEquals(afterBn, loraAfterBatchNorm(base, sideDefaults, binding));
        double defaultDiff = relDiff(Ort.run(sideDefaults, in2).get(out), yBase);
        assertTrue(defaultDiff <= OFF_TOL, c + ": side with default inputs vs base " + defaultDiff);
        offDiff = Math.max(offDiff, defaultDiff);
        // stripped: the side graph back to the base graph, on which the adapter merges as on the base
        Model stripped = copy(sideDefaults);
        assertEquals(sideInj.offFeeds().size(), Peft.strip(stripped));
        OnnxChecker.check(stripped);
        assertTrue(stripped.graph().inputNames().stream().noneMatch(sideInj.feeds()::containsKey), "no adapter input is left");
        double stripDiff = relDiff(Ort.run(stripped, in2).get(out), yBase);
        assertTrue(stripDiff <= OFF_TOL, c + ": stripped side graph vs base " + stripDiff);
        if (binding.saved().isEmpty()) {
            assertEquals(opCounts(base), opCounts(stripped), c + ": the stripped graph runs the base graph's nodes");
            Model strippedMerged = copy(stripped);
            Peft.merge(strippedMerged, AdapterBinding.bind(strippedMerged, loaded));
            double smDiff = relDiff(Ort.run(strippedMerged, in2).get(out), yMerged);
            assertTrue(smDiff <= OFF_TOL, c + ": merged onto the stripped side graph vs merged onto the base " + smDiff);
        }

        // stacked: batch [0, 1, 2] gives row 0 the base, rows 1 and 2 adapters 1 and 2
        double stackDiff = Double.NaN;
        double stackOff = Double.NaN;
        if (binding.saved().isEmpty()) {
            // a second adapter of another rank and scale (LoRA) or other vectors (IA3)
            AdapterConfig other = config.r() == 0 ? config : lora(config.r() + 2, config.loraAlpha() * 2, config.targetModules());
            AdapterBinding second = AdapterBinding.bind(base, PeftFixtures.randomAdapter(base, other, 2, c.sigma()));
            Model stacked = copy(base);
            Peft.injectStacked(stacked, List.of(binding, second), 0);
            OnnxChecker.check(stacked);
            assertEquals(afterBn, loraAfterBatchNorm(base, stacked, binding));
            Map<String, Tensor> in3 = new LinkedHashMap<>(c.inputs().apply(3));
            Model second1 = copy(base);
            Peft.inject(second1, second, InjectMode.INITIALIZERS);
            Tensor y3Base = Ort.run(base, in3).get(out);
            Tensor y3First = Ort.run(injected, in3).get(out);
            Tensor y3Second = Ort.run(second1, in3).get(out);
            in3.put(Stack.ADAPTER_INDEX, Tensor.ofLongs(new long[] {3}, 0, 1, 2));
            Tensor y3 = Ort.run(stacked, in3).get(out);
            stackOff = rowDiff(y3, y3Base, 0);
            stackDiff = Math.max(rowDiff(y3, y3First, 1), rowDiff(y3, y3Second, 2));
            assertTrue(stackOff <= OFF_TOL, c + ": stacked row 0 vs base " + stackOff);
            assertTrue(stackDiff <= MERGE_TOL, c + ": stacked rows vs single adapters " + stackDiff);
        }
        System.out.printf("peft contract %-34s modules %3d  merged-vs-injected %.2e  side-vs-injected %.2e  off-vs-base %.1e"
                        + "  stacked-vs-single %.2e  stacked-row0-vs-base %.1e%n", c, binding.modules().size(), mergeDiff, sideDiff,
                offDiff, stackDiff, stackOff);
    }

    static Map<String, Integer> opCounts(Model m) {
        Map<String, Integer> c = new java.util.TreeMap<>();
        m.graph().nodes().forEach(n -> c.merge(n.opType(), 1, Integer::sum));
        return c;
    }

    /**
     * Checks where the LoRA delta of each Conv module sits in {@code injected}: when only an
     * inference-mode BatchNormalization reads the base Conv's output, the Conv still feeds that
     * BatchNorm alone and the module's {@code lora_add} comes after the BatchNorm, writing the value
     * name the BatchNorm wrote in the base graph; otherwise the Add writes the Conv's own output
     * name. Returns the number of modules placed after a BatchNorm.
     */
    static int loraAfterBatchNorm(Model base, Model injected, AdapterBinding binding) {
        if (!(binding.method() instanceof io.peft4j.core.peft.lora.LoraMethod)) {
            return 0;
        }
        int after = 0;
        for (AdapterBinding.Module m : binding.modules()) {
            TargetLayer t = m.target();
            if (t.kind() != TargetLayer.Kind.CONV) {
                continue;
            }
            Node baseConv = base.graph().node(t.nodeName());
            Node conv = injected.graph().node(t.nodeName());
            var bn = Rewrites.batchNormAfter(base, baseConv, t.outFeatures());
            String written = bn.isPresent() ? bn.get().node().output(0) : baseConv.output(0);
            Node add = injected.graph().producer(written).orElseThrow();
            assertTrue(add.is("Add") && add.name().startsWith(t.path() + "/lora_add"), t.path() + ": " + written
                    + " is written by " + add);
            if (bn.isPresent()) {
                List<Node> readers = injected.graph().consumers(conv.output(0));
                assertEquals(1, readers.size(), t.path() + ": the Conv feeds its BatchNorm alone, " + readers);
                assertEquals(bn.get().node().name(), readers.get(0).name());
                assertTrue(add.inputs().contains(readers.get(0).output(0)), t.path() + ": the Add reads the BatchNorm's output");
                after++;
            } else {
                assertTrue(add.inputs().contains(conv.output(0)), t.path() + ": the Add reads the Conv's output");
            }
        }
        return after;
    }

    /** Relative difference of row {@code r} of two outputs (relative to the reference row's magnitude). */
    static double rowDiff(Tensor a, Tensor ref, int r) {
        float[] x = PeftFixtures.row(a, r);
        float[] y = PeftFixtures.row(ref, r);
        double m = 0;
        double s = 0;
        for (int i = 0; i < x.length; i++) {
            m = Math.max(m, Math.abs(x[i] - y[i]));
            s = Math.max(s, Math.abs(y[i]));
        }
        return m / Math.max(s, 1e-12);
    }

    static Set<String> names(Model m) {
        Set<String> s = new HashSet<>();
        m.graph().nodes().forEach(n -> s.add(n.name()));
        return s;
    }
}
