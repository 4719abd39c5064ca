package io.peft4j.bench;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The sections other commands own survive bench/run's rewrite, and each command replaces only its own. */
class MarkedSectionsTest {

    private static final String TQ = "<!-- training-quality:neu-det:begin -->\n## NEU\nold neu\n<!-- training-quality:neu-det:end -->";
    private static final String LT = "<!-- load-test:resnet18:begin -->\n## Load\nold load\n<!-- load-test:resnet18:end -->";

    @Test
    void spliceReplacesItsOwnSectionInPlaceAndAppendsANewOne() {
        String doc = "# Benchmarks\n\nintro\n\n" + TQ + "\n\n" + LT + "\n";
        String updated = MarkedSections.splice(doc, LoadTest.MARKER, "resnet18", "## Load\nnew load\n");
        assertTrue(updated.contains("new load"), updated);
        assertFalse(updated.contains("old load"), updated);
        assertTrue(updated.contains("old neu"), updated);
        assertTrue(updated.indexOf("old neu") < updated.indexOf("new load"), "the order stays");
        String added = MarkedSections.splice(updated, LoadTest.MARKER, "tiny", "## Tiny\n");
        assertTrue(added.endsWith("<!-- load-test:tiny:begin -->\n## Tiny\n<!-- load-test:tiny:end -->\n"), added);
        assertTrue(added.contains("new load"));
        assertThrows(IllegalArgumentException.class, () -> MarkedSections.splice(doc, "<!-- other:", "x", "y"));
    }

    @Test
    void carryOverKeepsTrainingQualityAndLoadTestSectionsOnce() {
        String old = "# Benchmarks\n\nold jmh tables\n\n" + TQ + "\n\nstray text between\n\n" + LT + "\n";
        String fresh = "# Benchmarks\n\nnew jmh tables\n";
        String md = MarkedSections.carryOver(old, fresh);
        assertTrue(md.startsWith(fresh.stripTrailing()), md);
        assertFalse(md.contains("old jmh tables"), md);
        assertTrue(md.contains(TQ) && md.contains(LT), md);
        assertFalse(md.contains("stray text between"), "only the marked sections are carried");
        assertEquals(md, MarkedSections.carryOver(md, md), "carrying twice doubles nothing");
        assertEquals(fresh, MarkedSections.carryOver("no sections here", fresh));
    }

    @Test
    void reportKeepsTheSectionsOfTheFileItReplaces(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("BENCHMARKS.md");
        assertEquals("x\n", Report.keepMarkedSections(out, "x\n"), "no old file: nothing to keep");
        Files.writeString(out, "# old\n\n" + LT + "\n");
        MarkedSections.splice(out, TrainQuality.MARKER, "sms-spam", "## SMS\n");
        String md = Report.keepMarkedSections(out, "# new\n");
        assertTrue(md.startsWith("# new"), md);
        assertTrue(md.indexOf("load-test:resnet18:begin") < md.indexOf("training-quality:sms-spam:begin"), md);
    }

    @Test
    void mergedSessionMemorySectionIsKeptToo() {
        String section = MergedSessionMemory.render(List.of(new MergedSessionMemory.Figure("resnet18", 0, 300 * 1024, 400 * 1024, 0),
                new MergedSessionMemory.Figure("resnet18", 1, 420 * 1024, 600 * 1024, 2.5)), "0.1 0.2 0.3");
        assertTrue(section.contains("| resnet18 | 1 | 420 MiB | +120 MiB | 600 MiB | 2.5 s |"), section);
        assertTrue(section.contains("| resnet18 | 0 | 300 MiB | — | 400 MiB | — |"), section);
        String doc = MarkedSections.splice("# Benchmarks\n", MergedSessionMemory.MARKER, "memory", section);
        String md = MarkedSections.carryOver(doc, "# Benchmarks, again\n");
        assertTrue(md.contains("<!-- merged-sessions:memory:begin -->") && md.contains("+120 MiB"), md);
    }
}
