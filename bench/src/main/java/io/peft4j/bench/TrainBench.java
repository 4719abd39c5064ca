package io.peft4j.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.trainer.GradientSession;
import io.peft4j.trainer.optim.AdamW;
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

import java.nio.FloatBuffer;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * LoRA training on ONNX Runtime (see {@link Training} for the models, batch and adapter), each
 * paired with the forward pass of the same injected model (see {@link Pair}); both sessions share
 * the one pool of {@link Bench#THREADS} intra-op threads:
 * <ul>
 *   <li>{@code backwardVsForward} — one {@link GradientSession} step (forward, loss, backward; the
 *       LoRA values copied in, loss and gradients copied out) vs the forward alone;</li>
 *   <li>{@code stepVsForward} — one full training step: that, then an AdamW update of the LoRA
 *       tensors in Java ({@link AdamW}, PyTorch's defaults), vs the forward alone. Its candidate is
 *       what the report compares with PyTorch's LoRA step.</li>
 * </ul>
 * The parameter is {@code model}, not {@code workload}: these models are not the inference
 * benchmarks' workloads ({@code bench/run} passes both).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 2, jvmArgsAppend = {"-Xms1g", "-Xmx3g"})
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 6, time = 2)
public class TrainBench {

    @Param({"resnet18", "mobilenet_v3_small"})
    public String model;

    private Training.Setup setup;
    private GradientSession training;
    private OrtSession forward;
    private Map<String, OnnxTensor> forwardFeeds;
    private Map<String, Tensor> batch;
    private Map<String, float[]> params;
    private AdamW adamw;

    @Setup(Level.Trial)
    public void open() throws Exception {
        setup = Training.lora(Training.TrainModel.of(model));
        batch = setup.batch();
        params = setup.paramsCopy();
        adamw = Training.optimizer();
        try (OrtSession.SessionOptions o = Training.options()) {
            training = new GradientSession(setup.graph(), o, List.of());
            forward = OrtSupport.env().createSession(setup.forward(), o);
        }
        forwardFeeds = OrtSupport.toOrt(Map.of("input", batch.get("input")));
        check();
    }

    /** The two sessions run the same model: the loss of the forward's logits is the training step's loss. */
    private void check() throws Exception {
        double expected;
        try (OrtSession.Result r = forward.run(forwardFeeds)) {
            FloatBuffer b = ((OnnxTensor) r.get(0)).getFloatBuffer();
            float[] logits = new float[b.remaining()];
            b.get(logits);
            expected = Training.crossEntropy(logits, batch.get("labels").toLongArray());
        }
        double loss = training.step(batch, params).loss();
        double err = Math.abs(loss - expected) / Math.max(Math.abs(expected), 1e-6);
        System.err.printf(Locale.ROOT, "bench: %s LoRA training: %d tensors, %d parameters; loss %.5f, from the forward's "
                + "logits %.5f%n", model, params.size(), setup.parameters(), loss, expected);
        if (!(err < 1e-4)) {
            throw new IllegalStateException("the " + model + " training step's loss " + loss + " is not the forward's "
                    + expected + "; not benchmarking them");
        }
    }

    @TearDown(Level.Trial)
    public void close() {
        OrtSupport.close(forwardFeeds);
        OrtSupport.close(training, forward);
    }

    private Object forward() throws Exception {
        try (OrtSession.Result r = forward.run(forwardFeeds)) {
            return r.get(0);
        }
    }

    private Object gradients() {
        return training.step(batch, params);
    }

    private Object trainStep() {
        GradientSession.Step s = training.step(batch, params);
        adamw.step(params, s.gradients());
        return s;
    }

    @Benchmark
    public Object backwardVsForward(Pair pair) throws Exception {
        return pair.once(this::gradients, this::forward);
    }

    @Benchmark
    public Object stepVsForward(Pair pair) throws Exception {
        return pair.once(this::trainStep, this::forward);
    }
}
