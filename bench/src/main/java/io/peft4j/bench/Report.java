package io.peft4j.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.ToDoubleBiFunction;

/**
 * Turns JMH's JSON results ({@code -rf json}) into {@code docs/BENCHMARKS.md}: the machine, the
 * date, the command, each comparison as a ratio (or a difference) against the baseline measured
 * in the same run with its confidence interval, and PASS/MISS against its target.
 *
 * <pre>Report --results FILE --out FILE --command "bench/run ..." [--wall-seconds N] [--load-before "L1 L5 L15"] [--note TEXT]</pre>
 */
public final class Report {

    /** How a comparison is judged. */
    enum Kind {
        /** candidate/baseline latency at most the target. */
        RATIO_AT_MOST,
        /** baseline/candidate latency (the candidate's relative throughput) at least the target. */
        THROUGHPUT_AT_LEAST,
        /** candidate − baseline per run, in ms, below the target plus the copy time of one adapter. */
        EXTRA_MS_BELOW,
        /** candidate/baseline, reported without a target. */
        RATIO_INFO
    }

    /** One comparison the report makes, on each workload that has the benchmark. */
    record Check(String benchmark, String what, String candidate, String baseline, Kind kind, double target) {
    }

    static final List<Check> CHECKS = List.of(
            new Check("LatencyBench.baseVsBase", "Control: base vs base (two sessions on one model; 1 when the pairing works)",
                    "base", "base", Kind.RATIO_INFO, Double.NaN),
            new Check("LatencyBench.mergedVsBase", "Merged vs base latency", "merged", "base", Kind.RATIO_AT_MOST, 1.02),
            new Check("LatencyBench.sideVsMerged", "Side (r = 8, OrtLoraAdapter active) vs merged latency", "side",
                    "merged", Kind.RATIO_AT_MOST, 1.10),
            new Check("LatencyBench.servedSideVsMerged", "Side package as served (r = 8, the adapter on its merged session, "
                    + "OrtBackend) vs merged latency", "side, served", "merged", Kind.RATIO_AT_MOST, 1.10),
            new Check("LatencyBench.multiVsSide", "Multi (batch mixing 4 adapters) vs side (1 adapter) throughput",
                    "multi", "side", Kind.THROUGHPUT_AT_LEAST, 0.8),
            new Check("SwitchBench.switchVsKeep", "Switching the adapter on every run vs keeping one (batch 1): extra time per run",
                    "switching", "keeping", Kind.EXTRA_MS_BELOW, 1.0),
            new Check("SwitchBench.adapterVsNone", "Activating an adapter per run vs no adapter (batch 1): extra time per run",
                    "adapter", "none", Kind.EXTRA_MS_BELOW, 1.0),
            new Check("MergeBench.mergeVsRead", "Merge time (Peft.merge, r = 8, all targets) vs reading the model",
                    "merge", "read", Kind.RATIO_INFO, Double.NaN));

    private static final String COPY = "SwitchBench.copyAdapterTensors";

    /** A benchmark's result on one workload: JMH's own score, and for paired benchmarks both sides. */
    record Result(String benchmark, String workload, Estimate score, String unit, Paired paired, JsonNode json) {
    }

    /**
     * Both sides of a paired benchmark (see {@link Pair}), in ms, from the per-iteration medians;
     * the ratio, inverse ratio and difference are taken per iteration, then averaged.
     */
    record Paired(Estimate candidateMs, Estimate baselineMs, Estimate ratio, Estimate inverse, Estimate differenceMs,
                  long runs) {
    }

    /** What the report states besides the results. */
    record Context(String command, ZonedDateTime date, double wallSeconds, String loadBefore, Map<String, String> machine,
                   List<String> notes, Map<String, JsonNode> graphs) {
    }

    private Report() {
    }

    // ---------------------------------------------------------------- reading JMH's JSON

    static List<Result> read(JsonNode root) {
        List<Result> out = new ArrayList<>();
        for (JsonNode b : root) {
            String full = b.path("benchmark").asText();
            String[] parts = full.split("\\.");
            String name = parts.length >= 2 ? parts[parts.length - 2] + "." + parts[parts.length - 1] : full;
            String workload = b.path("params").path("workload").asText("");
            JsonNode pm = b.path("primaryMetric");
            Estimate score = Estimate.reported(pm.path("score").asDouble(Double.NaN), number(pm.path("scoreError")),
                    count(pm.path("rawData")));
            JsonNode sec = b.path("secondaryMetrics");
            Paired paired = sec.has("candidateMedianNanos") ? paired(sec) : null;
            out.add(new Result(name, workload, score, pm.path("scoreUnit").asText(""), paired, b));
        }
        return out;
    }

    private static double number(JsonNode n) {
        if (n.isNumber()) {
            return n.asDouble();
        }
        try {
            return Double.parseDouble(n.asText("NaN"));
        } catch (NumberFormatException e) {
            return Double.NaN;
        }
    }

    private static int count(JsonNode raw) {
        int n = 0;
        for (JsonNode fork : raw) {
            n += fork.size();
        }
        return n;
    }

    /** Per-iteration values of a secondary metric, all forks in order. */
    private static List<Double> iterations(JsonNode sec, String metric) {
        List<Double> v = new ArrayList<>();
        for (JsonNode fork : sec.path(metric).path("rawData")) {
            for (JsonNode it : fork) {
                v.add(number(it));
            }
        }
        return v;
    }

    static Paired paired(JsonNode sec) {
        List<Double> c = iterations(sec, "candidateMedianNanos");
        List<Double> b = iterations(sec, "baselineMedianNanos");
        List<Double> cRuns = iterations(sec, "candidateRuns");
        List<Double> bRuns = iterations(sec, "baselineRuns");
        List<Double> cMs = new ArrayList<>();
        List<Double> bMs = new ArrayList<>();
        List<Double> ratio = new ArrayList<>();
        List<Double> inverse = new ArrayList<>();
        List<Double> diff = new ArrayList<>();
        long runs = 0;
        for (int i = 0; i < Math.min(c.size(), b.size()); i++) {
            boolean ran = i < cRuns.size() && i < bRuns.size() && cRuns.get(i) > 0 && bRuns.get(i) > 0;
            if (!ran || c.get(i) <= 0 || b.get(i) <= 0) {
                continue;   // an iteration too short to hold a run of each side
            }
            runs += (long) (cRuns.get(i) + bRuns.get(i));
            double cm = c.get(i) / 1e6;
            double bm = b.get(i) / 1e6;
            cMs.add(cm);
            bMs.add(bm);
            ratio.add(cm / bm);
            inverse.add(bm / cm);
            diff.add(cm - bm);
        }
        return new Paired(Estimate.of(cMs), Estimate.of(bMs), Estimate.of(ratio), Estimate.of(inverse), Estimate.of(diff), runs);
    }

    // ---------------------------------------------------------------- judging

    /** A judged comparison. */
    record Row(Check check, String workload, Paired paired, Estimate value, String target, String verdict) {
    }

    static Optional<Result> find(List<Result> results, String benchmark, String workload) {
        return results.stream().filter(r -> r.benchmark().equals(benchmark) && r.workload().equals(workload)).findFirst();
    }

    static List<Row> judge(List<Result> results) {
        List<Row> rows = new ArrayList<>();
        for (Check c : CHECKS) {
            for (Result r : results) {
                if (!r.benchmark().equals(c.benchmark()) || r.paired() == null) {
                    continue;
                }
                Paired p = r.paired();
                switch (c.kind()) {
                    case RATIO_AT_MOST -> rows.add(new Row(c, r.workload(), p, p.ratio(), "≤ " + fmt(c.target(), 2),
                            atMost(p.ratio(), c.target())));
                    case THROUGHPUT_AT_LEAST -> rows.add(new Row(c, r.workload(), p, p.inverse(), "≥ " + fmt(c.target(), 2),
                            atLeast(p.inverse(), c.target())));
                    case EXTRA_MS_BELOW -> {
                        Optional<Result> copy = find(results, COPY, r.workload());
                        double copyMs = copy.map(x -> toMs(x.score().value(), x.unit())).orElse(0.0);
                        double bound = c.target() + copyMs;
                        String target = "< " + fmt(c.target(), 0) + " ms + copy (" + (copy.isPresent()
                                ? fmt(copyMs * 1000, 1) + " µs" : "not measured") + ")";
                        rows.add(new Row(c, r.workload(), p, p.differenceMs(), target, atMost(p.differenceMs(), bound)));
                    }
                    case RATIO_INFO -> rows.add(new Row(c, r.workload(), p, p.ratio(), "—", "—"));
                    default -> throw new IllegalStateException(c.kind().toString());
                }
            }
        }
        return rows;
    }

    /** PASS when the whole interval meets the target, MISS when none of it does, else the side of the mean, hedged. */
    static String atMost(Estimate e, double target) {
        return verdict(e, target, (v, t) -> t - v);
    }

    static String atLeast(Estimate e, double target) {
        return verdict(e, target, (v, t) -> v - t);
    }

    private static String verdict(Estimate e, double target, ToDoubleBiFunction<Double, Double> margin) {
        if (Double.isNaN(e.value())) {
            return "no data";
        }
        boolean meanMeets = margin.applyAsDouble(e.value(), target) >= 0;
        if (!e.hasError()) {
            return (meanMeets ? "PASS" : "MISS") + " (no error estimate)";
        }
        boolean lowMeets = margin.applyAsDouble(e.low(), target) >= 0;
        boolean highMeets = margin.applyAsDouble(e.high(), target) >= 0;
        if (lowMeets && highMeets) {
            return "PASS";
        }
        if (!lowMeets && !highMeets) {
            return "MISS";
        }
        return meanMeets ? "PASS (within error)" : "MISS (within error)";
    }

    static double toMs(double value, String unit) {
        String u = unit.replace("/op", "");
        return switch (u) {
            case "ns" -> value / 1e6;
            case "us" -> value / 1e3;
            case "ms" -> value;
            case "s" -> value * 1e3;
            default -> Double.NaN;
        };
    }

    // ---------------------------------------------------------------- Markdown

    static String render(List<Result> results, Context ctx) {
        StringBuilder md = new StringBuilder();
        md.append("# Benchmarks\n\n");
        md.append("Written by `bench/run` from JMH's JSON results; do not edit by hand, run the command again. ");
        md.append("Every comparison is measured against its baseline in the same run (see *How to read this*).\n\n");
        md.append("- **Command:** `").append(ctx.command()).append("` (from the repository root)\n");
        md.append("- **Date:** ").append(ctx.date().format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm 'UTC'", Locale.ROOT)))
                .append('\n');
        if (ctx.wallSeconds() > 0) {
            md.append("- **Wall time of the benchmark run:** ").append(duration(ctx.wallSeconds())).append('\n');
        }
        md.append("- **Settings:** ").append(Bench.summary()).append('\n');
        for (Workload w : Workload.values()) {
            if (results.stream().anyMatch(r -> r.workload().equals(w.id()))) {
                md.append("- **").append(w.id()).append(":** ").append(w.description()).append('\n');
            }
        }
        for (String n : ctx.notes()) {
            md.append("- ").append(n).append('\n');
        }
        md.append("\n## Machine\n\n| | |\n|---|---|\n");
        ctx.machine().forEach((k, v) -> {
            String value = k.equals("Load average") && ctx.loadBefore() != null && !ctx.loadBefore().isBlank()
                    ? ctx.loadBefore() + " before the run, " + v + " after (1, 5, 15 min)" : v;
            md.append("| ").append(k).append(" | ").append(escape(value)).append(" |\n");
        });
        String jmh = results.isEmpty() ? "?" : results.get(0).json().path("jmhVersion").asText("?");
        md.append("| JMH | ").append(jmh).append(" |\n");

        List<Row> rows = judge(results);
        md.append("\n## Results against targets\n\n");
        if (rows.isEmpty()) {
            md.append("No comparison benchmark ran.\n");
        } else {
            md.append("Candidate and baseline: median latency per iteration, averaged over iterations; ± is the 99.9 % ")
                    .append("confidence interval. The ratio is taken per iteration, on runs interleaved with each other.\n\n");
            md.append("| Comparison | Workload | Candidate | Baseline | Result | Target | Verdict |\n");
            md.append("|---|---|---|---|---|---|---|\n");
            for (Row r : rows) {
                Paired p = r.paired();
                String result = switch (r.check().kind()) {
                    case EXTRA_MS_BELOW -> signed(r.value()) + " ms";
                    case THROUGHPUT_AT_LEAST -> plusMinus(r.value(), 3) + " ×";
                    default -> plusMinus(r.value(), 3) + " ×";
                };
                md.append("| ").append(r.check().what()).append(" | ").append(r.workload())
                        .append(" | ").append(r.check().candidate()).append(' ').append(ms(p.candidateMs()))
                        .append(" | ").append(r.check().baseline()).append(' ').append(ms(p.baselineMs()))
                        .append(" | ").append(result).append(" | ").append(r.target()).append(" | ")
                        .append(r.verdict().equals("—") ? "—" : "**" + r.verdict() + "**").append(" |\n");
            }
        }

        TrainingReport.render(md, results, TrainingReport.dir());

        List<Result> singles = results.stream().filter(r -> r.paired() == null).toList();
        if (!singles.isEmpty()) {
            md.append("\n## Other measurements\n\n");
            md.append("| Measurement | Workload | Time | Compared with |\n|---|---|---|---|\n");
            for (Result r : singles) {
                md.append("| ").append(describe(r.benchmark())).append(" | ").append(r.workload()).append(" | ")
                        .append(plusMinus(r.score(), 3)).append(' ').append(unit(r.unit())).append(" | ")
                        .append(context(results, r)).append(" |\n");
            }
        }

        renderGraphs(md, results, ctx.graphs());

        md.append("\n## All results\n\n");
        md.append("JMH's own score per benchmark (for a paired benchmark: one invocation, both sides together), and ")
                .append("for paired ones the runs timed on both sides. Forks × measurement iterations × iteration time; ")
                .append("warm-up iterations are not counted.\n\n");
        md.append("| Benchmark | Workload | JMH score | Runs timed | Forks × iterations |\n|---|---|---|---|---|\n");
        for (Result r : results) {
            JsonNode j = r.json();
            String plan = j.path("forks").asInt() + " × " + j.path("measurementIterations").asInt() + " × "
                    + j.path("measurementTime").asText() + " (warm-up " + j.path("warmupIterations").asInt() + " × "
                    + j.path("warmupTime").asText() + ")";
            md.append("| ").append(r.benchmark()).append(" | ").append(TrainingReport.workloadOrModel(r)).append(" | ")
                    .append(plusMinus(r.score(), 3)).append(' ').append(unit(r.unit())).append(" | ")
                    .append(r.paired() == null ? "—" : String.valueOf(r.paired().runs())).append(" | ").append(plan)
                    .append(" |\n");
        }

        md.append("\n## How to read this\n\n");
        md.append("""
                - **Paired runs.** Each comparison is one JMH benchmark that runs the candidate and its baseline \
                alternately (A B, B A, …) in the same process and times each run on its own, so that load from \
                elsewhere on the machine falls on both alike. Each iteration gives a median per side; the ratio \
                (or difference) is taken per iteration and then averaged over all iterations of all forks.
                - **Error bars.** ± is the half-width of the 99.9 % confidence interval (Student's t over the \
                iterations, as JMH computes its own errors). A verdict is **PASS** or **MISS** when the whole \
                interval is on one side of the target, and *(within error)* when the interval straddles it: \
                then the mean decides, but the run cannot tell.
                - **Models.** *base*: the model as exported by PyTorch; *merged*: adapter 1 folded into the \
                weights (`Peft.merge`); *side*: the LoRA factors as graph inputs with zero defaults \
                (`Peft.inject`, `INPUTS_WITH_DEFAULTS`) and adapter 1 activated through ONNX Runtime's \
                `OrtLoraAdapter` from its `.onnx_adapter` file; *multi*: adapters 1–4 stacked with rank blocks \
                selected per batch row by `adapter_index` (`Peft.injectStacked`), rows 1, 2, 3, 4, 1, 2, 3, 4. \
                The adapters have PEFT's initial A and random non-zero B (σ = 0.02). The benchmark checks before \
                timing that side and multi give the merged model's output and that the adapter changes it.
                - **Switching.** A server makes run options per request; `switchVsKeep` does the same and compares \
                blocks of runs that change the adapter on every run with blocks that keep one, on one session. \
                It runs a batch of 1 (MiniLM: 16 tokens): what activating an adapter costs does not depend on \
                the batch, and short runs let a cost well under a millisecond show above the noise. `adapterVsNone` \
                compares runs that activate an adapter with runs that use the graph's zero defaults (the same \
                arithmetic). Nothing is reloaded; `reloadSession` shows what a reload would cost instead, and \
                `copyAdapterTensors` what copying one adapter's bytes costs (the allowance in the target).
                - **Why side costs more than merged.** The side graph computes the low-rank branch \
                (`s·B(A(x))`; for a Conv, an r-channel Conv with the base kernel and a 1×1 Conv) and adds it \
                after the layer's BatchNorm (scaled per channel, so Conv and BatchNorm still fuse). The LoRA \
                factors are graph inputs, so ONNX Runtime neither pre-packs them like constant weights nor runs \
                the A convolutions in its blocked NCHWc layout: they run as plain im2col convolutions with \
                layout reorders around them, and the Relu and residual Add no longer fuse into the base Conv \
                (*What ONNX Runtime runs* shows the nodes that remain). The multi model has the same structure \
                with constant factors, computing the branch for all 4 adapters (4 × r channels) and masking it \
                per row. Profiled with ONNX Runtime's profiler on resnet18 (batch 8, 3×64×64): of a 24.9 ms side \
                run, the 20 base Convs took 14.8 ms, the 20 LoRA A Convs 7.1 ms (about 6 % of the base's \
                arithmetic, run some 20 times less efficiently), the B Convs 0.5 ms, and the reorders, Adds, Muls \
                and unfused Relus 2.5 ms: the branch's glue alone is over the 10 % target.
                - **Side package as served.** What a server does about it: `OrtBackend` with merged sessions \
                (`peft4j serve --merged-sessions N`) gives the adapters a side package serves most a session of \
                their own with the adapter merged in, made from the package's side graph (`Peft.strip` takes the \
                branches out again, `Peft.merge` folds the adapter in), built in the background after the \
                adapter's first run and checked against the side graph on a probe batch before use. Runs never \
                wait for it; until it is ready they use the side graph, and every other adapter keeps switching \
                per run as before. `servedSideVsMerged` times the adapter once its merged session is ready, \
                against the merged model through `OrtBackend`; the price is resident memory, about 2 to 3 times \
                the weights per merged session, and a build (read, strip, merge, session, probe) of about 2 s \
                after first use on this machine (both measured by `bench/merged-memory`, in its section below).
                """);
        return md.toString();
    }

    /**
     * Per workload that ran, each model's node count in its file and after ONNX Runtime's graph
     * optimizations, with the most frequent ops after them (from the fixtures' optimized-ops.json).
     */
    private static void renderGraphs(StringBuilder md, List<Result> results, Map<String, JsonNode> graphs) {
        boolean any = false;
        for (Map.Entry<String, JsonNode> g : graphs.entrySet()) {
            if (results.stream().noneMatch(r -> r.workload().equals(g.getKey()))) {
                continue;
            }
            if (!any) {
                md.append("\n## What ONNX Runtime runs\n\n");
                md.append("Nodes per model in the file and after ONNX Runtime's graph optimizations (all levels, as ")
                        .append("benchmarked), with the ops left most often. Fused ops (a Conv with its BatchNorm, ")
                        .append("activation and residual Add; LayerNormalization; BiasGelu) count once.\n");
                any = true;
            }
            md.append("\n| ").append(g.getKey()).append(" | nodes in file | nodes run | most frequent ops run |\n")
                    .append("|---|---|---|---|\n");
            g.getValue().fields().forEachRemaining(model -> {
                JsonNode opt = model.getValue().path("optimized");
                List<Map.Entry<String, Integer>> ops = new ArrayList<>();
                opt.fields().forEachRemaining(e -> ops.add(Map.entry(e.getKey(), e.getValue().asInt())));
                ops.sort((a, b) -> b.getValue() != a.getValue().intValue() ? b.getValue() - a.getValue() : a.getKey().compareTo(b.getKey()));
                StringBuilder top = new StringBuilder();
                for (int i = 0; i < Math.min(8, ops.size()); i++) {
                    top.append(i == 0 ? "" : ", ").append(ops.get(i).getKey()).append(" ").append(ops.get(i).getValue());
                }
                if (ops.size() > 8) {
                    top.append(", …");
                }
                md.append("| ").append(model.getKey()).append(" | ").append(total(model.getValue().path("original")))
                        .append(" | ").append(total(opt)).append(" | ").append(top).append(" |\n");
            });
        }
    }

    private static int total(JsonNode counts) {
        int n = 0;
        for (JsonNode c : counts) {
            n += c.asInt();
        }
        return n;
    }

    /** The fixtures' optimized-ops.json per workload, where present. */
    static Map<String, JsonNode> graphs(Path work) {
        Map<String, JsonNode> m = new LinkedHashMap<>();
        for (Workload w : Workload.values()) {
            Path f = work.resolve(w.id()).resolve("optimized-ops.json");
            if (Files.isRegularFile(f)) {
                try {
                    m.put(w.id(), new ObjectMapper().readTree(f.toFile()));
                } catch (IOException e) {
                    System.err.println("bench report: warning: cannot read " + f + ": " + e.getMessage());
                }
            }
        }
        return m;
    }

    private static String describe(String benchmark) {
        return switch (benchmark) {
            case "SwitchBench.createAdapter" -> "Create an `OrtLoraAdapter` from its `.onnx_adapter` file (and close it)";
            case "SwitchBench.reloadSession" -> "Open a new session on the merged model (a reload, for comparison)";
            case COPY -> "Copy one adapter's bytes into a direct buffer";
            default -> benchmark;
        };
    }

    /** For single measurements, a comparison that helps read them. */
    private static String context(List<Result> results, Result r) {
        if (r.benchmark().equals("SwitchBench.createAdapter")) {
            Optional<Result> reload = find(results, "SwitchBench.reloadSession", r.workload());
            if (reload.isPresent()) {
                double a = toMs(r.score().value(), r.unit());
                double b = toMs(reload.get().score().value(), reload.get().unit());
                return fmt(a / b * 100, 2) + " % of a session reload";
            }
        }
        if (r.benchmark().equals("SwitchBench.reloadSession")) {
            Optional<Result> sw = find(results, "SwitchBench.switchVsKeep", r.workload());
            if (sw.isPresent() && sw.get().paired() != null) {
                return "switching adapters costs " + signed(sw.get().paired().differenceMs()) + " ms per run instead";
            }
        }
        if (r.benchmark().equals(COPY)) {
            return "the allowance in the switching target";
        }
        return "";
    }

    // ---------------------------------------------------------------- formatting

    static String fmt(double v, int decimals) {
        return String.format(Locale.ROOT, "%." + decimals + "f", v);
    }

    /** Three significant digits, at least. */
    static String sig(double v) {
        double a = Math.abs(v);
        int decimals = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.1 ? 3 : 4;
        return fmt(v, decimals);
    }

    static String plusMinus(Estimate e, int decimals) {
        if (Double.isNaN(e.value())) {
            return "n/a";
        }
        boolean sigDigits = decimals < 0;
        String v = sigDigits ? sig(e.value()) : fmt(e.value(), decimals);
        String err = !e.hasError() ? "?" : sigDigits ? sig(e.error()) : fmt(e.error(), decimals);
        return v + " ± " + err;
    }

    static String signed(Estimate e) {
        if (Double.isNaN(e.value())) {
            return "n/a";
        }
        return (e.value() >= 0 ? "+" : "−") + fmt(Math.abs(e.value()), 3) + " ± " + (e.hasError() ? fmt(e.error(), 3) : "?");
    }

    static String ms(Estimate e) {
        if (Double.isNaN(e.value())) {
            return "n/a";
        }
        return sig(e.value()) + " ± " + (e.hasError() ? sig(e.error()) : "?") + " ms";
    }

    private static String unit(String u) {
        return u.replace("us/op", "µs").replace("/op", "");
    }

    static String duration(double seconds) {
        long s = Math.round(seconds);
        return s >= 60 ? (s / 60) + " min " + (s % 60) + " s" : s + " s";
    }

    private static String escape(String s) {
        return s.replace("|", "\\|");
    }

    // ---------------------------------------------------------------- command line

    public static void main(String[] args) {
        Map<String, String> opt = new LinkedHashMap<>();
        List<String> notes = new ArrayList<>();
        Set<String> known = new LinkedHashSet<>(List.of("--results", "--out", "--command", "--wall-seconds", "--load-before",
                "--note"));
        for (int i = 0; i < args.length; i++) {
            if (!known.contains(args[i]) || i + 1 >= args.length) {
                System.err.println("bench report: error: unknown option or missing value: " + args[i]
                        + "\nusage: Report --results FILE --out FILE --command TEXT [--wall-seconds N] [--load-before TEXT] [--note TEXT]...");
                System.exit(2);
            }
            if (args[i].equals("--note")) {
                notes.add(args[++i]);
            } else {
                opt.put(args[i], args[++i]);
            }
        }
        if (!opt.containsKey("--results") || !opt.containsKey("--out")) {
            System.err.println("bench report: error: --results and --out are required");
            System.exit(2);
        }
        Path results = Path.of(opt.get("--results"));
        Path out = Path.of(opt.get("--out"));
        try {
            JsonNode root = new ObjectMapper().readTree(results.toFile());
            List<Result> rs = read(root);
            double wall = opt.containsKey("--wall-seconds") ? Double.parseDouble(opt.get("--wall-seconds")) : 0;
            Context ctx = new Context(opt.getOrDefault("--command", "bench/run"), ZonedDateTime.now(ZoneOffset.UTC), wall,
                    opt.get("--load-before"), Machine.describe(), notes, graphs(Fixtures.workDir()));
            String md = keepMarkedSections(out, render(rs, ctx));
            write(out, md);
            System.out.print(summary(rs));
            System.err.println("bench: wrote " + out);
        } catch (IOException e) {
            System.err.println("bench report: error: cannot read " + results + " or write " + out + ": " + e.getMessage());
            System.exit(1);
        }
    }

    /** The verdict lines, for the terminal. */
    static String summary(List<Result> rs) {
        StringBuilder sb = new StringBuilder();
        for (Row r : judge(rs)) {
            sb.append(String.format(Locale.ROOT, "%-9s %-90s %s%n", r.workload(), r.check().what(),
                    (r.check().kind() == Kind.EXTRA_MS_BELOW ? signed(r.value()) + " ms" : plusMinus(r.value(), 3))
                            + "  " + r.target() + "  " + r.verdict()));
        }
        sb.append(TrainingReport.summary(rs, TrainingReport.dir()));
        return sb.toString();
    }

    /**
     * The sections other commands measure ({@link MarkedSections}: {@link TrainQuality}'s training
     * quality, {@link LoadTest}'s serving load) of the file being replaced, carried over to the end
     * of the new text.
     */
    static String keepMarkedSections(Path out, String md) throws IOException {
        if (!Files.exists(out)) {
            return md;
        }
        return MarkedSections.carryOver(Files.readString(out, StandardCharsets.UTF_8), md);
    }

    static void write(Path out, String text) throws IOException {
        Path dir = out.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, ".benchmarks", ".tmp");
        try {
            Files.writeString(tmp, text, StandardCharsets.UTF_8);
            Files.move(tmp, out, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }
}
