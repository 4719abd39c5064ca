package io.peft4j.cli;

import io.peft4j.core.Peft4jException;
import io.peft4j.runtime.Peft4jServer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.Consumer;

/**
 * {@code peft4j serve --repo DIR [--port P] [--host H] [--token T] [--threads N] [--spin] [--merged-sessions N] [--batching
 * [--max-batch-rows N] [--max-delay-ms MS]] [--drain-seconds S] [--device PROFILE [--profiles FILE]]}.
 */
@Command(name = "serve",
        header = "Serve a repository of model packages over the Open Inference Protocol v2 (REST).",
        description = {
            "Serve a repository of model packages over the Open Inference Protocol v2 (REST, KServe / Triton style).",
            "Every package directory in --repo is loaded at start and served under its directory name:",
            "  GET  /v2/health/live, /v2/health/ready, /v2/models/{m}, /v2/repository/index",
            "  POST /v2/models/{m}/infer               JSON tensors; parameters.adapter (or .adapters, one per row)",
            "  GET|POST|DELETE /v2/models/{m}/adapters[/{name}]   register {\"path\": DIR in the repo} or upload a bundle",
            "  POST /v2/repository/models/{m}/load|unload",
            "Management endpoints (load, unload, adapter registration and removal) need 'Authorization: Bearer T'",
            "when --token is set, and are refused on a non-loopback --host without one.",
            "Settings also come from PEFT4J_TOKEN, PEFT4J_THREADS, PEFT4J_SCHEDULING_BATCHING, MICRONAUT_SERVER_PORT, ...",
            "(flags win); GET /metrics serves Prometheus metrics.",
            "--device PROFILE (or auto: the detected device's) picks the backend from the profile's order, as",
            "'peft4j devices' shows it; the choice and why each preferred backend was skipped are logged at start.",
            "Without --device models run on ONNX Runtime's CPU provider.",
            "Ctrl-C or SIGTERM stops it gracefully: requests in flight finish first."},
        mixinStandardHelpOptions = true)
public final class ServeCommand implements Callable<Integer> {

    /** Called with the running server (tests stop it through it); null outside tests. */
    static volatile Consumer<Peft4jServer> onStarted;

    @Spec
    private CommandSpec spec;

    @Option(names = "--repo", required = true, paramLabel = "DIR", description = "The model repository: a directory of model packages.")
    private Path repo;

    @Option(names = "--port", paramLabel = "P", description = "The port to listen on (default: 8080; 0: a free one).")
    private Integer port;

    @Option(names = "--host", paramLabel = "H", description = "The address to listen on (default: 127.0.0.1, this machine only).")
    private String host;

    @Option(names = "--token", paramLabel = "T", description = "The bearer token the management endpoints require (default: PEFT4J_TOKEN, else none).")
    private String token;

    @Option(names = "--threads", paramLabel = "N", description = "ONNX Runtime intra-op threads per model (default: 2).")
    private Integer threads;

    @Option(names = "--spin", description = "Let ONNX Runtime's threads spin while they wait for work (its own default): can help on a machine with cores to spare; off, they sleep and leave the cores to the HTTP threads (the default).")
    private boolean spin;

    @Option(names = "--merged-sessions", paramLabel = "N", description = "Side packages: how many adapters per model (the base model counts as one) get a session with the adapter merged in, built after their first request, so that they run at the merged model's speed; each costs 2 to 3 times the model's weights in memory, and answers agree with the side graph's to float rounding, not bit for bit (default: 0, off).")
    private Integer mergedSessions;

    @Option(names = "--batching", description = "Dynamic batching: queued requests of a model run together (rows keep their adapters).")
    private boolean batching;

    @Option(names = "--max-batch-rows", paramLabel = "N", description = "With --batching: the most rows a batch joins (default: 32).")
    private Integer maxBatchRows;

    @Option(names = "--max-delay-ms", paramLabel = "MS", description = "With --batching: how long a request waits for others (default: 2).")
    private Double maxDelayMs;

    @Option(names = "--drain-seconds", defaultValue = "30", paramLabel = "S", description = "How long a shutdown waits for requests in flight (default: ${DEFAULT-VALUE}).")
    private int drainSeconds;

    @Option(names = "--device", paramLabel = "PROFILE", description = "The device profile whose backend order picks the backend (auto: the detected device's; see 'peft4j devices').")
    private String device;

    @Option(names = "--profiles", paramLabel = "FILE", description = "With --device: add the device profiles in FILE (JSON) or a directory of them.")
    private Path profiles;

    @Option(names = "--device-root", paramLabel = "DIR", description = "With --device: read /proc and /etc under DIR for detection (default: /).")
    private Path deviceRoot;

    @Override
    public Integer call() throws InterruptedException {
        PrintWriter o = spec.commandLine().getOut();
        if (!Files.isDirectory(repo)) {
            throw new Peft4jException(Peft4jException.ErrorCode.IO, "model repository not found: " + repo
                    + " (give a directory of model packages, e.g. made with peft4j export --out DIR/NAME)");
        }
        if (drainSeconds < 0) {
            throw Peft4jException.invalid("--drain-seconds must not be negative, got " + drainSeconds);
        }
        Map<String, Object> props = new LinkedHashMap<>();
        if (device == null && (profiles != null || deviceRoot != null)) {
            throw Peft4jException.invalid("--profiles and --device-root go with --device PROFILE");
        }
        if (device != null) {
            props.put("peft4j.device", device);
        }
        if (profiles != null) {
            props.put("peft4j.profiles", profiles.toAbsolutePath().toString());
        }
        if (deviceRoot != null) {
            props.put("peft4j.device-root", deviceRoot.toAbsolutePath().toString());
        }
        if (threads != null) {
            props.put("peft4j.threads", threads);
        }
        if (spin) {
            props.put("peft4j.spinning", true);
        }
        if (mergedSessions != null) {
            props.put("peft4j.merged-sessions", mergedSessions);
        }
        if (batching) {
            props.put("peft4j.scheduling.batching", true);
        }
        if (maxBatchRows != null) {
            props.put("peft4j.scheduling.max-batch-rows", maxBatchRows);
        }
        if (maxDelayMs != null) {
            if (!(maxDelayMs >= 0 && maxDelayMs <= 10_000)) {
                throw Peft4jException.invalid("--max-delay-ms must be 0..10000, got " + maxDelayMs);
            }
            props.put("peft4j.scheduling.max-delay-micros", Math.round(maxDelayMs * 1000));
        }
        Peft4jServer server = Peft4jServer.start(new Peft4jServer.Options(repo, host, port, token, drainSeconds * 1000L, props));
        Thread hook = new Thread(server::close, "peft4j-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        o.printf("peft4j: serving %s at %s (Ctrl-C to stop)%n", repo.toAbsolutePath().normalize(), server.uri());
        server.context().getBean(io.peft4j.runtime.ModelRepository.class).selection()
                .ifPresent(sel -> o.println("peft4j: " + sel.describe()));
        o.flush();
        Consumer<Peft4jServer> hookForTests = onStarted;
        if (hookForTests != null) {
            hookForTests.accept(server);
        }
        server.awaitClose();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException shuttingDown) {
            // the hook is what closed the server
        }
        o.println("peft4j: stopped");
        o.flush();
        return 0;
    }
}
