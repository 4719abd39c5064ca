package io.peft4j.devices.plan;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoggingLevel;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.Node;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.ValueInfos;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.ort.OrtTensors;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The activation memory of a graph as a function of the batch size: the peak, over the nodes in
 * topological order, of the bytes held by the values live at that node (a value lives from the node
 * that makes it, or the start for a graph input, to its last consumer, or the end for a graph
 * output). Initializers are weights, not activations, and are not counted.
 *
 * <p>The size of each value comes from ONNX Runtime itself rather than from a shape-inference
 * reimplementation: a copy of the graph that exposes every intermediate value as an output runs
 * on the CPU at batch 1 and at batch 2 with zero-filled inputs, and each value's size is taken as
 * {@code a + b * batch} from the two runs. That is exact for every value whose size is affine in
 * the batch (all of them in feed-forward vision and transformer models) and works for every op
 * ONNX Runtime runs. It costs two runs of the model at batch 1 and 2 with everything kept.
 * Dynamic axes other than the first (a sequence length) take {@code otherDim}. Values inside
 * subgraphs ({@code If}, {@code Loop}) are not seen. ONNX Runtime's own planner reuses buffers
 * and fuses nodes, so the real peak is usually lower than this one: it is an upper estimate.
 */
public final class ActivationProfile {

    /** Per node in topological order: bytes live there = intercept + slope * batch. */
    private final long[] intercept;
    private final long[] slope;
    private final Map<String, long[]> valueBytes;
    /** The part of intercept and slope that is fp32 values (what a lower precision shrinks). */
    private final long[] floatIntercept;
    private final long[] floatSlope;

    private ActivationProfile(long[] intercept, long[] slope, long[] floatIntercept, long[] floatSlope,
                              Map<String, long[]> valueBytes) {
        this.intercept = intercept;
        this.slope = slope;
        this.floatIntercept = floatIntercept;
        this.floatSlope = floatSlope;
        this.valueBytes = valueBytes;
    }

    /** Probes {@code model} (not modified) with ONNX Runtime on the CPU. */
    public static ActivationProfile probe(Model model, long otherDim) {
        if (otherDim < 1) {
            throw Peft4jException.invalid("the size of the other dynamic axes must be at least 1, got " + otherDim);
        }
        Model probe = OnnxIO.read(OnnxIO.toBytes(model), "probe copy");
        Graph g = probe.graph();
        List<Node> order = g.topologicalOrder();
        java.util.Set<String> outputs = new java.util.HashSet<>(g.outputNames());
        for (Node n : order) {
            for (String o : n.outputs()) {
                if (!o.isEmpty() && outputs.add(o)) {
                    g.addOutput(ValueInfoProto.newBuilder().setName(o).build());
                }
            }
        }
        Map<String, ValueInfoProto> feeds = new LinkedHashMap<>();
        for (ValueInfoProto in : g.inputs()) {
            if (!g.hasInitializer(in.getName())) {
                feeds.put(in.getName(), in);
            }
        }
        Map<String, Long> at1 = new HashMap<>();
        Map<String, Long> at2 = new HashMap<>();
        Map<String, Boolean> isFloat = new HashMap<>();
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        try (OrtSession.SessionOptions so = new OrtSession.SessionOptions()) {
            so.setSessionLogLevel(OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR);
            so.setIntraOpNumThreads(Math.min(4, Runtime.getRuntime().availableProcessors()));
            so.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);   // keep every value
            try (OrtSession s = env.createSession(OnnxIO.toBytes(probe), so)) {
                measure(env, s, feeds, 1, otherDim, at1, isFloat);
                measure(env, s, feeds, 2, otherDim, at2, isFloat);
            }
        } catch (OrtException e) {
            throw new Peft4jException(ErrorCode.UNSUPPORTED, "ONNX Runtime cannot run the model to measure its activations: "
                    + e.getMessage(), e);
        }
        Map<String, long[]> bytes = new LinkedHashMap<>();
        for (Map.Entry<String, Long> e : at1.entrySet()) {
            long b1 = e.getValue();
            long b2 = at2.getOrDefault(e.getKey(), b1);
            bytes.put(e.getKey(), new long[] {b1 - (b2 - b1), b2 - b1});
        }
        // liveness over the original order
        Map<String, Integer> last = new HashMap<>();
        for (int i = 0; i < order.size(); i++) {
            for (String in : order.get(i).inputs()) {
                last.put(in, i);
            }
        }
        for (String o : model.graph().outputNames()) {
            last.put(o, order.size() - 1);
        }
        int steps = Math.max(1, order.size());
        long[] ic = new long[steps];
        long[] sl = new long[steps];
        long[] fic = new long[steps];
        long[] fsl = new long[steps];
        Map<String, Integer> first = new HashMap<>();
        feeds.keySet().forEach(f -> first.put(f, 0));
        for (int i = 0; i < order.size(); i++) {
            for (String o : order.get(i).outputs()) {
                if (!o.isEmpty()) {
                    first.put(o, i);
                }
            }
        }
        for (Map.Entry<String, Integer> e : first.entrySet()) {
            long[] b = bytes.get(e.getKey());
            if (b == null) {
                continue;
            }
            int from = e.getValue();
            int to = Math.max(from, last.getOrDefault(e.getKey(), from));
            boolean fl = isFloat.getOrDefault(e.getKey(), false);
            for (int i = from; i <= to && i < steps; i++) {
                ic[i] += b[0];
                sl[i] += b[1];
                if (fl) {
                    fic[i] += b[0];
                    fsl[i] += b[1];
                }
            }
        }
        return new ActivationProfile(ic, sl, fic, fsl, bytes);
    }

    private static void measure(OrtEnvironment env, OrtSession s, Map<String, ValueInfoProto> feeds, long batch,
                                long otherDim, Map<String, Long> into, Map<String, Boolean> isFloat) throws OrtException {
        Map<String, OnnxTensor> in = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, ValueInfoProto> f : feeds.entrySet()) {
                DataType dt = ValueInfos.elementType(f.getValue()).orElseThrow(() -> Peft4jException.unsupported(
                        "graph input '" + f.getKey() + "' has no element type; the planner cannot feed it"));
                List<Object> dims = ValueInfos.dims(f.getValue()).orElseThrow(() -> Peft4jException.unsupported(
                        "graph input '" + f.getKey() + "' has no shape; the planner cannot feed it"));
                long[] shape = new long[dims.size()];
                for (int i = 0; i < shape.length; i++) {
                    Object d = dims.get(i);
                    shape[i] = d instanceof Long l && l > 0 ? l : i == 0 ? batch : otherDim;
                }
                in.put(f.getKey(), OrtTensors.toOrt(env, Tensor.zeros(dt, shape)));
                into.put(f.getKey(), dt.byteSize(Tensor.numel(shape)));
                isFloat.put(f.getKey(), dt == DataType.FLOAT);
            }
            try (OrtSession.Result r = s.run(in)) {
                for (Map.Entry<String, OnnxValue> e : r) {
                    if (e.getValue() instanceof OnnxTensor t) {
                        TensorInfo info = t.getInfo();
                        DataType dt = OrtTensors.dataType(info.onnxType);
                        into.put(e.getKey(), dt.byteSize(Tensor.numel(info.getShape())));
                        isFloat.put(e.getKey(), dt == DataType.FLOAT);
                    }
                }
            }
        } finally {
            in.values().forEach(OnnxTensor::close);
        }
    }

    /** The peak bytes of live values at {@code batch}, with fp32 values scaled by {@code floatScale} (0.5 for fp16). */
    public long peakBytes(long batch, double floatScale) {
        long best = 0;
        for (int i = 0; i < intercept.length; i++) {
            double other = (intercept[i] - floatIntercept[i]) + (double) (slope[i] - floatSlope[i]) * batch;
            double fl = (floatIntercept[i] + (double) floatSlope[i] * batch) * floatScale;
            best = Math.max(best, (long) Math.max(0, other + fl));
        }
        return best;
    }

    /** How many values were measured. */
    public int values() {
        return valueBytes.size();
    }
}
