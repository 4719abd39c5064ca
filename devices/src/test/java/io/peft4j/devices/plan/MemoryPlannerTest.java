package io.peft4j.devices.plan;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.devices.profile.DeviceProfile;
import io.peft4j.devices.profile.DeviceProfiles;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MemoryPlannerTest {

    @TempDir
    static Path dir;

    static MemoryPlanner planner;
    static DeviceProfiles profiles;

    /** The tiny CNN: 91 fp32 weights; its widest point is Conv → Relu, 2 × [B,4,8,8] fp32 = 2048 B bytes. */
    @BeforeAll
    static void setUp() throws Exception {
        Path model = dir.resolve("cnn.onnx");
        OnnxIO.write(TinyModels.cnn(3), model);
        planner = MemoryPlanner.of(model, 1);
        Path f = dir.resolve("small.json");
        Files.writeString(f, """
                [{"id": "small", "name": "1 MiB box", "kind": "cpu", "memory_mib": 2, "usable_memory_mib": 1,
                  "precisions": ["fp32", "fp16"], "backends": ["ort-cpu"], "max_batch": 64, "workspace_mib": 0,
                  "engine_cache_dir": "/tmp", "threads": 1},
                 {"id": "small-fp32", "extends": "small", "precisions": ["fp32"]},
                 {"id": "small-ws", "extends": "small", "workspace_mib": 1}]""");
        profiles = DeviceProfiles.withUser(f);
    }

    @Test
    void activationsAreThePeakOfLiveValues() {
        assertEquals(2048L * 8, planner.activations().peakBytes(8, 1.0));
        assertEquals(2048L * 3, planner.activations().peakBytes(3, 1.0));
        assertEquals(1024L * 8, planner.activations().peakBytes(8, 0.5));
        assertEquals(9, planner.activations().values());   // the input and the values of the 8 nodes
    }

    @Test
    void aPlanAddsWeightsActivationsWorkspaceAndAdapters() {
        MemoryPlan p = planner.plan(profiles.get("small"), 0, 8, "fp32");
        assertEquals(91 * 4, p.weights());
        assertEquals(2048L * 8, p.activations());
        assertEquals(0, p.workspace());
        assertEquals(0, p.adapters());
        assertEquals(91 * 4 + 2048L * 8, p.total());
        assertEquals(1L << 20, p.usable());
        assertTrue(p.fits());
        assertTrue(p.suggestions().isEmpty());
        assertTrue(p.describe().contains("fits"), p.describe());
        MemoryPlan h = planner.plan(profiles.get("small"), 0, 8, "fp16");
        assertEquals(91 * 2, h.weights());
        assertEquals(1024L * 8, h.activations());
        MemoryPlan ws = planner.plan(profiles.get("small-ws"), 0, 8, "fp32");
        assertEquals(1L << 20, ws.workspace());
        assertFalse(ws.fits());
    }

    @Test
    void whenItDoesNotFitItSuggestsFp16AndTheLargestBatchThatFits() {
        MemoryPlan p = planner.plan(profiles.get("small"), 0, 1000, "fp32");
        assertFalse(p.fits());
        // 364 + 2048 b <= 1 MiB  ->  b = 511 at fp32; at fp16 182 + 1024 * 1000 fits
        assertEquals("--precision fp16: 1000.2 KiB", p.suggestions().get(0));
        assertTrue(p.suggestions().get(1).startsWith("--batch 511: "), p.suggestions().toString());
        assertTrue(planner.plan(profiles.get("small"), 0, 511, "fp32").fits());
        assertFalse(planner.plan(profiles.get("small"), 0, 512, "fp32").fits());
        assertTrue(p.warnings().get(0).contains("batch 1000 is above the profile's max batch 64"), p.warnings().toString());
        assertTrue(p.describe().contains("DOES NOT FIT"), p.describe());
        assertTrue(p.describe().contains("would fit: --batch 511"), p.describe());
        MemoryPlan q = planner.plan(profiles.get("small-fp32"), 0, 1000, "fp32");
        assertTrue(q.suggestions().get(0).startsWith("--batch 511"), q.suggestions().toString());
        MemoryPlan none = planner.plan(profiles.get("small-ws"), 0, 4, "fp32");
        assertTrue(none.suggestions().stream().anyMatch(s -> s.startsWith("no batch size fits at fp32 (even batch 1 needs")),
                none.suggestions().toString());
    }

    @Test
    void hostProfilesUseTheHostsMemory() {
        MemoryPlan p = planner.plan(DeviceProfiles.builtIn().get("cpu"), 8L << 30, 1, "fp32");
        assertEquals(4L << 30, p.usable());
    }

    @Test
    void badRequestsAreRefused() {
        DeviceProfile cpu = DeviceProfiles.builtIn().get("cpu");
        Peft4jException e = assertThrows(Peft4jException.class, () -> planner.plan(cpu, 1L << 30, 1, "fp16"));
        assertTrue(e.getMessage().contains("profile 'cpu' does not run fp16; its precisions are [fp32]"), e.getMessage());
        e = assertThrows(Peft4jException.class, () -> planner.plan(cpu, 1L << 30, 0, "fp32"));
        assertTrue(e.getMessage().contains("batch size must be at least 1"), e.getMessage());
        e = assertThrows(Peft4jException.class, () -> planner.plan(cpu, 1L << 30, 1, "fp64"));
        assertTrue(e.getMessage().contains("unknown precision 'fp64'"), e.getMessage());
        e = assertThrows(Peft4jException.class, () -> MemoryPlanner.of(dir.resolve("nope.onnx"), 1));
        assertTrue(e.getMessage().contains("model not found"), e.getMessage());
    }
}
