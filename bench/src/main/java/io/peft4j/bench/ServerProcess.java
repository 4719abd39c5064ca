package io.peft4j.bench;

import io.peft4j.core.Peft4jException;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * {@code peft4j serve} as a process of its own (the CLI's main class on a given classpath, on a
 * free loopback port), as a user starts it: how long it takes from the process start to the
 * first {@code 200} from {@code /v2/health/ready}, and its resident memory ({@code VmRSS} and its
 * peak {@code VmHWM} from {@code /proc/PID/status}). {@link #close()} sends SIGTERM (the server
 * drains and stops) and kills the process if it has not exited 30 s later; its output goes to a
 * log file whose tail is in the error when the server fails to start.
 */
public final class ServerProcess implements AutoCloseable {

    /** Resident memory of the process in bytes: now and the peak so far. */
    public record Memory(long rssBytes, long hwmBytes) {
    }

    private final Process process;
    private final URI uri;
    private final Path log;
    private final double readySeconds;

    private ServerProcess(Process process, URI uri, Path log, double readySeconds) {
        this.process = process;
        this.uri = uri;
        this.log = log;
        this.readySeconds = readySeconds;
    }

    /**
     * Starts {@code java [jvmOptions] -cp classpath io.peft4j.cli.Peft4jCli serve --repo repo --port P
     * [serveArgs]} and waits until it is ready (at most {@code timeout}); its output goes to {@code log}.
     */
    public static ServerProcess start(String classpath, List<String> jvmOptions, Path repo, List<String> serveArgs, Path log,
                                      Duration timeout) throws IOException, InterruptedException {
        int port = freePort();
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(jvmOptions);
        cmd.add("-cp");
        cmd.add(classpath);
        cmd.add("io.peft4j.cli.Peft4jCli");
        cmd.add("serve");
        cmd.add("--repo");
        cmd.add(repo.toAbsolutePath().toString());
        cmd.add("--host");
        cmd.add("127.0.0.1");
        cmd.add("--port");
        cmd.add(Integer.toString(port));
        cmd.addAll(serveArgs);
        Files.createDirectories(log.toAbsolutePath().getParent());
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        URI uri = URI.create("http://127.0.0.1:" + port);
        HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(1)).build();
        HttpRequest ready = HttpRequest.newBuilder(uri.resolve("/v2/health/ready")).timeout(Duration.ofSeconds(2)).GET().build();
        long t0 = System.nanoTime();
        Process p = pb.start();
        long deadline = t0 + timeout.toNanos();
        while (true) {
            try {
                if (http.send(ready, HttpResponse.BodyHandlers.discarding()).statusCode() == 200) {
                    return new ServerProcess(p, uri, log, (System.nanoTime() - t0) / 1e9);
                }
            } catch (IOException notListening) {
                // not yet
            }
            if (!p.isAlive()) {
                throw Peft4jException.invalid("peft4j serve exited with status " + p.exitValue() + " before it was ready; "
                        + "its output ends with:\n" + tail(log));
            }
            if (System.nanoTime() > deadline) {
                p.destroyForcibly();
                throw Peft4jException.invalid("peft4j serve was not ready within " + timeout.toSeconds() + " s; its output "
                        + "ends with:\n" + tail(log));
            }
            Thread.sleep(5);
        }
    }

    /** The server's base URI, e.g. {@code http://127.0.0.1:41234}. */
    public URI uri() {
        return uri;
    }

    public long pid() {
        return process.pid();
    }

    /** Seconds from the process start to the first {@code 200} from {@code /v2/health/ready}. */
    public double readySeconds() {
        return readySeconds;
    }

    /** The process's resident memory now, or null where {@code /proc} cannot tell. */
    public Memory memory() {
        return memory(Path.of("/proc", Long.toString(process.pid()), "status"));
    }

    /** CPU seconds the process has used (all its threads, user and system), or NaN where {@code /proc} cannot tell. */
    public double cpuSeconds() {
        return cpuSeconds(Path.of("/proc", Long.toString(process.pid()), "stat"));
    }

    /**
     * {@code utime + stime} of a {@code /proc/PID/stat} file in seconds (clock ticks of 1/100 s, Linux's
     * {@code USER_HZ}), or NaN when absent or unreadable.
     */
    static double cpuSeconds(Path stat) {
        try {
            String text = Files.readString(stat, StandardCharsets.UTF_8);
            // the command name (field 2) is in parentheses and may hold spaces: fields 3.. follow the last ')'
            String[] f = text.substring(text.lastIndexOf(')') + 2).trim().split("\\s+");
            return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / 100.0;
        } catch (IOException | RuntimeException e) {
            return Double.NaN;
        }
    }

    /** {@code VmRSS} and {@code VmHWM} of a {@code /proc/PID/status} file, or null when absent or unreadable. */
    static Memory memory(Path status) {
        try {
            long rss = -1;
            long hwm = -1;
            for (String line : Files.readAllLines(status, StandardCharsets.UTF_8)) {
                if (line.startsWith("VmRSS:")) {
                    rss = kib(line);
                } else if (line.startsWith("VmHWM:")) {
                    hwm = kib(line);
                }
            }
            return rss < 0 || hwm < 0 ? null : new Memory(rss * 1024, hwm * 1024);
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    private static long kib(String line) {
        String[] f = line.substring(line.indexOf(':') + 1).trim().split("\\s+");
        if (f.length != 2 || !f[1].equals("kB")) {
            throw new IllegalArgumentException("unexpected line in /proc status: " + line);
        }
        return Long.parseLong(f[0]);
    }

    /** SIGTERM, then up to 30 s for the graceful stop, then a kill. */
    @Override
    public void close() {
        if (!process.isAlive()) {
            return;
        }
        process.destroy();
        try {
            if (!process.waitFor(30, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            s.setReuseAddress(true);
            return s.getLocalPort();
        }
    }

    private static String tail(Path log) {
        try {
            List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 20), lines.size()));
        } catch (IOException e) {
            return "(no output: " + e.getMessage() + ")";
        }
    }
}
