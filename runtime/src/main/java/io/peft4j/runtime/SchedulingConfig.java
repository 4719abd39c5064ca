package io.peft4j.runtime;

import io.micronaut.context.annotation.ConfigurationProperties;
import io.micronaut.context.env.Environment;
import io.micronaut.core.bind.annotation.Bindable;
import io.peft4j.core.Peft4jException;

/**
 * How a model's requests are scheduled, bound from {@code peft4j.scheduling.*}; a model overrides
 * any of them under {@code peft4j.models.<name>.scheduling.*} ({@link #forModel}).
 *
 * @param batching      whether queued requests run together (dynamic batching)
 * @param maxBatchRows  the most rows a dynamic batch joins (a larger single request still runs alone)
 * @param maxDelayMicros how long the first request of a batch waits for others
 * @param queueSize     requests that may wait per model; beyond that, 429 with {@code Retry-After}
 * @param workers       batches of one model that run at the same time
 * @param timeoutMillis the most a request waits for its result (queue and run); beyond that, 503
 */
@ConfigurationProperties("peft4j.scheduling")
public record SchedulingConfig(@Bindable(defaultValue = "false") boolean batching,
                               @Bindable(defaultValue = "32") int maxBatchRows,
                               @Bindable(defaultValue = "2000") long maxDelayMicros,
                               @Bindable(defaultValue = "64") int queueSize,
                               @Bindable(defaultValue = "2") int workers,
                               @Bindable(defaultValue = "30000") long timeoutMillis) {

    public SchedulingConfig {
        check(maxBatchRows >= 1 && maxBatchRows <= 65536, "max-batch-rows must be 1..65536, got " + maxBatchRows);
        check(maxDelayMicros >= 0 && maxDelayMicros <= 10_000_000, "max-delay-micros must be 0..10000000, got " + maxDelayMicros);
        check(queueSize >= 1, "queue-size must be at least 1, got " + queueSize);
        check(workers >= 1 && workers <= 256, "workers must be 1..256, got " + workers);
        check(timeoutMillis >= 1, "timeout-millis must be at least 1, got " + timeoutMillis);
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw Peft4jException.invalid("peft4j.scheduling." + message);
        }
    }

    /** These settings with the overrides of model {@code name} ({@code peft4j.models.<name>.scheduling.*}). */
    public SchedulingConfig forModel(Environment env, String name) {
        String p = "peft4j.models." + name + ".scheduling.";
        try {
            return new SchedulingConfig(
                    env.getProperty(p + "batching", Boolean.class).orElse(batching),
                    env.getProperty(p + "max-batch-rows", Integer.class).orElse(maxBatchRows),
                    env.getProperty(p + "max-delay-micros", Long.class).orElse(maxDelayMicros),
                    env.getProperty(p + "queue-size", Integer.class).orElse(queueSize),
                    env.getProperty(p + "workers", Integer.class).orElse(workers),
                    env.getProperty(p + "timeout-millis", Long.class).orElse(timeoutMillis));
        } catch (Peft4jException e) {
            throw Peft4jException.invalid("model '" + name + "': " + e.getMessage().replace("peft4j.scheduling.", p));
        }
    }
}
