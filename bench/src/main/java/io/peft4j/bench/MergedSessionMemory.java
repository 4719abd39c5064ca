package io.peft4j.bench;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.devices.AdapterSelection;
import io.peft4j.devices.ort.OrtBackend;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * What merged sessions ({@code serve --merged-sessions N}) cost in resident memory: each
 * workload's side package (adapter {@code a1}, from {@link Fixtures}) opened by {@link OrtBackend}
 * with 0, 1 (the adapter) and 2 (the adapter and the base model) merged sessions, each in a JVM of
 * its own: runs until the sessions are built, then a full GC, then the resident set size
 * ({@code VmRSS}) and the peak ({@code VmHWM}). The differences against 0 are what the sessions
 * add; the build's own garbage (the model read, stripped, merged and serialized in Java) shows in
 * the peak and in the Java heap until it is collected.
 *
 * <pre>MergedSessionMemory [--workloads resnet18,minilm] [--docs docs/BENCHMARKS.md] [--out FILE]</pre>
 */
public final class MergedSessionMemory {

    static final String MARKER = "<!-- merged-sessions:";

    private MergedSessionMemory() {
    }

    /** One child's figures, in KiB. */
    record Figure(String workload, int sessions, long rssKib, long peakKib, double buildSeconds) {
    }

    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("--child")) {
            child(Path.of(args[1]), Integer.parseInt(args[2]), args[3]);
            return;
        }
        List<String> workloads = List.of("resnet18", "minilm");
        Path docs = null;
        Path out = null;
        for (int i = 0; i < args.length; i++) {
            if (i + 1 >= args.length) {
                throw Peft4jException.invalid("missing value for " + args[i]);
            }
            switch (args[i]) {
                case "--workloads" -> workloads = List.of(args[++i].split(","));
                case "--docs" -> docs = Path.of(args[++i]);
                case "--out" -> out = Path.of(args[++i]);
                default -> throw Peft4jException.invalid("unknown option " + args[i]
                        + "; usage: MergedSessionMemory [--workloads resnet18,minilm] [--docs FILE] [--out FILE]");
            }
        }
        String loadBefore = Machine.load();
        List<Figure> figures = new ArrayList<>();
        for (String w : workloads) {
            Fixtures.Prepared p = Fixtures.get(Workload.of(w));
            for (int n = 0; n <= 2; n++) {
                figures.add(runChild(w, p.sidePackage(), n));
                System.err.println("merged-sessions: " + figures.get(figures.size() - 1));
            }
        }
        String md = render(figures, loadBefore);
        System.out.println(md);
        if (out != null) {
            Files.writeString(out, md, StandardCharsets.UTF_8);
        }
        if (docs != null) {
            MarkedSections.splice(docs, MARKER, "memory", md);
        }
    }

    private static Figure runChild(String workload, Path pkg, int n) throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(java, "-Xmx2g"));
        for (String prop : List.of("peft4j.shared", "peft4j.bench.work")) {
            if (System.getProperty(prop) != null) {
                cmd.add("-D" + prop + "=" + System.getProperty(prop));
            }
        }
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), MergedSessionMemory.class.getName(), "--child",
                pkg.toString(), Integer.toString(n), Fixtures.SIDE_ADAPTER));
        Process proc = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String text = new String(proc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (proc.waitFor() != 0) {
            throw new IllegalStateException("the measuring JVM failed:\n" + text);
        }
        for (String line : text.split("\n")) {
            if (line.startsWith("MEASURED ")) {
                String[] f = line.substring(9).trim().split(" ");
                return new Figure(workload, n, Long.parseLong(f[0]), Long.parseLong(f[1]), Double.parseDouble(f[2]));
            }
        }
        throw new IllegalStateException("the measuring JVM printed no figures:\n" + text);
    }

    /** In the child JVM: open, run until {@code n} merged sessions are in use, collect, measure. */
    private static void child(Path pkg, int n, String adapter) throws Exception {
        Workload w = Workload.of(pkg.getParent().getFileName().toString());
        Map<String, Tensor> in = w.inputs(42, 1, Bench.SMALL_SEQ);
        long t0 = System.nanoTime();
        try (OrtBackend b = OrtBackend.open(pkg, new OrtBackend.Options(Bench.THREADS, 1, false).withMergedSessions(n))) {
            List<String> wanted = n == 0 ? List.of() : n == 1 ? List.of(adapter) : java.util.Arrays.asList(adapter, null);
            for (int i = 0; i < 10; i++) {
                b.run(in, AdapterSelection.of(adapter), Set.of());
            }
            for (String a : wanted) {
                Served.awaitMergedSession(b, in, a, 300);
            }
            double build = (System.nanoTime() - t0) / 1e9;
            for (int i = 0; i < 10; i++) {
                b.run(in, AdapterSelection.of(adapter), Set.of());
            }
            System.gc();
            Thread.sleep(1000);
            System.out.println("MEASURED " + status("VmRSS") + " " + status("VmHWM") + " " + build);
        }
    }

    private static long status(String key) throws IOException {
        for (String l : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (l.startsWith(key + ":")) {
                return Long.parseLong(l.substring(key.length() + 1).replace("kB", "").trim());
            }
        }
        throw new IllegalStateException("no " + key + " in /proc/self/status");
    }

    static String render(List<Figure> figures, String loadBefore) {
        StringBuilder md = new StringBuilder();
        md.append("### Merged sessions: resident memory\n\n");
        md.append("Written by `bench/merged-memory` on ")
                .append(ZonedDateTime.now(ZoneOffset.UTC).format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm 'UTC'", Locale.ROOT)))
                .append("; load average before: ").append(loadBefore).append(".\n\n");
        md.append("Each row is a JVM of its own (`-Xmx2g`) that opens the workload's side package (adapter `a1`) with "
                + "`OrtBackend` (2 intra-op threads, no spinning) and *N* merged sessions (1: the adapter; 2: the adapter and "
                + "the base model), runs it until they are in use, collects the heap, and reads `/proc/self/status`. "
                + "*Added*: the resident memory above the same package with none. *Ready after*: from opening to the last "
                + "merged session in use.\n\n");
        md.append("| Workload | Merged sessions | Resident (`VmRSS`) | Added | Peak (`VmHWM`) | Ready after |\n");
        md.append("|---|---|---|---|---|---|\n");
        for (Figure f : figures) {
            long base = figures.stream().filter(g -> g.workload().equals(f.workload()) && g.sessions() == 0)
                    .mapToLong(Figure::rssKib).findFirst().orElse(f.rssKib());
            md.append(String.format(Locale.ROOT, "| %s | %d | %.0f MiB | %s | %.0f MiB | %s |%n", f.workload(), f.sessions(),
                    f.rssKib() / 1024.0, f.sessions() == 0 ? "—" : String.format(Locale.ROOT, "%+.0f MiB", (f.rssKib() - base) / 1024.0),
                    f.peakKib() / 1024.0, f.sessions() == 0 ? "—" : String.format(Locale.ROOT, "%.1f s", f.buildSeconds())));
        }
        return md.toString();
    }
}
