package io.peft4j.runtime;

import io.micronaut.http.HttpRequest;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.PathVariable;
import io.micronaut.http.annotation.Post;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import io.peft4j.devices.InferenceBackend;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The model repository extension of the protocol (Triton's): the index of the repository's
 * packages with their state, and loading (or reloading) and unloading one. Loading and unloading
 * are management endpoints ({@link Management}).
 */
@Controller("/v2/repository")
public final class RepositoryController {

    private final ModelRepository repository;
    private final Management management;
    private final Gate gate;

    public RepositoryController(ModelRepository repository, Management management, Gate gate) {
        this.repository = repository;
        this.management = management;
        this.gate = gate;
    }

    @Get("/index")
    public List<Map<String, Object>> index() {
        List<Map<String, Object>> out = new ArrayList<>();
        for (ModelRepository.Entry e : repository.index()) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("name", e.name());
            m.put("version", "1");
            m.put("state", e.state());
            if (e.reason() != null) {
                m.put("reason", e.reason());
            }
            out.add(m);
        }
        return out;
    }

    /** Triton's spelling of the index request. */
    @Post("/index")
    public List<Map<String, Object>> indexPost() {
        return index();
    }

    @Post("/models/{model}/load")
    @ExecuteOn(TaskExecutors.BLOCKING)
    public Map<String, Object> load(HttpRequest<?> request, @PathVariable String model) {
        management.require(request);
        gate.enter();
        try {
            InferenceBackend b = repository.load(model);
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("name", model);
            m.put("state", "READY");
            m.put("mode", b.info().mode().name());
            m.put("adapters", b.adapters().stream().map(a -> a.name()).toList());
            return m;
        } finally {
            gate.exit();
        }
    }

    @Post("/models/{model}/unload")
    @ExecuteOn(TaskExecutors.BLOCKING)
    public Map<String, Object> unload(HttpRequest<?> request, @PathVariable String model) {
        management.require(request);
        if (!repository.unload(model)) {
            repository.get(model);   // not loaded: 404 with the reason
        }
        return Map.of("name", model, "state", "UNAVAILABLE");
    }
}
