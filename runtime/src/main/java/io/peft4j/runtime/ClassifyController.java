package io.peft4j.runtime;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Part;
import io.micronaut.http.annotation.PathVariable;
import io.micronaut.http.annotation.Post;
import io.micronaut.http.annotation.QueryValue;
import io.micronaut.http.multipart.CompletedFileUpload;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.image.Images;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.AdapterSelection;
import io.peft4j.devices.InferenceResult;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code POST /v2/models/{m}/classify}: the path a camera uses. Takes one image (the raw bytes as
 * the body, or a multipart part named {@code image}), applies the package's preprocessing from its
 * manifest (size, channels, mean, std), runs it with {@code ?adapter=NAME} (none: the base model),
 * and answers the top labels ({@code ?top=K}, default 5) with softmax scores and the latency.
 * Refused with the reason for a package exported without preprocessing.
 */
@Controller("/v2/models/{model}/classify")
public final class ClassifyController {

    private final ModelRepository repository;
    private final Gate gate;
    private final RuntimeMetrics metrics;

    public ClassifyController(ModelRepository repository, Gate gate, RuntimeMetrics metrics) {
        this.repository = repository;
        this.gate = gate;
        this.metrics = metrics;
    }

    @Post(consumes = {"image/jpeg", "image/png", "image/bmp", "image/gif", MediaType.APPLICATION_OCTET_STREAM})
    @ExecuteOn(TaskExecutors.BLOCKING)
    public Map<String, Object> raw(@PathVariable String model, @Nullable @QueryValue String adapter,
                                   @Nullable @QueryValue Integer top, @Body byte[] body) {
        return classify(model, adapter, top, body);
    }

    @Post(consumes = MediaType.MULTIPART_FORM_DATA)
    @ExecuteOn(TaskExecutors.BLOCKING)
    public Map<String, Object> form(@PathVariable String model, @Nullable @QueryValue String adapter,
                                    @Nullable @QueryValue Integer top, @Part("image") CompletedFileUpload image) {
        try {
            return classify(model, adapter, top, image.getBytes());
        } catch (IOException e) {
            throw ApiException.badRequest("cannot read the uploaded image: " + e.getMessage());
        }
    }

    private Map<String, Object> classify(String model, String adapter, Integer top, byte[] image) {
        long t0 = System.nanoTime();
        int k = top == null ? 5 : top;
        if (k < 1) {
            throw ApiException.badRequest("top must be at least 1, got " + k);
        }
        if (image == null || image.length == 0) {
            throw ApiException.badRequest("no image: send the image bytes as the body, or a multipart part named 'image'");
        }
        String modelTag = "unknown";
        int status = 500;
        gate.enter();
        try {
            ModelScheduler s = repository.scheduler(model);
            modelTag = model;
            Manifest m = s.backend().info().manifest().orElse(null);
            Manifest.Preprocessing pre = m == null ? null : m.preprocessing();
            if (pre == null) {
                throw Peft4jException.unsupported("model '" + model + "' has no image preprocessing in its manifest; export it "
                        + "with --image-size/--mean/--std (and --labels) to classify images, or use /infer");
            }
            Tensor x = Images.batch(List.of(Images.decode(image, "the uploaded image")), pre.height(), pre.width(),
                    pre.channels(), floats(pre.mean()), floats(pre.std()));
            InferenceResult r = s.run(Map.of(pre.input(), x), AdapterSelection.of(adapter), Set.of());
            Map.Entry<String, Tensor> first = r.outputs().entrySet().iterator().next();
            Tensor y = first.getValue();
            if (y.rank() != 2 || y.dim(0) != 1) {
                throw Peft4jException.shape("output '" + first.getKey() + "' has shape " + Arrays.toString(y.shape())
                        + "; classification needs [1, classes]");
            }
            float[] logits = y.toFloatArray();
            double[] p = softmax(logits);
            Integer[] order = new Integer[p.length];
            for (int c = 0; c < p.length; c++) {
                order[c] = c;
            }
            Arrays.sort(order, (a, b) -> Double.compare(p[b], p[a]));
            List<Map<String, Object>> labels = new ArrayList<>();
            for (int i = 0; i < Math.min(k, p.length); i++) {
                int c = order[i];
                Map<String, Object> l = new LinkedHashMap<>();
                l.put("label", c < m.labels().size() ? m.labels().get(c) : "class " + c);
                l.put("index", c);
                l.put("score", p[c]);
                labels.add(l);
            }
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("model_name", model);
            if (adapter != null) {
                out.put("adapter", adapter);
                out.put("adapter_version", r.adapterVersions().get(adapter));
            }
            out.put("labels", labels);
            out.put("latency_ms", (System.nanoTime() - t0) / 1e6);
            status = 200;
            return out;
        } catch (ApiException e) {
            status = e.status().getCode();
            throw e;
        } catch (Peft4jException e) {
            status = ErrorHandlers.status(e.code()).getCode();
            throw e;
        } finally {
            gate.exit();
            // the same request histogram as /infer: a camera's requests count like any other
            String adapterTag = adapter == null ? "base" : status == 404 ? "unknown" : adapter;
            metrics.request(modelTag, adapterTag, status, System.nanoTime() - t0);
        }
    }

    static double[] softmax(float[] v) {
        double max = Double.NEGATIVE_INFINITY;
        for (float f : v) {
            max = Math.max(max, f);
        }
        double sum = 0;
        double[] e = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            e[i] = Math.exp(v[i] - max);
            sum += e[i];
        }
        for (int i = 0; i < v.length; i++) {
            e[i] /= sum;
        }
        return e;
    }

    private static float[] floats(List<Double> l) {
        float[] f = new float[l.size()];
        for (int i = 0; i < f.length; i++) {
            f[i] = l.get(i).floatValue();
        }
        return f;
    }
}
