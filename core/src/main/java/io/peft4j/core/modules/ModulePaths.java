package io.peft4j.core.modules;

import java.util.ArrayList;
import java.util.List;

/**
 * PyTorch module paths from ONNX names.
 *
 * <p>PyTorch's exporter names each node after the chain of module scopes it was traced in, one
 * segment per module, ending with the op: {@code /layer1/layer1.0/conv1/Conv}. Each segment is the
 * module's qualified name shortened to start at its last non-numeric atom ({@code layer1.0.conv1}
 * appears as {@code conv1}, {@code layer1.0} as {@code layer1.0}, {@code features.1.block.0.0} as
 * {@code block.0.0}). Rebuilding the path: a segment {@code X.n1…nk} ending in an index whose head
 * {@code X.n1…n(k-1)} ends the previous path is that module's k-th child; any other segment is a
 * child (or, for containers without a forward such as ModuleList, grandchild) of the previous module.
 * The result is the name {@code named_modules()} gives. One case is ambiguous from names alone: an
 * attribute named like its parent and holding a ModuleList ({@code layer1.layer1.0}) reads as
 * {@code layer1.0}; {@code TargetFinder} then still has the weight's own name to go by.
 */
public final class ModulePaths {

    private ModulePaths() {
    }

    /**
     * The module path a scoped node name encodes, or {@code null} when the name carries no scope
     * (no leading slash, or nothing between the slashes and the op).
     */
    public static String fromNodeName(String nodeName) {
        if (nodeName == null || !nodeName.startsWith("/")) {
            return null;
        }
        String[] parts = nodeName.substring(1).split("/");
        if (parts.length < 2) {
            return null;
        }
        String path = "";
        for (int i = 0; i < parts.length - 1; i++) {
            String seg = parts[i];
            if (seg.isEmpty()) {
                return null;
            }
            path = append(path, seg);
        }
        return path.isEmpty() ? null : path;
    }

    private static String append(String parent, String segment) {
        if (parent.isEmpty()) {
            return segment; // the first scope is a qualified name from the root
        }
        int cut = segment.lastIndexOf('.');
        if (cut > 0 && isNumeric(segment.substring(cut + 1))) {
            // "X.n1...nk": either the k-th index into the previous scope, whose own segment ended in
            // "X.n1...n(k-1)" (Sequential children: layer1 → layer1.0), or a container that never ran
            // as a scope of its own (a ModuleList: encoder → layer.0)
            String head = segment.substring(0, cut);
            if (parent.equals(head) || parent.endsWith("." + head)) {
                return parent + segment.substring(cut);
            }
        }
        return parent + "." + segment;
    }

    private static boolean isNumeric(String atom) {
        if (atom.isEmpty()) {
            return false;
        }
        for (int i = 0; i < atom.length(); i++) {
            if (!Character.isDigit(atom.charAt(i))) {
                return false;
            }
        }
        return true;
    }

    /** {@code fc.weight} → {@code fc}; {@code null} for names that are not parameter names. */
    public static String fromWeightName(String initializer) {
        if (initializer == null) {
            return null;
        }
        for (String suffix : List.of(".weight", ".bias")) {
            if (initializer.endsWith(suffix) && initializer.length() > suffix.length()
                    && !initializer.contains("::") && !initializer.contains("/")) {
                return initializer.substring(0, initializer.length() - suffix.length());
            }
        }
        return null;
    }

    /** A node name made into a path-like identifier: letters, digits, '_' and '.'. */
    public static String sanitize(String nodeName) {
        StringBuilder b = new StringBuilder();
        for (char c : nodeName.toCharArray()) {
            b.append(Character.isLetterOrDigit(c) || c == '_' || c == '.' ? c : '_');
        }
        String s = b.toString().replaceAll("_+", "_").replaceAll("^[_.]+|[_.]+$", "");
        return s.isEmpty() ? "node" : s;
    }

    /** Candidate paths for a node, best first: node scope, weight name, sanitized node name. */
    public static List<String> candidates(String nodeName, String weightName) {
        List<String> out = new ArrayList<>(3);
        String scoped = fromNodeName(nodeName);
        String fromWeight = fromWeightName(weightName);
        if (scoped != null && fromWeight != null && !scoped.equals(fromWeight)
                && fromWeight.endsWith("." + scoped.substring(scoped.lastIndexOf('.') + 1))) {
            // the parameter's own name agrees with the innermost scope: it resolves what the scope
            // chain leaves ambiguous (a tied weight used elsewhere would not end the same way)
            out.add(fromWeight);
        }
        if (scoped != null && !out.contains(scoped)) {
            out.add(scoped);
        }
        if (fromWeight != null && !out.contains(fromWeight)) {
            out.add(fromWeight);
        }
        String sanitized = sanitize(nodeName == null || nodeName.isEmpty() ? String.valueOf(weightName) : nodeName);
        if (!out.contains(sanitized)) {
            out.add(sanitized);
        }
        return out;
    }
}
