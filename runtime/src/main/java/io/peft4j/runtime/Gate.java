package io.peft4j.runtime;

import io.micronaut.http.HttpStatus;
import jakarta.inject.Singleton;

import java.util.Map;

/**
 * Counts the requests that compute (inference, loading, registration) so that shutdown can let
 * them finish: once {@link #drain} is called, new ones are answered 503 with {@code Retry-After},
 * and {@link #drain} returns when the last one in flight has left (or the wait is over).
 */
@Singleton
public final class Gate {

    private int inFlight;
    private boolean draining;

    /** Admits a request, or refuses it with 503 while the server shuts down. */
    public synchronized void enter() {
        if (draining) {
            throw new ApiException(HttpStatus.SERVICE_UNAVAILABLE, "the server is shutting down", Map.of("Retry-After", "5"));
        }
        inFlight++;
    }

    public synchronized void exit() {
        inFlight--;
        if (inFlight == 0) {
            notifyAll();
        }
    }

    public synchronized int inFlight() {
        return inFlight;
    }

    public synchronized boolean draining() {
        return draining;
    }

    /** Refuses new requests and waits up to {@code millis} for those in flight; true when none is left. */
    public synchronized boolean drain(long millis) {
        draining = true;
        long end = System.currentTimeMillis() + millis;
        while (inFlight > 0) {
            long left = end - System.currentTimeMillis();
            if (left <= 0) {
                return false;
            }
            try {
                wait(left);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return inFlight == 0;
            }
        }
        return true;
    }
}
