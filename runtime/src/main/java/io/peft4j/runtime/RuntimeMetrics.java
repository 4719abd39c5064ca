package io.peft4j.runtime;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.Timer;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import jakarta.inject.Singleton;

import java.time.Duration;
import java.util.ArrayList;
import java.util.function.IntSupplier;

/**
 * The service's metrics, scraped in Prometheus' text format at {@code /metrics}:
 * <ul>
 *   <li>{@code peft4j_request_seconds{model, adapter, status}}: inference request latency
 *       (histogram), adapter {@code base}, a name, or {@code per-row};</li>
 *   <li>{@code peft4j_batch_rows{model}} and {@code peft4j_inference_seconds{model}}: rows and time
 *       of each pass through the backend (a dynamic batch or a single request);</li>
 *   <li>{@code peft4j_queue_depth{model}}: requests waiting;</li>
 *   <li>{@code peft4j_requests_refused_total{model, reason}}: {@code queue_full} (429) and
 *       {@code timeout} (503).</li>
 * </ul>
 * Model tags are the names of loaded models only (requests for unknown names count as
 * {@code unknown}), so a client cannot grow the label set at will.
 */
@Singleton
public final class RuntimeMetrics {

    private static final Duration[] LATENCY_BUCKETS = {
        Duration.ofMillis(1), Duration.ofMillis(2), Duration.ofMillis(5), Duration.ofMillis(10), Duration.ofMillis(20),
        Duration.ofMillis(50), Duration.ofMillis(100), Duration.ofMillis(200), Duration.ofMillis(500), Duration.ofSeconds(1),
        Duration.ofSeconds(2), Duration.ofSeconds(5)};

    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);

    public PrometheusMeterRegistry registry() {
        return registry;
    }

    /** One inference request, with its HTTP status. */
    void request(String model, String adapter, int status, long nanos) {
        Timer.builder("peft4j.request").description("inference request latency, parsing and answering included")
                .tags("model", model, "adapter", adapter, "status", Integer.toString(status))
                .serviceLevelObjectives(LATENCY_BUCKETS).register(registry).record(Duration.ofNanos(nanos));
    }

    /** One pass through the backend: its rows and time. */
    void batch(String model, int rows, long nanos) {
        DistributionSummary.builder("peft4j.batch.rows").description("rows per pass through the backend")
                .tags("model", model).serviceLevelObjectives(1, 2, 4, 8, 16, 32, 64).register(registry).record(rows);
        Timer.builder("peft4j.inference").description("time of a pass through the backend").tags("model", model)
                .serviceLevelObjectives(LATENCY_BUCKETS).register(registry).record(Duration.ofNanos(nanos));
    }

    void queue(String model, IntSupplier depth) {
        forgetQueue(model);
        Gauge.builder("peft4j.queue.depth", depth, d -> d.getAsInt()).description("requests waiting")
                .tags("model", model).strongReference(true).register(registry);
    }

    void rejected(String model) {
        refused(model, "queue_full");
    }

    void timedOut(String model) {
        refused(model, "timeout");
    }

    private void refused(String model, String reason) {
        Counter.builder("peft4j.requests.refused").description("requests refused or given up")
                .tags("model", model, "reason", reason).register(registry).increment();
    }

    /** Drops the queue gauge of a model that is no longer served. */
    void forget(String model) {
        forgetQueue(model);
    }

    private void forgetQueue(String model) {
        for (Meter m : new ArrayList<>(registry.getMeters())) {
            if (m.getId().getName().equals("peft4j.queue.depth") && model.equals(m.getId().getTag("model"))) {
                registry.remove(m);
            }
        }
    }

    /** The Prometheus text exposition of every metric. */
    public String scrape() {
        return registry.scrape();
    }
}
