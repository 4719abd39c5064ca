package io.peft4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.Npy;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.exporter.ExportOptions;
import io.peft4j.exporter.ExportReport;
import io.peft4j.exporter.Exporter;
import io.peft4j.exporter.NamedAdapter;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code peft4j export --base BASE.onnx --adapter [NAME=]DIR ... --mode merged|side|multi --out PKG_DIR}. */
@Command(name = "export",
        header = "Write a model package (merged, side or multi) from a base model and adapters.",
        description = {
            "Write a model package (model.onnx, manifest.json, adapters/<name>/) from a base model and adapters",
            "in the Hugging Face PEFT layout (ours or PEFT's own; every key must map onto the graph):",
            "  merged  one adapter folded into the weights (no run-time cost)",
            "  side    adapter tensors as graph inputs with base-model defaults; each adapter also as",
            "          adapters/<name>.onnx_adapter for ONNX Runtime's LoRA API (no adapter = base model)",
            "  multi   adapters stacked behind an int64 input adapter_index [batch] (0 = base, k = adapter k)",
            "The package is validated in ONNX Runtime on a probe batch against the base model and each adapter",
            "applied unmerged, and written only when it passes: a failed export leaves --out as it was."},
        mixinStandardHelpOptions = true)
public final class ExportCommand implements Callable<Integer> {

    @Spec
    private CommandSpec spec;

    @Option(names = "--base", required = true, paramLabel = "BASE.onnx", description = "The base model.")
    private Path base;

    @Option(names = "--adapter", paramLabel = "[NAME=]DIR", description = {
        "An adapter directory (adapter_config.json + adapter_model.safetensors); repeatable.",
        "Its name in the package defaults to the directory's name."})
    private List<String> adapters = new ArrayList<>();

    @Option(names = "--mode", required = true, paramLabel = "MODE", description = "merged, side, multi or base.")
    private String mode;

    @Option(names = "--out", required = true, paramLabel = "PKG_DIR",
            description = "The package directory (replaced whole when it is a package; must not be another non-empty directory).")
    private Path out;

    @Option(names = "--fp16", description = "Store weights as float16 (inputs, outputs and compute stay float32).")
    private boolean fp16;

    @Option(names = "--max-rank", paramLabel = "R", defaultValue = "0",
            description = "side/multi: pad every LoRA adapter to rank R; adapters above it are refused (default: the largest rank).")
    private int maxRank;

    @Option(names = "--probe", paramLabel = "[INPUT=]X.npy",
            description = "Validation input (.npy); repeatable, one per model input. Default: seeded random data, batch 2.")
    private List<String> probes = new ArrayList<>();

    @Option(names = "--seed", defaultValue = "0", paramLabel = "S", description = "Seed of the random probe (default: ${DEFAULT-VALUE}).")
    private long seed;

    @Option(names = "--tolerance", defaultValue = "0", paramLabel = "REL",
            description = "Largest relative difference validation accepts (default: 1e-4, with --fp16 2e-2).")
    private double tolerance;

    @Option(names = "--no-validate", description = "Skip the validation in ONNX Runtime.")
    private boolean noValidate;

    @Option(names = "--labels", paramLabel = "FILE", description = "Class labels, one per line, for the manifest.")
    private Path labels;

    @Option(names = "--image-size", paramLabel = "H[xW]", description = "Image preprocessing: resize to H×W (default: the input's).")
    private String imageSize;

    @Option(names = "--channels", paramLabel = "C", description = "Image preprocessing: 1 (grayscale) or 3 (RGB; default: the input's).")
    private Integer channels;

    @Option(names = "--mean", paramLabel = "M[,M,M]", split = ",", description = "Image preprocessing: per-channel mean on [0,1] pixels (default 0).")
    private List<Double> mean;

    @Option(names = "--std", paramLabel = "S[,S,S]", split = ",", description = "Image preprocessing: per-channel std (default 1).")
    private List<Double> std;

    @Option(names = "--image-input", paramLabel = "NAME", description = "Image preprocessing: the input images feed (default: the only input).")
    private String imageInput;

    @Option(names = "--json", description = "Print one JSON object (the package, its adapters and the validation) instead of text.")
    private boolean json;

    @Option(names = "--format", paramLabel = "FORMAT", defaultValue = "onnx", description = {
            "onnx (default), or engine: also build the package's TensorRT engine for --device into PKG_DIR/engines",
            "(needs TensorRT and the GPU here; the runtime's TensorRT backend uses it when the GPU and TensorRT version match)."})
    private String format;

    @Option(names = "--device", paramLabel = "PROFILE", description = "The device profile the engine is built for "
            + "(precision, workspace, max batch): e.g. orin-nano-8gb, x86-nvidia-gpu (see peft4j devices --list).")
    private String device;

    @Option(names = "--profiles", paramLabel = "FILE", description = "Add the device profiles in FILE (JSON), or in every *.json of a directory.")
    private Path profilesFile;

    @Override
    public Integer call() throws Exception {
        Manifest.Mode m = mode();
        io.peft4j.devices.profile.DeviceProfile profile = engineProfile();
        PrintWriter o = spec.commandLine().getOut();
        long t0 = System.nanoTime();
        List<NamedAdapter> named = new ArrayList<>();
        for (String a : adapters) {
            named.add(NamedAdapter.read(a));
        }
        if (!Files.isRegularFile(base)) {
            throw new Peft4jException(ErrorCode.IO, "base model not found: " + base);
        }
        Model baseModel = OnnxIO.read(base);
        Map<String, Tensor> probe = new LinkedHashMap<>();
        for (String p : probes) {
            int eq = p.indexOf('=');
            String name = eq > 0 && !p.substring(0, eq).contains("/") ? p.substring(0, eq) : "";
            probe.put(name, Npy.read(Path.of(name.isEmpty() ? p : p.substring(eq + 1))));
        }
        Map<String, Object> prov = new LinkedHashMap<>();
        prov.put("version", VersionProvider.peft4jVersion());
        prov.put("command", "peft4j " + String.join(" ", spec.commandLine().getParseResult().originalArgs()));
        ExportOptions options = ExportOptions.of(m).withFp16(fp16).withMaxRank(maxRank).withValidate(!noValidate)
                .withProbe(probe, seed).withTolerance(tolerance).withLabels(readLabels())
                .withPreprocessing(preprocessing(baseModel)).withProvenance(prov)
                .withProgress(json ? null : line -> {
                    o.printf(Locale.ROOT, "[%5.1fs] %s%n", (System.nanoTime() - t0) / 1e9, line);
                    o.flush();
                });
        ExportReport r = Exporter.export(baseModel, named, options, out);
        if (profile != null) {
            io.peft4j.devices.trt.EngineSettings es = io.peft4j.devices.trt.TensorRtProvider.settings(profile)
                    .withCacheDir(out.resolve(io.peft4j.devices.trt.TensorRtBackend.ENGINES_DIR));
            try (io.peft4j.devices.trt.TensorRtBackend t = io.peft4j.devices.trt.TensorRtBackend.open(out, es)) {
                io.peft4j.devices.trt.Engines.Built b = t.engineBuild();
                if (!json) {
                    o.printf(Locale.ROOT, "engine: %s/%s.plan (%s, profile %s, built in %.1f s)%n",
                            io.peft4j.devices.trt.TensorRtBackend.ENGINES_DIR, b.key(), es.precision(), profile.id(), b.buildSeconds());
                }
            }
        }
        if (json) {
            o.println(new ObjectMapper().setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
                    .enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(toJson(r)));
        } else {
            printText(r, o);
        }
        o.flush();
        return 0;
    }

    /** The device profile for {@code --format engine} (null for onnx), checked before anything is written. */
    private io.peft4j.devices.profile.DeviceProfile engineProfile() {
        String f = format.toLowerCase(Locale.ROOT);
        if (f.equals("onnx")) {
            if (device != null) {
                throw Peft4jException.invalid("--device is for --format engine");
            }
            return null;
        }
        if (!f.equals("engine")) {
            throw Peft4jException.invalid("--format must be onnx or engine, got '" + format + "'");
        }
        if (device == null) {
            throw Peft4jException.invalid("--format engine needs --device PROFILE (the engine is built for a device profile)");
        }
        io.peft4j.devices.profile.DeviceProfiles profiles = profilesFile == null
                ? io.peft4j.devices.profile.DeviceProfiles.builtIn() : io.peft4j.devices.profile.DeviceProfiles.withUser(profilesFile);
        io.peft4j.devices.profile.DeviceProfile p = profiles.get(device);
        io.peft4j.devices.trt.TensorRt.require();
        return p;
    }

    private Manifest.Mode mode() {
        try {
            return Manifest.Mode.valueOf(mode.toLowerCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw Peft4jException.invalid("--mode must be merged, side, multi or base, got '" + mode + "'");
        }
    }

    private List<String> readLabels() {
        if (labels == null) {
            return List.of();
        }
        try {
            List<String> l = Files.readAllLines(labels, StandardCharsets.UTF_8).stream().map(String::strip)
                    .filter(s -> !s.isEmpty()).toList();
            if (l.isEmpty()) {
                throw Peft4jException.invalid(labels + " holds no labels (one per line)");
            }
            return l;
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read labels " + labels + ": " + e.getMessage(), e);
        }
    }

    /** The preprocessing block when any image option is given; defaults from the image input's shape. */
    private Manifest.Preprocessing preprocessing(Model model) {
        if (imageSize == null && channels == null && mean == null && std == null && imageInput == null) {
            return null;
        }
        List<ValueInfoProto> inputs = model.graph().inputs().stream().filter(v -> !model.graph().hasInitializer(v.getName())).toList();
        ValueInfoProto in;
        if (imageInput != null) {
            in = inputs.stream().filter(v -> v.getName().equals(imageInput)).findFirst().orElseThrow(() ->
                    Peft4jException.notFound("--image-input '" + imageInput + "' is not an input of " + base + "; its inputs are "
                            + inputs.stream().map(ValueInfoProto::getName).toList()));
        } else if (inputs.size() == 1) {
            in = inputs.get(0);
        } else {
            throw Peft4jException.invalid("the model has several inputs; name the image input with --image-input");
        }
        List<Object> dims = ValueInfos.dims(in).orElse(List.of());
        long[] chw = new long[3];
        for (int i = 0; i < 3 && dims.size() == 4; i++) {
            chw[i] = dims.get(i + 1) instanceof Long l ? l : 0;
        }
        int c = channels != null ? channels : (int) chw[0];
        int h;
        int w;
        if (imageSize != null) {
            String[] hw = imageSize.toLowerCase(Locale.ROOT).split("x");
            try {
                h = Integer.parseInt(hw[0].strip());
                w = hw.length > 1 ? Integer.parseInt(hw[1].strip()) : h;
            } catch (NumberFormatException e) {
                throw Peft4jException.invalid("--image-size must be H or HxW, got '" + imageSize + "'");
            }
        } else {
            h = (int) chw[1];
            w = (int) chw[2];
        }
        if (c == 0 || h == 0 || w == 0) {
            throw Peft4jException.invalid("input '" + in.getName() + "' is " + ValueInfos.describe(in)
                    + "; give --channels and --image-size for its preprocessing");
        }
        List<Double> mu = mean != null ? mean : java.util.Collections.nCopies(c, 0.0);
        List<Double> sd = std != null ? std : java.util.Collections.nCopies(c, 1.0);
        return new Manifest.Preprocessing(in.getName(), h, w, c, mu, sd);
    }

    private static Map<String, Object> toJson(ExportReport r) {
        Manifest m = r.manifest();
        Map<String, Object> j = new LinkedHashMap<>();
        j.put("out", r.out().toString());
        j.put("mode", m.mode().name());
        j.put("precision", m.precision());
        j.put("max_rank", m.maxRank());
        j.put("model_bytes", r.modelBytes());
        j.put("seconds", r.seconds());
        j.put("inputs", m.inputs());
        if (m.adapterIndexInput() != null) {
            j.put("adapter_index_input", m.adapterIndexInput());
        }
        j.put("outputs", m.outputs());
        j.put("adapters", m.adapters());
        j.put("merged_adapter", m.mergedAdapter());
        j.put("validation", r.checks().stream().map(ExportReport.Check::toMap).toList());
        j.put("ok", r.ok());
        return j;
    }

    private static void printText(ExportReport r, PrintWriter o) {
        Manifest m = r.manifest();
        o.printf(Locale.ROOT, "exported %s package %s: model.onnx %s, %s weights, %d adapter%s%s, in %.1f s%n", m.mode(), r.out(),
                Format.bytes(r.modelBytes()), m.precision(), m.adapters().size(), m.adapters().size() == 1 ? "" : "s",
                m.maxRank() > 0 ? ", max rank " + m.maxRank() : "", r.seconds());
        for (Manifest.Adapter a : m.adapters()) {
            o.printf("  adapter %-20s %s%s%s  %s%s%n", a.name(), a.peftType(), a.rank() > 0 ? " r=" + a.rank() : "",
                    m.mode() == Manifest.Mode.multi ? "  adapter_index " + a.index() : "",
                    a.bundle() + "/", a.onnxAdapter() == null ? "" : "  " + a.onnxAdapter());
        }
        if (m.adapterIndexInput() != null) {
            o.printf("  input %s (int64 [batch]) picks each row's adapter; 0 = base model%n", m.adapterIndexInput());
        }
        if (r.checks().isEmpty()) {
            o.println("not validated (--no-validate)");
            return;
        }
        o.println("validation in ONNX Runtime (max difference over every output, relative to the reference's largest value):");
        int w = r.checks().stream().mapToInt(c -> c.name().length()).max().orElse(10);
        int wr = r.checks().stream().mapToInt(c -> c.reference().length()).max().orElse(10);
        for (ExportReport.Check c : r.checks()) {
            o.printf(Locale.ROOT, "  %-" + w + "s  vs %-" + wr + "s  abs %.2e  rel %.2e  %s%n", c.name(), c.reference(),
                    c.maxAbs(), c.maxRel(), c.ok() ? "ok" : "FAILED");
        }
    }

    static String shape(long[] s) {
        return Arrays.toString(s).replace(" ", "");
    }
}
