package io.peft4j.bench;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.testkit.TestAdapters;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The load test's measurement code, end to end on a tiny model: packages exported, {@code peft4j
 * serve} started as a process twice (batching off and on), every phase measured, the report
 * written; and its parts (metrics parsing, /proc memory, the closed-loop driver) on known input.
 */
class LoadTestTest {

    @Test
    void aShortRunOnATinyModelMeasuresEveryPhaseWithoutErrors(@TempDir Path tmp) throws Exception {
        Model base = TinyModels.cnn(3);
        Path baseFile = tmp.resolve("tiny.onnx");
        OnnxIO.write(base, baseFile);
        AdapterConfig config = AdapterConfig.lora(2, 4, List.of("conv1", "fc1", "fc2"));
        List<AdapterBundle> adapters = List.of(TestAdapters.random(base, config, 1, 0.3), TestAdapters.random(base, config, 2, 0.3));
        Path repo = tmp.resolve("repo");
        LoadTest.exportPackages(baseFile, adapters, repo);

        LoadTest.Settings s = new LoadTest.Settings("tiny_cnn", repo.resolve("side"), repo.resolve("multi"), List.of(1, 3),
                Duration.ofMillis(200), Duration.ofMillis(300), Duration.ofMillis(600), 400, 1, true, System.getProperty("java.class.path"),
                List.of("-Xmx256m"), tmp.resolve("logs"));
        LoadTest.Results r = LoadTest.run(s);

        assertEquals(0, r.errors(), () -> LoadReport.summary(r));
        assertEquals(2 * 2 + 2 * 2 * 2, r.phases().size(), "direct and HTTP (batching off, on) per package and client count");
        for (LoadTest.Phase p : r.phases()) {
            Latencies.Summary l = p.result().latencies().summary();
            assertTrue(l.count() > 0, p.toString());
            assertTrue(l.count() <= 400, "bounded in requests");
            assertTrue(l.p50() > 0 && l.p50() <= l.p95() && l.p95() <= l.p99() && l.p99() <= l.max(), l.toString());
            assertTrue(p.result().seconds() > 0 && p.result().seconds() <= 0.7, "bounded in time: " + p.result().seconds());
            if (p.path().equals("HTTP")) {
                // the server's counters are read as the window opens and after it closes; reading takes
                // a moment, so they cover most of the window's requests, never many more
                assertTrue(p.server().requests() > 0 && p.server().requests() <= l.count() + 2 * p.result().clients(),
                        "the server counted the requests of the window: " + p.server() + " for " + l.count());
                assertTrue(p.server().rowsPerPass() >= 1, p.toString());
            }
        }
        if (Files.isRegularFile(Path.of("/proc/self/stat"))) {
            assertTrue(r.phases().stream().allMatch(p -> p.cpuSeconds() >= 0), "CPU time from /proc never runs backwards");
            assertTrue(r.phases().stream().filter(p -> p.path().equals("HTTP")).mapToDouble(LoadTest.Phase::cpuSeconds).sum() > 0,
                    "the server used CPU time");
        }
        assertTrue(r.overhead().http().count() > 0 && r.overhead().direct().count() > 0 && r.overhead().binary().count() > 0);
        assertTrue(r.maxCheckError() < 1e-4);
        assertEquals(2, r.servers().size());
        for (LoadTest.ServerRun run : r.servers()) {
            assertTrue(run.readySeconds() > 0 && run.readySeconds() < 180, run.toString());
            if (Files.isDirectory(Path.of("/proc/self"))) {
                assertNotNull(run.afterLoad(), "VmRSS from /proc");
                assertTrue(run.afterLoad().hwmBytes() >= run.afterLoad().rssBytes() && run.afterLoad().rssBytes() > 10 << 20,
                        run.toString());
            }
        }
        assertTrue(r.codec().readMs() > 0 && r.codec().bodyBytes() > 64 * 4, r.codec().toString());
        assertTrue(r.codec().binaryReadMs() > 0 && r.codec().binaryBodyBytes() > 64 * 4
                && r.codec().binaryBodyBytes() < r.codec().bodyBytes(), r.codec().toString());
        assertTrue(r.inputShape().contains("x [1, 1, 8, 8]"), r.inputShape());

        String md = LoadReport.render(r, "bench/load --quick", Machine.describe(), true);
        assertTrue(md.startsWith("## Serving under load (issue 6): tiny_cnn"), md);
        assertTrue(md.contains("| Failed requests, all phases | 0 of "), md);
        assertTrue(md.contains("**Smoke run**"), md);
        assertTrue(md.contains("| HTTP | multi (a, b alternating) | on | 3 |"), md);
        assertTrue(md.contains("### Where the time of a request goes"), md);
        assertTrue(md.contains("| HTTP overhead at p50, binary tensor data"), md);
        assertTrue(md.contains("| Reading the same request as binary tensor data"), md);
        // the three overhead cells: HTTP p50 − direct p50 = difference (95 % interval; runs)
        String cell = "HTTP [0-9.]+ [mµ]?s − direct [0-9.]+ [mµ]?s = %s[+−][0-9.]+ [mµ]?s%s \\(95 %% interval [+−][0-9.]+ [mµ]?s to "
                + "[+−][0-9.]+ [mµ]?s; [0-9,]+ %sruns\\)";
        assertTrue(java.util.regex.Pattern.compile("\\| " + String.format(cell, "\\*\\*", "\\*\\*", "and [0-9,]+ ")
                + " \\| ≤ 2 ms \\| \\*\\*(PASS|MISS)").matcher(md).find(), md);
        assertTrue(java.util.regex.Pattern.compile("binary tensor data .*\\| " + String.format(cell, "\\*\\*", "\\*\\*", "")
                + " \\| ≤ 2 ms \\|").matcher(md).find(), md);
        assertTrue(java.util.regex.Pattern.compile("HttpClient`.*\\| " + String.format(cell, "", "", "") + " \\| — \\| — \\|")
                .matcher(md).find(), md);
        assertTrue(LoadReport.summary(r).contains("HTTP overhead at p50"));
        Path docs = tmp.resolve("BENCHMARKS.md");
        Files.writeString(docs, "# Benchmarks\n");
        MarkedSections.splice(docs, LoadTest.MARKER, "tiny_cnn", md);
        assertTrue(Files.readString(docs).contains("<!-- load-test:tiny_cnn:end -->"));
    }

    @Test
    void badSettingsAndPackagesAreRefusedWithTheirReason(@TempDir Path tmp) {
        Path p = tmp.resolve("x");
        Peft4jException clients = assertThrows(Peft4jException.class, () -> new LoadTest.Settings("m", p, p, List.of(0), Duration.ZERO,
                Duration.ZERO, Duration.ofSeconds(1), 10, 1, true, "", List.of(), tmp));
        assertTrue(clients.getMessage().contains("--clients"), clients.getMessage());
        Peft4jException measure = assertThrows(Peft4jException.class, () -> new LoadTest.Settings("m", p, p, List.of(1), Duration.ZERO,
                Duration.ZERO, Duration.ZERO, 10, 1, true, "", List.of(), tmp));
        assertTrue(measure.getMessage().contains("--seconds"), measure.getMessage());
        Model base = TinyModels.cnn(3);
        AdapterBundle one = TestAdapters.random(base, AdapterConfig.lora(2, 4, List.of("fc1")), 1, 0.3);
        Peft4jException count = assertThrows(Peft4jException.class, () -> LoadTest.exportPackages(tmp.resolve("b.onnx"),
                List.of(one), tmp.resolve("repo")));
        assertTrue(count.getMessage().contains("needs 2 adapters"), count.getMessage());
    }

    @Test
    void serverMetricsAreSummedPerModelOverSuccessfulRequests() {
        String text = """
                # HELP peft4j_request_seconds inference request latency
                # TYPE peft4j_request_seconds histogram
                peft4j_request_seconds_bucket{adapter="a",model="side",status="200",le="0.001"} 0
                peft4j_request_seconds_count{adapter="a",model="side",status="200"} 10
                peft4j_request_seconds_sum{adapter="a",model="side",status="200"} 0.5
                peft4j_request_seconds_count{adapter="b",model="side",status="200"} 5
                peft4j_request_seconds_sum{adapter="b",model="side",status="200"} 0.25
                peft4j_request_seconds_count{adapter="zz",model="side",status="404"} 3
                peft4j_request_seconds_sum{adapter="zz",model="side",status="404"} 0.003
                peft4j_request_seconds_count{adapter="a",model="multi",status="200"} 7
                peft4j_inference_seconds_count{model="side"} 6
                peft4j_inference_seconds_sum{model="side"} 0.3
                peft4j_batch_rows_count{model="side"} 6
                peft4j_batch_rows_sum{model="side"} 15.0
                """;
        LoadTest.ServerStats s = LoadTest.parseMetrics(text, "side");
        assertEquals(15, s.requests(), 1e-12);
        assertEquals(50.0, s.requestMeanMs(), 1e-9);
        assertEquals(50.0, s.passMeanMs(), 1e-9);
        assertEquals(2.5, s.rowsPerPass(), 1e-12);
        LoadTest.ServerStats later = new LoadTest.ServerStats(1.75, 25, 0.5, 8, 20);
        LoadTest.ServerStats d = later.minus(s);
        assertEquals(10, d.requests(), 1e-9);
        assertEquals(100.0, d.requestMeanMs(), 1e-9);
        assertEquals(2.5, d.rowsPerPass(), 1e-9);
        assertTrue(Double.isNaN(LoadTest.parseMetrics(text, "other").requestMeanMs()));
    }

    @Test
    void residentMemoryComesFromProcStatus(@TempDir Path tmp) throws Exception {
        Path status = tmp.resolve("status");
        Files.writeString(status, "Name:\tjava\nVmPeak:\t 9000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t40\n");
        ServerProcess.Memory m = ServerProcess.memory(status);
        assertEquals(100L << 20, m.rssBytes());
        assertEquals(200L << 20, m.hwmBytes());
        Files.writeString(status, "Name:\tjava\nVmRSS:\t 12 kB\n");
        assertNull(ServerProcess.memory(status), "no VmHWM: unknown, not a guess");
        assertNull(ServerProcess.memory(tmp.resolve("missing")));
        Path stat = tmp.resolve("stat");
        Files.writeString(stat, "4242 (java (serve) x) S 1 4242 4242 0 -1 4194560 91 0 0 0 250 75 0 0 20 0 40 0 123 456 789\n");
        assertEquals(3.25, ServerProcess.cpuSeconds(stat), 1e-12, "utime + stime after the last ')', at 100 ticks a second");
        assertTrue(Double.isNaN(ServerProcess.cpuSeconds(tmp.resolve("missing"))));
    }

    @Test
    void theDriverStopsAtItsRequestBudgetAndCountsFailures() throws Exception {
        int[] calls = new int[2];
        LoadDriver.Result r = LoadDriver.run(2, Duration.ZERO, Duration.ofSeconds(30), 50, c -> () -> {
            synchronized (calls) {
                calls[c]++;
            }
            Thread.sleep(1);
            if (c == 1) {
                throw new IllegalStateException("client 1 fails");
            }
        });
        assertTrue(r.seconds() < 10, "the budget closed the window early: " + r.seconds());
        assertTrue(r.latencies().count() <= 50 && r.latencies().count() + r.errors() <= 50, r.toString());
        assertTrue(r.errors() > 0 && r.firstError().contains("client 1 fails"), r.toString());
        assertTrue(r.latencies().count() > 0);
        LoadDriver.Result timed = LoadDriver.run(1, Duration.ofMillis(50), Duration.ofMillis(200), 1_000_000, c -> () -> Thread.sleep(5));
        assertTrue(timed.seconds() > 0.15 && timed.seconds() <= 0.21, "the window is the measurement time: " + timed.seconds());
        assertTrue(timed.latencies().count() >= 10 && timed.latencies().percentile(0.5) >= 5_000_000, timed.toString());
        assertThrows(IllegalArgumentException.class, () -> LoadDriver.run(0, Duration.ZERO, Duration.ofSeconds(1), 1, c -> () -> { }));
    }
}
