package io.peft4j.devices;

import io.peft4j.core.Peft4jException;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Which adapter a run uses: none (the base model), one for the whole batch, or one per batch row
 * ({@code null} rows run the base model). Per-row selections run in one pass on {@code multi}
 * packages and as one pass per distinct adapter on {@code side} packages.
 */
public sealed interface AdapterSelection {

    /** The base model: no adapter. */
    record None() implements AdapterSelection {
    }

    /** One adapter for every row. */
    record Single(String name) implements AdapterSelection {
        public Single {
            if (name == null || name.isEmpty()) {
                throw Peft4jException.invalid("an adapter selection needs a name");
            }
        }
    }

    /** One adapter per batch row; a {@code null} entry is the base model. */
    record PerRow(List<String> rows) implements AdapterSelection {
        public PerRow {
            if (rows == null || rows.isEmpty()) {
                throw Peft4jException.invalid("a per-row adapter selection needs at least one row");
            }
            rows = Collections.unmodifiableList(new ArrayList<>(rows));
        }
    }

    /** The adapter names this selection uses, row by row for {@link PerRow} (null: base model); empty for none. */
    default List<String> names() {
        if (this instanceof Single one) {
            return List.of(one.name());
        }
        if (this instanceof PerRow p) {
            return p.rows();
        }
        return List.of();
    }

    /** The one adapter of a {@link Single} selection; null for the others. */
    default String single() {
        return this instanceof Single one ? one.name() : null;
    }

    static AdapterSelection none() {
        return new None();
    }

    /** {@code name}, or the base model when {@code name} is null. */
    static AdapterSelection of(String name) {
        return name == null ? new None() : new Single(name);
    }

    static AdapterSelection perRow(List<String> rows) {
        return new PerRow(rows);
    }
}
