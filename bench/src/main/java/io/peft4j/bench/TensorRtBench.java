package io.peft4j.bench;

import ai.onnxruntime.OrtEnvironment;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.AdapterSelection;
import io.peft4j.devices.InferenceBackend;
import io.peft4j.devices.ort.OrtBackend;
import io.peft4j.devices.trt.EngineSettings;
import io.peft4j.devices.trt.TensorRt;
import io.peft4j.devices.trt.TensorRtBackend;
import io.peft4j.exporter.ExportOptions;
import io.peft4j.exporter.Exporter;
import io.peft4j.exporter.NamedAdapter;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;

/**
 * The TensorRT measurements of issue 7, on resnet18 with the bench's LoRA adapters (every Conv
 * and fc, rank {@value Bench#RANK}), on a machine with a GPU and TensorRT: engine build time (fp32,
 * fp16), fp16 latency against the fp32 engine and ONNX Runtime on the CPU measured in the same run
 * (ONNX Runtime's CUDA provider where the onnxruntime_gpu jar is on the class path), refit time
 * against a rebuild, and the cost of switching side adapters (bind other buffers) and merged
 * adapters (refit). Writes a Markdown section.
 *
 * <pre>java -cp ... io.peft4j.bench.TensorRtBench [--out FILE] [--iters N]</pre>
 */
public final class TensorRtBench {

    private TensorRtBench() {
    }

    public static void main(String[] args) throws IOException {
        Path outFile = null;
        int iters = 300;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--out" -> outFile = Path.of(args[++i]);
                case "--iters" -> iters = Integer.parseInt(args[++i]);
                default -> throw new IllegalArgumentException("unknown argument " + args[i] + " (--out FILE, --iters N)");
            }
        }
        TensorRt.Availability a = TensorRt.availability();
        if (!a.usable()) {
            System.err.println("TensorRtBench: TensorRT is not usable here: " + a.reason());
            System.exit(2);
        }
        Path work = Files.createTempDirectory("peft4j-trt-bench");
        Path baseFile = Workload.RESNET18.source(work);
        Model base = OnnxIO.read(baseFile);
        AdapterBundle ad1 = Fixtures.adapter(Workload.RESNET18, base, 1);
        AdapterBundle ad2 = Fixtures.adapter(Workload.RESNET18, base, 2);
        List<NamedAdapter> both = List.of(new NamedAdapter("a", ad1), new NamedAdapter("b", ad2));
        Path merged = work.resolve("merged");
        Path side = work.resolve("side");
        Exporter.export(OnnxIO.read(baseFile), both.subList(0, 1), ExportOptions.of(Manifest.Mode.merged), merged);
        Exporter.export(OnnxIO.read(baseFile), both, ExportOptions.of(Manifest.Mode.side), side);

        StringBuilder md = new StringBuilder();
        TensorRt.Gpu gpu = a.gpus().get(0);
        md.append(String.format(Locale.ROOT, "GPU: %s (compute %s, %.0f GiB), TensorRT %s, CUDA %s, %d CPU cores; %s; "
                        + "%d timed runs per row after 50 warm-up runs, median and p99.%n%n", gpu.name(), gpu.computeCapability(),
                gpu.memoryBytes() / (double) (1L << 30), a.version(), a.cuda(), Runtime.getRuntime().availableProcessors(),
                Instant.now(), iters));

        EngineSettings fp16 = EngineSettings.defaults().withBatch(8, 32);
        EngineSettings fp32 = fp16.withPrecision("fp32");
        md.append("| what | fp32 | fp16 |\n|---|---|---|\n");
        double build32;
        double build16;
        try (TensorRtBackend t32 = TensorRtBackend.open(merged, fp32); TensorRtBackend t16 = TensorRtBackend.open(merged, fp16)) {
            build32 = t32.engineBuild().buildSeconds();
            build16 = t16.engineBuild().buildSeconds();
            md.append(String.format(Locale.ROOT, "| engine build, resnet18 merged (batch 1..32, opt 8) | %.1f s | %.1f s |%n%n",
                    build32, build16));
            md.append("| resnet18 merged, latency per call | batch 1 median / p99 | batch 8 median / p99 | vs TensorRT fp16 (batch 8) |\n"
                    + "|---|---|---|---|\n");
            double[] r16 = latency(t16, null, iters);
            double[] r32 = latency(t32, null, iters);
            md.append(row("TensorRT fp16", r16, r16[2]));
            md.append(row("TensorRT fp32 (no TF32)", r32, r16[2]));
            try (OrtBackend cpu = OrtBackend.open(merged, new OrtBackend.Options(Runtime.getRuntime().availableProcessors(), 1))) {
                double[] rc = latency(cpu, null, Math.max(20, iters / 10));
                md.append(row("ONNX Runtime CPU (" + Runtime.getRuntime().availableProcessors() + " threads)", rc, r16[2]));
            }
            Set<String> providers = OrtEnvironment.getAvailableProviders().stream().map(Object::toString)
                    .collect(java.util.stream.Collectors.toSet());
            md.append("\nONNX Runtime providers on this class path: ").append(providers)
                    .append(providers.contains("CUDA") ? "" : " — no CUDA provider, so no ONNX Runtime GPU baseline in this run")
                    .append(".\n\n");
        }

        md.append("| adapter switching, resnet18, batch 8, fp16 | median / p99 per call |\n|---|---|\n");
        try (TensorRtBackend ts = TensorRtBackend.open(side, fp16)) {
            double[] same = latency(ts, new String[] {"a"}, iters);
            double[] alt = latency(ts, new String[] {"a", "b"}, iters);
            double[] off = latency(ts, new String[] {null}, iters);
            md.append(String.format(Locale.ROOT, "| side package, same adapter every call | %s |%n", ms(same[2], same[3])));
            md.append(String.format(Locale.ROOT, "| side package, adapter a, b, a, … (each call switches) | %s |%n", ms(alt[2], alt[3])));
            md.append(String.format(Locale.ROOT, "| side package, no adapter (base) | %s |%n", ms(off[2], off[3])));
            md.append(String.format(Locale.ROOT, "| → switch cost (alternating − same, medians) | %+.3f ms |%n", alt[2] - same[2]));
        }
        EngineSettings refit = fp16.withRefittable(true);
        try (TensorRtBackend tr = TensorRtBackend.open(baseFile, refit)) {
            double buildRefittable = tr.engineBuild().buildSeconds();
            tr.register("a", ad1);
            tr.register("b", ad2);
            Map<String, Tensor> in = input(8);
            List<Double> refits = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                tr.run(in, i % 2 == 0 ? "a" : "b");
                refits.add(tr.lastRefitSeconds());
            }
            double[] rs = refits.stream().skip(1).mapToDouble(Double::doubleValue).sorted().toArray();
            double refitMedian = rs[rs.length / 2];
            md.append(String.format(Locale.ROOT, "| merged adapter switch by refit (base + adapter, %d weights), median of %d | %.1f ms |%n",
                    refitWeights(ad1), rs.length, refitMedian * 1e3));
            md.append(String.format(Locale.ROOT, "| rebuilding the fp16 engine instead (measured above) | %.1f s → refit is %.0f× faster |%n",
                    build16, build16 / refitMedian));
            md.append(String.format(Locale.ROOT, "| refittable fp16 engine build | %.1f s |%n", buildRefittable));
        }
        String text = md.toString();
        System.out.println(text);
        if (outFile != null) {
            Files.writeString(outFile, text, StandardCharsets.UTF_8);
        }
    }

    private static int refitWeights(AdapterBundle b) {
        return (int) b.tensors().keySet().stream().filter(k -> k.contains("lora_A")).count();
    }

    private static Map<String, Tensor> input(int batch) {
        Random r = new Random(42);
        float[] v = new float[batch * 3 * 64 * 64];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return Map.of("input", Tensor.ofFloats(new long[] {batch, 3, 64, 64}, v));
    }

    /** {batch-1 median, batch-1 p99, batch-8 median, batch-8 p99} in ms; adapters cycle per call. */
    private static double[] latency(InferenceBackend b, String[] adapters, int iters) {
        double[] out = new double[4];
        int k = 0;
        for (int batch : new int[] {1, 8}) {
            Map<String, Tensor> in = input(batch);
            double[] t = new double[iters];
            for (int i = -50; i < iters; i++) {
                String a = adapters == null ? null : adapters[Math.floorMod(i, adapters.length)];
                long t0 = System.nanoTime();
                b.run(in, AdapterSelection.of(a), Set.of());
                if (i >= 0) {
                    t[i] = (System.nanoTime() - t0) / 1e6;
                }
            }
            Arrays.sort(t);
            out[k++] = t[iters / 2];
            out[k++] = t[Math.min(iters - 1, (int) Math.ceil(iters * 0.99) - 1)];
        }
        return out;
    }

    private static String row(String what, double[] r, double ref) {
        return String.format(Locale.ROOT, "| %s | %s | %s | %.2f× |%n", what, ms(r[0], r[1]), ms(r[2], r[3]), r[2] / ref);
    }

    private static String ms(double median, double p99) {
        return String.format(Locale.ROOT, "%.3f / %.3f ms", median, p99);
    }
}
