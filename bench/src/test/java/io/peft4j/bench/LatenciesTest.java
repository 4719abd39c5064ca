package io.peft4j.bench;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Nearest-rank percentiles, means and merging of {@link Latencies}. */
class LatenciesTest {

    @Test
    void nearestRankPercentilesOfOneToHundredInAnyOrder() {
        List<Long> values = new ArrayList<>();
        for (long i = 1; i <= 100; i++) {
            values.add(i * 1_000_000);
        }
        Collections.shuffle(values, new Random(3));
        Latencies l = new Latencies();
        values.forEach(l::add);
        assertEquals(100, l.count());
        assertEquals(50_000_000, l.percentile(0.50));
        assertEquals(95_000_000, l.percentile(0.95));
        assertEquals(99_000_000, l.percentile(0.99));
        assertEquals(100_000_000, l.percentile(1.0));
        assertEquals(1_000_000, l.percentile(0.001));
        assertEquals(50.5e6, l.mean(), 1e-6);
        Latencies.Summary s = l.summary();
        assertEquals(50.0, s.p50(), 1e-12);
        assertEquals(99.0, s.p99(), 1e-12);
        assertEquals(100.0, s.max(), 1e-12);
    }

    @Test
    void evenCountsGiveTheLowerMiddleAndSmallCountsTheirMaximumAtP99() {
        Latencies l = new Latencies();
        for (long v : new long[] {40, 10, 30, 20}) {
            l.add(v);
        }
        assertEquals(20, l.percentile(0.5));
        assertEquals(40, l.percentile(0.99));
        assertEquals(30, l.percentile(0.75));
        Latencies one = new Latencies();
        one.add(7);
        assertEquals(7, one.percentile(0.5));
        assertEquals(7, one.percentile(0.99));
    }

    @Test
    void addingAfterAPercentileKeepsTheOrderRight() {
        Latencies l = new Latencies();
        l.add(5);
        l.add(9);
        assertEquals(5, l.percentile(0.5));
        l.add(1);
        l.add(2);
        assertEquals(2, l.percentile(0.5));
        assertEquals(9, l.max());
    }

    @Test
    void mergeJoinsClientsAndGrowsPastTheInitialCapacity() {
        Latencies a = new Latencies();
        Latencies b = new Latencies();
        for (int i = 0; i < 3000; i++) {
            a.add(2 * i);
            b.add(2 * i + 1);
        }
        Latencies all = new Latencies().merge(a).merge(b);
        assertEquals(6000, all.count());
        assertEquals(2999, all.percentile(0.5));
        assertEquals(5999, all.max());
    }

    @Test
    void theOverheadIntervalCoversAKnownShiftAndTheVerdictFollowsIt() {
        Latencies http = new Latencies();
        Latencies direct = new Latencies();
        Latencies binary = new Latencies();
        Random r = new Random(9);
        for (int i = 0; i < 400; i++) {
            long base = 10_000_000 + (long) (r.nextGaussian() * 500_000);
            direct.add(base);
            http.add(base + 1_500_000 + (long) (r.nextGaussian() * 500_000));
            binary.add(base + 500_000 + (long) (r.nextGaussian() * 500_000));
        }
        LoadTest.Overhead o = new LoadTest.Overhead(http, binary, direct, http, 0, null);
        double[] bci = o.diffIntervalMs(o.binary(), 1000, 3);
        assertTrue(bci[0] > 0.0 && bci[1] < 1.0 && bci[0] <= o.diffMs(o.binary()) && o.diffMs(o.binary()) <= bci[1],
                "the binary interval is around its 0.5 ms shift: " + bci[0] + " .. " + bci[1]);
        double[] ci = o.diffIntervalMs(o.http(), 1000, 3);
        assertTrue(ci[0] <= o.diffMs(o.http()) && o.diffMs(o.http()) <= ci[1], ci[0] + " .. " + ci[1]);
        assertTrue(ci[0] > 1.0 && ci[1] < 2.0, "the interval is around the 1.5 ms shift: " + ci[0] + " .. " + ci[1]);
        assertEquals("PASS", LoadReport.verdict(o.diffMs(o.http()), ci, 2.0, false));
        assertEquals("PASS (busy machine)", LoadReport.verdict(o.diffMs(o.http()), ci, 2.0, true));
        assertEquals("MISS", LoadReport.verdict(o.diffMs(o.http()), ci, 0.5, false));
        assertEquals("PASS (within error)", LoadReport.verdict(1.9, new double[] {1.5, 2.3}, 2.0, false));
        assertEquals("MISS (within error, busy machine)", LoadReport.verdict(2.1, new double[] {1.5, 2.3}, 2.0, true));
    }

    @Test
    void refusesWhatHasNoAnswer() {
        Latencies l = new Latencies();
        assertThrows(IllegalStateException.class, () -> l.percentile(0.5));
        assertTrue(Double.isNaN(l.mean()));
        assertEquals(0, l.summary().count());
        assertTrue(Double.isNaN(l.summary().p50()));
        l.add(1);
        assertThrows(IllegalArgumentException.class, () -> l.percentile(0));
        assertThrows(IllegalArgumentException.class, () -> l.percentile(1.5));
        assertThrows(IllegalArgumentException.class, () -> l.add(-1));
    }
}
