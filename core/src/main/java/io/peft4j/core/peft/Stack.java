package io.peft4j.core.peft;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.util.List;
import java.util.Objects;

/**
 * What the stacked (multi-adapter) rewrites share: the int64 graph input {@code adapter_index}
 * of shape [batch] (0 = base model, k = adapter k), the number of adapters K and the rank each
 * adapter is padded to.
 *
 * <p>The selection is exact and needs no per-row weight gathering: each method keeps a constant
 * table with one row per choice (row 0 = the base layer) and gathers the rows of the batch from
 * it by {@code adapter_index}; LoRA gathers a 0/1 mask over the K stacked rank blocks, IA3 the
 * scaling vectors themselves.
 */
public final class Stack {

    /** The graph input that picks an adapter per batch row. */
    public static final String ADAPTER_INDEX = "adapter_index";

    private final Graph graph;
    private final int adapters;
    private final int maxRank;

    Stack(Graph graph, int adapters, int maxRank) {
        this.graph = graph;
        this.adapters = adapters;
        this.maxRank = maxRank;
        if (!graph.isGraphInput(ADAPTER_INDEX)) {
            graph.addInput(ValueInfos.tensor(ADAPTER_INDEX, DataType.INT64, "batch"));
        }
    }

    /** K, the number of stacked adapters. */
    public int adapters() {
        return adapters;
    }

    /**
     * The width of one adapter's rank block for a module whose members have ranks {@code ranks}:
     * the fixed max rank when one was given (refusing larger ranks), else the largest of them.
     */
    public int blockRank(String module, List<Integer> ranks) {
        int widest = ranks.stream().filter(Objects::nonNull).mapToInt(Integer::intValue).max().orElse(1);
        if (maxRank <= 0) {
            return widest;
        }
        if (widest > maxRank) {
            throw Peft4jException.invalid("module " + module + " has an adapter of rank " + widest
                    + ", more than the max rank " + maxRank);
        }
        return maxRank;
    }

    /** {@code table[adapter_index]}: the table's rows for the batch, shape [batch, table.shape[1:]]. */
    public String rows(String hint, Tensor table) {
        if (table.dim(0) != adapters + 1) {
            throw new IllegalArgumentException("a stack table has K + 1 = " + (adapters + 1) + " rows, got " + table);
        }
        String t = graph.addInitializer(hint + "_table", table);
        return graph.build("Gather").name(hint).in(t, ADAPTER_INDEX).attr("axis", 0L).out();
    }
}
