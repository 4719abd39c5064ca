package io.peft4j.devices.ort;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.peft.AdapterBinding;
import io.peft4j.core.peft.Peft;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.ModelInfo;
import io.peft4j.devices.RefCount;
import io.peft4j.devices.TensorSpec;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.function.BiFunction;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Sessions of a side package with one adapter merged into the weights, so that the adapters a
 * server uses most run at the merged model's speed while every other adapter still runs on the
 * side graph. ONNX Runtime's CPU provider runs a side graph's low-rank branches as plain
 * convolutions over weights fed at run time (no pre-packing, no blocked layout, layout reorders
 * around them): on resnet18 that costs about 1.5 to 1.7 times the merged model. A merged session
 * costs nothing per run, but 2 to 3 times the weights in memory and a build (merge plus session) on
 * first use.
 *
 * <p>How it behaves:
 * <ul>
 * <li>At most {@code capacity} sessions (the base model, a run without adapter, counts as one).
 * A run of an adapter version without one is answered from the side graph at once and queues a
 * build on one background thread; runs switch to the merged session when it is ready. A run never
 * waits for a build.</li>
 * <li>When every place is taken, a build replaces the least recently used session, and only one
 * that has not run for a while ({@link #IDLE_MILLIS} ms by default): two adapters taking turns do not rebuild each
 * other's sessions; the newcomer stays on the side graph.</li>
 * <li>A session belongs to one adapter version: replacing or removing the adapter drops it
 * (after the runs in flight). Runs hold what they use, so a session is closed only after its last
 * run.</li>
 * <li>The merged model is made from the package's own side graph: {@link Peft#strip} takes the
 * adapter branches out (the base graph again) and {@link Peft#merge} folds the adapter's bundle in.
 * Before a session is used, it and the side graph with the adapter run on a probe batch, and must
 * agree to 1e-3 relative; an adapter that fails (or cannot be merged) stays on the side graph for
 * good, with a warning in the log.</li>
 * </ul>
 */
final class MergedSessions implements AutoCloseable {

    /** A least recently used session is replaced only after it has not run for this long. */
    static final long IDLE_MILLIS = 10_000;
    /** Largest relative difference allowed between a merged session and the side graph on the probe. */
    static final double PROBE_TOLERANCE = 1e-3;

    private static final Logger LOG = Logger.getLogger(MergedSessions.class.getName());

    /** A merged session, reference-counted: one reference while cached, one per run. */
    static final class Entry {
        final OrtSession session;
        private final RefCount refs = new RefCount();

        Entry(OrtSession session) {
            this.session = session;
        }

        boolean acquire() {
            return refs.acquire();
        }

        void release() {
            if (refs.release()) {
                try {
                    session.close();
                } catch (OrtException e) {
                    // the native session is gone either way
                }
            }
        }
    }

    /** One adapter version (or the base model): what a merged session is made from, and the session once built. */
    static final class Slot {
        final String name;                         // null: the base model
        final Supplier<AdapterBundle> bundle;      // null: the base model
        final OrtLoraAdapter lora;                 // the side graph's run of the same adapter (null: base)
        private final java.util.function.BooleanSupplier hold;   // keeps the adapter (and its lora) alive during a build
        private final Runnable unhold;
        private volatile Entry entry;
        private volatile long lastUse;
        private volatile boolean failed;
        private boolean queued;                    // guarded by the owning MergedSessions
        private boolean dropped;                   // guarded by the owning MergedSessions

        /**
         * @param hold   takes a reference to the adapter for the build (false: it is gone)
         * @param unhold gives it back
         */
        Slot(String name, Supplier<AdapterBundle> bundle, OrtLoraAdapter lora, java.util.function.BooleanSupplier hold,
             Runnable unhold) {
            this.name = name;
            this.bundle = bundle;
            this.lora = lora;
            this.hold = hold;
            this.unhold = unhold;
        }

        String label() {
            return name == null ? "the base model" : "adapter '" + name + "'";
        }
    }

    private final int capacity;
    private final long idleMillis;
    private final OrtEnvironment env;
    private final Supplier<OrtSession.SessionOptions> options;
    private final Path sideModel;
    private final ModelInfo info;
    private final BiFunction<Map<String, Tensor>, OrtLoraAdapter, Map<String, Tensor>> sideRun;
    private final String what;
    private final List<Slot> cached = new ArrayList<>();   // least recently built first
    private final ExecutorService builder;
    private boolean closed;

    /**
     * @param capacity  how many merged sessions at most (at least 1)
     * @param idleMillis how long the least recently used session must have been idle to be replaced
     * @param options   fresh session options, as the side session's
     * @param sideModel the package's side graph
     * @param sideRun   runs the side graph with an adapter (null: none), for the probe
     */
    MergedSessions(int capacity, long idleMillis, OrtEnvironment env, Supplier<OrtSession.SessionOptions> options, Path sideModel, ModelInfo info,
                   BiFunction<Map<String, Tensor>, OrtLoraAdapter, Map<String, Tensor>> sideRun, String what) {
        this.capacity = capacity;
        this.idleMillis = idleMillis;
        this.env = env;
        this.options = options;
        this.sideModel = sideModel;
        this.info = info;
        this.sideRun = sideRun;
        this.what = what;
        this.builder = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "peft4j-merge-" + sideModel.getFileName());
            t.setDaemon(true);
            return t;
        });
    }

    /**
     * The merged session of {@code s}, held for one run (the caller releases it), or null when
     * there is none yet: then the run goes to the side graph, and a build may be queued.
     */
    Entry acquire(Slot s) {
        s.lastUse = System.nanoTime();
        Entry e = s.entry;
        if (e != null && e.acquire()) {
            return e;
        }
        if (!s.failed) {
            maybeQueue(s);
        }
        return null;
    }

    /** Whether {@code s} has a merged session now. */
    boolean has(Slot s) {
        return s.entry != null;
    }

    /** {@code s} is gone (its adapter replaced or removed): its session goes after the runs holding it. */
    void drop(Slot s) {
        Entry e;
        synchronized (this) {
            s.dropped = true;
            cached.remove(s);
            e = s.entry;
            s.entry = null;
        }
        if (e != null) {
            e.release();
        }
    }

    private synchronized void maybeQueue(Slot s) {
        if (closed || s.queued || s.dropped || s.entry != null) {
            return;
        }
        if (cached.size() >= capacity && victim() == null) {
            return;
        }
        s.queued = true;
        try {
            builder.execute(() -> build(s));
        } catch (RejectedExecutionException e) {
            s.queued = false;
        }
    }

    /** The session to replace: the least recently used one, if it has been idle long enough. */
    private Slot victim() {
        Slot lru = null;
        for (Slot c : cached) {
            if (lru == null || c.lastUse < lru.lastUse) {
                lru = c;
            }
        }
        return lru != null && System.nanoTime() - lru.lastUse >= idleMillis * 1_000_000L ? lru : null;
    }

    private void build(Slot s) {
        try {
            if (s.hold.getAsBoolean()) {
                try {
                    buildHeld(s);
                } finally {
                    s.unhold.run();
                }
            }
        } finally {
            synchronized (this) {
                s.queued = false;   // whatever happened, a later run may ask again (unless the slot failed)
            }
        }
    }

    private void buildHeld(Slot s) {
        OrtSession session = null;
        try {
            long t0 = System.nanoTime();
            Model m = strippedBase();
            if (s.bundle != null) {
                AdapterBundle b = SideAdapters.withoutFingerprint(s.bundle.get());
                Peft.merge(m, AdapterBinding.bind(m, b));
            }
            try (OrtSession.SessionOptions so = options.get()) {
                session = env.createSession(OnnxIO.toBytes(m), so);
            }
            probe(s, session);
            Entry fresh = new Entry(session);
            session = null;
            Entry evicted = null;
            synchronized (this) {
                if (closed || s.dropped) {
                    fresh.release();
                    return;
                }
                if (cached.size() >= capacity) {
                    Slot v = victim();
                    if (v == null) {
                        fresh.release();   // every place got busy while this was built; a later run asks again
                        return;
                    }
                    cached.remove(v);
                    evicted = v.entry;
                    v.entry = null;
                }
                s.entry = fresh;
                cached.add(s);
            }
            if (evicted != null) {
                evicted.release();
            }
            LOG.fine(() -> String.format("%s: merged session for %s ready in %.0f ms", what, s.label(), (System.nanoTime() - t0) / 1e6));
        } catch (RuntimeException | OrtException e) {
            s.failed = true;
            boolean quiet;
            synchronized (this) {
                quiet = closed || s.dropped;   // the backend or the adapter went away under the build
            }
            if (quiet) {
                return;
            }
            LOG.log(Level.WARNING, what + ": " + s.label() + " keeps running on the side graph; no merged session: " + e.getMessage(), e);
        } finally {
            if (session != null) {
                try {
                    session.close();
                } catch (OrtException e) {
                    // nothing to do
                }
            }
        }
    }

    /**
     * The side graph without its adapter branches, read again for every build rather than kept:
     * a copy held for the backend's lifetime would cost as much memory as a merged session.
     */
    private Model strippedBase() {
        Model m = OnnxIO.read(sideModel);
        SideAdapters.liftHalfWeights(m.graph());
        Peft.strip(m);
        return m;
    }

    /** The merged session and the side graph with the same adapter agree on a probe batch. */
    private void probe(Slot s, OrtSession session) throws OrtException {
        Map<String, Tensor> in = probeInputs(info);
        Map<String, Tensor> side = sideRun.apply(in, s.lora);
        Map<String, Tensor> merged = new LinkedHashMap<>();
        Map<String, ai.onnxruntime.OnnxTensor> feeds = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, Tensor> e : in.entrySet()) {
                feeds.put(e.getKey(), OrtTensors.toOrt(env, e.getValue()));
            }
            try (OrtSession.Result r = session.run(feeds, side.keySet())) {
                for (Map.Entry<String, ai.onnxruntime.OnnxValue> e : r) {
                    merged.put(e.getKey(), OrtTensors.fromOrt((ai.onnxruntime.OnnxTensor) e.getValue()));
                }
            }
        } finally {
            feeds.values().forEach(ai.onnxruntime.OnnxTensor::close);
        }
        for (Map.Entry<String, Tensor> e : side.entrySet()) {
            double d = relDiff(merged.get(e.getKey()), e.getValue());
            if (!(d <= PROBE_TOLERANCE)) {
                throw new IllegalStateException("the merged model's output '" + e.getKey() + "' differs from the side graph's by "
                        + d + " (relative) on a probe batch");
            }
        }
    }

    /** One row per input: floats from a fixed seed, integers and booleans 1 (a valid token id, an open mask). */
    static Map<String, Tensor> probeInputs(ModelInfo info) {
        Random r = new Random(20261122L);
        Map<String, Tensor> in = new LinkedHashMap<>();
        for (TensorSpec s : info.inputs()) {
            long[] shape = s.shape().clone();
            for (int i = 0; i < shape.length; i++) {
                if (shape[i] < 1) {
                    shape[i] = i == 0 ? 1 : 8;
                }
            }
            int n = Math.toIntExact(Tensor.numel(shape));
            Tensor t = switch (s.dtype()) {
                case FLOAT, FLOAT16, DOUBLE -> {
                    float[] v = new float[n];
                    for (int i = 0; i < n; i++) {
                        v[i] = (float) r.nextGaussian();
                    }
                    yield Tensor.ofFloats(shape, v).to(s.dtype());
                }
                default -> {
                    long[] ones = new long[n];
                    java.util.Arrays.fill(ones, 1L);
                    yield Tensor.ofLongs(shape, ones).to(s.dtype());
                }
            };
            in.put(s.name(), t);
        }
        return in;
    }

    private static double relDiff(Tensor a, Tensor ref) {
        if (a == null || a.numel() != ref.numel()) {
            return Double.NaN;
        }
        double max = 0;
        double scale = 0;
        for (long i = 0; i < ref.numel(); i++) {
            double x = a.getDouble(i);
            double y = ref.getDouble(i);
            if (Double.isNaN(x) != Double.isNaN(y)) {
                return Double.NaN;
            }
            if (!Double.isNaN(x)) {
                max = Math.max(max, Math.abs(x - y));
                scale = Math.max(scale, Math.abs(y));
            }
        }
        return scale == 0 ? max : max / scale;
    }

    /** Stops the builder and closes every session once its runs are done. */
    @Override
    public void close() {
        List<Entry> entries = new ArrayList<>();
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            for (Slot s : cached) {
                if (s.entry != null) {
                    entries.add(s.entry);
                    s.entry = null;
                }
            }
            cached.clear();
        }
        builder.shutdownNow();
        entries.forEach(Entry::release);
    }
}
