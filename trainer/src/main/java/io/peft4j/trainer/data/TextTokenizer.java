package io.peft4j.trainer.data;

import ai.djl.engine.EngineException;
import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A Hugging Face {@code tokenizer.json} run by the Rust {@code tokenizers} library through DJL
 * ({@code ai.djl.huggingface:tokenizers}): texts become token ids with the tokenizer's own special
 * tokens ({@code [CLS] … [SEP]} for BERT), truncated to {@code maxLength}, not padded (batches pad).
 *
 * <p>The native library comes out of DJL's jar (Linux x86-64 and aarch64, macOS aarch64, Windows
 * x86-64) and is copied to DJL's cache folder ({@code ~/.djl.ai}, or {@code ENGINE_CACHE_DIR}) once;
 * nothing is downloaded: unless the caller set {@code ai.djl.offline} or {@code DJL_OFFLINE}, this
 * class sets DJL's offline mode before loading, and on a platform the jar does not cover opening a
 * tokenizer fails with a {@link Peft4jException} that says so.
 *
 * <p>{@link #close()} frees the native tokenizer; it is idempotent and throws nothing. Encoding is
 * done once per dataset when it opens, so datasets hold only Java arrays.
 */
public final class TextTokenizer implements AutoCloseable {

    /** Where the langchain4j all-MiniLM-L6-v2 jar keeps its tokenizer (bert-base-uncased's vocabulary). */
    public static final String MINILM_RESOURCE = "/all-minilm-l6-v2-tokenizer.json";

    /** Texts per call into the native tokenizer, to bound its memory. */
    private static final int CHUNK = 1024;

    private final HuggingFaceTokenizer tokenizer;
    private final String source;
    private final int maxLength;
    private final long padId;
    private boolean closed;

    /** Ids, token type ids and whether each text was cut at {@code maxLength}. */
    public record Encoded(long[][] ids, long[][] typeIds, int truncated) {
    }

    private TextTokenizer(HuggingFaceTokenizer tokenizer, String source, int maxLength, long padId) {
        this.tokenizer = tokenizer;
        this.source = source;
        this.maxLength = maxLength;
        this.padId = padId;
    }

    /** Opens {@code tokenizerJson}. */
    public static TextTokenizer open(Path tokenizerJson, int maxLength) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(tokenizerJson);
        } catch (NoSuchFileException e) {
            throw new Peft4jException(ErrorCode.IO, "tokenizer not found: " + tokenizerJson, e);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read " + tokenizerJson + ": " + e.getMessage(), e);
        }
        return open(bytes, tokenizerJson.toString(), maxLength);
    }

    /**
     * all-MiniLM-L6-v2's tokenizer from the class path (the langchain4j model jar), if that jar is
     * there: the tokenizer of the MiniLM model tests and examples use.
     */
    public static Optional<TextTokenizer> bundledMiniLm(int maxLength) {
        try (InputStream in = TextTokenizer.class.getResourceAsStream(MINILM_RESOURCE)) {
            if (in == null) {
                return Optional.empty();
            }
            return Optional.of(open(in.readAllBytes(), "classpath:" + MINILM_RESOURCE, maxLength));
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read " + MINILM_RESOURCE + " from the class path: " + e.getMessage(), e);
        }
    }

    /**
     * The {@code tokenizer.json} in the folder of {@code modelFile}, where Hugging Face exports
     * (Optimum, {@code save_pretrained}) put it, if there is one.
     */
    public static Optional<Path> besideModel(Path modelFile) {
        Path dir = modelFile.toAbsolutePath().getParent();
        Path candidate = dir == null ? null : dir.resolve("tokenizer.json");
        return candidate != null && Files.isRegularFile(candidate) ? Optional.of(candidate) : Optional.empty();
    }

    static TextTokenizer open(byte[] json, String source, int maxLength) {
        if (maxLength < 2) {
            throw Peft4jException.invalid("max length must be at least 2 tokens, got " + maxLength);
        }
        JsonNode config;
        try {
            config = new ObjectMapper().readTree(json);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.MALFORMED, source + " is not a tokenizer.json (not JSON: " + e.getMessage() + ")", e);
        }
        if (config == null || !config.isObject() || !config.has("model")) {
            throw Peft4jException.malformed(source + " is not a Hugging Face tokenizer.json (it has no 'model')");
        }
        offlineByDefault();
        Map<String, String> options = Map.of(
                "addSpecialTokens", "true",
                "padding", "false",
                "truncation", "true",
                "maxLength", Integer.toString(maxLength));
        HuggingFaceTokenizer t;
        try {
            t = HuggingFaceTokenizer.newInstance(new ByteArrayInputStream(json), options);
        } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
            throw Peft4jException.unsupported("the Hugging Face tokenizers library does not load on " + platform()
                    + ": " + e.getMessage());
        } catch (EngineException e) {
            throw new Peft4jException(ErrorCode.UNSUPPORTED, "the Hugging Face tokenizers library is not available for "
                    + platform() + " (DJL's jar has none for it; nothing is downloaded): " + e.getMessage(), e);
        } catch (IOException | RuntimeException e) {
            throw new Peft4jException(ErrorCode.MALFORMED, source + " is not a tokenizer the tokenizers library accepts: "
                    + e.getMessage(), e);
        }
        return new TextTokenizer(t, source, maxLength, padId(config));
    }

    private static synchronized void offlineByDefault() {
        if (System.getProperty("ai.djl.offline") == null && System.getenv("DJL_OFFLINE") == null) {
            System.setProperty("ai.djl.offline", "true");
        }
    }

    private static String platform() {
        return System.getProperty("os.name") + " " + System.getProperty("os.arch");
    }

    /** The padding id the tokenizer declares, else the id of {@code [PAD]} or {@code <pad>}, else 0. */
    private static long padId(JsonNode config) {
        JsonNode padding = config.get("padding");
        if (padding != null && padding.has("pad_id") && padding.get("pad_id").canConvertToLong()) {
            return padding.get("pad_id").asLong();
        }
        JsonNode vocab = config.path("model").path("vocab");
        for (String token : List.of("[PAD]", "<pad>")) {
            if (vocab.isObject() && vocab.has(token) && vocab.get(token).canConvertToLong()) {
                return vocab.get(token).asLong();
            }
        }
        return 0;
    }

    /** Where the tokenizer came from: a file or {@code classpath:...}. */
    public String source() {
        return source;
    }

    public int maxLength() {
        return maxLength;
    }

    /** The id that fills padded positions (their attention mask is 0). */
    public long padId() {
        return padId;
    }

    /** Token ids of {@code text}, special tokens included, at most {@link #maxLength()}. */
    public long[] ids(String text) {
        return encode(List.of(text)).ids()[0];
    }

    /** Encodes {@code texts}, at most {@link #maxLength()} tokens each. */
    public synchronized Encoded encode(List<String> texts) {
        if (closed) {
            throw new IllegalStateException("the tokenizer is closed");
        }
        long[][] ids = new long[texts.size()][];
        long[][] types = new long[texts.size()][];
        int truncated = 0;
        for (int from = 0; from < texts.size(); from += CHUNK) {
            List<String> chunk = texts.subList(from, Math.min(texts.size(), from + CHUNK));
            Encoding[] enc = tokenizer.batchEncode(chunk);
            for (int k = 0; k < enc.length; k++) {
                ids[from + k] = enc[k].getIds();
                types[from + k] = enc[k].getTypeIds();
                if (enc[k].exceedMaxLength()) {
                    truncated++;
                }
            }
        }
        return new Encoded(ids, types, truncated);
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            tokenizer.close();
        }
    }
}
