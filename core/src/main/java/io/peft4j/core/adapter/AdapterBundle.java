package io.peft4j.core.adapter;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.safetensors.Safetensors;
import io.peft4j.core.safetensors.SafetensorsFile;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.util.AtomicFiles;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * An adapter as Hugging Face PEFT saves one: a directory with {@code adapter_config.json} and
 * {@code adapter_model.safetensors} (PEFT key names and shapes). Immutable; reading copies the
 * tensors to the heap, so nothing stays mapped and the files can be replaced while it is in use.
 */
public final class AdapterBundle {

    public static final String CONFIG_FILE = "adapter_config.json";
    public static final String WEIGHTS_FILE = "adapter_model.safetensors";
    /** Larger configs are refused before they are read. */
    static final long MAX_CONFIG_BYTES = 16L << 20;

    private final AdapterConfig config;
    private final Map<String, Tensor> tensors;

    public AdapterBundle(AdapterConfig config, Map<String, Tensor> tensors) {
        if (config == null) {
            throw Peft4jException.invalid("an adapter bundle needs a config");
        }
        Map<String, Tensor> sorted = new TreeMap<>();
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            PeftKey.parse(e.getKey());
            if (!e.getValue().dtype().isFloatingPoint()) {
                throw Peft4jException.invalid("adapter tensor '" + e.getKey() + "' is " + e.getValue().dtype()
                        + "; adapter weights are floating point");
            }
            sorted.put(e.getKey(), e.getValue());
        }
        this.config = config;
        this.tensors = Collections.unmodifiableMap(sorted);
    }

    public AdapterConfig config() {
        return config;
    }

    /** Tensors by PEFT key, in key order. */
    public Map<String, Tensor> tensors() {
        return tensors;
    }

    /** Tensors grouped by module path, then role ({@code lora_A.weight}, {@code ia3_l}, …). */
    public Map<String, Map<String, Tensor>> byModule() {
        Map<String, Map<String, Tensor>> out = new TreeMap<>();
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            PeftKey k = PeftKey.parse(e.getKey());
            out.computeIfAbsent(k.module(), m -> new LinkedHashMap<>()).put(k.role(), e.getValue());
        }
        return out;
    }

    public long parameterCount() {
        long n = 0;
        for (Tensor t : tensors.values()) {
            n += t.numel();
        }
        return n;
    }

    public AdapterBundle withConfig(AdapterConfig c) {
        return new AdapterBundle(c, tensors);
    }

    // ---------------------------------------------------------------- base model binding

    /**
     * Refuses a base model whose weights differ from those the adapter was made for. Returns true
     * when the fingerprint was checked and matches, false when the adapter carries none (one
     * imported from Hugging Face PEFT, which knows no ONNX graph).
     */
    public boolean requireBase(Model base, String baseName) {
        return requireBase(io.peft4j.core.peft.Heads.baseFingerprint(base), baseName);
    }

    public boolean requireBase(String baseFingerprint, String baseName) {
        Peft4jBlock b = config.peft4j();
        if (b == null || b.baseFingerprint() == null) {
            return false;
        }
        if (!b.baseFingerprint().equals(baseFingerprint)) {
            throw new Peft4jException(ErrorCode.FINGERPRINT_MISMATCH, "this adapter was made for another base model: it "
                    + "expects weights " + BaseFingerprint.abbreviate(b.baseFingerprint()) + ", but " + baseName + " has "
                    + BaseFingerprint.abbreviate(baseFingerprint) + " (use the base model it was trained on)");
        }
        return true;
    }

    // ---------------------------------------------------------------- files

    public static AdapterBundle read(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new Peft4jException(ErrorCode.IO, Files.exists(dir) ? dir + " is not a directory; an adapter is a "
                    + "directory with " + CONFIG_FILE + " and " + WEIGHTS_FILE : "adapter directory not found: " + dir);
        }
        Path configFile = dir.resolve(CONFIG_FILE);
        Path weights = dir.resolve(WEIGHTS_FILE);
        if (!Files.isRegularFile(configFile)) {
            throw new Peft4jException(ErrorCode.IO, dir + " has no " + CONFIG_FILE + "; it is not a PEFT adapter directory");
        }
        if (!Files.isRegularFile(weights)) {
            if (Files.exists(dir.resolve("adapter_model.bin"))) {
                throw Peft4jException.unsupported(dir + " holds adapter_model.bin (a PyTorch pickle), which peft4j does not "
                        + "load: save the adapter with safe_serialization=True (PEFT's default) to get " + WEIGHTS_FILE);
            }
            throw new Peft4jException(ErrorCode.IO, dir + " has no " + WEIGHTS_FILE);
        }
        AdapterConfig config;
        try {
            long size = Files.size(configFile);
            if (size > MAX_CONFIG_BYTES) {
                throw Peft4jException.malformed(configFile + " is " + size + " bytes; an adapter config is at most "
                        + MAX_CONFIG_BYTES + " bytes");
            }
            config = AdapterConfig.parse(Files.readString(configFile, StandardCharsets.UTF_8), configFile.toString());
        } catch (java.nio.charset.MalformedInputException e) {
            throw new Peft4jException(ErrorCode.MALFORMED, configFile + " is not UTF-8 text", e);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read " + configFile + ": " + e.getMessage(), e);
        }
        Map<String, Tensor> tensors = SafetensorsFile.readAll(weights);
        try {
            return new AdapterBundle(config, tensors);
        } catch (Peft4jException e) {
            throw new Peft4jException(e.code(), weights + ": " + e.getMessage(), e);
        }
    }

    /**
     * Writes the bundle into {@code dir} (created if needed): the weights first, then the config,
     * each to a temporary name moved into place.
     */
    public void write(Path dir) {
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot create adapter directory " + dir + ": " + e.getMessage(), e);
        }
        Safetensors.write(dir.resolve(WEIGHTS_FILE), tensors, Map.of("format", "pt"));
        AtomicFiles.write(dir.resolve(CONFIG_FILE), config.toJson().getBytes(StandardCharsets.UTF_8));
    }

    /** Bytes the weights take on disk (tensor data only). */
    public long weightBytes() {
        long n = 0;
        for (Tensor t : tensors.values()) {
            n += t.byteSize();
        }
        return n;
    }
}
