package io.peft4j.trainer.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.util.AtomicFiles;
import io.peft4j.trainer.GradientSession;
import io.peft4j.trainer.autodiff.GradientBuilder;
import io.peft4j.trainer.autodiff.GradientGraph;
import io.peft4j.trainer.autodiff.Losses;
import io.peft4j.trainer.data.Batch;
import io.peft4j.trainer.data.BatchLoader;
import io.peft4j.trainer.data.Splits;
import io.peft4j.trainer.data.Dataset;
import io.peft4j.trainer.optim.AdamW;
import io.peft4j.trainer.optim.GradClip;
import io.peft4j.trainer.optim.LrSchedule;
import io.peft4j.trainer.optim.Optimizer;
import io.peft4j.trainer.optim.Sgd;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The training loop: mini-batches of the training data through forward, softmax cross-entropy and
 * backward in one ONNX Runtime session ({@link GradientSession}), gradient clipping, the optimizer
 * and its learning-rate schedule; an evaluation on the validation data after each epoch, early
 * stopping on a monitored metric, a NaN/Inf guard, checkpoints and resuming, {@code metrics.jsonl}
 * (a line per step and per evaluation), and at the end the adapter bundle (or the trained model)
 * with {@code metrics.json}.
 *
 * <p>A run is a function of its settings and data: the order of each epoch comes from
 * ({@code seed}, epoch), each batch's augmentation from ({@code seed}, epoch, batch), and a run
 * resumed from a checkpoint continues exactly as the uninterrupted run would have.
 */
public final class Trainer {

    /** Threads that prepare batches ahead of the step (images are decoded and cached when the data opens). */
    private static final int LOADER_THREADS = 1;

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private static final ObjectMapper LINE = new ObjectMapper();

    private final TrainSettings s;
    private final TrainListener listener;

    public Trainer(TrainSettings settings, TrainListener listener) {
        this.s = settings.validate();
        this.listener = listener == null ? new TrainListener() { } : listener;
    }

    /** Trains on {@code train}, evaluating on {@code val} (null: no validation), and writes the results. */
    public TrainResult run(Dataset train, Dataset val) {
        long started = System.nanoTime();
        if (train.size() == 0) {
            throw Peft4jException.invalid("the training data is empty");
        }
        TrainingModel tm = TrainingModel.prepare(s);
        int k = tm.classes();
        checkLabels("training", train, k);
        if (val != null) {
            checkLabels("validation", val, k);
            if (!val.classes().equals(train.classes())) {
                throw Peft4jException.invalid("the validation data's classes " + val.classes() + " differ from the training "
                        + "data's " + train.classes());
            }
        }
        try {
            Files.createDirectories(s.out);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot create " + s.out + ": " + e.getMessage(), e);
        }

        io.peft4j.core.onnx.Model graphModel = tm.model();
        boolean dropout = tm.dropout() > 0;
        if (dropout) {
            // the training graph alone gets LoRA dropout; evaluation runs the adapter as inference does
            graphModel = OnnxIO.read(OnnxIO.toBytes(tm.model()), "the training model");
            int n = LoraDropout.apply(graphModel, tm.dropout());
            listener.message(String.format(java.util.Locale.ROOT, "LoRA dropout %.3g on the input of %d modules", tm.dropout(), n));
        }
        GradientGraph gg = GradientBuilder.build(graphModel, tm.trainable(), Losses.softmaxCrossEntropy(tm.logits()));
        int perEpoch = (train.size() + s.batch - 1) / s.batch;
        long total = s.steps > 0 ? s.steps : (long) s.epochs * perEpoch;
        LrSchedule schedule = new LrSchedule(s.schedule, s.lr, s.warmupSteps, total);
        Optimizer opt = s.optimizer.equals("sgd") ? new Sgd(s.momentum, s.weightDecayValue())
                : new AdamW(AdamW.Settings.defaults().withLr(s.lr).withWeightDecay(s.weightDecayValue()));
        Map<String, float[]> params = new LinkedHashMap<>();
        tm.initial().forEach((n, v) -> params.put(n, v.clone()));
        JsonNode settingsJson = json(comparable(s.toMap()));

        long step = 0;
        int epoch = 0;
        long nextBatch = 0;
        Map<String, float[]> best = new LinkedHashMap<>();
        double bestMetric = Double.NaN;
        long bestStep = -1;
        int sinceBest = 0;
        Path metricsLog = s.out.resolve("metrics.jsonl");
        List<Map<String, Object>> history = new ArrayList<>();
        Map<String, long[]> shapes = new LinkedHashMap<>();
        for (String t : tm.trainable()) {
            shapes.put(t, tm.model().graph().initializer(t).shape());
        }
        if (s.resume) {
            Checkpoint c = Checkpoint.latest(s.out, shapes);
            if (c == null) {
                listener.message("no checkpoint in " + s.out.resolve(Checkpoint.DIR) + ": starting from the beginning");
            } else {
                if (!c.settings().equals(settingsJson)) {
                    throw Peft4jException.invalid("cannot resume: the checkpoint " + c.step() + " was made with other "
                            + "settings; resume with the same command (differences: " + diff(c.settings(), settingsJson) + ")");
                }
                if (!c.optimizer().equals(opt.name())) {
                    throw Peft4jException.invalid("cannot resume: the checkpoint used " + c.optimizer());
                }
                params.putAll(c.params());
                opt.restore(c.optState(), c.optSteps());
                step = c.step();
                epoch = c.epoch();
                nextBatch = c.nextBatch();
                best.putAll(c.best());
                bestMetric = c.bestMetric();
                bestStep = c.bestStep();
                sinceBest = c.sinceBest();
                history.addAll(truncateLog(metricsLog, step));
                listener.message("resumed from checkpoint at step " + step + " (epoch " + (epoch + 1) + ")");
            }
        } else {
            deleteQuietly(metricsLog);
        }

        List<Double> stepMs = new ArrayList<>();
        Evaluation lastEval = null;
        boolean stoppedEarly = false;
        String stopReason = step >= total ? "nothing left to do" : null;
        long dataWait = 0;
        try (GradientSession session = new GradientSession(gg, s.threads);
             ForwardSession eval = val == null ? null : new ForwardSession(tm.model(), tm.trainable(), tm.logits(), s.threads);
             BufferedWriter log = Files.newBufferedWriter(metricsLog, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                     StandardOpenOption.APPEND)) {
            listener.started(step, total, perEpoch);
            Path lastCheckpoint = null;
            while (step < total && !stoppedEarly) {
                int[] order = s.shuffle ? Splits.shuffled(train.size(), s.seed, epoch) : identity(train.size());
                try (BatchLoader loader = new BatchLoader(train, order, s.batch, s.seed, epoch, s.augment, LOADER_THREADS)
                        .startAt(Math.toIntExact(nextBatch))) {
                while (nextBatch < perEpoch && step < total) {
                    Batch b = loader.next();
                    Map<String, Tensor> feeds = new LinkedHashMap<>(b.inputs());
                    feeds.put("labels", Tensor.ofLongs(new long[] {b.size()}, b.labels()));
                    if (dropout) {
                        feeds.put(LoraDropout.SEED_INPUT, Tensor.ofLongs(new long[] {1}, LoraDropout.stepSeed(s.seed, step)));
                    }
                    long t0 = System.nanoTime();
                    GradientSession.Step st = session.step(feeds, params);
                    double norm = GradClip.clip(new LinkedHashMap<>(st.gradients()), s.maxGradNorm);
                    if (!Double.isFinite(st.loss()) || !Double.isFinite(norm)) {
                        throw new Peft4jException(ErrorCode.INVALID_ARGUMENT, "training diverged at step " + (step + 1)
                                + " (epoch " + (epoch + 1) + "): the " + (Double.isFinite(st.loss()) ? "gradient norm" : "loss")
                                + " is " + (Double.isFinite(st.loss()) ? norm : st.loss()) + "; nothing was updated or written "
                                + "after step " + step + (lastCheckpoint != null ? "; the last good checkpoint is " + lastCheckpoint
                                : "") + ". Lower --lr, or clip with --max-grad-norm");
                    }
                    double lr = schedule.at(step);
                    opt.step(params, st.gradients(), lr);
                    stepMs.add((System.nanoTime() - t0) / 1e6);
                    step++;
                    nextBatch++;
                    Map<String, Object> line = new LinkedHashMap<>();
                    line.put("type", "step");
                    line.put("step", step);
                    line.put("epoch", epoch + 1);
                    line.put("loss", st.loss());
                    line.put("lr", lr);
                    line.put("grad_norm", norm);
                    line.put("batch", b.size());
                    writeLine(log, line);
                    history.add(line);
                    listener.step(step, total, st.loss(), lr);
                    if (s.checkpointEvery > 0 && step % s.checkpointEvery == 0 && step < total) {
                        log.flush();
                        int ce = nextBatch >= perEpoch ? epoch + 1 : epoch;
                        long cb = nextBatch >= perEpoch ? 0 : nextBatch;
                        lastCheckpoint = new Checkpoint(step, ce, cb, params, opt.name(), opt.steps(), opt.state(), best,
                                bestMetric, bestStep, sinceBest, settingsJson).write(s.out);
                    }
                }
                dataWait += loader.waitedNanos();
                }
                boolean epochDone = nextBatch >= perEpoch;
                if (epochDone) {
                    epoch++;
                    nextBatch = 0;
                }
                if (val != null && (epochDone || step >= total)) {
                    lastEval = evaluate(eval, val, params, k);
                    Map<String, Object> line = new LinkedHashMap<>();
                    line.put("type", "eval");
                    line.put("step", step);
                    line.put("epoch", epochDone ? epoch : epoch + 1);
                    line.put("val_loss", lastEval.loss());
                    line.put("val_accuracy", lastEval.accuracy());
                    line.put("val_macro_f1", lastEval.macroF1());
                    writeLine(log, line);
                    history.add(line);
                    listener.evaluated(epochDone ? epoch : epoch + 1, step, lastEval);
                    double m = lastEval.metric(s.monitor);
                    boolean lowerIsBetter = s.monitor.equals("val_loss");
                    if (Double.isNaN(bestMetric) || (lowerIsBetter ? m < bestMetric : m > bestMetric)) {
                        bestMetric = m;
                        bestStep = step;
                        sinceBest = 0;
                        if (s.patience > 0) {
                            best.clear();
                            params.forEach((n, v) -> best.put(n, v.clone()));
                        }
                    } else {
                        sinceBest++;
                        if (s.patience > 0 && sinceBest >= s.patience) {
                            stoppedEarly = true;
                            stopReason = "early stopping: " + s.monitor + " did not improve for " + s.patience
                                    + " evaluations (best " + fmt(bestMetric) + " at step " + bestStep + ")";
                            listener.message(stopReason);
                        }
                    }
                }
                if (epochDone && s.checkpointEvery == 0 && step < total && !stoppedEarly) {
                    log.flush();
                    lastCheckpoint = new Checkpoint(step, epoch, nextBatch, params, opt.name(), opt.steps(), opt.state(), best,
                            bestMetric, bestStep, sinceBest, settingsJson).write(s.out);
                }
            }
            log.flush();
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot write " + metricsLog + ": " + e.getMessage(), e);
        }
        listener.finished();

        Map<String, float[]> result = s.patience > 0 && !best.isEmpty() ? best : params;
        if (result == best && val != null && bestStep != step) {
            listener.message("keeping the best values (" + s.monitor + " " + fmt(bestMetric) + " at step " + bestStep + ")");
        }
        Map<String, Object> metrics = metrics(tm, train, val, stepMs, lastEval, step, total, stoppedEarly, stopReason,
                bestMetric, bestStep, started);
        // time the loop waited for the data loader (decoding, augmentation): near 0 when data keeps up
        metrics.put("data_wait_s", dataWait / 1e9);
        Path output = writeResult(tm, result, metrics, train, val);
        metrics.put("output", output.toString());
        metrics.put(tm.method().writesAdapter() ? "adapter_bytes" : "model_bytes", sizeOf(output));
        writeJson(s.out.resolve("metrics.json"), metrics);
        try {
            Curves.write(s.out.resolve("curves.png"), history, s.monitor);
        } catch (RuntimeException e) {
            listener.message("could not draw the training curves: " + e.getMessage());
        }
        return new TrainResult(output, tm.method().writesAdapter(), metrics, lastEval);
    }

    /** As JSON read back from text, so that it compares equal to what a checkpoint holds. */
    private static JsonNode json(Object v) {
        try {
            return LINE.readTree(LINE.writeValueAsString(v));
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Map<String, Object> comparable(Map<String, Object> m) {
        Map<String, Object> c = new LinkedHashMap<>(m);
        c.remove("threads");
        return c;
    }

    private static String diff(JsonNode a, JsonNode b) {
        List<String> d = new ArrayList<>();
        a.fieldNames().forEachRemaining(f -> {
            if (!a.get(f).equals(b.get(f))) {
                d.add(f + ": " + a.get(f) + " → " + b.get(f));
            }
        });
        b.fieldNames().forEachRemaining(f -> {
            if (!a.has(f)) {
                d.add(f + ": (none) → " + b.get(f));
            }
        });
        return String.join(", ", d);
    }

    private static void checkLabels(String what, Dataset d, int classes) {
        if (d.classes().size() > classes) {
            throw Peft4jException.shape("the " + what + " data has " + d.classes().size() + " classes " + d.classes()
                    + ", but the model's logits have " + classes + "; give --head-classes " + d.classes().size()
                    + " to train a new classification head");
        }
    }

    private static int[] identity(int n) {
        int[] o = new int[n];
        for (int i = 0; i < n; i++) {
            o[i] = i;
        }
        return o;
    }

    /** A seed derived from (seed, a, b), for per-step values such as dropout masks. */
    static long mix(long seed, long a, long b) {
        return Splits.mix(seed, a, b);
    }

    private Evaluation evaluate(ForwardSession eval, Dataset val, Map<String, float[]> params, int k) {
        Evaluation.Accumulator acc = new Evaluation.Accumulator(k);
        int n = val.size();
        for (int from = 0; from < n; from += s.batch) {
            int[] idx = new int[Math.min(s.batch, n - from)];
            for (int i = 0; i < idx.length; i++) {
                idx[i] = from + i;
            }
            Batch b = val.batch(idx, null);
            acc.add(eval.logits(b.inputs(), params), b.labels());
        }
        return acc.finish(val.classes());
    }

    private Map<String, Object> metrics(TrainingModel tm, Dataset train, Dataset val, List<Double> stepMs,
                                        Evaluation e, long steps, long total, boolean early, String why, double bestMetric,
                                        long bestStep, long started) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("method", tm.method().cli());
        m.put("steps", steps);
        m.put("planned_steps", total);
        m.put("train_examples", train.size());
        m.put("val_examples", val == null ? 0 : val.size());
        m.put("classes", train.classes());
        m.put("train_step_ms_median", median(stepMs));
        m.put("steps_timed", stepMs.size());
        m.put("peak_rss_mb", peakRssMb());
        m.put("trainable_params", tm.trainableParameters());
        m.put("total_params", tm.totalParameters());
        m.put("base_params", tm.baseParameters());
        m.put("base_bytes", tm.baseBytes());
        m.put("time_s", (System.nanoTime() - started) / 1e9);
        m.put("stopped_early", early);
        if (why != null) {
            m.put("stop_reason", why);
        }
        if (val != null && bestStep >= 0) {
            m.put("best_" + s.monitor, bestMetric);
            m.put("best_step", bestStep);
        }
        if (e != null) {
            m.put("val", e.toMap());
        }
        if (!tm.frozen().isEmpty()) {
            m.put("frozen", tm.frozen());
        }
        return m;
    }

    private Path writeResult(TrainingModel tm, Map<String, float[]> values, Map<String, Object> metrics, Dataset train,
                             Dataset val) {
        Map<String, Object> training = new LinkedHashMap<>();
        String impl = Trainer.class.getPackage().getImplementationVersion();
        training.put("toolkit", "peft4j " + (impl == null ? "dev" : impl));
        training.put("created", Instant.now().toString());
        training.put("settings", s.toMap());
        training.put("data", Map.of("train", train.describe(), "val", val == null ? "none" : val.describe()));
        training.put("labels", train.classes());
        Map<String, Object> summary = new LinkedHashMap<>();
        for (String key : List.of("steps", "train_step_ms_median", "trainable_params", "total_params")) {
            summary.put(key, metrics.get(key));
        }
        if (metrics.get("val") instanceof Map<?, ?> v) {
            summary.put("val_accuracy", v.get("accuracy"));
            summary.put("val_macro_f1", v.get("macro_f1"));
        }
        training.put("metrics", summary);
        training.put("onnxruntime", ai.onnxruntime.OrtEnvironment.getEnvironment().getVersion());
        training.put("java", System.getProperty("java.version"));
        training.put("os", System.getProperty("os.name") + " " + System.getProperty("os.arch"));
        if (tm.method().writesAdapter()) {
            AdapterBundle bundle = tm.bundle(values, Map.of("training", LINE.valueToTree(training)));
            bundle.write(s.out);
            return s.out;
        }
        io.peft4j.core.onnx.Model m = tm.trainedModel(values);
        m.metadata().put("peft4j.training", LINE.valueToTree(training).toString());
        m.metadata().put("peft4j.labels", String.join("\n", train.classes()));
        Path file = s.out.resolve("model.onnx");
        OnnxIO.write(m, file);
        return file;
    }

    private static long sizeOf(Path p) {
        try {
            if (Files.isDirectory(p)) {
                return Files.size(p.resolve(AdapterBundle.WEIGHTS_FILE));
            }
            long n = Files.size(p);
            Path data = Path.of(p + ".data");
            return Files.exists(data) ? n + Files.size(data) : n;
        } catch (IOException e) {
            return -1;
        }
    }

    static double median(List<Double> v) {
        if (v.isEmpty()) {
            return Double.NaN;
        }
        double[] a = v.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return a.length % 2 == 1 ? a[a.length / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
    }

    /** Peak resident memory of this process in MiB (Linux's VmHWM), or -1 where it cannot be read. */
    public static double peakRssMb() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (l.startsWith("VmHWM:")) {
                    return Long.parseLong(l.replaceAll("[^0-9]", "")) / 1024.0;
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux
        }
        return -1;
    }

    private static void writeLine(BufferedWriter w, Map<String, Object> line) throws IOException {
        w.write(LINE.writeValueAsString(line));
        w.newLine();
    }

    /** Keeps the lines of {@code log} up to {@code step} (a resumed run rewrites what came after); returns them. */
    private static List<Map<String, Object>> truncateLog(Path log, long step) {
        List<Map<String, Object>> kept = new ArrayList<>();
        if (!Files.exists(log)) {
            return kept;
        }
        try {
            StringBuilder out = new StringBuilder();
            for (String l : Files.readAllLines(log, StandardCharsets.UTF_8)) {
                if (l.isBlank()) {
                    continue;
                }
                JsonNode n;
                try {
                    n = LINE.readTree(l);
                } catch (IOException e) {
                    break; // a line cut short by the interruption
                }
                if (n.path("step").asLong() > step) {
                    break;
                }
                @SuppressWarnings("unchecked")
                Map<String, Object> m = LINE.convertValue(n, Map.class);
                kept.add(m);
                out.append(l).append('\n');
            }
            AtomicFiles.write(log, out.toString().getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read " + log + ": " + e.getMessage(), e);
        }
        return kept;
    }

    private static void writeJson(Path p, Object v) {
        try {
            AtomicFiles.write(p, JSON.writeValueAsBytes(v));
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot write " + p + ": " + e.getMessage(), e);
        }
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException e) {
            // the append that follows will fail loudly if the file is unusable
        }
    }

    private static String fmt(double v) {
        return String.format(java.util.Locale.ROOT, "%.4f", v);
    }
}
