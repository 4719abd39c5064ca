package io.peft4j.bench;

import io.peft4j.bench.LoadTest.Phase;
import io.peft4j.bench.LoadTest.Results;
import io.peft4j.bench.LoadTest.Scenario;
import io.peft4j.bench.LoadTest.ServerRun;

import java.time.format.DateTimeFormatter;
import java.util.Locale;
import java.util.Map;

/** The Markdown section and the terminal summary of a {@link LoadTest} run. */
final class LoadReport {

    private LoadReport() {
    }

    static String render(Results r, String command, Map<String, String> machine, boolean quick) {
        LoadTest.Settings s = r.settings();
        StringBuilder md = new StringBuilder();
        md.append("## Serving under load (issue 6): ").append(s.label()).append("\n\n");
        md.append(String.format(Locale.ROOT, "Written by `%s` (from the repository root) on %s; the run took %.0f s. ", command,
                r.date().format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm 'UTC'", Locale.ROOT)), r.wallSeconds()));
        md.append("Load average (1, 5, 15 min) ").append(r.loadBefore()).append(" before, ").append(r.loadAfter())
                .append(String.format(Locale.ROOT, " after; in the 3 s before the run the machine's cores were %.0f %% busy.%n%n",
                        100 * r.busyBefore()));
        if (quick) {
            md.append("**Smoke run** (--quick): short phases, few clients; the numbers are not measurements.\n\n");
        }
        if (busy(r.busyBefore())) {
            md.append("**Busy machine:** other work kept the cores more than a quarter busy just before this run, so the "
                    + "latencies are inflated and noisy; rerun `bench/load` on a quiet machine for figures to quote. The "
                    + "HTTP overhead is measured with HTTP and direct runs alternating, which shares the load between both "
                    + "sides.\n\n");
        }
        md.append("- **Packages:** ").append(s.label()).append(" exported by `Exporter` as `side` (LoRA adapters `a` and `b`, "
                + "r = 8, alpha = 16, random non-zero B) and as `multi` (the same two adapters stacked); one input row per "
                + "request: ").append(r.inputShape()).append(String.format(Locale.ROOT, ", a %.0f KiB JSON body.%n",
                r.codec().bodyBytes() / 1024.0));
        md.append("- **Server:** `peft4j serve --threads ").append(s.threads()).append(" --merged-sessions ")
                .append(LoadTest.MERGED_SESSIONS).append("` (each of the side package's adapters runs on a "
                        + "session with it merged in, built after its first request and ready before timing; the default is 0)")
                .append(" as its own process (JVM options: ").append(s.serverJvm().isEmpty() ? "the defaults" : "`"
                        + String.join(" ", s.serverJvm()) + "`").append(s.spinning() ? "; `peft4j.spinning=true` (`--spin`): ONNX "
                        + "Runtime's threads spin while they wait, here and in the direct baseline" : "; ONNX Runtime's threads "
                        + "sleep while they wait (serve's default), here and in the direct baseline").append("), on loopback; *batching on* adds `--batching` "
                        + "(at most 32 rows, 2 ms delay; the defaults); 2 workers per model.\n");
        md.append(String.format(Locale.ROOT, "- **Clients:** closed loop, N threads of one `java.net.http.HttpClient` (HTTP/1.1), "
                + "each sending its next request when the previous one has answered; after each server start %s s of requests "
                + "to both packages (its JIT compiler's warm-up), then per phase %s s warm-up and %s s measured "
                + "(at most %,d requests). *side*: every request with `parameters.adapter` = `a`; *multi*: `a` and `b` "
                + "alternating. A request counts when it answers 200; anything else is an error.%n",
                secs(s.serverWarmup().toMillis()), secs(s.warmup().toMillis()), secs(s.measure().toMillis()), s.maxRequests()));
        md.append("- **Direct:** the same inputs and adapters through `OrtBackend` (`devices`) in the load driver's JVM, "
                + s.threads() + " intra-op threads, " + LoadTest.MERGED_SESSIONS + " merged sessions per side package "
                + "(ready before timing), same clients: the baseline, in the same run.\n");
        md.append(String.format(Locale.ROOT, "- **Checked first:** every package and adapter answers over HTTP what `OrtBackend` "
                + "computes (largest relative difference %.1e).%n%n", r.maxCheckError()));

        LoadTest.Overhead o = r.overhead();
        int errors = r.errors();
        md.append("| Check | Measured | Target | Verdict |\n|---|---|---|---|\n");
        md.append(String.format(Locale.ROOT, "| HTTP overhead at p50: one client, side package, adapter `a`, JSON through a lean "
                + "keep-alive HTTP/1.1 client (as wrk or perf_analyzer), HTTP (JSON), direct, HTTP (binary) and HTTP (JDK client) runs "
                + "alternating in blocks of %d | %s | ≤ %.0f ms | **%s** |%n", LoadTest.BLOCK,
                overheadCell(o, o.http(), true, String.format(Locale.ROOT, "%,d and %,d runs", o.http().count(), o.direct().count())),
                LoadTest.OVERHEAD_TARGET_MS, overheadVerdict(r, o.http())));
        md.append(String.format(Locale.ROOT, "| HTTP overhead at p50, binary tensor data (Triton's extension: the same request as a "
                + "%.0f KiB body of JSON and raw FP32 bytes, outputs binary), in the same alternation | %s | ≤ %.0f ms | **%s** |%n",
                r.codec().binaryBodyBytes() / 1024.0, overheadCell(o, o.binary(), true, null), LoadTest.OVERHEAD_TARGET_MS,
                overheadVerdict(r, o.binary())));
        md.append(String.format(Locale.ROOT, "| For reference: the same JSON requests through the JDK's `java.net.http.HttpClient` "
                + "(every request handed to its selector thread and back), in the same alternation | %s | — | — |%n",
                overheadCell(o, o.jdk(), false, null)));
        md.append(String.format(Locale.ROOT, "| Failed requests, all phases | %,d of %,d | 0 | **%s** |%n", errors, r.requests(),
                errors == 0 ? "PASS" : "MISS"));
        StringBuilder ready = new StringBuilder();
        StringBuilder mem = new StringBuilder();
        for (ServerRun run : r.servers()) {
            String tag = run.batching() ? "batching on" : "batching off";
            ready.append(ready.length() == 0 ? "" : "; ").append(String.format(Locale.ROOT, "%.2f s (%s)", run.readySeconds(), tag));
            mem.append(mem.length() == 0 ? "" : "; ").append(tag).append(": ").append(memory(run.atReady())).append(" at ready, ")
                    .append(memory(run.afterLoad())).append(" after the load");
        }
        md.append("| Time from process start to the first 200 from `/v2/health/ready` (JVM start, both packages loaded) | ")
                .append(ready).append(" | — | — |\n");
        md.append("| Resident memory of the server (`VmRSS` / peak `VmHWM`) | ").append(mem).append(" | — | — |\n\n");

        md.append("### Throughput and latency\n\n");
        md.append("| Path | Package (adapters) | Batching | Clients | Requests | Errors | Throughput | p50 | p95 | p99 | Rows per pass "
                + "| CPU per request |\n");
        md.append("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (Scenario sc : Scenario.values()) {
            for (Boolean batching : new Boolean[] {null, false, true}) {
                String path = batching == null ? "direct" : "HTTP";
                for (int n : s.clients()) {
                    Phase p = LoadTest.finder(r.phases(), path, sc, batching).apply(n);
                    if (p == null) {
                        continue;
                    }
                    Latencies.Summary l = p.result().latencies().summary();
                    md.append(String.format(Locale.ROOT, "| %s | %s (%s) | %s | %d | %,d | %d | %.1f /s | %s | %s | %s | %s | %s |%n",
                            path, sc.pkg, sc.adapters, batching == null ? "—" : batching ? "on" : "off", n, l.count(),
                            p.result().errors(), p.result().throughput(), ms(l.p50()), ms(l.p95()), ms(l.p99()),
                            p.server() == null ? "1" : String.format(Locale.ROOT, "%.2f", p.server().rowsPerPass()),
                            ms(p.cpuMsPerRequest())));
                }
            }
        }
        md.append("\n*Rows per pass*: the server's mean rows per backend pass (`peft4j_batch_rows`); a direct run is one row. "
                + "Throughput counts the requests answered within the measurement window. *CPU per request*: the CPU time "
                + "(user + system, all threads, `/proc/PID/stat`) the server process used during the window (HTTP), or the "
                + "driver's process (direct: the runs and the client threads), over the requests; it includes ONNX Runtime's "
                + "worker threads spinning while they wait for work, and it is less sensitive than latency to other work on "
                + "the machine.\n\n");
        breakdown(md, r);

        md.append("| Machine | |\n|---|---|\n");
        machine.forEach((k, v) -> md.append("| ").append(k).append(" | ").append(v).append(" |\n"));
        return md.toString();
    }

    /** Where the time of one request goes: client, server metrics and InferCodec alone, at the smallest client count. */
    private static void breakdown(StringBuilder md, Results r) {
        int n = r.settings().clients().stream().mapToInt(Integer::intValue).min().orElse(1);
        Phase h = LoadTest.finder(r.phases(), "HTTP", Scenario.SIDE, false).apply(n);
        Phase d = LoadTest.finder(r.phases(), "direct", Scenario.SIDE, null).apply(n);
        if (h == null || d == null || h.server() == null || h.result().latencies().count() == 0) {
            return;
        }
        double client = h.result().latencies().mean() / 1e6;
        double server = h.server().requestMeanMs();
        double pass = h.server().passMeanMs();
        double direct = d.result().latencies().mean() / 1e6;
        LoadTest.Codec c = r.codec();
        md.append(String.format(Locale.ROOT, "### Where the time of a request goes (%d client%s, side package, batching off; means)%n%n",
                n, n == 1 ? "" : "s"));
        md.append("| Part | Time | Measured as |\n|---|---|---|\n");
        md.append(String.format(Locale.ROOT, "| The request, as the client sees it | %s | client: send to last byte of the answer |%n", ms(client)));
        md.append(String.format(Locale.ROOT, "| Outside the controller: HTTP client, loopback, Netty, routing, body aggregation | %s | "
                + "client − server request time |%n", ms(client - server)));
        md.append(String.format(Locale.ROOT, "| The controller: parse, queue, run, answer | %s | `peft4j_request_seconds` |%n", ms(server)));
        md.append(String.format(Locale.ROOT, "| — of which the backend pass | %s | `peft4j_inference_seconds` |%n", ms(pass)));
        md.append(String.format(Locale.ROOT, "| — of which parsing the %.0f KiB request body | %s | `InferCodec.read` alone, in the "
                + "driver's JVM (median) |%n", c.bodyBytes() / 1024.0, ms(c.readMs())));
        md.append(String.format(Locale.ROOT, "| — of which writing the %d-byte answer | %s | `InferCodec.write` alone (median) |%n",
                c.responseBytes(), ms(c.writeMs())));
        md.append(String.format(Locale.ROOT, "| — the rest: handing the job to a worker and back, type checks, metrics | %s | "
                + "controller − pass − parse − write |%n", ms(server - pass - c.readMs() - c.writeMs())));
        md.append(String.format(Locale.ROOT, "| Reading the same request as binary tensor data (%.0f KiB), for comparison | %s | "
                + "`InferCodec.read` alone (median) |%n", c.binaryBodyBytes() / 1024.0, ms(c.binaryReadMs())));
        md.append(String.format(Locale.ROOT, "| The same run through `OrtBackend` directly | %s | direct phase, %d client%s |%n",
                ms(direct), n, n == 1 ? "" : "s"));
        md.append(String.format(Locale.ROOT, "| CPU per request: the server process over HTTP, against the direct run | %s vs %s "
                + "(%s) | `/proc/PID/stat` over the window |%n%n", ms(h.cpuMsPerRequest()), ms(d.cpuMsPerRequest()),
                Double.isNaN(h.cpuMsPerRequest() - d.cpuMsPerRequest()) ? "—" : signedMs(h.cpuMsPerRequest() - d.cpuMsPerRequest())));
    }

    /** Resamples of the bootstrap interval of the HTTP overhead. */
    static final int BOOTSTRAP_ROUNDS = 2000;

    /**
     * PASS or MISS when the whole interval is on one side of the target, else the side of the
     * estimate "(within error)"; "busy machine" added when the machine was busy.
     */
    static String verdict(double value, double[] interval, double atMost, boolean busy) {
        String v = value <= atMost ? "PASS" : "MISS";
        boolean clear = value <= atMost ? interval[1] <= atMost : interval[0] > atMost;
        String why = (clear ? "" : "within error") + (busy ? (clear ? "" : ", ") + "busy machine" : "");
        return v + (why.isEmpty() ? "" : " (" + why + ")");
    }

    /**
     * {@code HTTP p50 − direct p50 = diff (95 % interval lo to hi; N runs)} for one HTTP kind of the
     * overhead measurement; {@code bold} marks the difference, {@code runs} replaces the run count.
     */
    private static String overheadCell(LoadTest.Overhead o, Latencies kind, boolean bold, String runs) {
        double[] ci = o.diffIntervalMs(kind, BOOTSTRAP_ROUNDS, 1);
        String diff = signedMs(o.diffMs(kind));
        return String.format(Locale.ROOT, "HTTP %s − direct %s = %s (95 %% interval %s to %s; %s)", ms(kind.percentile(0.5) / 1e6),
                ms(o.direct().percentile(0.5) / 1e6), bold ? "**" + diff + "**" : diff, signedMs(ci[0]), signedMs(ci[1]),
                runs != null ? runs : String.format(Locale.ROOT, "%,d runs", kind.count()));
    }

    private static String overheadVerdict(Results r, Latencies kind) {
        LoadTest.Overhead o = r.overhead();
        return verdict(o.diffMs(kind), o.diffIntervalMs(kind, BOOTSTRAP_ROUNDS, 1), LoadTest.OVERHEAD_TARGET_MS, busy(r.busyBefore()));
    }

    /** The terminal lines. */
    static String summary(Results r) {
        StringBuilder sb = new StringBuilder();
        LoadTest.Overhead o = r.overhead();
        double[] ci = o.diffIntervalMs(o.http(), BOOTSTRAP_ROUNDS, 1);
        sb.append(String.format(Locale.ROOT, "HTTP overhead at p50 (N=1): %s - %s = %s  (95%% interval %s to %s; target <= %.0f ms)%n",
                ms(o.http().percentile(0.5) / 1e6), ms(o.direct().percentile(0.5) / 1e6), signedMs(o.diffMs(o.http())),
                signedMs(ci[0]), signedMs(ci[1]), LoadTest.OVERHEAD_TARGET_MS));
        sb.append(String.format(Locale.ROOT, "HTTP overhead at p50 (N=1), JSON through the JDK's HttpClient: %s - %s = %s%n",
                ms(o.jdk().percentile(0.5) / 1e6), ms(o.direct().percentile(0.5) / 1e6), signedMs(o.diffMs(o.jdk()))));
        double[] bci = o.diffIntervalMs(o.binary(), BOOTSTRAP_ROUNDS, 1);
        sb.append(String.format(Locale.ROOT, "HTTP overhead at p50 (N=1), binary tensor data: %s - %s = %s  (95%% interval %s to %s)%n",
                ms(o.binary().percentile(0.5) / 1e6), ms(o.direct().percentile(0.5) / 1e6), signedMs(o.diffMs(o.binary())),
                signedMs(bci[0]), signedMs(bci[1])));
        sb.append(String.format(Locale.ROOT, "failed requests: %d of %d%n", r.errors(), r.requests()));
        for (Phase p : r.phases()) {
            Latencies.Summary l = p.result().latencies().summary();
            sb.append(String.format(Locale.ROOT, "%-6s %-5s %-8s N=%-3d %8.1f req/s  p50 %s  p99 %s  cpu/req %s  errors %d%s%n",
                    p.path(), p.scenario().pkg, p.batching() == null ? "" : p.batching() ? "batch" : "no-batch",
                    p.result().clients(), p.result().throughput(), ms(l.p50()), ms(l.p99()), ms(p.cpuMsPerRequest()),
                    p.result().errors(),
                    p.result().firstError() == null ? "" : " (" + p.result().firstError() + ")"));
        }
        for (ServerRun s : r.servers()) {
            sb.append(String.format(Locale.ROOT, "server (batching %s): ready in %.2f s, %s after the load%n",
                    s.batching() ? "on" : "off", s.readySeconds(), memory(s.afterLoad())));
        }
        return sb.toString();
    }

    /** Whether other work kept the cores more than a quarter busy before the run (unknown: not busy). */
    static boolean busy(double busyBefore) {
        return busyBefore > 0.25;
    }

    static String ms(double v) {
        if (Double.isNaN(v)) {
            return "—";
        }
        double a = Math.abs(v);
        return String.format(Locale.ROOT, a >= 100 ? "%.0f ms" : a >= 10 ? "%.1f ms" : "%.2f ms", v);
    }

    static String signedMs(double v) {
        return (v >= 0 ? "+" : "−") + ms(Math.abs(v));
    }

    private static String secs(long millis) {
        return millis % 1000 == 0 ? Long.toString(millis / 1000) : String.format(Locale.ROOT, "%.1f", millis / 1000.0);
    }

    private static String memory(io.peft4j.bench.ServerProcess.Memory m) {
        return m == null ? "unknown (no /proc)" : String.format(Locale.ROOT, "%.0f / %.0f MiB", m.rssBytes() / 1048576.0,
                m.hwmBytes() / 1048576.0);
    }
}
