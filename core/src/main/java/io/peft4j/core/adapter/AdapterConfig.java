package io.peft4j.core.adapter;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.core.Peft4jException;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * An adapter's {@code adapter_config.json}, as Hugging Face PEFT writes it, validated when made.
 *
 * <p>The fields every peft4j method reads are typed; every other field PEFT (or a newer PEFT)
 * writes is kept in {@link #other()} and written back unchanged, so a config read from PEFT and
 * written here loads in PEFT again. peft4j's own data lives in the {@code peft4j} block.
 *
 * @param peftType          {@code LORA}, {@code IA3}, … (PEFT's {@code peft_type})
 * @param r                 LoRA rank; 0 for methods without one
 * @param loraAlpha         LoRA alpha; the scale is {@code alpha / r} (or {@code alpha / sqrt(r)})
 * @param targetModules     module names (matched as PEFT does: exact or as a suffix after '.'); empty when a regex is used
 * @param targetRegex       PEFT's string form of target_modules: a full-match regex over module paths, or
 *                          PEFT's keyword {@code all-linear}; null when a list is given
 * @param loraDropout       dropout on the adapter's input during training
 * @param bias              {@code none}, {@code all} or {@code lora_only}
 * @param useRslora         scale by {@code alpha / sqrt(r)}
 * @param useDora           weight-decomposed LoRA
 * @param fanInFanOut       the target stores weights as {@code [in, out]} (GPT-2's Conv1D)
 * @param modulesToSave     modules trained fully and saved whole (a new classification head)
 * @param rankPattern       per-module rank overrides (key: regex or name)
 * @param alphaPattern      per-module alpha overrides
 * @param feedforwardModules IA3: modules whose input (not output) is scaled
 * @param peft4j            peft4j's block, or null for an adapter from elsewhere
 * @param other             every other field, as read
 */
public record AdapterConfig(String peftType, int r, double loraAlpha, List<String> targetModules, String targetRegex,
                            double loraDropout, String bias, boolean useRslora, boolean useDora, boolean fanInFanOut,
                            List<String> modulesToSave, Map<String, Integer> rankPattern,
                            Map<String, Double> alphaPattern, List<String> feedforwardModules, Peft4jBlock peft4j,
                            Map<String, JsonNode> other) {

    /** PEFT method names this toolkit knows about (not all are implemented by every component). */
    public static final Set<String> KNOWN_PEFT_TYPES = Set.of("LORA", "IA3", "ADALORA", "LOHA", "LOKR", "OFT", "BOFT",
            "VERA", "PROMPT_TUNING", "PREFIX_TUNING", "P_TUNING", "ADAPTION_PROMPT", "LN_TUNING", "FOURIERFT",
            "BOTTLENECK");

    private static final Set<String> TYPED_KEYS = Set.of("peft_type", "r", "lora_alpha", "target_modules",
            "lora_dropout", "bias", "use_rslora", "use_dora", "fan_in_fan_out", "modules_to_save", "rank_pattern",
            "alpha_pattern", "feedforward_modules", "peft4j");

    static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS);

    /** Python's json.dumps(indent=2, sort_keys=True) layout, which PEFT uses. */
    private static final com.fasterxml.jackson.core.util.DefaultPrettyPrinter PYTHON_STYLE =
            new com.fasterxml.jackson.core.util.DefaultPrettyPrinter()
                    .withObjectIndenter(new com.fasterxml.jackson.core.util.DefaultIndenter("  ", "\n"))
                    .withArrayIndenter(new com.fasterxml.jackson.core.util.DefaultIndenter("  ", "\n"))
                    .withSeparators(com.fasterxml.jackson.core.util.Separators.createDefaultInstance()
                            .withObjectFieldValueSpacing(com.fasterxml.jackson.core.util.Separators.Spacing.AFTER)
                            .withObjectEmptySeparator("").withArrayEmptySeparator(""));

    public AdapterConfig {
        if (peftType == null || peftType.isBlank()) {
            throw Peft4jException.malformed("adapter_config.json has no peft_type");
        }
        if (!KNOWN_PEFT_TYPES.contains(peftType)) {
            throw Peft4jException.unsupported("peft_type '" + peftType + "' is not a PEFT method peft4j knows ("
                    + String.join(", ", new java.util.TreeSet<>(KNOWN_PEFT_TYPES)) + ")");
        }
        if ((peftType.equals("LORA") || peftType.equals("ADALORA")) && r <= 0) {
            throw Peft4jException.invalid("LoRA rank r must be positive, got " + r);
        }
        if (r < 0) {
            throw Peft4jException.invalid("rank r must not be negative, got " + r);
        }
        if (!Double.isFinite(loraAlpha)) {
            throw Peft4jException.invalid("lora_alpha must be a finite number, got " + loraAlpha);
        }
        if (!(loraDropout >= 0 && loraDropout < 1)) {
            throw Peft4jException.invalid("lora_dropout must be in [0, 1), got " + loraDropout);
        }
        bias = bias == null ? "none" : bias;
        if (!Set.of("none", "all", "lora_only").contains(bias)) {
            throw Peft4jException.invalid("bias must be none, all or lora_only, got '" + bias + "'");
        }
        if (targetRegex != null) {
            try {
                java.util.regex.Pattern.compile(targetRegex);
            } catch (java.util.regex.PatternSyntaxException e) {
                throw Peft4jException.invalid("target_modules regex '" + targetRegex + "' is invalid: " + e.getDescription());
            }
        }
        targetModules = List.copyOf(targetModules == null ? List.of() : targetModules);
        modulesToSave = List.copyOf(modulesToSave == null ? List.of() : modulesToSave);
        feedforwardModules = List.copyOf(feedforwardModules == null ? List.of() : feedforwardModules);
        rankPattern = Collections.unmodifiableMap(new LinkedHashMap<>(rankPattern == null ? Map.of() : rankPattern));
        alphaPattern = Collections.unmodifiableMap(new LinkedHashMap<>(alphaPattern == null ? Map.of() : alphaPattern));
        for (Map.Entry<String, Integer> e : rankPattern.entrySet()) {
            if (e.getValue() == null || e.getValue() <= 0) {
                throw Peft4jException.invalid("rank_pattern['" + e.getKey() + "'] must be a positive rank, got " + e.getValue());
            }
        }
        Map<String, JsonNode> o = new TreeMap<>();
        if (other != null) {
            other.forEach((k, v) -> o.put(k, normalized(v)));
        }
        for (String k : TYPED_KEYS) {
            o.remove(k);
        }
        other = Collections.unmodifiableMap(o);
    }

    /**
     * A JSON value as it reads back from its text (Jackson keeps 42L and 42 apart until then), so
     * that a config equals itself after a round trip through the file.
     */
    static JsonNode normalized(JsonNode v) {
        try {
            return JSON.readTree(JSON.writeValueAsString(v));
        } catch (JsonProcessingException e) {
            throw Peft4jException.invalid("value is not serializable as JSON: " + e.getOriginalMessage());
        }
    }

    /** A LoRA config with PEFT's defaults for everything not given. */
    public static AdapterConfig lora(int r, double alpha, List<String> targetModules) {
        return new AdapterConfig("LORA", r, alpha, targetModules, null, 0.0, "none", false, false, false, List.of(),
                Map.of(), Map.of(), List.of(), null, Map.of());
    }

    /** An IA3 config. */
    public static AdapterConfig ia3(List<String> targetModules, List<String> feedforwardModules) {
        return new AdapterConfig("IA3", 0, 0, targetModules, null, 0.0, "none", false, false, false, List.of(),
                Map.of(), Map.of(), feedforwardModules, null, Map.of());
    }

    public AdapterConfig withPeft4j(Peft4jBlock block) {
        return new AdapterConfig(peftType, r, loraAlpha, targetModules, targetRegex, loraDropout, bias, useRslora, useDora,
                fanInFanOut, modulesToSave, rankPattern, alphaPattern, feedforwardModules, block, other);
    }

    /** The LoRA scale for a module of rank {@code rank} and alpha {@code alpha}. */
    public double scale(int rank, double alpha) {
        return useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
    }

    // ---------------------------------------------------------------- JSON

    public static AdapterConfig parse(String json, String what) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new Peft4jException(Peft4jException.ErrorCode.MALFORMED, what + " is not valid JSON: "
                    + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw Peft4jException.malformed(what + " must hold a JSON object");
        }
        try {
            return fromJson((ObjectNode) root, what);
        } catch (Peft4jException e) {
            throw new Peft4jException(e.code(), what + ": " + e.getMessage(), e);
        }
    }

    private static AdapterConfig fromJson(ObjectNode o, String what) {
        Map<String, JsonNode> other = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = o.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            other.put(e.getKey(), e.getValue());
        }
        List<String> targets = List.of();
        String regex = null;
        JsonNode tm = o.get("target_modules");
        if (tm != null && !tm.isNull()) {
            if (tm.isTextual()) {
                regex = tm.asText();
            } else {
                targets = strings(tm, "target_modules");
            }
        }
        String type = text(o, "peft_type", null);
        // PEFT's LoraConfig defaults: r = 8, lora_alpha = 8
        int defaultRank = "LORA".equals(type) || "ADALORA".equals(type) ? 8 : 0;
        return new AdapterConfig(type, (int) integer(o, "r", defaultRank), number(o, "lora_alpha", defaultRank > 0 ? 8.0 : 0.0),
                targets, regex, number(o, "lora_dropout", 0.0), text(o, "bias", "none"), bool(o, "use_rslora"),
                bool(o, "use_dora"), bool(o, "fan_in_fan_out"), optionalStrings(o, "modules_to_save"),
                intMap(o, "rank_pattern"), doubleMap(o, "alpha_pattern"), optionalStrings(o, "feedforward_modules"),
                o.has("peft4j") && !o.get("peft4j").isNull() ? Peft4jBlock.fromJson(o.get("peft4j")) : null, other);
    }

    /** The config as PEFT writes it: sorted keys, two-space indent. */
    public String toJson() {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        for (Map.Entry<String, JsonNode> e : other.entrySet()) {
            o.set(e.getKey(), e.getValue());
        }
        o.put("peft_type", peftType);
        if (r > 0 || peftType.equals("LORA")) {
            o.put("r", r);
            o.put("lora_alpha", isWhole(loraAlpha) ? (JsonNode) JsonNodeFactory.instance.numberNode((long) loraAlpha)
                    : JsonNodeFactory.instance.numberNode(loraAlpha));
            o.put("lora_dropout", loraDropout);
            o.put("use_rslora", useRslora);
            o.put("use_dora", useDora);
            o.set("rank_pattern", JSON.valueToTree(rankPattern));
            o.set("alpha_pattern", JSON.valueToTree(alphaPattern));
        }
        if (targetRegex != null) {
            o.put("target_modules", targetRegex);
        } else {
            ArrayNode a = o.putArray("target_modules");
            targetModules.forEach(a::add);
        }
        if (!peftType.equals("IA3")) {
            o.put("bias", bias); // IA3Config has no bias field
        }
        o.put("fan_in_fan_out", fanInFanOut);
        if (modulesToSave.isEmpty()) {
            o.putNull("modules_to_save");
        } else {
            ArrayNode a = o.putArray("modules_to_save");
            modulesToSave.forEach(a::add);
        }
        if (peftType.equals("IA3")) {
            ArrayNode a = o.putArray("feedforward_modules");
            feedforwardModules.forEach(a::add);
        }
        if (peft4j != null) {
            o.set("peft4j", peft4j.toJson());
        }
        try {
            Object sorted = JSON.treeToValue(o, Object.class);
            return JSON.writer(PYTHON_STYLE).writeValueAsString(sorted);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialize adapter config", e);
        }
    }

    private static boolean isWhole(double d) {
        return d == Math.rint(d) && Math.abs(d) < 1e15;
    }

    // ---------------------------------------------------------------- field readers

    static String text(JsonNode o, String key, String def) {
        JsonNode v = o.get(key);
        if (v == null || v.isNull()) {
            return def;
        }
        if (!v.isTextual()) {
            throw Peft4jException.malformed("'" + key + "' must be a string, got " + v.getNodeType());
        }
        return v.asText();
    }

    static long integer(JsonNode o, String key, long def) {
        JsonNode v = o.get(key);
        if (v == null || v.isNull()) {
            return def;
        }
        if (!v.isIntegralNumber() || !v.canConvertToInt()) {
            throw Peft4jException.malformed("'" + key + "' must be an integer, got " + v);
        }
        return v.asLong();
    }

    static double number(JsonNode o, String key, double def) {
        JsonNode v = o.get(key);
        if (v == null || v.isNull()) {
            return def;
        }
        if (!v.isNumber()) {
            throw Peft4jException.malformed("'" + key + "' must be a number, got " + v);
        }
        return v.asDouble();
    }

    static boolean bool(JsonNode o, String key) {
        JsonNode v = o.get(key);
        if (v == null || v.isNull()) {
            return false;
        }
        if (!v.isBoolean()) {
            throw Peft4jException.malformed("'" + key + "' must be true or false, got " + v);
        }
        return v.asBoolean();
    }

    private static List<String> strings(JsonNode v, String key) {
        if (!v.isArray()) {
            throw Peft4jException.malformed("'" + key + "' must be a list of strings, got " + v.getNodeType());
        }
        List<String> out = new ArrayList<>();
        for (JsonNode e : v) {
            if (!e.isTextual()) {
                throw Peft4jException.malformed("'" + key + "' must hold strings, found " + e);
            }
            out.add(e.asText());
        }
        return out;
    }

    private static List<String> optionalStrings(JsonNode o, String key) {
        JsonNode v = o.get(key);
        if (v != null && v.isTextual()) {
            throw Peft4jException.unsupported("'" + key + "' is a regex string; peft4j reads it as a list of module names only");
        }
        return v == null || v.isNull() ? List.of() : strings(v, key);
    }

    private static Map<String, Integer> intMap(JsonNode o, String key) {
        return map(o, key, v -> v.isIntegralNumber() && v.canConvertToInt(), JsonNode::asInt, "an integer");
    }

    private static Map<String, Double> doubleMap(JsonNode o, String key) {
        return map(o, key, JsonNode::isNumber, JsonNode::asDouble, "a number");
    }

    private static <T> Map<String, T> map(JsonNode o, String key, java.util.function.Predicate<JsonNode> valid,
                                          java.util.function.Function<JsonNode, T> value, String what) {
        JsonNode v = o.get(key);
        Map<String, T> out = new LinkedHashMap<>();
        if (v == null || v.isNull()) {
            return out;
        }
        if (!v.isObject()) {
            throw Peft4jException.malformed("'" + key + "' must be an object, got " + v.getNodeType());
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = v.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!valid.test(e.getValue())) {
                throw Peft4jException.malformed("'" + key + "." + e.getKey() + "' must be " + what);
            }
            out.put(e.getKey(), value.apply(e.getValue()));
        }
        return out;
    }
}
