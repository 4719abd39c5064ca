package io.peft4j.runtime;

import io.micronaut.http.HttpResponse;
import io.micronaut.http.MutableHttpResponse;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.json.JsonMapper;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The static side of the service, read once from the runtime's resources: the web page at
 * {@code /} (with {@code /app.js} and {@code /app.css}; plain HTML and JavaScript, nothing loaded
 * from elsewhere) and the OpenAPI 3 document of the serving API at {@code /openapi.yml} and, the
 * same document converted, {@code /openapi.json}. The page only reads and classifies; its
 * Content-Security-Policy lets it load and call nothing but this server.
 */
@Controller
public final class WebController {

    /** Where the OpenAPI document lives on the class path. */
    public static final String OPENAPI_RESOURCE = "/io/peft4j/runtime/openapi.yml";
    private static final String WEB = "/io/peft4j/runtime/web/";
    private static final String CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
            + "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

    private final byte[] page;
    private final byte[] script;
    private final byte[] style;
    private final byte[] openApiYaml;
    private final byte[] openApiJson;

    public WebController(JsonMapper json) {
        this.page = resource(WEB + "index.html");
        this.script = resource(WEB + "app.js");
        this.style = resource(WEB + "app.css");
        this.openApiYaml = resource(OPENAPI_RESOURCE);
        try {
            this.openApiJson = json.writeValueAsBytes(openApi(openApiYaml));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot convert the OpenAPI document to JSON", e);
        }
    }

    @Get(produces = "text/html; charset=utf-8")
    public HttpResponse<byte[]> index() {
        return secured(HttpResponse.ok(page).contentType("text/html; charset=utf-8"));
    }

    @Get(uri = "/app.js", produces = "text/javascript; charset=utf-8")
    public HttpResponse<byte[]> appJs() {
        return secured(HttpResponse.ok(script).contentType("text/javascript; charset=utf-8"));
    }

    @Get(uri = "/app.css", produces = "text/css; charset=utf-8")
    public HttpResponse<byte[]> appCss() {
        return secured(HttpResponse.ok(style).contentType("text/css; charset=utf-8"));
    }

    @Get(uri = "/openapi.yml", produces = "application/yaml")
    public HttpResponse<byte[]> openApiYaml() {
        return HttpResponse.ok(openApiYaml).contentType("application/yaml; charset=utf-8");
    }

    @Get(uri = "/openapi.json", produces = "application/json")
    public HttpResponse<byte[]> openApiJson() {
        return HttpResponse.ok(openApiJson).contentType("application/json");
    }

    private static MutableHttpResponse<byte[]> secured(MutableHttpResponse<byte[]> r) {
        return r.header("Content-Security-Policy", CSP)
                .header("X-Content-Type-Options", "nosniff")
                .header("Referrer-Policy", "no-referrer")
                .header("Cache-Control", "no-cache");
    }

    /** The OpenAPI document (YAML) as maps, lists and scalars, every key a string. */
    static Map<String, Object> openApi(byte[] yaml) {
        Object doc = new Yaml(new SafeConstructor(new LoaderOptions())).load(new String(yaml, StandardCharsets.UTF_8));
        if (!(doc instanceof Map<?, ?>)) {
            throw new IllegalStateException("the OpenAPI document is not a YAML mapping");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) stringKeys(doc);
        return m;
    }

    private static Object stringKeys(Object v) {
        if (v instanceof Map<?, ?> m) {
            Map<String, Object> out = new LinkedHashMap<>();
            m.forEach((k, x) -> out.put(String.valueOf(k), stringKeys(x)));
            return out;
        }
        if (v instanceof List<?> l) {
            List<Object> out = new ArrayList<>(l.size());
            l.forEach(x -> out.add(stringKeys(x)));
            return out;
        }
        return v;
    }

    private static byte[] resource(String name) {
        try (InputStream in = WebController.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IllegalStateException("the runtime's resource " + name + " is missing from the class path");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the runtime's resource " + name, e);
        }
    }
}
