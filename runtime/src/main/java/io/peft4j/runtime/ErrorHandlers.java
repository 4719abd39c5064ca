package io.peft4j.runtime;

import io.micronaut.context.annotation.Replaces;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.MediaType;
import io.micronaut.http.MutableHttpResponse;
import io.micronaut.http.server.exceptions.ExceptionHandler;
import io.micronaut.http.server.exceptions.response.ErrorContext;
import io.micronaut.http.server.exceptions.response.JsonErrorResponseBodyProvider;
import io.peft4j.core.Peft4jException;
import jakarta.inject.Singleton;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Every error as the Open Inference Protocol answers it: a JSON object {@code {"error": "..."}}
 * with a 4xx status for bad requests, 5xx only for faults of the server itself. peft4j's error
 * codes map to statuses ({@link #status}); Micronaut's own errors (no such route, wrong method,
 * body too large, unreadable body) get the same body through {@link Body}.
 */
final class ErrorHandlers {

    private ErrorHandlers() {
    }

    static Map<String, Object> body(String message) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("error", message == null ? "unknown error" : message);
        return m;
    }

    /** The HTTP status of a peft4j error. */
    static HttpStatus status(Peft4jException.ErrorCode code) {
        return switch (code) {
            case NOT_FOUND -> HttpStatus.NOT_FOUND;
            case FINGERPRINT_MISMATCH -> HttpStatus.CONFLICT;
            case IO, MALFORMED, SHAPE_MISMATCH, INVALID_ARGUMENT, UNSUPPORTED, GRAPH_STATE -> HttpStatus.BAD_REQUEST;
        };
    }

    /** peft4j's exceptions: the message, with the status of its code. */
    @Singleton
    static final class Peft4jHandler implements ExceptionHandler<Peft4jException, HttpResponse<?>> {
        @Override
        public HttpResponse<?> handle(HttpRequest request, Peft4jException e) {
            return HttpResponse.status(status(e.code())).contentType(MediaType.APPLICATION_JSON_TYPE).body(body(e.getMessage()));
        }
    }

    /** The service's own HTTP errors, with their headers ({@code WWW-Authenticate}, {@code Retry-After}). */
    @Singleton
    static final class ApiHandler implements ExceptionHandler<ApiException, HttpResponse<?>> {
        @Override
        public HttpResponse<?> handle(HttpRequest request, ApiException e) {
            MutableHttpResponse<?> r = HttpResponse.status(e.status()).contentType(MediaType.APPLICATION_JSON_TYPE)
                    .body(body(e.getMessage()));
            e.headers().forEach(r::header);
            return r;
        }
    }

    /** The body of Micronaut's own errors (404 no route, 405, 413, 415, bad bodies): {"error": "..."}. */
    @Singleton
    @Replaces(JsonErrorResponseBodyProvider.class)
    static final class Body implements JsonErrorResponseBodyProvider<Map<String, Object>> {
        @Override
        public Map<String, Object> body(ErrorContext context, HttpResponse<?> response) {
            String message = context.hasErrors() ? context.getErrors().get(0).getMessage()
                    : context.getRootCause().map(Throwable::getMessage).orElse(response.reason());
            if (response.code() == HttpStatus.NOT_FOUND.getCode() && (message == null || message.equals("Page Not Found"))) {
                message = "no such endpoint: " + context.getRequest().getMethod() + " " + context.getRequest().getPath();
            }
            return ErrorHandlers.body(message);
        }
    }
}
