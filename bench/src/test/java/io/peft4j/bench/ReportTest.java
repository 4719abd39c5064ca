package io.peft4j.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The report's statistics, verdicts and Markdown, on JMH JSON written here (no benchmark runs). */
class ReportTest {

    /** One JMH result entry for a paired benchmark: per-iteration medians in ms, one fork. */
    private static String paired(String benchmark, String workload, double[] candidateMs, double[] baselineMs) {
        StringBuilder c = new StringBuilder();
        StringBuilder b = new StringBuilder();
        StringBuilder runs = new StringBuilder();
        for (int i = 0; i < candidateMs.length; i++) {
            String sep = i == 0 ? "" : ",";
            c.append(sep).append(String.format(Locale.ROOT, "%.1f", candidateMs[i] * 1e6));
            b.append(sep).append(String.format(Locale.ROOT, "%.1f", baselineMs[i] * 1e6));
            runs.append(sep).append(10);
        }
        return """
                {"jmhVersion":"1.37","benchmark":"io.peft4j.bench.%s","mode":"avgt","forks":1,
                 "warmupIterations":1,"warmupTime":"1 s","measurementIterations":%d,"measurementTime":"1 s",
                 "params":{"workload":"%s"},
                 "primaryMetric":{"score":20.0,"scoreError":"NaN","scoreUnit":"ms/op","rawData":[[20.0]]},
                 "secondaryMetrics":{
                   "candidateMedianNanos":{"score":1,"scoreUnit":"#","rawData":[[%s]]},
                   "baselineMedianNanos":{"score":1,"scoreUnit":"#","rawData":[[%s]]},
                   "candidateRuns":{"score":1,"scoreUnit":"#","rawData":[[%s]]},
                   "baselineRuns":{"score":1,"scoreUnit":"#","rawData":[[%s]]}}}
                """.formatted(benchmark, candidateMs.length, workload, c, b, runs, runs);
    }

    private static String single(String benchmark, String workload, double score, double error, String unit) {
        return """
                {"jmhVersion":"1.37","benchmark":"io.peft4j.bench.%s","mode":"avgt","forks":2,
                 "warmupIterations":1,"warmupTime":"1 s","measurementIterations":4,"measurementTime":"1 s",
                 "params":{"workload":"%s"},
                 "primaryMetric":{"score":%s,"scoreError":%s,"scoreUnit":"%s","rawData":[[1,2],[3,4]]},
                 "secondaryMetrics":{}}
                """.formatted(benchmark, workload, score, error, unit);
    }

    private static double[] times(double base, double... relative) {
        double[] v = new double[relative.length];
        for (int i = 0; i < v.length; i++) {
            v[i] = base * relative[i];
        }
        return v;
    }

    private static List<Report.Result> results() throws Exception {
        double[] base = {10, 10.2, 9.9, 10.1, 10, 10.3, 9.8, 10};
        List<String> entries = new ArrayList<>();
        // merged: 0.5 % slower, tight → PASS
        entries.add(paired("LatencyBench.mergedVsBase", "resnet18", times(1, 10.05, 10.25, 9.95, 10.15, 10.05, 10.35, 9.85, 10.05),
                base));
        // side: 20 % slower → MISS
        entries.add(paired("LatencyBench.sideVsMerged", "resnet18", times(1.2, base), base));
        // multi: throughput around 0.8 with a wide spread → within error
        entries.add(paired("LatencyBench.multiVsSide", "resnet18", times(10, 1.1, 1.4, 1.25, 1.3, 1.2, 1.35, 1.15, 1.28), base));
        // switching: +0.2 ms per run → PASS against 1 ms + copy
        entries.add(paired("SwitchBench.switchVsKeep", "resnet18", times(1, 10.2, 10.4, 10.1, 10.3, 10.2, 10.5, 10.0, 10.2), base));
        entries.add(single("SwitchBench.copyAdapterTensors", "resnet18", 30.0, 2.0, "us/op"));
        entries.add(single("SwitchBench.createAdapter", "resnet18", 100.0, 5.0, "us/op"));
        entries.add(single("SwitchBench.reloadSession", "resnet18", 150.0, 10.0, "ms/op"));
        JsonNode root = new ObjectMapper().readTree("[" + String.join(",", entries) + "]");
        return Report.read(root);
    }

    @Test
    void confidenceIntervalIsStudentsTAtJmhsLevel() {
        Estimate e = Estimate.of(List.of(1.0, 2.0, 3.0));
        assertEquals(2.0, e.value(), 1e-12);
        // t(0.9995, 2 dof) = 31.5991, sd = 1, n = 3
        assertEquals(31.5991 / Math.sqrt(3), e.error(), 1e-3);
        assertFalse(Estimate.of(List.of(5.0)).hasError());
    }

    @Test
    void pairedResultsAreRatiosOfPerIterationMedians() throws Exception {
        Report.Result side = Report.find(results(), "LatencyBench.sideVsMerged", "resnet18").orElseThrow();
        assertEquals(1.2, side.paired().ratio().value(), 1e-9);
        assertEquals(0.0, side.paired().ratio().error(), 1e-9);
        assertEquals(10.0375 * 1.2, side.paired().candidateMs().value(), 1e-6);
        assertEquals(160, side.paired().runs());
    }

    @Test
    void verdictsFollowTheIntervalAndTheTarget() throws Exception {
        Map<String, String> v = new java.util.HashMap<>();
        for (Report.Row r : Report.judge(results())) {
            v.put(r.check().benchmark(), r.verdict());
        }
        assertEquals("PASS", v.get("LatencyBench.mergedVsBase"));
        assertEquals("MISS", v.get("LatencyBench.sideVsMerged"));
        assertTrue(v.get("LatencyBench.multiVsSide").endsWith("(within error)"), v.get("LatencyBench.multiVsSide"));
        assertEquals("PASS", v.get("SwitchBench.switchVsKeep"));
        assertEquals("PASS", Report.atMost(new Estimate(1.0, 0.01, 8), 1.02));
        assertEquals("MISS (within error)", Report.atMost(new Estimate(1.03, 0.02, 8), 1.02));
        assertEquals("PASS (within error)", Report.atLeast(new Estimate(0.81, 0.05, 8), 0.8));
        assertEquals("MISS", Report.atLeast(new Estimate(0.5, 0.05, 8), 0.8));
        assertEquals("PASS (no error estimate)", Report.atMost(new Estimate(1.0, Double.NaN, 1), 1.02));
    }

    @Test
    void markdownStatesCommandMachineAndEveryComparison() throws Exception {
        Report.Context ctx = new Report.Context("bench/run --only X", ZonedDateTime.of(2026, 1, 2, 3, 4, 0, 0, ZoneOffset.UTC),
                125, "0.10 0.20 0.30", Map.of("CPU", "Test CPU | 9000"), List.of("a note"), Map.of());
        String md = Report.render(results(), ctx);
        assertTrue(md.startsWith("# Benchmarks\n"), md);
        assertTrue(md.contains("`bench/run --only X`"), md);
        assertTrue(md.contains("2026-01-02 03:04 UTC"), md);
        assertTrue(md.contains("2 min 5 s"), md);
        assertTrue(md.contains("Test CPU \\| 9000"), "table cells are escaped: " + md);
        assertTrue(md.contains("- a note"), md);
        assertTrue(md.contains("| Side (r = 8, OrtLoraAdapter active) vs merged latency | resnet18 |"), md);
        assertTrue(md.contains("1.200 ± 0.000 ×"), md);
        assertTrue(md.contains("**MISS**"), md);
        assertTrue(md.contains("< 1 ms + copy (30.0 µs)"), md);
        assertTrue(md.contains("% of a session reload"), md);
        assertFalse(md.contains("minilm"), "only workloads that ran are described: " + md);
    }
}
