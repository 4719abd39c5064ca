package io.peft4j.core.pkg;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.annotation.JsonInclude;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.adapter.BaseFingerprint;

import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A model package's {@code manifest.json}: what the package's {@code model.onnx} is, how to feed
 * it, and which adapters it carries. Validated when made, so that a package that loads is usable.
 *
 * @param formatVersion   {@link #FORMAT_VERSION}
 * @param mode            how adapters live in the model
 * @param model           the model file, relative to the package
 * @param baseFingerprint the fingerprint of the base model the adapters were made for
 * @param precision       {@code fp32} or {@code fp16} (weights; inputs and outputs stay as declared)
 * @param inputs          the model's inputs as a caller feeds them (adapter inputs excluded)
 * @param outputs         the model's outputs
 * @param maxRank         the rank side and multi models are padded to (0 for base and merged)
 * @param adapters        the adapters, in index order for multi packages (index 0 is the base model)
 * @param mergedAdapter   the adapter folded into the weights of a merged package, else null
 * @param labels          class labels for classification outputs, or empty
 * @param preprocessing   how raw images become the model's input, or null
 * @param provenance      free-form: toolkit version, commands, settings
 * @param adapterIndexInput multi packages: the int64 [batch] graph input that picks each row's
 *                        adapter ({@value #ADAPTER_INDEX}, filled in when absent); null otherwise.
 *                        It is not among {@code inputs}: a caller feeds it (0 = base model) or
 *                        lets the runner fill it from the adapter's {@code index}
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record Manifest(int formatVersion, Mode mode, String model, String baseFingerprint, String precision,
                       List<Value> inputs, List<Value> outputs, int maxRank, List<Adapter> adapters,
                       String mergedAdapter, List<String> labels, Preprocessing preprocessing, JsonNode provenance,
                       String adapterIndexInput) {

    public static final int FORMAT_VERSION = 1;

    /** The name of a multi package's adapter-selecting input. */
    public static final String ADAPTER_INDEX = "adapter_index";

    /** A manifest without an explicit adapter index input (filled in for multi packages). */
    public Manifest(int formatVersion, Mode mode, String model, String baseFingerprint, String precision,
                    List<Value> inputs, List<Value> outputs, int maxRank, List<Adapter> adapters,
                    String mergedAdapter, List<String> labels, Preprocessing preprocessing, JsonNode provenance) {
        this(formatVersion, mode, model, baseFingerprint, precision, inputs, outputs, maxRank, adapters, mergedAdapter,
                labels, preprocessing, provenance, null);
    }

    /** How adapters live in the packaged model. */
    public enum Mode {
        /** The base model as it is. */
        base,
        /** One adapter folded into the weights. */
        merged,
        /** Adapter tensors are graph inputs, fed per request ({@code .onnx_adapter} files). */
        side,
        /** K adapters stacked; an int64 {@code adapter_index} input picks one per batch row. */
        multi
    }

    /** A tensor the caller feeds or receives: dims are numbers or symbolic names. */
    public record Value(String name, String type, List<Object> shape) {
        public Value {
            require(name != null && !name.isEmpty(), "a model input or output needs a name");
            require(type != null && !type.isEmpty(), "input/output '" + name + "' needs a type");
            shape = shape == null ? null : List.copyOf(shape);
        }
    }

    /**
     * An adapter in the package.
     *
     * @param name        its name (a directory name under {@code adapters/})
     * @param index       multi packages: its {@code adapter_index} (1..K); else 0
     * @param bundle      the PEFT bundle directory, relative to the package
     * @param onnxAdapter side packages: its {@code .onnx_adapter} file, relative to the package, else null
     * @param peftType    the PEFT method
     * @param rank        its LoRA rank (0 for methods without one)
     */
    public record Adapter(String name, int index, String bundle, String onnxAdapter, String peftType, int rank) {
        public Adapter {
            require(name != null && name.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,127}"),
                    "adapter name '" + name + "' must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit");
            require(index >= 0, "adapter '" + name + "' has a negative index");
            require(bundle != null, "adapter '" + name + "' has no bundle directory");
            safeRelative(bundle, "adapter '" + name + "' bundle");
            if (onnxAdapter != null) {
                safeRelative(onnxAdapter, "adapter '" + name + "' .onnx_adapter");
            }
            require(rank >= 0, "adapter '" + name + "' has a negative rank");
        }
    }

    /**
     * How an image becomes the model's input: resize to {@code height}×{@code width}, convert to
     * {@code channels} (1 = grayscale, 3 = RGB), scale to [0,1], subtract {@code mean} and divide by
     * {@code std} per channel, NCHW.
     */
    public record Preprocessing(String input, int height, int width, int channels, List<Double> mean, List<Double> std) {
        public Preprocessing {
            require(input != null, "preprocessing names no input");
            require(height > 0 && width > 0 && height <= 16384 && width <= 16384, "preprocessing size must be 1..16384");
            require(channels == 1 || channels == 3, "preprocessing channels must be 1 or 3");
            require(mean != null && mean.size() == channels && std != null && std.size() == channels,
                    "preprocessing mean and std need one value per channel");
            for (double s : std) {
                require(s > 0 && Double.isFinite(s), "preprocessing std values must be positive");
            }
            mean = List.copyOf(mean);
            std = List.copyOf(std);
        }
    }

    public Manifest {
        require(formatVersion == FORMAT_VERSION, "manifest format_version " + formatVersion + " is not supported (this peft4j reads "
                + FORMAT_VERSION + ")");
        require(mode != null, "manifest has no mode (base, merged, side or multi)");
        require(model != null, "manifest names no model file");
        safeRelative(model, "model");
        if (baseFingerprint != null) {
            BaseFingerprint.validate(baseFingerprint, "manifest base_fingerprint");
        }
        precision = precision == null ? "fp32" : precision;
        require(precision.equals("fp32") || precision.equals("fp16"), "precision must be fp32 or fp16, got " + precision);
        inputs = List.copyOf(inputs == null ? List.of() : inputs);
        outputs = List.copyOf(outputs == null ? List.of() : outputs);
        require(!inputs.isEmpty() && !outputs.isEmpty(), "manifest must list the model's inputs and outputs");
        adapters = List.copyOf(adapters == null ? List.of() : adapters);
        labels = List.copyOf(labels == null ? List.of() : labels);
        require(maxRank >= 0, "max_rank must not be negative");
        Set<String> names = new HashSet<>();
        Set<Integer> indices = new HashSet<>();
        for (Adapter a : adapters) {
            require(names.add(a.name()), "adapter '" + a.name() + "' is listed twice");
            if (mode == Mode.multi) {
                require(a.index() >= 1 && indices.add(a.index()), "multi adapter '" + a.name() + "' needs a unique index >= 1");
            }
            require(a.rank() <= maxRank || mode == Mode.merged || mode == Mode.base,
                    "adapter '" + a.name() + "' has rank " + a.rank() + " above max_rank " + maxRank);
        }
        if (mode == Mode.merged) {
            require(mergedAdapter != null && names.contains(mergedAdapter), "a merged package names its merged adapter among its adapters");
        } else {
            require(mergedAdapter == null, "only merged packages have a merged adapter");
        }
        if (mode == Mode.multi) {
            adapterIndexInput = adapterIndexInput == null ? ADAPTER_INDEX : adapterIndexInput;
            require(!adapterIndexInput.isEmpty(), "adapter_index_input must not be empty");
            for (Value v : inputs) {
                require(!v.name().equals(adapterIndexInput), "input '" + adapterIndexInput + "' is the adapter index; "
                        + "it is named by adapter_index_input, not listed among the inputs");
            }
        } else {
            require(adapterIndexInput == null, "only multi packages have an adapter_index_input");
        }
        if (mode == Mode.multi) {
            require(indices.size() == adapters.size() && (adapters.isEmpty()
                    || indices.stream().mapToInt(Integer::intValue).max().getAsInt() == adapters.size()),
                    "multi adapter indices must be 1..K");
        }
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw Peft4jException.malformed(message);
        }
    }

    /** A relative path that stays inside the package: no absolute paths, no '..', no backslashes. */
    static String safeRelative(String p, String what) {
        require(p != null && !p.isEmpty(), what + " path is empty");
        require(!p.startsWith("/") && !p.contains("\\") && !p.contains(":"), what + " path '" + p + "' must be relative");
        for (String part : p.split("/")) {
            require(!part.equals("..") && !part.equals(".") && !part.isEmpty(), what + " path '" + p + "' must stay inside the package");
        }
        return p;
    }

    public Adapter adapter(String adapterName) {
        for (Adapter a : adapters) {
            if (a.name().equals(adapterName)) {
                return a;
            }
        }
        throw Peft4jException.notFound("the package has no adapter '" + adapterName + "'"
                + (adapters.isEmpty() ? " (it has none)" : "; it has " + adapters.stream().map(Adapter::name).toList()));
    }

    // ---------------------------------------------------------------- JSON

    static final ObjectMapper JSON = new ObjectMapper()
            .setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .enable(SerializationFeature.INDENT_OUTPUT);

    public String toJson() {
        try {
            return JSON.writeValueAsString(this) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialize the manifest", e);
        }
    }

    public static Manifest parse(String json, String what) {
        try {
            Manifest m = JSON.readValue(json, Manifest.class);
            if (m == null) {
                throw Peft4jException.malformed(what + " is empty");
            }
            return m;
        } catch (com.fasterxml.jackson.databind.exc.ValueInstantiationException e) {
            Throwable c = e.getCause();
            if (c instanceof Peft4jException p) {
                throw new Peft4jException(p.code(), what + ": " + p.getMessage(), e);
            }
            throw new Peft4jException(Peft4jException.ErrorCode.MALFORMED, what + " is not a valid manifest: " + e.getOriginalMessage(), e);
        } catch (JsonProcessingException e) {
            throw new Peft4jException(Peft4jException.ErrorCode.MALFORMED, what + " is not a valid manifest: " + e.getOriginalMessage(), e);
        }
    }

    /** Free-form provenance as a map, for callers that want to add to it. */
    public static JsonNode provenance(Map<String, ?> values) {
        return JSON.valueToTree(values);
    }
}
