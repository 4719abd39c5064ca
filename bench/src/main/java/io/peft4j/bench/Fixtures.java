package io.peft4j.bench;

import io.peft4j.core.Peft4jException;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.adapter.PeftKey;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.peft.InjectMode;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.peft.Stack;
import io.peft4j.core.peft.lora.LoraMethod;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.ort.OnnxAdapterFile;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.FloatBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

/**
 * The files the benchmarks load, made once per workload and kept in the work folder
 * ({@code -Dpeft4j.bench.work}, default {@code bench/target/work}): the merged model (adapter 1
 * folded in), the side model (LoRA tensors as graph inputs with zero defaults, as
 * {@code peft4j export --mode side} writes it), the multi-adapter model (adapters 1–4 stacked),
 * each adapter as an ONNX Runtime {@code .onnx_adapter} file, and adapter 1 as a PEFT bundle.
 *
 * <p>The adapters are PEFT-initialised ({@link AdapterBinding#init}) and then given random non-zero
 * {@code lora_B} (PEFT starts B at zero, which would make every adapter the base model); each has
 * its own seed. Preparation is deterministic; a stamp file records {@link #VERSION} and the base
 * model's size, and the files are remade when either changes.
 */
public final class Fixtures {

    /** Bump when what is prepared changes; the settings are part of it. */
    static final String VERSION = "4 r=" + Bench.RANK + " alpha=" + Bench.ALPHA + " k=" + Bench.ADAPTERS + " sigma="
            + Bench.B_SIGMA;
    private static final String STAMP = "fixtures.stamp";

    /** What a workload's benchmarks load. */
    public record Prepared(Workload workload, Path dir, Path base, Path merged, Path side, Path multi, List<Path> adapterFiles,
                           Path bundle) {
        /** The side package {@link io.peft4j.exporter.Exporter} writes for adapter 1 (adapter name {@code a1}). */
        public Path sidePackage() {
            return dir.resolve("side-package");
        }

        /** Node counts per op type before and after ONNX Runtime's optimizations, per model (JSON). */
        public Path opsFile() {
            return dir.resolve("optimized-ops.json");
        }
    }

    /** The name of adapter 1 in {@link Prepared#sidePackage()}. */
    public static final String SIDE_ADAPTER = "a1";

    private Fixtures() {
    }

    /** The work folder. */
    public static Path workDir() {
        String p = System.getProperty("peft4j.bench.work");
        return Path.of(p == null || p.isBlank() ? "bench/target/work" : p).toAbsolutePath().normalize();
    }

    /** The prepared files of {@code w}, making them first when missing or stale. */
    public static Prepared get(Workload w) {
        Path work = workDir();
        Path dir = work.resolve(w.id());
        try {
            Files.createDirectories(work);
            try (FileChannel ch = FileChannel.open(work.resolve(w.id() + ".lock"), StandardOpenOption.CREATE,
                    StandardOpenOption.WRITE); FileLock ignored = ch.lock()) {
                Path base = w.source(work);
                Prepared p = layout(w, dir, base);
                String stamp = VERSION + "\nbase " + base + " " + Files.size(base) + "\n";
                Path stampFile = dir.resolve(STAMP);
                if (!Files.isRegularFile(stampFile) || !Files.readString(stampFile).equals(stamp)) {
                    long t0 = System.nanoTime();
                    prepare(p);
                    Files.writeString(stampFile, stamp, StandardCharsets.UTF_8);
                    System.err.printf(Locale.ROOT, "bench: prepared the %s fixtures in %s (%.1f s)%n", w.id(), dir,
                            (System.nanoTime() - t0) / 1e9);
                }
                return p;
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static Prepared layout(Workload w, Path dir, Path base) {
        List<Path> adapters = new ArrayList<>();
        for (int k = 1; k <= Bench.ADAPTERS; k++) {
            adapters.add(dir.resolve("adapter-" + k + OnnxAdapterFile.EXTENSION));
        }
        return new Prepared(w, dir, base, dir.resolve("merged.onnx"), dir.resolve("side.onnx"), dir.resolve("multi.onnx"),
                List.copyOf(adapters), dir.resolve("adapter-1"));
    }

    /** Adapter {@code k} (1-based) of the workload, for {@code base}. */
    public static AdapterBundle adapter(Workload w, Model base, int k) {
        AdapterConfig config = w.loraConfig(base);
        AdapterBundle fresh = AdapterBinding.init(base, config, 1000L + k);
        Random r = new Random(2000L + k);
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : fresh.tensors().entrySet()) {
            Tensor t = e.getValue();
            if (PeftKey.parse(e.getKey()).role().equals(LoraMethod.B)) {
                float[] v = new float[Math.toIntExact(t.numel())];
                for (int i = 0; i < v.length; i++) {
                    v[i] = (float) (r.nextGaussian() * Bench.B_SIGMA);
                }
                t = Tensor.ofFloats(t.shape(), v);
            }
            tensors.put(e.getKey(), t);
        }
        return new AdapterBundle(fresh.config(), tensors);
    }

    private static Model copy(Path base) {
        return OnnxIO.read(base);
    }

    private static void prepare(Prepared p) throws IOException {
        OrtSupport.env();   // the benchmarks' environment (one shared pool) before the exporter's validation opens one
        io.peft4j.core.util.AtomicFiles.deleteTree(p.dir());
        Files.createDirectories(p.dir());
        Workload w = p.workload();
        Model base = copy(p.base());
        List<AdapterBinding> bindings = new ArrayList<>();
        for (int k = 1; k <= Bench.ADAPTERS; k++) {
            AdapterBundle b = adapter(w, base, k);
            bindings.add(AdapterBinding.bind(base, b));
            if (k == 1) {
                b.write(p.bundle());
            }
        }
        Model merged = copy(p.base());
        Peft.merge(merged, bindings.get(0));
        OnnxIO.write(merged, p.merged());

        for (int k = 0; k < bindings.size(); k++) {
            Model side = copy(p.base());
            Peft.Injection inj = Peft.inject(side, bindings.get(k), InjectMode.INPUTS_WITH_DEFAULTS);
            OnnxAdapterFile.write(p.adapterFiles().get(k), inj.feeds(), 1, 1);
            if (k == 0) {
                OnnxIO.write(side, p.side());
            }
        }

        Model multi = copy(p.base());
        Peft.injectStacked(multi, bindings, Bench.RANK);
        OnnxIO.write(multi, p.multi());
        io.peft4j.exporter.Exporter.export(p.base(), List.of(new io.peft4j.exporter.NamedAdapter(SIDE_ADAPTER,
                io.peft4j.core.adapter.AdapterBundle.read(p.bundle()))), io.peft4j.exporter.ExportOptions.of(
                io.peft4j.core.pkg.Manifest.Mode.side), p.sidePackage());
        check(p);
    }

    /**
     * The fixtures compute what they claim before anything is timed: the side model with adapter 1
     * active and the multi model with every row on adapter 1 give the merged model's output, the
     * side model with no adapter gives the base model's, and the adapter visibly changes it.
     */
    static void check(Prepared p) {
        Map<String, Tensor> in = p.workload().inputs(7);
        Path opt = p.dir().resolve("optimized");
        try {
            Files.createDirectories(opt);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        try (OrtSession base = OrtSupport.session(p.base(), opt.resolve("base.onnx"));
             OrtSession merged = OrtSupport.session(p.merged(), opt.resolve("merged.onnx"));
             OrtSession side = OrtSupport.session(p.side(), opt.resolve("side.onnx"));
             OrtSession multi = OrtSupport.session(p.multi(), opt.resolve("multi.onnx"));
             OrtLoraAdapter a1 = OrtLoraAdapter.create(p.adapterFiles().get(0).toString());
             OrtSession.RunOptions o1 = new OrtSession.RunOptions()) {
            o1.addActiveLoraAdapter(a1);
            Map<String, OnnxTensor> feeds = OrtSupport.toOrt(in);
            Map<String, Tensor> multiIn = new LinkedHashMap<>(in);
            long[] ones = new long[Bench.BATCH];
            java.util.Arrays.fill(ones, 1);
            multiIn.put(Stack.ADAPTER_INDEX, Tensor.ofLongs(new long[] {Bench.BATCH}, ones));
            Map<String, OnnxTensor> multiFeeds = OrtSupport.toOrt(multiIn);
            try {
                float[] yBase = first(base.run(feeds));
                float[] yMerged = first(merged.run(feeds));
                float[] ySide = first(side.run(feeds, o1));
                float[] yOff = first(side.run(feeds));
                float[] yMulti = first(multi.run(multiFeeds));
                double effect = relDiff(yMerged, yBase);
                double sideErr = relDiff(ySide, yMerged);
                double offErr = relDiff(yOff, yBase);
                double multiErr = relDiff(yMulti, yMerged);
                System.err.printf(Locale.ROOT, "bench: %s check: adapter effect %.2e, side vs merged %.1e, side off vs base "
                        + "%.1e, multi vs merged %.1e%n", p.workload().id(), effect, sideErr, offErr, multiErr);
                if (!(effect > 1e-3 && sideErr < 1e-3 && offErr < 1e-5 && multiErr < 1e-3)) {
                    throw new IllegalStateException("the " + p.workload().id() + " benchmark models disagree (adapter effect "
                            + effect + ", side vs merged " + sideErr + ", side off vs base " + offErr + ", multi vs merged "
                            + multiErr + "); not benchmarking them");
                }
            } finally {
                OrtSupport.close(feeds);
                OrtSupport.close(multiFeeds);
            }
        } catch (OrtException e) {
            throw new IllegalStateException("ONNX Runtime failed on the " + p.workload().id() + " fixtures: " + e.getMessage(), e);
        }
        countOptimizedOps(p, opt);
    }

    /**
     * What ONNX Runtime runs: the node count per op type of each model before and after its graph
     * optimizations, written to {@code optimized-ops.json} for the report (the optimized models
     * themselves are deleted).
     */
    static void countOptimizedOps(Prepared p, Path opt) {
        Map<String, Path> models = new LinkedHashMap<>();
        models.put("base", p.base());
        models.put("merged", p.merged());
        models.put("side", p.side());
        models.put("multi", p.multi());
        Map<String, Map<String, Map<String, Integer>>> counts = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, Path> e : models.entrySet()) {
                Map<String, Map<String, Integer>> m = new LinkedHashMap<>();
                m.put("original", opCounts(OnnxIO.read(e.getValue())));
                Path optimized = opt.resolve(e.getKey() + ".onnx");
                m.put("optimized", opCounts(OnnxIO.read(optimized)));
                counts.put(e.getKey(), m);
            }
            new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(p.opsFile().toFile(), counts);
            io.peft4j.core.util.AtomicFiles.deleteTree(opt);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static Map<String, Integer> opCounts(Model m) {
        Map<String, Integer> c = new TreeMap<>();
        for (Node n : m.graph().nodes()) {
            c.merge(n.opType(), 1, Integer::sum);
        }
        return c;
    }

    private static float[] first(OrtSession.Result r) throws OrtException {
        try (r) {
            FloatBuffer b = ((OnnxTensor) r.get(0)).getFloatBuffer();
            float[] v = new float[b.remaining()];
            b.get(v);
            return v;
        }
    }

    /** Largest absolute difference over the largest magnitude of the reference. */
    private static double relDiff(float[] a, float[] ref) {
        double d = 0;
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            d = Math.max(d, Math.abs(a[i] - ref[i]));
            m = Math.max(m, Math.abs(ref[i]));
        }
        return d / Math.max(m, 1e-30);
    }


    /** {@code Fixtures [workload...]}: prepares the fixtures ahead of a benchmark run (all workloads by default). */
    public static void main(String[] args) {
        List<Workload> ws = new ArrayList<>();
        for (String a : args) {
            for (String id : a.split(",")) {
                if (!id.isBlank()) {
                    ws.add(Workload.of(id.trim()));
                }
            }
        }
        if (ws.isEmpty()) {
            ws.addAll(List.of(Workload.values()));
        }
        try {
            for (Workload w : ws) {
                Prepared p = get(w);
                System.err.println("bench: " + w.id() + " fixtures ready in " + p.dir());
            }
        } catch (Peft4jException e) {
            System.err.println("bench: error: " + e.getMessage());
            System.exit(1);
        }
    }
}
