package io.peft4j.bench;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.adapter.PeftKey;
import io.peft4j.core.modules.TargetFinder;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.peft.InjectMode;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.peft.lora.LoraMethod;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.trainer.autodiff.GradientBuilder;
import io.peft4j.trainer.autodiff.GradientGraph;
import io.peft4j.trainer.autodiff.Losses;
import io.peft4j.trainer.optim.AdamW;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * What the training benchmarks run ({@link TrainBench}, {@link TrainMemory}): the shared vision
 * models at batch {@link #BATCH} of 3×{@value #SIZE}×{@value #SIZE} images with labels, LoRA
 * r = {@link Bench#RANK} (alpha {@link Bench#ALPHA}) on every Conv with groups = 1 and every Gemm,
 * softmax cross-entropy on the logits, and AdamW with PyTorch's defaults. The same settings are
 * passed to {@code bench/pytorch_lora_step.py}, the PyTorch baseline.
 */
public final class Training {

    /** Images per training batch. */
    public static final int BATCH = 16;
    /** Image height and width. */
    public static final int SIZE = 64;
    /** Classes of the shared models (labels are 0, 1, …, 5, 0, …). */
    public static final int CLASSES = 6;

    private Training() {
    }

    /** A model the training benchmarks run, from {@code ../shared/models}. */
    public enum TrainModel {
        RESNET18("resnet18"),
        MOBILENET_V3_SMALL("mobilenet_v3_small");

        private final String id;

        TrainModel(String id) {
            this.id = id;
        }

        /** The JMH parameter value and the name in the report; also the ONNX file's base name. */
        public String id() {
            return id;
        }

        public Path file() {
            Path p = Workload.sharedDir().resolve("models").resolve(id + ".onnx");
            if (!Files.isRegularFile(p)) {
                throw Peft4jException.notFound("the training benchmarks need " + p + " (the project's ../shared folder; "
                        + "set -Dpeft4j.shared=DIR or PEFT4J_SHARED to point elsewhere)");
            }
            return p;
        }

        public static TrainModel of(String id) {
            String s = id.toLowerCase(Locale.ROOT);
            for (TrainModel m : values()) {
                if (m.id.equals(s)) {
                    return m;
                }
            }
            if (s.equals("mobilenet")) {
                return MOBILENET_V3_SMALL;
            }
            throw Peft4jException.invalid("unknown training model '" + id + "'; known: resnet18, mobilenet_v3_small");
        }
    }

    /**
     * A model ready to train.
     *
     * @param model     the model (with the LoRA tensors injected as initializers, for LoRA)
     * @param forward   the model as ONNX bytes, before the gradient graph was built: what inference runs
     * @param graph     the gradient graph (loss and the gradients of {@code params}' tensors)
     * @param params    trainable tensor → its initial values (fresh arrays)
     * @param batch     the batch: {@code input} and {@code labels}
     * @param frozen    float initializers left out of full fine-tuning, with the reason (empty for LoRA)
     * @param buildMs   time to build the gradient graph
     */
    public record Setup(TrainModel which, String mode, Model model, byte[] forward, GradientGraph graph,
                        Map<String, float[]> params, Map<String, Tensor> batch, Map<String, String> frozen, double buildMs) {

        public long parameters() {
            long n = 0;
            for (float[] v : params.values()) {
                n += v.length;
            }
            return n;
        }

        /** A fresh copy of the initial trainable values (an optimizer updates its copy in place). */
        public Map<String, float[]> paramsCopy() {
            Map<String, float[]> m = new LinkedHashMap<>();
            params.forEach((k, v) -> m.put(k, v.clone()));
            return m;
        }
    }

    /** LoRA r = {@link Bench#RANK} on every Conv with groups = 1 and every Gemm; A as PEFT initialises it, B random. */
    public static Setup lora(TrainModel which) {
        Model m = OnnxIO.read(which.file());
        List<String> modules = loraModules(m);
        String regex = String.join("|", modules.stream().map(Pattern::quote).toList());
        // a full-match regex: exactly these modules, no suffix matching
        AdapterConfig config = new AdapterConfig("LORA", Bench.RANK, Bench.ALPHA, List.of(), regex, 0.0, "none", false,
                false, false, List.of(), Map.of(), Map.of(), List.of(), null, Map.of());
        AdapterBundle fresh = AdapterBinding.init(m, config, 7);
        Random r = new Random(8);
        Map<String, Tensor> tensors = new TreeMap<>(fresh.tensors());
        for (Map.Entry<String, Tensor> e : fresh.tensors().entrySet()) {
            if (PeftKey.parse(e.getKey()).role().equals(LoraMethod.B)) {
                // PEFT starts B at zero, which makes A's gradients zero; a trained adapter's B is not
                float[] b = new float[Math.toIntExact(e.getValue().numel())];
                for (int i = 0; i < b.length; i++) {
                    b[i] = (float) (r.nextGaussian() * Bench.B_SIGMA);
                }
                tensors.put(e.getKey(), Tensor.ofFloats(e.getValue().shape(), b));
            }
        }
        Peft.Injection inj = Peft.inject(m, AdapterBinding.bind(m, new AdapterBundle(fresh.config(), tensors)),
                InjectMode.INITIALIZERS);
        return build(which, "lora", m, inj.trainable(), Map.of());
    }

    /** The module paths LoRA adapts: every Conv with groups = 1 and every Gemm. */
    public static List<String> loraModules(Model m) {
        return TargetFinder.find(m.graph()).stream()
                .filter(t -> (t.kind() == TargetLayer.Kind.CONV && t.groups() == 1) || t.opType().equals("Gemm"))
                .map(TargetLayer::path).toList();
    }

    /**
     * Full fine-tuning: every float initializer trainable (grouped and depthwise Conv weights
     * included), except BatchNorm's running statistics (frozen: BatchNormalization stays in
     * inference mode).
     */
    public static Setup full(TrainModel which) {
        Model m = OnnxIO.read(which.file());
        List<String> trainable = new ArrayList<>();
        Map<String, String> frozen = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : m.graph().initializers().entrySet()) {
            String name = e.getKey();
            if (!e.getValue().dtype().isFloatingPoint()) {
                continue;
            }
            if (name.endsWith("running_mean") || name.endsWith("running_var")) {
                frozen.put(name, "BatchNorm statistics");
            } else {
                trainable.add(name);
            }
        }
        return build(which, "full", m, trainable, frozen);
    }

    private static Setup build(TrainModel which, String mode, Model m, List<String> trainable, Map<String, String> frozen) {
        byte[] forward = OnnxIO.toBytes(m);
        long t0 = System.nanoTime();
        GradientGraph gg = GradientBuilder.build(m, trainable, Losses.softmaxCrossEntropy("logits"));
        double buildMs = (System.nanoTime() - t0) / 1e6;
        Map<String, float[]> params = new LinkedHashMap<>();
        for (String t : gg.trainable()) {
            params.put(t, m.graph().initializer(t).toFloatArray());
        }
        return new Setup(which, mode, m, forward, gg, params, batch(42), frozen, buildMs);
    }

    /** A batch of {@link #BATCH} N(0, 1) images with labels 0, 1, …, 5, 0, … */
    public static Map<String, Tensor> batch(long seed) {
        Random r = new Random(seed);
        long[] shape = {BATCH, 3, SIZE, SIZE};
        float[] v = new float[Math.toIntExact(Tensor.numel(shape))];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) r.nextGaussian();
        }
        long[] labels = new long[BATCH];
        for (int i = 0; i < BATCH; i++) {
            labels[i] = i % CLASSES;
        }
        Map<String, Tensor> m = new LinkedHashMap<>();
        m.put("input", Tensor.ofFloats(shape, v));
        m.put("labels", Tensor.ofLongs(new long[] {BATCH}, labels));
        return m;
    }

    /** The optimizer of every benchmark step: AdamW with PyTorch's defaults (lr 1e-3, weight decay 1e-2). */
    public static AdamW optimizer() {
        return new AdamW(AdamW.Settings.defaults());
    }

    /**
     * Session options as {@link OrtSupport#session} sets them: the environment's shared pool of
     * {@link Bench#THREADS} intra-op threads, sequential execution, all graph optimizations. The
     * caller closes them.
     */
    public static OrtSession.SessionOptions options() throws OrtException {
        OrtSupport.env();
        OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        try {
            o.disablePerSessionThreads();
            o.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
            o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            return o;
        } catch (OrtException | RuntimeException e) {
            o.close();
            throw e;
        }
    }

    /** Mean softmax cross-entropy of {@code logits} [batch, classes] against {@code labels}, in double. */
    static double crossEntropy(float[] logits, long[] labels) {
        int n = labels.length;
        int c = logits.length / n;
        double sum = 0;
        for (int i = 0; i < n; i++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < c; j++) {
                max = Math.max(max, logits[i * c + j]);
            }
            double z = 0;
            for (int j = 0; j < c; j++) {
                z += Math.exp(logits[i * c + j] - max);
            }
            sum += Math.log(z) + max - logits[i * c + (int) labels[i]];
        }
        return sum / n;
    }
}
