package io.peft4j.devices.profile;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.Set;
import java.util.stream.Stream;

/**
 * A set of device profiles: the built-in ones (JSON resources under
 * {@code io/peft4j/devices/profiles/}, listed in its {@code index}) plus any the user adds.
 *
 * <p>A profile file holds one profile object or an array of them; a directory contributes every
 * {@code *.json} file in it, in name order. Keys are snake_case: {@code id}, {@code name},
 * {@code kind} ({@code jetson}, {@code gpu}, {@code cpu}), {@code detect}, {@code memory_mib} (a
 * number, or {@code "host"}), {@code usable_memory_mib} or {@code usable_memory_percent},
 * {@code compute_capability}, {@code dla_cores}, {@code min_l4t}, {@code precisions},
 * {@code backends}, {@code max_batch}, {@code workspace_mib}, {@code engine_cache_dir},
 * {@code threads}, and {@code extends} (the id of a profile defined earlier, built-in or user,
 * whose keys this one inherits and overrides). Unknown keys, missing or out-of-range values,
 * unknown backend or precision names, a second profile with an id already taken, and an unknown
 * parent are errors that name the file and the profile. Immutable once loaded.
 */
public final class DeviceProfiles {

    /** The resource folder of the built-in profiles. */
    static final String RESOURCES = "/io/peft4j/devices/profiles/";

    private static final ObjectMapper JSON = new ObjectMapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    private static final Set<String> KEYS = Set.of("id", "name", "kind", "extends", "detect", "memory_mib",
            "usable_memory_mib", "usable_memory_percent", "compute_capability", "dla_cores", "min_l4t", "precisions",
            "backends", "max_batch", "workspace_mib", "engine_cache_dir", "threads", "description");

    private static volatile DeviceProfiles builtIn;

    /** id → profile, in definition order. */
    private final Map<String, DeviceProfile> profiles;
    /** id → the merged JSON it was made from (what {@code extends} inherits). */
    private final Map<String, ObjectNode> definitions;

    private DeviceProfiles(Map<String, DeviceProfile> profiles, Map<String, ObjectNode> definitions) {
        this.profiles = profiles;
        this.definitions = definitions;
    }

    /** The profiles that ship with peft4j. */
    public static DeviceProfiles builtIn() {
        DeviceProfiles b = builtIn;
        if (b == null) {
            Loader l = new Loader(new LinkedHashMap<>(), new LinkedHashMap<>());
            for (String file : resourceIndex()) {
                String where = "built-in " + file;
                l.addText(read(RESOURCES + file, where), where);
            }
            b = builtIn = new DeviceProfiles(l.profiles, l.definitions);
        }
        return b;
    }

    /** The built-in profiles plus those in {@code fileOrDir} (a JSON file, or a directory of them). */
    public static DeviceProfiles withUser(Path fileOrDir) {
        return builtIn().plus(fileOrDir);
    }

    /** These profiles plus those in {@code fileOrDir} (a JSON file, or a directory of {@code *.json}). */
    public DeviceProfiles plus(Path fileOrDir) {
        Loader l = new Loader(new LinkedHashMap<>(profiles), new LinkedHashMap<>(definitions));
        List<Path> files = new ArrayList<>();
        if (Files.isDirectory(fileOrDir)) {
            try (Stream<Path> s = Files.list(fileOrDir)) {
                s.filter(p -> p.getFileName().toString().endsWith(".json") && Files.isRegularFile(p)).sorted()
                        .forEach(files::add);
            } catch (IOException e) {
                throw new Peft4jException(ErrorCode.IO, "cannot list the profile directory " + fileOrDir + ": "
                        + e.getMessage(), e);
            }
            if (files.isEmpty()) {
                throw Peft4jException.notFound("the profile directory " + fileOrDir + " has no *.json file");
            }
        } else if (Files.isRegularFile(fileOrDir)) {
            files.add(fileOrDir);
        } else {
            throw new Peft4jException(ErrorCode.IO, "device profile file not found: " + fileOrDir);
        }
        for (Path f : files) {
            String text;
            try {
                text = Files.readString(f, StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new Peft4jException(ErrorCode.IO, "cannot read the profile file " + f + ": " + e.getMessage(), e);
            }
            l.addText(text, f.toString());
        }
        return new DeviceProfiles(l.profiles, l.definitions);
    }

    /** Every profile, built-in ones first, in definition order. */
    public Collection<DeviceProfile> all() {
        return List.copyOf(profiles.values());
    }

    /** The profile {@code id}, if there is one. */
    public Optional<DeviceProfile> find(String id) {
        return Optional.ofNullable(profiles.get(id));
    }

    /** The profile {@code id}, or NOT_FOUND listing the ids there are. */
    public DeviceProfile get(String id) {
        DeviceProfile p = profiles.get(id);
        if (p == null) {
            throw Peft4jException.notFound("unknown device profile '" + id + "'; the profiles are " + profiles.keySet()
                    + " (add your own with --profiles FILE)");
        }
        return p;
    }

    // ---------------------------------------------------------------- loading

    private static List<String> resourceIndex() {
        String text = read(RESOURCES + "index", "the built-in profile index");
        List<String> files = new ArrayList<>();
        for (String line : text.split("\n")) {
            String t = line.strip();
            if (!t.isEmpty() && !t.startsWith("#")) {
                files.add(t);
            }
        }
        return files;
    }

    private static String read(String resource, String what) {
        try (InputStream in = DeviceProfiles.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException(what + " is missing from the classpath (" + resource + ")");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + what, e);
        }
    }

    /** Adds profiles one definition at a time, each checked against those before it. */
    private record Loader(Map<String, DeviceProfile> profiles, Map<String, ObjectNode> definitions) {

        void addText(String text, String file) {
            JsonNode root;
            try {
                root = JSON.readTree(text);
            } catch (JsonProcessingException e) {
                throw Peft4jException.malformed("the profile file " + file + " is not valid JSON: " + e.getOriginalMessage()
                        + " (line " + e.getLocation().getLineNr() + ")");
            }
            if (root == null || root.isMissingNode()) {
                throw Peft4jException.malformed("the profile file " + file + " is empty");
            }
            if (root.isObject()) {
                add((ObjectNode) root, file);
            } else if (root.isArray()) {
                if (root.isEmpty()) {
                    throw Peft4jException.malformed("the profile file " + file + " holds an empty array");
                }
                int i = 0;
                for (JsonNode n : root) {
                    if (!n.isObject()) {
                        throw Peft4jException.malformed("the profile file " + file + ": entry " + i + " is not a JSON object");
                    }
                    add((ObjectNode) n, file);
                    i++;
                }
            } else {
                throw Peft4jException.malformed("the profile file " + file + " must hold a profile object or an array of them");
            }
        }

        private void add(ObjectNode def, String file) {
            JsonNode idNode = def.get("id");
            if (idNode == null || !idNode.isTextual()) {
                throw Peft4jException.invalid("a profile in " + file + " has no text 'id'");
            }
            String id = idNode.asText();
            String where = "profile '" + id + "' (" + file + ")";
            Set<String> unknown = new LinkedHashSet<>();
            def.fieldNames().forEachRemaining(k -> {
                if (!KEYS.contains(k)) {
                    unknown.add(k);
                }
            });
            if (!unknown.isEmpty()) {
                throw Peft4jException.invalid(where + ": unknown key" + (unknown.size() > 1 ? "s " : " ") + unknown
                        + "; the keys are " + new java.util.TreeSet<>(KEYS));
            }
            DeviceProfile existing = profiles.get(id);
            if (existing != null) {
                throw Peft4jException.invalid(where + ": the id is already defined by " + existing.source()
                        + "; choose another id (a profile can inherit from it with \"extends\": \"" + id + "\")");
            }
            ObjectNode merged = def.deepCopy();
            JsonNode parentNode = def.get("extends");
            if (parentNode != null) {
                if (!parentNode.isTextual()) {
                    throw Peft4jException.invalid(where + ": 'extends' must be a profile id");
                }
                ObjectNode parent = definitions.get(parentNode.asText());
                if (parent == null) {
                    throw Peft4jException.notFound(where + ": 'extends' names unknown profile '" + parentNode.asText()
                            + "'; the profiles defined before it are " + definitions.keySet());
                }
                merged = parent.deepCopy();
                merged.remove("description");
                for (Iterator<Map.Entry<String, JsonNode>> it = def.fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> e = it.next();
                    if (e.getKey().equals("usable_memory_mib")) {
                        merged.remove("usable_memory_percent");
                    } else if (e.getKey().equals("usable_memory_percent")) {
                        merged.remove("usable_memory_mib");
                    }
                    merged.set(e.getKey(), e.getValue());
                }
            }
            merged.remove("extends");
            profiles.put(id, toProfile(merged, id, file, where));
            definitions.put(id, merged);
        }
    }

    private static DeviceProfile toProfile(ObjectNode o, String id, String file, String where) {
        DeviceProfile.Kind kind;
        String k = text(o, "kind", where, true);
        try {
            kind = DeviceProfile.Kind.valueOf(k.toUpperCase(java.util.Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw Peft4jException.invalid(where + ": unknown kind '" + k + "'; the kinds are jetson, gpu, cpu");
        }
        OptionalLong memory;
        JsonNode m = o.get("memory_mib");
        if (m == null) {
            throw Peft4jException.invalid(where + ": 'memory_mib' is missing (a number of MiB, or \"host\")");
        } else if (m.isTextual() && m.asText().equals("host")) {
            memory = OptionalLong.empty();
        } else {
            memory = OptionalLong.of(number(o, "memory_mib", where));
        }
        OptionalLong usableMiB = o.has("usable_memory_mib") ? OptionalLong.of(number(o, "usable_memory_mib", where))
                : OptionalLong.empty();
        int usablePercent = o.has("usable_memory_percent") ? (int) number(o, "usable_memory_percent", where) : 0;
        return new DeviceProfile(id, text(o, "name", where, true), kind, Optional.ofNullable(text(o, "detect", where, false)),
                memory, usableMiB, usablePercent, Optional.ofNullable(text(o, "compute_capability", where, false)),
                (int) optNumber(o, "dla_cores", where, 0), (int) optNumber(o, "min_l4t", where, 0),
                names(o, "precisions", where), names(o, "backends", where), (int) number(o, "max_batch", where),
                number(o, "workspace_mib", where), text(o, "engine_cache_dir", where, true),
                (int) number(o, "threads", where), file);
    }

    private static String text(ObjectNode o, String key, String where, boolean required) {
        JsonNode n = o.get(key);
        if (n == null || n.isNull()) {
            if (required) {
                throw Peft4jException.invalid(where + ": '" + key + "' is missing");
            }
            return null;
        }
        if (!n.isTextual()) {
            throw Peft4jException.invalid(where + ": '" + key + "' must be text, got " + n);
        }
        return n.asText();
    }

    private static long optNumber(ObjectNode o, String key, String where, long dflt) {
        return o.has(key) ? number(o, key, where) : dflt;
    }

    private static long number(ObjectNode o, String key, String where) {
        JsonNode n = o.get(key);
        if (n == null || n.isNull()) {
            throw Peft4jException.invalid(where + ": '" + key + "' is missing");
        }
        if (!n.isIntegralNumber() || !n.canConvertToLong()) {
            throw Peft4jException.invalid(where + ": '" + key + "' must be a whole number, got " + n);
        }
        long v = n.asLong();
        if (v < 0) {
            throw Peft4jException.invalid(where + ": '" + key + "' must not be negative, got " + v);
        }
        return v;
    }

    private static List<String> names(ObjectNode o, String key, String where) {
        JsonNode n = o.get(key);
        if (n == null) {
            throw Peft4jException.invalid(where + ": '" + key + "' is missing");
        }
        if (!n.isArray()) {
            throw Peft4jException.invalid(where + ": '" + key + "' must be an array of names, got " + n);
        }
        List<String> out = new ArrayList<>();
        for (JsonNode e : n) {
            if (!e.isTextual()) {
                throw Peft4jException.invalid(where + ": '" + key + "' must hold names, got " + e);
            }
            out.add(e.asText());
        }
        return out;
    }
}
