package io.peft4j.cli;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.adapter.BaseFingerprint;
import io.peft4j.core.adapter.PeftKey;
import io.peft4j.core.adapter.Peft4jBlock;
import io.peft4j.core.inspect.ModelInspection;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.Callable;

/**
 * {@code peft4j quickstart}: the project's main job, end to end, as far as it is built today. It
 * writes the embedded default base model (a small defect classifier trained on synthetic metal
 * images, weights as ONNX external data), reads it back and checks it in ONNX Runtime on held-out
 * synthetic images, inspects it, creates a LoRA adapter in the Hugging Face PEFT layout bound to
 * the base model's fingerprint, reloads it, and shows that another base model is refused.
 */
@Command(name = "quickstart",
        header = "Run the main job end to end on an embedded default model.",
        description = {
            "Run the main job end to end on an embedded default: write a small defect-detection base model",
            "(trained on synthetic metal images; ONNX, weights as external data), verify it in ONNX Runtime on",
            "held-out images, list the layers an adapter can target, create a LoRA adapter for them in the Hugging",
            "Face PEFT layout bound to the base model, reload it, and show that an adapter is refused on a base",
            "model it was not made for.",
            "Training the adapter here comes with a later release; this runs what is built today."},
        mixinStandardHelpOptions = true)
public final class QuickstartCommand implements Callable<Integer> {

    @Spec
    private CommandSpec spec;

    @Option(names = "--out", paramLabel = "DIR", defaultValue = "runs/quickstart",
            description = "Where to write the model and adapter (default: ${DEFAULT-VALUE}).")
    private Path out;

    @Option(names = "--rank", defaultValue = "4", description = "LoRA rank r (default: ${DEFAULT-VALUE}).")
    private int rank;

    @Option(names = "--alpha", defaultValue = "8", description = "LoRA alpha (default: ${DEFAULT-VALUE}).")
    private double alpha;

    @Option(names = "--seed", defaultValue = "42", description = "Seed for the model and adapter (default: ${DEFAULT-VALUE}).")
    private long seed;

    @Override
    public Integer call() throws Exception {
        if (rank < 1 || rank > 64) {
            throw Peft4jException.invalid("--rank must be between 1 and 64, got " + rank);
        }
        PrintWriter o = spec.commandLine().getOut();
        long t0 = System.nanoTime();
        Path baseFile = out.resolve("base").resolve("model.onnx");

        step(o, 1, "base model");
        Model built = DefaultModel.trained();
        OnnxIO.write(built, baseFile, OnnxIO.WriteOptions.allExternal());
        o.printf("  wrote %s (+ %s, %s of weights as external data)%n", baseFile, baseFile.getFileName() + ".data",
                Format.bytes(Files.size(baseFile.resolveSibling(baseFile.getFileName() + ".data"))));

        step(o, 2, "read back and run in ONNX Runtime");
        Model base = OnnxIO.read(baseFile);
        Path inline = out.resolve("base").resolve("model-inline.onnx");
        OnnxIO.write(base, inline, OnnxIO.WriteOptions.inline());
        int probeSize = 2 * DefaultModel.LABELS.size();
        Tensor probe = DefaultModel.probeBatch(seed, probeSize);
        float[] a = runOnce(baseFile, probe);
        float[] b = runOnce(inline, probe);
        double diff = maxAbsDiff(a, b);
        o.printf("  probe batch of %d: outputs of the external-data and inline copies differ by %.1e (max abs)%n", probeSize,
                diff);
        if (diff != 0) {
            throw new IllegalStateException("round trip changed the model's outputs by " + diff);
        }
        Files.delete(inline);
        int k = DefaultModel.LABELS.size();
        int correct = 0;
        for (int i = 0; i < probeSize; i++) {
            int best = 0;
            for (int c = 1; c < k; c++) {
                best = a[i * k + c] > a[i * k + best] ? c : best;
            }
            correct += best == i % k ? 1 : 0;
        }
        o.printf("  %d of %d held-out synthetic metal images classified right (classes %s)%n", correct, probeSize,
                String.join(", ", DefaultModel.LABELS));

        step(o, 3, "inspect");
        ModelInspection insp = ModelInspection.of(base);
        String fingerprint = BaseFingerprint.of(base);
        o.printf("  %s parameters, %d targetable modules, base fingerprint %s%n", Format.count(insp.parameters()),
                insp.targets().size(), BaseFingerprint.abbreviate(fingerprint));
        for (TargetLayer t : insp.targets()) {
            o.printf("    %-14s %-5s %-22s %s%n", t.path(), t.opType(), java.util.Arrays.toString(t.weightShape()),
                    InspectCommand.layout(t.layout()));
        }

        step(o, 4, "LoRA adapter (Hugging Face PEFT layout)");
        AdapterBundle adapter = initLora(base, insp.targets(), fingerprint);
        Path adapterDir = out.resolve("adapters").resolve("line-a");
        adapter.write(adapterDir);
        AdapterBundle reloaded = AdapterBundle.read(adapterDir);
        for (Map.Entry<String, Tensor> e : adapter.tensors().entrySet()) {
            if (!e.getValue().contentEquals(reloaded.tensors().get(e.getKey()))) {
                throw new IllegalStateException("tensor " + e.getKey() + " changed when written and read back");
            }
        }
        if (!reloaded.config().equals(adapter.config())) {
            throw new IllegalStateException("the adapter config changed when written and read back");
        }
        boolean verified = reloaded.requireBase(base, baseFile.toString());
        long adapterBytes = Files.size(adapterDir.resolve(AdapterBundle.WEIGHTS_FILE));
        long baseBytes = Files.size(baseFile) + Files.size(baseFile.resolveSibling(baseFile.getFileName() + ".data"));
        o.printf("  wrote %s: r=%d, alpha=%s, %d modules, %s trainable parameters (%.2f%% of the base)%n", adapterDir,
                rank, trim(alpha), reloaded.byModule().size(), Format.count(reloaded.parameterCount()),
                100.0 * reloaded.parameterCount() / insp.parameters());
        o.printf("  on disk: adapter %s vs base model %s (%.1f%%)%n", Format.bytes(adapterBytes), Format.bytes(baseBytes),
                100.0 * adapterBytes / baseBytes);
        o.printf("  reloaded: config and all %d tensors identical, base fingerprint %s%n", reloaded.tensors().size(),
                verified ? "verified" : "NOT verified");
        if (!verified) {
            throw new IllegalStateException("the reloaded adapter lost its base fingerprint");
        }

        step(o, 5, "an adapter on the wrong base model is refused");
        Model other = DefaultModel.build(seed);
        try {
            reloaded.requireBase(other, "a base model with other weights");
            throw new IllegalStateException("an adapter for another base model was accepted");
        } catch (Peft4jException e) {
            if (e.code() != Peft4jException.ErrorCode.FINGERPRINT_MISMATCH) {
                throw e;
            }
            o.printf("  refused: %s%n", e.getMessage());
        }

        o.printf("%ndone in %.1f s. Next: 'peft4j inspect %s' for the full listing.%n", (System.nanoTime() - t0) / 1e9, baseFile);
        o.printf("Package it for serving: 'peft4j export --base %s --adapter %s --mode side --out %s'.%n", baseFile, adapterDir,
                out.resolve("package"));
        o.println("The adapter above is PEFT-initialised (B = 0): it does not change the model's output until it is trained.");
        o.printf("Train one for another production line: 'peft4j synth --line fabric --out %s' then%n", out.resolve("fabric"));
        o.printf("'peft4j train --base %s --data %s --method lora --out %s'.%n", baseFile, out.resolve("fabric"),
                out.resolve("adapters").resolve("fabric"));
        o.flush();
        return 0;
    }

    /** LoRA as PEFT initialises it: A ~ kaiming_uniform(a = sqrt(5)), i.e. U(±1/sqrt(fan_in)); B = 0. */
    private AdapterBundle initLora(Model base, List<TargetLayer> targets, String fingerprint) {
        Random r = new Random(seed);
        Map<String, Tensor> tensors = new TreeMap<>();
        Map<String, String> moduleMap = new LinkedHashMap<>();
        List<String> names = new ArrayList<>();
        for (TargetLayer t : targets) {
            if (t.kind() == TargetLayer.Kind.EMBEDDING || t.groups() != 1) {
                continue;
            }
            long[] w = t.weightShape();
            long[] aShape;
            long[] bShape;
            long fanIn;
            if (t.kind() == TargetLayer.Kind.CONV) {
                aShape = w.clone();
                aShape[0] = rank;
                fanIn = 1;
                for (int i = 1; i < w.length; i++) {
                    fanIn *= w[i];
                }
                bShape = new long[w.length];
                java.util.Arrays.fill(bShape, 1);
                bShape[0] = t.outFeatures();
                bShape[1] = rank;
            } else {
                aShape = new long[] {rank, t.inFeatures()};
                fanIn = t.inFeatures();
                bShape = new long[] {t.outFeatures(), rank};
            }
            float bound = (float) (1 / Math.sqrt(fanIn));
            float[] av = new float[(int) Tensor.numel(aShape)];
            for (int i = 0; i < av.length; i++) {
                av[i] = (r.nextFloat() * 2 - 1) * bound;
            }
            tensors.put(PeftKey.of(t.path(), "lora_A.weight"), Tensor.ofFloats(aShape, av));
            tensors.put(PeftKey.of(t.path(), "lora_B.weight"), Tensor.zeros(DataType.FLOAT, bShape));
            moduleMap.put(t.path(), t.nodeName());
            names.add(t.path());
        }
        var provenance = JsonNodeFactory.instance.objectNode();
        provenance.put("toolkit", "peft4j " + VersionProvider.peft4jVersion());
        provenance.put("created_by", "peft4j quickstart");
        provenance.put("seed", seed);
        provenance.put("java", System.getProperty("java.version"));
        provenance.put("os", System.getProperty("os.name") + " " + System.getProperty("os.arch"));
        AdapterConfig c = AdapterConfig.lora(rank, alpha, names)
                .withPeft4j(new Peft4jBlock(fingerprint, moduleMap, Map.of("provenance", provenance)));
        return new AdapterBundle(c, tensors);
    }

    /** The model's first output for {@code image}, in ONNX Runtime. */
    private static float[] runOnce(Path model, Tensor image) {
        try (io.peft4j.devices.ort.OrtBackend p = io.peft4j.devices.ort.OrtBackend.open(model)) {
            return p.run(Map.of("image", image), null).values().iterator().next().toFloatArray();
        }
    }

    private static void step(PrintWriter o, int n, String title) {
        o.printf("%n[%d/5] %s%n", n, title);
        o.flush();
    }

    private static double maxAbsDiff(float[] a, float[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return m;
    }

    private static String trim(double d) {
        return d == Math.rint(d) ? Long.toString((long) d) : String.format(Locale.ROOT, "%s", d);
    }
}
