package io.peft4j.core.adapter;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.LiftConstants;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import java.util.TreeMap;

/**
 * The identity of a base model's weights: SHA-256 over every constant tensor (initializers and
 * Constant-node values) in name order, each as name, element type, shape and bytes. Node names,
 * graph structure and where the bytes are stored (inline, external file, Constant node) do not
 * enter it, so re-exporting the same weights keeps the fingerprint; changing any weight changes it.
 * Written as {@code sha256:<64 hex digits>}.
 */
public final class BaseFingerprint {

    public static final String PREFIX = "sha256:";

    private BaseFingerprint() {
    }

    public static String of(Model model) {
        return of(model.graph());
    }

    public static String of(Graph g) {
        Map<String, Tensor> weights = new TreeMap<>(g.initializers());
        for (Node n : g.nodes()) {
            if (n.is("Constant") && n.outputs().size() == 1 && !weights.containsKey(n.output(0))) {
                Tensor v = LiftConstants.value(n);
                if (v != null) {
                    weights.put(n.output(0), v);
                }
            }
        }
        MessageDigest sha = sha256();
        ByteBuffer header = ByteBuffer.allocate(16 + 8 * 64).order(ByteOrder.LITTLE_ENDIAN);
        for (Map.Entry<String, Tensor> e : weights.entrySet()) {
            Tensor t = e.getValue();
            byte[] name = e.getKey().getBytes(StandardCharsets.UTF_8);
            header.clear();
            header.putInt(name.length);
            sha.update(header.flip());
            sha.update(name);
            header.clear();
            header.putInt(t.dtype().onnxCode()).putInt(t.rank());
            for (long d : t.shape()) {
                if (header.remaining() < 8) {
                    sha.update(header.flip());
                    header.clear();
                }
                header.putLong(d);
            }
            sha.update(header.flip());
            if (t.dtype() == DataType.STRING) {
                for (byte[] s : t.strings()) {
                    header.clear();
                    header.putInt(s.length);
                    sha.update(header.flip());
                    sha.update(s);
                }
            } else {
                sha.update(t.bytes());
            }
        }
        return PREFIX + HexFormat.of().formatHex(sha.digest());
    }

    /** Checks the form {@code sha256:<64 hex>}; returns the value. */
    public static String validate(String fingerprint, String what) {
        if (fingerprint == null || !fingerprint.matches("sha256:[0-9a-f]{64}")) {
            throw Peft4jException.malformed(what + ": base fingerprint '" + fingerprint
                    + "' is not of the form sha256:<64 lowercase hex digits>");
        }
        return fingerprint;
    }

    /** A short form for messages: {@code sha256:0123456789ab…}. */
    public static String abbreviate(String fingerprint) {
        return fingerprint.length() > PREFIX.length() + 12 ? fingerprint.substring(0, PREFIX.length() + 12) + "…" : fingerprint;
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK has no SHA-256", e);
        }
    }
}
