package io.peft4j.bench;

import io.peft4j.core.tensor.Tensor;
import io.peft4j.runtime.InferCodec;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * {@link InferCodec#read} alone on the load test's request (one resnet18 row, 1×3×64×64 FP32,
 * seeded Gaussian values): as OIP JSON and with Triton's binary tensor data extension. Runs
 * {@code --rounds} rounds of {@code --iterations} reads each after a warm-up and prints each
 * round's median, then the median of the rounds, so that before/after comparisons can be made on
 * a busy machine.
 *
 * <pre>CodecBench [--iterations 2000] [--rounds 5]</pre>
 */
public final class CodecBench {

    private CodecBench() {
    }

    /** The load test's first request body, as JSON and as binary tensor data. */
    record Bodies(byte[] json, InferCodec.Body binary) {
    }

    static Bodies bodies() throws IOException {
        Random r = new Random(100);
        float[] v = new float[3 * 64 * 64];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) r.nextGaussian();
        }
        Map<String, Tensor> in = new LinkedHashMap<>();
        in.put("input", Tensor.ofFloats(new long[] {1, 3, 64, 64}, v));
        return new Bodies(LoadTest.body(in, "a"), LoadTest.binaryBody(in, "a"));
    }

    public static void main(String[] args) throws IOException {
        int iterations = 2000;
        int rounds = 5;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--iterations" -> iterations = Integer.parseInt(args[++i]);
                case "--rounds" -> rounds = Integer.parseInt(args[++i]);
                default -> {
                    System.err.println("usage: CodecBench [--iterations N] [--rounds R]");
                    System.exit(2);
                }
            }
        }
        Bodies b = bodies();
        System.out.printf(Locale.ROOT, "InferCodec.read, 12,288 FP32 values: JSON body %d bytes, binary body %d bytes%n",
                b.json().length, b.binary().bytes().length);
        Latencies jsonRounds = new Latencies();
        Latencies binaryRounds = new Latencies();
        for (int round = -1; round < rounds; round++) {   // round -1: warm-up
            Latencies json = new Latencies();
            Latencies binary = new Latencies();
            for (int i = 0; i < iterations; i++) {
                long t0 = System.nanoTime();
                InferCodec.read(b.json(), -1, 1024);
                long t1 = System.nanoTime();
                InferCodec.read(b.binary().bytes(), b.binary().headerLength(), 1024);
                long t2 = System.nanoTime();
                json.add(t1 - t0);
                binary.add(t2 - t1);
            }
            if (round >= 0) {
                System.out.printf(Locale.ROOT, "round %d: JSON median %.1f µs, binary median %.1f µs%n", round + 1,
                        json.percentile(0.5) / 1e3, binary.percentile(0.5) / 1e3);
                jsonRounds.add(json.percentile(0.5));
                binaryRounds.add(binary.percentile(0.5));
            }
        }
        System.out.printf(Locale.ROOT, "median of %d rounds: JSON %.1f µs (%.1f ns per value), binary %.1f µs%n", rounds,
                jsonRounds.percentile(0.5) / 1e3, jsonRounds.percentile(0.5) / 12288.0, binaryRounds.percentile(0.5) / 1e3);
    }
}
