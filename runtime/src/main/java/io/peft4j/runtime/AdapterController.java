package io.peft4j.runtime;

import io.micronaut.core.type.Argument;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Delete;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.Part;
import io.micronaut.http.annotation.PathVariable;
import io.micronaut.http.annotation.Post;
import io.micronaut.http.multipart.CompletedFileUpload;
import io.micronaut.json.JsonMapper;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.devices.AdapterInfo;
import io.peft4j.devices.InferenceBackend;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Adapter management in the style of DJL Serving: list a model's adapters, show one, register one
 * (from a PEFT bundle directory inside the repository, {@code {"path": "..."}}, or uploaded as the
 * two files {@code adapter_config.json} and {@code adapter_model.safetensors} in a multipart form),
 * and remove one. Registering replaces an adapter of the same name atomically (requests in flight
 * finish with the version they started with). Registration and removal are management endpoints;
 * bundle paths must resolve, symbolic links followed, inside the repository.
 */
@Controller("/v2/models/{model}/adapters")
public final class AdapterController {

    static final String CONFIG_PART = AdapterBundle.CONFIG_FILE;
    static final String WEIGHTS_PART = AdapterBundle.WEIGHTS_FILE;
    private static final String NAME = "[A-Za-z0-9][A-Za-z0-9._-]{0,127}";

    private final ModelRepository repository;
    private final Management management;
    private final RuntimeConfig config;
    private final JsonMapper json;
    private final Gate gate;

    public AdapterController(ModelRepository repository, Management management, RuntimeConfig config, JsonMapper json,
                             Gate gate) {
        this.repository = repository;
        this.management = management;
        this.config = config;
        this.json = json;
        this.gate = gate;
    }

    @Get
    public Map<String, Object> list(@PathVariable String model) {
        InferenceBackend b = repository.get(model);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("model", model);
        m.put("adapters", b.adapters().stream().map(AdapterController::describe).toList());
        return m;
    }

    @Get("/{name}")
    public Map<String, Object> get(@PathVariable String model, @PathVariable String name) {
        return describe(find(repository.get(model), model, name));
    }

    @Post(uri = "/{name}", consumes = MediaType.APPLICATION_JSON)
    @ExecuteOn(TaskExecutors.BLOCKING)
    public HttpResponse<Map<String, Object>> registerPath(HttpRequest<?> request, @PathVariable String model,
                                                          @PathVariable String name, @Body byte[] body) {
        management.require(request);
        checkName(name);
        String path = pathOf(body);
        Path dir = insideRepository(path);
        return register(model, name, AdapterBundle.read(dir));
    }

    @Post(uri = "/{name}", consumes = MediaType.MULTIPART_FORM_DATA)
    @ExecuteOn(TaskExecutors.BLOCKING)
    public HttpResponse<Map<String, Object>> registerUpload(HttpRequest<?> request, @PathVariable String model,
                                                            @PathVariable String name,
                                                            @Part(CONFIG_PART) CompletedFileUpload configFile,
                                                            @Part(WEIGHTS_PART) CompletedFileUpload weightsFile) {
        management.require(request);
        checkName(name);
        long total = configFile.getSize() + weightsFile.getSize();
        if (total > config.maxUploadBytes()) {
            throw new ApiException(HttpStatus.REQUEST_ENTITY_TOO_LARGE, "the upload holds " + total + " bytes; this server takes "
                    + "adapters of at most " + config.maxUploadBytes() + " bytes (peft4j.max-upload-bytes)");
        }
        Path tmp = null;
        try {
            tmp = Files.createTempDirectory("peft4j-upload-");
            copy(configFile, tmp.resolve(AdapterBundle.CONFIG_FILE));
            copy(weightsFile, tmp.resolve(AdapterBundle.WEIGHTS_FILE));
            return register(model, name, AdapterBundle.read(tmp));
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot store the uploaded adapter: " + e.getMessage(), e);
        } finally {
            io.peft4j.core.util.AtomicFiles.deleteTreeQuietly(tmp);
        }
    }

    @Delete("/{name}")
    @ExecuteOn(TaskExecutors.BLOCKING)
    public Map<String, Object> delete(HttpRequest<?> request, @PathVariable String model, @PathVariable String name) {
        management.require(request);
        InferenceBackend b = repository.get(model);
        if (!b.unregister(name)) {
            find(b, model, name);   // 404 naming the adapters there are
        }
        return Map.of("model", model, "deleted", name);
    }

    private HttpResponse<Map<String, Object>> register(String model, String name, AdapterBundle bundle) {
        gate.enter();
        try {
            InferenceBackend b = repository.get(model);
            AdapterInfo info = b.register(name, bundle);
            return HttpResponse.status(info.version() == 1 ? HttpStatus.CREATED : HttpStatus.OK).body(describe(info));
        } finally {
            gate.exit();
        }
    }

    private static void checkName(String name) {
        if (!name.matches(NAME)) {
            throw ApiException.badRequest("adapter name '" + name + "' must be 1-128 letters, digits, '.', '_' or '-', "
                    + "starting with a letter or digit");
        }
    }

    private String pathOf(byte[] body) {
        Map<String, Object> m;
        try {
            m = json.readValue(body, Argument.mapOf(String.class, Object.class));
        } catch (IOException | RuntimeException e) {
            throw ApiException.badRequest("the body must be a JSON object {\"path\": \"<adapter directory inside the "
                    + "repository>\"}: " + e.getMessage());
        }
        Object p = m == null ? null : m.get("path");
        if (!(p instanceof String s) || s.isBlank()) {
            throw ApiException.badRequest("the body must name the adapter directory: {\"path\": \"<directory inside the "
                    + "repository>\"} (or upload " + CONFIG_PART + " and " + WEIGHTS_PART + " as multipart/form-data)");
        }
        return s;
    }

    /**
     * {@code path} (relative to the repository, or absolute) as a directory that is inside the
     * repository, with every symbolic link on the way and the bundle's files resolved.
     */
    Path insideRepository(String path) {
        Path root = repository.root();
        Path p;
        try {
            p = Path.of(path);
        } catch (java.nio.file.InvalidPathException e) {
            throw ApiException.badRequest("adapter path '" + path + "' is not a valid path");
        }
        Path abs = (p.isAbsolute() ? p : root.resolve(p)).normalize();
        if (!abs.startsWith(root)) {
            throw new ApiException(HttpStatus.FORBIDDEN, "adapter path '" + path + "' is outside the model repository");
        }
        Path real;
        try {
            real = abs.toRealPath();
        } catch (NoSuchFileException e) {
            throw Peft4jException.notFound("adapter directory '" + path + "' does not exist in the model repository");
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read adapter directory '" + path + "': " + e.getMessage(), e);
        }
        Path realRoot = repository.realRoot();
        if (!real.startsWith(realRoot)) {
            throw new ApiException(HttpStatus.FORBIDDEN, "adapter path '" + path + "' leads outside the model repository "
                    + "(through a symbolic link)");
        }
        for (String f : List.of(AdapterBundle.CONFIG_FILE, AdapterBundle.WEIGHTS_FILE)) {
            Path file = real.resolve(f);
            try {
                if (Files.exists(file) && !file.toRealPath().startsWith(realRoot)) {
                    throw new ApiException(HttpStatus.FORBIDDEN, "adapter file '" + path + "/" + f + "' leads outside the "
                            + "model repository (through a symbolic link)");
                }
            } catch (IOException e) {
                throw new Peft4jException(ErrorCode.IO, "cannot read " + file + ": " + e.getMessage(), e);
            }
        }
        return real;
    }

    private static AdapterInfo find(InferenceBackend b, String model, String name) {
        for (AdapterInfo a : b.adapters()) {
            if (a.name().equals(name)) {
                return a;
            }
        }
        throw Peft4jException.notFound("model '" + model + "' has no adapter '" + name + "'; it has "
                + b.adapters().stream().map(AdapterInfo::name).toList());
    }

    static Map<String, Object> describe(AdapterInfo a) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("name", a.name());
        m.put("peft_type", a.peftType());
        m.put("rank", a.rank());
        m.put("origin", a.origin());
        m.put("version", a.version());
        if (a.id() != null) {
            m.put("id", a.id());
        }
        return m;
    }

    private static void copy(CompletedFileUpload upload, Path to) throws IOException {
        try (InputStream in = upload.getInputStream()) {
            Files.copy(in, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

}
