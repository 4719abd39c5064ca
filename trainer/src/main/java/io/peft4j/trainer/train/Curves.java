package io.peft4j.trainer.train;

import io.peft4j.core.util.AtomicFiles;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.markers.SeriesMarkers;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The training curves as one PNG: the training loss per step (and its running mean) on the left,
 * the validation loss and the monitored metric per evaluation on the right (when there was
 * validation data). Drawn from the records of {@code metrics.jsonl}.
 */
final class Curves {

    private static final int W = 640;
    private static final int H = 420;

    private Curves() {
    }

    static void write(Path file, List<Map<String, Object>> history, String monitor) {
        List<Double> steps = new ArrayList<>();
        List<Double> loss = new ArrayList<>();
        List<Double> evalSteps = new ArrayList<>();
        List<Double> valLoss = new ArrayList<>();
        List<Double> valMetric = new ArrayList<>();
        for (Map<String, Object> r : history) {
            if ("step".equals(r.get("type"))) {
                steps.add(num(r.get("step")));
                loss.add(num(r.get("loss")));
            } else if ("eval".equals(r.get("type"))) {
                evalSteps.add(num(r.get("step")));
                valLoss.add(num(r.get("val_loss")));
                valMetric.add(num(r.get(monitor)));
            }
        }
        if (steps.isEmpty()) {
            return;
        }
        XYChart train = chart("Training loss", "step", "loss");
        train.addSeries("loss", steps, loss).setMarker(SeriesMarkers.NONE).setLineColor(new Color(0x9ecae1));
        train.addSeries("running mean", steps, runningMean(loss, Math.max(1, steps.size() / 20)))
                .setMarker(SeriesMarkers.NONE).setLineColor(new Color(0x08519c));
        BufferedImage left = BitmapEncoder.getBufferedImage(train);
        BufferedImage out;
        if (evalSteps.isEmpty()) {
            out = left;
        } else {
            XYChart val = chart("Validation", "step", monitor + " / loss");
            style(val.addSeries("val_loss", evalSteps, valLoss), SeriesMarkers.CIRCLE, new Color(0xd95f0e));
            if (!monitor.equals("val_loss")) {
                style(val.addSeries(monitor, evalSteps, valMetric), SeriesMarkers.DIAMOND, new Color(0x31a354));
            }
            BufferedImage right = BitmapEncoder.getBufferedImage(val);
            out = new BufferedImage(2 * W, H, BufferedImage.TYPE_INT_RGB);
            Graphics2D g = out.createGraphics();
            g.drawImage(left, 0, 0, null);
            g.drawImage(right, W, 0, null);
            g.dispose();
        }
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        try {
            ImageIO.write(out, "png", png);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        AtomicFiles.write(file, png.toByteArray());
    }

    private static void style(XYSeries s, org.knowm.xchart.style.markers.Marker marker, Color color) {
        s.setMarker(marker);
        s.setMarkerColor(color);
        s.setLineColor(color);
    }

    private static XYChart chart(String title, String x, String y) {
        XYChart c = new XYChartBuilder().width(W).height(H).title(title).xAxisTitle(x).yAxisTitle(y).build();
        c.getStyler().setChartBackgroundColor(Color.WHITE);
        c.getStyler().setLegendPosition(org.knowm.xchart.style.Styler.LegendPosition.InsideNE);
        c.getStyler().setDefaultSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Line);
        c.getStyler().setYAxisDecimalPattern("0.###");
        c.getStyler().setXAxisDecimalPattern("0");
        return c;
    }

    private static List<Double> runningMean(List<Double> v, int window) {
        List<Double> out = new ArrayList<>(v.size());
        double sum = 0;
        for (int i = 0; i < v.size(); i++) {
            sum += v.get(i);
            if (i >= window) {
                sum -= v.get(i - window);
            }
            out.add(sum / Math.min(i + 1, window));
        }
        return out;
    }

    private static double num(Object o) {
        return o instanceof Number n ? n.doubleValue() : Double.NaN;
    }
}
