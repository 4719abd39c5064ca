package io.peft4j.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The report's Training section: {@link TrainBench}'s paired results, PyTorch's LoRA step from
 * {@code bench/pytorch_lora_step.py} and the peak memory from {@link TrainMemory}, the last two
 * read from the training folder that {@code bench/run} fills in the same run
 * ({@code -Dpeft4j.bench.training}, default {@code training} next to the work folder):
 * {@code pytorch-<model>.json}, {@code pytorch-skipped.txt} (why PyTorch did not run) and
 * {@code memory.jsonl}.
 */
final class TrainingReport {

    static final String BACKWARD = "TrainBench.backwardVsForward";
    static final String STEP = "TrainBench.stepVsForward";

    /** Ours / PyTorch for one LoRA step (forward, backward, AdamW): below this. */
    static final double TARGET = 1.0;

    /** What issue 4 states PyTorch 1.13 does on this machine, ms per LoRA step: the baseline when PyTorch cannot run. */
    static final Map<String, Double> STATED = Map.of("resnet18", 110.0, "mobilenet_v3_small", 60.0);

    /** Steps of PyTorch's run per block; the estimate is the mean of the blocks' medians. */
    static final int BLOCK = 5;

    private TrainingReport() {
    }

    /** The training folder. */
    static Path dir() {
        String p = System.getProperty("peft4j.bench.training");
        return p == null || p.isBlank() ? Fixtures.workDir().resolveSibling("training") : Path.of(p).toAbsolutePath();
    }

    /** PyTorch's step time for a model: measured in this run, or the figure. */
    record PyTorch(Estimate ms, boolean measured, String source) {
    }

    /** One model's row. */
    record Row(String model, Report.Paired backward, Report.Paired step, PyTorch pytorch, Estimate ratio, String verdict) {
    }

    static PyTorch pytorch(Path dir, String model) {
        Path f = dir.resolve("pytorch-" + model + ".json");
        if (Files.isRegularFile(f)) {
            try {
                JsonNode j = new ObjectMapper().readTree(f.toFile());
                List<Double> times = new ArrayList<>();
                j.path("times_ms").forEach(t -> times.add(t.asDouble()));
                List<Double> medians = new ArrayList<>();
                for (int i = 0; i + BLOCK <= times.size(); i += BLOCK) {
                    List<Double> b = new ArrayList<>(times.subList(i, i + BLOCK));
                    b.sort(null);
                    medians.add(b.get(BLOCK / 2));
                }
                if (!medians.isEmpty()) {
                    String src = "torch " + j.path("torch").asText("?") + ", " + j.path("threads").asInt() + " threads, "
                            + j.path("steps").asInt() + " steps after " + j.path("warmup").asInt() + " warm-up";
                    return new PyTorch(Estimate.of(medians), true, src);
                }
            } catch (IOException e) {
                System.err.println("bench report: warning: cannot read " + f + ": " + e.getMessage());
            }
        }
        String why = "not run";
        Path skipped = dir.resolve("pytorch-skipped.txt");
        if (Files.isRegularFile(skipped)) {
            try {
                why = Files.readString(skipped).strip();
            } catch (IOException e) {
                // keep "not run"
            }
        }
        Double stated = STATED.get(model);
        return new PyTorch(new Estimate(stated == null ? Double.NaN : stated, Double.NaN, 0), false,
                "issue 4's figure (PyTorch " + why + ")");
    }

    /** a / b with the relative errors combined (independent measurements). */
    static Estimate ratio(Estimate a, Estimate b) {
        double r = a.value() / b.value();
        double ea = a.hasError() ? a.error() / a.value() : 0;
        double eb = b.hasError() ? b.error() / b.value() : 0;
        boolean any = a.hasError() || b.hasError();
        return new Estimate(r, any ? r * Math.sqrt(ea * ea + eb * eb) : Double.NaN, Math.min(a.samples(), b.samples()));
    }

    /** A training benchmark's model (its JMH parameter is {@code model}, not {@code workload}). */
    static String model(Report.Result r) {
        return r.json().path("params").path("model").asText("");
    }

    /** What the report's table of all results names as a result's workload. */
    static String workloadOrModel(Report.Result r) {
        return r.workload().isEmpty() ? model(r) : r.workload();
    }

    private static Report.Paired find(List<Report.Result> results, String benchmark, String model) {
        return results.stream().filter(r -> r.benchmark().equals(benchmark) && model(r).equals(model)).findFirst()
                .map(Report.Result::paired).orElse(null);
    }

    static List<Row> rows(List<Report.Result> results, Path dir) {
        Set<String> models = new LinkedHashSet<>();
        for (Report.Result r : results) {
            if ((r.benchmark().equals(BACKWARD) || r.benchmark().equals(STEP)) && r.paired() != null) {
                models.add(model(r));
            }
        }
        List<Row> rows = new ArrayList<>();
        for (String m : models) {
            Report.Paired backward = find(results, BACKWARD, m);
            Report.Paired step = find(results, STEP, m);
            PyTorch py = pytorch(dir, m);
            Estimate ratio = step == null ? new Estimate(Double.NaN, Double.NaN, 0) : ratio(step.candidateMs(), py.ms());
            String verdict = step == null ? "no data" : Report.atMost(ratio, TARGET);
            rows.add(new Row(m, backward, step, py, ratio, verdict));
        }
        return rows;
    }

    static List<JsonNode> memory(Path dir) {
        List<JsonNode> out = new ArrayList<>();
        Path f = dir.resolve("memory.jsonl");
        if (!Files.isRegularFile(f)) {
            return out;
        }
        try {
            ObjectMapper om = new ObjectMapper();
            for (String line : Files.readAllLines(f)) {
                if (!line.isBlank()) {
                    out.add(om.readTree(line));
                }
            }
        } catch (IOException e) {
            System.err.println("bench report: warning: cannot read " + f + ": " + e.getMessage());
        }
        return out;
    }

    /** Appends the Training section when the training benchmarks ran. */
    static void render(StringBuilder md, List<Report.Result> results, Path dir) {
        List<Row> rows = rows(results, dir);
        List<JsonNode> mem = memory(dir);
        if (rows.isEmpty()) {   // the memory files alone may be left from another run
            return;
        }
        md.append("\n## Training\n\n");
        md.append("LoRA r = ").append(Bench.RANK).append(", alpha = ").append((long) Bench.ALPHA)
                .append(" on every Conv with groups = 1 and every Gemm; batch ").append(Training.BATCH).append(" of 3×")
                .append(Training.SIZE).append('×').append(Training.SIZE).append(" images, softmax cross-entropy; ONNX Runtime ")
                .append("CPU, one pool of ").append(Bench.THREADS).append(" intra-op threads shared by the training and the ")
                .append("forward session. *Forward*: the LoRA-injected model's inference run; *forward + backward*: one ")
                .append("`GradientSession` step (LoRA values in, loss and gradients out), paired with the forward; *full step*: ")
                .append("that plus AdamW on the LoRA tensors in Java (decoupled weight decay, PyTorch's defaults), paired with the ")
                .append("forward again. *PyTorch*: `bench/pytorch_lora_step.py`, the same step (forward, backward, AdamW over the ")
                .append("LoRA tensors) on the same weights, LoRA through forward hooks, `torch.set_num_threads(")
                .append(Bench.THREADS).append(")`, run by `bench/run` after JMH in its own process: it is not interleaved with ")
                .append("ours, so its ± covers only its own spread (the mean of the medians of blocks of ").append(BLOCK)
                .append(" steps), and the ratio's ± combines both. `bench/train-vs-pytorch` alternates the two in rounds ")
                .append("(some seconds of ours, then some PyTorch steps) on the same machine; its sections below are the comparison to quote.\n\n");
        if (!rows.isEmpty()) {
            md.append("| Model | Forward | Forward + backward | ÷ forward | Full step (+ AdamW) | PyTorch step | Ours ÷ PyTorch | ")
                    .append("Target | Verdict |\n|---|---|---|---|---|---|---|---|---|\n");
            for (Row r : rows) {
                md.append("| ").append(r.model())
                        .append(" | ").append(r.backward() == null ? "n/a" : Report.ms(r.backward().baselineMs()))
                        .append(" | ").append(r.backward() == null ? "n/a" : Report.ms(r.backward().candidateMs()))
                        .append(" | ").append(r.backward() == null ? "n/a" : Report.plusMinus(r.backward().ratio(), 2) + " ×")
                        .append(" | ").append(r.step() == null ? "n/a" : Report.ms(r.step().candidateMs()))
                        .append(" | ").append(Report.ms(r.pytorch().ms())).append(r.pytorch().measured() ? "" : " (stated)")
                        .append(" | ").append(Report.plusMinus(r.ratio(), 3)).append(" ×")
                        .append(" | < ").append(Report.fmt(TARGET, 1))
                        .append(" | **").append(r.verdict()).append("** |\n");
            }
            md.append('\n');
            for (Row r : rows) {
                md.append("- ").append(r.model()).append(": PyTorch from ").append(r.pytorch().source());
                if (r.step() != null) {
                    md.append("; the full step's forward ran ").append(Report.ms(r.step().baselineMs()))
                            .append(" (the step is ").append(Report.plusMinus(r.step().ratio(), 2)).append(" × it)");
                }
                md.append(".\n");
            }
        }
        renderMemory(md, mem);
    }

    private static void renderMemory(StringBuilder md, List<JsonNode> mem) {
        if (mem.isEmpty()) {
            return;
        }
        md.append("\n### Peak memory of the training session\n\n");
        md.append("Each row is its own JVM (`TrainMemory`, heap fixed and pre-touched so that it does not grow into the ")
                .append("figure): the model and its gradient graph are built, the peak RSS is reset, then the session opens ")
                .append("and runs its steps (training: forward, backward, AdamW). *Session peak*: the peak RSS (`VmHWM`) above ")
                .append("the RSS before the session opened — ONNX Runtime's weights (and their pre-packed copies), its arena, ")
                .append("the activations kept for the backward pass, the trainable tensors' native buffers. *Java state*: the ")
                .append("trainable values, their gradients and AdamW's two moments on the Java heap, 16 bytes per parameter, ")
                .append("counted. LoRA keeps the frozen base weights in the session as constants; full fine-tuning feeds ")
                .append("them as inputs and holds them in Java.\n\n");
        md.append("| Model | Session | Trainable parameters | Session peak | Java state | Total | Total ÷ full |\n")
                .append("|---|---|---|---|---|---|---|\n");
        Map<String, Map<String, JsonNode>> byModel = new LinkedHashMap<>();
        for (JsonNode j : mem) {
            byModel.computeIfAbsent(j.path("model").asText(), k -> new LinkedHashMap<>()).put(j.path("mode").asText(), j);
        }
        List<String> notes = new ArrayList<>();
        for (Map.Entry<String, Map<String, JsonNode>> e : byModel.entrySet()) {
            JsonNode full = e.getValue().get("full");
            double fullTotal = full == null ? Double.NaN : total(full);
            for (String mode : List.of("forward", "lora", "full")) {
                JsonNode j = e.getValue().get(mode);
                if (j == null) {
                    continue;
                }
                String what = switch (mode) {
                    case "forward" -> "inference (forward of the LoRA model)";
                    case "lora" -> "LoRA r = " + Bench.RANK;
                    default -> "full fine-tuning";
                };
                md.append("| ").append(e.getKey()).append(" | ").append(what).append(" | ")
                        .append(mode.equals("forward") ? "—" : String.format(Locale.ROOT, "%,d", j.path("parameters").asLong()))
                        .append(" | ").append(mib(j.path("sessionPeakKiB").asLong() * 1024.0))
                        .append(" | ").append(mode.equals("forward") ? "—" : mib(j.path("javaStateBytes").asDouble()))
                        .append(" | ").append(mib(total(j)))
                        .append(" | ").append(Double.isNaN(fullTotal) ? "n/a" : Report.fmt(total(j) / fullTotal, 2) + " ×")
                        .append(" |\n");
                if (!j.path("peakReset").asBoolean(true)) {
                    notes.add(e.getKey() + " " + mode + ": the peak RSS could not be reset, so its peak includes what came "
                            + "before the session");
                }
            }
            if (full != null && full.path("frozenGroupedConvWeights").asLong() > 0) {
                notes.add(e.getKey() + ": full fine-tuning leaves the weights of its " + full.path("frozenGroupedConvWeights")
                        .asLong() + " grouped (depthwise) Convs frozen (" + String.format(Locale.ROOT, "%,d",
                        full.path("frozenGroupedConvParameters").asLong()) + " parameters): the weight gradient of a Conv "
                        + "with groups > 1 has no rule yet, so its figures are slightly low");
            }
        }
        md.append('\n');
        notes.add("Full fine-tuning trains every float initializer except BatchNorm's running statistics (BatchNormalization "
                + "stays in inference mode)");
        for (String n : notes) {
            md.append("- ").append(n).append(".\n");
        }
    }

    private static double total(JsonNode j) {
        return j.path("sessionPeakKiB").asLong() * 1024.0 + j.path("javaStateBytes").asDouble();
    }

    private static String mib(double bytes) {
        return Report.fmt(bytes / (1 << 20), 1) + " MiB";
    }

    /** The verdict lines, for the terminal. */
    static String summary(List<Report.Result> results, Path dir) {
        StringBuilder sb = new StringBuilder();
        for (Row r : rows(results, dir)) {
            sb.append(String.format(Locale.ROOT, "%-9s %-90s %s%n", r.model(), "LoRA training step (+ AdamW) vs PyTorch "
                    + (r.pytorch().measured() ? "(measured)" : "(issue's figure)"), Report.plusMinus(r.ratio(), 3) + "  < "
                    + Report.fmt(TARGET, 1) + "  " + r.verdict()));
        }
        return sb.toString();
    }
}
