package io.peft4j.devices.ort;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TestAdapters;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.devices.AdapterSelection;
import io.peft4j.devices.Rows;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Merged sessions of a side package ({@link OrtBackend.Options#mergedSessions()}): runs give the
 * reference result before, while and after an adapter's merged session is built; the base model
 * gets one too; a full cache replaces only an idle session; replacing an adapter drops its session
 * and builds the new version's; closing during a build is safe. What the sessions compute is
 * checked against the unmerged reference in ONNX Runtime, not against the side graph.
 */
class MergedSessionsTest {

    private static final double TOL = 1e-5;
    private static final List<String> TARGETS = List.of("conv1", "fc1", "fc2");

    @TempDir
    static Path tmp;

    static Model base;
    static AdapterBundle a;
    static AdapterBundle b;
    static Tensor x;
    static Path pkg;

    @BeforeAll
    static void setUp() {
        base = TinyModels.cnn(1);
        a = TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 21, 0.3);
        b = TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 22, 0.3);
        x = TinyModels.input(5, 3);
        Map<String, AdapterBundle> ab = new LinkedHashMap<>();
        ab.put("a", a);
        ab.put("b", b);
        pkg = TestPackages.side(tmp.resolve("side"), base, ab, 4);
    }

    @AfterEach
    void restoreIdle() {
        OrtBackend.mergedIdleMillis = MergedSessions.IDLE_MILLIS;
    }

    private static Tensor logits(OrtBackend be, String adapter) {
        return be.run(Map.of("x", x), adapter).get("logits");
    }

    private static void assertClose(Tensor want, Tensor got, String what) {
        double d = Ort.maxRelDiff(want, got);
        assertTrue(d <= TOL, what + ": max relative difference " + d);
    }

    /** Runs {@code adapter} until its merged session is there (each run checked), at most 30 s. */
    private static void runUntilMerged(OrtBackend be, String adapter, Tensor want) throws InterruptedException {
        long until = System.nanoTime() + 30_000_000_000L;
        while (!be.hasMergedSession(adapter)) {
            assertTrue(System.nanoTime() < until, "no merged session for " + adapter + " after 30 s");
            assertClose(want, logits(be, adapter), "while the merged session of " + adapter + " is built");
            Thread.sleep(20);
        }
    }

    private static void waitFor(BooleanSupplier c, String what) throws InterruptedException {
        long until = System.nanoTime() + 30_000_000_000L;
        while (!c.getAsBoolean()) {
            assertTrue(System.nanoTime() < until, what + " after 30 s");
            Thread.sleep(20);
        }
    }

    @Test
    void adaptersAndTheBaseRunOnMergedSessionsOnceBuilt() throws Exception {
        Tensor y0 = TestPackages.reference(base, null, x);
        Tensor ya = TestPackages.reference(base, a, x);
        Tensor yb = TestPackages.reference(base, b, x);
        try (OrtBackend be = OrtBackend.open(pkg, new OrtBackend.Options(1, 1).withMergedSessions(2))) {
            assertFalse(be.hasMergedSession("a"), "nothing is built before a run asks");
            assertClose(ya, logits(be, "a"), "first run of a (side graph)");
            runUntilMerged(be, "a", ya);
            assertClose(ya, logits(be, "a"), "a on its merged session");
            assertClose(y0, logits(be, null), "first base run");
            runUntilMerged(be, null, y0);
            assertClose(y0, logits(be, null), "base on its merged session");
            // both places taken, both in use: b stays on the side graph
            for (int i = 0; i < 20; i++) {
                assertClose(yb, logits(be, "b"), "b with a full cache");
                Thread.sleep(10);
            }
            assertFalse(be.hasMergedSession("b"), "a busy session is not replaced");
            assertTrue(be.hasMergedSession("a") && be.hasMergedSession(null));
            // a batch mixing adapters: each part on what it has
            Tensor x2 = TinyModels.input(6, 3);
            Tensor mixed = be.run(Map.of("x", x2), AdapterSelection.perRow(java.util.Arrays.asList("a", null, "b")), null)
                    .outputs().get("logits");
            assertClose(Rows.gather(TestPackages.reference(base, a, x2), new int[] {0}), Rows.gather(mixed, new int[] {0}), "row 0 (a, merged)");
            assertClose(Rows.gather(TestPackages.reference(base, null, x2), new int[] {1}), Rows.gather(mixed, new int[] {1}), "row 1 (base, merged)");
            assertClose(Rows.gather(TestPackages.reference(base, b, x2), new int[] {2}), Rows.gather(mixed, new int[] {2}), "row 2 (b, side graph)");
        }
    }

    @Test
    void anIdleSessionMakesRoomAndAReplacedAdapterGetsItsOwn() throws Exception {
        OrtBackend.mergedIdleMillis = 0;
        Tensor ya = TestPackages.reference(base, a, x);
        Tensor yb = TestPackages.reference(base, b, x);
        try (OrtBackend be = OrtBackend.open(pkg, new OrtBackend.Options(1, 1).withMergedSessions(1))) {
            runUntilMerged(be, "a", ya);
            runUntilMerged(be, "b", yb);
            assertFalse(be.hasMergedSession("a"), "one place: b's session replaced a's");
            assertClose(ya, logits(be, "a"), "a after losing its session");

            // a new version of b: its old session goes with the old version
            be.register("b", a);
            assertFalse(be.hasMergedSession("b"), "the new version has no session yet");
            assertClose(ya, logits(be, "b"), "b now computes a's adapter");
            runUntilMerged(be, "b", ya);
            assertClose(ya, logits(be, "b"), "b's new version on its merged session");
            assertTrue(be.unregister("b"));
            assertFalse(be.hasMergedSession("b"));
        }
    }

    @Test
    void runsDuringBuildsAndReplacementsStayCorrectAndCloseIsSafe() throws Exception {
        OrtBackend.mergedIdleMillis = 0;
        Tensor ya = TestPackages.reference(base, a, x);
        Tensor yb = TestPackages.reference(base, b, x);
        OrtBackend be = OrtBackend.open(pkg, new OrtBackend.Options(1, 1).withMergedSessions(1));
        ExecutorService pool = Executors.newFixedThreadPool(3);
        AtomicBoolean stop = new AtomicBoolean();
        List<Future<Integer>> runners = new ArrayList<>();
        try {
            for (String name : List.of("a", "b")) {
                Tensor want = name.equals("a") ? ya : yb;
                runners.add(pool.submit(() -> {
                    int n = 0;
                    while (!stop.get()) {
                        assertClose(want, logits(be, name), name + " while sessions come and go");
                        n++;
                    }
                    return n;
                }));
            }
            waitFor(() -> be.hasMergedSession("a") || be.hasMergedSession("b"), "no merged session");
            Thread.sleep(500);
            stop.set(true);
            for (Future<Integer> f : runners) {
                assertTrue(f.get() > 0);
            }
        } finally {
            stop.set(true);
            pool.shutdownNow();
        }
        // a build queued, then the backend closed under it
        be.register("c", b);
        logits(be, "c");
        be.close();
        Peft4jException closed = assertThrows(Peft4jException.class, () -> logits(be, "a"));
        assertTrue(closed.getMessage().contains("closed"), closed.getMessage());
    }

    @Test
    void offByDefaultAndRefusedOutOfRange() {
        try (OrtBackend be = OrtBackend.open(pkg, new OrtBackend.Options(1, 1))) {
            logits(be, "a");
            assertFalse(be.hasMergedSession("a"));
            assertEquals(0, new OrtBackend.Options(1, 1).mergedSessions());
        }
        Peft4jException e = assertThrows(Peft4jException.class, () -> new OrtBackend.Options(1, 1).withMergedSessions(-1));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    }

    @Test
    void stripLeavesOtherInputsAloneAndRefusesAGraphItDidNotMake() {
        // a weight exported as an input with a default (keep_initializers_as_inputs): not an adapter input
        Model m = TinyModels.cnn(1);
        String w = m.graph().initializers().keySet().iterator().next();
        Tensor t = m.graph().initializer(w);
        m.graph().addInput(io.peft4j.core.onnx.ValueInfos.tensor(w, t.dtype(),
                java.util.Arrays.stream(t.shape()).boxed().toArray()));
        int nodes = m.graph().nodes().size();
        assertEquals(0, Peft.strip(m));
        assertTrue(m.graph().isGraphInput(w), "the weight stays an input");
        assertEquals(nodes, m.graph().nodes().size());

        // an input named as a LoRA factor whose default does not switch anything off: still read after the strip
        Model odd = TinyModels.cnn(1);
        String key = io.peft4j.core.adapter.PeftKey.of("conv1", "lora_A.weight");
        odd.graph().addInput(io.peft4j.core.onnx.ValueInfos.tensor(key, t.dtype(),
                java.util.Arrays.stream(t.shape()).boxed().toArray()));
        odd.graph().setInitializer(key, t);
        odd.graph().build("Identity").name("odd").in(key).outputs("odd_out").add();
        odd.graph().addOutput(io.peft4j.core.onnx.ValueInfos.tensor("odd_out", t.dtype(),
                java.util.Arrays.stream(t.shape()).boxed().toArray()));
        Peft4jException e = assertThrows(Peft4jException.class, () -> Peft.strip(odd));
        assertEquals(ErrorCode.GRAPH_STATE, e.code());
        assertTrue(e.getMessage().contains("not a side graph"), e.getMessage());
    }
}
