package io.peft4j.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.core.tensor.Tensor;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/** A real HTTP client on loopback for the runtime's tests, with JSON helpers. */
final class Http {

    static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient CLIENT = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();

    /** A response: status, headers, body as JSON (null when not JSON). */
    record Reply(int status, HttpResponse<String> raw, JsonNode json) {
        String error() {
            return json == null || json.get("error") == null ? null : json.get("error").asText();
        }

        @Override
        public String toString() {
            return status + " " + raw.body();
        }
    }

    private final URI base;
    private final String token;

    Http(URI base, String token) {
        this.base = base;
        this.token = token;
    }

    Http withToken(String t) {
        return new Http(base, t);
    }

    Reply get(String path) {
        return send(builder(path).GET().build());
    }

    Reply post(String path, String json) {
        return send(builder(path).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(json == null ? "" : json)).build());
    }

    Reply postBytes(String path, byte[] body, String contentType) {
        return send(builder(path).header("Content-Type", contentType).POST(HttpRequest.BodyPublishers.ofByteArray(body)).build());
    }

    /** A POST whose answer is kept as bytes (binary tensor data), with extra request headers; no Content-Type unless given. */
    HttpResponse<byte[]> postRaw(String path, byte[] body, Map<String, String> headers) {
        HttpRequest.Builder b = builder(path).POST(HttpRequest.BodyPublishers.ofByteArray(body));
        headers.forEach(b::header);
        try {
            return CLIENT.send(b.build(), HttpResponse.BodyHandlers.ofByteArray());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** A POST with headers, its answer read as in {@link #post}. */
    Reply post(String path, byte[] body, Map<String, String> headers) {
        HttpRequest.Builder b = builder(path).POST(HttpRequest.BodyPublishers.ofByteArray(body));
        headers.forEach(b::header);
        return send(b.build());
    }

    Reply delete(String path) {
        return send(builder(path).DELETE().build());
    }

    /** Uploads a PEFT bundle directory's two files as multipart/form-data. */
    Reply upload(String path, Path bundleDir) {
        try {
            String boundary = "peft4j-test-boundary";
            ByteArrayOutputStream body = new ByteArrayOutputStream();
            for (String f : List.of("adapter_config.json", "adapter_model.safetensors")) {
                body.write(("--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + f + "\"; filename=\"" + f
                        + "\"\r\nContent-Type: application/octet-stream\r\n\r\n").getBytes(StandardCharsets.UTF_8));
                body.write(Files.readAllBytes(bundleDir.resolve(f)));
                body.write("\r\n".getBytes(StandardCharsets.UTF_8));
            }
            body.write(("--" + boundary + "--\r\n").getBytes(StandardCharsets.UTF_8));
            return postBytes(path, body.toByteArray(), "multipart/form-data; boundary=" + boundary);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private HttpRequest.Builder builder(String path) {
        HttpRequest.Builder b = HttpRequest.newBuilder(base.resolve(path)).timeout(Duration.ofSeconds(60));
        if (token != null) {
            b.header("Authorization", "Bearer " + token);
        }
        return b;
    }

    private static Reply send(HttpRequest r) {
        try {
            HttpResponse<String> resp = CLIENT.send(r, HttpResponse.BodyHandlers.ofString());
            JsonNode json = null;
            try {
                json = resp.body().isEmpty() ? null : JSON.readTree(resp.body());
            } catch (IOException notJson) {
                // left null: the test says what it expected
            }
            return new Reply(resp.statusCode(), resp, json);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** An OIP inference request body for one FP32 input, with parameters. */
    static String inferBody(String input, Tensor x, Map<String, Object> parameters, String id) {
        ObjectNode o = JSON.createObjectNode();
        if (id != null) {
            o.put("id", id);
        }
        ArrayNode inputs = o.putArray("inputs");
        ObjectNode in = inputs.addObject();
        in.put("name", input);
        ArrayNode shape = in.putArray("shape");
        for (long d : x.shape()) {
            shape.add(d);
        }
        in.put("datatype", "FP32");
        ArrayNode data = in.putArray("data");
        for (float f : x.toFloatArray()) {
            data.add(f);
        }
        if (parameters != null && !parameters.isEmpty()) {
            o.set("parameters", JSON.valueToTree(parameters));
        }
        return o.toString();
    }

    /** The first output of an inference reply as a float tensor. */
    static Tensor output(Reply r, int index) {
        JsonNode out = r.json().get("outputs").get(index);
        JsonNode shapeNode = out.get("shape");
        long[] shape = new long[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = shapeNode.get(i).asLong();
        }
        JsonNode data = out.get("data");
        float[] v = new float[data.size()];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) data.get(i).asDouble();
        }
        return Tensor.ofFloats(shape, v);
    }
}
