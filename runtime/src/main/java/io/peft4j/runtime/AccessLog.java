package io.peft4j.runtime;

import io.micronaut.http.HttpRequest;
import io.micronaut.http.MutableHttpResponse;
import io.micronaut.http.annotation.RequestFilter;
import io.micronaut.http.annotation.ResponseFilter;
import io.micronaut.http.annotation.ServerFilter;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Locale;

/**
 * One log line per request on the logger {@code peft4j.access}: method, path, status, milliseconds
 * and the client's address, e.g. {@code POST /v2/models/m/infer 200 12.3 ms 127.0.0.1}. Turn it
 * off with {@code -Dorg.slf4j.simpleLogger.log.peft4j.access=warn} (in {@code PEFT4J_JAVA_OPTS}).
 */
@ServerFilter("/**")
final class AccessLog {

    private static final Logger LOG = LoggerFactory.getLogger("peft4j.access");
    private static final String START = "peft4j.start";

    @RequestFilter
    void start(HttpRequest<?> request) {
        if (LOG.isInfoEnabled()) {
            request.setAttribute(START, System.nanoTime());
        }
    }

    @ResponseFilter
    void log(HttpRequest<?> request, MutableHttpResponse<?> response) {
        if (!LOG.isInfoEnabled()) {
            return;
        }
        double ms = request.getAttribute(START, Long.class).map(t -> (System.nanoTime() - t) / 1e6).orElse(Double.NaN);
        LOG.info(String.format(Locale.ROOT, "%s %s %d %.1f ms %s", request.getMethodName(), request.getPath(),
                response.code(), ms, request.getRemoteAddress().getAddress().getHostAddress()));
    }
}
