package io.peft4j.core.adapter;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.LiftConstants;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The identity of a base model's weights: SHA-256 over the multiset of its floating-point constant
 * tensors (initializers and Constant-node values), each taken as element type, shape and bytes.
 * Names do not enter it (exporters rename tensors: {@code onnx::MatMul_1234} differs between torch
 * versions), nor do integer tensors (shape constants change with opsets and dynamic axes), nor
 * where the bytes are stored (inline, external file, Constant node): re-exporting the same weights
 * keeps the fingerprint, changing any weight changes it. Written as {@code sha256:<64 hex digits>}.
 */
public final class BaseFingerprint {

    public static final String PREFIX = "sha256:";

    private BaseFingerprint() {
    }

    public static String of(Model model) {
        return of(model.graph());
    }

    public static String of(Graph g) {
        List<Tensor> weights = new ArrayList<>();
        for (Tensor t : g.initializers().values()) {
            if (t.dtype().isFloatingPoint()) {
                weights.add(t);
            }
        }
        for (Node n : g.nodes()) {
            if (n.is("Constant") && n.outputs().size() == 1 && !g.hasInitializer(n.output(0))) {
                Tensor v = LiftConstants.value(n);
                if (v != null && v.dtype().isFloatingPoint()) {
                    weights.add(v);
                }
            }
        }
        List<byte[]> digests = new ArrayList<>(weights.size());
        ByteBuffer header = ByteBuffer.allocate(8 + 8 * 64).order(ByteOrder.LITTLE_ENDIAN);
        for (Tensor t : weights) {
            MessageDigest sha = sha256();
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
            sha.update(t.bytes());
            digests.add(sha.digest());
        }
        digests.sort(Arrays::compare);
        MessageDigest all = sha256();
        for (byte[] d : digests) {
            all.update(d);
        }
        return PREFIX + HexFormat.of().formatHex(all.digest());
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
