package io.peft4j.exporter;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.adapter.AdapterBundle;

import java.nio.file.Path;
import java.util.regex.Pattern;

/**
 * An adapter bundle under the name a package gives it: a directory name under
 * {@code adapters/}, 1–128 letters, digits, '.', '_' or '-', starting with a letter or digit (the
 * rules of {@link io.peft4j.core.pkg.Manifest.Adapter}).
 */
public record NamedAdapter(String name, AdapterBundle bundle) {

    static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");

    public NamedAdapter {
        if (name == null || !NAME.matcher(name).matches()) {
            throw Peft4jException.invalid("adapter name '" + name + "' must be 1-128 letters, digits, '.', '_' or '-', "
                    + "starting with a letter or digit");
        }
        if (bundle == null) {
            throw Peft4jException.invalid("adapter '" + name + "' has no bundle");
        }
    }

    /**
     * Reads {@code [NAME=]DIR}: the bundle in DIR, named NAME, else after the directory (made
     * valid: other characters become '_', leading ones dropped).
     */
    public static NamedAdapter read(String spec) {
        if (spec == null || spec.isBlank()) {
            throw Peft4jException.invalid("an adapter is given as [NAME=]DIR, got an empty value");
        }
        int eq = spec.indexOf('=');
        String name = null;
        String dir = spec;
        if (eq >= 0 && !spec.substring(0, eq).contains("/") && !spec.substring(0, eq).contains("\\")) {
            name = spec.substring(0, eq);
            dir = spec.substring(eq + 1);
            if (dir.isEmpty()) {
                throw Peft4jException.invalid("adapter '" + name + "' names no directory (give NAME=DIR)");
            }
        }
        Path p = Path.of(dir);
        if (name == null) {
            name = nameFor(p);
        }
        if (!NAME.matcher(name).matches()) {
            throw Peft4jException.invalid("adapter name '" + name + "' must be 1-128 letters, digits, '.', '_' or '-', "
                    + "starting with a letter or digit");
        }
        AdapterBundle bundle;
        try {
            bundle = AdapterBundle.read(p);
        } catch (Peft4jException e) {
            throw new Peft4jException(e.code(), "adapter '" + name + "': " + e.getMessage(), e);
        }
        return new NamedAdapter(name, bundle);
    }

    /** The default name for an adapter directory: its file name, made valid. */
    public static String nameFor(Path dir) {
        Path abs = dir.toAbsolutePath().normalize();
        String base = abs.getFileName() == null ? "adapter" : abs.getFileName().toString();
        String s = base.replaceAll("[^A-Za-z0-9._-]", "_").replaceAll("^[^A-Za-z0-9]+", "");
        if (s.length() > 128) {
            s = s.substring(0, 128);
        }
        return s.isEmpty() ? "adapter" : s;
    }
}
