package io.peft4j.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A headless Chromium driven over the Chrome DevTools Protocol, for the runtime's browser tests:
 * launched with a fresh profile and {@code --remote-debugging-port=0}, reached on the WebSocket
 * it names on stderr ({@code DevTools listening on ws://...}), one page attached in flattened
 * session mode. Commands wait for their answer; events are kept for the test to look at.
 * {@link #close()} asks the browser to quit and kills what is left of it.
 */
final class Chromium implements AutoCloseable {

    private static final Pattern LISTENING = Pattern.compile("DevTools listening on (ws://\\S+)");
    private static final Duration TIMEOUT = Duration.ofSeconds(60);

    private final Process process;
    private final WebSocket socket;
    private final Deque<String> stderr;
    private final AtomicLong ids = new AtomicLong();
    private final Map<Long, CompletableFuture<JsonNode>> pending = new ConcurrentHashMap<>();
    private final ConcurrentLinkedQueue<JsonNode> events = new ConcurrentLinkedQueue<>();
    private final Object sending = new Object();

    /** The browser to use: {@code $CHROMIUM}, else Debian's {@code /usr/bin/chromium}; null when neither is executable. */
    static Path executable() {
        String env = System.getenv("CHROMIUM");
        Path p = Path.of(env != null && !env.isBlank() ? env : "/usr/bin/chromium");
        return Files.isExecutable(p) ? p : null;
    }

    private Chromium(Process process, WebSocket socket, Deque<String> stderr) {
        this.process = process;
        this.socket = socket;
        this.stderr = stderr;
    }

    /** Starts the browser with a fresh profile in {@code profile} and connects to it. */
    static Chromium launch(Path executable, Path profile) throws IOException, InterruptedException {
        List<String> cmd = List.of(executable.toString(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--no-proxy-server", "--user-data-dir=" + profile, "--remote-debugging-port=0",
                "about:blank");
        Process p = new ProcessBuilder(cmd).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        Deque<String> lines = new ArrayDeque<>();
        CompletableFuture<String> endpoint = new CompletableFuture<>();
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getErrorStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    synchronized (lines) {
                        lines.addLast(line);
                        if (lines.size() > 200) {
                            lines.removeFirst();
                        }
                    }
                    Matcher m = LISTENING.matcher(line);
                    if (m.find()) {
                        endpoint.complete(m.group(1));
                    }
                }
            } catch (IOException e) {
                // the browser went away; the endpoint future says so below
            }
            endpoint.completeExceptionally(new IllegalStateException("chromium ended without a DevTools endpoint"));
        }, "chromium-stderr");
        reader.setDaemon(true);
        reader.start();
        try {
            String ws = endpoint.get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
            Chromium[] self = new Chromium[1];
            CompletableFuture<WebSocket> open = HttpClient.newHttpClient().newWebSocketBuilder().connectTimeout(TIMEOUT)
                    .buildAsync(URI.create(ws), new WebSocket.Listener() {
                        private final StringBuilder message = new StringBuilder();

                        @Override
                        public CompletionStage<?> onText(WebSocket w, CharSequence data, boolean last) {
                            message.append(data);
                            if (last) {
                                String text = message.toString();
                                message.setLength(0);
                                if (self[0] != null) {
                                    self[0].dispatch(text);
                                }
                            }
                            w.request(1);
                            return null;
                        }

                        @Override
                        public CompletionStage<?> onClose(WebSocket w, int status, String reason) {
                            if (self[0] != null) {
                                self[0].failAll(new IllegalStateException("the DevTools connection closed: " + status + " " + reason));
                            }
                            return null;
                        }

                        @Override
                        public void onError(WebSocket w, Throwable error) {
                            if (self[0] != null) {
                                self[0].failAll(error);
                            }
                        }
                    });
            // nothing arrives before the first command, which is sent after self[0] is set
            WebSocket socket = open.get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
            self[0] = new Chromium(p, socket, lines);
            return self[0];
        } catch (ExecutionException | TimeoutException e) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            String tail;
            synchronized (lines) {
                tail = String.join("\n", lines);
            }
            throw new IOException("cannot start or reach " + executable + ": " + e + "\nits stderr:\n" + tail, e);
        }
    }

    private void dispatch(String text) {
        JsonNode n;
        try {
            n = Http.JSON.readTree(text);
        } catch (IOException e) {
            return;
        }
        if (n.has("id")) {
            CompletableFuture<JsonNode> f = pending.remove(n.get("id").asLong());
            if (f != null) {
                f.complete(n);
            }
        } else {
            events.add(n);
        }
    }

    private void failAll(Throwable t) {
        pending.values().forEach(f -> f.completeExceptionally(t));
        pending.clear();
    }

    /** Sends a command (to the browser when {@code session} is null, else to that page) and returns its result. */
    JsonNode send(String session, String method, Map<String, ?> params) {
        long id = ids.incrementAndGet();
        ObjectNode msg = Http.JSON.createObjectNode();
        msg.put("id", id);
        msg.put("method", method);
        msg.set("params", Http.JSON.valueToTree(params));
        if (session != null) {
            msg.put("sessionId", session);
        }
        CompletableFuture<JsonNode> answer = new CompletableFuture<>();
        pending.put(id, answer);
        try {
            synchronized (sending) {
                socket.sendText(msg.toString(), true).get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
            }
            JsonNode reply = answer.get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
            if (reply.has("error")) {
                throw new IllegalStateException(method + " failed: " + reply.get("error"));
            }
            return reply.get("result");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(method + " was interrupted", e);
        } catch (ExecutionException | TimeoutException e) {
            throw new IllegalStateException(method + " got no answer: " + e, e);
        } finally {
            pending.remove(id);
        }
    }

    /** Opens a new page (tab) and attaches to it; returns its session id. */
    String newPage() {
        String target = send(null, "Target.createTarget", Map.of("url", "about:blank")).get("targetId").asText();
        return send(null, "Target.attachToTarget", Map.of("targetId", target, "flatten", true)).get("sessionId").asText();
    }

    /** The events received so far with this method name (e.g. {@code Runtime.exceptionThrown}). */
    List<JsonNode> events(String method) {
        List<JsonNode> out = new ArrayList<>();
        for (JsonNode e : events) {
            if (method.equals(e.path("method").asText())) {
                out.add(e);
            }
        }
        return out;
    }

    /** The last lines the browser wrote to stderr. */
    String stderrTail() {
        synchronized (stderr) {
            return String.join("\n", stderr);
        }
    }

    @Override
    public void close() {
        try {
            send(null, "Browser.close", Map.of());
        } catch (RuntimeException e) {
            // already gone, or not answering: killed below
        }
        socket.abort();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.descendants().forEach(ProcessHandle::destroyForcibly);
                process.destroyForcibly();
                process.waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        process.descendants().forEach(ProcessHandle::destroyForcibly);
    }
}
