package io.peft4j.devices;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BiFunction;

/** What every backend does the same way around a run: the outputs asked for, and per-row adapters as one pass per adapter. */
public final class Runs {

    private Runs() {
    }

    /**
     * The outputs to compute, in the model's order: all of them when {@code outputs} is empty;
     * an unknown name is refused ({@code what} names the model).
     */
    public static Set<String> wantedOutputs(ModelInfo info, Set<String> outputs, String what) {
        Set<String> all = new LinkedHashSet<>();
        info.outputs().forEach(t -> all.add(t.name()));
        if (outputs == null || outputs.isEmpty()) {
            return all;
        }
        for (String o : outputs) {
            if (!all.contains(o)) {
                throw Peft4jException.notFound(what + " has no output '" + o + "'; its outputs are " + all);
            }
        }
        Set<String> inOrder = new LinkedHashSet<>(all);
        inOrder.retainAll(outputs);
        return inOrder;
    }

    /**
     * Runs a batch whose rows select adapters ({@code rows}, null: the base model) as one pass per
     * distinct adapter, through {@code pass} (the rows of one adapter, its name), and puts the rows
     * back in order. One adapter for every row is a single pass over the whole batch.
     */
    public static Map<String, Tensor> byAdapter(Map<String, Tensor> feeds, List<String> rows,
                                                BiFunction<Map<String, Tensor>, String, Map<String, Tensor>> pass) {
        Map<String, List<Integer>> groups = new LinkedHashMap<>();
        for (int r = 0; r < rows.size(); r++) {
            groups.computeIfAbsent(rows.get(r), k -> new ArrayList<>()).add(r);
        }
        if (groups.size() == 1) {
            return pass.apply(feeds, groups.keySet().iterator().next());
        }
        List<int[]> rowSets = new ArrayList<>();
        List<Map<String, Tensor>> results = new ArrayList<>();
        for (Map.Entry<String, List<Integer>> g : groups.entrySet()) {
            int[] rs = g.getValue().stream().mapToInt(Integer::intValue).toArray();
            Map<String, Tensor> part = new LinkedHashMap<>();
            for (Map.Entry<String, Tensor> f : feeds.entrySet()) {
                part.put(f.getKey(), Rows.gather(f.getValue(), rs));
            }
            rowSets.add(rs);
            results.add(pass.apply(part, g.getKey()));
        }
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (String name : results.get(0).keySet()) {
            List<Tensor> parts = new ArrayList<>();
            results.forEach(r -> parts.add(r.get(name)));
            out.put(name, Rows.scatter(parts, rowSets, rows.size(), "output '" + name + "' (per-row adapters need outputs "
                    + "whose first axis is the batch)"));
        }
        return out;
    }
}
