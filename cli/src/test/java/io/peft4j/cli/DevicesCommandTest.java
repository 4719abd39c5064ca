package io.peft4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DevicesCommandTest {

    @TempDir
    Path dir;

    /** A Jetson Orin Nano 8 GB on JetPack 6 as its /proc and /etc files show it. */
    private Path orinNano(String release) throws Exception {
        Path root = dir.resolve("nano");
        Files.createDirectories(root.resolve("proc/device-tree"));
        Files.createDirectories(root.resolve("etc"));
        Files.write(root.resolve("proc/device-tree/model"), "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit\0".getBytes());
        Files.writeString(root.resolve("etc/nv_tegra_release"), "# " + release + " (release), REVISION: 4.3, GCID: 1, BOARD: generic, EABI: aarch64\n");
        Files.writeString(root.resolve("proc/meminfo"), "MemTotal:        7620172 kB\nMemFree:  100 kB\n");
        Files.writeString(root.resolve("proc/cpuinfo"), "processor\t: 0\nFeatures\t: fp asimd\nCPU architecture: 8\n\n"
                + "processor\t: 1\nFeatures\t: fp asimd\nCPU architecture: 8\n");
        return root;
    }

    @Test
    void showsTheDeviceItsProfileAndWhyEachBackendIsOrIsNotUsable() throws Exception {
        CliRun r = CliRun.of("devices", "--root", orinNano("R36").toString());
        assertEquals(0, r.exitCode(), r.err());
        String out = r.out();
        assertTrue(out.contains("Detected: NVIDIA Jetson Orin Nano Engineering Reference Developer Kit, L4T R36.4.3 (JetPack 6)"), out);
        assertTrue(out.contains("7.3 GiB, 2 CPU core(s), features neon/asimd"), out);
        assertTrue(out.contains("Profile: orin-nano-8gb - NVIDIA Jetson Orin Nano 8GB"), out);
        assertTrue(out.contains("compute capability 8.7, 0 DLA core(s)"), out);
        io.peft4j.devices.trt.TensorRt.Availability trt = io.peft4j.devices.trt.TensorRt.availability();
        org.junit.jupiter.api.Assumptions.assumeFalse(trt.usable(), "TensorRT runs here; this test checks the fallback");
        assertTrue(out.contains("tensorrt      not usable: " + trt.reason()), out);
        assertTrue(out.contains("ort-cuda      not usable: this ONNX Runtime does not list the CUDA provider"), out);
        assertTrue(out.contains("ort-cpu       CHOSEN: ONNX Runtime's CPU provider runs everywhere (aarch64, 2 cores)"), out);
    }

    @Test
    void jsonForScriptsAndJetPack5IsReportedTooOld() throws Exception {
        CliRun r = CliRun.of("devices", "--root", orinNano("R35").toString(), "--json", "--list");
        assertEquals(0, r.exitCode(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        assertEquals("R35.4.3", j.at("/detected/l4t").asText());
        assertEquals("orin-nano-8gb", j.at("/profile/id").asText());
        assertEquals("ort-cpu", j.at("/chosen_backend").asText());
        JsonNode trt = j.at("/backends/0");
        assertEquals("tensorrt", trt.at("/id").asText());
        assertFalse(trt.at("/usable").asBoolean());
        assertTrue(trt.at("/reason").asText().contains("L4T R35.4.3 (JetPack 5, Ubuntu 20.04, glibc 2.31) is too old"),
                trt.toString());
        assertEquals(9, j.at("/profiles").size());
        assertEquals(6144L << 20, j.at("/profile/settings/usable_memory_bytes").asLong());
    }

    @Test
    void userProfilesAndAChosenProfile() throws Exception {
        Path f = dir.resolve("mine.json");
        Files.writeString(f, "{\"id\": \"line3\", \"extends\": \"cpu\", \"name\": \"Line 3 box\", \"threads\": 2}");
        CliRun r = CliRun.of("devices", "--root", orinNano("R36").toString(), "--profiles", f.toString(), "--profile", "line3");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("Profile: line3 - Line 3 box"), r.out());
        assertTrue(r.out().contains("why: chosen with --profile"), r.out());
    }

    @Test
    void badInputIsOneLineWithExitCode2() throws Exception {
        Path f = dir.resolve("bad.json");
        Files.writeString(f, "{\"id\": \"x\", \"extends\": \"cpu\", \"backends\": [\"openvino\"]}");
        CliRun r = CliRun.of("devices", "--profiles", f.toString());
        assertEquals(2, r.exitCode());
        assertEquals(1, r.errLines().length, r.err());
        assertTrue(r.err().contains("unknown backend 'openvino'"), r.err());
        r = CliRun.of("devices", "--profile", "orin-nano-9gb");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("unknown device profile 'orin-nano-9gb'"), r.err());
        r = CliRun.of("devices", "--root", dir.resolve("nowhere").toString());
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("detection root not found"), r.err());
    }

    @Test
    void plansTheMemoryOfAModelAndRefusesWhatDoesNotFit() throws Exception {
        Path model = dir.resolve("cnn.onnx");
        io.peft4j.core.onnx.OnnxIO.write(io.peft4j.core.testkit.TinyModels.cnn(1), model);
        CliRun r = CliRun.of("devices", "--root", orinNano("R36").toString(), "--plan", model.toString(), "--batch", "4",
                "--precision", "fp16");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("Memory plan: base package on profile 'orin-nano-8gb', batch 4, fp16"), r.out());
        assertTrue(r.out().contains("weights         0.2 KiB"), r.out());
        assertTrue(r.out().contains("workspace    1024.0 MiB"), r.out());
        assertTrue(r.out().contains("activations     4.0 KiB"), r.out());
        assertTrue(r.out().contains("of 6144.0 MiB usable: fits"), r.out());

        Path f = dir.resolve("tiny.json");
        Files.writeString(f, "{\"id\": \"tiny\", \"extends\": \"cpu\", \"memory_mib\": 2, \"usable_memory_mib\": 1}");
        r = CliRun.of("devices", "--profiles", f.toString(), "--profile", "tiny", "--plan", model.toString(), "--batch", "1000");
        assertEquals(2, r.exitCode(), r.out());
        assertTrue(r.out().contains("DOES NOT FIT"), r.out());
        assertEquals(1, r.errLines().length, r.err());
        assertTrue(r.err().contains("does not fit profile 'tiny' at batch 1000 and fp32: it needs 2.0 MiB of 1.0 MiB usable; "
                + "would fit: --batch 511: 1022.4 KiB"), r.err());

        r = CliRun.of("devices", "--profile", "cpu", "--plan", model.toString(), "--precision", "fp16");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("profile 'cpu' does not run fp16; its precisions are [fp32]"), r.err());
        r = CliRun.of("devices", "--batch", "4");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("--batch, --precision and --seq-len go with --plan PKG"), r.err());
    }

    @Test
    void helpExplainsIt() {
        CliRun r = CliRun.of("devices", "--help");
        assertEquals(0, r.exitCode());
        assertTrue(r.out().contains("--profiles=FILE"), r.out());
        assertTrue(r.out().contains("the first usable one in the profile's order"), r.out());
    }
}
