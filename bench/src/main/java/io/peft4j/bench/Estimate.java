package io.peft4j.bench;

import org.apache.commons.math3.distribution.TDistribution;

import java.util.List;

/**
 * A mean with the half-width of its confidence interval, computed as JMH does: Student's t at
 * {@link #CONFIDENCE} (two-sided) over the samples, here one per measurement iteration of every
 * fork. {@code error} is NaN with fewer than two samples.
 */
public record Estimate(double value, double error, int samples) {

    /** JMH's default confidence level. */
    public static final double CONFIDENCE = 0.999;

    public static Estimate of(List<Double> xs) {
        int n = xs.size();
        if (n == 0) {
            return new Estimate(Double.NaN, Double.NaN, 0);
        }
        double mean = xs.stream().mapToDouble(Double::doubleValue).average().orElse(Double.NaN);
        if (n < 2) {
            return new Estimate(mean, Double.NaN, n);
        }
        double ss = 0;
        for (double x : xs) {
            ss += (x - mean) * (x - mean);
        }
        double sd = Math.sqrt(ss / (n - 1));
        double t = new TDistribution(n - 1).inverseCumulativeProbability(1 - (1 - CONFIDENCE) / 2);
        return new Estimate(mean, t * sd / Math.sqrt(n), n);
    }

    /** An estimate as JMH reported it (its error may be NaN). */
    public static Estimate reported(double score, double error, int samples) {
        return new Estimate(score, error, samples);
    }

    public double low() {
        return value - (Double.isNaN(error) ? 0 : error);
    }

    public double high() {
        return value + (Double.isNaN(error) ? 0 : error);
    }

    public boolean hasError() {
        return !Double.isNaN(error);
    }

    public Estimate scaled(double factor) {
        return new Estimate(value * factor, error * factor, samples);
    }
}
