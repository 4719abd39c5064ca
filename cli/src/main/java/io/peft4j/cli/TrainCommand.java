package io.peft4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.exporter.ExportOptions;
import io.peft4j.exporter.ExportReport;
import io.peft4j.exporter.Exporter;
import io.peft4j.exporter.NamedAdapter;
import io.peft4j.trainer.data.DataSpec;
import io.peft4j.trainer.data.DataSplit;
import io.peft4j.trainer.data.Datasets;
import io.peft4j.trainer.data.ModelInputs;
import io.peft4j.trainer.optim.LrSchedule;
import io.peft4j.trainer.train.Evaluation;
import io.peft4j.trainer.train.TrainResult;
import io.peft4j.trainer.train.TrainSettings;
import io.peft4j.trainer.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;

/** {@code peft4j train --base M.onnx --data DATA --out OUT ...}. */
@Command(name = "train",
        header = "Train an adapter (LoRA, IA3), a new head, or the whole model on a frozen ONNX base model.",
        description = {
            "Train on image folders (DIR/<class>/*.png|jpg|bmp), IDX files (MNIST), NumPy pairs (X.npy,Y.npy, used",
            "as given) or text tables (TSV, CSV, JSONL with a text and a label column, tokenized with a Hugging Face",
            "tokenizer.json). Forward, loss and backward run in ONNX Runtime; the optimizer in Java.",
            "Writes to --out: the adapter (adapter_config.json + adapter_model.safetensors, Hugging Face PEFT layout)",
            "or, for --method full|head, model.onnx; and metrics.json, metrics.jsonl (a line per step and",
            "evaluation), curves.png, checkpoints/ (continue with --resume after an interruption).",
            "",
            "Example: peft4j train --base resnet18.onnx --data neu-det --head-classes 6 --epochs 5 --out runs/neu"},
        mixinStandardHelpOptions = true, sortOptions = false)
public final class TrainCommand implements Callable<Integer> {

    @Spec
    private CommandSpec spec;

    // ---------------------------------------------------------------- model and output

    @Option(names = "--base", required = true, paramLabel = "MODEL.onnx", description = "The frozen base model.")
    private Path base;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Where the adapter (or model), metrics and checkpoints go.")
    private Path out;

    @Option(names = "--output", paramLabel = "NAME", description = "The model output holding the logits (default: its first output).")
    private String output;

    // ---------------------------------------------------------------- data

    @Option(names = "--data", required = true, paramLabel = "PATH[,Y.npy]", split = ",",
            description = "Training data: a folder of class folders, an IDX images file, X.npy,Y.npy, or a .tsv/.csv/.jsonl file.")
    private List<Path> data;

    @Option(names = "--val", paramLabel = "PATH[,Y.npy]", split = ",", description = "Validation data of the same kind.")
    private List<Path> val = new ArrayList<>();

    @Option(names = "--val-split", paramLabel = "F",
            description = "Hold out this fraction of --data for validation, stratified and seeded (default: 0.2 for image folders "
                    + "and text without --val, else 0).")
    private Double valSplit;

    @Option(names = "--image-size", paramLabel = "H[xW]", description = "Resize images to H×W (default: the model input's size).")
    private String imageSize;

    @Option(names = "--mean", paramLabel = "M[,M,M]", split = ",", description = "Per-channel mean of [0,1] pixels (default: ImageNet's; 0.5 for 1 channel).")
    private List<Float> mean = new ArrayList<>();

    @Option(names = "--std", paramLabel = "S[,S,S]", split = ",", description = "Per-channel std (default: ImageNet's; 0.5 for 1 channel).")
    private List<Float> std = new ArrayList<>();

    @Option(names = "--augment", description = "Light augmentation of training images (horizontal flip, small crop).")
    private boolean augment;

    @Option(names = "--tokenizer", paramLabel = "tokenizer.json", description = "Text: a Hugging Face tokenizer.json (default: tokenizer.json beside the model).")
    private Path tokenizer;

    @Option(names = "--max-length", defaultValue = "128", paramLabel = "N", description = "Text: most tokens per example (default: ${DEFAULT-VALUE}).")
    private int maxLength;

    @Option(names = "--text-column", paramLabel = "NAME|INDEX", description = "Text: the text column (default: detected).")
    private String textColumn;

    @Option(names = "--label-column", paramLabel = "NAME|INDEX", description = "Text: the label column (default: detected).")
    private String labelColumn;

    // ---------------------------------------------------------------- method

    @Option(names = "--method", defaultValue = "lora", paramLabel = "M", description = "lora, ia3, full (every weight) or head (a new head alone) (default: ${DEFAULT-VALUE}).")
    private String method;

    @Option(names = "--targets", defaultValue = "all", paramLabel = "REGEX|all|all-linear|all-conv",
            description = "Layers the adapter targets: a regex over module paths (full match), or all / all-linear / all-conv, which leave out the layer that makes the logits; never a new head (default: ${DEFAULT-VALUE}).")
    private String targets;

    @Option(names = "--rank", defaultValue = "8", paramLabel = "R", description = "LoRA rank (default: ${DEFAULT-VALUE}).")
    private int rank;

    @Option(names = "--alpha", defaultValue = "16", paramLabel = "A", description = "LoRA alpha; the scale is alpha / rank (default: ${DEFAULT-VALUE}).")
    private double alpha;

    @Option(names = "--dropout", defaultValue = "0", paramLabel = "P", description = "LoRA dropout on the adapter input while training (default: ${DEFAULT-VALUE}).")
    private double dropout;

    @Option(names = "--rslora", description = "Scale LoRA by alpha / sqrt(rank).")
    private boolean rslora;

    @Option(names = "--feedforward", paramLabel = "REGEX", description = "IA3: target modules whose input (not output) is scaled.")
    private String feedforward;

    @Option(names = "--init-adapter", paramLabel = "DIR", description = "Start from this adapter (ours or Hugging Face PEFT's); its config wins.")
    private Path initAdapter;

    @Option(names = "--head-classes", defaultValue = "0", paramLabel = "K",
            description = "Train a new K-class head (replacing the final Linear layer, or added on the output), saved with the adapter.")
    private int headClasses;

    // ---------------------------------------------------------------- optimization

    @Option(names = "--optimizer", defaultValue = "adamw", paramLabel = "adamw|sgd", description = "Optimizer (default: ${DEFAULT-VALUE}).")
    private String optimizer;

    @Option(names = "--lr", defaultValue = "1e-3", paramLabel = "LR", description = "Learning rate (default: ${DEFAULT-VALUE}).")
    private double lr;

    @Option(names = "--weight-decay", paramLabel = "WD", description = "Weight decay (default: 0.01 for AdamW, decoupled; 0 for SGD).")
    private Double weightDecay;

    @Option(names = "--momentum", defaultValue = "0.9", paramLabel = "M", description = "SGD momentum (default: ${DEFAULT-VALUE}).")
    private double momentum;

    @Option(names = "--schedule", defaultValue = "constant", paramLabel = "constant|cosine",
            description = "Learning rate after the warm-up (default: ${DEFAULT-VALUE}).")
    private String schedule;

    @Option(names = "--warmup-steps", defaultValue = "0", paramLabel = "N", description = "Linear warm-up steps (default: ${DEFAULT-VALUE}).")
    private int warmupSteps;

    @Option(names = "--max-grad-norm", defaultValue = "1.0", paramLabel = "N", description = "Clip the global gradient norm; 0 = off (default: ${DEFAULT-VALUE}).")
    private double maxGradNorm;

    // ---------------------------------------------------------------- loop

    @Option(names = "--epochs", defaultValue = "3", paramLabel = "N", description = "Passes over the training data (default: ${DEFAULT-VALUE}).")
    private int epochs;

    @Option(names = "--steps", defaultValue = "0", paramLabel = "N", description = "Total steps instead of --epochs (0 = use --epochs).")
    private long steps;

    @Option(names = "--batch", defaultValue = "16", paramLabel = "N", description = "Batch size; the last partial batch is used (default: ${DEFAULT-VALUE}).")
    private int batch;

    @Option(names = "--threads", paramLabel = "N", description = "ONNX Runtime threads (default: the CPU's cores).")
    private Integer threads;

    @Option(names = "--seed", defaultValue = "42", paramLabel = "S", description = "Seeds initialisation, shuffling, splits, augmentation (default: ${DEFAULT-VALUE}).")
    private long seed;

    @Option(names = "--no-shuffle", description = "Keep the data's order.")
    private boolean noShuffle;

    @Option(names = "--patience", defaultValue = "0", paramLabel = "N",
            description = "Stop after N evaluations without improving --monitor, keeping the best values (0 = off).")
    private int patience;

    @Option(names = "--monitor", defaultValue = "val_accuracy", paramLabel = "METRIC", description = "val_accuracy, val_loss or val_macro_f1 (default: ${DEFAULT-VALUE}).")
    private String monitor;

    @Option(names = "--checkpoint-every", defaultValue = "0", paramLabel = "N", description = "Checkpoint every N steps (default: at each epoch's end).")
    private long checkpointEvery;

    @Option(names = "--resume", description = "Continue from the latest checkpoint in --out (same settings).")
    private boolean resume;

    // ---------------------------------------------------------------- after

    @Option(names = "--export", paramLabel = "PKG_DIR", description = "Then write a model package (see peft4j export).")
    private Path export;

    @Option(names = "--export-mode", defaultValue = "merged", paramLabel = "merged|side",
            description = "The package mode for --export with an adapter (default: ${DEFAULT-VALUE}).")
    private String exportMode;

    @Option(names = "--no-progress", description = "No progress bar (one line per epoch instead).")
    private boolean noProgress;

    @Option(names = "--json", description = "Print metrics.json at the end instead of the summary.")
    private boolean json;

    @Override
    public Integer call() throws Exception {
        PrintWriter o = spec.commandLine().getOut();
        TrainSettings s = settings();
        ModelInputs inputs = ModelInputs.of(OnnxIO.read(base));
        DataSpec ds = dataSpec();
        DataSplit split = Datasets.open(ds, inputs);
        o.println("data: " + split.train().describe() + (split.validation().isPresent()
                ? "; validation: " + split.validation().get().describe() : "; no validation data"));
        o.flush();
        // a bar on a terminal; plain lines every few seconds when the output is a file or a pipe
        TrainProgress listener = new TrainProgress(o, !noProgress && !json && System.console() != null);
        TrainResult r;
        try {
            r = new Trainer(s, listener).run(split.train(), split.validation().orElse(null));
        } finally {
            listener.close();
        }
        if (json) {
            o.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(r.metrics()));
        } else {
            summary(o, r);
        }
        if (export != null) {
            exportPackage(o, r, split);
        }
        o.flush();
        return 0;
    }

    private TrainSettings settings() {
        TrainSettings s = new TrainSettings();
        s.base = base;
        s.out = out;
        s.output = output;
        s.method = TrainSettings.Method.parse(method);
        s.targets = targets;
        s.rank = rank;
        s.alpha = alpha;
        s.dropout = dropout;
        s.rslora = rslora;
        s.feedforward = feedforward;
        s.initAdapter = initAdapter;
        s.headClasses = headClasses;
        s.optimizer = optimizer;
        s.lr = lr;
        s.weightDecay = weightDecay;
        s.momentum = momentum;
        s.schedule = LrSchedule.Kind.parse(schedule);
        s.warmupSteps = warmupSteps;
        s.maxGradNorm = maxGradNorm;
        s.epochs = epochs;
        s.steps = steps;
        s.batch = batch;
        if (threads != null) {
            s.threads = threads;
        }
        s.seed = seed;
        s.shuffle = !noShuffle;
        s.augment = augment;
        s.patience = patience;
        s.monitor = monitor;
        s.checkpointEvery = checkpointEvery;
        s.resume = resume;
        return s.validate();
    }

    private DataSpec dataSpec() {
        DataSpec.Kind kind = Datasets.kind(data, DataSpec.Kind.AUTO);
        double split = valSplit != null ? valSplit
                : val.isEmpty() && (kind == DataSpec.Kind.IMAGE_FOLDER || kind == DataSpec.Kind.TEXT) ? 0.2 : 0;
        int h = 0;
        int w = 0;
        if (imageSize != null) {
            String[] p = imageSize.toLowerCase(Locale.ROOT).split("x");
            try {
                h = Integer.parseInt(p[0].strip());
                w = p.length > 1 ? Integer.parseInt(p[1].strip()) : h;
            } catch (NumberFormatException e) {
                throw Peft4jException.invalid("--image-size must be H or HxW, got '" + imageSize + "'");
            }
        }
        return new DataSpec(data, kind, val, split, seed, floats(mean), floats(std), h, w, augment,
                Optional.ofNullable(tokenizer).or(() -> kind == DataSpec.Kind.TEXT
                        ? io.peft4j.trainer.data.TextTokenizer.besideModel(base) : Optional.empty()), maxLength, DataSpec.Padding.LONGEST, Optional.ofNullable(textColumn),
                Optional.ofNullable(labelColumn), -1, Math.max(1, Runtime.getRuntime().availableProcessors()));
    }

    private static float[] floats(List<Float> v) {
        float[] a = new float[v.size()];
        for (int i = 0; i < a.length; i++) {
            a[i] = v.get(i);
        }
        return a;
    }

    private void summary(PrintWriter o, TrainResult r) {
        Map<String, Object> m = r.metrics();
        long trainable = num(m.get("trainable_params")).longValue();
        long total = num(m.get("total_params")).longValue();
        o.printf(Locale.ROOT, "trained %d steps in %s (median step %.1f ms), peak memory %.0f MiB%n",
                num(m.get("steps")).longValue(), String.format(Locale.ROOT, "%.1f s", num(m.get("time_s")).doubleValue()),
                num(m.get("train_step_ms_median")).doubleValue(), num(m.get("peak_rss_mb")).doubleValue());
        o.printf(Locale.ROOT, "trainable parameters: %,d of %,d (%.2f %%)%n", trainable, total, 100.0 * trainable / total);
        long baseBytes = num(m.get("base_bytes")).longValue();
        if (r.adapter()) {
            long a = num(m.get("adapter_bytes")).longValue();
            o.printf(Locale.ROOT, "adapter: %s on disk vs base model %s (%.2f %%)%n", Format.bytes(a), Format.bytes(baseBytes),
                    100.0 * a / baseBytes);
        } else {
            o.printf(Locale.ROOT, "model: %s on disk (base %s)%n", Format.bytes(num(m.get("model_bytes")).longValue()),
                    Format.bytes(baseBytes));
        }
        Evaluation e = r.evaluation();
        if (e != null) {
            o.printf(Locale.ROOT, "validation (%d examples): accuracy %.4f, macro F1 %.4f, loss %.4f%n", e.examples(),
                    e.accuracy(), e.macroF1(), e.loss());
            for (int c = 0; c < e.classes().size(); c++) {
                o.printf(Locale.ROOT, "  %-20s precision %.3f  recall %.3f  F1 %.3f%n", e.classes().get(c), e.precision()[c],
                        e.recall()[c], e.f1()[c]);
            }
        }
        if (m.get("stop_reason") instanceof String why && Boolean.TRUE.equals(m.get("stopped_early"))) {
            o.println(why);
        }
        o.println("wrote " + r.output() + (r.adapter() ? " (adapter_config.json, adapter_model.safetensors)" : "")
                + "; metrics.json, metrics.jsonl, curves.png in " + out);
    }

    private void exportPackage(PrintWriter o, TrainResult r, DataSplit split) {
        Map<String, Object> prov = new java.util.LinkedHashMap<>();
        prov.put("version", VersionProvider.peft4jVersion());
        prov.put("command", "peft4j " + String.join(" ", spec.commandLine().getParseResult().originalArgs()));
        Manifest.Mode mode;
        List<NamedAdapter> adapters = new ArrayList<>();
        Path model;
        if (r.adapter()) {
            mode = switch (exportMode.toLowerCase(Locale.ROOT)) {
                case "merged" -> Manifest.Mode.merged;
                case "side" -> Manifest.Mode.side;
                default -> throw Peft4jException.invalid("--export-mode must be merged or side, got '" + exportMode + "'");
            };
            adapters.add(NamedAdapter.read(out.getFileName() + "=" + r.output()));
            model = base;
        } else {
            mode = Manifest.Mode.base;
            model = r.output();
        }
        ExportOptions options = ExportOptions.of(mode).withLabels(split.classes()).withProvenance(prov)
                .withPreprocessing(split.preprocessing().orElse(null));
        ExportReport rep = Exporter.export(model, adapters, options, export);
        o.println("exported a " + mode + " package to " + export + " (" + Format.bytes(rep.modelBytes()) + ")");
    }

    private static Number num(Object v) {
        return v instanceof Number n ? n : Double.NaN;
    }
}
