package io.peft4j.runtime;

import io.micronaut.context.ApplicationContext;
import io.peft4j.core.Peft4jException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Configuration bound from properties (as application.yml, environment and flags give them) and the bind rules. */
class ConfigAndBindTest {

    @Test
    void configIsBoundFromPropertiesWithDefaults(@TempDir Path repo) {
        try (ApplicationContext ctx = ApplicationContext.run(Map.of("peft4j.repo", repo.toString(), "peft4j.token", "t",
                "peft4j.threads", 3))) {
            RuntimeConfig c = ctx.getBean(RuntimeConfig.class);
            assertEquals(repo.toString(), c.repo());
            assertEquals("t", c.token());
            assertEquals(3, c.threads());
            assertEquals(67108864L, c.maxUploadBytes(), "application.yml's default");
            assertEquals(1024, c.maxBatchRows());
            assertFalse(c.spinning(), "ONNX Runtime's threads sleep while waiting unless told (serve --spin)");
            assertEquals(0, c.mergedSessions(), "merged sessions are off unless asked for");
        }
        try (ApplicationContext ctx = ApplicationContext.run(Map.of("peft4j.repo", repo.toString(), "peft4j.spinning", "true"))) {
            assertTrue(ctx.getBean(RuntimeConfig.class).spinning());
        }
        try (ApplicationContext ctx = ApplicationContext.run(Map.of("peft4j.repo", repo.toString(), "peft4j.token", " "))) {
            assertNull(ctx.getBean(RuntimeConfig.class).token(), "a blank token is none");
        }
    }

    @Test
    void badSettingsStopTheStartWithTheirName(@TempDir Path repo) {
        Peft4jException e = assertThrows(Peft4jException.class, () -> Peft4jServer.start(Peft4jServer.Options.of(repo)
                .withProperty("peft4j.threads", 0)));
        assertTrue(e.getMessage().contains("peft4j.threads"), e.getMessage());
        Peft4jException missing = assertThrows(Peft4jException.class, () -> Peft4jServer.start(Peft4jServer.Options.of(
                repo.resolve("absent"))));
        assertTrue(missing.getMessage().contains("model repository not found"), missing.getMessage());
    }

    @Test
    void loopbackBindsAreRecognised() {
        assertTrue(Management.isLoopback("127.0.0.1"));
        assertTrue(Management.isLoopback("localhost"));
        assertTrue(Management.isLoopback("::1"));
        assertFalse(Management.isLoopback("0.0.0.0"));
        assertFalse(Management.isLoopback(""));
        assertFalse(Management.isLoopback(null));
    }

    @Test
    void aNonLoopbackBindWithoutATokenRefusesManagement(@TempDir Path repo) {
        // listens on every interface; the test talks to it over loopback only
        try (Peft4jServer s = Peft4jServer.start(Peft4jServer.Options.of(repo).withHost("0.0.0.0"))) {
            Http http = new Http(java.net.URI.create("http://127.0.0.1:" + s.port()), null);
            Http.Reply r = http.post("/v2/repository/models/m/load", "");
            assertEquals(403, r.status(), r.toString());
            assertTrue(r.error().contains("without a token"), r.error());
            assertEquals(200, http.get("/v2/health/live").status());
            assertEquals(200, http.get("/v2/repository/index").status());
        }
    }
}
