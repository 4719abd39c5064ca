package io.peft4j.trainer.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.safetensors.Safetensors;
import io.peft4j.core.safetensors.SafetensorsFile;
import io.peft4j.core.tensor.Tensor;

import java.io.IOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * A training run's state at a step boundary, enough to continue to the same result as a run that
 * was never interrupted: the trainable values, the optimizer's state and step count, where the loop
 * is (epoch, next batch of the epoch, global step), and early stopping's memory (best metric, its
 * values). Stored as {@code checkpoints/step-NNNNNNNN/} holding {@code state.safetensors} and
 * {@code state.json}; the directory is written under a temporary name and renamed into place, so a
 * checkpoint either exists whole or not at all. The two newest are kept.
 *
 * @param step        steps taken
 * @param epoch       the epoch the next step belongs to
 * @param nextBatch   the next batch's index within that epoch
 * @param params      trainable values
 * @param optimizer   optimizer name
 * @param optSteps    the optimizer's step count
 * @param optState    the optimizer's state
 * @param best        the best values so far (early stopping), or empty
 * @param bestMetric  the best monitored value so far (NaN: none)
 * @param bestStep    the step of the best value (-1: none)
 * @param sinceBest   evaluations since the best
 * @param settings    the run's settings (a resumed run must match them)
 */
record Checkpoint(long step, int epoch, long nextBatch, Map<String, float[]> params, String optimizer, long optSteps,
                  Map<String, float[]> optState, Map<String, float[]> best, double bestMetric, long bestStep,
                  int sinceBest, JsonNode settings) {

    static final String DIR = "checkpoints";
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Writes the checkpoint into {@code out/checkpoints/}, then removes all but the two newest. */
    Path write(Path out) {
        Path dir = out.resolve(DIR);
        String name = String.format("step-%08d", step);
        Path target = dir.resolve(name);
        Path tmp = dir.resolve("." + name + ".tmp");
        try {
            Files.createDirectories(dir);
            io.peft4j.core.util.AtomicFiles.deleteTree(tmp);
            Files.createDirectories(tmp);
            Map<String, Tensor> t = new LinkedHashMap<>();
            params.forEach((k, v) -> t.put("param/" + k, flat(v)));
            optState.forEach((k, v) -> t.put("opt/" + k, flat(v)));
            best.forEach((k, v) -> t.put("best/" + k, flat(v)));
            Safetensors.write(tmp.resolve("state.safetensors"), t);
            ObjectNode s = JSON.createObjectNode();
            s.put("step", step).put("epoch", epoch).put("next_batch", nextBatch).put("optimizer", optimizer)
                    .put("optimizer_steps", optSteps).put("best_step", bestStep).put("since_best", sinceBest);
            if (Double.isNaN(bestMetric)) {
                s.putNull("best_metric");
            } else {
                s.put("best_metric", bestMetric);
            }
            s.set("settings", settings);
            Files.write(tmp.resolve("state.json"), JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(s));
            io.peft4j.core.util.AtomicFiles.deleteTree(target);
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target);
            }
            List<Path> all = list(dir);
            for (int i = 0; i < all.size() - 2; i++) {
                io.peft4j.core.util.AtomicFiles.deleteTree(all.get(i));
            }
            return target;
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot write checkpoint " + target + ": " + e.getMessage(), e);
        }
    }

    /** The complete checkpoints in {@code dir}, oldest first. */
    static List<Path> list(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(dir)) {
            return new ArrayList<>(s.filter(p -> p.getFileName().toString().matches("step-\\d{8}"))
                    .filter(p -> Files.isRegularFile(p.resolve("state.json")) && Files.isRegularFile(p.resolve("state.safetensors")))
                    .sorted(Comparator.comparing(p -> p.getFileName().toString())).toList());
        }
    }

    /** The newest checkpoint under {@code out}, or null when there is none. */
    static Checkpoint latest(Path out, Map<String, long[]> shapes) {
        try {
            List<Path> all = list(out.resolve(DIR));
            return all.isEmpty() ? null : read(all.get(all.size() - 1), shapes);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot list checkpoints in " + out.resolve(DIR) + ": " + e.getMessage(), e);
        }
    }

    static Checkpoint read(Path dir, Map<String, long[]> shapes) {
        try {
            JsonNode s = JSON.readTree(Files.readAllBytes(dir.resolve("state.json")));
            Map<String, Tensor> t = SafetensorsFile.readAll(dir.resolve("state.safetensors"));
            Map<String, float[]> params = new LinkedHashMap<>();
            Map<String, float[]> opt = new LinkedHashMap<>();
            Map<String, float[]> best = new LinkedHashMap<>();
            for (Map.Entry<String, Tensor> e : t.entrySet()) {
                String k = e.getKey();
                float[] v = e.getValue().toFloatArray();
                if (k.startsWith("param/")) {
                    params.put(k.substring(6), v);
                } else if (k.startsWith("opt/")) {
                    opt.put(k.substring(4), v);
                } else if (k.startsWith("best/")) {
                    best.put(k.substring(5), v);
                }
            }
            for (Map.Entry<String, long[]> e : shapes.entrySet()) {
                float[] v = params.get(e.getKey());
                if (v == null || v.length != Tensor.numel(e.getValue())) {
                    throw Peft4jException.shape("checkpoint " + dir + " does not fit this run: trainable tensor '"
                            + e.getKey() + "' is " + (v == null ? "missing" : v.length + " values, expected "
                            + Tensor.numel(e.getValue())));
                }
            }
            if (params.size() != shapes.size()) {
                throw Peft4jException.shape("checkpoint " + dir + " holds " + params.size() + " trainable tensors, this run has "
                        + shapes.size());
            }
            JsonNode bm = s.get("best_metric");
            return new Checkpoint(s.path("step").asLong(), s.path("epoch").asInt(), s.path("next_batch").asLong(), params,
                    s.path("optimizer").asText(), s.path("optimizer_steps").asLong(), opt, best,
                    bm == null || bm.isNull() ? Double.NaN : bm.asDouble(), s.path("best_step").asLong(-1),
                    s.path("since_best").asInt(), s.get("settings"));
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.MALFORMED, "cannot read checkpoint " + dir + ": " + e.getMessage(), e);
        }
    }

    private static Tensor flat(float[] v) {
        return Tensor.ofFloats(new long[] {v.length}, v);
    }

}
