package io.peft4j.devices.profile;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DeviceProfilesTest {

    @TempDir
    Path dir;

    @Test
    void builtInProfilesCoverTheBoardsWithTheirFacts() {
        DeviceProfiles b = DeviceProfiles.builtIn();
        assertEquals(List.of("orin-nano-4gb", "orin-nano-8gb", "orin-nx-8gb", "orin-nx-16gb", "agx-orin-32gb",
                "agx-orin-64gb", "thor", "x86-nvidia-gpu", "cpu"), b.all().stream().map(DeviceProfile::id).toList());
        DeviceProfile nano4 = b.get("orin-nano-4gb");
        assertEquals(4096, nano4.memoryMiB().getAsLong());
        assertEquals("8.7", nano4.computeCapability().orElseThrow());
        assertEquals(0, nano4.dlaCores());
        assertEquals(36, nano4.minL4tMajor());
        assertEquals(1, b.get("orin-nx-8gb").dlaCores());
        assertEquals(2, b.get("orin-nx-16gb").dlaCores());
        assertEquals(2, b.get("agx-orin-64gb").dlaCores());
        assertEquals(65536, b.get("agx-orin-64gb").memoryMiB().getAsLong());
        assertEquals(List.of("tensorrt", "ort-tensorrt", "ort-cuda", "ort-cpu"), nano4.backends());
        DeviceProfile cpu = b.get("cpu");
        assertTrue(cpu.memoryMiB().isEmpty());
        assertEquals(List.of("ort-cpu"), cpu.backends());
        assertEquals(4L << 30, cpu.usableBytes(8L << 30));
        assertEquals(2560L << 20, nano4.usableBytes(123));
        assertTrue(b.get("thor").usableBytes(0) > b.get("agx-orin-64gb").usableBytes(0));
    }

    @Test
    void userProfileExtendsABuiltInOne() throws Exception {
        Path f = write("line3.json", """
                {"id": "line3-nano", "extends": "orin-nano-8gb", "name": "Line 3 camera box",
                 "usable_memory_percent": 50, "max_batch": 4, "backends": ["ort-cpu"]}""");
        DeviceProfiles all = DeviceProfiles.withUser(f);
        DeviceProfile p = all.get("line3-nano");
        assertEquals("Line 3 camera box", p.name());
        assertEquals(8192, p.memoryMiB().getAsLong());
        assertEquals(4096L << 20, p.usableBytes(0));
        assertEquals(4, p.maxBatch());
        assertEquals("8.7", p.computeCapability().orElseThrow());
        assertEquals(List.of("ort-cpu"), p.backends());
        assertTrue(p.source().endsWith("line3.json"));
        // the built-in set itself is unchanged
        assertTrue(DeviceProfiles.builtIn().find("line3-nano").isEmpty());
    }

    @Test
    void aDirectoryContributesEveryJsonFileAndProfilesCanExtendEachOther() throws Exception {
        Path d = Files.createDirectory(dir.resolve("profiles"));
        Files.writeString(d.resolve("a.json"), """
                [{"id": "box", "name": "Box", "kind": "cpu", "memory_mib": 2048, "usable_memory_mib": 1024,
                  "precisions": ["fp32"], "backends": ["ort-cpu"], "max_batch": 2, "workspace_mib": 0,
                  "engine_cache_dir": "/var/cache/e", "threads": 2}]""");
        Files.writeString(d.resolve("b.json"), """
                {"id": "box-big", "extends": "box", "memory_mib": 4096}""");
        Files.writeString(d.resolve("notes.txt"), "not a profile");
        DeviceProfiles all = DeviceProfiles.withUser(d);
        assertEquals(4096, all.get("box-big").memoryMiB().getAsLong());
        assertEquals(1024L << 20, all.get("box-big").usableBytes(0));
    }

    @Test
    void badFilesGetSpecificErrors() throws Exception {
        String good = """
                "name": "X", "kind": "cpu", "memory_mib": 2048, "usable_memory_mib": 1024, "precisions": ["fp32"],
                "backends": ["ort-cpu"], "max_batch": 2, "workspace_mib": 0, "engine_cache_dir": "/e", "threads": 2""";
        bad("{\"id\": \"x\", " + good + ", \"max_batchsize\": 3}", ErrorCode.INVALID_ARGUMENT,
                "profile 'x'", "unknown key [max_batchsize]");
        bad("{\"id\": \"x\", " + good.replace("\"threads\": 2", "\"thread\": 2") + "}", ErrorCode.INVALID_ARGUMENT,
                "unknown key [thread]");
        bad("{\"id\": \"x\", " + good.replace(", \"threads\": 2", "") + "}", ErrorCode.INVALID_ARGUMENT,
                "'threads' is missing");
        bad("{\"id\": \"x\", " + good.replace("\"max_batch\": 2", "\"max_batch\": -2") + "}", ErrorCode.INVALID_ARGUMENT,
                "'max_batch' must not be negative, got -2");
        bad("{\"id\": \"x\", " + good.replace("\"max_batch\": 2", "\"max_batch\": 2.5") + "}", ErrorCode.INVALID_ARGUMENT,
                "'max_batch' must be a whole number, got 2.5");
        bad("{\"id\": \"x\", " + good.replace("\"max_batch\": 2", "\"max_batch\": \"8\"") + "}", ErrorCode.INVALID_ARGUMENT,
                "'max_batch' must be a whole number");
        bad("{\"id\": \"x\", " + good.replace("\"max_batch\": 2", "\"max_batch\": 0") + "}", ErrorCode.INVALID_ARGUMENT,
                "'max_batch' must be 1..65536, got 0");
        bad("{\"id\": \"x\", " + good.replace("\"usable_memory_mib\": 1024", "\"usable_memory_mib\": 4096") + "}",
                ErrorCode.INVALID_ARGUMENT, "'usable_memory_mib' 4096 exceeds 'memory_mib' 2048");
        bad("{\"id\": \"x\", " + good.replace("\"usable_memory_mib\": 1024", "\"usable_memory_percent\": 101") + "}",
                ErrorCode.INVALID_ARGUMENT, "'usable_memory_percent' must be 1..100, got 101");
        bad("{\"id\": \"x\", " + good + ", \"usable_memory_percent\": 50}", ErrorCode.INVALID_ARGUMENT,
                "exactly one of 'usable_memory_mib' and 'usable_memory_percent'");
        bad("{\"id\": \"x\", " + good.replace("[\"ort-cpu\"]", "[\"ort-cpu\", \"openvino\"]") + "}",
                ErrorCode.INVALID_ARGUMENT, "unknown backend 'openvino' in 'backends'; known: [tensorrt, ort-tensorrt, ort-cuda, ort-cpu]");
        bad("{\"id\": \"x\", " + good.replace("[\"fp32\"]", "[\"fp8\"]") + "}", ErrorCode.INVALID_ARGUMENT,
                "unknown precision 'fp8'");
        bad("{\"id\": \"x\", " + good.replace("\"cpu\"", "\"tpu\"") + "}", ErrorCode.INVALID_ARGUMENT,
                "unknown kind 'tpu'");
        bad("{\"id\": \"x\", " + good.replace("\"cpu\"", "\"jetson\"") + "}", ErrorCode.INVALID_ARGUMENT,
                "a jetson profile needs 'detect'");
        bad("{\"id\": \"x\", " + good + ", \"compute_capability\": \"sm87\"}", ErrorCode.INVALID_ARGUMENT,
                "'compute_capability' must look like \"8.7\"");
        bad("[{\"id\": \"x\", " + good + "}, {\"id\": \"x\", " + good + "}]", ErrorCode.INVALID_ARGUMENT,
                "profile 'x'", "the id is already defined by");
        bad("{\"id\": \"cpu\", " + good + "}", ErrorCode.INVALID_ARGUMENT,
                "the id is already defined by built-in cpu.json", "\"extends\": \"cpu\"");
        bad("{\"id\": \"y\", \"extends\": \"orin-nano-9gb\"}", ErrorCode.NOT_FOUND,
                "'extends' names unknown profile 'orin-nano-9gb'");
        bad("{\"id\": \"Bad Id\", " + good + "}", ErrorCode.INVALID_ARGUMENT, "profile id 'Bad Id'");
        bad("{\"name\": \"no id\"}", ErrorCode.INVALID_ARGUMENT, "has no text 'id'");
        bad("{\"id\": \"x\", " + good + ",}", ErrorCode.MALFORMED, "is not valid JSON");
        bad("{\"id\": \"x\", \"id\": \"y\", " + good + "}", ErrorCode.MALFORMED, "is not valid JSON", "Duplicate field 'id'");
        bad("42", ErrorCode.MALFORMED, "must hold a profile object or an array of them");
        bad("", ErrorCode.MALFORMED, "is empty");
    }

    @Test
    void missingFilesAndEmptyDirectoriesAreReported() throws Exception {
        Peft4jException e = assertThrows(Peft4jException.class, () -> DeviceProfiles.withUser(dir.resolve("nope.json")));
        assertEquals(ErrorCode.IO, e.code());
        assertTrue(e.getMessage().contains("device profile file not found"), e.getMessage());
        e = assertThrows(Peft4jException.class, () -> DeviceProfiles.withUser(dir));
        assertTrue(e.getMessage().contains("has no *.json file"), e.getMessage());
        e = assertThrows(Peft4jException.class, () -> DeviceProfiles.builtIn().get("nano"));
        assertEquals(ErrorCode.NOT_FOUND, e.code());
        assertTrue(e.getMessage().contains("unknown device profile 'nano'; the profiles are [orin-nano-4gb"), e.getMessage());
    }

    private void bad(String json, ErrorCode code, String... fragments) throws Exception {
        Path f = write("bad.json", json);
        Peft4jException e = assertThrows(Peft4jException.class, () -> DeviceProfiles.withUser(f), json);
        assertEquals(code, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        for (String s : fragments) {
            assertTrue(e.getMessage().contains(s), "'" + s + "' not in: " + e.getMessage());
        }
    }

    private Path write(String name, String text) throws Exception {
        Path f = dir.resolve(name);
        Files.writeString(f, text);
        return f;
    }
}
