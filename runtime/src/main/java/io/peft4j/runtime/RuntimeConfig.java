package io.peft4j.runtime;

import io.micronaut.context.annotation.ConfigurationProperties;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.core.bind.annotation.Bindable;
import io.peft4j.core.Peft4jException;

/**
 * The service's own settings, bound from {@code peft4j.*} in {@code application.yml}, environment
 * variables ({@code PEFT4J_REPO}, {@code PEFT4J_TOKEN}, …) and the properties
 * {@link Peft4jServer#start} passes (flags), in rising priority. Checked when bound: a bad value
 * stops the start with a message that names the setting. Where the server listens is Micronaut's
 * {@code micronaut.server.host} / {@code port}; body size limits are
 * {@code micronaut.server.max-request-size} and {@code micronaut.server.multipart.max-file-size}.
 *
 * @param repo              the model repository: a directory of model packages, each loaded at start
 * @param token             the bearer token the management endpoints require (load, unload, adapter
 *                          registration and removal); empty or absent: none, and then those endpoints
 *                          answer only on a loopback bind
 * @param threads           ONNX Runtime intra-op threads per model
 * @param maxUploadBytes    the most an adapter upload (both files together) may hold
 * @param maxBatchRows      the most rows one inference request may carry
 * @param device            the device profile whose backend order picks the backend ({@code auto}:
 *                          the detected device's); absent: ONNX Runtime on the CPU, as always
 * @param profiles          a JSON file or directory of device profiles added to the built-in ones
 *                          (only with {@code device})
 * @param deviceRoot        the filesystem root detection reads ({@code /} when absent; a copy of
 *                          another machine's {@code /proc} and {@code /etc} for tests)
 * @param spinning          whether ONNX Runtime's worker threads spin while they wait for work (ONNX
 *                          Runtime's own default). Off by default here: a server shares its cores
 *                          with its HTTP threads (and often the clients), and spinning threads take
 *                          the CPU from them; on 2 cores, bench/load measured spinning to add 2 to
 *                          3 ms to a request, and no gain for the run itself
 * @param mergedSessions    side packages on ONNX Runtime's CPU provider: how many adapters per model
 *                          (the base model counting as one) may run on a session of their own with
 *                          the adapter merged into the weights, built in the background after their
 *                          first request (2 to 3 times the weights in memory each). 0, the default: every
 *                          request runs the side graph, and answers are bit-identical to
 *                          {@code peft4j predict}'s; a merged session agrees with the side graph to
 *                          float rounding (about 1e-7 relative), not bit for bit
 */
@ConfigurationProperties("peft4j")
public record RuntimeConfig(@Nullable String repo,
                            @Nullable String token,
                            @Bindable(defaultValue = "2") int threads,
                            @Bindable(defaultValue = "67108864") long maxUploadBytes,
                            @Bindable(defaultValue = "1024") int maxBatchRows,
                            @Nullable String device,
                            @Nullable String profiles,
                            @Nullable String deviceRoot,
                            @Bindable(defaultValue = "false") boolean spinning,
                            @Bindable(defaultValue = "0") int mergedSessions) {

    public RuntimeConfig {
        if (repo == null || repo.isBlank()) {
            throw Peft4jException.invalid("peft4j.repo is not set: give the model repository directory (--repo DIR, or "
                    + "PEFT4J_REPO)");
        }
        if (threads < 1 || threads > 256) {
            throw Peft4jException.invalid("peft4j.threads must be 1..256, got " + threads);
        }
        if (mergedSessions < 0 || mergedSessions > 64) {
            throw Peft4jException.invalid("peft4j.merged-sessions must be 0..64, got " + mergedSessions);
        }
        if (maxUploadBytes < 1024) {
            throw Peft4jException.invalid("peft4j.max-upload-bytes must be at least 1024, got " + maxUploadBytes);
        }
        if (maxBatchRows < 1) {
            throw Peft4jException.invalid("peft4j.max-batch-rows must be at least 1, got " + maxBatchRows);
        }
        token = token == null || token.isBlank() ? null : token;
        device = device == null || device.isBlank() ? null : device.strip();
        profiles = profiles == null || profiles.isBlank() ? null : profiles;
        deviceRoot = deviceRoot == null || deviceRoot.isBlank() ? null : deviceRoot;
        if (device == null && (profiles != null || deviceRoot != null)) {
            throw Peft4jException.invalid("peft4j.profiles and peft4j.device-root go with peft4j.device (--device PROFILE)");
        }
    }

    /** Whether a token is configured. */
    public boolean hasToken() {
        return token != null;
    }
}
