package io.peft4j.runtime;

import io.micronaut.context.ApplicationContext;
import io.micronaut.runtime.server.EmbeddedServer;
import io.peft4j.core.Peft4jException;

import java.net.URI;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * The inference service, embeddable: {@link #start} loads the model repository and listens;
 * {@link #close()} stops taking requests that compute, lets those in flight finish (up to
 * {@link Options#drainMillis}), then stops the server and frees every model. Used by
 * {@code peft4j serve} and by tests.
 *
 * <p>Settings come, in rising priority, from {@code application.yml}, environment variables
 * ({@code PEFT4J_TOKEN}, {@code MICRONAUT_SERVER_PORT}, …) and the {@link Options} given here.
 */
public final class Peft4jServer implements AutoCloseable {

    /**
     * What to serve and where.
     *
     * @param repo        the model repository directory
     * @param host        the address to listen on (null: application.yml's, 127.0.0.1)
     * @param port        the port (0: a free one; null: application.yml's, 8080)
     * @param token       the management bearer token (null: from the environment, else none)
     * @param drainMillis how long {@link #close()} waits for requests in flight
     * @param properties  further configuration properties ({@code peft4j.threads}, …)
     */
    public record Options(Path repo, String host, Integer port, String token, long drainMillis, Map<String, Object> properties) {
        public Options {
            Objects.requireNonNull(repo, "repo");
            if (port != null && (port < 0 || port > 65535)) {
                throw Peft4jException.invalid("port must be 0..65535, got " + port);
            }
            if (drainMillis < 0) {
                throw Peft4jException.invalid("drainMillis must not be negative");
            }
            properties = Map.copyOf(properties == null ? Map.of() : properties);
        }

        /** The repository on a free loopback port, no token, 30 s to drain. */
        public static Options of(Path repo) {
            return new Options(repo, "127.0.0.1", 0, null, 30_000, Map.of());
        }

        public Options withToken(String t) {
            return new Options(repo, host, port, t, drainMillis, properties);
        }

        public Options withHost(String h) {
            return new Options(repo, h, port, token, drainMillis, properties);
        }

        public Options withPort(Integer p) {
            return new Options(repo, host, p, token, drainMillis, properties);
        }

        public Options withProperty(String key, Object value) {
            Map<String, Object> m = new LinkedHashMap<>(properties);
            m.put(key, value);
            return new Options(repo, host, port, token, drainMillis, m);
        }
    }

    private final ApplicationContext context;
    private final EmbeddedServer server;
    private final long drainMillis;
    private boolean closed;
    private final java.util.concurrent.CountDownLatch stopped = new java.util.concurrent.CountDownLatch(1);

    private Peft4jServer(ApplicationContext context, long drainMillis) {
        this.context = context;
        this.server = context.getBean(EmbeddedServer.class);
        this.drainMillis = drainMillis;
    }

    /** Loads the repository and starts listening; a bad setting or repository fails with its reason. */
    public static Peft4jServer start(Options o) {
        Map<String, Object> props = new LinkedHashMap<>(o.properties());
        props.put("peft4j.repo", o.repo().toAbsolutePath().normalize().toString());
        if (o.host() != null) {
            props.put("micronaut.server.host", o.host());
        }
        if (o.port() != null) {
            props.put("micronaut.server.port", o.port() == 0 ? -1 : o.port());
        }
        if (o.token() != null) {
            props.put("peft4j.token", o.token());
        }
        ApplicationContext ctx = null;
        try {
            // no Micronaut shutdown hook: close() (peft4j serve's hook) drains first, then stops
            ctx = ApplicationContext.builder()
                    .deduceEnvironment(false)
                    .banner(false)
                    .properties(props)
                    .start();
            ctx.getBean(EmbeddedServer.class).start();
        } catch (RuntimeException e) {
            if (ctx != null && ctx.isRunning()) {
                ctx.close();
            }
            throw unwrap(e);
        }
        return new Peft4jServer(ctx, o.drainMillis());
    }

    /** The peft4j error inside a failed start (a bad setting, a missing repository), else a clear wrapper. */
    private static RuntimeException unwrap(RuntimeException e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof Peft4jException p) {
                return new Peft4jException(p.code(), p.getMessage(), e);
            }
            if (t instanceof java.net.BindException b) {
                return Peft4jException.invalid("cannot listen: " + b.getMessage() + " (is the port in use?)");
            }
        }
        return e;
    }

    /** The port the server listens on. */
    public int port() {
        return server.getPort();
    }

    /** The server's base URI, e.g. {@code http://127.0.0.1:8080}. */
    public URI uri() {
        return server.getURI();
    }

    public ApplicationContext context() {
        return context;
    }

    /** Refuses new computing requests, waits for those in flight, stops listening and frees the models. Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        context.getBean(Gate.class).drain(drainMillis);
        if (server.isRunning()) {
            server.stop();
        }
        if (context.isRunning()) {
            context.close();
        }
        stopped.countDown();
    }

    /** Blocks until {@link #close()} has finished (from another thread, e.g. a shutdown hook). */
    public void awaitClose() throws InterruptedException {
        stopped.await();
    }
}
