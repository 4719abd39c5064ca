package io.peft4j.cli;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.BaseFingerprint;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.testkit.OnnxChecker;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class QuickstartCommandTest {

    @TempDir
    Path dir;

    @Test
    void runsEndToEndAndLeavesRealFiles() {
        CliRun r = CliRun.of("quickstart", "--out", dir.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("differ by 0.0e+00"), r.out());
        assertTrue(r.out().matches("(?s).*\\b(8|9|10) of 10 held-out synthetic metal images classified right.*"), r.out());
        assertTrue(r.out().contains("base fingerprint verified"), r.out());
        assertTrue(r.out().contains("refused: this adapter was made for another base model"), r.out());

        Path model = dir.resolve("base/model.onnx");
        assertTrue(Files.exists(model.resolveSibling("model.onnx.data")));
        OnnxChecker.check(model);
        AdapterBundle adapter = AdapterBundle.read(dir.resolve("adapters/line-a"));
        assertTrue(adapter.requireBase(OnnxIO.read(model), "base"));
        assertEquals(BaseFingerprint.of(OnnxIO.read(model)), adapter.config().peft4j().baseFingerprint());
        assertEquals(7, adapter.byModule().size(), "five convolutions and two Linear layers");
        assertEquals("peft4j quickstart", adapter.config().peft4j().other().get("provenance").get("created_by").asText());
    }

    @Test
    void badOptionsAreRefused() {
        CliRun r = CliRun.of("quickstart", "--out", dir.toString(), "--rank", "0");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("--rank must be between 1 and 64"), r.err());
    }
}
