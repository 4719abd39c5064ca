package io.peft4j.cli;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Bad input to {@code peft4j export}: each is one clear line on stderr, exit code 2, and nothing
 * half-written: a new --out does not appear, an existing package is left byte for byte, and no
 * hidden staging directory remains.
 */
class ExportBadInputTest {

    @TempDir
    static Path tmp;

    static Path base;
    static Path folded;
    static Path good;

    static AdapterBundle random(Model m, AdapterConfig c, long seed) {
        AdapterBundle fresh = AdapterBinding.init(m, c, seed);
        Random r = new Random(seed);
        Map<String, Tensor> t = new TreeMap<>();
        fresh.tensors().forEach((k, v) -> {
            float[] f = new float[(int) v.numel()];
            for (int i = 0; i < f.length; i++) {
                f[i] = (float) ((k.endsWith("ia3_l") ? 1 : 0) + r.nextGaussian() * 0.1);
            }
            t.put(k, Tensor.ofFloats(v.shape(), f));
        });
        return new AdapterBundle(fresh.config(), t);
    }

    static Path write(String name, AdapterBundle b) {
        Path d = tmp.resolve("adapters-in").resolve(name);
        b.write(d);
        return d;
    }

    static AdapterBundle withTensors(AdapterBundle b, Map<String, Tensor> t) {
        return new AdapterBundle(b.config(), t);
    }

    @BeforeAll
    static void fixtures() {
        Model m = TinyModels.cnn(1);
        base = tmp.resolve("base.onnx");
        OnnxIO.write(m, base);
        AdapterBundle lora = random(m, AdapterConfig.lora(2, 4, List.of("conv1", "fc1", "fc2")), 1);
        good = write("good", lora);
        // the package a failed export must leave alone
        CliRun r = CliRun.of("export", "--base", base.toString(), "--adapter", good.toString(), "--mode", "merged", "--out",
                tmp.resolve("pkg").toString());
        assertEquals(0, r.exitCode(), r.err());

        Map<String, Tensor> renamed = new LinkedHashMap<>();
        lora.tensors().forEach((k, v) -> renamed.put(k.replace(".conv1.", ".conv9."), v));
        write("unknown-target", withTensors(lora, renamed));
        Map<String, Tensor> extra = new LinkedHashMap<>(lora.tensors());
        extra.put("base_model.model.fc2.lora_embedding_A", Tensor.zeros(io.peft4j.core.tensor.DataType.FLOAT, 2, 6));
        write("unmapped-key", withTensors(lora, extra));
        Map<String, Tensor> wrongShape = new LinkedHashMap<>(lora.tensors());
        wrongShape.put("base_model.model.fc2.lora_A.weight", Tensor.zeros(io.peft4j.core.tensor.DataType.FLOAT, 2, 7));
        write("shape", withTensors(lora, wrongShape));
        write("other-base", random(TinyModels.cnn(2), AdapterConfig.lora(2, 4, List.of("conv1")), 3));
        write("ia3", random(m, AdapterConfig.ia3(List.of("fc1"), List.of()), 4));
        write("rank8", random(m, AdapterConfig.lora(8, 8, List.of("fc1")), 5));
        // corrupt files
        try {
            Path bad = tmp.resolve("corrupt.onnx");
            Files.write(bad, new byte[] {8, 7, 18, 3, 'x', 'y', 'z', (byte) 0xff, (byte) 0xff, 0x0a, (byte) 0xff});
            Path st = write("corrupt-safetensors", lora);
            byte[] bytes = Files.readAllBytes(st.resolve("adapter_model.safetensors"));
            Files.write(st.resolve("adapter_model.safetensors"), java.util.Arrays.copyOf(bytes, bytes.length / 2));
            Path cfg = write("corrupt-config", lora);
            Files.writeString(cfg.resolve("adapter_config.json"), "{\"peft_type\": \"LORA\", \"r\": ");
            Files.createDirectories(tmp.resolve("not-a-package"));
            Files.writeString(tmp.resolve("not-a-package/notes.txt"), "mine");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        // PyTorch's export with BatchNorm folded into conv1, and an adapter from PyTorch (no peft4j block)
        Model f = TinyModels.cnn(1);
        Graph g = f.graph();
        g.setInitializer("onnx::Conv_12", g.initializer("conv1.weight"));
        g.node("/conv1/Conv").setInput(1, "onnx::Conv_12");
        g.removeInitializer("conv1.weight");
        folded = tmp.resolve("folded.onnx");
        OnnxIO.write(f, folded);
        AdapterBundle pt = random(f, AdapterConfig.lora(2, 4, List.of("conv1")), 6);
        write("pytorch", pt.withConfig(pt.config().withPeft4j(null)));
    }

    record Case(String name, String expected, List<String> args) {
        @Override
        public String toString() {
            return name;
        }
    }

    static String in(String adapter) {
        return tmp.resolve("adapters-in").resolve(adapter).toString();
    }

    static Case c(String name, String expected, String... args) {
        return new Case(name, expected, List.of(args));
    }

    static Stream<Case> cases() {
        String b = "--base";
        return Stream.of(
                c("unknown target", "no layer at module path 'conv9'", b, base.toString(), "--adapter", in("unknown-target"), "--mode", "merged"),
                c("key that maps nowhere", "lora_embedding_A maps nowhere", b, base.toString(), "--adapter", in("unmapped-key"), "--mode", "side"),
                c("shape mismatch", "has shape [2, 7], expected [2, 6]", b, base.toString(), "--adapter", in("shape"), "--mode", "multi"),
                c("adapter for another base", "made for another base model", b, base.toString(), "--adapter", in("other-base"), "--mode", "merged"),
                c("corrupt ONNX", "corrupt.onnx", b, tmp.resolve("corrupt.onnx").toString(), "--adapter", in("good"), "--mode", "merged"),
                c("corrupt safetensors", "adapter_model.safetensors", b, base.toString(), "--adapter", in("corrupt-safetensors"), "--mode", "side"),
                c("corrupt config", "adapter_config.json", b, base.toString(), "--adapter", in("corrupt-config"), "--mode", "side"),
                c("duplicate adapter names", "'good' is given twice", b, base.toString(), "--adapter", in("good"), "--adapter",
                        "good=" + in("ia3"), "--mode", "multi"),
                c("merged with two adapters", "exactly one adapter", b, base.toString(), "--adapter", in("good"), "--adapter",
                        in("ia3"), "--mode", "merged"),
                c("folded BatchNorm", "BatchNorm folded", b, folded.toString(), "--adapter", in("pytorch"), "--mode", "merged"),
                c("side with two methods", "one PEFT method", b, base.toString(), "--adapter", in("good"), "--adapter", in("ia3"),
                        "--mode", "side"),
                c("rank above --max-rank", "above --max-rank 4", b, base.toString(), "--adapter", in("rank8"), "--mode", "side",
                        "--max-rank", "4"),
                c("unknown mode", "--mode must be", b, base.toString(), "--adapter", in("good"), "--mode", "fused"),
                c("missing adapter directory", "adapter directory not found", b, base.toString(), "--adapter", in("nope"), "--mode", "side"),
                c("invalid adapter name", "adapter name '-x'", b, base.toString(), "--adapter", "-x=" + in("good"), "--mode", "side"),
                c("engine without a device", "--format engine needs --device", b, base.toString(), "--adapter", in("good"),
                        "--mode", "side", "--format", "engine"),
                c("unknown format", "--format must be onnx or engine", b, base.toString(), "--adapter", in("good"), "--mode",
                        "side", "--format", "plan"),
                c("unknown device profile", "jetson-nope", b, base.toString(), "--adapter", in("good"), "--mode", "side",
                        "--format", "engine", "--device", "jetson-nope"));
    }

    static Map<String, String> snapshot(Path dir) {
        Map<String, String> m = new TreeMap<>();
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.filter(Files::isRegularFile).toList()) {
                m.put(dir.relativize(p).toString(), HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                        .digest(Files.readAllBytes(p))));
            }
        } catch (Exception e) {
            throw new AssertionError(e);
        }
        return m;
    }

    static List<String> hidden() throws IOException {
        List<String> h = new ArrayList<>();
        try (Stream<Path> s = Files.list(tmp)) {
            s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith(".")).forEach(h::add);
        }
        return h;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void isOneLineExitTwoAndWritesNothing(Case c) throws IOException {
        Map<String, String> before = snapshot(tmp.resolve("pkg"));
        for (String target : List.of("fresh", "pkg")) {
            List<String> args = new ArrayList<>(List.of("export"));
            args.addAll(c.args());
            args.addAll(List.of("--out", tmp.resolve(target).toString()));
            CliRun r = CliRun.of(args.toArray(String[]::new));
            assertEquals(2, r.exitCode(), c + ": " + r.out() + r.err());
            assertEquals(1, r.errLines().length, c + ": one line, got:\n" + r.err());
            assertTrue(r.err().startsWith("peft4j: error: "), r.err());
            assertTrue(r.err().contains(c.expected()), c + ": expected '" + c.expected() + "' in: " + r.err());
            assertFalse(r.err().contains("Exception"), r.err());
        }
        System.out.printf("export bad input %-28s -> %s", c, CliRun.of(concat(c.args(), "--out", tmp.resolve("fresh").toString())).err());
        assertFalse(Files.exists(tmp.resolve("fresh")), c + ": a failed export leaves no package");
        assertEquals(before, snapshot(tmp.resolve("pkg")), c + ": the existing package is unchanged");
        assertEquals(List.of(), hidden(), c + ": no staging directories remain");
    }

    @org.junit.jupiter.api.Test
    void anEngineWithoutTensorRtIsRefusedBeforeAnythingIsWritten() throws IOException {
        io.peft4j.devices.trt.TensorRt.Availability a = io.peft4j.devices.trt.TensorRt.availability();
        org.junit.jupiter.api.Assumptions.assumeFalse(a.usable(), "TensorRT runs here; this test checks the refusal without it");
        CliRun r = CliRun.of("export", "--base", base.toString(), "--adapter", in("good"), "--mode", "side", "--format", "engine",
                "--device", "x86-nvidia-gpu", "--out", tmp.resolve("fresh").toString());
        assertEquals(2, r.exitCode(), r.out() + r.err());
        assertEquals(1, r.errLines().length, r.err());
        assertTrue(r.err().contains("TensorRT is not usable here: " + a.reason()), r.err());
        assertFalse(Files.exists(tmp.resolve("fresh")), "nothing written");
    }

    static String[] concat(List<String> args, String... more) {
        List<String> a = new ArrayList<>(List.of("export"));
        a.addAll(args);
        a.addAll(List.of(more));
        return a.toArray(String[]::new);
    }

    @org.junit.jupiter.api.Test
    void anotherDirectoryIsNotReplaced() throws IOException {
        CliRun r = CliRun.of("export", "--base", base.toString(), "--adapter", good.toString(), "--mode", "side", "--out",
                tmp.resolve("not-a-package").toString());
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("is not a model package"), r.err());
        assertEquals("mine", Files.readString(tmp.resolve("not-a-package/notes.txt")));
        assertEquals(List.of(), hidden());
    }

    @org.junit.jupiter.api.Test
    void validationBeyondToleranceWritesNothing() throws IOException {
        Map<String, String> before = snapshot(tmp.resolve("pkg"));
        // fp16 weights against an impossible tolerance
        CliRun r = CliRun.of("export", "--base", base.toString(), "--adapter", good.toString(), "--mode", "merged", "--fp16",
                "--tolerance", "1e-12", "--out", tmp.resolve("pkg").toString());
        assertEquals(2, r.exitCode(), r.out() + r.err());
        assertTrue(r.err().contains("validation failed, nothing was written"), r.err());
        assertEquals(1, r.errLines().length, r.err());
        assertEquals(before, snapshot(tmp.resolve("pkg")));
        assertEquals(List.of(), hidden());
    }
}
