package io.peft4j.devices.select;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.devices.InferenceBackend;
import io.peft4j.devices.detect.Detected;
import io.peft4j.devices.detect.DeviceDetector;
import io.peft4j.devices.profile.DeviceProfile;
import io.peft4j.devices.profile.DeviceProfiles;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BackendSelectorTest {

    private static Detected fixture(String name) throws Exception {
        return DeviceDetector.detect(Path.of(BackendSelectorTest.class.getResource("/devices/" + name).toURI()));
    }

    private static final DeviceProfiles PROFILES = DeviceProfiles.builtIn();

    @Test
    void aCpuBoxGetsOrtCpuWithoutFallback() throws Exception {
        Selection s = BackendSelector.standard().select(PROFILES.get("cpu"), fixture("cpu-box"));
        assertEquals("ort-cpu", s.chosen().id());
        assertFalse(s.fellBack());
        assertTrue(s.describe().startsWith("backend 'ort-cpu' for profile 'cpu': ONNX Runtime's CPU provider"), s.describe());
    }

    @Test
    void aJetsonWithoutTheGpuLibrariesFallsBackToTheCpuAndSaysWhy() throws Exception {
        io.peft4j.devices.trt.TensorRt.Availability trt = io.peft4j.devices.trt.TensorRt.availability();
        org.junit.jupiter.api.Assumptions.assumeFalse(trt.usable(), "TensorRT runs on this machine; this test checks the "
                + "fallback where it cannot");
        Selection s = BackendSelector.standard().select(PROFILES.get("orin-nano-8gb"), fixture("orin-nano-8gb"));
        assertEquals("ort-cpu", s.chosen().id());
        assertTrue(s.fellBack());
        assertEquals(List.of("tensorrt", "ort-tensorrt", "ort-cuda"), s.skipped().stream().map(Selection.Skipped::backend).toList());
        assertEquals(trt.reason(), s.skipped().get(0).reason(), "the TensorRT probe's own reason");
        assertTrue(s.skipped().get(1).reason().contains("does not list the TensorRT provider"), s.skipped().get(1).reason());
        assertTrue(s.skipped().get(2).reason().contains("does not list the CUDA provider"), s.skipped().get(2).reason());
        assertTrue(s.describe().contains("fell back past 'tensorrt' (" + trt.reason().substring(0, 20)), s.describe());
    }

    @Test
    void jetPack5IsTooOldForTheGpuBackends() throws Exception {
        Detected jp5 = fixture("jetpack5-orin-nx-16gb");
        Selection s = BackendSelector.standard().select(PROFILES.get("orin-nx-16gb"), jp5);
        assertEquals("ort-cpu", s.chosen().id());
        String why = s.skipped().get(0).reason();
        assertTrue(why.contains("L4T R35.4.1 (JetPack 5, Ubuntu 20.04, glibc 2.31) is too old: TensorRT (JavaCPP presets) "
                + "needs L4T R36 or newer (JetPack 6, Ubuntu 22.04, glibc 2.35)"), why);
        // ONNX Runtime's GPU providers are judged by what the ONNX Runtime on the classpath lists
        assertTrue(s.skipped().get(2).reason().contains("does not list the CUDA provider"), s.skipped().get(2).reason());
        // the check comes before the classpath: the libraries could not load there anyway
        GatedProvider withLibs = new GatedProvider("tensorrt", "TensorRT", d -> true, "missing",
                id -> Optional.of(new FakeProvider(id, Availability.usable("fake"))), true);
        assertFalse(withLibs.availability(PROFILES.get("orin-nx-16gb"), jp5).usable());
        assertTrue(withLibs.availability(PROFILES.get("orin-nx-16gb"), fixture("orin-nx-16gb")).usable());
    }

    @Test
    void gpuBackendsNeedAGpu() throws Exception {
        Availability a = GatedProvider.tensorRt().availability(PROFILES.get("x86-nvidia-gpu"), fixture("cpu-box"));
        assertFalse(a.usable());
        assertTrue(a.reason().startsWith("no NVIDIA GPU found"), a.reason());
        a = GatedProvider.ortCuda().availability(PROFILES.get("x86-nvidia-gpu"), fixture("x86-gpu"));
        assertFalse(a.usable());
        assertTrue(a.reason().contains("does not list the CUDA provider"), a.reason());
    }

    @Test
    void aPluggedInImplementationDecidesAndOpens(@TempDir Path dir) throws Exception {
        FakeProvider impl = new FakeProvider("tensorrt", Availability.usable("engine builder ready"));
        GatedProvider trt = new GatedProvider("tensorrt", "TensorRT", d -> true, "missing", id -> Optional.of(impl), true);
        BackendSelector sel = new BackendSelector(List.of(trt, new OrtCpuProvider()));
        Selection s = sel.select(PROFILES.get("orin-nano-8gb"), fixture("orin-nano-8gb"));
        assertEquals("tensorrt", s.chosen().id());
        assertEquals("engine builder ready", s.reason());
        assertFalse(s.fellBack());
        Path model = dir.resolve("m.onnx");
        OnnxIO.write(TinyModels.cnn(1), model);
        try (InferenceBackend b = s.open(model, 0)) {
            assertEquals(model, impl.opened.get());
            assertEquals("onnxruntime-cpu", b.name());
        }
        GatedProvider none = new GatedProvider("tensorrt", "TensorRT", d -> true, "missing", id -> Optional.empty(), true);
        Availability a = none.availability(PROFILES.get("orin-nano-8gb"), fixture("orin-nano-8gb"));
        assertTrue(a.reason().contains("no implementation of 'tensorrt' is plugged in"), a.reason());
    }

    @Test
    void theTensorRtBackendIsPluggedInWithTheProfilesSettings() {
        BackendProvider p = GatedProvider.pluggedIn("tensorrt").orElseThrow();
        assertTrue(p instanceof io.peft4j.devices.trt.TensorRtProvider, p.getClass().getName());
        DeviceProfile nano = PROFILES.get("orin-nano-8gb");
        io.peft4j.devices.trt.EngineSettings es = io.peft4j.devices.trt.TensorRtProvider.settings(nano);
        assertEquals(nano.precisions().contains("fp16") ? "fp16" : "fp32", es.precision());
        assertEquals(nano.maxBatch(), es.maxBatch());
        assertEquals(Math.min(8, nano.maxBatch()), es.optBatch());
        assertEquals(nano.workspaceMiB() << 20, es.workspaceBytes());
        assertEquals(nano.engineCachePath(), es.cacheDir());
        assertTrue(GatedProvider.pluggedIn("ort-cuda").orElseThrow() instanceof io.peft4j.devices.ort.OrtGpuProvider.Cuda);
        BackendProvider ortTrt = GatedProvider.pluggedIn("ort-tensorrt").orElseThrow();
        io.peft4j.devices.ort.OrtBackend.GpuProvider g = ((io.peft4j.devices.ort.OrtGpuProvider) ortTrt).gpu(nano);
        assertEquals("tensorrt", g.kind());
        assertEquals(nano.engineCachePath(), g.engineCache());
        assertEquals(nano.maxBatch(), g.maxBatch());
    }

    @Test
    void ortCpuOpensWithTheProfilesThreads(@TempDir Path dir) throws Exception {
        Path model = dir.resolve("m.onnx");
        OnnxIO.write(TinyModels.cnn(1), model);
        Selection s = BackendSelector.standard().select(PROFILES.get("cpu"), fixture("cpu-box"));
        try (InferenceBackend b = s.open(model, 1)) {
            assertEquals("onnxruntime-cpu", b.name());
            assertEquals(3, b.run(java.util.Map.of("x", TinyModels.input(1, 2)), null).get("logits").shape()[1]);
        }
    }

    @Test
    void noUsableBackendIsAnErrorWithEveryReason(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("p.json");
        Files.writeString(f, "{\"id\": \"gpu-only\", \"extends\": \"x86-nvidia-gpu\", \"backends\": [\"tensorrt\", \"ort-cuda\"]}");
        DeviceProfile p = DeviceProfiles.withUser(f).get("gpu-only");
        Peft4jException e = assertThrows(Peft4jException.class, () -> BackendSelector.standard().select(p, fixture("cpu-box")));
        assertEquals(Peft4jException.ErrorCode.UNSUPPORTED, e.code());
        assertTrue(e.getMessage().startsWith("no backend of profile 'gpu-only' is usable here: tensorrt: no NVIDIA GPU found"),
                e.getMessage());
        assertTrue(e.getMessage().contains("; ort-cuda: no NVIDIA GPU found"), e.getMessage());
    }

    @Test
    void theReportListsEveryBackend() throws Exception {
        List<BackendSelector.Entry> r = BackendSelector.standard().report(PROFILES.get("cpu"), fixture("cpu-box"));
        assertEquals(List.of("ort-cpu", "tensorrt", "ort-tensorrt", "ort-cuda"), r.stream().map(BackendSelector.Entry::backend).toList());
        assertTrue(r.get(0).usable() && r.get(0).inProfile());
        assertTrue(r.stream().skip(1).noneMatch(e -> e.usable() || e.inProfile()));
    }

    @Test
    void providerIdsAreDistinct() {
        assertThrows(Peft4jException.class, () -> new BackendSelector(List.of(new OrtCpuProvider(), new OrtCpuProvider())));
    }

    /** A provider that reports a fixed availability and opens with ONNX Runtime on the CPU. */
    private static final class FakeProvider implements BackendProvider {
        final String id;
        final Availability availability;
        final AtomicReference<Path> opened = new AtomicReference<>();

        FakeProvider(String id, Availability availability) {
            this.id = id;
            this.availability = availability;
        }

        @Override
        public String id() {
            return id;
        }

        @Override
        public Availability availability(DeviceProfile profile, Detected detected) {
            return availability;
        }

        @Override
        public InferenceBackend open(Path modelOrPackage, DeviceProfile profile, int threads) {
            opened.set(modelOrPackage);
            return new OrtCpuProvider().open(modelOrPackage, profile, threads);
        }
    }
}
