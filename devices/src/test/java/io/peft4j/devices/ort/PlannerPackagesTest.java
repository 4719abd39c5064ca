package io.peft4j.devices.ort;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.TestAdapters;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.devices.plan.MemoryPlan;
import io.peft4j.devices.plan.MemoryPlanner;
import io.peft4j.devices.profile.DeviceProfiles;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The memory planner on side and multi packages: how it counts adapters, and what it suggests. */
class PlannerPackagesTest {

    private static final List<String> TARGETS = List.of("conv1", "fc1", "fc2");

    @TempDir
    Path tmp;

    private Map<String, AdapterBundle> adapters(Model base) {
        Map<String, AdapterBundle> ab = new LinkedHashMap<>();
        ab.put("a", TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 11, 0.3));
        ab.put("b", TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 12, 0.3));
        ab.put("c", TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 13, 0.3));
        return ab;
    }

    @Test
    void sidePackagesHoldOneSetOfAdapterInputsPerAdapter() throws Exception {
        Model base = TinyModels.cnn(1);
        Path pkg = TestPackages.side(tmp.resolve("side"), base, adapters(base), 4);
        Graph g = OnnxIO.read(pkg.resolve("model.onnx")).graph();
        long perAdapter = 0;
        long all = 0;
        for (Map.Entry<String, Tensor> e : g.initializers().entrySet()) {
            all += e.getValue().byteSize();
            if (g.isGraphInput(e.getKey())) {
                perAdapter += e.getValue().byteSize();
            }
        }
        assertTrue(perAdapter > 0);
        MemoryPlan p = MemoryPlanner.of(pkg, 1).plan(DeviceProfiles.builtIn().get("orin-nano-4gb"), 0, 4, "fp32");
        assertEquals("side", p.mode());
        assertEquals(3 * perAdapter, p.adapters());
        assertEquals(all, p.weights());
        assertEquals(256L << 20, p.workspace());
        assertTrue(p.adapterNote().contains("3 adapter(s)") && p.adapterNote().contains("max rank 4"), p.adapterNote());
        assertTrue(p.fits());
    }

    @Test
    void multiPackagesCountTheirStackedAdaptersAndSuggestMergedOnes() throws Exception {
        Model base = TinyModels.cnn(1);
        Path pkg = TestPackages.multi(tmp.resolve("multi"), base, adapters(base), 4);
        long baseWeights = base.graph().initializers().values().stream().mapToLong(Tensor::byteSize).sum();
        MemoryPlanner planner = MemoryPlanner.of(pkg, 1);
        MemoryPlan p = planner.plan(DeviceProfiles.builtIn().get("cpu"), 1L << 30, 1, "fp32");
        assertEquals("multi", p.mode());
        assertTrue(p.adapters() > 0);
        assertTrue(p.weights() >= baseWeights, p.weights() + " vs " + baseWeights);
        Path f = tmp.resolve("tiny.json");
        Files.writeString(f, "{\"id\": \"tiny\", \"extends\": \"cpu\", \"memory_mib\": 1, \"usable_memory_percent\": 1}");
        MemoryPlan tight = planner.plan(DeviceProfiles.withUser(f).get("tiny"), 0, 64, "fp32");
        assertFalse(tight.fits());
        assertTrue(tight.suggestions().stream().anyMatch(s -> s.startsWith("a merged package per adapter instead of multi")),
                tight.suggestions().toString());
    }
}
