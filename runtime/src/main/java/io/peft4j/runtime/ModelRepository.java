package io.peft4j.runtime;

import io.micronaut.context.annotation.Context;
import io.micronaut.context.env.Environment;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.pkg.ModelPackage;
import io.peft4j.devices.InferenceBackend;
import io.peft4j.devices.detect.Detected;
import io.peft4j.devices.detect.DeviceDetector;
import io.peft4j.devices.detect.ProfileChoice;
import io.peft4j.devices.ort.OrtBackend;
import io.peft4j.devices.profile.DeviceProfile;
import io.peft4j.devices.profile.DeviceProfiles;
import io.peft4j.devices.select.BackendSelector;
import io.peft4j.devices.select.Selection;
import jakarta.annotation.PreDestroy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;

/**
 * The model repository: a directory whose subdirectories are model packages, each served under its
 * directory name. Every package is loaded when the service starts (one that fails to load is
 * reported in the index with the reason, and the others still serve); {@link #load} loads or
 * reloads one, {@link #unload} stops serving it. A model is swapped atomically: requests that
 * already hold the old backend finish on it, and its native memory is freed after them.
 *
 * <p>Models run on ONNX Runtime on the CPU unless {@code peft4j.device} names a device profile
 * ({@code auto}: the detected device's): then the backend is the first usable one in the profile's
 * order ({@link BackendSelector}), chosen once at start and logged with the reason each preferred
 * backend was skipped; a profile none of whose backends is usable stops the start with every reason.
 */
@Context
public final class ModelRepository implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(ModelRepository.class);

    /** A model name: a package directory's name, safe in a URL path. */
    static final String NAME = "[A-Za-z0-9][A-Za-z0-9._-]{0,127}";

    /** Why a package in the repository is not served. */
    private record Failure(String reason) {
    }

    private final Path root;
    private final Path realRoot;
    private final OrtBackend.Options options;
    private final int threads;
    /** The backend chosen for {@code peft4j.device}; null: ONNX Runtime on the CPU. */
    private final Selection selection;
    private final Map<String, ModelScheduler> loaded = new ConcurrentHashMap<>();
    private final SchedulingConfig scheduling;
    private final Environment env;
    private final RuntimeMetrics metrics;
    private final Map<String, Failure> failed = new ConcurrentHashMap<>();

    public ModelRepository(RuntimeConfig config, SchedulingConfig scheduling, Environment env, RuntimeMetrics metrics) {
        this.scheduling = scheduling;
        this.env = env;
        this.metrics = metrics;
        this.root = Path.of(config.repo()).toAbsolutePath().normalize();
        if (!Files.isDirectory(root)) {
            throw new Peft4jException(ErrorCode.IO, "model repository not found: " + root + " (give a directory of model "
                    + "packages, e.g. made with peft4j export --out REPO/NAME)");
        }
        try {
            this.realRoot = root.toRealPath();
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read the model repository " + root + ": " + e.getMessage(), e);
        }
        this.options = new OrtBackend.Options(config.threads(), 1, config.spinning()).withMergedSessions(config.mergedSessions());
        this.threads = config.threads();
        this.selection = config.device() == null ? null : select(config);
        for (String name : scan()) {
            try {
                load(name);
            } catch (Peft4jException e) {
                LOG.warn("model '{}' is not served: {}", name, e.getMessage());
            }
        }
        LOG.info("model repository {}: {} model(s) ready {}", root, loaded.size(), new TreeMap<>(loaded).keySet());
    }

    /** Chooses the backend for {@code peft4j.device}, logging the device, the profile and every skipped backend. */
    private static Selection select(RuntimeConfig config) {
        DeviceProfiles profiles = config.profiles() == null ? DeviceProfiles.builtIn()
                : DeviceProfiles.withUser(Path.of(config.profiles()));
        Detected d = config.deviceRoot() == null ? DeviceDetector.detect() : DeviceDetector.detect(Path.of(config.deviceRoot()));
        ProfileChoice choice = config.device().equals("auto") ? ProfileChoice.of(profiles, d)
                : new ProfileChoice(profiles.get(config.device()), "named by peft4j.device");
        LOG.info("device: {}; profile '{}' ({})", d.summary(), choice.profile().id(), choice.reason());
        Selection s = BackendSelector.standard().select(choice.profile(), d);
        if (s.fellBack()) {
            LOG.warn("{}", s.describe());
        } else {
            LOG.info("{}", s.describe());
        }
        return s;
    }

    /** The backend selection made for {@code peft4j.device}; empty when models run on ONNX Runtime's CPU provider by default. */
    public Optional<Selection> selection() {
        return Optional.ofNullable(selection);
    }

    /** The device profile models are served for; empty without {@code peft4j.device}. */
    public Optional<DeviceProfile> profile() {
        return selection().map(Selection::profile);
    }

    /** The repository directory (absolute, normalized). */
    public Path root() {
        return root;
    }

    /** The repository directory with symbolic links resolved: what paths inside it must stay under. */
    public Path realRoot() {
        return realRoot;
    }

    /** The names of the package directories in the repository now. */
    private List<String> scan() {
        List<String> names = new ArrayList<>();
        try (Stream<Path> s = Files.list(root)) {
            s.filter(ModelPackage::isPackage).map(p -> p.getFileName().toString()).filter(n -> n.matches(NAME)).sorted()
                    .forEach(names::add);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot list the model repository " + root + ": " + e.getMessage(), e);
        }
        return names;
    }

    /** The backend serving {@code name}, or NOT_FOUND naming what is served. */
    public InferenceBackend get(String name) {
        return scheduler(name).backend();
    }

    /** The scheduler running {@code name}'s requests, or NOT_FOUND naming what is served. */
    ModelScheduler scheduler(String name) {
        ModelScheduler b = loaded.get(name);
        if (b == null) {
            Failure f = failed.get(name);
            if (f != null) {
                throw Peft4jException.notFound("model '" + name + "' is not loaded: " + f.reason());
            }
            throw Peft4jException.notFound("unknown model '" + name + "'; the models served are "
                    + new TreeMap<>(loaded).keySet());
        }
        return b;
    }

    public boolean isLoaded(String name) {
        return loaded.containsKey(name);
    }

    /** Loads (or reloads) package {@code name} from the repository. */
    public synchronized InferenceBackend load(String name) {
        if (name == null || !name.matches(NAME)) {
            throw Peft4jException.invalid("model name '" + name + "' must be 1-128 letters, digits, '.', '_' or '-'");
        }
        Path dir = root.resolve(name);
        if (!ModelPackage.isPackage(dir)) {
            throw Peft4jException.notFound("the repository " + root + " has no model package '" + name + "'");
        }
        InferenceBackend fresh;
        SchedulingConfig settings;
        try {
            settings = scheduling.forModel(env, name);
            fresh = selection == null ? OrtBackend.open(dir, options) : selection.open(dir, threads);
        } catch (Peft4jException e) {
            failed.put(name, new Failure(e.getMessage()));
            throw e;
        }
        failed.remove(name);
        ModelScheduler old = loaded.put(name, new ModelScheduler(name, fresh, settings, metrics));
        if (old != null) {
            old.close();   // its queued requests still run; then it frees its native memory
        }
        LOG.info("loaded model '{}' ({} package, {} adapter(s), {}{})", name, fresh.info().mode(), fresh.adapters().size(),
                fresh.name(), settings.batching() ? ", dynamic batching up to " + settings.maxBatchRows() + " rows" : "");
        return fresh;
    }

    /** Stops serving {@code name}; false when it was not loaded. */
    public synchronized boolean unload(String name) {
        ModelScheduler old = loaded.remove(name);
        failed.remove(name);
        if (old == null) {
            return false;
        }
        old.close();
        metrics.forget(name);
        LOG.info("unloaded model '{}'", name);
        return true;
    }

    /** One entry of the repository index. */
    public record Entry(String name, String state, String reason) {
    }

    /** Every package in the repository and every loaded model, by name: READY, UNAVAILABLE (with the reason). */
    public List<Entry> index() {
        TreeMap<String, Entry> all = new TreeMap<>();
        for (String n : scan()) {
            all.put(n, new Entry(n, "UNAVAILABLE", "unloaded"));
        }
        failed.forEach((n, f) -> all.put(n, new Entry(n, "UNAVAILABLE", f.reason())));
        loaded.keySet().forEach(n -> all.put(n, new Entry(n, "READY", null)));
        return new ArrayList<>(all.values());
    }

    /** Whether every package found at start (or loaded since) is being served. */
    public boolean allReady() {
        return failed.isEmpty();
    }

    @PreDestroy
    @Override
    public synchronized void close() {
        loaded.values().forEach(ModelScheduler::close);
        loaded.clear();
    }
}
