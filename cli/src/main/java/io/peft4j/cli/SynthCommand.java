package io.peft4j.cli;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.inspect.ModelInspection;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.trainer.data.SyntheticDefects;
import io.peft4j.trainer.data.SyntheticDefects.Line;
import io.peft4j.trainer.data.SyntheticDefects.Split;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code peft4j synth --line LINE --out DIR ...}: deterministic synthetic surface-defect images as
 * PNG class folders ({@link SyntheticDefects}), and {@code --write-untrained-model FILE}: the
 * quickstart's base architecture with seeded, untrained weights, the starting point of
 * {@code samples/quickstart/make-base-model.sh}; {@code --write-base-model FILE}: the quickstart's
 * trained base model itself (the one {@code peft4j quickstart} starts from), with its labels in
 * {@code FILE}'s metadata, for scripts such as {@code samples/multi-adapter-serving/run.sh}.
 */
@Command(name = "synth",
        header = "Generate synthetic surface-defect images (PNG class folders) for a production line.",
        description = {
            "Write PNG class folders DIR/<class>/<class>_<index>.png of grayscale surface images, and DIR/synth.json",
            "with what made them; 'peft4j train --data DIR' reads them. Every image is a function of (line, split,",
            "class, index, seed) and the size: the same command writes the same pixels on every machine. The train",
            "and test splits never share an image. The folder is written under a temporary name and moved into",
            "place when complete; an existing --out must be an empty folder.",
            "",
            "Production lines:",
            "  metal      brushed metal, horizontal streaks, even bright light",
            "  metal-dim  the same metal in low light: dark, noisy, uneven light",
            "  fabric     woven fabric, plain weave, even light; mostly dark stains",
            "Classes (folder names; labels in this sorted order):",
            "  crack      a jagged dark path that branches",
            "  good       no defect",
            "  inclusion  small irregular flakes embedded in the texture",
            "  scratch    a thin long line at a random angle, bright or dark",
            "  spot       a round blob, dark or bright",
            "",
            "--write-untrained-model FILE writes the quickstart's base architecture (a small CNN for 1x32x32 images",
            "and these 5 classes) with seeded untrained weights instead: samples/quickstart/make-base-model.sh",
            "trains it on metal images with 'peft4j train --method full'.",
            "--write-base-model FILE writes the trained base model that 'peft4j quickstart' starts from (trained on",
            "metal images; its labels are the classes above, in that order).",
            "",
            "Example: peft4j synth --line metal --out data/metal-train --per-class 500"},
        mixinStandardHelpOptions = true, sortOptions = false)
public final class SynthCommand implements Callable<Integer> {

    @Spec
    private CommandSpec spec;

    @Option(names = "--line", paramLabel = "LINE", description = "The production line: metal, metal-dim or fabric.")
    private String line;

    @Option(names = "--out", paramLabel = "DIR", description = "The folder to create (must not exist, or be empty).")
    private Path out;

    @Option(names = "--per-class", defaultValue = "500", paramLabel = "N", description = "Images per class (default: ${DEFAULT-VALUE}).")
    private int perClass;

    @Option(names = "--size", defaultValue = "" + SyntheticDefects.DEFAULT_SIZE, paramLabel = "S",
            description = "Image side in pixels, " + SyntheticDefects.MIN_SIZE + ".." + SyntheticDefects.MAX_SIZE
                    + " (default: ${DEFAULT-VALUE}).")
    private int size;

    @Option(names = "--seed", defaultValue = "42", paramLabel = "S",
            description = "Selects another, equally valid set of images; with --write-untrained-model, seeds the weights "
                    + "(default: ${DEFAULT-VALUE}).")
    private long seed;

    @Option(names = "--split", defaultValue = "train", paramLabel = "train|test",
            description = "Training or held-out test images (default: ${DEFAULT-VALUE}).")
    private String split;

    @Option(names = "--threads", paramLabel = "N", description = "Threads that render and write (default: the CPU's cores).")
    private Integer threads;

    @Option(names = "--write-untrained-model", paramLabel = "FILE.onnx",
            description = "Write the quickstart's base architecture with untrained weights instead of images.")
    private Path untrainedModel;

    @Option(names = "--write-base-model", paramLabel = "FILE.onnx",
            description = "Write the quickstart's trained base model (what 'peft4j quickstart' starts from) instead of images.")
    private Path baseModel;

    @Override
    public Integer call() {
        PrintWriter o = spec.commandLine().getOut();
        if (untrainedModel != null && baseModel != null) {
            throw Peft4jException.invalid("give either --write-untrained-model FILE or --write-base-model FILE, not both");
        }
        if (untrainedModel != null || baseModel != null) {
            if (line != null || out != null) {
                throw Peft4jException.invalid("give either --line and --out (images) or --write-"
                        + (untrainedModel != null ? "untrained" : "base") + "-model FILE, not both");
            }
            if (untrainedModel != null) {
                writeUntrained(o);
            } else {
                writeBase(o);
            }
            return 0;
        }
        if (line == null || out == null) {
            throw Peft4jException.invalid("give --line LINE and --out DIR (lines: " + String.join(", ",
                    SyntheticDefects.lines().stream().map(Line::name).toList()) + ")");
        }
        Line l = SyntheticDefects.line(line);
        SyntheticDefects.checkSize(size);
        SyntheticDefects.checkPerClass(perClass);
        Split sp = Split.parse(split);
        int workers = threads != null ? threads : Math.max(1, Runtime.getRuntime().availableProcessors());
        if (workers < 1 || workers > 1024) {
            throw Peft4jException.invalid("--threads must be 1..1024, got " + workers);
        }
        SyntheticDefects.Written w = new SyntheticDefects(l, size, seed).write(out, sp, perClass, workers);
        o.printf(Locale.ROOT, "wrote %,d images (%d classes × %d, %dx%d gray, line %s, %s split, seed %d) to %s: %s in %.1f s%n",
                w.images(), SyntheticDefects.CLASSES.size(), perClass, size, size, l.name(), sp.label(), seed, w.dir(),
                Format.bytes(w.bytes()), w.seconds());
        o.flush();
        return 0;
    }

    private void writeUntrained(PrintWriter o) {
        checkModelFile(untrainedModel);
        Model m = DefaultModel.build(seed);
        OnnxIO.write(m, untrainedModel, OnnxIO.WriteOptions.inline());
        o.printf(Locale.ROOT, "wrote %s: the quickstart's base architecture, untrained (seed %d), %s parameters, input image "
                + "[batch,1,%d,%d], %d classes %s%n", untrainedModel, seed, Format.count(ModelInspection.of(m).parameters()),
                DefaultModel.SIZE, DefaultModel.SIZE, DefaultModel.LABELS.size(), DefaultModel.LABELS);
        o.flush();
    }

    private void writeBase(PrintWriter o) {
        checkModelFile(baseModel);
        Model m = DefaultModel.trained();
        OnnxIO.write(m, baseModel, OnnxIO.WriteOptions.inline());
        o.printf(Locale.ROOT, "wrote %s: the quickstart's base model, trained on the metal line, %s parameters, input image "
                + "[batch,1,%d,%d] (pixels scaled to [-1,1]), %d classes %s%n", baseModel,
                Format.count(ModelInspection.of(m).parameters()), DefaultModel.SIZE, DefaultModel.SIZE,
                DefaultModel.LABELS.size(), DefaultModel.LABELS);
        o.flush();
    }

    private static void checkModelFile(Path file) {
        if (Files.isDirectory(file)) {
            throw Peft4jException.invalid(file + " is a folder; give the model's file name (FILE.onnx)");
        }
        Path parent = file.toAbsolutePath().getParent();
        if (!Files.isDirectory(parent)) {
            throw new Peft4jException(Peft4jException.ErrorCode.IO, "folder not found: " + parent);
        }
    }
}
