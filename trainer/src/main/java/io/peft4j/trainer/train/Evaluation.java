package io.peft4j.trainer.train;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Classification metrics over a validation set: mean softmax cross-entropy, accuracy, per-class
 * precision, recall and F1, their macro averages, and the confusion matrix ({@code confusion[true][predicted]}).
 * Precision of a class never predicted, and recall of a class absent from the labels, are 0.
 */
public record Evaluation(int examples, double loss, double accuracy, double macroF1, List<String> classes,
                         double[] precision, double[] recall, double[] f1, long[][] confusion) {

    /** Accumulates logits and labels batch by batch. */
    static final class Accumulator {
        private final int k;
        private final long[][] confusion;
        private double lossSum;
        private int n;

        Accumulator(int classes) {
            this.k = classes;
            this.confusion = new long[classes][classes];
        }

        void add(float[] logits, long[] labels) {
            for (int b = 0; b < labels.length; b++) {
                int off = b * k;
                double max = Double.NEGATIVE_INFINITY;
                int arg = 0;
                for (int c = 0; c < k; c++) {
                    if (logits[off + c] > max) {
                        max = logits[off + c];
                        arg = c;
                    }
                }
                double sum = 0;
                for (int c = 0; c < k; c++) {
                    sum += Math.exp(logits[off + c] - max);
                }
                int y = (int) labels[b];
                lossSum += Math.log(sum) + max - logits[off + y];
                confusion[y][arg]++;
                n++;
            }
        }

        Evaluation finish(List<String> names) {
            double[] p = new double[k];
            double[] r = new double[k];
            double[] f = new double[k];
            long correct = 0;
            for (int c = 0; c < k; c++) {
                long tp = confusion[c][c];
                correct += tp;
                long predicted = 0;
                long actual = 0;
                for (int o = 0; o < k; o++) {
                    predicted += confusion[o][c];
                    actual += confusion[c][o];
                }
                p[c] = predicted == 0 ? 0 : (double) tp / predicted;
                r[c] = actual == 0 ? 0 : (double) tp / actual;
                f[c] = p[c] + r[c] == 0 ? 0 : 2 * p[c] * r[c] / (p[c] + r[c]);
            }
            double macro = 0;
            for (double x : f) {
                macro += x;
            }
            long[][] conf = new long[k][];
            for (int c = 0; c < k; c++) {
                conf[c] = confusion[c].clone();
            }
            List<String> labels = new ArrayList<>(names);
            while (labels.size() < k) {
                labels.add("class_" + labels.size());
            }
            return new Evaluation(n, n == 0 ? Double.NaN : lossSum / n, n == 0 ? Double.NaN : (double) correct / n,
                    macro / k, List.copyOf(labels.subList(0, k)), p, r, f, conf);
        }
    }

    /** The value of a monitored metric ({@code val_accuracy}, {@code val_loss}, {@code val_macro_f1}). */
    public double metric(String name) {
        return switch (name) {
            case "val_accuracy" -> accuracy;
            case "val_loss" -> loss;
            case "val_macro_f1" -> macroF1;
            default -> throw new IllegalArgumentException(name);
        };
    }

    /** As JSON-ready maps and lists. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("examples", examples);
        m.put("loss", loss);
        m.put("accuracy", accuracy);
        m.put("macro_f1", macroF1);
        Map<String, Object> per = new LinkedHashMap<>();
        for (int c = 0; c < classes.size(); c++) {
            Map<String, Object> x = new LinkedHashMap<>();
            x.put("precision", precision[c]);
            x.put("recall", recall[c]);
            x.put("f1", f1[c]);
            long support = 0;
            for (long v : confusion[c]) {
                support += v;
            }
            x.put("support", support);
            per.put(classes.get(c), x);
        }
        m.put("per_class", per);
        List<List<Long>> conf = new ArrayList<>();
        for (long[] row : confusion) {
            List<Long> r = new ArrayList<>();
            for (long v : row) {
                r.add(v);
            }
            conf.add(r);
        }
        m.put("confusion", conf);
        return m;
    }
}
