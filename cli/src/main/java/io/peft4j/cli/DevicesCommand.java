package io.peft4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.core.Peft4jException;
import io.peft4j.devices.detect.Detected;
import io.peft4j.devices.detect.DeviceDetector;
import io.peft4j.devices.detect.ProfileChoice;
import io.peft4j.devices.plan.MemoryPlan;
import io.peft4j.devices.plan.MemoryPlanner;
import io.peft4j.devices.profile.DeviceProfile;
import io.peft4j.devices.profile.DeviceProfiles;
import io.peft4j.devices.select.BackendSelector;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code peft4j devices [--root DIR] [--profiles FILE] [--profile ID] [--list] [--json] [--plan PKG [--batch N]
 * [--precision P] [--seq-len L]]}.
 */
@Command(name = "devices",
        header = "Show the detected device, its profile, and which backends can run models here.",
        description = {
            "Detect the device (Jetson model and L4T release from /proc/device-tree/model and /etc/nv_tegra_release,",
            "NVIDIA driver and GPUs from /proc/driver/nvidia, memory and CPU from /proc/meminfo and /proc/cpuinfo),",
            "choose its device profile (memory, GPU, DLA cores, precisions, backend order, max batch, TensorRT workspace),",
            "and check every backend: the first usable one in the profile's order is what 'serve --device' runs on;",
            "for each other one the reason it is not usable is printed.",
            "Built-in profiles: orin-nano-4gb, orin-nano-8gb, orin-nx-8gb, orin-nx-16gb, agx-orin-32gb, agx-orin-64gb,",
            "thor, x86-nvidia-gpu, cpu. Add your own with --profiles (a JSON file or a directory of them; a profile",
            "may \"extends\" another); see docs/DEVICES.md for the keys.",
            "With --plan PKG: estimate the memory the package needs on the profile (weights, activations at --batch,",
            "TensorRT workspace, adapters) at --precision, against what the profile lets a model use; when it does not",
            "fit, say what would (fp16, the largest batch that fits, merged instead of multi) and exit with code 2."},
        mixinStandardHelpOptions = true)
public final class DevicesCommand implements Callable<Integer> {

    @Spec
    private CommandSpec spec;

    @Option(names = "--root", paramLabel = "DIR", description = "Read the /proc and /etc files under DIR instead of / (a copy of another machine's).")
    private Path root;

    @Option(names = "--profiles", paramLabel = "FILE", description = "Add the device profiles in FILE (JSON), or in every *.json of a directory.")
    private Path profilesFile;

    @Option(names = "--profile", paramLabel = "ID", description = "Use this profile instead of the detected one.")
    private String profileId;

    @Option(names = "--list", description = "Also list every profile known (built-in and --profiles).")
    private boolean list;

    @Option(names = "--json", description = "Print one JSON object instead of text (for scripts).")
    private boolean json;

    @Option(names = "--plan", paramLabel = "PKG", description = "Plan the memory of this model package directory (or .onnx file) on the profile.")
    private Path plan;

    @Option(names = "--batch", defaultValue = "1", paramLabel = "N", description = "With --plan: the batch size (default: ${DEFAULT-VALUE}).")
    private int batch;

    @Option(names = "--precision", defaultValue = "fp32", paramLabel = "P", description = "With --plan: fp32, fp16 or int8 (default: ${DEFAULT-VALUE}).")
    private String precision;

    @Option(names = "--seq-len", defaultValue = "128", paramLabel = "L", description = "With --plan: the size of dynamic axes other than the batch, e.g. tokens (default: ${DEFAULT-VALUE}).")
    private long seqLen;

    @Override
    public Integer call() throws Exception {
        DeviceProfiles profiles = profilesFile == null ? DeviceProfiles.builtIn() : DeviceProfiles.withUser(profilesFile);
        Detected d = root == null ? DeviceDetector.detect() : DeviceDetector.detect(root);
        ProfileChoice choice = profileId == null ? ProfileChoice.of(profiles, d)
                : new ProfileChoice(profiles.get(profileId), "chosen with --profile");
        List<BackendSelector.Entry> backends = BackendSelector.standard().report(choice.profile(), d);
        MemoryPlan memory = null;
        if (plan != null) {
            long host = d.memTotalBytes() > 0 ? d.memTotalBytes() : physicalMemory();
            memory = MemoryPlanner.of(plan, seqLen).plan(choice.profile(), host, batch, precision);
        } else if (spec.commandLine().getParseResult().hasMatchedOption("--batch")
                || spec.commandLine().getParseResult().hasMatchedOption("--precision")
                || spec.commandLine().getParseResult().hasMatchedOption("--seq-len")) {
            throw Peft4jException.invalid("--batch, --precision and --seq-len go with --plan PKG");
        }
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            ObjectNode o = JsonNodeFactory.instance.objectNode();
            o.set("detected", detectedJson(d));
            ObjectNode p = o.putObject("profile");
            p.put("id", choice.profile().id());
            p.put("reason", choice.reason());
            p.set("settings", profileJson(choice.profile(), d));
            ArrayNode bs = o.putArray("backends");
            String chosen = null;
            for (BackendSelector.Entry e : backends) {
                ObjectNode b = bs.addObject();
                b.put("id", e.backend());
                b.put("usable", e.usable());
                b.put("in_profile", e.inProfile());
                b.put("reason", e.reason());
                if (chosen == null && e.usable() && e.inProfile()) {
                    chosen = e.backend();
                }
            }
            if (chosen == null) {
                o.putNull("chosen_backend");
            } else {
                o.put("chosen_backend", chosen);
            }
            if (memory != null) {
                o.set("plan", planJson(memory));
            }
            if (list) {
                ArrayNode all = o.putArray("profiles");
                profiles.all().forEach(x -> all.add(profileJson(x, d)));
            }
            out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(o));
        } else {
            printText(out, d, choice, backends, profiles);
            if (memory != null) {
                out.print(memory.describe());
            }
        }
        out.flush();
        if (memory != null && !memory.fits()) {
            throw Peft4jException.invalid(plan + " does not fit profile '" + memory.profile() + "' at batch " + batch + " and "
                    + precision + ": it needs " + mib(memory.total()) + " of " + mib(memory.usable()) + " usable"
                    + (memory.suggestions().isEmpty() ? "" : "; would fit: " + String.join("; ", memory.suggestions())));
        }
        return 0;
    }

    private static ObjectNode planJson(MemoryPlan m) {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("profile", m.profile());
        o.put("mode", m.mode());
        o.put("batch", m.batch());
        o.put("precision", m.precision());
        o.put("weights_bytes", m.weights());
        o.put("activations_bytes", m.activations());
        o.put("workspace_bytes", m.workspace());
        o.put("adapters_bytes", m.adapters());
        o.put("adapters_note", m.adapterNote());
        o.put("total_bytes", m.total());
        o.put("usable_bytes", m.usable());
        o.put("fits", m.fits());
        ArrayNode w = o.putArray("warnings");
        m.warnings().forEach(w::add);
        ArrayNode s = o.putArray("suggestions");
        m.suggestions().forEach(s::add);
        return o;
    }

    private static long physicalMemory() {
        java.lang.management.OperatingSystemMXBean os = java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        return os instanceof com.sun.management.OperatingSystemMXBean x ? x.getTotalMemorySize() : 0;
    }

    private static String mib(long bytes) {
        return MemoryPlan.mib(bytes);
    }

    private void printText(PrintWriter o, Detected d, ProfileChoice choice, List<BackendSelector.Entry> backends,
                           DeviceProfiles profiles) {
        o.println("Detected: " + d.summary());
        o.printf(Locale.ROOT, "  memory %s, %d CPU core(s)%s%s%n", gib(d.memTotalBytes()), d.cpuCores(),
                d.cpuModel().map(m -> " (" + m + ")").orElse(""),
                d.notableFeatures().isEmpty() ? "" : ", features " + String.join(" ", d.notableFeatures()));
        DeviceProfile p = choice.profile();
        o.println("Profile: " + p.id() + " - " + p.name());
        o.println("  why: " + choice.reason());
        o.println("  " + describe(p, d));
        o.println("Backends (in the profile's order):");
        boolean chosen = false;
        for (BackendSelector.Entry e : backends) {
            String mark;
            if (!e.inProfile()) {
                mark = e.usable() ? "usable, not in the profile's order" : "not usable";
            } else if (e.usable() && !chosen) {
                mark = "CHOSEN";
                chosen = true;
            } else {
                mark = e.usable() ? "usable" : "not usable";
            }
            o.printf(Locale.ROOT, "  %-13s %s: %s%n", e.backend(), mark, e.reason());
        }
        if (!chosen) {
            o.println("  no backend of the profile is usable here; add \"ort-cpu\" to its backends to run on the CPU");
        }
        if (list) {
            o.println("Profiles:");
            for (DeviceProfile x : profiles.all()) {
                o.printf(Locale.ROOT, "  %-16s %s (%s)%n", x.id(), x.name(), x.source());
            }
        }
    }

    private static String describe(DeviceProfile p, Detected d) {
        return String.format(Locale.ROOT, "memory %s (a model may use %s), GPU compute capability %s, %d DLA core(s), "
                        + "precisions %s, max batch %d, TensorRT workspace %d MiB, %d thread(s), engine cache %s",
                p.memoryMiB().isPresent() ? p.memoryMiB().getAsLong() + " MiB" : "of the host (" + gib(d.memTotalBytes()) + ")",
                gib(p.usableBytes(d.memTotalBytes())), p.computeCapability().orElse("-"), p.dlaCores(),
                String.join("/", p.precisions()), p.maxBatch(), p.workspaceMiB(), p.threads(), p.engineCacheDir());
    }

    private static ObjectNode detectedJson(Detected d) {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("summary", d.summary());
        o.put("arch", d.arch());
        o.put("jetson", d.isJetson());
        o.put("nvidia_gpu", d.hasNvidiaGpu());
        d.boardModel().ifPresent(m -> o.put("board_model", m));
        d.l4t().ifPresent(r -> {
            o.put("l4t", r.version());
            o.put("jetpack", r.jetpack());
        });
        o.put("mem_total_bytes", d.memTotalBytes());
        d.nvidiaDriver().ifPresent(v -> o.put("nvidia_driver", v));
        ArrayNode g = o.putArray("gpus");
        d.gpus().forEach(g::add);
        o.put("cpu_cores", d.cpuCores());
        d.cpuModel().ifPresent(m -> o.put("cpu_model", m));
        ArrayNode f = o.putArray("cpu_features");
        d.notableFeatures().forEach(f::add);
        return o;
    }

    private static ObjectNode profileJson(DeviceProfile p, Detected d) {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("id", p.id());
        o.put("name", p.name());
        o.put("kind", p.kind().key());
        o.put("source", p.source());
        o.put("memory_bytes", p.memoryBytes(d.memTotalBytes()));
        o.put("usable_memory_bytes", p.usableBytes(d.memTotalBytes()));
        p.computeCapability().ifPresentOrElse(c -> o.put("compute_capability", c), () -> o.putNull("compute_capability"));
        o.put("dla_cores", p.dlaCores());
        ArrayNode pr = o.putArray("precisions");
        p.precisions().forEach(pr::add);
        ArrayNode b = o.putArray("backends");
        p.backends().forEach(b::add);
        o.put("max_batch", p.maxBatch());
        o.put("workspace_mib", p.workspaceMiB());
        o.put("engine_cache_dir", p.engineCacheDir());
        o.put("threads", p.threads());
        return o;
    }

    static String gib(long bytes) {
        return String.format(Locale.ROOT, "%.1f GiB", bytes / (double) (1L << 30));
    }
}
