package io.peft4j.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The Training section on JMH JSON, PyTorch and memory files written here (nothing runs). */
class TrainingReportTest {

    @TempDir
    Path dir;

    private static String paired(String benchmark, String model, double candidateMs, double baselineMs) {
        StringBuilder c = new StringBuilder();
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < 4; i++) {
            String sep = i == 0 ? "" : ",";
            double wobble = 1 + 0.01 * (i - 1.5);
            c.append(sep).append(String.format(Locale.ROOT, "%.1f", candidateMs * wobble * 1e6));
            b.append(sep).append(String.format(Locale.ROOT, "%.1f", baselineMs * wobble * 1e6));
        }
        return """
                {"jmhVersion":"1.37","benchmark":"io.peft4j.bench.%s","mode":"avgt","forks":1,
                 "warmupIterations":1,"warmupTime":"2 s","measurementIterations":4,"measurementTime":"2 s",
                 "params":{"model":"%s"},
                 "primaryMetric":{"score":20.0,"scoreError":"NaN","scoreUnit":"ms/op","rawData":[[20.0]]},
                 "secondaryMetrics":{
                   "candidateMedianNanos":{"score":1,"scoreUnit":"#","rawData":[[%s]]},
                   "baselineMedianNanos":{"score":1,"scoreUnit":"#","rawData":[[%s]]},
                   "candidateRuns":{"score":1,"scoreUnit":"#","rawData":[[9,9,9,9]]},
                   "baselineRuns":{"score":1,"scoreUnit":"#","rawData":[[9,9,9,9]]}}}
                """.formatted(benchmark, model, c, b);
    }

    private static List<Report.Result> results() throws Exception {
        String json = "[" + String.join(",",
                paired("TrainBench.backwardVsForward", "resnet18", 90, 30),
                paired("TrainBench.stepVsForward", "resnet18", 92, 30),
                paired("TrainBench.backwardVsForward", "mobilenet_v3_small", 70, 15),
                paired("TrainBench.stepVsForward", "mobilenet_v3_small", 72, 15)) + "]";
        return Report.read(new ObjectMapper().readTree(json));
    }

    @Test
    void comparesWithPyTorchMeasuredOrStatedAndShowsMemory() throws Exception {
        StringBuilder times = new StringBuilder();
        for (int i = 0; i < 30; i++) {
            times.append(i == 0 ? "" : ",").append(100 + i % 5);
        }
        Files.writeString(dir.resolve("pytorch-resnet18.json"), """
                {"model":"resnet18","torch":"1.13.0a0","threads":2,"warmup":5,"steps":30,"times_ms":[%s]}
                """.formatted(times));
        Files.writeString(dir.resolve("memory.jsonl"), """
                {"model":"resnet18","mode":"forward","sessionPeakKiB":102400,"parameters":0,"javaStateBytes":0,"peakReset":true}
                {"model":"resnet18","mode":"lora","sessionPeakKiB":204800,"parameters":1000,"javaStateBytes":16000,"peakReset":true}
                {"model":"resnet18","mode":"full","sessionPeakKiB":307200,"parameters":2000000,"javaStateBytes":32000000,"peakReset":true}
                {"model":"mobilenet_v3_small","mode":"full","sessionPeakKiB":1024,"parameters":5,"javaStateBytes":80,"frozenGroupedConvWeights":9,"frozenGroupedConvParameters":1234,"peakReset":false}
                """);
        List<Report.Result> rs = results();
        assertEquals("", rs.get(0).workload(), "the training benchmarks' parameter is model, not workload");
        assertEquals("resnet18", TrainingReport.workloadOrModel(rs.get(0)));

        List<TrainingReport.Row> rows = TrainingReport.rows(rs, dir);
        assertEquals(2, rows.size());
        TrainingReport.Row resnet = rows.get(0);
        assertTrue(resnet.pytorch().measured());
        assertEquals(102, resnet.pytorch().ms().value(), 1e-9, "mean of the block medians");
        assertEquals(92.0 / 102, resnet.ratio().value(), 1e-3);
        assertEquals("PASS", resnet.verdict());
        TrainingReport.Row mobilenet = rows.get(1);
        assertFalse(mobilenet.pytorch().measured());
        assertEquals(60, mobilenet.pytorch().ms().value(), 1e-9, "the issue's figure");
        assertTrue(mobilenet.verdict().startsWith("MISS"), mobilenet.verdict());

        StringBuilder md = new StringBuilder();
        TrainingReport.render(md, rs, dir);
        String s = md.toString();
        assertTrue(s.contains("## Training"), s);
        assertTrue(s.contains("| resnet18 | 30.0 ± "), s);
        assertTrue(s.contains("(stated)"), s);
        assertTrue(s.contains("issue 4's figure"), s);
        assertTrue(s.contains("| resnet18 | LoRA r = 8 | 1,000 | 200.0 MiB |"), s);
        assertTrue(s.contains("| 0.61 × |"), "LoRA total ÷ full total: " + s);
        assertTrue(s.contains("9 grouped (depthwise) Convs frozen (1,234 parameters)"), s);
        assertTrue(s.contains("could not be reset"), s);
        assertTrue(TrainingReport.summary(rs, dir).contains("LoRA training step (+ AdamW) vs PyTorch (measured)"));
    }

    @Test
    void nothingWhenTrainingDidNotRun() {
        StringBuilder md = new StringBuilder();
        TrainingReport.render(md, List.of(), dir);
        assertEquals("", md.toString());
    }

    @Test
    void ratioCombinesRelativeErrors() {
        Estimate r = TrainingReport.ratio(new Estimate(90, 9, 8), new Estimate(100, 10, 6));
        assertEquals(0.9, r.value(), 1e-12);
        assertEquals(0.9 * Math.sqrt(0.02), r.error(), 1e-12);
        assertFalse(TrainingReport.ratio(new Estimate(90, Double.NaN, 1), new Estimate(100, Double.NaN, 0)).hasError());
    }
}
