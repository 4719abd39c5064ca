package io.peft4j.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.OrtSession.RunOptions;
import io.peft4j.core.peft.Stack;
import io.peft4j.core.tensor.Tensor;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One benchmark session with its input batch already in ONNX Runtime tensors, and optionally
 * run options that activate a LoRA adapter (made once; see {@link #runWithFreshOptions} for the
 * per-request kind). Closing it closes everything it opened.
 */
final class Session implements AutoCloseable {

    private final OrtSession session;
    private final Map<String, OnnxTensor> feeds;
    private final OrtLoraAdapter adapter;
    private final RunOptions options;

    private Session(OrtSession session, Map<String, OnnxTensor> feeds, OrtLoraAdapter adapter, RunOptions options) {
        this.session = session;
        this.feeds = feeds;
        this.adapter = adapter;
        this.options = options;
    }

    /** A session on {@code model} fed the workload's batch. */
    static Session plain(Workload w, Path model) throws OrtException {
        return open(w, model, null, w.inputs(42));
    }

    /** A session on {@code model} fed a small batch ({@link Bench#SMALL_BATCH}). */
    static Session small(Workload w, Path model) throws OrtException {
        return open(w, model, null, w.inputs(42, Bench.SMALL_BATCH, Bench.SMALL_SEQ));
    }

    /** A session on the side model with adapter {@code file} active on every run. */
    static Session withAdapter(Workload w, Path sideModel, Path file) throws OrtException {
        return open(w, sideModel, file, w.inputs(42));
    }

    /** A session on the multi-adapter model whose batch rows go to adapters 1, 2, …, K, 1, 2, … */
    static Session mixed(Workload w, Path multiModel) throws OrtException {
        Map<String, Tensor> in = new LinkedHashMap<>(w.inputs(42));
        long[] index = new long[Bench.BATCH];
        for (int b = 0; b < index.length; b++) {
            index[b] = 1 + b % Bench.ADAPTERS;
        }
        in.put(Stack.ADAPTER_INDEX, Tensor.ofLongs(new long[] {Bench.BATCH}, index));
        return open(w, multiModel, null, in);
    }

    private static Session open(Workload w, Path model, Path adapterFile, Map<String, Tensor> in) throws OrtException {
        OrtSession s = null;
        Map<String, OnnxTensor> feeds = null;
        OrtLoraAdapter a = null;
        RunOptions o = null;
        try {
            s = OrtSupport.session(model);
            feeds = OrtSupport.toOrt(in);
            if (adapterFile != null) {
                a = OrtLoraAdapter.create(adapterFile.toString());
                o = new RunOptions();
                o.addActiveLoraAdapter(a);
            }
            return new Session(s, feeds, a, o);
        } catch (OrtException | RuntimeException e) {
            OrtSupport.close(feeds);
            OrtSupport.close(o, a, s);
            throw e;
        }
    }

    /** One run; returns the (closed) first output, for the benchmark to hand to JMH. */
    Object run() throws OrtException {
        try (OrtSession.Result r = options == null ? session.run(feeds) : session.run(feeds, options)) {
            return r.get(0);
        }
    }

    /** One run with new run options that activate {@code a} (what a server does per request). */
    Object runWithFreshOptions(OrtLoraAdapter a) throws OrtException {
        try (RunOptions o = new RunOptions()) {
            o.addActiveLoraAdapter(a);
            try (OrtSession.Result r = session.run(feeds, o)) {
                return r.get(0);
            }
        }
    }

    @Override
    public void close() {
        OrtSupport.close(feeds);
        OrtSupport.close(options, adapter, session);
    }
}
