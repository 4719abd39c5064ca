package io.peft4j.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TestAdapters;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.devices.ort.OrtBackend;
import io.peft4j.devices.Rows;
import io.peft4j.exporter.ExportOptions;
import io.peft4j.exporter.Exporter;
import io.peft4j.exporter.NamedAdapter;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The service end to end over HTTP on loopback: one server for the class on a repository of
 * exported packages (side and multi with adapters a and b, merged a and b), a real HTTP client.
 * Results are compared with ONNX Runtime run directly and with the merged exports.
 */
class ServerIntegrationTest {

    private static final double TOL = 1e-5;
    private static final String TOKEN = "s3cret-token";
    private static final List<String> TARGETS = List.of("conv1", "fc1", "fc2");

    @TempDir
    static Path tmp;

    static Path repo;
    static Model base;
    static AdapterBundle a;
    static AdapterBundle b;
    static Tensor x;
    static Peft4jServer server;
    static Http http;
    static Http admin;

    @BeforeAll
    static void start() {
        repo = tmp.resolve("repo");
        base = TinyModels.cnn(1);
        a = TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 11, 0.3);
        b = TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 12, 0.3);
        List<NamedAdapter> ab = List.of(new NamedAdapter("a", a), new NamedAdapter("b", b));
        Exporter.export(base, ab, ExportOptions.of(Manifest.Mode.side), repo.resolve("m"));
        Exporter.export(base, ab, ExportOptions.of(Manifest.Mode.multi), repo.resolve("mm"));
        Exporter.export(base, List.of(ab.get(0)), ExportOptions.of(Manifest.Mode.merged), repo.resolve("ma"));
        Exporter.export(base, List.of(ab.get(1)), ExportOptions.of(Manifest.Mode.merged), repo.resolve("mb"));
        a.write(repo.resolve("bundles/a"));
        b.write(repo.resolve("bundles/b"));
        x = TinyModels.input(5, 4);
        server = Peft4jServer.start(Peft4jServer.Options.of(repo).withToken(TOKEN)
                .withProperty("peft4j.max-upload-bytes", 8192)
                .withProperty("micronaut.server.max-request-size", "1MB"));
        http = new Http(server.uri(), null);
        admin = http.withToken(TOKEN);
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.close();
        }
    }

    private static Tensor infer(String model, Map<String, Object> parameters) {
        Http.Reply r = http.post("/v2/models/" + model + "/infer", Http.inferBody("x", x, parameters, null));
        assertEquals(200, r.status(), r.toString());
        return Http.output(r, 0);
    }

    private static Tensor merged(String model) {
        return Ort.run(repo.resolve(model).resolve("model.onnx"), Map.of("x", x)).get("logits");
    }

    private static void assertClose(Tensor want, Tensor got, String what) {
        assertArrayEquals(want.shape(), got.shape(), what);
        double d = Ort.maxRelDiff(want, got);
        assertTrue(d <= TOL, what + ": max relative difference " + d);
    }

    private static void assertError(Http.Reply r, int status, String fragment) {
        assertEquals(status, r.status(), r.toString());
        assertNotNull(r.error(), "an {\"error\": ...} body: " + r);
        assertTrue(r.error().contains(fragment), "'" + r.error() + "' should mention '" + fragment + "'");
    }

    private static void assertStillServing() {
        assertEquals(200, http.get("/v2/health/ready").status());
        assertClose(merged("ma"), infer("m", Map.of("adapter", "a")), "a good request after a bad one");
    }

    @Test
    void healthMetadataAndIndex() {
        assertEquals(200, http.get("/v2/health/live").status());
        Http.Reply ready = http.get("/v2/health/ready");
        assertEquals(200, ready.status());
        assertTrue(ready.json().get("ready").asBoolean());
        assertEquals("peft4j", http.get("/v2").json().get("name").asText());
        JsonNode meta = http.get("/v2/models/m").json();
        assertEquals("m", meta.get("name").asText());
        assertEquals("x", meta.get("inputs").get(0).get("name").asText());
        assertEquals("FP32", meta.get("inputs").get(0).get("datatype").asText());
        assertEquals("[-1,1,8,8]", meta.get("inputs").get(0).get("shape").toString());
        assertEquals("side", meta.get("parameters").get("mode").asText());
        assertEquals(200, http.get("/v2/models/m/ready").status());
        JsonNode index = http.get("/v2/repository/index").json();
        List<String> names = new ArrayList<>();
        index.forEach(e -> {
            names.add(e.get("name").asText());
            assertEquals("READY", e.get("state").asText(), e.toString());
        });
        assertTrue(names.containsAll(List.of("m", "mm", "ma", "mb")), names.toString());
        assertEquals(200, http.post("/v2/repository/index", "{}").status());
    }

    @Test
    void inferEqualsOnnxRuntimeRunDirectly() {
        Http.Reply r = http.post("/v2/models/m/infer", Http.inferBody("x", x, Map.of("adapter", "a"), "req-42"));
        assertEquals(200, r.status(), r.toString());
        assertEquals("req-42", r.json().get("id").asText());
        assertEquals("m", r.json().get("model_name").asText());
        assertEquals("1", r.json().get("model_version").asText());
        assertEquals("logits", r.json().get("outputs").get(0).get("name").asText());
        assertEquals("FP32", r.json().get("outputs").get(0).get("datatype").asText());
        try (OrtBackend direct = OrtBackend.open(repo.resolve("m"))) {
            Tensor want = direct.run(Map.of("x", x), "a").get("logits");
            Tensor got = Http.output(r, 0);
            assertArrayEquals(want.toFloatArray(), got.toFloatArray(), "HTTP must not change a single float");
        }
        assertClose(Ort.run(base, Map.of("x", x)).get("logits"), infer("m", Map.of()), "no adapter = base");
        byte[] raw = Http.inferBody("x", x, Map.of("adapter", "a"), null).getBytes(java.nio.charset.StandardCharsets.UTF_8);
        Http.Reply asForm = http.postBytes("/v2/models/m/infer", raw, "application/x-www-form-urlencoded");
        assertEquals(200, asForm.status(), "curl -d without a Content-Type: " + asForm);
        Http.Reply versioned = http.postBytes("/v2/models/m/versions/1/infer", raw, "application/json");
        assertEquals(200, versioned.status(), versioned.toString());
        Http.Reply sel = http.post("/v2/models/m/infer", Http.inferBody("x", x, Map.of(), null)
                .replace("\"inputs\"", "\"outputs\":[{\"name\":\"logits\"}],\"inputs\""));
        assertEquals(1, sel.json().get("outputs").size(), sel.toString());
    }

    @Test
    void eachRequestGetsItsOwnAdaptersResult() {
        assertClose(merged("ma"), infer("m", Map.of("adapter", "a")), "side a vs merged a");
        assertClose(merged("mb"), infer("m", Map.of("adapter", "b")), "side b vs merged b");
        assertClose(merged("mb"), infer("mm", Map.of("adapter", "b")), "multi b vs merged b");
        List<String> rows = Arrays.asList("a", null, "b", "a");
        Map<String, Object> p = new HashMap<>();
        p.put("adapters", rows);
        Tensor y0 = Ort.run(base, Map.of("x", x)).get("logits");
        for (String model : List.of("mm", "m")) {
            Tensor got = infer(model, p);
            for (int r = 0; r < rows.size(); r++) {
                Tensor want = rows.get(r) == null ? y0 : merged(rows.get(r).equals("a") ? "ma" : "mb");
                assertClose(Rows.gather(want, new int[] {r}), Rows.gather(got, new int[] {r}), model + " row " + r);
            }
        }
    }

    @Test
    void badRequestsGetTheRight4xxAndTheServerKeepsServing() {
        assertError(http.post("/v2/models/m/infer", "{\"inputs\": [ {\"name\": "), 400, "malformed JSON");
        assertStillServing();
        assertError(http.post("/v2/models/m/infer", "[1, 2]"), 400, "JSON object");
        String good = Http.inferBody("x", x, Map.of(), null);
        assertError(http.post("/v2/models/m/infer", good.replace("[4,1,8,8]", "[4,1,8,9]")), 400, "data elements");
        Tensor wrong = TinyModels.randn(new java.util.Random(1), 2, 1, 4, 4);
        assertError(http.post("/v2/models/m/infer", Http.inferBody("x", wrong, Map.of(), null)), 400, "[-1, 1, 8, 8]");
        assertError(http.post("/v2/models/m/infer", good.replace("\"FP32\"", "\"FP64\"")), 400, "takes FP32");
        assertError(http.post("/v2/models/m/infer", good.replace("\"FP32\"", "\"COMPLEX\"")), 400, "not supported");
        assertError(http.post("/v2/models/m/infer", good.replace("\"name\":\"x\"", "\"name\":\"y\"")), 404, "no input 'y'");
        assertError(http.post("/v2/models/nope/infer", good), 404, "unknown model 'nope'");
        assertError(http.post("/v2/models/m/infer", Http.inferBody("x", x, Map.of("adapter", "zz"), null)), 404,
                "no adapter 'zz'");
        assertError(http.post("/v2/models/m/infer", good.replace("\"inputs\"", "\"outputs\":[{\"name\":\"p\"}],\"inputs\"")),
                404, "no output 'p'");
        assertError(http.post("/v2/models/mm/infer", Http.inferBody("x", x, Map.of("adapters", List.of("a")), null)), 400,
                "batch of 4");
        byte[] huge = new byte[2 << 20];
        Arrays.fill(huge, (byte) ' ');
        assertEquals(413, http.postBytes("/v2/models/m/infer", huge, "application/json").status());
        assertError(http.get("/v2/no/such/thing"), 404, "no such endpoint");
        assertStillServing();
    }

    @Test
    void managementNeedsTheToken() {
        assertError(http.post("/v2/repository/models/mb/load", ""), 401, "bearer token");
        assertError(http.withToken("wrong").post("/v2/repository/models/mb/load", ""), 401, "not valid");
        assertError(http.post("/v2/models/m/adapters/c", "{\"path\":\"bundles/a\"}"), 401, "bearer token");
        assertError(http.delete("/v2/models/m/adapters/a"), 401, "bearer token");
        assertEquals(200, admin.post("/v2/repository/models/mb/load", "").status());
        assertEquals(200, http.get("/v2/models/m/adapters").status(), "reading is open");
    }

    @Test
    void unloadAndLoad() {
        assertEquals(200, admin.post("/v2/repository/models/mb/unload", "").status());
        assertError(http.post("/v2/models/mb/infer", Http.inferBody("x", x, Map.of(), null)), 404, "unknown model 'mb'");
        boolean listed = false;
        for (JsonNode e : http.get("/v2/repository/index").json()) {
            if (e.get("name").asText().equals("mb")) {
                listed = true;
                assertEquals("UNAVAILABLE", e.get("state").asText());
            }
        }
        assertTrue(listed);
        assertEquals(200, admin.post("/v2/repository/models/mb/load", "").status());
        assertClose(merged("mb"), infer("mb", Map.of()), "reloaded");
        assertError(admin.post("/v2/repository/models/none/load", ""), 404, "no model package 'none'");
        assertError(admin.post("/v2/repository/models/..%2Fx/load", ""), 400, "must be");
    }

    @Test
    void adaptersRegisterFromPathsAndUploadsInsideLimits() throws Exception {
        Http.Reply r = admin.post("/v2/models/m/adapters/fromPath", "{\"path\":\"bundles/b\"}");
        assertEquals(201, r.status(), r.toString());
        assertEquals("registered", r.json().get("origin").asText());
        assertClose(merged("mb"), infer("m", Map.of("adapter", "fromPath")), "registered from a path");
        Http.Reply up = admin.upload("/v2/models/m/adapters/uploaded", repo.resolve("bundles/a"));
        assertEquals(201, up.status(), up.toString());
        assertClose(merged("ma"), infer("m", Map.of("adapter", "uploaded")), "uploaded");
        assertEquals(200, http.get("/v2/models/m/adapters/uploaded").status());
        JsonNode list = http.get("/v2/models/m/adapters").json().get("adapters");
        assertTrue(list.toString().contains("\"uploaded\""), list.toString());
        assertEquals(200, admin.delete("/v2/models/m/adapters/uploaded").status());
        assertError(http.post("/v2/models/m/infer", Http.inferBody("x", x, Map.of("adapter", "uploaded"), null)), 404,
                "no adapter 'uploaded'");
        assertError(admin.delete("/v2/models/m/adapters/uploaded"), 404, "no adapter 'uploaded'");

        assertError(admin.post("/v2/models/m/adapters/t", "{\"path\":\"../outside\"}"), 403, "outside the model repository");
        assertError(admin.post("/v2/models/m/adapters/t", "{\"path\":\"/etc\"}"), 403, "outside the model repository");
        Path outside = tmp.resolve("outside-bundle");
        a.write(outside);
        Files.createSymbolicLink(repo.resolve("bundles/link"), outside);
        assertError(admin.post("/v2/models/m/adapters/t", "{\"path\":\"bundles/link\"}"), 403, "symbolic link");
        assertError(admin.post("/v2/models/m/adapters/t", "{\"path\":\"bundles/missing\"}"), 404, "does not exist");
        assertError(admin.post("/v2/models/m/adapters/t", "{\"nopath\":1}"), 400, "must name the adapter directory");
        assertError(admin.post("/v2/models/m/adapters/t", "{\"path\":\"bundles/a\""), 400, "JSON object");
        assertError(admin.post("/v2/models/mm/adapters/t", "{\"path\":\"bundles/a\"}"), 400, "stacked");
        Path big = tmp.resolve("big");
        TestAdapters.random(base, AdapterConfig.lora(64, 64, TARGETS), 3, 0.1).write(big);
        Files.createDirectories(repo.resolve("bundles"));
        assertError(admin.upload("/v2/models/m/adapters/big", big), 413, "at most 8192 bytes");
        Model other = TinyModels.cnn(9);
        TestAdapters.random(other, AdapterConfig.lora(2, 4, TARGETS), 1, 0.3).write(repo.resolve("bundles/foreign"));
        assertError(admin.post("/v2/models/m/adapters/f", "{\"path\":\"bundles/foreign\"}"), 409, "another base model");
        assertStillServing();
    }

    @Test
    void requestsDuringReplacementNeverMixVersions() throws Exception {
        Tensor ya = merged("ma");
        Tensor yb = merged("mb");
        assertEquals(201, admin.post("/v2/models/m/adapters/hot", "{\"path\":\"bundles/a\"}").status());
        AtomicBoolean stop = new AtomicBoolean();
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<Integer>> clients = new ArrayList<>();
            String body = Http.inferBody("x", x, Map.of("adapter", "hot"), null);
            for (int t = 0; t < 3; t++) {
                clients.add(pool.submit(() -> {
                    int n = 0;
                    while (!stop.get() && n < 400) {
                        Http.Reply r = http.post("/v2/models/m/infer", body);
                        assertEquals(200, r.status(), r.toString());
                        long v = r.json().get("parameters").get("adapter_versions").get("hot").asLong();
                        assertClose(v % 2 == 1 ? ya : yb, Http.output(r, 0), "version " + v);
                        n++;
                    }
                    return n;
                }));
            }
            // versions: 1 = a, then b (upload), a (path), ... : odd versions are a
            for (int k = 0; k < 20; k++) {
                Http.Reply r = k % 2 == 0 ? admin.upload("/v2/models/m/adapters/hot", repo.resolve("bundles/b"))
                        : admin.post("/v2/models/m/adapters/hot", "{\"path\":\"bundles/a\"}");
                assertEquals(200, r.status(), r.toString());
                assertEquals(k + 2, r.json().get("version").asLong());
            }
            stop.set(true);
            int total = 0;
            for (Future<Integer> f : clients) {
                total += f.get(120, TimeUnit.SECONDS);
            }
            assertTrue(total > 0);
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void bareModelFilesAreNotServedButPackagesAre() throws Exception {
        Path stray = repo.resolve("stray");
        Files.createDirectories(stray);
        OnnxIO.write(base, stray.resolve("model.onnx"));
        assertTrue(http.get("/v2/repository/index").json().toString().contains("\"mb\""));
        assertTrue(!http.get("/v2/repository/index").json().toString().contains("\"stray\""), "no manifest, no model");
    }
}
