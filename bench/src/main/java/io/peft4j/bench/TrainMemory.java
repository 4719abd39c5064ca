package io.peft4j.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.core.Peft4jException;
import io.peft4j.trainer.GradientSession;
import io.peft4j.trainer.optim.AdamW;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The peak memory of one training session, in a JVM of its own (peaks do not mix):
 *
 * <pre>TrainMemory --model resnet18|mobilenet_v3_small --mode forward|lora|full [--steps N] [--out FILE]</pre>
 *
 * It builds the model and its gradient graph, then takes the resident set size (RSS) and resets
 * the process's peak (Linux: {@code 5 > /proc/self/clear_refs}), opens the session and runs
 * {@code N} full training steps (forward, backward, AdamW) — {@code forward}: N inference runs of
 * the LoRA-injected model instead — and reports the peak RSS ({@code VmHWM}) above the RSS before
 * the session opened: ONNX Runtime's copy of the weights, its arena, the activations kept for the
 * backward pass. Run it with a fixed, pre-touched heap ({@code -Xms = -Xmx},
 * {@code -XX:+AlwaysPreTouch}) so that the Java heap is resident before and does not grow into
 * the figure; the Java-side state (trainable values, gradients, AdamW's two moments, 16 bytes per
 * parameter) is reported beside it, counted. One JSON object per line is appended to FILE.
 */
public final class TrainMemory {

    private TrainMemory() {
    }

    public static void main(String[] args) {
        String model = null;
        String mode = null;
        int steps = 5;
        Path out = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (i + 1 >= args.length) {
                usage("missing value for " + a);
            }
            switch (a) {
                case "--model" -> model = args[++i];
                case "--mode" -> mode = args[++i];
                case "--steps" -> steps = Integer.parseInt(args[++i]);
                case "--out" -> out = Path.of(args[++i]);
                default -> usage("unknown option " + a);
            }
        }
        if (model == null || mode == null || !List.of("forward", "lora", "full").contains(mode) || steps < 1) {
            usage("--model and --mode (forward, lora or full) are required; --steps at least 1");
        }
        try {
            ObjectNode r = measure(Training.TrainModel.of(model), mode, steps);
            String line = new ObjectMapper().writeValueAsString(r);
            System.err.printf(Locale.ROOT, "bench: %s %s memory: session peak +%d MiB above %d MiB (%d trainable parameters)%n",
                    model, mode, r.get("sessionPeakKiB").asLong() >> 10, r.get("rssBeforeKiB").asLong() >> 10,
                    r.get("parameters").asLong());
            if (out != null) {
                Files.createDirectories(out.toAbsolutePath().getParent());
                Files.writeString(out, line + "\n", StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            } else {
                System.out.println(line);
            }
        } catch (Peft4jException e) {
            System.err.println("bench: error: " + e.getMessage());
            System.exit(1);
        } catch (Exception e) {
            System.err.println("bench: error: the " + model + " " + mode + " memory measurement failed: " + e);
            System.exit(1);
        }
    }

    private static void usage(String why) {
        System.err.println("bench: error: " + why + "\nusage: TrainMemory --model resnet18|mobilenet_v3_small "
                + "--mode forward|lora|full [--steps N] [--out FILE]");
        System.exit(2);
    }

    static ObjectNode measure(Training.TrainModel which, String mode, int steps) throws Exception {
        Training.Setup setup = mode.equals("full") ? Training.full(which) : Training.lora(which);
        Map<String, float[]> params = setup.paramsCopy();
        AdamW adamw = Training.optimizer();
        ObjectNode r = new ObjectMapper().createObjectNode();
        r.put("model", which.id());
        r.put("mode", mode);
        r.put("steps", steps);
        // ONNX Runtime's library and thread pool are loaded before: the figure is the session's
        OrtSupport.env();
        long before = resetPeak(r);
        double loss0 = Double.NaN;
        double loss = Double.NaN;
        try (OrtSession.SessionOptions o = Training.options()) {
            if (mode.equals("forward")) {
                try (OrtSession s = OrtSupport.env().createSession(setup.forward(), o);
                     OnnxTensor in = OrtSupport.toOrt(setup.batch().get("input"))) {
                    for (int i = 0; i < steps; i++) {
                        s.run(Map.of("input", in)).close();
                    }
                }
            } else {
                try (GradientSession s = new GradientSession(setup.graph(), o, List.of())) {
                    for (int i = 0; i < steps; i++) {
                        GradientSession.Step st = s.step(setup.batch(), params);
                        adamw.step(params, st.gradients());
                        loss = st.loss();
                        if (i == 0) {
                            loss0 = loss;
                        }
                    }
                }
            }
        }
        long peak = status("VmHWM");
        r.put("rssBeforeKiB", before);
        r.put("peakKiB", peak);
        r.put("sessionPeakKiB", peak - before);
        long params0 = mode.equals("forward") ? 0 : setup.parameters();
        r.put("trainableTensors", mode.equals("forward") ? 0 : setup.params().size());
        r.put("parameters", params0);
        r.put("javaStateBytes", 16 * params0);
        r.put("trainingNodes", mode.equals("forward") ? 0 : setup.graph().model().graph().nodes().size());
        r.put("modelNodes", setup.model().graph().nodes().size());
        r.put("buildMs", mode.equals("forward") ? 0 : setup.buildMs());
        long frozenGrouped = setup.frozen().values().stream().filter(v -> v.startsWith("grouped")).count();
        long frozenGroupedParams = setup.frozen().entrySet().stream().filter(e -> e.getValue().startsWith("grouped"))
                .mapToLong(e -> setup.model().graph().initializer(e.getKey()).numel()).sum();
        r.put("frozenGroupedConvWeights", frozenGrouped);
        r.put("frozenGroupedConvParameters", frozenGroupedParams);
        if (!Double.isNaN(loss)) {
            r.put("lossFirst", loss0);
            r.put("lossLast", loss);
        }
        r.put("heapMaxBytes", Runtime.getRuntime().maxMemory());
        return r;
    }

    /** Runs the GC, resets the process's peak RSS to the current RSS and returns that, in KiB. */
    private static long resetPeak(ObjectNode r) {
        System.gc();
        boolean reset;
        try {
            Files.writeString(Path.of("/proc/self/clear_refs"), "5");
            reset = true;
        } catch (IOException | UnsupportedOperationException | SecurityException e) {
            reset = false;   // the peak then includes what came before (a pre-touched heap keeps that small)
        }
        r.put("peakReset", reset);
        return status("VmRSS");
    }

    /** A /proc/self/status field in KiB (-1 where there is none: not Linux). */
    static long status(String field) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(field + ":")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (IOException e) {
            return -1;
        }
        return -1;
    }
}
