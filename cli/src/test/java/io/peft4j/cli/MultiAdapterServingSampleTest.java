package io.peft4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Runs {@code samples/multi-adapter-serving/run.sh --quick} through bash, with the {@code peft4j}
 * command of this build (its test class path) and a real server and curl, and checks the answers
 * it saved: every row of the mixed batch on the {@code multi} package equals the per-request answer
 * of the {@code side} package with that row's adapter; registration without the token is refused,
 * by path creates version 1 and the upload replaces it with version 2; the registered adapter is
 * listed and used by {@code /classify}, and gone after its removal; {@code /metrics} counts the
 * requests. Skipped with a message where bash or curl is missing.
 */
class MultiAdapterServingSampleTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    @Test
    void theSampleRunsAndItsAnswersAgree() throws Exception {
        Assumptions.assumeTrue(SampleScript.onPath("bash"), "bash is not installed: the multi-adapter-serving sample is a bash script");
        Assumptions.assumeTrue(SampleScript.onPath("curl"), "curl is not installed: the multi-adapter-serving sample talks to the server with curl");
        Path work = tmp.resolve("work");
        SampleScript.Run run = SampleScript.run(tmp, "multi-adapter-serving", List.of("--quick", "--work", work.toString(),
                "--threads", "2", "--token", "sample-test-token"), Map.of(), "1g", 10);
        String out = run.output();
        assertEquals(0, run.exitCode(), out);
        Path r = work.resolve("responses");

        JsonNode index = json(r, "index");
        assertEquals(2, index.size(), index.toString());
        for (JsonNode m : index) {
            assertEquals("READY", m.path("state").asText(), index.toString());
        }

        // the mixed batch on the multi package, row by row, against one request per adapter on the side package
        float[][] mixed = logits(json(r, "infer-multi-mixed"));
        String[] rowSource = {"infer-side-metal-dim", "infer-side-fabric", "infer-side-base", "infer-side-fabric"};
        assertEquals(4, mixed.length);
        for (int row = 0; row < 4; row++) {
            float[] want = logits(json(r, rowSource[row]))[row];
            float scale = 0;
            for (float v : want) {
                scale = Math.max(scale, Math.abs(v));
            }
            for (int c = 0; c < want.length; c++) {
                assertEquals(want[c], mixed[row][c], 1e-5 * scale + 1e-6, "row " + row + " (" + rowSource[row] + "), logit " + c);
            }
        }
        assertFalse(Arrays.equals(logits(json(r, "infer-side-metal-dim"))[0], logits(json(r, "infer-side-fabric"))[0]),
                "the two adapters answer differently");
        assertTrue(out.contains("row 3 (fabric):"), out);

        // registration: refused without the token, then by path (v1), then replaced by an upload (v2)
        assertEquals(401, status(r, "register-no-token"));
        assertEquals(201, status(r, "register-path"));
        assertEquals(1, json(r, "register-path").path("version").asInt());
        assertEquals(4, json(r, "register-path").path("rank").asInt());
        assertEquals(200, status(r, "register-upload"));
        assertEquals(2, json(r, "register-upload").path("version").asInt());
        List<String> listed = new ArrayList<>();
        json(r, "side-adapters-after").path("adapters").forEach(a -> listed.add(a.path("name").asText() + "/" + a.path("origin").asText()));
        assertEquals(List.of("metal-dim/package", "fabric/package", "fabric-v2/registered"), listed);

        JsonNode v2 = json(r, "classify-fabric-v2");
        assertEquals("fabric-v2", v2.path("adapter").asText(), v2.toString());
        assertEquals(2, v2.path("adapter_version").asInt(), v2.toString());
        assertEquals(2, v2.path("labels").size(), v2.toString());
        assertEquals("metal-dim", json(r, "classify-dim-adapter").path("adapter").asText());
        assertTrue(json(r, "classify-dim-base").path("adapter").isMissingNode(), "no adapter: the base model");

        assertEquals(200, status(r, "delete"));
        assertEquals(404, status(r, "classify-deleted"));
        assertTrue(json(r, "classify-deleted").path("error").asText().contains("no adapter 'fabric-v2'"));

        String metrics = Files.readString(r.resolve("metrics.txt"));
        assertTrue(metrics.contains("peft4j_request_seconds_count{adapter=\"per-row\",model=\"multi\",status=\"200\"} 1"), metrics);
        assertTrue(metrics.contains("peft4j_batch_rows_max{model=\"multi\"} 4.0"), metrics);
    }

    private static JsonNode json(Path responses, String name) throws IOException {
        return JSON.readTree(responses.resolve(name + ".json").toFile());
    }

    private static int status(Path responses, String name) throws IOException {
        return Integer.parseInt(Files.readString(responses.resolve(name + ".status")).strip());
    }

    /** The first output of an infer answer as rows. */
    private static float[][] logits(JsonNode answer) {
        JsonNode o = answer.path("outputs").get(0);
        int rows = o.path("shape").get(0).asInt();
        int cols = o.path("shape").get(1).asInt();
        float[][] v = new float[rows][cols];
        for (int i = 0; i < rows * cols; i++) {
            v[i / cols][i % cols] = (float) o.path("data").get(i).asDouble();
        }
        return v;
    }
}
