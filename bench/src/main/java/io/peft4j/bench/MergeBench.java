package io.peft4j.bench;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.tensor.Tensor;
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
import org.openjdk.jmh.annotations.Warmup;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * {@code mergeVsRead}, paired (see {@link Pair}): merging adapter 1 (r = 8 on every target of the
 * workload) into the model in memory with {@code Peft.merge}, vs reading the base model from its
 * file with {@code OnnxIO.read}, the baseline: the step every export starts with.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 2, jvmArgsAppend = {"-Xms1g", "-Xmx3g"})
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 6, time = 1)
public class MergeBench {

    @Param({"resnet18", "minilm"})
    public String workload;

    private Fixtures.Prepared prepared;
    private Model model;
    private AdapterBinding binding;
    private final Map<String, Tensor> original = new LinkedHashMap<>();

    @Setup(Level.Trial)
    public void open() {
        prepared = Fixtures.get(Workload.of(workload));
        model = OnnxIO.read(prepared.base());
        binding = AdapterBinding.bind(model, AdapterBundle.read(prepared.bundle()));
        for (AdapterBinding.Module m : binding.modules()) {
            original.put(m.target().weight(), model.graph().initializer(m.target().weight()));
        }
    }

    private Model merge() {
        Peft.merge(model, binding);
        return model;
    }

    @Benchmark
    public Object mergeVsRead(Pair pair) throws Exception {
        // back to the base weights (references, untimed): every merge starts from the base model
        original.forEach(model.graph()::setInitializer);
        model.metadata().remove(Peft.MERGED_METADATA);
        return pair.once(this::merge, () -> OnnxIO.read(prepared.base()));
    }
}
