package io.peft4j.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import io.micronaut.http.MediaType;
import io.micronaut.web.router.Router;
import io.micronaut.web.router.UriRouteInfo;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.testkit.TestAdapters;
import io.peft4j.core.testkit.TinyModels;
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
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The OpenAPI document the server serves: it parses (as YAML and as the JSON the server converts
 * it to), its references resolve, its paths and methods are exactly the routes Micronaut
 * registers (so a new endpoint without documentation fails here), the request content types it
 * names are ones the routes take, and the answers of a running server to every operation, errors
 * included, have a documented status and match the documented schema. Also: the web page's files
 * are served with their security policy (the page itself is driven in {@link WebPageBrowserTest}).
 */
class OpenApiTest {

    private static final String TOKEN = "openapi-token";
    private static final List<String> TARGETS = List.of("conv1", "fc1", "fc2");
    private static final Set<String> METHODS = Set.of("get", "put", "post", "delete", "patch", "head", "options", "trace");

    @TempDir
    static Path tmp;

    static Path repo;
    static Peft4jServer server;
    static Http http;
    static Http admin;
    static Map<String, Object> doc;
    static SchemaCheck schemas;

    @BeforeAll
    static void start() {
        repo = tmp.resolve("repo");
        Model base = TinyModels.cnn(1);
        AdapterBundle a = TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 11, 0.3);
        AdapterBundle b = TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 12, 0.3);
        List<NamedAdapter> ab = List.of(new NamedAdapter("a", a), new NamedAdapter("b", b));
        Exporter.export(base, ab, ExportOptions.of(Manifest.Mode.side).withLabels(List.of("scratch", "dent", "ok"))
                .withPreprocessing(new Manifest.Preprocessing("x", 8, 8, 1, List.of(0.5), List.of(0.25))), repo.resolve("cls"));
        Exporter.export(base, ab, ExportOptions.of(Manifest.Mode.multi), repo.resolve("mm"));
        a.write(repo.resolve("bundles/a"));
        server = Peft4jServer.start(Peft4jServer.Options.of(repo).withToken(TOKEN));
        http = new Http(server.uri(), null);
        admin = http.withToken(TOKEN);
        Http.Reply yml = http.get("/openapi.yml");
        assertEquals(200, yml.status(), yml.toString());
        doc = WebController.openApi(yml.raw().body().getBytes(java.nio.charset.StandardCharsets.UTF_8));
        schemas = new SchemaCheck(doc);
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.close();
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> map(Object o) {
        return (Map<String, Object>) o;
    }

    private static Map<String, Object> paths() {
        return map(doc.get("paths"));
    }

    /** "METHOD /path/{param}" of every documented operation. */
    private static Set<String> documentedOperations() {
        Set<String> ops = new TreeSet<>();
        paths().forEach((path, item) -> map(item).keySet().stream().filter(METHODS::contains)
                .forEach(m -> ops.add(m.toUpperCase(java.util.Locale.ROOT) + " " + path)));
        return ops;
    }

    /** Micronaut's routes, each as "METHOD /path/{param}". */
    private static Map<String, List<UriRouteInfo<?, ?>>> registeredRoutes() {
        Router router = server.context().getBean(Router.class);
        return router.uriRoutes().collect(Collectors.groupingBy(
                r -> r.getHttpMethodName() + " " + r.getUriMatchTemplate().toPathString(), java.util.TreeMap::new, Collectors.toList()));
    }

    @Test
    @SuppressWarnings("unchecked")
    void theDocumentIsServedAsYamlAndJsonAndIsWellFormed() throws IOException {
        assertTrue(String.valueOf(doc.get("openapi")).startsWith("3.0."), "OpenAPI 3.0: " + doc.get("openapi"));
        Map<String, Object> info = map(doc.get("info"));
        assertNotNull(info.get("title"));
        assertNotNull(info.get("version"));

        Http.Reply json = http.get("/openapi.json");
        assertEquals(200, json.status());
        assertTrue(json.raw().headers().firstValue("Content-Type").orElse("").startsWith("application/json"));
        assertEquals(Http.JSON.valueToTree(doc), json.json(), "/openapi.json is /openapi.yml converted");
        assertTrue(http.get("/openapi.yml").raw().headers().firstValue("Content-Type").orElse("").startsWith("application/yaml"));

        // every reference resolves; operation ids are unique; path templates and path parameters agree
        List<String> refs = new ArrayList<>();
        collectRefs(doc, refs);
        assertFalse(refs.isEmpty());
        refs.forEach(schemas::resolve);
        Set<String> ids = new HashSet<>();
        Pattern param = Pattern.compile("\\{([^}]+)}");
        paths().forEach((path, itemObject) -> {
            Map<String, Object> item = map(itemObject);
            Set<String> inTemplate = new TreeSet<>();
            for (Matcher m = param.matcher(path); m.find(); ) {
                inTemplate.add(m.group(1));
            }
            item.forEach((method, opObject) -> {
                if (!METHODS.contains(method)) {
                    return;
                }
                Map<String, Object> op = map(opObject);
                assertTrue(ids.add((String) op.get("operationId")), "operationId of " + method + " " + path + " is unique");
                Set<String> declared = new TreeSet<>();
                List<Object> params = new ArrayList<>((List<Object>) item.getOrDefault("parameters", List.of()));
                params.addAll((List<Object>) op.getOrDefault("parameters", List.of()));
                for (Object p : params) {
                    Map<String, Object> pm = map(p);
                    pm = pm.containsKey("$ref") ? map(schemas.resolve((String) pm.get("$ref"))) : pm;
                    if ("path".equals(pm.get("in"))) {
                        declared.add((String) pm.get("name"));
                    }
                }
                assertEquals(inTemplate, declared, "path parameters of " + method + " " + path);
                Map<String, Object> responses = map(op.get("responses"));
                assertTrue(responses.keySet().stream().anyMatch(c -> c.startsWith("2")), method + " " + path + " documents a 2xx answer");
            });
        });
    }

    private static void collectRefs(Object o, List<String> refs) {
        if (o instanceof Map<?, ?> m) {
            m.forEach((k, v) -> {
                if ("$ref".equals(k)) {
                    refs.add((String) v);
                } else {
                    collectRefs(v, refs);
                }
            });
        } else if (o instanceof List<?> l) {
            l.forEach(x -> collectRefs(x, refs));
        }
    }

    @Test
    void everyRegisteredRouteIsDocumentedAndNothingElse() {
        Map<String, List<UriRouteInfo<?, ?>>> routes = registeredRoutes();
        // Micronaut answers HEAD wherever it answers GET; the document says so once instead of per path
        routes.keySet().removeIf(k -> k.startsWith("HEAD ") && routes.containsKey("GET " + k.substring(5)));
        Set<String> documented = documentedOperations();
        Set<String> undocumented = new TreeSet<>(routes.keySet());
        undocumented.removeAll(documented);
        Set<String> stale = new TreeSet<>(documented);
        stale.removeAll(routes.keySet());
        assertTrue(undocumented.isEmpty() && stale.isEmpty(), "routes the document misses: " + undocumented
                + "; operations the server does not have: " + stale);
        assertTrue(routes.size() >= 20, "the runtime's routes: " + routes.keySet());

        // what the document says a request body may be, the route takes
        paths().forEach((path, item) -> map(item).forEach((method, op) -> {
            if (!METHODS.contains(method) || !map(op).containsKey("requestBody")) {
                return;
            }
            String key = method.toUpperCase(java.util.Locale.ROOT) + " " + path;
            Set<String> takes = new TreeSet<>();
            for (UriRouteInfo<?, ?> r : routes.get(key)) {
                r.getConsumes().stream().map(MediaType::getName).forEach(takes::add);
            }
            Set<String> says = map(map(map(op).get("requestBody")).get("content")).keySet();
            assertTrue(takes.containsAll(says), key + ": documented " + says + ", the routes take " + takes);
        }));
    }

    /** Checks the reply against the operation's documented responses: its status is there, and its JSON body matches the schema. */
    private static void conforms(String method, String path, Http.Reply reply) {
        Map<String, Object> op = map(map(paths().get(path)).get(method));
        assertNotNull(op, method + " " + path + " is documented");
        Object response = map(op.get("responses")).get(String.valueOf(reply.status()));
        assertNotNull(response, method + " " + path + " answered " + reply.status() + ", which the document does not list: " + reply);
        Map<String, Object> r = map(response);
        r = r.containsKey("$ref") ? map(schemas.resolve((String) r.get("$ref"))) : r;
        Map<String, Object> content = map(r.get("content"));
        String type = reply.raw().headers().firstValue("Content-Type").orElse("");
        String mediaType = MediaType.of(type).getName();
        assertTrue(content.containsKey(mediaType), method + " " + path + " " + reply.status() + " answered " + type
                + "; documented: " + content.keySet());
        if (mediaType.equals(MediaType.APPLICATION_JSON)) {
            assertNotNull(reply.json(), "a JSON body: " + reply);
            List<String> problems = schemas.problems(reply.json(), map(content.get(mediaType)).get("schema"));
            assertTrue(problems.isEmpty(), method + " " + path + " " + reply.status() + ": " + problems + "\n" + reply);
        }
    }

    private static byte[] png() throws IOException {
        BufferedImage img = new BufferedImage(12, 12, BufferedImage.TYPE_BYTE_GRAY);
        for (int i = 0; i < 12; i++) {
            for (int j = 0; j < 12; j++) {
                img.getRaster().setSample(i, j, 0, (i * 21 + j * 5) % 256);
            }
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ImageIO.write(img, "png", out);
        return out.toByteArray();
    }

    @Test
    void theServersAnswersMatchTheDocumentedSchemas() throws IOException {
        String m = "/v2/models/{model}";
        conforms("get", "/v2", http.get("/v2"));
        conforms("get", "/v2/health/live", http.get("/v2/health/live"));
        conforms("get", "/v2/health/ready", http.get("/v2/health/ready"));
        conforms("get", m, http.get("/v2/models/cls"));
        conforms("get", m, http.get("/v2/models/mm"));
        conforms("get", m, http.get("/v2/models/nope"));
        conforms("get", m + "/ready", http.get("/v2/models/cls/ready"));
        conforms("get", m + "/ready", http.get("/v2/models/nope/ready"));
        JsonNode meta = http.get("/v2/models/cls").json();
        assertEquals(8, meta.get("parameters").get("preprocessing").get("height").asInt(), meta.toString());
        assertEquals("scratch", meta.get("parameters").get("labels").get(0).asText(), meta.toString());

        String body = Http.inferBody("x", TinyModels.input(3, 2), Map.of("adapter", "a"), "req-7");
        conforms("post", m + "/infer", http.post("/v2/models/mm/infer", body));
        conforms("post", m + "/versions/1/infer", http.post("/v2/models/cls/versions/1/infer", body));
        conforms("post", m + "/infer", http.post("/v2/models/mm/infer", "{\"inputs\": [}"));
        conforms("post", m + "/infer", http.post("/v2/models/mm/infer", Http.inferBody("x", TinyModels.input(3, 2),
                Map.of("adapter", "zz"), null)));

        byte[] image = png();
        conforms("post", m + "/classify", http.postBytes("/v2/models/cls/classify?adapter=b&top=2", image, "image/png"));
        conforms("post", m + "/classify", http.postBytes("/v2/models/cls/classify", image, "application/octet-stream"));
        conforms("post", m + "/classify", http.postBytes("/v2/models/cls/classify", new byte[] {1, 2, 3}, "image/png"));
        conforms("post", m + "/classify", http.postBytes("/v2/models/mm/classify", image, "image/png"));
        conforms("post", m + "/classify", http.postBytes("/v2/models/cls/classify", image, "text/csv"));

        conforms("get", "/v2/repository/index", http.get("/v2/repository/index"));
        conforms("post", "/v2/repository/index", http.post("/v2/repository/index", ""));
        conforms("get", m + "/adapters", http.get("/v2/models/cls/adapters"));
        conforms("get", m + "/adapters/{name}", http.get("/v2/models/cls/adapters/a"));
        conforms("get", m + "/adapters/{name}", http.get("/v2/models/cls/adapters/zz"));

        String named = m + "/adapters/{name}";
        conforms("post", named, http.post("/v2/models/cls/adapters/c", "{\"path\": \"bundles/a\"}"));
        conforms("post", named, admin.post("/v2/models/cls/adapters/c", "{\"path\": \"bundles/a\"}"));
        conforms("post", named, admin.upload("/v2/models/cls/adapters/c", repo.resolve("bundles/a")));
        conforms("post", named, admin.post("/v2/models/cls/adapters/d", "{\"path\": \"../outside\"}"));
        conforms("post", named, admin.post("/v2/models/cls/adapters/d", "{\"nopath\": 1}"));
        conforms("get", named, http.get("/v2/models/cls/adapters/c"));
        conforms("delete", named, http.delete("/v2/models/cls/adapters/c"));
        conforms("delete", named, admin.delete("/v2/models/cls/adapters/c"));
        conforms("delete", named, admin.delete("/v2/models/cls/adapters/c"));

        conforms("post", "/v2/repository/models/{model}/unload", admin.post("/v2/repository/models/mm/unload", ""));
        conforms("post", "/v2/repository/models/{model}/unload", admin.post("/v2/repository/models/mm/unload", ""));
        conforms("post", "/v2/repository/models/{model}/load", http.withToken("wrong").post("/v2/repository/models/mm/load", ""));
        conforms("post", "/v2/repository/models/{model}/load", admin.post("/v2/repository/models/mm/load", ""));
        conforms("post", "/v2/repository/models/{model}/load", admin.post("/v2/repository/models/none/load", ""));

        conforms("get", "/metrics", http.get("/metrics"));
        conforms("get", "/openapi.json", http.get("/openapi.json"));
        conforms("get", "/openapi.yml", http.get("/openapi.yml"));
        conforms("get", "/", http.get("/"));
        conforms("get", "/app.js", http.get("/app.js"));
        conforms("get", "/app.css", http.get("/app.css"));
    }

    @Test
    void thePageIsServedWithASecurityPolicy() {
        Http.Reply r = http.get("/");
        assertEquals(200, r.status());
        assertTrue(r.raw().headers().firstValue("Content-Type").orElse("").startsWith("text/html"));
        String csp = r.raw().headers().firstValue("Content-Security-Policy").orElse("");
        assertTrue(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"), csp);
        assertTrue(r.raw().body().contains("<label for=\"image\">"), "the file input has a label");
        assertEquals(200, http.get("/app.js").status());
        assertEquals(200, http.get("/app.css").status());
    }

    @Test
    void theSchemaCheckFindsWhatIsWrong() {
        Object adapter = Map.of("$ref", "#/components/schemas/Adapter");
        JsonNode good = Http.JSON.valueToTree(Map.of("name", "a", "peft_type", "LORA", "rank", 4, "origin", "package", "version", 1));
        assertEquals(List.of(), schemas.problems(good, adapter));
        Map<String, Object> bad = new LinkedHashMap<>(Map.of("name", "a", "peft_type", "LORA", "rank", "4", "origin", "elsewhere",
                "extra", true));
        List<String> problems = schemas.problems(Http.JSON.valueToTree(bad), adapter);
        assertTrue(problems.stream().anyMatch(p -> p.contains("'version' is missing")), problems.toString());
        assertTrue(problems.stream().anyMatch(p -> p.startsWith("$.rank") && p.contains("not of type integer")), problems.toString());
        assertTrue(problems.stream().anyMatch(p -> p.startsWith("$.origin") && p.contains("not one of")), problems.toString());
        assertTrue(problems.stream().anyMatch(p -> p.startsWith("$.extra") && p.contains("does not describe")), problems.toString());
        JsonNode nested = Http.JSON.valueToTree(Map.of("model", "m", "adapters", List.of(Map.of("name", 3))));
        assertFalse(schemas.problems(nested, Map.of("$ref", "#/components/schemas/AdapterList")).isEmpty());
    }
}
