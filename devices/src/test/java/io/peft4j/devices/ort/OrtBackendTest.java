package io.peft4j.devices.ort;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TestAdapters;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.devices.AdapterInfo;
import io.peft4j.devices.AdapterSelection;
import io.peft4j.devices.InferenceResult;
import io.peft4j.devices.Rows;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The ONNX Runtime backend on packages of every mode: results against unmerged references run in
 * ONNX Runtime, adapters registered from PEFT bundles against the exporter-style
 * {@code .onnx_adapter} files, per-row selections, bad input, concurrent runs while an adapter is
 * replaced, and closing.
 */
class OrtBackendTest {

    private static final double TOL = 1e-5;
    private static final List<String> TARGETS = List.of("conv1", "fc1", "fc2");

    @TempDir
    static Path tmp;

    static Model base;
    static AdapterBundle a;
    static AdapterBundle b;
    static AdapterBundle c3;
    static Tensor x;
    static OrtBackend side;

    @BeforeAll
    static void setUp() {
        base = TinyModels.cnn(1);
        a = TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 11, 0.3);
        b = TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 12, 0.3);
        c3 = TestAdapters.random(base, AdapterConfig.lora(3, 6, TARGETS), 13, 0.3);
        x = TinyModels.input(5, 4);
        Map<String, AdapterBundle> ab = new LinkedHashMap<>();
        ab.put("a", a);
        ab.put("b", b);
        side = OrtBackend.open(TestPackages.side(tmp.resolve("side"), base, ab, 4));
    }

    @AfterAll
    static void tearDown() {
        side.close();
    }

    private static Tensor logits(OrtBackend be, String adapter) {
        return be.run(Map.of("x", x), adapter).get("logits");
    }

    private static void assertClose(Tensor want, Tensor got, String what) {
        assertArrayEquals(want.shape(), got.shape(), what);
        double d = Ort.maxRelDiff(want, got);
        assertTrue(d <= TOL, what + ": max relative difference " + d);
    }

    private static void assertCode(ErrorCode code, Executable e, String... fragments) {
        Peft4jException ex = assertThrows(Peft4jException.class, e::run);
        assertEquals(code, ex.code(), ex.getMessage());
        for (String f : fragments) {
            assertTrue(ex.getMessage().contains(f), "'" + ex.getMessage() + "' should mention '" + f + "'");
        }
    }

    @FunctionalInterface
    interface Executable {
        void run();
    }

    @Test
    void sidePackageServesBaseAndEachAdapter() {
        Tensor y0 = TestPackages.reference(base, null, x);
        Tensor ya = TestPackages.reference(base, a, x);
        Tensor yb = TestPackages.reference(base, b, x);
        assertClose(y0, logits(side, null), "no adapter = base");
        assertClose(ya, logits(side, "a"), "adapter a");
        assertClose(yb, logits(side, "b"), "adapter b");
        assertTrue(Ort.maxRelDiff(ya, yb) > 1e-2, "the adapters must differ");
        assertEquals(List.of("a", "b"), side.adapters().stream().map(AdapterInfo::name).toList());
        assertEquals(AdapterInfo.PACKAGE, side.adapters().get(0).origin());
        assertEquals("onnxruntime-cpu", side.name());
        assertEquals("[-1, 1, 8, 8]", side.info().input("x").orElseThrow().describeShape());
    }

    @Test
    void registeredBundleEqualsTheExportedAdapterFileAndTheReference() {
        try (OrtBackend be = OrtBackend.open(tmp.resolve("side"))) {
            AdapterInfo i = be.register("a2", a);
            assertEquals(AdapterInfo.REGISTERED, i.origin());
            assertEquals(1, i.version());
            assertEquals(2, i.rank());
            assertClose(logits(be, "a"), logits(be, "a2"), "registered a vs package a");
            // rank 3 below the graph's 4: padded
            be.register("c", c3);
            assertClose(TestPackages.reference(base, c3, x), logits(be, "c"), "registered rank-3 adapter");
            // replacing a package adapter bumps its version
            AdapterInfo again = be.register("a", b);
            assertEquals(2, again.version());
            assertClose(TestPackages.reference(base, b, x), logits(be, "a"), "a replaced by b's tensors");
            assertTrue(be.unregister("a2"));
            assertFalse(be.unregister("a2"));
            assertCode(ErrorCode.NOT_FOUND, () -> logits(be, "a2"), "no adapter 'a2'", "[a, b, c]");
        }
    }

    @Test
    void threadsThatSleepInsteadOfSpinningComputeTheSame() {
        assertTrue(new OrtBackend.Options(2, 1).spinning(), "ONNX Runtime's default unless told otherwise");
        try (OrtBackend be = OrtBackend.open(tmp.resolve("side"), new OrtBackend.Options(2, 1, false))) {
            assertClose(TestPackages.reference(base, a, x), logits(be, "a"), "adapter a, no spinning");
            assertClose(TestPackages.reference(base, null, x), logits(be, null), "base, no spinning");
        }
    }

    @Test
    void registrationRefusesWhatDoesNotFit() {
        Model other = TinyModels.cnn(2);
        AdapterBundle foreign = TestAdapters.random(other, AdapterConfig.lora(2, 4, TARGETS), 1, 0.3);
        assertCode(ErrorCode.FINGERPRINT_MISMATCH, () -> side.register("f", foreign), "another base model");
        AdapterBundle wide = TestAdapters.random(base, AdapterConfig.lora(8, 8, TARGETS), 3, 0.3);
        assertCode(ErrorCode.SHAPE_MISMATCH, () -> side.register("w", wide), "above the package's max rank 4", "--max-rank 8");
        AdapterBundle ia3 = TestAdapters.random(base, AdapterConfig.ia3(List.of("fc1"), List.of()), 4, 0.3);
        assertCode(ErrorCode.UNSUPPORTED, () -> side.register("i", ia3), "IA3", "one PEFT method");
        assertEquals(List.of("a", "b"), side.adapters().stream().map(AdapterInfo::name).toList(), "nothing was added");
    }

    @Test
    void registrationRefusesModulesTheSideGraphLacks(@TempDir Path dir) {
        AdapterBundle convOnly = TestAdapters.random(base, AdapterConfig.lora(2, 4, List.of("conv1")), 21, 0.3);
        try (OrtBackend be = OrtBackend.open(TestPackages.side(dir.resolve("p"), base, Map.of("c", convOnly), 2))) {
            assertCode(ErrorCode.NOT_FOUND, () -> be.register("full", a), "fc1", "does not take as an input");
            assertTrue(be.adapters().stream().noneMatch(i -> i.name().equals("full")));
        }
    }

    @Test
    void perRowSelectionPutsEachRowsAdapterResultInPlace() {
        List<String> rows = Arrays.asList("b", null, "a", "b");
        Tensor got = side.run(Map.of("x", x), AdapterSelection.perRow(rows), Set.of()).outputs().get("logits");
        Map<String, Tensor> whole = new LinkedHashMap<>();
        whole.put("a", logits(side, "a"));
        whole.put("b", logits(side, "b"));
        Tensor y0 = logits(side, null);
        for (int r = 0; r < rows.size(); r++) {
            Tensor want = Rows.gather(rows.get(r) == null ? y0 : whole.get(rows.get(r)), new int[] {r});
            assertClose(want, Rows.gather(got, new int[] {r}), "row " + r);
        }
        assertCode(ErrorCode.SHAPE_MISMATCH, () -> side.run(Map.of("x", x), AdapterSelection.perRow(List.of("a")), Set.of()),
                "1 adapters for a batch of 4");
    }

    @Test
    void multiPackageRunsOneAdapterPerRowAndRefusesRegistration(@TempDir Path dir) {
        Map<String, AdapterBundle> ab = new LinkedHashMap<>();
        ab.put("a", a);
        ab.put("b", b);
        try (OrtBackend be = OrtBackend.open(TestPackages.multi(dir.resolve("m"), base, ab, 2))) {
            assertTrue(be.info().input("adapter_index").isEmpty(), "the index is not a caller input");
            Tensor got = be.run(Map.of("x", x), AdapterSelection.perRow(Arrays.asList("a", "b", null, "a")), Set.of())
                    .outputs().get("logits");
            Tensor ya = TestPackages.reference(base, a, x);
            Tensor yb = TestPackages.reference(base, b, x);
            Tensor y0 = TestPackages.reference(base, null, x);
            Tensor[] want = {ya, yb, y0, ya};
            for (int r = 0; r < 4; r++) {
                assertClose(Rows.gather(want[r], new int[] {r}), Rows.gather(got, new int[] {r}), "row " + r);
            }
            assertClose(yb, logits(be, "b"), "whole batch b");
            assertCode(ErrorCode.UNSUPPORTED, () -> be.register("c", c3), "multi package", "stacked");
            assertCode(ErrorCode.NOT_FOUND, () -> logits(be, "zz"), "no adapter 'zz'");
        }
    }

    @Test
    void mergedPackageRunsItsAdapterOnly(@TempDir Path dir) {
        try (OrtBackend be = OrtBackend.open(TestPackages.merged(dir.resolve("g"), base, "a", a))) {
            assertClose(TestPackages.reference(base, a, x), logits(be, "a"), "merged a");
            assertClose(logits(be, "a"), logits(be, null), "merged without a name");
            assertCode(ErrorCode.UNSUPPORTED, () -> be.register("b", b), "merged");
        }
    }

    @Test
    void badInputsAreRefusedWithTheReason() {
        assertCode(ErrorCode.NOT_FOUND, () -> side.run(Map.of("y", x), null), "no input 'y'");
        assertCode(ErrorCode.NOT_FOUND, () -> side.run(Map.of(), null), "needs input [x]");
        assertCode(ErrorCode.SHAPE_MISMATCH, () -> side.run(Map.of("x", x.to(DataType.DOUBLE)), null), "takes FLOAT, got DOUBLE");
        assertCode(ErrorCode.SHAPE_MISMATCH, () -> side.run(Map.of("x", Tensor.zeros(DataType.FLOAT, 2, 1, 8, 9)), null),
                "[-1, 1, 8, 8]", "[2, 1, 8, 9]");
        assertCode(ErrorCode.NOT_FOUND, () -> logits(side, "nope"), "no adapter 'nope'", "[a, b]");
        assertCode(ErrorCode.NOT_FOUND, () -> side.run(Map.of("x", x), AdapterSelection.none(), Set.of("probs")),
                "no output 'probs'", "[logits]");
        InferenceResult r = side.run(Map.of("x", x), AdapterSelection.of("a"), Set.of("logits"));
        assertEquals(Set.of("logits"), r.outputs().keySet());
        assertEquals(Map.of("a", 1L), r.adapterVersions());
    }

    @Test
    void runsDuringReplacementUseOneVersionEach(@TempDir Path dir) throws Exception {
        Tensor ya = TestPackages.reference(base, a, x);
        Tensor yb = TestPackages.reference(base, b, x);
        try (OrtBackend be = OrtBackend.open(tmp.resolve("side"), new OrtBackend.Options(1, 1))) {
            be.register("hot", a);   // version 1 = a, then b, a, b, ...: odd versions are a
            AtomicBoolean stop = new AtomicBoolean();
            ExecutorService pool = Executors.newFixedThreadPool(4);
            try {
                List<Future<Integer>> runners = new ArrayList<>();
                for (int t = 0; t < 3; t++) {
                    runners.add(pool.submit(() -> {
                        int n = 0;
                        while (!stop.get()) {
                            InferenceResult r = be.run(Map.of("x", x), AdapterSelection.of("hot"), Set.of());
                            long v = r.adapterVersions().get("hot");
                            assertClose(v % 2 == 1 ? ya : yb, r.outputs().get("logits"), "version " + v);
                            n++;
                        }
                        return n;
                    }));
                }
                Future<Integer> swapper = pool.submit(() -> {
                    int k = 0;
                    for (; k < 30; k++) {
                        be.register("hot", k % 2 == 0 ? b : a);
                    }
                    return k;
                });
                assertEquals(30, swapper.get(60, TimeUnit.SECONDS));
                stop.set(true);
                int runs = 0;
                for (Future<Integer> f : runners) {
                    runs += f.get(60, TimeUnit.SECONDS);
                }
                assertTrue(runs > 0, "runs happened");
                assertEquals(31, be.adapters().stream().filter(i -> i.name().equals("hot")).findFirst().orElseThrow().version());
            } finally {
                pool.shutdownNow();
            }
        }
    }

    @Test
    void closeIsIdempotentAndRefusesLaterRuns() {
        OrtBackend be = OrtBackend.open(tmp.resolve("side"));
        assertClose(logits(side, "a"), logits(be, "a"), "second backend on the same package");
        be.close();
        be.close();
        assertTrue(be.isClosed());
        assertCode(ErrorCode.INVALID_ARGUMENT, () -> logits(be, "a"), "closed");
        assertCode(ErrorCode.INVALID_ARGUMENT, () -> be.register("z", a), "closed");
    }

    @Test
    void bareModelFileRunsWithoutAdapters(@TempDir Path dir) {
        Path file = dir.resolve("m.onnx");
        io.peft4j.core.onnx.OnnxIO.write(base, file);
        try (OrtBackend be = OrtBackend.open(file)) {
            assertClose(TestPackages.reference(base, null, x), logits(be, null), "bare model");
            assertCode(ErrorCode.INVALID_ARGUMENT, () -> logits(be, "a"), "base model without adapters");
            assertTrue(be.info().manifest().isEmpty());
        }
        assertCode(ErrorCode.IO, () -> OrtBackend.open(dir.resolve("missing.onnx")), "model not found");
    }
}
