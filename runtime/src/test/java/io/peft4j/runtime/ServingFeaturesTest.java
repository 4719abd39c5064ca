package io.peft4j.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.image.Images;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TestAdapters;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.devices.Rows;
import io.peft4j.devices.ort.OrtBackend;
import io.peft4j.exporter.ExportOptions;
import io.peft4j.exporter.Exporter;
import io.peft4j.exporter.NamedAdapter;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Dynamic batching over HTTP (concurrent single-row requests with different adapters, each answer
 * checked against the merged exports), the Prometheus metrics, and image classification.
 */
class ServingFeaturesTest {

    private static final List<String> TARGETS = List.of("conv1", "fc1", "fc2");
    private static final List<String> LABELS = List.of("scratch", "dent", "ok");

    @TempDir
    static Path tmp;

    static Path repo;
    static Model base;
    static Peft4jServer server;
    static Http http;

    @BeforeAll
    static void start() {
        repo = tmp.resolve("repo");
        base = TinyModels.cnn(1);
        AdapterBundle a = TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 11, 0.3);
        AdapterBundle b = TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 12, 0.3);
        List<NamedAdapter> ab = List.of(new NamedAdapter("a", a), new NamedAdapter("b", b));
        Exporter.export(base, ab, ExportOptions.of(Manifest.Mode.multi), repo.resolve("mm"));
        Exporter.export(base, ab, ExportOptions.of(Manifest.Mode.side).withLabels(LABELS)
                .withPreprocessing(new Manifest.Preprocessing("x", 8, 8, 1, List.of(0.5), List.of(0.25))), repo.resolve("cls"));
        Exporter.export(base, List.of(ab.get(0)), ExportOptions.of(Manifest.Mode.merged), tmp.resolve("ma"));
        Exporter.export(base, List.of(ab.get(1)), ExportOptions.of(Manifest.Mode.merged), tmp.resolve("mb"));
        server = Peft4jServer.start(Peft4jServer.Options.of(repo)
                .withProperty("peft4j.scheduling.batching", true)
                .withProperty("peft4j.scheduling.max-delay-micros", 100_000)
                .withProperty("peft4j.scheduling.workers", 1)
                .withProperty("peft4j.models.cls.scheduling.batching", false));
        http = new Http(server.uri(), null);
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.close();
        }
    }

    private static double metric(String text, String name, String labels) {
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(name) + "\\{" + labels + "\\} (\\S+)$").matcher(text);
        return m.find() ? Double.parseDouble(m.group(1)) : Double.NaN;
    }

    @Test
    void concurrentRequestsShareBatchesAndKeepTheirAdapters() throws Exception {
        Tensor x = TinyModels.input(5, 12);
        Tensor y0 = Ort.run(base, Map.of("x", x)).get("logits");
        Tensor ya = Ort.run(tmp.resolve("ma/model.onnx"), Map.of("x", x)).get("logits");
        Tensor yb = Ort.run(tmp.resolve("mb/model.onnx"), Map.of("x", x)).get("logits");
        String[] adapters = {"a", null, "b"};
        ExecutorService pool = Executors.newFixedThreadPool(12);
        try {
            List<Future<Http.Reply>> replies = new ArrayList<>();
            for (int r = 0; r < 12; r++) {
                Map<String, Object> p = new HashMap<>();
                if (adapters[r % 3] != null) {
                    p.put("adapter", adapters[r % 3]);
                }
                String body = Http.inferBody("x", Rows.gather(x, new int[] {r}), p, "row-" + r);
                replies.add(pool.submit(() -> http.post("/v2/models/mm/infer", body)));
            }
            for (int r = 0; r < 12; r++) {
                Http.Reply reply = replies.get(r).get(60, TimeUnit.SECONDS);
                assertEquals(200, reply.status(), reply.toString());
                assertEquals("row-" + r, reply.json().get("id").asText());
                Tensor want = Rows.gather(adapters[r % 3] == null ? y0 : adapters[r % 3].equals("a") ? ya : yb, new int[] {r});
                double d = Ort.maxRelDiff(want, Http.output(reply, 0));
                assertTrue(d < 1e-5, "row " + r + " (" + adapters[r % 3] + "): " + d);
            }
        } finally {
            pool.shutdownNow();
        }
        String metrics = http.get("/metrics").raw().body();
        double passes = metric(metrics, "peft4j_batch_rows_count", "model=\"mm\"");
        double rows = metric(metrics, "peft4j_batch_rows_sum", "model=\"mm\"");
        System.out.printf("dynamic batching: 12 concurrent single-row requests ran in %.0f passes%n", passes);
        assertEquals(12.0, rows, metrics);
        assertTrue(passes < 12, "some requests shared a pass: " + passes + " passes");
    }

    @Test
    void metricsArePrometheusText() {
        http.post("/v2/models/mm/infer", Http.inferBody("x", TinyModels.input(1, 1), Map.of("adapter", "b"), null));
        http.post("/v2/models/mm/infer", Http.inferBody("x", TinyModels.input(1, 1), Map.of("adapter", "nope"), null));
        Http.Reply r = http.get("/metrics");
        assertEquals(200, r.status());
        assertTrue(r.raw().headers().firstValue("Content-Type").orElse("").startsWith("text/plain"));
        String text = r.raw().body();
        assertTrue(metric(text, "peft4j_request_seconds_count", "adapter=\"b\",model=\"mm\",status=\"200\"") >= 1, text);
        assertTrue(metric(text, "peft4j_request_seconds_count", "adapter=\"unknown\",model=\"mm\",status=\"404\"") >= 1, text);
        assertTrue(text.contains("peft4j_request_seconds_bucket{adapter=\"b\",model=\"mm\",status=\"200\",le=\"0.05\"}"), text);
        assertTrue(text.contains("peft4j_queue_depth{model=\"mm\"}"), text);
    }

    @Test
    void classifyAppliesThePackagesPreprocessing() throws Exception {
        BufferedImage img = new BufferedImage(16, 16, BufferedImage.TYPE_BYTE_GRAY);
        for (int i = 0; i < 16; i++) {
            for (int j = 0; j < 16; j++) {
                img.getRaster().setSample(i, j, 0, (i * 16 + j * 7) % 256);
            }
        }
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        ImageIO.write(img, "png", png);
        Http.Reply r = http.postBytes("/v2/models/cls/classify?adapter=b&top=2", png.toByteArray(), "image/png");
        assertEquals(200, r.status(), r.toString());
        JsonNode labels = r.json().get("labels");
        assertEquals(2, labels.size());
        Tensor x = Images.batch(List.of(Images.decode(png.toByteArray(), "png")), 8, 8, 1, new float[] {0.5f}, new float[] {0.25f});
        float[] logits;
        try (OrtBackend direct = OrtBackend.open(repo.resolve("cls"))) {
            logits = direct.run(Map.of("x", x), "b").get("logits").toFloatArray();
        }
        double[] p = ClassifyController.softmax(logits);
        int best = 0;
        for (int c = 1; c < p.length; c++) {
            best = p[c] > p[best] ? c : best;
        }
        assertEquals(LABELS.get(best), labels.get(0).get("label").asText());
        assertEquals(p[best], labels.get(0).get("score").asDouble(), 1e-6);
        assertEquals(1, r.json().get("adapter_version").asLong());
        assertTrue(r.json().get("latency_ms").asDouble() > 0);

        Http.Reply notImage = http.postBytes("/v2/models/cls/classify", new byte[] {1, 2, 3}, "image/png");
        assertEquals(400, notImage.status(), notImage.toString());
        Http.Reply noPre = http.postBytes("/v2/models/mm/classify", png.toByteArray(), "image/png");
        assertEquals(400, noPre.status(), noPre.toString());
        assertTrue(noPre.error().contains("no image preprocessing"), noPre.error());
        assertArrayEquals(new long[] {1, 1, 8, 8}, x.shape());
        String text = http.get("/metrics").raw().body();
        assertTrue(metric(text, "peft4j_request_seconds_count", "adapter=\"b\",model=\"cls\",status=\"200\"") >= 1, text);
        assertTrue(metric(text, "peft4j_request_seconds_count", "adapter=\"base\",model=\"cls\",status=\"400\"") >= 1, text);
    }
}
