package io.peft4j.runtime;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Ort;
import io.peft4j.core.testkit.TestAdapters;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.devices.ort.OrtBackend;
import io.peft4j.exporter.ExportOptions;
import io.peft4j.exporter.Exporter;
import io.peft4j.exporter.NamedAdapter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code peft4j.merged-sessions} ({@code serve --merged-sessions N}): off by default; on, the
 * adapter a side package serves moves onto a merged session after its first requests, and every
 * answer, before and after, is the merged export's; a bad value stops the start with its name.
 */
class MergedSessionsServeTest {

    private static final List<String> TARGETS = List.of("conv1", "fc1", "fc2");

    @TempDir
    Path tmp;

    @Test
    void theServedAdapterMovesOntoAMergedSessionAndAnswersTheSame() throws Exception {
        Model base = TinyModels.cnn(1);
        AdapterBundle a = TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 31, 0.3);
        Path repo = tmp.resolve("repo");
        Exporter.export(base, List.of(new NamedAdapter("a", a)), ExportOptions.of(Manifest.Mode.side), repo.resolve("m"));
        Exporter.export(base, List.of(new NamedAdapter("a", a)), ExportOptions.of(Manifest.Mode.merged), tmp.resolve("ma"));
        Tensor x = TinyModels.input(5, 2);
        Tensor want = Ort.run(tmp.resolve("ma/model.onnx"), Map.of("x", x)).get("logits");
        String body = Http.inferBody("x", x, Map.of("adapter", "a"), null);

        try (Peft4jServer off = Peft4jServer.start(Peft4jServer.Options.of(repo))) {
            Http http = new Http(off.uri(), null);
            for (int i = 0; i < 5; i++) {
                assertEquals(200, http.post("/v2/models/m/infer", body).status());
            }
            Thread.sleep(300);
            OrtBackend b = (OrtBackend) off.context().getBean(ModelRepository.class).get("m");
            assertFalse(b.hasMergedSession("a"), "off unless asked for");
        }

        try (Peft4jServer on = Peft4jServer.start(Peft4jServer.Options.of(repo).withProperty("peft4j.merged-sessions", 1))) {
            Http http = new Http(on.uri(), null);
            OrtBackend b = (OrtBackend) on.context().getBean(ModelRepository.class).get("m");
            long until = System.nanoTime() + 30_000_000_000L;
            int requests = 0;
            do {
                Http.Reply r = http.post("/v2/models/m/infer", body);
                assertEquals(200, r.status(), r.toString());
                double d = Ort.maxRelDiff(want, Http.output(r, 0));
                assertTrue(d < 1e-5, "request " + requests + ": " + d);
                requests++;
                assertTrue(System.nanoTime() < until, "no merged session after 30 s");
            } while (!b.hasMergedSession("a"));
            Http.Reply after = http.post("/v2/models/m/infer", body);
            assertTrue(Ort.maxRelDiff(want, Http.output(after, 0)) < 1e-5, "on the merged session");
            System.out.printf("merged session of 'a' in use after %d requests%n", requests);
        }

        // a package with float16 weights: the merged session is built from the float32 values of its weights
        Exporter.export(base, List.of(new NamedAdapter("a", a)), ExportOptions.of(Manifest.Mode.side).withFp16(true),
                repo.resolve("h"));
        try (Peft4jServer on = Peft4jServer.start(Peft4jServer.Options.of(repo).withProperty("peft4j.merged-sessions", 1))) {
            Http http = new Http(on.uri(), null);
            OrtBackend b = (OrtBackend) on.context().getBean(ModelRepository.class).get("h");
            long until = System.nanoTime() + 30_000_000_000L;
            do {
                Http.Reply r = http.post("/v2/models/h/infer", body);
                assertEquals(200, r.status(), r.toString());
                double d = Ort.maxRelDiff(want, Http.output(r, 0));
                assertTrue(d < 2e-2, "fp16 package: " + d);
                assertTrue(System.nanoTime() < until, "no merged session for the fp16 package after 30 s");
            } while (!b.hasMergedSession("a"));
        }

        Peft4jException e = assertThrows(Peft4jException.class, () -> Peft4jServer.start(Peft4jServer.Options.of(repo)
                .withProperty("peft4j.merged-sessions", -1)));
        assertTrue(e.getMessage().contains("peft4j.merged-sessions"), e.getMessage());
    }
}
