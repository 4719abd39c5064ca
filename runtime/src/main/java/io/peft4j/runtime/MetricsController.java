package io.peft4j.runtime;

import io.micronaut.http.HttpResponse;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;

/** {@code GET /metrics}: every metric in Prometheus' text format (see {@link RuntimeMetrics}). */
@Controller("/metrics")
public final class MetricsController {

    private final RuntimeMetrics metrics;

    public MetricsController(RuntimeMetrics metrics) {
        this.metrics = metrics;
    }

    @Get(produces = MediaType.TEXT_PLAIN)
    public HttpResponse<String> scrape() {
        return HttpResponse.ok(metrics.scrape()).contentType("text/plain; version=0.0.4; charset=utf-8");
    }
}
