package io.peft4j.runtime;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Checks a JSON value against an OpenAPI 3.0 schema object of a parsed document: {@code $ref},
 * {@code type}, {@code nullable}, {@code enum}, {@code required}, {@code properties},
 * {@code additionalProperties}, {@code items}, {@code oneOf}, {@code minItems}, {@code minimum},
 * {@code pattern} (what the peft4j document uses; {@code format} and descriptions are not
 * checked). Stricter than OpenAPI in one way, on purpose: an object schema that lists
 * {@code properties} and says nothing of {@code additionalProperties} takes no other property, so
 * a field the server sends and the document does not describe is an error.
 */
final class SchemaCheck {

    private final Map<String, Object> document;

    SchemaCheck(Map<String, Object> document) {
        this.document = document;
    }

    /** The problems of {@code value} against {@code schema}, each with its JSON path; empty when it conforms. */
    List<String> problems(JsonNode value, Object schema) {
        List<String> out = new ArrayList<>();
        check(value, schema, "$", out);
        return out;
    }

    /** The object a local {@code $ref} ({@code #/components/...}) points to; an error when it points nowhere. */
    Object resolve(String ref) {
        if (!ref.startsWith("#/")) {
            throw new IllegalArgumentException("only local references are supported: " + ref);
        }
        Object at = document;
        for (String part : ref.substring(2).split("/")) {
            if (!(at instanceof Map<?, ?> m) || !m.containsKey(part)) {
                throw new IllegalArgumentException("reference " + ref + " points nowhere");
            }
            at = m.get(part);
        }
        return at;
    }

    @SuppressWarnings("unchecked")
    private void check(JsonNode v, Object schemaObject, String path, List<String> out) {
        if (!(schemaObject instanceof Map<?, ?>)) {
            out.add(path + ": the schema is not an object: " + schemaObject);
            return;
        }
        Map<String, Object> s = (Map<String, Object>) schemaObject;
        if (s.containsKey("$ref")) {
            check(v, resolve((String) s.get("$ref")), path, out);
            return;
        }
        if (v.isNull()) {
            if (!Boolean.TRUE.equals(s.get("nullable")) && s.containsKey("type")) {
                out.add(path + ": null where the schema does not allow it");
            }
            return;
        }
        if (s.containsKey("oneOf")) {
            int matches = 0;
            for (Object alt : (List<Object>) s.get("oneOf")) {
                if (problems(v, alt).isEmpty()) {
                    matches++;
                }
            }
            if (matches != 1) {
                out.add(path + ": " + v + " matches " + matches + " of the oneOf alternatives, not exactly one");
            }
        }
        String type = (String) s.get("type");
        if (type != null && !hasType(v, type)) {
            out.add(path + ": " + brief(v) + " is not of type " + type);
            return;
        }
        if (s.containsKey("enum")) {
            boolean found = false;
            for (Object e : (List<Object>) s.get("enum")) {
                if ((e instanceof Number n && v.isNumber() && n.doubleValue() == v.asDouble()) || (e instanceof String t && v.isTextual()
                        && t.equals(v.asText())) || (e instanceof Boolean b && v.isBoolean() && b == v.asBoolean())) {
                    found = true;
                }
            }
            if (!found) {
                out.add(path + ": " + v + " is not one of " + s.get("enum"));
            }
        }
        if (s.containsKey("minimum") && v.isNumber() && v.asDouble() < ((Number) s.get("minimum")).doubleValue()) {
            out.add(path + ": " + v + " is below the minimum " + s.get("minimum"));
        }
        if (s.containsKey("pattern") && v.isTextual() && !Pattern.compile((String) s.get("pattern")).matcher(v.asText()).find()) {
            out.add(path + ": '" + v.asText() + "' does not match " + s.get("pattern"));
        }
        if (v.isArray()) {
            if (s.containsKey("minItems") && v.size() < ((Number) s.get("minItems")).intValue()) {
                out.add(path + ": " + v.size() + " items, fewer than " + s.get("minItems"));
            }
            if (s.containsKey("items")) {
                for (int i = 0; i < v.size(); i++) {
                    check(v.get(i), s.get("items"), path + "[" + i + "]", out);
                }
            }
        }
        if (v.isObject()) {
            Map<String, Object> props = (Map<String, Object>) s.getOrDefault("properties", Map.of());
            for (Object r : (List<Object>) s.getOrDefault("required", List.of())) {
                if (!v.has((String) r)) {
                    out.add(path + ": the required property '" + r + "' is missing");
                }
            }
            Object additional = s.get("additionalProperties");
            for (Iterator<Map.Entry<String, JsonNode>> it = v.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> f = it.next();
                String at = path + "." + f.getKey();
                if (props.containsKey(f.getKey())) {
                    check(f.getValue(), props.get(f.getKey()), at, out);
                } else if (additional instanceof Map<?, ?>) {
                    check(f.getValue(), additional, at, out);
                } else if (Boolean.FALSE.equals(additional) || (additional == null && !props.isEmpty())) {
                    out.add(at + ": a property the schema does not describe");
                }
            }
        }
    }

    private static boolean hasType(JsonNode v, String type) {
        return switch (type) {
            case "object" -> v.isObject();
            case "array" -> v.isArray();
            case "string" -> v.isTextual();
            case "integer" -> v.isIntegralNumber() || (v.isNumber() && v.asDouble() == Math.rint(v.asDouble()));
            case "number" -> v.isNumber();
            case "boolean" -> v.isBoolean();
            default -> throw new IllegalArgumentException("unknown schema type " + type);
        };
    }

    private static String brief(JsonNode v) {
        String s = v.toString();
        return s.length() > 80 ? s.substring(0, 77) + "..." : s;
    }
}
