package io.peft4j.core.adapter;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.core.Peft4jException;

import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * peft4j's own block in {@code adapter_config.json} ({@code "peft4j": {...}}); PEFT ignores it.
 *
 * @param baseFingerprint the base model's {@link BaseFingerprint}, or null when unknown (an adapter
 *                        imported from Hugging Face PEFT before it was bound to an ONNX graph)
 * @param moduleMap       module path → ONNX node name, as found when the adapter was made
 * @param other           training metadata, provenance and any other entries, kept as read
 */
public record Peft4jBlock(String baseFingerprint, Map<String, String> moduleMap, Map<String, JsonNode> other) {

    public Peft4jBlock {
        if (baseFingerprint != null) {
            BaseFingerprint.validate(baseFingerprint, "peft4j.base_fingerprint");
        }
        moduleMap = Collections.unmodifiableMap(new TreeMap<>(moduleMap == null ? Map.of() : moduleMap));
        Map<String, JsonNode> o = new TreeMap<>();
        if (other != null) {
            other.forEach((k, v) -> o.put(k, AdapterConfig.normalized(v)));
        }
        o.remove("base_fingerprint");
        o.remove("module_map");
        other = Collections.unmodifiableMap(o);
    }

    static Peft4jBlock fromJson(JsonNode v) {
        if (!v.isObject()) {
            throw Peft4jException.malformed("'peft4j' must be an object");
        }
        Map<String, String> modules = new LinkedHashMap<>();
        JsonNode mm = v.get("module_map");
        if (mm != null && !mm.isNull()) {
            if (!mm.isObject()) {
                throw Peft4jException.malformed("'peft4j.module_map' must be an object of strings");
            }
            for (Iterator<Map.Entry<String, JsonNode>> it = mm.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (!e.getValue().isTextual()) {
                    throw Peft4jException.malformed("'peft4j.module_map." + e.getKey() + "' must be a string");
                }
                modules.put(e.getKey(), e.getValue().asText());
            }
        }
        Map<String, JsonNode> other = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = v.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            other.put(e.getKey(), e.getValue());
        }
        return new Peft4jBlock(AdapterConfig.text(v, "base_fingerprint", null), modules, other);
    }

    ObjectNode toJson() {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        other.forEach(o::set);
        if (baseFingerprint != null) {
            o.put("base_fingerprint", baseFingerprint);
        }
        ObjectNode mm = o.putObject("module_map");
        moduleMap.forEach(mm::put);
        return o;
    }
}
