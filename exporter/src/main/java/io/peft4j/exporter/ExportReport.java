package io.peft4j.exporter;

import io.peft4j.core.pkg.Manifest;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What {@link Exporter#export} wrote and how it validated.
 *
 * @param out        the package directory
 * @param manifest   its manifest
 * @param checks     the validation's comparisons (empty when validation was off)
 * @param modelBytes bytes of {@code model.onnx} and its external data
 * @param seconds    wall time of the export
 */
public record ExportReport(Path out, Manifest manifest, List<Check> checks, long modelBytes, double seconds) {

    public ExportReport {
        checks = List.copyOf(checks);
    }

    /**
     * One comparison of the exported package's output with a reference on the probe batch: the
     * largest absolute difference over every float output, and that over the reference's largest
     * magnitude (the relative difference the tolerance bounds).
     *
     * @param name      what was run ({@code side, adapter 'a'})
     * @param reference what it was compared with ({@code base model}, {@code adapter 'a', unmerged})
     * @param adapter   the adapter run, or null for none
     */
    public record Check(String name, String reference, String adapter, double maxAbs, double maxRel, double tolerance) {
        public boolean ok() {
            return maxRel <= tolerance;
        }

        public Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("name", name);
            m.put("reference", reference);
            m.put("adapter", adapter);
            m.put("max_abs_diff", maxAbs);
            m.put("max_rel_diff", maxRel);
            m.put("tolerance", tolerance);
            m.put("ok", ok());
            return m;
        }
    }

    public boolean ok() {
        return checks.stream().allMatch(Check::ok);
    }

    /** The largest relative difference among the checks (0 without checks). */
    public double maxRel() {
        return checks.stream().mapToDouble(Check::maxRel).max().orElse(0);
    }
}
