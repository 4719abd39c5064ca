package io.peft4j.runtime;

import org.junit.jupiter.api.Test;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GateTest {

    @Test
    void drainWaitsForRequestsInFlightAndRefusesNewOnes() throws Exception {
        Gate g = new Gate();
        g.enter();
        g.enter();
        CompletableFuture<Boolean> drained = CompletableFuture.supplyAsync(() -> g.drain(10_000));
        while (!g.draining()) {
            Thread.onSpinWait();
        }
        ApiException e = assertThrows(ApiException.class, g::enter);
        assertEquals(503, e.status().getCode());
        assertEquals("5", e.headers().get("Retry-After"));
        assertFalse(drained.isDone());
        g.exit();
        Thread.sleep(50);
        assertFalse(drained.isDone(), "one request still in flight");
        g.exit();
        assertTrue(drained.get(10, TimeUnit.SECONDS));
        assertEquals(0, g.inFlight());
    }

    @Test
    void drainGivesUpAfterItsTime() {
        Gate g = new Gate();
        g.enter();
        assertFalse(g.drain(50));
    }
}
