package io.peft4j.core.util;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * Writes files so that readers see either the old content or the new, never a part: data goes to
 * a temporary file in the target's directory, is flushed to disk, and is moved over the target.
 * The directory must exist: creating it is the caller's decision.
 */
public final class AtomicFiles {

    private AtomicFiles() {
    }

    /** Something that writes a file's content to a stream. */
    @FunctionalInterface
    public interface Content {
        void writeTo(OutputStream out) throws IOException;
    }

    /** Writes {@code content} to {@code target} atomically. */
    public static void write(Path target, Content content) {
        Path tmp = writeTemp(target, content);
        try {
            moveIntoPlace(tmp, target);
        } catch (IOException e) {
            deleteQuietly(tmp);
            throw new Peft4jException(ErrorCode.IO, "cannot write " + target + ": " + e.getMessage(), e);
        }
    }

    /**
     * Writes {@code content} to a hidden temporary file beside {@code target}, flushed to disk, and
     * returns it; the caller moves it into place with {@link #moveIntoPlace} (or deletes it). For
     * files that must appear together: write all, then move all.
     */
    public static Path writeTemp(Path target, Content content) {
        Path dir = target.toAbsolutePath().getParent();
        Path tmp = null;
        try {
            tmp = Files.createTempFile(dir, "." + target.getFileName() + ".", ".tmp");
            shareLikeTarget(tmp, target);
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
                 OutputStream out = Channels.newOutputStream(ch)) {
                OutputStream buffered = new java.io.BufferedOutputStream(out, 1 << 16);
                content.writeTo(buffered);
                buffered.flush();
                ch.force(true);
            }
            Path done = tmp;
            tmp = null;
            return done;
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot write " + target + ": " + e.getMessage(), e);
        } finally {
            deleteQuietly(tmp);
        }
    }

    /**
     * Temporary files are created owner-only; the file that replaces {@code target} gets the
     * target's permissions when it exists, else {@code rw-r--r--} (what a plain create gives under
     * the usual umask), so that a service running as another user can read what was written.
     */
    public static void shareLikeTarget(Path tmp, Path target) throws IOException {
        if (!Files.getFileStore(tmp).supportsFileAttributeView(java.nio.file.attribute.PosixFileAttributeView.class)) {
            return;
        }
        java.util.Set<java.nio.file.attribute.PosixFilePermission> perms = Files.exists(target)
                ? Files.getPosixFilePermissions(target)
                : java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--");
        Files.setPosixFilePermissions(tmp, perms);
    }

    /** Deletes a temporary file if there is one; best effort. */
    public static void deleteQuietly(Path tmp) {
        if (tmp != null) {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
                // best effort: the temporary file is hidden and named after its target
            }
        }
    }

    /** Writes bytes to {@code target} atomically. */
    public static void write(Path target, byte[] bytes) {
        write(target, out -> out.write(bytes));
    }

    /** Moves a finished temporary file over {@code target}, atomically where the file system can. */
    public static void moveIntoPlace(Path tmp, Path target) throws IOException {
        try {
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /** Deletes a file or a directory tree, children first; nothing when {@code root} does not exist. */
    public static void deleteTree(Path root) throws IOException {
        if (root == null || !Files.exists(root, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        try (java.util.stream.Stream<Path> s = Files.walk(root)) {
            for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    /** {@link #deleteTree} as a best effort (cleaning up after a failure): what cannot be deleted stays. */
    public static void deleteTreeQuietly(Path root) {
        try {
            deleteTree(root);
        } catch (IOException | RuntimeException e) {
            // a leftover temporary beside the target is harmless; the caller's own error matters
        }
    }
}
