package io.peft4j.bench;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.BenchmarkParams;

import java.util.concurrent.TimeUnit;

/**
 * Inference latency of one batch on the models the exporter writes, each paired with its baseline
 * (see {@link Pair}); one CPU session per model, {@link Bench#THREADS} threads:
 * <ul>
 *   <li>{@code baseVsBase} — a control: two sessions on the base model, which should give 1; how far
 *       it is from 1 shows what the pairing cannot remove on this machine;</li>
 *   <li>{@code mergedVsBase} — adapter 1 merged into the weights vs the base model;</li>
 *   <li>{@code sideVsMerged} — the side-graph model with adapter 1 active through ONNX Runtime's
 *       LoRA API ({@code OrtLoraAdapter} from its {@code .onnx_adapter} file) vs the merged model;</li>
 *   <li>{@code multiVsSide} — the stacked model with the batch's rows spread over adapters 1–4
 *       vs the side model running the same batch on one adapter;</li>
 *   <li>{@code servedSideVsMerged} — the side package served by {@code OrtBackend} with one merged
 *       session, adapter 1 running on it (built in the background after its first run; timed once
 *       ready) vs the merged model through {@code OrtBackend}: what a server gives the adapter it
 *       uses most.</li>
 * </ul>
 * Each trial opens only the two sessions its benchmark compares.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 2, jvmArgsAppend = {"-Xms1g", "-Xmx3g"})
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 8, time = 1)
public class LatencyBench {

    @Param({"resnet18", "minilm"})
    public String workload;

    private Session candidate;
    private Session baseline;
    private Served servedCandidate;
    private Served servedBaseline;

    @Setup(Level.Trial)
    public void open(BenchmarkParams params) throws Exception {
        Workload w = Workload.of(workload);
        Fixtures.Prepared p = Fixtures.get(w);
        String method = params.getBenchmark().substring(params.getBenchmark().lastIndexOf('.') + 1);
        switch (method) {
            case "baseVsBase" -> {
                candidate = Session.plain(w, p.base());
                baseline = Session.plain(w, p.base());
            }
            case "mergedVsBase" -> {
                candidate = Session.plain(w, p.merged());
                baseline = Session.plain(w, p.base());
            }
            case "sideVsMerged" -> {
                candidate = Session.withAdapter(w, p.side(), p.adapterFiles().get(0));
                baseline = Session.plain(w, p.merged());
            }
            case "multiVsSide" -> {
                candidate = Session.mixed(w, p.multi());
                baseline = Session.withAdapter(w, p.side(), p.adapterFiles().get(0));
            }
            case "servedSideVsMerged" -> {
                servedCandidate = Served.withMergedSession(w, p.sidePackage(), Fixtures.SIDE_ADAPTER);
                servedBaseline = Served.open(w, p.merged(), null);
            }
            default -> throw new IllegalStateException("no setup for benchmark " + method);
        }
    }

    @TearDown(Level.Trial)
    public void close() {
        OrtSupport.close(candidate, baseline, servedCandidate, servedBaseline);
    }

    @Benchmark
    public Object baseVsBase(Pair pair) throws Exception {
        return pair.once(candidate::run, baseline::run);
    }

    @Benchmark
    public Object mergedVsBase(Pair pair) throws Exception {
        return pair.once(candidate::run, baseline::run);
    }

    @Benchmark
    public Object sideVsMerged(Pair pair) throws Exception {
        return pair.once(candidate::run, baseline::run);
    }

    @Benchmark
    public Object multiVsSide(Pair pair) throws Exception {
        return pair.once(candidate::run, baseline::run);
    }

    @Benchmark
    public Object servedSideVsMerged(Pair pair) throws Exception {
        return pair.once(servedCandidate::run, servedBaseline::run);
    }
}
