package io.peft4j.core.pkg;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.adapter.BaseFingerprint;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ModelPackageTest {

    @TempDir
    Path dir;

    private static Manifest manifest(Manifest.Mode mode, List<Manifest.Adapter> adapters, String merged, int maxRank) {
        return new Manifest(1, mode, "model.onnx", BaseFingerprint.of(TinyModels.cnn(1)), "fp32",
                List.of(new Manifest.Value("x", "FLOAT", List.of("batch", 1, 8, 8))),
                List.of(new Manifest.Value("logits", "FLOAT", List.of("batch", 3))), maxRank, adapters, merged,
                List.of("a", "b", "c"), new Manifest.Preprocessing("x", 8, 8, 1, List.of(0.5), List.of(0.25)),
                Manifest.provenance(Map.of("toolkit", "peft4j test")));
    }

    private ModelPackage writeBase(Path target) {
        try (ModelPackage.Writer w = ModelPackage.writer(target)) {
            OnnxIO.write(TinyModels.cnn(1), w.stage().resolve("model.onnx"));
            return w.commit(manifest(Manifest.Mode.base, List.of(), null, 0));
        }
    }

    @Test
    void writesOpensAndRoundTripsTheManifest() throws IOException {
        ModelPackage p = writeBase(dir.resolve("pkg"));
        ModelPackage back = ModelPackage.open(dir.resolve("pkg"));
        assertEquals(p.manifest(), back.manifest());
        String json = Files.readString(dir.resolve("pkg/manifest.json"));
        assertTrue(json.contains("\"format_version\" : 1") && json.contains("\"base_fingerprint\""), json);
        Model m = back.readModel();
        assertEquals(BaseFingerprint.of(TinyModels.cnn(1)), BaseFingerprint.of(m));
        assertEquals(List.of("pkg"), listNames(dir), "no staging directories left");
    }

    @Test
    void replacingAPackageIsAllOrNothing() throws IOException {
        writeBase(dir.resolve("pkg"));
        String before = Files.readString(dir.resolve("pkg/manifest.json"));
        // a failing export: the staging directory goes, the old package stays
        assertThrows(Peft4jException.class, () -> {
            try (ModelPackage.Writer w = ModelPackage.writer(dir.resolve("pkg"))) {
                OnnxIO.write(TinyModels.cnn(2), w.stage().resolve("model.onnx"));
                w.commit(manifest(Manifest.Mode.side, List.of(new Manifest.Adapter("a", 0, "adapters/a", null, "LORA", 4)), null, 4));
            }
        });
        assertEquals(before, Files.readString(dir.resolve("pkg/manifest.json")));
        assertEquals(List.of("pkg"), listNames(dir));
        // a good one replaces it whole
        writeBase(dir.resolve("pkg"));
        assertEquals(List.of("pkg"), listNames(dir));
        // a directory that is not a package is never replaced
        Files.createDirectories(dir.resolve("photos"));
        Files.writeString(dir.resolve("photos/cat.jpg"), "meow");
        Peft4jException e = assertThrows(Peft4jException.class, () -> ModelPackage.writer(dir.resolve("photos")));
        assertTrue(e.getMessage().contains("not a model package"), e.getMessage());
        assertTrue(Files.exists(dir.resolve("photos/cat.jpg")));
    }

    @Test
    void invalidManifestsAreRefused() throws IOException {
        writeBase(dir.resolve("pkg"));
        Path mf = dir.resolve("pkg/manifest.json");
        String good = Files.readString(mf);
        assertManifestError(mf, good.replace("\"base\"", "\"magic\""), "magic");
        assertManifestError(mf, good.replace("\"model.onnx\"", "\"../../etc/passwd\""), "inside the package");
        assertManifestError(mf, good.replace("\"model.onnx\"", "\"/etc/passwd\""), "must be relative");
        assertManifestError(mf, good.replace("\"format_version\" : 1", "\"format_version\" : 7"), "format_version 7");
        assertManifestError(mf, good.replace("{", "{\"surprise\": 1, "), "surprise");
        assertManifestError(mf, good.replace("\"fp32\"", "\"int3\""), "precision");
        assertManifestError(mf, "{ not json", "not a valid manifest");
        assertManifestError(mf, good.replace("\"model.onnx\"", "\"other.onnx\""), "other.onnx is missing");
        Files.writeString(mf, good);
        assertTrue(ModelPackage.isPackage(dir.resolve("pkg")));
        Peft4jException e = assertThrows(Peft4jException.class, () -> ModelPackage.open(dir.resolve("nothing")));
        assertEquals(ErrorCode.IO, e.code());
    }

    @Test
    void manifestRulesHold() {
        Manifest.Adapter a = new Manifest.Adapter("line-a", 1, "adapters/line-a", "adapters/line-a.onnx_adapter", "LORA", 8);
        Manifest.Adapter b = new Manifest.Adapter("line-b", 2, "adapters/line-b", null, "LORA", 4);
        assertEquals("line-b", manifest(Manifest.Mode.multi, List.of(a, b), null, 8).adapter("line-b").name());
        assertError(() -> manifest(Manifest.Mode.multi, List.of(a, new Manifest.Adapter("line-b", 3, "adapters/b", null, "LORA", 4)), null, 8), "1..K");
        assertError(() -> manifest(Manifest.Mode.side, List.of(a, a), null, 8), "listed twice");
        assertError(() -> manifest(Manifest.Mode.side, List.of(a), null, 4), "above max_rank");
        assertError(() -> manifest(Manifest.Mode.merged, List.of(a), "line-z", 0), "merged adapter");
        assertError(() -> new Manifest.Adapter("../x", 0, "adapters/x", null, "LORA", 1), "adapter name");
        assertError(() -> new Manifest.Adapter("x", 0, "adapters/../../x", null, "LORA", 1), "inside the package");
        Peft4jException e = assertThrows(Peft4jException.class, () -> manifest(Manifest.Mode.base, List.of(), null, 0).adapter("nope"));
        assertEquals(ErrorCode.NOT_FOUND, e.code());
    }

    private static void assertError(Runnable r, String part) {
        Peft4jException e = assertThrows(Peft4jException.class, r::run);
        assertTrue(e.getMessage().contains(part), e.getMessage());
    }

    private void assertManifestError(Path mf, String json, String part) throws IOException {
        Files.writeString(mf, json);
        Peft4jException e = assertThrows(Peft4jException.class, () -> ModelPackage.open(mf.getParent()), json);
        assertTrue(e.getMessage().contains(part), e.getMessage());
    }

    private static List<String> listNames(Path d) throws IOException {
        try (Stream<Path> s = Files.list(d)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void emptyTargetDirectoryIsFine() throws IOException {
        Files.createDirectories(dir.resolve("empty"));
        writeBase(dir.resolve("empty"));
        assertTrue(ModelPackage.isPackage(dir.resolve("empty")));
        assertFalse(ModelPackage.isPackage(dir));
    }
}
