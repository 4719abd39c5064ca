package io.peft4j.cli;

import io.peft4j.trainer.train.Evaluation;
import io.peft4j.trainer.train.TrainListener;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

import java.io.PrintWriter;
import java.time.Duration;
import java.time.temporal.ChronoUnit;
import java.util.Locale;

/**
 * The trainer's events as the command line shows them: a progress bar (on stderr, with the loss
 * and learning rate) when {@code bar} is set, else a plain line every five seconds and at the last
 * step; evaluations and messages as lines on {@code o}. Used by {@code peft4j train} and
 * {@code peft4j quickstart}. {@link #close()} removes the bar and may be called more than once.
 */
class TrainProgress implements TrainListener, AutoCloseable {
    private final PrintWriter o;
    private final boolean bar;
    private final String task;
    private ProgressBar pb;
    private long lastLine;

    TrainProgress(PrintWriter o, boolean bar) {
        this(o, bar, "train");
    }

    /** @param task the name in front of the bar */
    TrainProgress(PrintWriter o, boolean bar, String task) {
        this.o = o;
        this.bar = bar;
        this.task = task;
    }

    @Override
    public void started(long fromStep, long totalSteps, int stepsPerEpoch) {
        o.printf(Locale.ROOT, "training: %d steps (%d per epoch)%s%n", totalSteps, stepsPerEpoch,
                fromStep > 0 ? ", from step " + fromStep : "");
        o.flush();
        if (bar) {
            pb = new ProgressBarBuilder().setTaskName(task).setInitialMax(totalSteps).startsFrom(fromStep, Duration.ZERO)
                    .setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(250).showSpeed()
                    .setSpeedUnit(ChronoUnit.SECONDS).setUnit(" steps", 1).continuousUpdate().build();
        }
    }

    @Override
    public void step(long step, long totalSteps, double loss, double lr) {
        if (pb != null) {
            pb.stepTo(step);
            pb.setExtraMessage(String.format(Locale.ROOT, " loss %.4f lr %.2e", loss, lr));
        } else if (System.nanoTime() - lastLine > 5_000_000_000L || step == totalSteps) {
            lastLine = System.nanoTime();
            o.printf(Locale.ROOT, "step %d/%d loss %.4f lr %.2e%n", step, totalSteps, loss, lr);
            o.flush();
        }
    }

    @Override
    public void evaluated(int epoch, long step, Evaluation e) {
        String line = String.format(Locale.ROOT, "epoch %d (step %d): val_loss %.4f val_accuracy %.4f val_macro_f1 %.4f",
                epoch, step, e.loss(), e.accuracy(), e.macroF1());
        message(line);
    }

    @Override
    public void message(String line) {
        if (pb != null) {
            // above the bar
            System.err.print("\r\033[K");
            System.err.flush();
        }
        o.println(line);
        o.flush();
    }

    @Override
    public void finished() {
        close();
    }

    @Override
    public void close() {
        if (pb != null) {
            pb.close();
            pb = null;
        }
    }
}
