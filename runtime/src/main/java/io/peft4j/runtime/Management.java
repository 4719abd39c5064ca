package io.peft4j.runtime;

import io.micronaut.context.annotation.Value;
import io.micronaut.http.HttpHeaders;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpStatus;
import jakarta.inject.Singleton;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Map;

/**
 * Who may call the management endpoints (load, unload, adapter registration and removal): with a
 * token configured, requests that carry {@code Authorization: Bearer <token>} (compared in
 * constant time); without one, nobody when the server listens on a non-loopback address, and
 * anyone on a loopback bind (only this machine can reach it). Inference and read-only endpoints
 * are open.
 */
@Singleton
public final class Management {

    private final byte[] token;
    private final String host;
    private final boolean loopback;

    public Management(RuntimeConfig config, @Value("${micronaut.server.host:}") String host) {
        this.token = config.hasToken() ? config.token().getBytes(StandardCharsets.UTF_8) : null;
        this.host = host;
        this.loopback = isLoopback(host);
    }

    /** Whether {@code host} (a bind address; empty: every interface) is a loopback address. */
    static boolean isLoopback(String host) {
        if (host == null || host.isBlank()) {
            return false;
        }
        try {
            for (InetAddress a : InetAddress.getAllByName(host)) {
                if (!a.isLoopbackAddress()) {
                    return false;
                }
            }
            return true;
        } catch (UnknownHostException e) {
            return false;
        }
    }

    /** Refuses {@code request} (401 or 403, with the reason) unless it may manage the server. */
    public void require(HttpRequest<?> request) {
        if (token == null) {
            if (!loopback) {
                throw new ApiException(HttpStatus.FORBIDDEN, "management endpoints are disabled: the server listens on "
                        + (host == null || host.isBlank() ? "every interface" : host) + " without a token; start it with "
                        + "--token (or PEFT4J_TOKEN) to enable them");
            }
            return;
        }
        String auth = request.getHeaders().get(HttpHeaders.AUTHORIZATION);
        Map<String, String> challenge = Map.of(HttpHeaders.WWW_AUTHENTICATE, "Bearer realm=\"peft4j\"");
        if (auth == null || auth.isBlank()) {
            throw new ApiException(HttpStatus.UNAUTHORIZED, "this endpoint needs a bearer token: send Authorization: "
                    + "Bearer <token>", challenge);
        }
        if (!auth.regionMatches(true, 0, "Bearer ", 0, 7)) {
            throw new ApiException(HttpStatus.UNAUTHORIZED, "the Authorization header must be 'Bearer <token>'", challenge);
        }
        byte[] given = auth.substring(7).trim().getBytes(StandardCharsets.UTF_8);
        if (!MessageDigest.isEqual(given, token)) {
            throw new ApiException(HttpStatus.UNAUTHORIZED, "the bearer token is not valid", challenge);
        }
    }
}
