package io.peft4j.core.testkit;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * A seeded mutation fuzz loop for file readers: mutate valid files, read each result from memory,
 * and require every outcome to be either accepted (and pass the checker's consistency checks) or a
 * {@link Peft4jException} MALFORMED/UNSUPPORTED. Anything else fails with the seed, the iteration
 * and the input saved under {@code target/<name>-fuzz/} for replay.
 *
 * <p>System properties, with the prefix a test chooses: {@code <prefix>.seconds} (how long),
 * {@code <prefix>.seed} (repeat a run; printed every time), {@code <prefix>.iteration} (with the
 * seed, replay one iteration).
 */
public final class MutationFuzz {

    private MutationFuzz() {
    }

    /** Changes a file. */
    @FunctionalInterface
    public interface Mutator {
        byte[] mutate(Random r, byte[] input);
    }

    /** Reads a file: a Peft4jException is a rejection; any other throwable is a bug. */
    @FunctionalInterface
    public interface Checker {
        void check(byte[] input) throws Exception;
    }

    /** What a run did. */
    public record Result(long iterations, long accepted, long rejected, Map<ErrorCode, Long> codes, double seconds) {
    }

    public static Result run(String name, String prefix, long defaultSeconds, long maxIterations, List<byte[]> seeds,
                             Mutator mutator, Checker checker) {
        long seed = Long.getLong(prefix + ".seed", new Random().nextLong());
        long seconds = Long.getLong(prefix + ".seconds", defaultSeconds);
        Long only = Long.getLong(prefix + ".iteration");
        System.out.println(name + " fuzz: seed " + seed + " (repeat with -D" + prefix + ".seed=" + seed + "), "
                + (only != null ? "iteration " + only + " only" : seconds + " s"));
        for (byte[] s : seeds) {
            try {
                checker.check(s); // every starting point is valid
            } catch (Exception e) {
                throw new AssertionError(name + " fuzz: a seed input is not valid: " + e, e);
            }
        }
        long accepted = 0;
        long rejected = 0;
        Map<ErrorCode, Long> codes = new EnumMap<>(ErrorCode.class);
        long start = System.nanoTime();
        long deadline = start + seconds * 1_000_000_000L;
        long first = only != null ? only : 0;
        long last = only != null ? only + 1 : maxIterations;
        long i = first;
        for (; i < last && (only != null || System.nanoTime() < deadline); i++) {
            Random r = new Random(seed * 0x9E3779B97F4A7C15L + i);
            byte[] input = seeds.get(r.nextInt(seeds.size()));
            int rounds = 1 + r.nextInt(3);
            for (int k = 0; k < rounds; k++) {
                input = mutator.mutate(r, input);
            }
            try {
                checker.check(input);
                accepted++;
            } catch (Peft4jException e) {
                rejected++;
                codes.merge(e.code(), 1L, Long::sum);
                if (e.code() != ErrorCode.MALFORMED && e.code() != ErrorCode.UNSUPPORTED) {
                    failWith(name, prefix, seed, i, input, e);
                }
            } catch (Throwable t) {
                failWith(name, prefix, seed, i, input, t);
            }
        }
        long iterations = i - first;
        double elapsed = (System.nanoTime() - start) / 1e9;
        System.out.printf("%s fuzz: %d iterations in %.1f s, %d accepted, %d rejected %s%n", name, iterations, elapsed,
                accepted, rejected, codes);
        if (only == null && iterations >= 1000) {
            assertTrue(accepted > 0 && rejected > 0, "the mutations should produce both valid and invalid files");
        }
        return new Result(iterations, accepted, rejected, codes, elapsed);
    }

    private static void failWith(String name, String prefix, long seed, long iteration, byte[] input, Throwable t) {
        Path out = Path.of("target", name.replaceAll("[^A-Za-z0-9_-]", "") + "-fuzz", "seed" + seed + "-iteration" + iteration + ".bin");
        String saved;
        try {
            Files.createDirectories(out.getParent());
            Files.write(out, input);
            saved = out.toAbsolutePath().toString();
        } catch (IOException e) {
            saved = "(could not save: " + e + ")";
        }
        StringWriter trace = new StringWriter();
        t.printStackTrace(new PrintWriter(trace));
        fail(name + " fuzz: seed " + seed + ", iteration " + iteration + ": " + t + "\ninput saved to " + saved
                + "\nreplay with -D" + prefix + ".seed=" + seed + " -D" + prefix + ".iteration=" + iteration + "\n" + trace, t);
    }
}
