package io.peft4j.cli;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.image.Images;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Npy;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.TensorSpec;
import io.peft4j.devices.ort.OrtBackend;
import io.peft4j.trainer.data.TextTokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.awt.image.BufferedImage;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;

/**
 * {@code peft4j predict --model PKG_DIR|MODEL.onnx [--adapter NAME] --npy [INPUT=]IN.npy ... --out OUT.npy}
 * and {@code peft4j predict --model PKG_DIR [--adapter NAME] IMAGE...} and
 * {@code peft4j predict --model PKG_DIR|MODEL.onnx [--adapter NAME] --text TEXT ... [--tokenizer tokenizer.json]}.
 *
 * <p>Texts are tokenized with a Hugging Face {@code tokenizer.json} exactly as {@code peft4j train}
 * tokenizes text tables (special tokens, truncation at {@code --max-length}), padded to the longest
 * text, and fed to the model's {@code input_ids} and, where it has them, {@code attention_mask}
 * (1 on tokens, 0 on padding) and {@code token_type_ids}; a model with any other input is refused.
 */
@Command(name = "predict",
        header = "Run a model package (or an ONNX model) in ONNX Runtime on the CPU.",
        description = {
            "Run a model package (or an ONNX model) in ONNX Runtime on the CPU.",
            "  --npy [INPUT=]IN.npy ... --out OUT.npy   NumPy arrays in and out (float32 / int64, C order)",
            "  IMAGE...                                 packages with preprocessing: top labels per image (softmax)",
            "  --text TEXT ...                          text models (input_ids, attention_mask, token_type_ids):",
            "                                           top labels per text (softmax), tokenized with --tokenizer",
            "--adapter picks the adapter: side packages activate its .onnx_adapter through ONNX Runtime's LoRA API",
            "(none: the base model); multi packages feed its adapter_index to every row (none: index 0, the base);",
            "merged packages accept only their merged adapter."},
        mixinStandardHelpOptions = true)
public final class PredictCommand implements Callable<Integer> {

    @Spec
    private CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "PKG_DIR|MODEL.onnx", description = "A model package directory or an ONNX file.")
    private Path model;

    @Option(names = "--adapter", paramLabel = "NAME", description = "The package's adapter to run (default: none, the base model).")
    private String adapter;

    @Option(names = "--npy", paramLabel = "[INPUT=]IN.npy", description = "An input array; repeatable, one per model input.")
    private List<String> npy = new ArrayList<>();

    @Option(names = "--out", paramLabel = "OUT.npy", description = "Where to write the output array (with --npy).")
    private Path out;

    @Option(names = "--output", paramLabel = "NAME", description = "Which output to write or rank (default: the first).")
    private String output;

    @Option(names = "--top", defaultValue = "5", paramLabel = "K", description = "Images: how many labels to print (default: ${DEFAULT-VALUE}).")
    private int top;

    @Option(names = "--threads", defaultValue = "4", paramLabel = "N", description = "ONNX Runtime intra-op threads (default: ${DEFAULT-VALUE}).")
    private int threads;

    @Option(names = "--text", paramLabel = "TEXT", description = "A text to classify; repeatable (a model with input_ids).")
    private List<String> texts = new ArrayList<>();

    @Option(names = "--tokenizer", paramLabel = "tokenizer.json",
            description = "Text: a Hugging Face tokenizer.json (default: tokenizer.json beside the model, else all-MiniLM-L6-v2's when its jar is on the class path).")
    private Path tokenizer;

    @Option(names = "--max-length", defaultValue = "128", paramLabel = "N", description = "Text: most tokens per text (default: ${DEFAULT-VALUE}).")
    private int maxLength;

    @Parameters(paramLabel = "IMAGE", arity = "0..*", description = "Images to classify (packages with preprocessing).")
    private List<Path> images = new ArrayList<>();

    @Override
    public Integer call() {
        PrintWriter o = spec.commandLine().getOut();
        int kinds = (npy.isEmpty() ? 0 : 1) + (images.isEmpty() ? 0 : 1) + (texts.isEmpty() ? 0 : 1);
        if (kinds == 0) {
            throw Peft4jException.invalid("give inputs: --npy [INPUT=]IN.npy ... --out OUT.npy, image files, or --text TEXT ...");
        }
        if (kinds > 1) {
            throw Peft4jException.invalid("give one kind of input: --npy arrays, image files or --text texts, not several");
        }
        if (!npy.isEmpty() && out == null) {
            throw Peft4jException.invalid("--npy needs --out OUT.npy for the output array");
        }
        if (!texts.isEmpty() && maxLength < 2) {
            throw Peft4jException.invalid("--max-length must be at least 2 tokens, got " + maxLength);
        }
        if (top < 1) {
            throw Peft4jException.invalid("--top must be at least 1, got " + top);
        }
        try (OrtBackend p = OrtBackend.open(model, new OrtBackend.Options(Math.max(1, threads), 1))) {
            if (adapter != null && p.info().manifest().isEmpty()) {
                throw Peft4jException.invalid("--adapter needs a model package; " + model + " is an ONNX file");
            }
            if (!npy.isEmpty()) {
                runArrays(p, o);
            } else if (!texts.isEmpty()) {
                runTexts(p, o);
            } else {
                runImages(p, o);
            }
        }
        o.flush();
        return 0;
    }

    private void runArrays(OrtBackend p, PrintWriter o) {
        Map<String, Tensor> inputs = new LinkedHashMap<>();
        List<String> names = p.info().inputs().stream().map(TensorSpec::name).toList();
        for (String spec : npy) {
            int eq = spec.indexOf('=');
            String name = eq > 0 && !spec.substring(0, eq).contains("/") ? spec.substring(0, eq) : null;
            Path file = Path.of(name == null ? spec : spec.substring(eq + 1));
            if (name == null) {
                if (npy.size() != 1 || names.size() != 1) {
                    throw Peft4jException.invalid("the model has inputs " + names + "; name each array: --npy INPUT=IN.npy");
                }
                name = names.get(0);
            }
            if (inputs.containsKey(name)) {
                throw Peft4jException.invalid("input '" + name + "' is given twice");
            }
            inputs.put(name, asModelType(p, name, Npy.read(file)));
        }
        Map<String, Tensor> result = p.run(inputs, adapter);
        String name = pickOutput(result);
        Tensor y = result.get(name);
        Npy.write(out, y);
        o.printf("wrote %s: %s %s%s%s%n", out, name, y.dtype(), ExportCommand.shape(y.shape()),
                adapter == null ? "" : " (adapter '" + adapter + "')");
    }

    /** float64 arrays feed float32 inputs and int32 arrays int64 inputs (NumPy's defaults); other mismatches are refused. */
    private static Tensor asModelType(OrtBackend p, String name, Tensor t) {
        DataType want = p.info().input(name).map(TensorSpec::dtype).orElse(null);
        if (want == null) {
            return t;
        }
        if (t.dtype() == want) {
            return t;
        }
        if ((want == DataType.FLOAT && t.dtype() == DataType.DOUBLE) || (want == DataType.INT64 && t.dtype() == DataType.INT32)) {
            return t.to(want);
        }
        throw Peft4jException.shape("input '" + name + "' takes " + want + " but the array is " + t.dtype());
    }

    private String pickOutput(Map<String, Tensor> result) {
        if (output == null) {
            return result.keySet().iterator().next();
        }
        if (!result.containsKey(output)) {
            throw Peft4jException.notFound("the model has no output '" + output + "'; its outputs are " + result.keySet());
        }
        return output;
    }

    private void runImages(OrtBackend p, PrintWriter o) {
        Manifest m = p.info().manifest().orElseThrow(() -> Peft4jException.invalid(model + " is an ONNX file without preprocessing; "
                + "classify images with a model package exported with --image-size/--mean/--std, or feed --npy arrays"));
        Manifest.Preprocessing pre = m.preprocessing();
        if (pre == null) {
            throw Peft4jException.invalid("package " + model + " has no image preprocessing in its manifest; export it with "
                    + "--image-size/--mean/--std (and --labels), or feed --npy arrays");
        }
        List<BufferedImage> decoded = new ArrayList<>();
        for (Path f : images) {
            decoded.add(Images.read(f));
        }
        Tensor x = Images.batch(decoded, pre.height(), pre.width(), pre.channels(), floats(pre.mean()), floats(pre.std()));
        Map<String, Tensor> result = p.run(Map.of(pre.input(), x), adapter);
        String name = pickOutput(result);
        Tensor y = result.get(name);
        if (y.rank() != 2 || y.dim(0) != images.size()) {
            throw Peft4jException.shape("output '" + name + "' is " + y.dtype() + ExportCommand.shape(y.shape())
                    + "; image classification needs [images, classes]");
        }
        printTop(o, y, images.stream().map(Path::toString).toList(), m.labels());
    }

    /** Prints each row's name and its {@code --top} labels by softmax score. */
    private void printTop(PrintWriter o, Tensor y, List<String> rows, List<String> labels) {
        int classes = (int) y.dim(1);
        float[] v = y.toFloatArray();
        for (int i = 0; i < rows.size(); i++) {
            double[] prob = softmax(Arrays.copyOfRange(v, i * classes, (i + 1) * classes));
            Integer[] order = new Integer[classes];
            for (int c = 0; c < classes; c++) {
                order[c] = c;
            }
            Arrays.sort(order, (a, b) -> Double.compare(prob[b], prob[a]));
            o.println(rows.get(i) + (adapter == null ? "" : " (adapter '" + adapter + "')"));
            for (int k = 0; k < Math.min(top, classes); k++) {
                int c = order[k];
                o.printf(Locale.ROOT, "  %.4f  %s%n", prob[c], c < labels.size() ? labels.get(c) : "class " + c);
            }
        }
    }

    private static final List<String> TEXT_INPUTS = List.of("input_ids", "attention_mask", "token_type_ids");

    private void runTexts(OrtBackend p, PrintWriter o) {
        List<TensorSpec> inputs = p.info().inputs();
        List<String> names = inputs.stream().map(TensorSpec::name).toList();
        if (!names.contains("input_ids")) {
            throw Peft4jException.invalid("--text needs a model with an input 'input_ids' for token ids; " + model
                    + " has inputs " + names);
        }
        for (TensorSpec in : inputs) {
            if (!TEXT_INPUTS.contains(in.name())) {
                throw Peft4jException.unsupported("model input '" + in.name() + "' is not fed by --text, which feeds "
                        + TEXT_INPUTS + "; feed this model --npy arrays");
            }
            if (in.dtype() != DataType.INT64 && in.dtype() != DataType.INT32) {
                throw Peft4jException.shape("model input '" + in.name() + "' takes " + in.dtype() + "; text inputs are INT64 or INT32");
            }
        }
        Path modelFile = java.nio.file.Files.isDirectory(model) ? model.resolve("model.onnx") : model;
        Optional<Path> tokFile = Optional.ofNullable(tokenizer).or(() -> TextTokenizer.besideModel(modelFile));
        TextTokenizer.Encoded enc;
        long padId;
        try (TextTokenizer tok = tokFile.map(f -> TextTokenizer.open(f, maxLength)).or(() -> TextTokenizer.bundledMiniLm(maxLength))
                .orElseThrow(() -> Peft4jException.invalid("--text needs a tokenizer: give --tokenizer tokenizer.json, or put "
                        + "tokenizer.json beside " + modelFile))) {
            enc = tok.encode(texts);
            padId = tok.padId();
        }
        int n = texts.size();
        int length = 1;
        for (long[] t : enc.ids()) {
            length = Math.max(length, t.length);
        }
        long[] ids = new long[n * length];
        long[] mask = new long[n * length];
        long[] types = new long[n * length];
        Arrays.fill(ids, padId);
        for (int i = 0; i < n; i++) {
            long[] t = enc.ids()[i];
            System.arraycopy(t, 0, ids, i * length, t.length);
            System.arraycopy(enc.typeIds()[i], 0, types, i * length, t.length);
            Arrays.fill(mask, i * length, i * length + t.length, 1L);
        }
        long[] shape = {n, length};
        Map<String, Tensor> feed = new LinkedHashMap<>();
        for (TensorSpec in : inputs) {
            long[] values = switch (in.name()) {
                case "input_ids" -> ids;
                case "attention_mask" -> mask;
                default -> types;
            };
            feed.put(in.name(), Tensor.ofLongs(shape, values).to(in.dtype()));
        }
        Map<String, Tensor> result = p.run(feed, adapter);
        String name = pickOutput(result);
        Tensor y = result.get(name);
        if (y.rank() != 2 || y.dim(0) != n) {
            throw Peft4jException.shape("output '" + name + "' is " + y.dtype() + ExportCommand.shape(y.shape())
                    + "; text classification needs [texts, classes]" + (output == null ? "; pick another output with --output NAME "
                    + "(the model's outputs: " + result.keySet() + ")" : ""));
        }
        if (enc.truncated() > 0) {
            o.printf(Locale.ROOT, "(%d of %d texts cut at --max-length %d tokens)%n", enc.truncated(), n, maxLength);
        }
        List<String> rows = texts.stream().map(t -> '"' + (t.length() > 60 ? t.substring(0, 57) + "..." : t) + '"').toList();
        printTop(o, y, rows, p.info().manifest().map(Manifest::labels).orElse(List.of()));
    }

    private static float[] floats(List<Double> l) {
        float[] f = new float[l.size()];
        for (int i = 0; i < f.length; i++) {
            f[i] = l.get(i).floatValue();
        }
        return f;
    }

    static double[] softmax(float[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (float f : logits) {
            max = Math.max(max, f);
        }
        double[] p = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < p.length; i++) {
            p[i] = Math.exp(logits[i] - max);
            sum += p[i];
        }
        for (int i = 0; i < p.length; i++) {
            p[i] /= sum;
        }
        return p;
    }
}
