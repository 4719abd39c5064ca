package io.peft4j.devices;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.ort.SideAdapters;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.function.LongFunction;

/**
 * The adapters a backend serves, by name: read without locking (runs take the current map), changed
 * as a whole under the table's lock. Keeps the registration order and each name's version (1 for
 * the package's own adapters, one more each time a name is registered again), and once
 * {@link #close()}d takes no more adapters. What an adapter holds natively is the backend's to free:
 * {@link #put}, {@link #remove} and {@link #close} hand back what left the table.
 *
 * @param <A> the backend's adapter type
 */
public final class AdapterTable<A> {

    /** An adapter put in, and the one of that name it replaced (null when new). */
    public record Swap<A>(A added, A replaced) {
    }

    private final Function<A, AdapterInfo> info;
    private volatile Map<String, A> current = Map.of();
    private final Map<String, Long> versions = new HashMap<>();
    private final Set<String> order = new LinkedHashSet<>();
    private boolean closed;

    /** {@code info} tells what a run reports of an adapter. */
    public AdapterTable(Function<A, AdapterInfo> info) {
        this.info = info;
    }

    /** The adapters now, by name: an immutable snapshot. */
    public Map<String, A> current() {
        return current;
    }

    /** The package's own adapters, version 1 each, in their order. */
    public synchronized void load(Map<String, A> packaged) {
        packaged.keySet().forEach(n -> versions.put(n, 1L));
        Map<String, A> next = new LinkedHashMap<>(current);
        next.putAll(packaged);
        current = Map.copyOf(next);
        order.addAll(packaged.keySet());
    }

    /** What runs report of the current adapters, in registration order. */
    public List<AdapterInfo> list() {
        Map<String, A> now = current;
        List<AdapterInfo> out = new ArrayList<>();
        synchronized (this) {
            for (String n : order) {
                A a = now.get(n);
                if (a != null) {
                    out.add(info.apply(a));
                }
            }
        }
        return out;
    }

    /**
     * Puts the adapter {@code make} builds for the name's next version in place of the current one
     * of that name, atomically; null when the table is closed (nothing made, nothing changed).
     */
    public synchronized Swap<A> put(String name, LongFunction<A> make) {
        if (closed) {
            return null;
        }
        long version = versions.getOrDefault(name, 0L) + 1;
        A added = make.apply(version);
        versions.put(name, version);
        Map<String, A> next = new LinkedHashMap<>(current);
        A old = next.put(name, added);
        current = Map.copyOf(next);
        order.add(name);
        return new Swap<>(added, old);
    }

    /** Removes adapter {@code name}; what it removed, or null when there was none. */
    public synchronized A remove(String name) {
        Map<String, A> next = new LinkedHashMap<>(current);
        A old = next.remove(name);
        if (old != null) {
            current = Map.copyOf(next);
            order.remove(name);
        }
        return old;
    }

    /** Empties the table for good; what it held, or an empty map when it was closed already. */
    public synchronized Map<String, A> close() {
        if (closed) {
            return Map.of();
        }
        closed = true;
        Map<String, A> was = current;
        current = Map.of();
        order.clear();
        return was;
    }

    /** A bundle's LoRA rank: the largest rank axis of its A factors (0 for methods without one). */
    public static int rank(AdapterBundle bundle) {
        int rank = 0;
        for (Map.Entry<String, Tensor> e : bundle.tensors().entrySet()) {
            if (SideAdapters.padAxis(e.getKey()) == 0) {
                rank = Math.max(rank, Math.toIntExact(e.getValue().dim(0)));
            }
        }
        return rank;
    }
}
