package io.peft4j.cli;

import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.testkit.TestAdapters;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.exporter.ExportOptions;
import io.peft4j.exporter.Exporter;
import io.peft4j.exporter.NamedAdapter;
import io.peft4j.runtime.Peft4jServer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ServeCommandTest {

    @Test
    void helpNamesTheOptionsAndEndpoints() {
        CliRun r = CliRun.of("serve", "--help");
        assertEquals(0, r.exitCode(), r.err());
        for (String s : List.of("--repo", "--port", "--host", "--token", "/v2/models/{m}/infer", "SIGTERM")) {
            assertTrue(r.out().contains(s), s + " in\n" + r.out());
        }
        assertTrue(CliRun.of("--help").out().contains("serve"));
    }

    @Test
    void aMissingRepositoryIsOneLineAndExitTwo(@TempDir Path tmp) {
        CliRun r = CliRun.of("serve", "--repo", tmp.resolve("nope").toString(), "--port", "0");
        assertEquals(2, r.exitCode());
        assertEquals(1, r.errLines().length, r.err());
        assertTrue(r.err().contains("model repository not found"), r.err());
        CliRun bad = CliRun.of("serve", "--repo", tmp.toString(), "--port", "70000");
        assertEquals(2, bad.exitCode());
        assertTrue(bad.err().contains("port must be 0..65535"), bad.err());
        CliRun delay = CliRun.of("serve", "--repo", tmp.toString(), "--batching", "--max-delay-ms", "-1");
        assertEquals(2, delay.exitCode());
        assertTrue(delay.err().contains("--max-delay-ms must be 0..10000"), delay.err());
        CliRun rows = CliRun.of("serve", "--repo", tmp.toString(), "--port", "0", "--max-batch-rows", "0");
        assertEquals(2, rows.exitCode());
        assertTrue(rows.err().contains("max-batch-rows must be 1..65536"), rows.err());
    }

    @Test
    void servesTheRepositoryUntilStopped(@TempDir Path tmp) throws Exception {
        Model base = TinyModels.cnn(1);
        Exporter.export(base, List.of(new NamedAdapter("a", TestAdapters.random(base, AdapterConfig.lora(2, 4,
                List.of("fc1")), 1, 0.3))), ExportOptions.of(Manifest.Mode.side), tmp.resolve("repo/m"));
        CompletableFuture<Peft4jServer> started = new CompletableFuture<>();
        ServeCommand.onStarted = started::complete;
        try {
            CompletableFuture<CliRun> run = CompletableFuture.supplyAsync(() -> CliRun.of("serve", "--repo",
                    tmp.resolve("repo").toString(), "--port", "0", "--token", "t0k", "--batching", "--max-batch-rows", "8",
                    "--max-delay-ms", "0.5"));
            Peft4jServer server = started.get(60, TimeUnit.SECONDS);
            io.peft4j.runtime.SchedulingConfig sc = server.context().getBean(io.peft4j.runtime.SchedulingConfig.class);
            assertTrue(sc.batching());
            assertEquals(8, sc.maxBatchRows());
            assertEquals(500, sc.maxDelayMicros());
            HttpResponse<String> ready = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                    URI.create(server.uri() + "/v2/models/m")).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, ready.statusCode(), ready.body());
            assertTrue(ready.body().contains("\"side\""), ready.body());
            server.close();
            CliRun r = run.get(60, TimeUnit.SECONDS);
            assertEquals(0, r.exitCode(), r.err());
            assertTrue(r.out().contains("peft4j: serving") && r.out().contains("peft4j: stopped"), r.out());
        } finally {
            ServeCommand.onStarted = null;
        }
    }

    @Test
    void deviceProfilesPickTheBackend(@TempDir Path tmp) throws Exception {
        Model base = TinyModels.cnn(1);
        Exporter.export(base, List.of(new NamedAdapter("a", TestAdapters.random(base, AdapterConfig.lora(2, 4,
                List.of("fc1")), 1, 0.3))), ExportOptions.of(Manifest.Mode.merged), tmp.resolve("repo/m"));
        CompletableFuture<Peft4jServer> started = new CompletableFuture<>();
        ServeCommand.onStarted = started::complete;
        try {
            CompletableFuture<CliRun> run = CompletableFuture.supplyAsync(() -> CliRun.of("serve", "--repo",
                    tmp.resolve("repo").toString(), "--port", "0", "--device", "cpu"));
            Peft4jServer server = started.get(60, TimeUnit.SECONDS);
            io.peft4j.runtime.ModelRepository repo = server.context().getBean(io.peft4j.runtime.ModelRepository.class);
            assertEquals("cpu", repo.profile().orElseThrow().id());
            assertEquals("ort-cpu", repo.selection().orElseThrow().chosen().id());
            server.close();
            CliRun r = run.get(60, TimeUnit.SECONDS);
            assertEquals(0, r.exitCode(), r.err());
            assertTrue(r.out().contains("peft4j: backend 'ort-cpu' for profile 'cpu'"), r.out());
        } finally {
            ServeCommand.onStarted = null;
        }
        CliRun bad = CliRun.of("serve", "--repo", tmp.resolve("repo").toString(), "--port", "0", "--device", "orin-nano-9gb");
        assertEquals(2, bad.exitCode());
        assertEquals(1, bad.errLines().length, bad.err());
        assertTrue(bad.err().contains("unknown device profile 'orin-nano-9gb'"), bad.err());
        CliRun alone = CliRun.of("serve", "--repo", tmp.resolve("repo").toString(), "--profiles", tmp.toString());
        assertEquals(2, alone.exitCode());
        assertTrue(alone.err().contains("--profiles and --device-root go with --device PROFILE"), alone.err());
    }
}
