package io.peft4j.bench;

/**
 * The settings every benchmark shares. They are part of what the report states: change them here
 * and the fixtures are rebuilt ({@link Fixtures#VERSION} includes them).
 */
public final class Bench {

    /** ONNX Runtime intra-op threads (inter-op: 1, sequential execution). */
    public static final int THREADS = 2;
    /** Rows per inference batch (images or sequences). */
    public static final int BATCH = 8;
    /** Tokens per sequence (MiniLM). */
    public static final int SEQ = 128;
    /**
     * Rows of the batch the adapter-switching benchmarks run: switching costs the same whatever the
     * batch, and a small one keeps that cost from drowning in the run's own noise.
     */
    public static final int SMALL_BATCH = 1;
    /** Tokens per sequence in the small batch (MiniLM). */
    public static final int SMALL_SEQ = 16;
    /** LoRA rank of every benchmark adapter. */
    public static final int RANK = 8;
    /** LoRA alpha (scale alpha / r = 2). */
    public static final double ALPHA = 16;
    /** Adapters stacked in the multi-adapter model; a multi batch mixes all of them. */
    public static final int ADAPTERS = 4;
    /** Standard deviation of the random lora_B values (PEFT initialises B to zero; these do real work). */
    public static final double B_SIGMA = 0.02;

    private Bench() {
    }

    /** One line for the report. */
    public static String summary() {
        return "ONNX Runtime CPU, one pool of " + THREADS + " intra-op threads shared by the sessions (worker threads "
                + (OrtSupport.spinning() ? "spin while waiting, ONNX Runtime's default" : "do not spin") + "), sequential "
                + "execution, all graph optimizations; batch " + BATCH + "; LoRA r = " + RANK + ", alpha = " + (long) ALPHA
                + "; multi-adapter batches mix " + ADAPTERS + " adapters";
    }
}
