package io.peft4j.bench;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoraAdapter;
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

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.util.concurrent.TimeUnit;

/**
 * Switching adapters on one side-graph session, as a server does it: every run makes its own
 * {@code RunOptions} and activates the request's adapter; nothing is reloaded. The paired runs use
 * a small batch ({@link Bench#SMALL_BATCH} row; MiniLM {@link Bench#SMALL_SEQ} tokens): what
 * activating an adapter costs does not depend on the batch, and a run of a few milliseconds lets a
 * difference well under one millisecond show above the noise.
 * <ul>
 *   <li>{@code switchVsKeep} — paired (see {@link Pair}): blocks of runs that switch adapter on
 *       every run (2, 1, 2, 1) vs blocks that keep adapter 1; the difference per run is the switch
 *       cost;</li>
 *   <li>{@code adapterVsNone} — paired: runs that activate adapter 1 vs runs with no adapter
 *       (the graph's zero defaults, the same arithmetic): the cost of activating an adapter at
 *       all;</li>
 *   <li>{@code copyAdapterTensors} — copying one adapter's bytes into a direct buffer, the floor
 *       for a runtime that copies adapter tensors on every switch;</li>
 *   <li>{@code createAdapter} — {@code OrtLoraAdapter.create} from the {@code .onnx_adapter} file
 *       (loading an adapter, once per adapter);</li>
 *   <li>{@code reloadSession} — opening a session on the merged model: what switching by
 *       reloading a model would cost instead.</li>
 * </ul>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 2, jvmArgsAppend = {"-Xms1g", "-Xmx3g"})
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 8, time = 1)
public class SwitchBench {

    /** Runs per block in {@code switchVsKeep}. */
    static final int BLOCK = 4;

    @Param({"resnet18", "minilm"})
    public String workload;

    private Fixtures.Prepared prepared;
    private Session side;
    private OrtLoraAdapter first;
    private OrtLoraAdapter second;
    private boolean switchingFirst;
    private byte[] adapterBytes;
    private ByteBuffer copy;

    @Setup(Level.Trial)
    public void open(BenchmarkParams params) throws OrtException, IOException {
        Workload w = Workload.of(workload);
        prepared = Fixtures.get(w);
        String method = params.getBenchmark().substring(params.getBenchmark().lastIndexOf('.') + 1);
        switch (method) {
            case "switchVsKeep", "adapterVsNone" -> {
                side = Session.small(w, prepared.side());
                first = OrtLoraAdapter.create(prepared.adapterFiles().get(0).toString());
                second = OrtLoraAdapter.create(prepared.adapterFiles().get(1).toString());
            }
            case "copyAdapterTensors" -> {
                adapterBytes = Files.readAllBytes(prepared.adapterFiles().get(1));
                copy = ByteBuffer.allocateDirect(adapterBytes.length).order(ByteOrder.nativeOrder());
            }
            case "createAdapter", "reloadSession" -> {
                // they open files themselves
            }
            default -> throw new IllegalStateException("no setup for benchmark " + method);
        }
    }

    @TearDown(Level.Trial)
    public void close() {
        OrtSupport.close(first, second, side);
    }

    /**
     * A block that switches on every run (adapters 2, 1, 2, 1: it ends on adapter 1) and a block
     * that keeps adapter 1, in alternating order; the keeping block always follows adapter 1, so
     * none of its runs switches.
     */
    @Benchmark
    @Measurement(iterations = 12, time = 1)
    public Object switchVsKeep(Pair pair) throws Exception {
        switchingFirst = !switchingFirst;
        Object out = null;
        for (int half = 0; half < 2; half++) {
            boolean switching = (half == 0) == switchingFirst;
            for (int i = 0; i < BLOCK; i++) {
                OrtLoraAdapter a = switching && i % 2 == 0 ? second : first;
                out = pair.time(switching, () -> side.runWithFreshOptions(a));
            }
        }
        return out;
    }

    @Benchmark
    @Measurement(iterations = 12, time = 1)
    public Object adapterVsNone(Pair pair) throws Exception {
        return pair.once(() -> side.runWithFreshOptions(first), side::run);
    }

    @Benchmark
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    @Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx3g"})
    @Warmup(iterations = 2, time = 1)
    @Measurement(iterations = 5, time = 1)
    public ByteBuffer copyAdapterTensors() {
        copy.clear();
        copy.put(adapterBytes);
        return copy;
    }

    @Benchmark
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    @Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx3g"})
    @Warmup(iterations = 2, time = 1)
    @Measurement(iterations = 5, time = 1)
    public void createAdapter() throws OrtException {
        OrtLoraAdapter.create(prepared.adapterFiles().get(1).toString()).close();
    }

    @Benchmark
    @Warmup(iterations = 1, time = 1)
    @Measurement(iterations = 4, time = 1)
    public void reloadSession() throws OrtException {
        OrtSupport.session(prepared.merged()).close();
    }
}
