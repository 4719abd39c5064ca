package io.peft4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.tensor.Npy;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.Assets;
import io.peft4j.core.testkit.TestAdapters;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.runtime.Peft4jServer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The runtime issue's sequence, command by command, on resnet18 (a shared asset):
 * {@code export --mode side} with adapters a and b, {@code serve}, {@code /v2/health/ready}, an
 * inference request for a [8,3,64,64] batch with {@code parameters.adapter = a}; its first output
 * must equal {@code predict --model REPO/m --adapter a} on the same input, float for float.
 */
class ServeSequenceTest {

    @Test
    void servedOutputEqualsPredict(@TempDir Path tmp) throws Exception {
        Path m = Assets.shared("models/resnet18.onnx");
        Model base = OnnxIO.read(m);
        List<String> targets = List.of("layer4.1.conv2", "fc");
        TestAdapters.random(base, AdapterConfig.lora(4, 8, targets), 1, 0.05).write(tmp.resolve("A"));
        TestAdapters.random(base, AdapterConfig.lora(4, 8, targets), 2, 0.05).write(tmp.resolve("B"));
        Path repo = tmp.resolve("REPO");
        CliRun export = CliRun.of("export", "--base", m.toString(), "--adapter", "a=" + tmp.resolve("A"), "--adapter",
                "b=" + tmp.resolve("B"), "--mode", "side", "--out", repo.resolve("m").toString());
        assertEquals(0, export.exitCode(), export.err());

        Tensor x = TinyModels.randn(new Random(7), 8, 3, 64, 64);
        Npy.write(tmp.resolve("x.npy"), x);
        CliRun predict = CliRun.of("predict", "--model", repo.resolve("m").toString(), "--adapter", "a", "--npy",
                "input=" + tmp.resolve("x.npy"), "--out", tmp.resolve("ya.npy").toString());
        assertEquals(0, predict.exitCode(), predict.err());
        float[] want = Npy.read(tmp.resolve("ya.npy")).toFloatArray();

        CompletableFuture<Peft4jServer> started = new CompletableFuture<>();
        ServeCommand.onStarted = started::complete;
        try {
            CompletableFuture<CliRun> serve = CompletableFuture.supplyAsync(() -> CliRun.of("serve", "--repo", repo.toString(),
                    "--port", "0"));
            Peft4jServer server = started.get(120, TimeUnit.SECONDS);
            HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
            HttpResponse<String> ready = http.send(HttpRequest.newBuilder(URI.create(server.uri() + "/v2/health/ready")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, ready.statusCode(), ready.body());

            ObjectMapper json = new ObjectMapper();
            ObjectNode body = json.createObjectNode();
            ObjectNode in = body.putArray("inputs").addObject();
            in.put("name", "input");
            in.putArray("shape").add(8).add(3).add(64).add(64);
            in.put("datatype", "FP32");
            ArrayNode data = in.putArray("data");
            for (float f : x.toFloatArray()) {
                data.add(f);
            }
            body.putObject("parameters").put("adapter", "a");
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(server.uri() + "/v2/models/m/infer"))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body.toString())).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode(), r.body());
            JsonNode out = json.readTree(r.body()).get("outputs").get(0);
            assertEquals("[8,6]", out.get("shape").toString());
            float[] got = new float[out.get("data").size()];
            for (int i = 0; i < got.length; i++) {
                got[i] = (float) out.get("data").get(i).asDouble();
            }
            assertArrayEquals(want, got, "served output = predict, float for float");
            server.close();
            assertEquals(0, serve.get(60, TimeUnit.SECONDS).exitCode());
        } finally {
            ServeCommand.onStarted = null;
        }
    }
}
