package io.peft4j.devices.detect;

import io.peft4j.core.Peft4jException;
import io.peft4j.devices.profile.DeviceProfiles;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DeviceDetectorTest {

    /** A fixture tree under {@code src/test/resources/devices/}. */
    static Path fixture(String name) {
        try {
            return Path.of(DeviceDetectorTest.class.getResource("/devices/" + name).toURI());
        } catch (Exception e) {
            throw new IllegalStateException("fixture " + name + " missing", e);
        }
    }

    @ParameterizedTest
    @CsvSource({
        "orin-nano-4gb, orin-nano-4gb, 36, 6",
        "orin-nano-8gb, orin-nano-8gb, 36, 6",
        "orin-nx-8gb, orin-nx-8gb, 36, 6",
        "orin-nx-16gb, orin-nx-16gb, 36, 8",
        "agx-orin-32gb, agx-orin-32gb, 36, 8",
        "agx-orin-64gb, agx-orin-64gb, 36, 12",
        "thor, thor, 38, 14",
        "jetpack5-orin-nx-16gb, orin-nx-16gb, 35, 8",
    })
    void everyJetsonIsMatchedToItsProfile(String tree, String profile, int l4tMajor, int cores) {
        Detected d = DeviceDetector.detect(fixture(tree));
        assertTrue(d.isJetson());
        assertTrue(d.hasNvidiaGpu());
        assertEquals("aarch64", d.arch());
        assertEquals(l4tMajor, d.l4t().orElseThrow().major());
        assertEquals(cores, d.cpuCores());
        assertTrue(d.notableFeatures().contains("neon/asimd"), d.notableFeatures().toString());
        assertFalse(d.boardModel().orElseThrow().contains("\0"));
        ProfileChoice c = ProfileChoice.of(DeviceProfiles.builtIn(), d);
        assertEquals(profile, c.profile().id(), c.reason());
        assertTrue(c.reason().contains(d.boardModel().orElseThrow()), c.reason());
    }

    @Test
    void readsTheReleaseAndMemoryOfAJetson() {
        Detected d = DeviceDetector.detect(fixture("orin-nano-8gb"));
        assertEquals("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super", d.boardModel().orElseThrow());
        assertEquals("R36.4.3", d.l4t().orElseThrow().version());
        assertEquals("JetPack 6", d.l4t().orElseThrow().jetpack());
        assertEquals(7620172L * 1024, d.memTotalBytes());
        assertTrue(d.summary().contains("L4T R36.4.3 (JetPack 6)"), d.summary());
        Detected jp5 = DeviceDetector.detect(fixture("jetpack5-orin-nx-16gb"));
        assertEquals("JetPack 5", jp5.l4t().orElseThrow().jetpack());
        assertEquals("Ubuntu 20.04, glibc 2.31", jp5.l4t().orElseThrow().userland());
    }

    @Test
    void anX86BoxWithAnNvidiaGpu() {
        Detected d = DeviceDetector.detect(fixture("x86-gpu"));
        assertFalse(d.isJetson());
        assertTrue(d.hasNvidiaGpu());
        assertEquals("x86_64", d.arch());
        assertEquals(List.of("NVIDIA RTX A4000"), d.gpus());
        assertEquals("550.54.15", d.nvidiaDriver().orElseThrow());
        assertEquals(8, d.cpuCores());
        assertEquals("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", d.cpuModel().orElseThrow());
        assertTrue(d.notableFeatures().containsAll(List.of("avx2", "avx512f", "avx512_vnni")), d.notableFeatures().toString());
        assertEquals("x86-nvidia-gpu", ProfileChoice.of(DeviceProfiles.builtIn(), d).profile().id());
    }

    @Test
    void aPlainCpuBox() {
        Detected d = DeviceDetector.detect(fixture("cpu-box"));
        assertFalse(d.hasNvidiaGpu());
        assertEquals(4, d.cpuCores());
        assertTrue(d.notableFeatures().contains("avx2"));
        assertFalse(d.notableFeatures().contains("avx512f"));
        assertEquals(16303260L * 1024, d.memTotalBytes());
        ProfileChoice c = ProfileChoice.of(DeviceProfiles.builtIn(), d);
        assertEquals("cpu", c.profile().id());
        assertEquals(d.memTotalBytes() / 2, c.profile().usableBytes(d.memTotalBytes()));
    }

    @Test
    void aUserProfileForTheSameBoardWins(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("mine.json");
        Files.writeString(f, "{\"id\": \"my-nano\", \"extends\": \"orin-nano-8gb\", \"max_batch\": 2}");
        ProfileChoice c = ProfileChoice.of(DeviceProfiles.withUser(f), DeviceDetector.detect(fixture("orin-nano-8gb")));
        assertEquals("my-nano", c.profile().id());
    }

    @Test
    void anUnknownJetsonFallsBackToTheCpuProfileWithTheReason(@TempDir Path root) throws Exception {
        Files.createDirectories(root.resolve("proc/device-tree"));
        Files.write(root.resolve("proc/device-tree/model"), "NVIDIA Jetson Xavier NX Developer Kit\0".getBytes());
        ProfileChoice c = ProfileChoice.of(DeviceProfiles.builtIn(), DeviceDetector.detect(root));
        assertEquals("cpu", c.profile().id());
        assertTrue(c.reason().contains("no jetson profile's 'detect' text is in the device-tree model "
                + "'NVIDIA Jetson Xavier NX Developer Kit'"), c.reason());
    }

    @Test
    void malformedFilesAreNamed(@TempDir Path root) throws Exception {
        Files.createDirectories(root.resolve("etc"));
        Files.writeString(root.resolve("etc/nv_tegra_release"), "hello\n");
        Peft4jException e = assertThrows(Peft4jException.class, () -> DeviceDetector.detect(root));
        assertTrue(e.getMessage().contains("nv_tegra_release does not start like '# R36 (release)"), e.getMessage());
        Files.delete(root.resolve("etc/nv_tegra_release"));
        Files.createDirectories(root.resolve("proc"));
        Files.writeString(root.resolve("proc/meminfo"), "MemFree: 12 kB\n");
        e = assertThrows(Peft4jException.class, () -> DeviceDetector.detect(root));
        assertTrue(e.getMessage().contains("meminfo has no 'MemTotal: N kB' line"), e.getMessage());
        e = assertThrows(Peft4jException.class, () -> DeviceDetector.detect(root.resolve("missing")));
        assertTrue(e.getMessage().contains("detection root not found"), e.getMessage());
    }

    @Test
    void thisMachineCanBeDetected() {
        Detected d = DeviceDetector.detect();
        assertTrue(d.cpuCores() >= 1 || !Files.exists(Path.of("/proc/cpuinfo")));
        assertFalse(d.arch().isEmpty());
    }
}
