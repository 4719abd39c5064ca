package io.peft4j.core.pkg;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A model package: a directory with {@code model.onnx} (and its external data),
 * {@code manifest.json} and {@code adapters/<name>/} bundles. {@link #open} validates the manifest
 * and that every file it names is there; {@link Writer} builds a package in a hidden temporary
 * directory beside the target and moves it into place only when complete, so a failed export
 * leaves nothing half-written (an existing package at the target is replaced as a whole).
 */
public final class ModelPackage {

    public static final String MANIFEST = "manifest.json";
    static final long MAX_MANIFEST_BYTES = 4L << 20;

    private final Path dir;
    private final Manifest manifest;

    private ModelPackage(Path dir, Manifest manifest) {
        this.dir = dir;
        this.manifest = manifest;
    }

    public Path dir() {
        return dir;
    }

    public Manifest manifest() {
        return manifest;
    }

    public Path modelFile() {
        return dir.resolve(manifest.model());
    }

    public Model readModel() {
        return OnnxIO.read(modelFile());
    }

    public AdapterBundle readAdapter(String name) {
        return AdapterBundle.read(dir.resolve(manifest.adapter(name).bundle()));
    }

    /** Whether {@code dir} looks like a package (has a manifest). */
    public static boolean isPackage(Path dir) {
        return Files.isDirectory(dir) && Files.isRegularFile(dir.resolve(MANIFEST));
    }

    public static ModelPackage open(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new Peft4jException(ErrorCode.IO, Files.exists(dir) ? dir + " is not a model package directory"
                    : "model package not found: " + dir);
        }
        Path mf = dir.resolve(MANIFEST);
        if (!Files.isRegularFile(mf)) {
            throw new Peft4jException(ErrorCode.IO, dir + " has no " + MANIFEST + "; it is not a model package");
        }
        Manifest m;
        try {
            if (Files.size(mf) > MAX_MANIFEST_BYTES) {
                throw Peft4jException.malformed(mf + " is larger than " + MAX_MANIFEST_BYTES + " bytes");
            }
            m = Manifest.parse(Files.readString(mf, StandardCharsets.UTF_8), mf.toString());
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read " + mf + ": " + e.getMessage(), e);
        }
        requireFile(dir, m.model(), "model");
        for (Manifest.Adapter a : m.adapters()) {
            if (!Files.isDirectory(dir.resolve(a.bundle()))) {
                throw new Peft4jException(ErrorCode.IO, dir + ": adapter '" + a.name() + "' directory " + a.bundle() + " is missing");
            }
            if (a.onnxAdapter() != null) {
                requireFile(dir, a.onnxAdapter(), "adapter '" + a.name() + "'");
            }
        }
        return new ModelPackage(dir, m);
    }

    private static void requireFile(Path dir, String relative, String what) {
        Path p = dir.resolve(relative).normalize();
        if (!p.startsWith(dir.normalize()) || !Files.isRegularFile(p)) {
            throw new Peft4jException(ErrorCode.IO, dir + ": " + what + " file " + relative + " is missing");
        }
    }

    /**
     * Builds a package in a temporary directory beside {@code target}. Put files in with
     * {@link #stage()} paths, then {@link #commit(Manifest)}; {@link #close()} without commit
     * removes everything.
     */
    public static Writer writer(Path target) {
        return new Writer(target);
    }

    /** A package being written; see {@link ModelPackage#writer}. */
    public static final class Writer implements AutoCloseable {
        private final Path target;
        private final Path staging;
        private boolean committed;

        private Writer(Path target) {
            this.target = target.toAbsolutePath().normalize();
            Path parent = this.target.getParent();
            try {
                Files.createDirectories(parent);
                if (Files.exists(this.target) && !Files.isDirectory(this.target)) {
                    throw new Peft4jException(ErrorCode.IO, this.target + " exists and is not a directory");
                }
                if (Files.isDirectory(this.target) && !isPackage(this.target) && !isEmpty(this.target)) {
                    throw new Peft4jException(ErrorCode.IO, this.target + " exists and is not a model package; "
                            + "refusing to replace it (choose another --out or remove it)");
                }
                this.staging = parent.resolve("." + this.target.getFileName() + ".tmp-"
                        + Long.toUnsignedString(ThreadLocalRandom.current().nextLong(), 36));
                Files.createDirectory(staging);
            } catch (IOException e) {
                throw new Peft4jException(ErrorCode.IO, "cannot create a package at " + target + ": " + e.getMessage(), e);
            }
        }

        /** The staging directory: write the package's files under it. */
        public Path stage() {
            return staging;
        }

        /** Validates the staged package against {@code manifest}, writes the manifest, and moves it into place. */
        public ModelPackage commit(Manifest manifest) {
            try {
                Files.writeString(staging.resolve(MANIFEST), manifest.toJson(), StandardCharsets.UTF_8);
                open(staging);
                Path old = null;
                if (Files.exists(target)) {
                    old = target.resolveSibling("." + target.getFileName() + ".old-"
                            + Long.toUnsignedString(ThreadLocalRandom.current().nextLong(), 36));
                    Files.move(target, old, StandardCopyOption.ATOMIC_MOVE);
                }
                try {
                    Files.move(staging, target, StandardCopyOption.ATOMIC_MOVE);
                } catch (IOException e) {
                    if (old != null) {
                        Files.move(old, target, StandardCopyOption.ATOMIC_MOVE);
                    }
                    throw e;
                }
                committed = true;
                if (old != null) {
                    io.peft4j.core.util.AtomicFiles.deleteTreeQuietly(old);
                }
                return open(target);
            } catch (IOException e) {
                throw new Peft4jException(ErrorCode.IO, "cannot write the package " + target + ": " + e.getMessage(), e);
            }
        }

        @Override
        public void close() {
            if (!committed) {
                io.peft4j.core.util.AtomicFiles.deleteTreeQuietly(staging);
            }
        }
    }

    private static boolean isEmpty(Path dir) throws IOException {
        try (var s = Files.list(dir)) {
            return s.findAny().isEmpty();
        }
    }

}
