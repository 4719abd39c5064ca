package io.peft4j.cli;

import io.peft4j.core.util.AtomicFiles;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.internal.chartpart.Chart;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

import java.awt.Color;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * What {@code peft4j quickstart} measured, and the two ways it shows it: the summary it prints
 * ({@link #summary()}) and the report it writes ({@link #write}: {@code report.md},
 * {@code accuracy.png}, {@code loss.png}). Both are rendered from the same fields with the same
 * number formats ({@link #acc}, {@link #ms}), so every number printed is the number the report
 * shows. Immutable.
 *
 * @param lines     one result per production line, in the order they were trained
 * @param merged    the merged package's result (one line's adapter folded into the weights)
 * @param baseBytes the base model's {@code model.onnx} on disk
 * @param latency   HTTP round trips per way of serving: base, side package with an adapter, merged
 * @param settings  how it was run: sizes, steps, threads, seed (a line each for the report)
 * @param seconds   the whole run, wall clock
 */
record QuickstartReport(List<Line> lines, Merged merged, long baseBytes, List<Latency> latency, List<String> settings,
                        double seconds) {

    /** The files {@link #write} makes in the work directory. */
    static final String REPORT = "report.md";
    static final String ACCURACY_PNG = "accuracy.png";
    static final String LOSS_PNG = "loss.png";

    QuickstartReport {
        lines = List.copyOf(lines);
        latency = List.copyOf(latency);
        settings = List.copyOf(settings);
    }

    /**
     * One production line.
     *
     * @param name          the line ({@code metal-dim})
     * @param other         the other line, whose adapter was also tried on these images
     * @param images        held-out test images classified
     * @param base          accuracy of the base model (over HTTP)
     * @param own           accuracy of this line's adapter (over HTTP, side package)
     * @param otherAdapter  accuracy of the other line's adapter on this line's images
     * @param disagreements images on which the two adapters gave different top labels
     * @param trainerAccuracy the trainer's own evaluation of the adapter on the same images, in process
     * @param adapterBytes  the adapter bundle on disk (config + safetensors)
     * @param trainSeconds  training time
     * @param steps         training steps
     * @param lossSteps     training loss per step, the steps
     * @param loss          training loss per step
     */
    record Line(String name, String other, int images, double base, double own, double otherAdapter, int disagreements,
                double trainerAccuracy, long adapterBytes, double trainSeconds, long steps, double[] lossSteps, double[] loss) {
        double gain() {
            return own - base;
        }
    }

    /**
     * @param line   whose adapter is merged
     * @param images that line's test images
     * @param accuracy the merged package's accuracy on them
     * @param sameAsSide images on which it gave the same top label as the side package with the adapter
     * @param modelBytes the merged package's {@code model.onnx}
     */
    record Merged(String line, int images, double accuracy, int sameAsSide, long modelBytes) {
    }

    /**
     * Latency of one way of serving, in milliseconds: the HTTP round trip as the client saw it, and
     * the time the server reports for decoding, preprocessing and running the image.
     */
    record Latency(String what, int requests, double p50, double p95, double serverP50) {
    }

    static String acc(double a) {
        return String.format(Locale.ROOT, "%.3f", a);
    }

    static String ms(double v) {
        return String.format(Locale.ROOT, "%.2f", v);
    }

    static String signed(double d) {
        return String.format(Locale.ROOT, "%+.3f", d);
    }

    static String percent(long part, long whole) {
        return String.format(Locale.ROOT, "%.1f %%", 100.0 * part / whole);
    }

    /** The lines {@code peft4j quickstart} prints at the end. */
    List<String> summary() {
        List<String> o = new ArrayList<>();
        o.add("accuracy on held-out images, classified over HTTP by the runtime:");
        o.add(String.format(Locale.ROOT, "  %-10s %6s %7s %12s %14s %7s", "line", "images", "base", "own adapter",
                "other adapter", "gain"));
        for (Line l : lines) {
            o.add(String.format(Locale.ROOT, "  %-10s %6d %7s %12s %14s %7s", l.name(), l.images(), acc(l.base()), acc(l.own()),
                    acc(l.otherAdapter()), signed(l.gain())));
        }
        List<String> dis = new ArrayList<>();
        for (Line l : lines) {
            dis.add(l.disagreements() + " of " + l.images() + " " + l.name() + " images");
        }
        o.add("the two adapters give different answers on " + String.join(", ", dis));
        o.add(String.format(Locale.ROOT, "merged package (%s adapter folded in): accuracy %s, same answer as the side package on %d of %d images",
                merged.line(), acc(merged.accuracy()), merged.sameAsSide(), merged.images()));
        List<String> sizes = new ArrayList<>();
        for (Line l : lines) {
            sizes.add(l.name() + " " + Format.bytes(l.adapterBytes()) + " (" + percent(l.adapterBytes(), baseBytes) + ")");
        }
        o.add("size on disk: base model " + Format.bytes(baseBytes) + "; adapters " + String.join(", ", sizes));
        List<String> lat = new ArrayList<>();
        for (Latency t : latency) {
            lat.add(t.what() + " " + ms(t.p50()) + " / " + ms(t.p95()) + " ms, server " + ms(t.serverP50()) + " ms ("
                    + t.requests() + ")");
        }
        o.add("latency, HTTP round trip p50 / p95 and the server's own p50 (requests): " + String.join("; ", lat));
        return o;
    }

    /** Writes {@code report.md} and its plots into {@code dir}, each file atomically. */
    void write(Path dir) {
        AtomicFiles.write(dir.resolve(ACCURACY_PNG), png(accuracyChart()));
        AtomicFiles.write(dir.resolve(LOSS_PNG), png(lossChart()));
        AtomicFiles.write(dir.resolve(REPORT), markdown().getBytes(StandardCharsets.UTF_8));
    }

    String markdown() {
        StringBuilder m = new StringBuilder();
        m.append("# peft4j quickstart\n\n");
        m.append("One base model, trained on the synthetic `metal` line, and one LoRA adapter per production line, ")
                .append("trained here; the held-out test images of each line were classified over HTTP by the runtime ")
                .append("(`POST /v2/models/{m}/classify`) with the base model, the line's own adapter and the other ")
                .append("line's adapter. Chance is 0.200 (5 classes).\n\n");
        m.append("## Accuracy\n\n");
        m.append("| line | images | base model | own adapter | other line's adapter | gain |\n");
        m.append("|---|---:|---:|---:|---:|---:|\n");
        for (Line l : lines) {
            m.append("| ").append(l.name()).append(" | ").append(l.images()).append(" | ").append(acc(l.base())).append(" | ")
                    .append(acc(l.own())).append(" | ").append(acc(l.otherAdapter())).append(" | ").append(signed(l.gain()))
                    .append(" |\n");
        }
        m.append("\n![accuracy per line](").append(ACCURACY_PNG).append(")\n\n");
        m.append("The adapters are not interchangeable: on the same images they give different answers.\n\n");
        m.append("| line | images | the two adapters disagree on | own adapter in the trainer (in process) |\n");
        m.append("|---|---:|---:|---:|\n");
        for (Line l : lines) {
            m.append("| ").append(l.name()).append(" | ").append(l.images()).append(" | ").append(l.disagreements())
                    .append(" | ").append(acc(l.trainerAccuracy())).append(" |\n");
        }
        m.append("\nThe last column is the trainer's own evaluation of the finished adapter on the same test images ")
                .append("(they are never trained on, and nothing is selected on them); it should equal the accuracy over HTTP.\n\n");
        m.append("The merged package (the `").append(merged.line()).append("` adapter folded into the weights) scores ")
                .append(acc(merged.accuracy())).append(" on the ").append(merged.images()).append(" `").append(merged.line())
                .append("` images and gives the same answer as the side package with that adapter on ")
                .append(merged.sameAsSide()).append(" of them.\n\n");
        m.append("## Training\n\n");
        m.append("| line | steps | time | adapter on disk | of the base model |\n");
        m.append("|---|---:|---:|---:|---:|\n");
        for (Line l : lines) {
            m.append("| ").append(l.name()).append(" | ").append(l.steps()).append(" | ")
                    .append(String.format(Locale.ROOT, "%.1f s", l.trainSeconds())).append(" | ")
                    .append(Format.bytes(l.adapterBytes())).append(" | ").append(percent(l.adapterBytes(), baseBytes))
                    .append(" |\n");
        }
        m.append("\nBase model on disk: ").append(Format.bytes(baseBytes)).append(" (").append(baseBytes)
                .append(" bytes); merged package model: ").append(Format.bytes(merged.modelBytes())).append(".\n\n");
        m.append("![training loss](").append(LOSS_PNG).append(")\n\n");
        m.append("## Latency over HTTP\n\n");
        m.append("Single-image requests from a Java HTTP client on the same machine, one at a time; each way of serving ")
                .append("classifies a line's images in one run. Round trip: as the client measured it; server: the time the runtime ")
                .append("reports in its answer (decoding, preprocessing, inference). On a busy machine the round trip is ")
                .append("mostly waiting for a CPU.\n\n");
        m.append("| served as | requests | round trip p50 (ms) | round trip p95 (ms) | server p50 (ms) |\n");
        m.append("|---|---:|---:|---:|---:|\n");
        for (Latency t : latency) {
            m.append("| ").append(t.what()).append(" | ").append(t.requests()).append(" | ").append(ms(t.p50())).append(" | ")
                    .append(ms(t.p95())).append(" | ").append(ms(t.serverP50())).append(" |\n");
        }
        m.append("\n## Run\n\n");
        for (String s : settings) {
            m.append("- ").append(s).append('\n');
        }
        m.append(String.format(Locale.ROOT, "- total time: %.1f s%n", seconds));
        m.append("\n## Printed summary\n\n```\n");
        for (String s : summary()) {
            m.append(s).append('\n');
        }
        m.append("```\n");
        return m.toString();
    }

    private CategoryChart accuracyChart() {
        CategoryChart c = new CategoryChartBuilder().width(720).height(420).title("Accuracy on held-out images (over HTTP)")
                .xAxisTitle("production line").yAxisTitle("accuracy").build();
        c.getStyler().setChartBackgroundColor(Color.WHITE);
        c.getStyler().setLegendPosition(Styler.LegendPosition.OutsideS);
        c.getStyler().setLegendLayout(Styler.LegendLayout.Horizontal);
        c.getStyler().setYAxisMin(0.0);
        c.getStyler().setYAxisMax(1.0);
        c.getStyler().setYAxisDecimalPattern("0.000"); // the bars' labels too: as the tables print them
        c.getStyler().setLabelsVisible(true);
        c.getStyler().setLabelsFontColorAutomaticEnabled(false);
        c.getStyler().setLabelsFontColor(Color.BLACK);
        c.getStyler().setSeriesColors(new Color[] {new Color(0x969696), new Color(0x31a354), new Color(0xfd8d3c)});
        List<String> names = lines.stream().map(Line::name).toList();
        c.addSeries("base model", names, lines.stream().map(l -> (Number) round(l.base())).toList());
        c.addSeries("own adapter", names, lines.stream().map(l -> (Number) round(l.own())).toList());
        c.addSeries("other line's adapter", names, lines.stream().map(l -> (Number) round(l.otherAdapter())).toList());
        return c;
    }

    /** The value as {@link #acc} prints it, so that the bars' labels match the tables. */
    private static double round(double a) {
        return Double.parseDouble(acc(a));
    }

    private XYChart lossChart() {
        XYChart c = new XYChartBuilder().width(720).height(420).title("Training loss (running mean)").xAxisTitle("step")
                .yAxisTitle("cross-entropy (log scale)").build();
        c.getStyler().setYAxisLogarithmic(true);
        c.getStyler().setChartBackgroundColor(Color.WHITE);
        c.getStyler().setLegendPosition(Styler.LegendPosition.InsideNE);
        c.getStyler().setDefaultSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Line);
        c.getStyler().setXAxisDecimalPattern("0");
        c.getStyler().setYAxisDecimalPattern("0.###");
        Color[] colors = {new Color(0x08519c), new Color(0xd95f0e), new Color(0x31a354)};
        for (int i = 0; i < lines.size(); i++) {
            Line l = lines.get(i);
            if (l.loss().length == 0) {
                continue;
            }
            XYSeries s = c.addSeries(l.name(), l.lossSteps(), runningMean(l.loss(), Math.max(1, l.loss().length / 20)));
            s.setMarker(SeriesMarkers.NONE);
            s.setLineColor(colors[i % colors.length]);
        }
        return c;
    }

    private static double[] runningMean(double[] v, int window) {
        double[] out = new double[v.length];
        double sum = 0;
        for (int i = 0; i < v.length; i++) {
            sum += v[i];
            if (i >= window) {
                sum -= v[i - window];
            }
            out[i] = sum / Math.min(i + 1, window);
        }
        return out;
    }

    private static byte[] png(Chart<?, ?> chart) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            javax.imageio.ImageIO.write(BitmapEncoder.getBufferedImage(chart), "png", out);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    @Override
    public String toString() {
        return "QuickstartReport" + Arrays.toString(lines.stream().map(Line::name).toArray());
    }
}
