package io.peft4j.trainer.train;

import io.peft4j.core.Peft4jException;
import io.peft4j.trainer.optim.LrSchedule;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Every setting of a training run, with the defaults {@code peft4j train} documents. A plain
 * mutable holder that the command line (or a caller) fills in; {@link #validate()} checks it
 * before a run, and {@link #toMap()} is what the run records as its provenance.
 */
public final class TrainSettings {

    /** What is trained. */
    public enum Method {
        /** LoRA adapters on the target layers (and the head, if any, in full). */
        LORA,
        /** IA3 scaling vectors on the target layers (and the head, if any, in full). */
        IA3,
        /** Every float initializer of the model (the baseline PEFT is compared with); writes a model. */
        FULL,
        /** The classification head alone (a linear probe); writes a model. */
        HEAD;

        public static Method parse(String s) {
            try {
                return valueOf(s.toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw Peft4jException.invalid("unknown method '" + s + "'; use lora, ia3, full or head");
            }
        }

        /** Whether the run writes an adapter bundle (else a whole model). */
        public boolean writesAdapter() {
            return this == LORA || this == IA3;
        }

        public String cli() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** The base model (ONNX). */
    public Path base;
    /** Where the result goes (a bundle, or {@code model.onnx}), with metrics and checkpoints. */
    public Path out;
    /** The logits output of the model; null: its first output. */
    public String output;

    public Method method = Method.LORA;
    /** A regex over module paths (full match), or all-linear, all-conv, all. */
    public String targets = "all";
    public int rank = 8;
    public double alpha = 16;
    public double dropout = 0;
    public boolean rslora;
    /** IA3: modules (regex over module paths, full match) whose input is scaled; null: none. */
    public String feedforward;
    /** An adapter bundle to start from (ours or Hugging Face PEFT's); null: a fresh adapter. */
    public Path initAdapter;
    /** Classes of a new (or replacing) classification head; 0: keep the model's head. */
    public int headClasses;

    /** adamw or sgd. */
    public String optimizer = "adamw";
    public double lr = 1e-3;
    /** Null: 0.01 for AdamW, 0 for SGD. */
    public Double weightDecay;
    public double momentum = 0.9;
    public LrSchedule.Kind schedule = LrSchedule.Kind.CONSTANT;
    public int warmupSteps;
    /** Global gradient-norm clipping; 0: off. */
    public double maxGradNorm = 1.0;

    public int epochs = 3;
    /** Total steps; 0: {@link #epochs} passes over the data. */
    public long steps;
    public int batch = 16;
    public int threads = Math.max(1, Runtime.getRuntime().availableProcessors());
    public long seed = 42;
    public boolean shuffle = true;
    public boolean augment;
    /** Evaluations without improvement before stopping; 0: never stop early. */
    public int patience;
    /** val_accuracy, val_loss or val_macro_f1. */
    public String monitor = "val_accuracy";
    /** Checkpoint every N steps; 0: at the end of each epoch. */
    public long checkpointEvery;
    /** Continue from the latest checkpoint in {@link #out}. */
    public boolean resume;

    public double weightDecayValue() {
        return weightDecay != null ? weightDecay : optimizer.equals("sgd") ? 0.0 : 0.01;
    }

    /** Refuses settings that cannot make a run, naming the setting. */
    public TrainSettings validate() {
        if (base == null) {
            throw Peft4jException.invalid("--base is required");
        }
        if (out == null) {
            throw Peft4jException.invalid("--out is required");
        }
        optimizer = optimizer.toLowerCase(Locale.ROOT);
        if (!List.of("adamw", "sgd").contains(optimizer)) {
            throw Peft4jException.invalid("unknown optimizer '" + optimizer + "'; use adamw or sgd");
        }
        positive("--lr", lr, true);
        if (!(weightDecayValue() >= 0) || Double.isInfinite(weightDecayValue())) {
            throw Peft4jException.invalid("--weight-decay must be non-negative, got " + weightDecay);
        }
        if (!(momentum >= 0 && momentum < 1)) {
            throw Peft4jException.invalid("--momentum must be in [0, 1), got " + momentum);
        }
        if (!(maxGradNorm >= 0) || Double.isInfinite(maxGradNorm)) {
            throw Peft4jException.invalid("--max-grad-norm must be non-negative (0 = off), got " + maxGradNorm);
        }
        if (rank < 1) {
            throw Peft4jException.invalid("--rank must be at least 1, got " + rank);
        }
        positive("--alpha", alpha, false);
        if (!(dropout >= 0 && dropout < 1)) {
            throw Peft4jException.invalid("--dropout must be in [0, 1), got " + dropout);
        }
        if (epochs < 1 && steps < 1) {
            throw Peft4jException.invalid("--epochs must be at least 1 (or give --steps), got " + epochs);
        }
        if (steps < 0 || batch < 1 || threads < 1 || warmupSteps < 0 || patience < 0 || checkpointEvery < 0) {
            throw Peft4jException.invalid("--steps, --batch, --threads, --warmup-steps, --patience and "
                    + "--checkpoint-every must be non-negative (batch and threads at least 1)");
        }
        if (headClasses < 0) {
            throw Peft4jException.invalid("--head-classes must be positive, got " + headClasses);
        }
        if (method == Method.HEAD && headClasses == 0) {
            throw Peft4jException.invalid("--method head trains a new classification head: give --head-classes K");
        }
        if (!List.of("val_accuracy", "val_loss", "val_macro_f1").contains(monitor)) {
            throw Peft4jException.invalid("unknown --monitor '" + monitor + "'; use val_accuracy, val_loss or val_macro_f1");
        }
        if (initAdapter != null && !method.writesAdapter()) {
            throw Peft4jException.invalid("--init-adapter starts an adapter; it does not go with --method " + method.cli());
        }
        return this;
    }

    private static void positive(String what, double v, boolean finite) {
        if (!(v > 0) || (finite && Double.isInfinite(v))) {
            throw Peft4jException.invalid(what + " must be positive, got " + v);
        }
    }

    /** Every setting, by its command-line name, for provenance. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("base", String.valueOf(base));
        m.put("output", output);
        m.put("method", method.cli());
        m.put("targets", targets);
        m.put("rank", rank);
        m.put("alpha", alpha);
        m.put("dropout", dropout);
        m.put("rslora", rslora);
        m.put("feedforward", feedforward);
        m.put("init_adapter", initAdapter == null ? null : initAdapter.toString());
        m.put("head_classes", headClasses);
        m.put("optimizer", optimizer);
        m.put("lr", lr);
        m.put("weight_decay", weightDecayValue());
        m.put("momentum", momentum);
        m.put("schedule", schedule.name().toLowerCase(Locale.ROOT));
        m.put("warmup_steps", warmupSteps);
        m.put("max_grad_norm", maxGradNorm);
        m.put("epochs", epochs);
        m.put("steps", steps);
        m.put("batch", batch);
        m.put("threads", threads);
        m.put("seed", seed);
        m.put("shuffle", shuffle);
        m.put("augment", augment);
        m.put("patience", patience);
        m.put("monitor", monitor);
        m.put("checkpoint_every", checkpointEvery);
        return m;
    }
}
