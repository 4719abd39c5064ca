package io.peft4j.runtime;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TestAdapters;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.devices.select.Selection;
import io.peft4j.exporter.ExportOptions;
import io.peft4j.exporter.Exporter;
import io.peft4j.exporter.NamedAdapter;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code peft4j.device}: the backend comes from the device profile's order, with the reasons for a fallback. */
class DeviceSelectionTest {

    @TempDir
    static Path tmp;

    static Path repo;
    static Model base;
    static Path nano;

    @BeforeAll
    static void setUp() throws Exception {
        repo = tmp.resolve("repo");
        base = TinyModels.cnn(1);
        Exporter.export(base, List.of(new NamedAdapter("a", TestAdapters.random(base, AdapterConfig.lora(2, 4,
                List.of("conv1", "fc1")), 11, 0.3))), ExportOptions.of(Manifest.Mode.merged), repo.resolve("m"));
        // an Orin Nano 8 GB on JetPack 6, as its /proc and /etc show it
        nano = tmp.resolve("nano");
        Files.createDirectories(nano.resolve("proc/device-tree"));
        Files.createDirectories(nano.resolve("etc"));
        Files.write(nano.resolve("proc/device-tree/model"), "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit\0".getBytes());
        Files.writeString(nano.resolve("etc/nv_tegra_release"), "# R36 (release), REVISION: 4.3, GCID: 1, BOARD: generic\n");
        Files.writeString(nano.resolve("proc/meminfo"), "MemTotal:        7620172 kB\n");
    }

    @Test
    void theDetectedProfileFallsBackToTheCpuWithItsReasonsAndServes() throws Exception {
        try (Peft4jServer s = Peft4jServer.start(Peft4jServer.Options.of(repo).withProperty("peft4j.device", "auto")
                .withProperty("peft4j.device-root", nano.toString()))) {
            ModelRepository r = s.context().getBean(ModelRepository.class);
            Selection sel = r.selection().orElseThrow();
            assertEquals("orin-nano-8gb", sel.profile().id());
            assertEquals("ort-cpu", sel.chosen().id());
            assertTrue(sel.fellBack());
            assertEquals(List.of("tensorrt", "ort-tensorrt", "ort-cuda"), sel.skipped().stream().map(Selection.Skipped::backend).toList());
            io.peft4j.devices.trt.TensorRt.Availability trt = io.peft4j.devices.trt.TensorRt.availability();
            org.junit.jupiter.api.Assumptions.assumeFalse(trt.usable(), "TensorRT runs here; this test checks the fallback");
            assertTrue(sel.describe().contains("fell back past 'tensorrt' (" + trt.reason() + ")"), sel.describe());
            Tensor x = TinyModels.input(3, 2);
            Http http = new Http(s.uri(), null);
            Http.Reply reply = http.post("/v2/models/m/infer", Http.inferBody("x", x, Map.of(), null));
            assertEquals(200, reply.status(), reply.toString());
            Tensor direct = r.get("m").run(Map.of("x", x), (String) null).get("logits");
            assertTrue(Ort.maxRelDiff(Http.output(reply, 0), direct) < 1e-6);
        }
    }

    @Test
    void aNamedProfileAndNoneAtAllKeepTheCpuBackend() {
        try (Peft4jServer s = Peft4jServer.start(Peft4jServer.Options.of(repo).withProperty("peft4j.device", "cpu"))) {
            ModelRepository r = s.context().getBean(ModelRepository.class);
            assertEquals("cpu", r.profile().orElseThrow().id());
            assertTrue(!r.selection().orElseThrow().fellBack());
            assertEquals("onnxruntime-cpu", r.get("m").name());
        }
        try (Peft4jServer s = Peft4jServer.start(Peft4jServer.Options.of(repo))) {
            ModelRepository r = s.context().getBean(ModelRepository.class);
            assertTrue(r.selection().isEmpty());
            assertEquals("onnxruntime-cpu", r.get("m").name());
        }
    }

    @Test
    void badDeviceSettingsStopTheStart() throws Exception {
        Peft4jException e = assertThrows(Peft4jException.class, () -> Peft4jServer.start(Peft4jServer.Options.of(repo)
                .withProperty("peft4j.device", "orin-nano-9gb")));
        assertTrue(e.getMessage().contains("unknown device profile 'orin-nano-9gb'"), e.getMessage());
        Path gpuOnly = tmp.resolve("gpu-only.json");
        Files.writeString(gpuOnly, "{\"id\": \"gpu-only\", \"extends\": \"orin-nano-8gb\", \"backends\": [\"tensorrt\"]}");
        e = assertThrows(Peft4jException.class, () -> Peft4jServer.start(Peft4jServer.Options.of(repo)
                .withProperty("peft4j.device", "gpu-only").withProperty("peft4j.profiles", gpuOnly.toString())
                .withProperty("peft4j.device-root", nano.toString())));
        assertTrue(e.getMessage().contains("no backend of profile 'gpu-only' is usable here: tensorrt: "), e.getMessage());
        e = assertThrows(Peft4jException.class, () -> Peft4jServer.start(Peft4jServer.Options.of(repo)
                .withProperty("peft4j.profiles", gpuOnly.toString())));
        assertTrue(e.getMessage().contains("go with peft4j.device"), e.getMessage());
    }
}
