package io.peft4j.cli;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Runs a sample's {@code run.sh} through bash the way a user does, with {@code PEFT4J} pointing at
 * this build's CLI (its main class on the test class path: calling {@code ./peft4j} would start a
 * Maven build inside the test). Shared by the sample tests.
 */
final class SampleScript {

    /** What a run printed (stdout and stderr together) and its exit code. */
    record Run(int exitCode, String output) {
    }

    private SampleScript() {
    }

    /** The checkout's root: the first folder up from the working directory holding {@code samples/}. */
    static Path repositoryRoot() {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            if (Files.isDirectory(p.resolve("samples"))) {
                return p;
            }
        }
        throw new AssertionError("no samples/ folder above " + Path.of("").toAbsolutePath());
    }

    /** Whether {@code command} is an executable on the PATH. */
    static boolean onPath(String command) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, command))) {
                return true;
            }
        }
        return false;
    }

    /**
     * Runs {@code samples/<sample>/run.sh args...} with {@code env} added, in {@code dir} (where the
     * CLI wrapper and the log go); fails the test when it does not finish in {@code timeoutMinutes}.
     */
    static Run run(Path dir, String sample, List<String> args, Map<String, String> env, String heap, long timeoutMinutes)
            throws IOException, InterruptedException {
        Path script = repositoryRoot().resolve("samples").resolve(sample).resolve("run.sh");
        if (!Files.isRegularFile(script)) {
            throw new AssertionError(script + " is missing");
        }
        Path wrapper = dir.resolve("peft4j");
        if (!Files.exists(wrapper)) {
            Path java = Path.of(System.getProperty("java.home"), "bin", "java");
            Files.writeString(wrapper, "#!/bin/sh\nexec '" + java + "' -Xmx" + heap + " -cp '" + System.getProperty("java.class.path")
                    + "' io.peft4j.cli.Peft4jCli \"$@\"\n", StandardCharsets.UTF_8);
            Files.setPosixFilePermissions(wrapper, PosixFilePermissions.fromString("rwx------"));
        }
        List<String> cmd = new ArrayList<>(List.of("bash", script.toString()));
        cmd.addAll(args);
        Path log = dir.resolve("run-" + System.nanoTime() + ".log");
        ProcessBuilder b = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        b.environment().put("PEFT4J", wrapper.toString());
        b.environment().putAll(env);
        Process p = b.start();
        if (!p.waitFor(timeoutMinutes, TimeUnit.MINUTES)) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly().waitFor();
            throw new AssertionError(sample + "/run.sh did not finish in " + timeoutMinutes + " minutes:\n" + Files.readString(log));
        }
        return new Run(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
    }
}
