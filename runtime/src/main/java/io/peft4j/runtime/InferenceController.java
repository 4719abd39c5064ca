package io.peft4j.runtime;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.Header;
import io.micronaut.http.annotation.PathVariable;
import io.micronaut.http.annotation.Post;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.AdapterInfo;
import io.peft4j.devices.AdapterSelection;
import io.peft4j.devices.InferenceBackend;
import io.peft4j.devices.InferenceResult;
import io.peft4j.devices.ModelInfo;
import io.peft4j.devices.TensorSpec;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The Open Inference Protocol v2 over REST (KServe / Triton): server metadata, health, model
 * metadata and readiness, and inference with JSON tensors. The adapter of a request is
 * {@code parameters.adapter} (none: the base model) or, one per batch row,
 * {@code parameters.adapters}; the response names the adapter versions it was computed with.
 * Model metadata carries the package's labels and image preprocessing where it has them.
 */
@Controller("/v2")
public final class InferenceController {

    private final ModelRepository repository;
    private final RuntimeConfig config;
    private final Gate gate;
    private final RuntimeMetrics metrics;

    public InferenceController(ModelRepository repository, RuntimeConfig config, Gate gate, RuntimeMetrics metrics) {
        this.repository = repository;
        this.config = config;
        this.gate = gate;
        this.metrics = metrics;
    }

    @Get
    public Map<String, Object> server() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("name", "peft4j");
        m.put("version", Versions.peft4j());
        m.put("extensions", List.of("model_repository", "adapters", "binary_tensor_data"));
        return m;
    }

    @Get("/health/live")
    public Map<String, Object> live() {
        return Map.of("live", true);
    }

    /** Ready when not shutting down and every package of the repository is served. */
    @Get("/health/ready")
    public HttpResponse<Map<String, Object>> ready() {
        boolean ready = !gate.draining() && repository.allReady();
        return HttpResponse.status(ready ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE).body(Map.of("ready", ready));
    }

    @Get("/models/{model}")
    public Map<String, Object> metadata(@PathVariable String model) {
        InferenceBackend b = repository.get(model);
        ModelInfo info = b.info();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("name", model);
        m.put("versions", List.of("1"));
        m.put("platform", "onnxruntime_onnx");
        m.put("inputs", specs(info.inputs()));
        m.put("outputs", specs(info.outputs()));
        Map<String, Object> p = new LinkedHashMap<>();
        p.put("mode", info.mode().name());
        p.put("backend", b.name());
        p.put("max_rank", info.maxRank());
        if (info.baseFingerprint() != null) {
            p.put("base_fingerprint", info.baseFingerprint());
        }
        p.put("adapters", b.adapters().stream().map(AdapterInfo::name).toList());
        if (b instanceof io.peft4j.devices.ort.OrtBackend ort && ort.mergedSessionCapacity() > 0) {
            List<String> merged = ort.mergedSessions();
            Map<String, Object> ms = new LinkedHashMap<>();
            ms.put("capacity", ort.mergedSessionCapacity());
            ms.put("base", merged.contains(null));
            ms.put("adapters", merged.stream().filter(java.util.Objects::nonNull).toList());
            p.put("merged_sessions", ms);
        }
        info.manifest().ifPresent(man -> {
            if (!man.labels().isEmpty()) {
                p.put("labels", man.labels());
            }
            Manifest.Preprocessing pre = man.preprocessing();
            if (pre != null) {
                Map<String, Object> q = new LinkedHashMap<>();
                q.put("input", pre.input());
                q.put("height", pre.height());
                q.put("width", pre.width());
                q.put("channels", pre.channels());
                q.put("mean", pre.mean());
                q.put("std", pre.std());
                p.put("preprocessing", q);
            }
        });
        m.put("parameters", p);
        return m;
    }

    @Get("/models/{model}/ready")
    public HttpResponse<Map<String, Object>> modelReady(@PathVariable String model) {
        boolean ready = repository.isLoaded(model);
        if (!ready) {
            repository.get(model);   // unknown: 404 with the models served
        }
        return HttpResponse.ok(Map.of("name", model, "ready", true));
    }

    /**
     * The body is read as JSON whatever its declared type (curl -d sends form-urlencoded), or,
     * with an {@code Inference-Header-Content-Length} header, as that many bytes of JSON followed
     * by binary tensor data (Triton's binary tensor data extension). An answer with binary outputs
     * is {@code application/octet-stream} with the same header giving its JSON's length.
     */
    @Post(uri = "/models/{model}/infer", consumes = {MediaType.APPLICATION_JSON, MediaType.TEXT_PLAIN, MediaType.APPLICATION_FORM_URLENCODED,
            MediaType.APPLICATION_OCTET_STREAM}, produces = {MediaType.APPLICATION_JSON, MediaType.APPLICATION_OCTET_STREAM})
    @ExecuteOn(TaskExecutors.BLOCKING)
    public HttpResponse<byte[]> infer(@PathVariable String model, @Nullable @Header(InferCodec.HEADER_LENGTH) String headerLength,
                                      @Body byte[] body) {
        long t0 = System.nanoTime();
        String modelTag = "unknown";
        String adapterTag = "base";
        int status = 500;
        gate.enter();
        try {
            ModelScheduler s = repository.scheduler(model);
            modelTag = model;
            InferCodec.Request r = InferCodec.read(body, headerLength(headerLength), config.maxBatchRows());
            adapterTag = r.adapters() != null ? "per-row" : r.adapter() != null ? r.adapter() : "base";
            checkTypes(model, s.backend().info(), r.inputs());
            AdapterSelection sel = r.adapters() != null ? AdapterSelection.perRow(r.adapters()) : AdapterSelection.of(r.adapter());
            InferenceResult result = s.run(InferCodec.tensors(r.inputs()), sel, r.outputs());
            Map<String, Object> params = new LinkedHashMap<>();
            if (r.adapter() != null) {
                params.put("adapter", r.adapter());
            }
            if (!result.adapterVersions().isEmpty()) {
                params.put("adapter_versions", new LinkedHashMap<>(result.adapterVersions()));
            }
            Map<String, Tensor> outputs = result.outputs();
            InferCodec.Body answer = InferCodec.write(model, r.id(), params, outputs, r::binary);
            status = 200;
            if (answer.binary()) {
                return HttpResponse.ok(answer.bytes()).contentType(MediaType.APPLICATION_OCTET_STREAM_TYPE)
                        .header(InferCodec.HEADER_LENGTH, Integer.toString(answer.headerLength()));
            }
            return HttpResponse.ok(answer.bytes()).contentType(MediaType.APPLICATION_JSON_TYPE);
        } catch (ApiException e) {
            status = e.status().getCode();
            throw e;
        } catch (Peft4jException e) {
            status = ErrorHandlers.status(e.code()).getCode();
            throw e;
        } finally {
            gate.exit();
            if (status == 404 && !adapterTag.equals("base") && !adapterTag.equals("per-row")) {
                adapterTag = "unknown";   // a name that may not exist is not a label
            }
            metrics.request(modelTag, adapterTag, status, System.nanoTime() - t0);
        }
    }

    @Post(uri = "/models/{model}/versions/1/infer", consumes = {MediaType.APPLICATION_JSON, MediaType.TEXT_PLAIN, MediaType.APPLICATION_FORM_URLENCODED,
            MediaType.APPLICATION_OCTET_STREAM}, produces = {MediaType.APPLICATION_JSON, MediaType.APPLICATION_OCTET_STREAM})
    @ExecuteOn(TaskExecutors.BLOCKING)
    public HttpResponse<byte[]> inferVersion(@PathVariable String model, @Nullable @Header(InferCodec.HEADER_LENGTH) String headerLength,
                                             @Body byte[] body) {
        return infer(model, headerLength, body);
    }

    /** The JSON length an {@code Inference-Header-Content-Length} header gives; -1 without one. */
    static int headerLength(String value) {
        if (value == null) {
            return -1;
        }
        try {
            int n = Integer.parseInt(value.trim());
            if (n >= 0) {
                return n;
            }
        } catch (NumberFormatException e) {
            // answered below
        }
        throw ApiException.badRequest(InferCodec.HEADER_LENGTH + " must be the length of the JSON in bytes, a non-negative integer; "
                + "got '" + value + "'");
    }

    /** Input datatypes against the model's, in the protocol's names. */
    private static void checkTypes(String model, ModelInfo info, List<InferCodec.Input> inputs) {
        for (InferCodec.Input in : inputs) {
            TensorSpec s = info.input(in.name()).orElse(null);
            if (s != null && s.dtype() != in.tensor().dtype()) {
                throw ApiException.badRequest("input '" + in.name() + "' has datatype " + in.datatype() + "; model '" + model
                        + "' takes " + InferCodec.datatype(s.dtype()));
            }
        }
    }

    static List<Map<String, Object>> specs(List<TensorSpec> specs) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (TensorSpec s : specs) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("name", s.name());
            m.put("datatype", InferCodec.datatype(s.dtype()));
            List<Long> shape = new ArrayList<>();
            for (long d : s.shape()) {
                shape.add(d);
            }
            m.put("shape", shape);
            out.add(m);
        }
        return out;
    }
}
