package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SplitsTest {

    /** 0 ×1, 1 ×2, 2 ×3, 3 ×10, 4 ×100, interleaved. */
    private static int[] labels() {
        int[] counts = {1, 2, 3, 10, 100};
        int total = Arrays.stream(counts).sum();
        int[] out = new int[total];
        int[] left = counts.clone();
        int i = 0;
        while (i < total) {
            for (int c = 0; c < counts.length; c++) {
                if (left[c]-- > 0) {
                    out[i++] = c;
                }
            }
        }
        return out;
    }

    private static Map<Integer, Integer> count(int[] labels, int[] idx) {
        Map<Integer, Integer> m = new HashMap<>();
        for (int i : idx) {
            m.merge(labels[i], 1, Integer::sum);
        }
        return m;
    }

    @Test
    void stratifiedHoldsOutAFractionOfEachClass() {
        int[] y = labels();
        Splits.Split s = Splits.stratified(y, 0.2, 7);
        int[] all = IntStream.concat(Arrays.stream(s.train()), Arrays.stream(s.validation())).sorted().toArray();
        assertArrayEquals(IntStream.range(0, y.length).toArray(), all, "every example once");
        assertArrayEquals(Arrays.stream(s.train()).sorted().toArray(), s.train(), "ascending");
        Map<Integer, Integer> val = count(y, s.validation());
        Map<Integer, Integer> train = count(y, s.train());
        assertEquals(null, val.get(0), "a class of one stays in training");
        assertEquals(1, val.get(1));
        assertEquals(1, train.get(1), "a class of two keeps one for training");
        assertEquals(1, val.get(2), "round(0.6) = 1");
        assertEquals(2, val.get(3));
        assertEquals(20, val.get(4));
    }

    @Test
    void stratifiedIsDeterministicAndDependsOnTheSeed() {
        int[] y = labels();
        assertArrayEquals(Splits.stratified(y, 0.3, 1).validation(), Splits.stratified(y, 0.3, 1).validation());
        assertFalse(Arrays.equals(Splits.stratified(y, 0.3, 1).validation(), Splits.stratified(y, 0.3, 2).validation()));
    }

    @Test
    void aClassIsSplitTheSameWhateverTheOtherClasses() {
        int[] y = labels();
        int[] only4 = Arrays.stream(Splits.stratified(y, 0.25, 3).validation()).filter(i -> y[i] == 4).toArray();
        int[] y2 = y.clone();
        for (int i = 0; i < y2.length; i++) {
            if (y2[i] != 4) {
                y2[i] = 3;
            }
        }
        int[] only4again = Arrays.stream(Splits.stratified(y2, 0.25, 3).validation()).filter(i -> y2[i] == 4).toArray();
        assertArrayEquals(only4, only4again);
    }

    @Test
    void highFractionsStillLeaveOneForTraining() {
        Splits.Split s = Splits.stratified(new int[] {0, 0, 0, 1, 1}, 0.99, 1);
        assertEquals(3, s.validation().length);
        assertEquals(2, s.train().length);
    }

    @Test
    void refusesBadFractionsAndNegativeLabels() {
        assertThrows(Peft4jException.class, () -> Splits.stratified(new int[] {0, 1}, 0, 1));
        assertThrows(Peft4jException.class, () -> Splits.stratified(new int[] {0, 1}, 1, 1));
        assertThrows(Peft4jException.class, () -> Splits.stratified(new int[] {0, 1}, Double.NaN, 1));
        Peft4jException e = assertThrows(Peft4jException.class, () -> Splits.stratified(new int[] {0, -1}, 0.5, 1));
        assertTrue(e.getMessage().contains("example 1"), e.getMessage());
    }

    @Test
    void shuffledIsAPermutationPerSeedAndEpoch() {
        int[] a = Splits.shuffled(100, 5, 0);
        assertArrayEquals(IntStream.range(0, 100).toArray(), Arrays.stream(a).sorted().toArray());
        assertArrayEquals(a, Splits.shuffled(100, 5, 0));
        assertFalse(Arrays.equals(a, Splits.shuffled(100, 5, 1)));
        assertFalse(Arrays.equals(a, Splits.shuffled(100, 6, 0)));
        assertEquals(0, Splits.shuffled(0, 1, 1).length);
    }
}
