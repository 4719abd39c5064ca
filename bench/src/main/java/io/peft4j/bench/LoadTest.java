package io.peft4j.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.AdapterSelection;
import io.peft4j.devices.InferenceBackend;
import io.peft4j.devices.TensorSpec;
import io.peft4j.devices.ort.OrtBackend;
import io.peft4j.exporter.ExportOptions;
import io.peft4j.exporter.Exporter;
import io.peft4j.exporter.NamedAdapter;
import io.peft4j.runtime.InferCodec;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.IntFunction;

/**
 * The serving load test (issue 6), end to end on loopback: a {@code side} package (adapters
 * {@code a} and {@code b}) and a {@code multi} package of the same two adapters, exported with
 * {@link Exporter}; {@code peft4j serve} started as a process of its own ({@link ServerProcess}),
 * once with dynamic batching off and once on; N concurrent clients ({@link LoadDriver},
 * {@link HttpClient}) sending one-row OIP v2 JSON requests with {@code parameters.adapter} (the
 * side package with adapter {@code a}; the multi package with {@code a} and {@code b}
 * alternating), for each N; and, as the baseline in the same run, the same inputs through
 * {@link OrtBackend} in this JVM with the same thread count. Also: the HTTP overhead at p50 (HTTP
 * and direct runs alternating in blocks, one client), where the time goes (the server's own
 * metrics, and {@link InferCodec} timed alone), the time from process start to ready and the
 * server's resident memory after the load.
 *
 * <p>Before anything is timed, every package and adapter answers over HTTP what the direct
 * backend computes (relative difference at most 1e-4); a phase's failed requests are counted and
 * reported, never retried.
 *
 * <pre>LoadTest --work DIR --out FILE [--docs docs/BENCHMARKS.md] [--quick] [--clients 1,4,16]
 *          [--seconds T] [--warmup W] [--server-warmup S] [--max-requests M] [--threads N] [--spin] [--server-jvm "OPTS"]</pre>
 */
public final class LoadTest {

    /** Every section this class writes into {@code docs/BENCHMARKS.md} starts with this prefix ({@link Report} keeps them). */
    static final String MARKER = "<!-- load-test:";
    /** Two adapters: the side scenario uses the first, the multi scenario alternates both. */
    static final List<String> ADAPTERS = List.of("a", "b");
    /** Distinct inputs each client cycles through. */
    static final int INPUTS = 8;
    /** Runs per block when HTTP and direct runs alternate. */
    static final int BLOCK = 10;
    /** The HTTP overhead target at p50 (issue 6). */
    static final double OVERHEAD_TARGET_MS = 2.0;

    /**
     * What to measure.
     *
     * @param label        the model's name in the report
     * @param side         the side package (adapters {@link #ADAPTERS})
     * @param multi        the multi package of the same adapters
     * @param clients      the client counts, each a phase
     * @param warmup       unrecorded time before each phase
     * @param serverWarmup unrecorded requests to both packages (both adapters) right after each server
     *                     start, so that its JIT compiler has done most of its work before the first phase
     * @param measure      the measurement window of each phase
     * @param maxRequests  the most requests recorded per phase
     * @param threads      ONNX Runtime intra-op threads, in the server and in the direct baseline
     * @param spinning     whether ONNX Runtime's threads spin while waiting, in the server ({@code peft4j.spinning})
     *                     and in the direct baseline
     * @param classpath    the classpath {@code peft4j serve} runs from
     * @param serverJvm    JVM options of the server process
     * @param logDir       where the server's output goes
     */
    public record Settings(String label, Path side, Path multi, List<Integer> clients, Duration warmup, Duration serverWarmup,
                           Duration measure,
                           int maxRequests, int threads, boolean spinning, String classpath, List<String> serverJvm,
                           Path logDir) {
        public Settings {
            clients = List.copyOf(clients);
            serverJvm = List.copyOf(serverJvm);
            if (clients.isEmpty() || clients.stream().anyMatch(c -> c < 1 || c > 256)) {
                throw Peft4jException.invalid("--clients must list counts of 1..256, got " + clients);
            }
            if (maxRequests < 1) {
                throw Peft4jException.invalid("--max-requests must be at least 1, got " + maxRequests);
            }
            if (threads < 1 || threads > 256) {
                throw Peft4jException.invalid("--threads must be 1..256, got " + threads);
            }
            if (measure.isZero() || measure.isNegative() || warmup.isNegative() || serverWarmup.isNegative()) {
                throw Peft4jException.invalid("--seconds must be positive, --warmup and --server-warmup not negative");
            }
        }
    }

    /** A scenario: which package, and the adapter of a client's k-th request. */
    enum Scenario {
        SIDE("side", "a"), MULTI("multi", "a, b alternating");

        final String pkg;
        final String adapters;

        Scenario(String pkg, String adapters) {
            this.pkg = pkg;
            this.adapters = adapters;
        }

        String adapter(int client, long k) {
            return this == SIDE ? ADAPTERS.get(0) : ADAPTERS.get((int) ((client + k) % ADAPTERS.size()));
        }
    }

    /** Sums of the server's own metrics for one model ({@code /metrics}), to take differences. */
    record ServerStats(double requestSeconds, double requests, double passSeconds, double passes, double rows) {
        ServerStats minus(ServerStats o) {
            return new ServerStats(requestSeconds - o.requestSeconds, requests - o.requests, passSeconds - o.passSeconds,
                    passes - o.passes, rows - o.rows);
        }

        double requestMeanMs() {
            return requests > 0 ? requestSeconds / requests * 1e3 : Double.NaN;
        }

        double passMeanMs() {
            return passes > 0 ? passSeconds / passes * 1e3 : Double.NaN;
        }

        double rowsPerPass() {
            return passes > 0 ? rows / passes : Double.NaN;
        }
    }

    /**
     * One measured phase: {@code path} is {@code HTTP} or {@code direct}; {@code batching} null for
     * direct. {@code cpuSeconds}: CPU time used during the window by the server process (HTTP) or by
     * this process (direct: the runs and the client threads); NaN where {@code /proc} cannot tell.
     */
    record Phase(String path, Scenario scenario, Boolean batching, LoadDriver.Result result, ServerStats server,
                 double cpuSeconds) {
        /** CPU milliseconds per recorded request. */
        double cpuMsPerRequest() {
            int n = result.latencies().count();
            return n > 0 ? cpuSeconds / n * 1e3 : Double.NaN;
        }
    }

    /** One server run: start-to-ready, memory at ready and after the load. */
    record ServerRun(boolean batching, double readySeconds, ServerProcess.Memory atReady, ServerProcess.Memory afterLoad) {
    }

    /**
     * The paired N = 1 measurement of HTTP against direct: {@code http} with JSON bodies,
     * {@code binary} with Triton's binary tensor data (inputs and outputs), {@code direct} the
     * backend alone, in alternating blocks.
     */
    record Overhead(Latencies http, Latencies binary, Latencies direct, Latencies jdk, int errors, String firstError) {
        /** The p50 of {@code kind} (one of the HTTP kinds) minus the direct p50, in ms. */
        double diffMs(Latencies kind) {
            return (kind.percentile(0.5) - direct.percentile(0.5)) / 1e6;
        }

        /** The 95 % bootstrap interval of {@link #diffMs(Latencies)}. */
        double[] diffIntervalMs(Latencies kind, int rounds, long seed) {
            return interval(kind, direct, rounds, seed);
        }

        /**
         * The 95 % bootstrap interval of the difference of the medians of {@code a} and {@code b}:
         * both sides resampled with replacement ({@code rounds} times, seeded), the 2.5th and
         * 97.5th percentile of the differences.
         */
        private static double[] interval(Latencies a, Latencies b, int rounds, long seed) {
            long[] h = a.values();
            long[] d = b.values();
            double[] diffs = new double[rounds];
            java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
            for (int k = 0; k < rounds; k++) {
                Latencies rh = new Latencies();
                Latencies rd = new Latencies();
                for (int i = 0; i < h.length; i++) {
                    rh.add(h[r.nextInt(h.length)]);
                }
                for (int i = 0; i < d.length; i++) {
                    rd.add(d[r.nextInt(d.length)]);
                }
                diffs[k] = (rh.percentile(0.5) - rd.percentile(0.5)) / 1e6;
            }
            Arrays.sort(diffs);
            return new double[] {diffs[(int) Math.floor(0.025 * (rounds - 1))], diffs[(int) Math.ceil(0.975 * (rounds - 1))]};
        }
    }

    /**
     * InferCodec alone, in this JVM: median milliseconds to read the one-row request and write its
     * response, and to read the same request as binary tensor data.
     */
    record Codec(int bodyBytes, int responseBytes, double readMs, double writeMs, int binaryBodyBytes, double binaryReadMs) {
    }

    /** Everything one run measured. */
    record Results(Settings settings, List<Phase> phases, List<ServerRun> servers, Overhead overhead, Codec codec, int warmupErrors,
                   String loadBefore, String loadAfter, double wallSeconds, ZonedDateTime date, String inputShape,
                   double maxCheckError, double busyBefore) {
        int errors() {
            int e = overhead.errors() + warmupErrors;
            for (Phase p : phases) {
                e += p.result().errors();
            }
            return e;
        }

        long requests() {
            long n = overhead.http().count() + overhead.binary().count() + overhead.direct().count() + overhead.jdk().count();
            for (Phase p : phases) {
                n += p.result().latencies().count() + p.result().errors();
            }
            return n;
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    private final Settings s;
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();
    private final List<Map<String, Tensor>> inputs = new ArrayList<>();
    private final Map<String, byte[]> bodies = new LinkedHashMap<>();
    private final Map<String, InferCodec.Body> binaryBodies = new LinkedHashMap<>();
    private double maxCheckError;
    private String inputShape = "";

    private LoadTest(Settings s) {
        this.s = s;
    }

    // ---------------------------------------------------------------- packages

    /**
     * Exports the side and the multi package of {@code adapters} (named {@link #ADAPTERS}) for
     * {@code base} into {@code repo/side} and {@code repo/multi}, each validated by the exporter.
     */
    public static void exportPackages(Path base, List<AdapterBundle> adapters, Path repo) {
        if (adapters.size() != ADAPTERS.size()) {
            throw Peft4jException.invalid("the load test needs " + ADAPTERS.size() + " adapters, got " + adapters.size());
        }
        List<NamedAdapter> named = new ArrayList<>();
        for (int i = 0; i < adapters.size(); i++) {
            named.add(new NamedAdapter(ADAPTERS.get(i), adapters.get(i)));
        }
        Exporter.export(base, named, ExportOptions.of(Manifest.Mode.side), repo.resolve(Scenario.SIDE.pkg));
        Exporter.export(base, named, ExportOptions.of(Manifest.Mode.multi), repo.resolve(Scenario.MULTI.pkg));
    }

    /**
     * The resnet18 packages of the load test in {@code work/load-test/repo}, exported once and kept
     * while the base model and the adapter settings are the same (a stamp file records them).
     */
    static Path resnet18Repo(Path work) throws IOException {
        Path base = Workload.RESNET18.source(work);
        Path dir = work.resolve("load-test");
        Path repo = dir.resolve("repo");
        Path stampFile = dir.resolve("packages.stamp");
        String stamp = Fixtures.VERSION + " adapters=" + ADAPTERS + "\nbase " + base + " " + Files.size(base) + "\n";
        if (Files.isRegularFile(stampFile) && Files.readString(stampFile).equals(stamp)
                && Files.isDirectory(repo.resolve("side")) && Files.isDirectory(repo.resolve("multi"))) {
            return repo;
        }
        long t0 = System.nanoTime();
        io.peft4j.core.util.AtomicFiles.deleteTree(repo);
        Files.createDirectories(repo);
        Model m = OnnxIO.read(base);
        List<AdapterBundle> adapters = new ArrayList<>();
        for (int k = 1; k <= ADAPTERS.size(); k++) {
            adapters.add(Fixtures.adapter(Workload.RESNET18, m, k));
        }
        exportPackages(base, adapters, repo);
        Files.writeString(stampFile, stamp, StandardCharsets.UTF_8);
        System.err.printf(Locale.ROOT, "load: exported the resnet18 side and multi packages to %s (%.1f s)%n", repo,
                (System.nanoTime() - t0) / 1e9);
        return repo;
    }

    // ---------------------------------------------------------------- the run

    /** Runs every phase of {@code s}. */
    public static Results run(Settings s) throws IOException, InterruptedException {
        return new LoadTest(s).runAll();
    }

    /**
     * Merged sessions per side package, on the server and the direct path alike: one for each of the
     * adapters, so that none replaces another during the run.
     */
    static final int MERGED_SESSIONS = 2;

    /** Runs {@code adapter} on {@code b} until it has its merged session (at most 120 s), as the server's warm-up does. */
    private static void awaitMergedSession(OrtBackend b, String adapter) throws InterruptedException {
        Map<String, Tensor> in = new LinkedHashMap<>();
        for (TensorSpec t : b.info().inputs()) {
            long[] shape = t.shape().clone();
            for (int i = 0; i < shape.length; i++) {
                shape[i] = Math.max(1, shape[i]);
            }
            in.put(t.name(), Tensor.zeros(t.dtype(), shape));
        }
        Served.awaitMergedSession(b, in, adapter, 120);
    }

    /**
     * Waits (at most 120 s, sending requests) until the server's side package runs every adapter on
     * a merged session, as its model metadata says ({@code parameters.merged_sessions}).
     */
    private void awaitServerMergedSessions(URI server, String pkg) throws IOException, InterruptedException {
        long t0 = System.nanoTime();
        URI meta = server.resolve("/v2/models/" + pkg);
        while (true) {
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(meta).timeout(Duration.ofSeconds(10)).GET().build(),
                    HttpResponse.BodyHandlers.ofString());
            JsonNode ms = JSON.readTree(r.body()).path("parameters").path("merged_sessions").path("adapters");
            List<String> have = new ArrayList<>();
            ms.forEach(n -> have.add(n.asText()));
            if (have.containsAll(ADAPTERS)) {
                return;
            }
            if (System.nanoTime() - t0 > 120_000_000_000L) {
                throw new IllegalStateException("the server's " + pkg + " package has merged sessions for " + have + " only, after "
                        + "120 s; it should have them for " + ADAPTERS);
            }
            for (String a : ADAPTERS) {
                send(server.resolve("/v2/models/" + pkg + "/infer"), bodies.get("0/" + a));
            }
            Thread.sleep(100);
        }
    }

    private Results runAll() throws IOException, InterruptedException {
        String loadBefore = Machine.load();
        double busyBefore = Machine.busyShare(3000);
        long t0 = System.nanoTime();
        ZonedDateTime date = ZonedDateTime.now(ZoneOffset.UTC);
        List<Phase> phases = new ArrayList<>();
        List<ServerRun> servers = new ArrayList<>();
        Overhead overhead = null;
        int warmupErrors = 0;
        Codec codec;
        // as the server runs side packages (peft4j serve's default): the adapter in use gets a merged session
        OrtBackend.Options ortOptions = new OrtBackend.Options(s.threads(), 1, s.spinning()).withMergedSessions(MERGED_SESSIONS);
        List<String> jvm = new ArrayList<>(s.serverJvm());
        if (s.spinning()) {
            jvm.add("-Dpeft4j.spinning=true");
        }
        try (OrtBackend side = OrtBackend.open(s.side(), ortOptions);
             OrtBackend multi = OrtBackend.open(s.multi(), ortOptions)) {
            makeInputs(side);
            for (String a : ADAPTERS) {
                awaitMergedSession(side, a);
            }
            Map<Scenario, InferenceBackend> direct = Map.of(Scenario.SIDE, side, Scenario.MULTI, multi);
            codec = codec(side);
            for (Scenario sc : Scenario.values()) {
                for (int n : s.clients()) {
                    progress("direct " + sc.pkg + " N=" + n);
                    Path self = Path.of("/proc/self/stat");
                    double[] cpu = {Double.NaN};
                    LoadDriver.Result r = LoadDriver.run(n, s.warmup(), s.measure(), s.maxRequests(),
                            c -> directCall(direct.get(sc), sc, c), () -> cpu[0] = ServerProcess.cpuSeconds(self));
                    phases.add(new Phase("direct", sc, null, r, null, ServerProcess.cpuSeconds(self) - cpu[0]));
                }
            }
            for (boolean batching : new boolean[] {false, true}) {
                List<String> args = new ArrayList<>(List.of("--threads", Integer.toString(s.threads()), "--merged-sessions",
                        Integer.toString(MERGED_SESSIONS)));
                if (batching) {
                    args.add("--batching");
                }
                Path log = s.logDir().resolve("serve-" + (batching ? "batching" : "no-batching") + ".log");
                progress("starting peft4j serve" + (batching ? " --batching" : ""));
                try (ServerProcess server = ServerProcess.start(s.classpath(), jvm, s.side().getParent(), args, log,
                        Duration.ofMinutes(3))) {
                    ServerProcess.Memory atReady = server.memory();
                    check(server.uri(), direct);
                    progress("warming the server up for " + s.serverWarmup().toMillis() + " ms");
                    warmupErrors += warmUp(server.uri());
                    awaitServerMergedSessions(server.uri(), Scenario.SIDE.pkg);
                    if (!batching) {
                        progress("HTTP vs direct, alternating, N=1");
                        overhead = overhead(server.uri(), side);
                    }
                    for (Scenario sc : Scenario.values()) {
                        for (int n : s.clients()) {
                            progress("HTTP " + sc.pkg + " N=" + n + " batching " + (batching ? "on" : "off"));
                            ServerStats[] before = new ServerStats[1];
                            double[] cpu = {Double.NaN};
                            LoadDriver.Result r = LoadDriver.run(n, s.warmup(), s.measure(), s.maxRequests(),
                                    c -> httpCall(server.uri(), sc, c), () -> {
                                        cpu[0] = server.cpuSeconds();
                                        before[0] = scrapeUnchecked(server.uri(), sc.pkg);
                                    });
                            double used = server.cpuSeconds() - cpu[0];
                            phases.add(new Phase("HTTP", sc, batching, r, scrape(server.uri(), sc.pkg).minus(before[0]), used));
                        }
                    }
                    servers.add(new ServerRun(batching, server.readySeconds(), atReady, server.memory()));
                }
            }
        }
        return new Results(s, phases, servers, overhead, codec, warmupErrors, loadBefore, Machine.load(), (System.nanoTime() - t0) / 1e9,
                date, inputShape, maxCheckError, busyBefore);
    }

    private static void progress(String what) {
        System.err.println("load: " + what + "...");
    }

    /** {@link #INPUTS} seeded random one-row inputs of the model's (FP32) inputs, and their request bodies. */
    private void makeInputs(InferenceBackend b) throws IOException {
        for (int k = 0; k < INPUTS; k++) {
            Random r = new Random(100 + k);
            Map<String, Tensor> in = new LinkedHashMap<>();
            for (TensorSpec spec : b.info().inputs()) {
                if (spec.dtype() != DataType.FLOAT) {
                    throw Peft4jException.unsupported("the load test sends FP32 inputs; input '" + spec.name() + "' is "
                            + spec.dtype());
                }
                long[] shape = spec.shape();
                for (int i = 0; i < shape.length; i++) {
                    if (shape[i] < 0) {
                        if (i > 0) {
                            throw Peft4jException.unsupported("the load test needs fixed sizes past the batch axis; input '"
                                    + spec.name() + "' has shape " + spec.describeShape());
                        }
                        shape[i] = 1;
                    }
                }
                float[] v = new float[Math.toIntExact(Tensor.numel(shape))];
                for (int i = 0; i < v.length; i++) {
                    v[i] = (float) r.nextGaussian();
                }
                in.put(spec.name(), Tensor.ofFloats(shape, v));
                if (k == 0) {
                    inputShape += (inputShape.isEmpty() ? "" : ", ") + spec.name() + " " + Arrays.toString(shape)
                            + " (" + v.length + " floats)";
                }
            }
            inputs.add(in);
            for (String a : ADAPTERS) {
                bodies.put(k + "/" + a, body(in, a));
                binaryBodies.put(k + "/" + a, binaryBody(in, a));
            }
        }
    }

    /** An OIP v2 request body: the inputs as flat FP32 data and {@code parameters.adapter}. */
    static byte[] body(Map<String, Tensor> in, String adapter) throws IOException {
        List<Map<String, Object>> list = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : in.entrySet()) {
            Map<String, Object> t = new LinkedHashMap<>();
            t.put("name", e.getKey());
            t.put("shape", e.getValue().shape());
            t.put("datatype", "FP32");
            t.put("data", e.getValue().toFloatArray());
            list.add(t);
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("inputs", list);
        m.put("parameters", Map.of("adapter", adapter));
        return JSON.writeValueAsBytes(m);
    }

    /**
     * The same request with Triton's binary tensor data, as tritonclient sends it by default: the
     * inputs' raw little-endian bytes after the JSON, and every output asked for as binary.
     */
    static InferCodec.Body binaryBody(Map<String, Tensor> in, String adapter) throws IOException {
        List<Map<String, Object>> list = new ArrayList<>();
        java.io.ByteArrayOutputStream data = new java.io.ByteArrayOutputStream();
        for (Map.Entry<String, Tensor> e : in.entrySet()) {
            java.nio.ByteBuffer b = e.getValue().bytes();
            byte[] raw = new byte[b.remaining()];
            b.get(raw);
            data.writeBytes(raw);
            Map<String, Object> t = new LinkedHashMap<>();
            t.put("name", e.getKey());
            t.put("shape", e.getValue().shape());
            t.put("datatype", "FP32");
            t.put("parameters", Map.of("binary_data_size", raw.length));
            list.add(t);
        }
        Map<String, Object> params = new LinkedHashMap<>();
        params.put("adapter", adapter);
        params.put("binary_data_output", true);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("inputs", list);
        m.put("parameters", params);
        byte[] json = JSON.writeValueAsBytes(m);
        byte[] body = Arrays.copyOf(json, json.length + data.size());
        System.arraycopy(data.toByteArray(), 0, body, json.length, data.size());
        return new InferCodec.Body(body, json.length);
    }

    private LoadDriver.Call directCall(InferenceBackend b, Scenario sc, int client) {
        long[] k = {0};
        return () -> {
            long i = k[0]++;
            Map<String, Tensor> out = b.run(inputs.get((int) ((client + i) % INPUTS)), AdapterSelection.of(sc.adapter(client, i)),
                    Set.of()).outputs();
            if (out.isEmpty()) {
                throw new IllegalStateException("no outputs");
            }
        };
    }

    private LoadDriver.Call httpCall(URI server, Scenario sc, int client) {
        URI infer = server.resolve("/v2/models/" + sc.pkg + "/infer");
        long[] k = {0};
        return () -> {
            long i = k[0]++;
            byte[] body = bodies.get((client + i) % INPUTS + "/" + sc.adapter(client, i));
            send(infer, body);
        };
    }

    /**
     * Requests of one client through a lean keep-alive HTTP/1.1 client ({@link RawHttp}, as wrk or
     * perf_analyzer send them): JSON bodies, or with {@code binary} Triton's binary tensor data.
     */
    private LoadDriver.Call rawCall(RawHttp client, Scenario sc, int clientIndex, boolean binary) {
        String path = "/v2/models/" + sc.pkg + "/infer";
        long[] k = {0};
        return () -> {
            long i = k[0]++;
            String key = (clientIndex + i) % INPUTS + "/" + sc.adapter(clientIndex, i);
            RawHttp.Reply r;
            if (binary) {
                InferCodec.Body b = binaryBodies.get(key);
                r = client.post(path, "application/octet-stream", InferCodec.HEADER_LENGTH + ": " + b.headerLength() + "\r\n",
                        b.bytes());
                if (r.status() == 200 && r.inferenceHeaderLength() < 0) {
                    throw new IOException("a binary tensor data answer without " + InferCodec.HEADER_LENGTH);
                }
            } else {
                r = client.post(path, "application/json", "", bodies.get(key));
            }
            if (r.status() != 200) {
                throw new IOException("HTTP " + r.status() + ": " + new String(r.body(), StandardCharsets.UTF_8));
            }
        };
    }

    /** Binary tensor data requests of one client (side package, adapter a), as {@link #httpCall} sends JSON. */
    private LoadDriver.Call binaryCall(URI server, Scenario sc, int client) {
        URI infer = server.resolve("/v2/models/" + sc.pkg + "/infer");
        long[] k = {0};
        return () -> {
            long i = k[0]++;
            send(infer, binaryBodies.get((client + i) % INPUTS + "/" + sc.adapter(client, i)));
        };
    }

    private byte[] send(URI uri, byte[] body) throws IOException, InterruptedException {
        return send(HttpRequest.newBuilder(uri).header("Content-Type", "application/json"), body);
    }

    /** A binary tensor data request; the answer's bytes (JSON, then the binary outputs). */
    private HttpResponse<byte[]> send(URI uri, InferCodec.Body body) throws IOException, InterruptedException {
        HttpRequest req = HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(60)).header("Content-Type", "application/octet-stream")
                .header(InferCodec.HEADER_LENGTH, Integer.toString(body.headerLength()))
                .POST(HttpRequest.BodyPublishers.ofByteArray(body.bytes())).build();
        HttpResponse<byte[]> resp = http.send(req, HttpResponse.BodyHandlers.ofByteArray());
        if (resp.statusCode() != 200) {
            throw new IOException("HTTP " + resp.statusCode() + ": " + new String(resp.body(), StandardCharsets.UTF_8));
        }
        if (resp.headers().firstValue(InferCodec.HEADER_LENGTH).isEmpty()) {
            throw new IOException("a binary tensor data answer without " + InferCodec.HEADER_LENGTH);
        }
        return resp;
    }

    private byte[] send(HttpRequest.Builder b, byte[] body) throws IOException, InterruptedException {
        HttpRequest req = b.timeout(Duration.ofSeconds(60)).POST(HttpRequest.BodyPublishers.ofByteArray(body)).build();
        HttpResponse<byte[]> resp = http.send(req, HttpResponse.BodyHandlers.ofByteArray());
        if (resp.statusCode() != 200) {
            throw new IOException("HTTP " + resp.statusCode() + ": " + new String(resp.body(), StandardCharsets.UTF_8));
        }
        return resp.body();
    }

    /** Every package and adapter answers over HTTP what the direct backend computes, before anything is timed. */
    private void check(URI server, Map<Scenario, InferenceBackend> direct) throws IOException, InterruptedException {
        for (Scenario sc : Scenario.values()) {
            for (String a : ADAPTERS) {
                Map<String, Tensor> want = direct.get(sc).run(inputs.get(0), a);
                JsonNode got = JSON.readTree(send(server.resolve("/v2/models/" + sc.pkg + "/infer"), bodies.get("0/" + a)));
                for (JsonNode o : got.path("outputs")) {
                    Tensor w = want.get(o.path("name").asText());
                    if (w == null) {
                        throw new IllegalStateException("the server answered output '" + o.path("name").asText()
                                + "' that the direct backend does not have");
                    }
                    float[] ref = w.toFloatArray();
                    JsonNode data = o.path("data");
                    if (data.size() != ref.length) {
                        throw new IllegalStateException(sc.pkg + "/" + a + ": the server answered " + data.size() + " values, "
                                + "the direct backend " + ref.length);
                    }
                    double d = 0;
                    double m = 0;
                    for (int i = 0; i < ref.length; i++) {
                        d = Math.max(d, Math.abs(data.get(i).asDouble() - ref[i]));
                        m = Math.max(m, Math.abs(ref[i]));
                    }
                    double rel = d / Math.max(m, 1e-30);
                    maxCheckError = Math.max(maxCheckError, rel);
                    if (rel > 1e-4) {
                        throw new IllegalStateException(sc.pkg + "/" + a + ": the server's answer differs from the direct "
                                + "backend's by " + rel + " (relative); not measuring it");
                    }
                }
                checkBinary(server.resolve("/v2/models/" + sc.pkg + "/infer"), binaryBodies.get("0/" + a), got, sc.pkg + "/" + a);
            }
        }
    }

    /** The binary tensor data answer holds exactly the values of the JSON answer {@code json}. */
    private void checkBinary(URI uri, InferCodec.Body body, JsonNode json, String what) throws IOException, InterruptedException {
        HttpResponse<byte[]> resp = send(uri, body);
        byte[] b = resp.body();
        int header = Integer.parseInt(resp.headers().firstValue(InferCodec.HEADER_LENGTH).orElseThrow());
        JsonNode head = JSON.readTree(Arrays.copyOf(b, header));
        java.nio.ByteBuffer data = java.nio.ByteBuffer.wrap(b, header, b.length - header).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (JsonNode o : head.path("outputs")) {
            JsonNode ref = null;
            for (JsonNode j : json.path("outputs")) {
                if (j.path("name").asText().equals(o.path("name").asText())) {
                    ref = j.path("data");
                }
            }
            int size = o.path("parameters").path("binary_data_size").asInt(-1);
            if (ref == null || size != 4 * ref.size() || data.remaining() < size) {
                throw new IllegalStateException(what + ": the binary tensor data answer's output '" + o.path("name").asText()
                        + "' (" + size + " bytes) does not match the JSON answer's");
            }
            for (int i = 0; i < ref.size(); i++) {
                if (Float.floatToIntBits(data.getFloat()) != Float.floatToIntBits(Float.parseFloat(ref.get(i).asText()))) {
                    throw new IllegalStateException(what + ": the binary tensor data answer differs from the JSON answer at "
                            + o.path("name").asText() + "[" + i + "]; not measuring it");
                }
            }
        }
        if (data.hasRemaining() || head.path("outputs").size() != json.path("outputs").size()) {
            throw new IllegalStateException(what + ": the binary tensor data answer does not hold the JSON answer's outputs");
        }
    }

    /**
     * One client alternating blocks of {@link #BLOCK} runs of each kind: HTTP with JSON and with
     * binary tensor data through a lean keep-alive client ({@link RawHttp}), direct, and HTTP with
     * JSON through the JDK's {@code HttpClient} for reference (side package, adapter a; the order
     * rotates each cycle), so that all see the same machine; warm-up first, then the measurement window.
     */
    private Overhead overhead(URI server, InferenceBackend side) throws InterruptedException {
        try (RawHttp json = new RawHttp(server); RawHttp bin = new RawHttp(server)) {
            LoadDriver.Call[] calls = {rawCall(json, Scenario.SIDE, 0, false), directCall(side, Scenario.SIDE, 0),
                rawCall(bin, Scenario.SIDE, 0, true), httpCall(server, Scenario.SIDE, 0)};
            Latencies[] lat = {new Latencies(), new Latencies(), new Latencies(), new Latencies()};
            int errors = 0;
            String first = null;
            long start = System.nanoTime() + s.warmup().toNanos();
            long end = start + s.measure().toNanos();
            int budget = s.maxRequests();
            for (long cycle = 0; System.nanoTime() < end && budget > 0; cycle++) {
                for (int j = 0; j < calls.length; j++) {
                    int kind = (int) ((cycle + j) % calls.length);
                    for (int i = 0; i < BLOCK; i++) {
                        long t0 = System.nanoTime();
                        try {
                            calls[kind].call();
                        } catch (Exception e) {
                            errors++;
                            if (first == null) {
                                first = e.getClass().getSimpleName() + ": " + e.getMessage();
                            }
                            continue;
                        }
                        long t1 = System.nanoTime();
                        if (t0 >= start) {
                            lat[kind].add(t1 - t0);
                            budget--;
                        }
                    }
                }
            }
            for (Latencies l : lat) {
                if (l.count() == 0) {
                    throw new IllegalStateException("the HTTP vs direct phase recorded no run of some kind (" + errors + " errors"
                            + (first == null ? "" : ", first: " + first) + ")");
                }
            }
            return new Overhead(lat[0], lat[2], lat[1], lat[3], errors, first);
        }
    }

    /** Requests to both packages, both adapters, one client each, for the server warm-up; returns the failures. */
    private int warmUp(URI server) throws InterruptedException {
        if (s.serverWarmup().isZero()) {
            return 0;
        }
        Scenario[] scenarios = Scenario.values();
        LoadDriver.Result r = LoadDriver.run(scenarios.length, s.serverWarmup(), Duration.ofMillis(1), 1,
                c -> httpCall(server, scenarios[c], c));
        if (r.firstError() != null) {
            System.err.println("load: warm-up failure: " + r.firstError());
        }
        return r.errors();
    }

    /** {@link InferCodec} alone on the one-row request and its response: the server's JSON work, timed in this JVM. */
    private Codec codec(InferenceBackend side) {
        byte[] body = bodies.get("0/a");
        Map<String, Tensor> out = side.run(inputs.get(0), "a");
        Map<String, Object> params = new LinkedHashMap<>();
        params.put("adapter", "a");
        params.put("adapter_versions", Map.of("a", 1L));
        int iterations = (int) Math.max(50, Math.min(2000, s.measure().toMillis()));
        InferCodec.Body binary = binaryBodies.get("0/a");
        Latencies read = new Latencies();
        Latencies write = new Latencies();
        Latencies readBinary = new Latencies();
        int responseBytes = 0;
        for (int i = 0; i < 2 * iterations; i++) {
            long t0 = System.nanoTime();
            InferCodec.Request r = InferCodec.read(body, 1024);
            long t1 = System.nanoTime();
            byte[] resp = InferCodec.write("side", r.id(), params, out);
            long t2 = System.nanoTime();
            InferCodec.read(binary.bytes(), binary.headerLength(), 1024);
            long t3 = System.nanoTime();
            responseBytes = resp.length;
            if (i >= iterations) {
                read.add(t1 - t0);
                write.add(t2 - t1);
                readBinary.add(t3 - t2);
            }
        }
        return new Codec(body.length, responseBytes, read.percentile(0.5) / 1e6, write.percentile(0.5) / 1e6,
                binary.bytes().length, readBinary.percentile(0.5) / 1e6);
    }

    private ServerStats scrapeUnchecked(URI server, String model) {
        try {
            return scrape(server, model);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while reading /metrics", e);
        }
    }

    /** The sums of the server's request, pass and row metrics for {@code model}. */
    private ServerStats scrape(URI server, String model) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(server.resolve("/metrics")).timeout(Duration.ofSeconds(10))
                .GET().build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) {
            throw new IOException("GET /metrics answered " + r.statusCode());
        }
        return parseMetrics(r.body(), model);
    }

    /** The sums over all labels of {@code model} in Prometheus text (successful requests only: status 200). */
    static ServerStats parseMetrics(String text, String model) {
        double[] v = new double[5];
        String[] names = {"peft4j_request_seconds_sum", "peft4j_request_seconds_count", "peft4j_inference_seconds_sum",
            "peft4j_inference_seconds_count", "peft4j_batch_rows_sum"};
        String modelLabel = "model=\"" + model + "\"";
        for (String line : text.split("\n")) {
            if (line.startsWith("#") || !line.contains(modelLabel)) {
                continue;
            }
            int brace = line.indexOf('{');
            if (brace < 0) {
                continue;
            }
            String name = line.substring(0, brace);
            if (name.startsWith("peft4j_request_seconds") && !line.contains("status=\"200\"")) {
                continue;
            }
            for (int i = 0; i < names.length; i++) {
                if (name.equals(names[i])) {
                    v[i] += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
                }
            }
        }
        return new ServerStats(v[0], v[1], v[2], v[3], v[4]);
    }

    // ---------------------------------------------------------------- main

    public static void main(String[] args) {
        Path work = Fixtures.workDir();
        Path out = null;
        Path docs = null;
        boolean quick = false;
        List<Integer> clients = null;
        Double seconds = null;
        Double warmup = null;
        Double serverWarmup = null;
        Integer maxRequests = null;
        int threads = Bench.THREADS;
        boolean spinning = false;
        List<String> serverJvm = List.of();
        try {
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                if (!a.equals("--quick") && !a.equals("--no-spin") && !a.equals("--spin") && i + 1 >= args.length) {
                    throw Peft4jException.invalid(a + " needs a value");
                }
                switch (a) {
                    case "--work" -> work = Path.of(args[++i]);
                    case "--out" -> out = Path.of(args[++i]);
                    case "--docs" -> docs = Path.of(args[++i]);
                    case "--quick" -> quick = true;
                    case "--no-spin" -> spinning = false;
                    case "--spin" -> spinning = true;
                    case "--clients" -> clients = Arrays.stream(args[++i].split(",")).map(String::trim).map(Integer::valueOf).toList();
                    case "--seconds" -> seconds = Double.valueOf(args[++i]);
                    case "--warmup" -> warmup = Double.valueOf(args[++i]);
                    case "--server-warmup" -> serverWarmup = Double.valueOf(args[++i]);
                    case "--max-requests" -> maxRequests = Integer.valueOf(args[++i]);
                    case "--threads" -> threads = Integer.parseInt(args[++i]);
                    case "--server-jvm" -> serverJvm = Arrays.stream(args[++i].trim().split("\\s+")).filter(x -> !x.isEmpty()).toList();
                    default -> throw Peft4jException.invalid("unknown option '" + a + "'");
                }
            }
            if (out == null) {
                throw Peft4jException.invalid("--out FILE is required");
            }
        } catch (NumberFormatException e) {
            System.err.println("load: error: not a number: " + e.getMessage());
            System.exit(2);
            return;
        } catch (Peft4jException e) {
            System.err.println("load: error: " + e.getMessage());
            System.err.println("usage: LoadTest --work DIR --out FILE [--docs docs/BENCHMARKS.md] [--quick] [--clients 1,4,16] "
                    + "[--seconds T] [--warmup W] [--server-warmup S] [--max-requests M] [--threads N] [--spin] [--server-jvm \"OPTS\"]");
            System.exit(2);
            return;
        }
        try {
            Path repo = resnet18Repo(work);
            Settings s = new Settings("resnet18", repo.resolve("side"), repo.resolve("multi"),
                    clients != null ? clients : quick ? List.of(1, 4) : List.of(1, 4, 16),
                    seconds(warmup != null ? warmup : quick ? 1 : 3),
                    seconds(serverWarmup != null ? serverWarmup : quick ? 3 : 45), seconds(seconds != null ? seconds : quick ? 2 : 10),
                    maxRequests != null ? maxRequests : quick ? 2_000 : 50_000, threads, spinning, System.getProperty("java.class.path"),
                    serverJvm, work.resolve("load-test"));
            Results r = run(s);
            String command = System.getProperty("peft4j.command", "LoadTest " + String.join(" ", args));
            String md = LoadReport.render(r, command, Machine.describe(), quick);
            Report.write(out.toAbsolutePath(), md);
            System.err.println("load: wrote " + out);
            if (docs != null) {
                MarkedSections.splice(docs, MARKER, r.settings().label(), md);
                System.err.println("load: updated the " + r.settings().label() + " load-test section of " + docs);
            }
            System.out.print(LoadReport.summary(r));
        } catch (Peft4jException e) {
            System.err.println("load: error: " + e.getMessage());
            System.exit(2);
        } catch (IOException | RuntimeException e) {
            System.err.println("load: error: " + e);
            e.printStackTrace();
            System.exit(1);
        } catch (InterruptedException e) {
            System.exit(1);
        }
    }

    private static Duration seconds(double v) {
        if (!(v >= 0 && v <= 3600)) {
            throw Peft4jException.invalid("times must be 0..3600 s, got " + v);
        }
        return Duration.ofNanos(Math.round(v * 1e9));
    }

    /** For {@link LoadReport}: the clients and phases of one scenario and path. */
    static IntFunction<Phase> finder(List<Phase> phases, String path, Scenario sc, Boolean batching) {
        return n -> phases.stream().filter(p -> p.path().equals(path) && p.scenario() == sc
                && java.util.Objects.equals(p.batching(), batching) && p.result().clients() == n).findFirst().orElse(null);
    }
}
