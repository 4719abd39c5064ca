package io.peft4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.adapter.PeftKey;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.pkg.ModelPackage;
import io.peft4j.core.tensor.Npy;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.OnnxChecker;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The issue's sequence through the command line on resnet18 with the PyTorch reference adapter:
 * {@code export --mode merged} then {@code predict} gives PyTorch's adapted output, {@code export
 * --mode side} then {@code predict --adapter} the same and {@code predict} without it PyTorch's
 * base output; a multi package with the reference adapter and a second one serves each row.
 */
class ExportPredictCommandTest {

    static final double REL = 1e-4;

    @TempDir
    static Path tmp;

    static Path base;
    static Path ref;
    static Tensor x;
    static Tensor y0;
    static Tensor y1;

    @BeforeAll
    static void fixture() {
        base = Assets.shared("models/resnet18.onnx");
        ref = Assets.resnetReference();
        x = Npy.read(ref.resolve("x.npy"));
        y0 = Npy.read(ref.resolve("y0.npy"));
        y1 = Npy.read(ref.resolve("y1.npy"));
    }

    static CliRun ok(String... args) {
        CliRun r = CliRun.of(args);
        assertEquals(0, r.exitCode(), String.join(" ", args) + "\nstdout: " + r.out() + "\nstderr: " + r.err());
        return r;
    }

    static double rel(Tensor a, Tensor b) {
        return io.peft4j.core.testkit.Ort.maxRelDiff(a, b);
    }

    static double row(Tensor a, Tensor b, int r) {
        int n = (int) (a.numel() / a.dim(0));
        float[] av = a.toFloatArray();
        float[] bv = b.toFloatArray();
        double m = 0;
        double s = 0;
        for (int i = r * n; i < (r + 1) * n; i++) {
            m = Math.max(m, Math.abs(av[i] - bv[i]));
            s = Math.max(s, Math.abs(bv[i]));
        }
        return m / Math.max(s, 1e-12);
    }

    @Test
    void theIssueSequenceMatchesPyTorch() throws Exception {
        String r = ref.resolve("adapter").toString();
        String xs = ref.resolve("x.npy").toString();
        Path p1 = tmp.resolve("P1");
        Path p2 = tmp.resolve("P2");
        CliRun e1 = ok("export", "--base", base.toString(), "--adapter", r, "--mode", "merged", "--out", p1.toString());
        assertTrue(e1.out().contains("exported merged package"), e1.out());
        ok("predict", "--model", p1.toString(), "--npy", xs, "--out", tmp.resolve("y1.npy").toString());
        ok("export", "--base", base.toString(), "--adapter", r, "--mode", "side", "--out", p2.toString());
        ok("predict", "--model", p2.toString(), "--adapter", "adapter", "--npy", xs, "--out", tmp.resolve("y2.npy").toString());
        ok("predict", "--model", p2.toString(), "--npy", xs, "--out", tmp.resolve("y0.npy").toString());

        double merged = rel(Npy.read(tmp.resolve("y1.npy")), y1);
        double side = rel(Npy.read(tmp.resolve("y2.npy")), y1);
        double off = rel(Npy.read(tmp.resolve("y0.npy")), y0);
        System.out.printf("CLI sequence vs PyTorch: merged %.2e, side %.2e, side without adapter %.2e%n", merged, side, off);
        assertTrue(merged <= REL, "merged vs PyTorch " + merged);
        assertTrue(side <= REL, "side vs PyTorch " + side);
        assertTrue(off <= REL, "side without adapter vs PyTorch base " + off);
        OnnxChecker.check(p1.resolve("model.onnx"));
        OnnxChecker.check(p2.resolve("model.onnx"));
        assertTrue(Files.isRegularFile(p2.resolve("adapters/adapter.onnx_adapter")));
        assertTrue(Files.isRegularFile(p2.resolve("adapters/adapter/adapter_model.safetensors")));
        // the merged package takes its own adapter's name, and no other
        ok("predict", "--model", p1.toString(), "--adapter", "adapter", "--npy", xs, "--out", tmp.resolve("y1b.npy").toString());
        CliRun wrong = CliRun.of("predict", "--model", p1.toString(), "--adapter", "other", "--npy", xs, "--out",
                tmp.resolve("y1c.npy").toString());
        assertEquals(2, wrong.exitCode());
        assertEquals(1, wrong.errLines().length, wrong.err());
        assertTrue(wrong.err().contains("no adapter 'other'"), wrong.err());
    }

    /** A second LoRA adapter for resnet18, random and visible, of another rank. */
    static Path secondAdapter(Path dir) {
        Model m = OnnxIO.read(base);
        AdapterBundle fresh = AdapterBinding.init(m, AdapterConfig.lora(2, 4, List.of("conv1", "fc", "layer4.1.conv2")), 7);
        Random rng = new Random(7);
        Map<String, Tensor> t = new LinkedHashMap<>();
        fresh.tensors().forEach((k, v) -> {
            float[] f = new float[(int) v.numel()];
            for (int i = 0; i < f.length; i++) {
                f[i] = (float) (rng.nextGaussian() * 0.05);
            }
            t.put(k, Tensor.ofFloats(v.shape(), f));
        });
        assertTrue(t.keySet().stream().allMatch(k -> PeftKey.parse(k).module() != null));
        new AdapterBundle(fresh.config(), t).write(dir);
        return dir;
    }

    @Test
    void multiPackageServesEachAdapterPerRow() throws Exception {
        Path second = secondAdapter(tmp.resolve("line-b"));
        Path pm = tmp.resolve("PM");
        CliRun e = ok("export", "--base", base.toString(), "--adapter", "line-a=" + ref.resolve("adapter"), "--adapter",
                second.toString(), "--mode", "multi", "--out", pm.toString(), "--json");
        JsonNode j = new ObjectMapper().readTree(e.out());
        assertEquals("multi", j.get("mode").asText());
        assertEquals("adapter_index", j.get("adapter_index_input").asText());
        assertEquals(4, j.get("max_rank").asInt());
        assertEquals(3, j.get("validation").size(), j.toPrettyString());
        assertTrue(j.get("ok").asBoolean());
        OnnxChecker.check(pm.resolve("model.onnx"));
        ModelPackage p = ModelPackage.open(pm);
        assertEquals(1, p.manifest().adapter("line-a").index());
        assertEquals(2, p.manifest().adapter("line-b").index());
        assertTrue(p.manifest().inputs().stream().noneMatch(v -> v.name().equals("adapter_index")));

        String xs = ref.resolve("x.npy").toString();
        ok("predict", "--model", pm.toString(), "--adapter", "line-a", "--npy", xs, "--out", tmp.resolve("ma.npy").toString());
        ok("predict", "--model", pm.toString(), "--npy", xs, "--out", tmp.resolve("m0.npy").toString());
        assertTrue(rel(Npy.read(tmp.resolve("ma.npy")), y1) <= REL, "multi line-a vs PyTorch y1");
        assertTrue(rel(Npy.read(tmp.resolve("m0.npy")), y0) <= REL, "multi index 0 vs PyTorch y0");

        // one batch mixing adapters: row 0 adapter line-a, row 1 the base model
        Npy.write(tmp.resolve("idx.npy"), Tensor.ofLongs(new long[] {2}, 1, 0));
        ok("predict", "--model", pm.toString(), "--npy", "input=" + xs, "--npy", "adapter_index=" + tmp.resolve("idx.npy"),
                "--out", tmp.resolve("mixed.npy").toString());
        Tensor mixed = Npy.read(tmp.resolve("mixed.npy"));
        double r0 = row(mixed, y1, 0);
        double r1 = row(mixed, y0, 1);
        System.out.printf("CLI multi mixed batch: row 0 (line-a) vs PyTorch %.2e, row 1 (base) vs PyTorch %.2e%n", r0, r1);
        assertTrue(r0 <= REL && r1 <= REL, r0 + " " + r1);

        CliRun both = CliRun.of("predict", "--model", pm.toString(), "--adapter", "line-a", "--npy", "input=" + xs, "--npy",
                "adapter_index=" + tmp.resolve("idx.npy"), "--out", tmp.resolve("both.npy").toString());
        assertEquals(2, both.exitCode());
        assertTrue(both.err().contains("either an adapter or the 'adapter_index' input"), both.err());
        CliRun unknown = CliRun.of("predict", "--model", pm.toString(), "--adapter", "line-z", "--npy", xs, "--out",
                tmp.resolve("z.npy").toString());
        assertEquals(2, unknown.exitCode());
        assertTrue(unknown.err().contains("no adapter 'line-z'") && unknown.err().contains("line-a"), unknown.err());

        // the second adapter's row equals its own side package
        Path ps = tmp.resolve("PS");
        ok("export", "--base", base.toString(), "--adapter", second.toString(), "--mode", "side", "--out", ps.toString());
        ok("predict", "--model", pm.toString(), "--adapter", "line-b", "--npy", xs, "--out", tmp.resolve("mb.npy").toString());
        ok("predict", "--model", ps.toString(), "--adapter", "line-b", "--npy", xs, "--out", tmp.resolve("sb.npy").toString());
        double b = rel(Npy.read(tmp.resolve("mb.npy")), Npy.read(tmp.resolve("sb.npy")));
        assertTrue(b <= REL, "multi line-b vs side line-b " + b);
        assertTrue(rel(Npy.read(tmp.resolve("sb.npy")), y0) > 1e-3, "the second adapter changes the output");
    }
}
