package io.peft4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.exporter.ExportOptions;
import io.peft4j.exporter.ExportReport;
import io.peft4j.exporter.Exporter;
import io.peft4j.exporter.NamedAdapter;
import io.peft4j.runtime.Peft4jServer;
import io.peft4j.trainer.data.DataSpec;
import io.peft4j.trainer.data.DataSplit;
import io.peft4j.trainer.data.Datasets;
import io.peft4j.trainer.data.ModelInputs;
import io.peft4j.trainer.data.SyntheticDefects;
import io.peft4j.trainer.data.SyntheticDefects.Split;
import io.peft4j.trainer.optim.LrSchedule;
import io.peft4j.trainer.train.TrainResult;
import io.peft4j.trainer.train.TrainSettings;
import io.peft4j.trainer.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

/**
 * {@code peft4j quickstart}: the project's main job, end to end, on an embedded default. It
 * generates deterministic synthetic images of two production lines ({@code metal-dim} and
 * {@code fabric}, train and held-out test splits), trains a LoRA adapter per line on the embedded
 * base model (a small defect classifier trained on the {@code metal} line) with the project's
 * trainer, exports a {@code merged} package (the first line's adapter folded in) and a {@code side}
 * package (both adapters), starts the runtime on loopback, classifies every held-out image over
 * HTTP with the base model, the line's adapter and the other line's adapter (and the merged
 * package), stops the runtime, and prints and writes ({@link QuickstartReport}) accuracy,
 * disagreements between the adapters, sizes on disk and latency. Everything lands in one work
 * directory; the printed numbers are the report's.
 */
@Command(name = "quickstart",
        header = "Run the main job end to end: data, LoRA training, export, serving, a report.",
        description = {
            "Run the main job end to end on an embedded default, in a work folder (--out):",
            "  1. data     synthetic surface-defect images of two production lines, metal-dim (brushed metal in low",
            "              light) and fabric (woven fabric), train and held-out test splits (see peft4j synth)",
            "  2. train    a LoRA adapter per line on the embedded base model, a small defect classifier trained on",
            "              the metal line that does poorly on the other two (progress bar on a terminal)",
            "  3. export   a merged package (the metal-dim adapter folded into the weights) and a side package (both",
            "              adapters, switchable per request), each validated in ONNX Runtime",
            "  4. serve    the runtime on 127.0.0.1; every held-out image of each line is sent to",
            "              POST /v2/models/{m}/classify with the base model, the line's adapter, the other line's",
            "              adapter, and (metal-dim) the merged package",
            "  5. report   accuracy per line and adapter, how often the two adapters disagree, adapter size on disk vs",
            "              the model, HTTP latency (p50 / p95); printed, and in report.md with accuracy.png and",
            "              loss.png (each training run also leaves its curves.png and metrics.json)",
            "Default sizes: 400 training and 100 held-out images per class and line, 300 steps of batch 32 per adapter:",
            "a few minutes on 2 cores. --quick: 100 and 20 images, 150 steps of batch 16 (the CI test; about a minute).",
            "Data and training are seeded: the images are the same on every machine, and so is the run up to",
            "floating-point differences between CPUs. Serve the packages again with: peft4j serve --repo OUT/repo"},
        mixinStandardHelpOptions = true, sortOptions = false)
public final class QuickstartCommand implements Callable<Integer> {

    /** The production lines, in order: the first one's adapter is also exported merged. */
    static final List<SyntheticDefects.Line> LINES = List.of(SyntheticDefects.METAL_DIM, SyntheticDefects.FABRIC);

    /** The sizes of a run. */
    record Sizes(int trainPerClass, int testPerClass, int steps, int batch, int warmup, int warmupRequests) {
    }

    /** The default: a few minutes on 2 cores. */
    static final Sizes FULL = new Sizes(400, 100, 300, 32, 20, 20);
    /** --quick: the CI test's size, chosen so that the adapters still clearly beat the base model. */
    static final Sizes QUICK = new Sizes(100, 20, 150, 16, 10, 3);

    /** The system property that sets the runtime's access-log level (slf4j-simple). */
    private static final String ACCESS_LOG_LEVEL = "org.slf4j.simpleLogger.log.peft4j.access";

    static final int RANK = 8;
    static final double ALPHA = 16;
    static final double LR = 1e-2;

    @Spec
    private CommandSpec spec;

    @Option(names = "--out", paramLabel = "DIR",
            description = "The work folder: new, or empty (default: a new folder runs/quickstart-<UTC time> here).")
    private Path out;

    @Option(names = "--quick", description = "Tiny sizes: shows the whole flow in about a minute, not the best numbers.")
    private boolean quick;

    @Option(names = "--threads", paramLabel = "N",
            description = "Threads for image generation, training (ONNX Runtime) and the runtime (default: the CPU's cores).")
    private Integer threads;

    @Option(names = "--port", defaultValue = "0", paramLabel = "P",
            description = "The runtime's port on 127.0.0.1 (default: 0, a free one).")
    private int port;

    @Option(names = "--seed", defaultValue = "42", paramLabel = "S",
            description = "Seeds the images and the training (the base model stays the embedded one) (default: ${DEFAULT-VALUE}).")
    private long seed;

    @Override
    public Integer call() throws Exception {
        long t0 = System.nanoTime();
        int workers = threads != null ? threads : Math.max(1, Runtime.getRuntime().availableProcessors());
        if (workers < 1 || workers > 1024) {
            throw Peft4jException.invalid("--threads must be 1..1024, got " + workers);
        }
        if (port < 0 || port > 65535) {
            throw Peft4jException.invalid("--port must be 0..65535, got " + port);
        }
        if (port != 0) {
            // before minutes of training, not after
            try (java.net.ServerSocket probe = new java.net.ServerSocket(port, 1, java.net.InetAddress.getLoopbackAddress())) {
                probe.setReuseAddress(true);
            } catch (IOException e) {
                throw Peft4jException.invalid("--port " + port + " is not free on 127.0.0.1 (" + e.getMessage()
                        + "); choose another, or 0 for any free port");
            }
        }
        Sizes z = quick ? QUICK : FULL;
        if (System.getProperty(ACCESS_LOG_LEVEL) == null) {
            // the runtime's access log would print a line per request; -D...=info brings it back
            System.setProperty(ACCESS_LOG_LEVEL, "warn");
        }
        PrintWriter o = spec.commandLine().getOut();
        Path dir = workDir();
        o.printf("peft4j quickstart%s: work folder %s%n", quick ? " (--quick)" : "", dir);

        step(o, 1, "base model and synthetic data", t0);
        Path baseFile = dir.resolve("base").resolve("model.onnx");
        Files.createDirectories(baseFile.getParent());
        Model baseModel = DefaultModel.trained();
        OnnxIO.write(baseModel, baseFile, OnnxIO.WriteOptions.inline());
        long baseBytes = Files.size(baseFile);
        o.printf("  base model %s (%s): a small CNN for 32x32 gray images trained on the metal line; classes %s%n", baseFile,
                Format.bytes(baseBytes), String.join(", ", DefaultModel.LABELS));
        Map<String, Path> trainDirs = new LinkedHashMap<>();
        Map<String, Path> testDirs = new LinkedHashMap<>();
        for (SyntheticDefects.Line line : LINES) {
            SyntheticDefects gen = new SyntheticDefects(line, DefaultModel.SIZE, seed);
            Path train = dir.resolve("data").resolve(line.name() + "-train");
            Path test = dir.resolve("data").resolve(line.name() + "-test");
            SyntheticDefects.Written a = gen.write(train, Split.TRAIN, z.trainPerClass(), workers);
            SyntheticDefects.Written b = gen.write(test, Split.TEST, z.testPerClass(), workers);
            o.printf(Locale.ROOT, "  %-9s %,5d training images in %s, %,d held-out test images in %s (%s)%n", line.name(),
                    a.images(), train, b.images(), test, line.description());
            o.flush();
            trainDirs.put(line.name(), train);
            testDirs.put(line.name(), test);
        }

        step(o, 2, "train a LoRA adapter per line", t0);
        ModelInputs inputs = ModelInputs.of(baseModel);
        Map<String, Trained> trained = new LinkedHashMap<>();
        Manifest.Preprocessing pre = null;
        List<String> classes = null;
        for (SyntheticDefects.Line line : LINES) {
            String name = line.name();
            DataSplit data = Datasets.open(DataSpec.builder(trainDirs.get(name)).kind(DataSpec.Kind.IMAGE_FOLDER)
                    .validation(testDirs.get(name)).seed(seed).workers(workers).build(), inputs);
            pre = data.preprocessing().orElseThrow();
            classes = data.classes();
            trained.put(name, train(o, name, data, baseFile, dir.resolve("train").resolve(name), z, workers));
        }
        if (!classes.equals(DefaultModel.LABELS)) {
            throw new IllegalStateException("the synthetic classes " + classes + " differ from the model's " + DefaultModel.LABELS);
        }

        step(o, 3, "export a merged and a side package", t0);
        String first = LINES.get(0).name();
        Path repo = dir.resolve("repo");
        Map<String, Object> prov = new LinkedHashMap<>();
        prov.put("version", VersionProvider.peft4jVersion());
        prov.put("command", "peft4j " + String.join(" ", spec.commandLine().getParseResult().originalArgs()));
        ExportOptions opts = ExportOptions.of(Manifest.Mode.merged).withLabels(classes).withPreprocessing(pre)
                .withProvenance(prov);
        List<NamedAdapter> all = new ArrayList<>();
        for (Map.Entry<String, Trained> e : trained.entrySet()) {
            all.add(new NamedAdapter(e.getKey(), AdapterBundle.read(e.getValue().adapter())));
        }
        ExportReport merged = Exporter.export(baseFile, List.of(all.get(0)), opts, repo.resolve("merged"));
        printExport(o, merged, "the " + first + " adapter folded into the weights");
        ExportReport side = Exporter.export(baseFile, all,
                ExportOptions.of(Manifest.Mode.side).withLabels(classes).withPreprocessing(pre).withProvenance(prov),
                repo.resolve("side"));
        printExport(o, side, "adapters " + String.join(" and ", trained.keySet()) + ", chosen per request");

        step(o, 4, "serve and classify the held-out images over HTTP", t0);
        Served served = serveAndClassify(o, repo, testDirs, trained, merged.modelBytes(), z, workers);

        step(o, 5, "report", t0);
        List<String> settings = new ArrayList<>();
        settings.add("command: `peft4j " + String.join(" ", spec.commandLine().getParseResult().originalArgs()) + "`");
        settings.add(String.format(Locale.ROOT, "data: %d training and %d test images per class and line, %dx%d gray, seed %d",
                z.trainPerClass(), z.testPerClass(), DefaultModel.SIZE, DefaultModel.SIZE, seed));
        settings.add(String.format(Locale.ROOT, "training: LoRA r=%d, alpha %s, every convolution and Linear layer; %d steps of "
                + "batch %d, AdamW lr %s, %d warm-up steps, cosine", RANK, (long) ALPHA, z.steps(), z.batch(), LR, z.warmup()));
        settings.add(String.format(Locale.ROOT, "machine: %d CPUs, --threads %d, Java %s, %s %s; peft4j %s",
                Runtime.getRuntime().availableProcessors(), workers, System.getProperty("java.version"),
                System.getProperty("os.name"), System.getProperty("os.arch"), VersionProvider.peft4jVersion()));
        settings.add("date: " + DateTimeFormatter.ISO_LOCAL_DATE.format(LocalDateTime.now(ZoneOffset.UTC)) + " (UTC)");
        QuickstartReport report = new QuickstartReport(served.lines(), served.merged(), baseBytes, served.latency(), settings,
                (System.nanoTime() - t0) / 1e9);
        report.write(dir);
        o.println();
        for (String line : report.summary()) {
            o.println(line);
        }
        o.printf(Locale.ROOT, "%nwrote %s (with %s, %s) in %.1f s%n", dir.resolve(QuickstartReport.REPORT),
                QuickstartReport.ACCURACY_PNG, QuickstartReport.LOSS_PNG, report.seconds());
        o.printf("serve the packages again: peft4j serve --repo %s%n", repo);
        o.flush();
        return 0;
    }

    /** Trains the LoRA adapter of one line, with a progress bar on a terminal. */
    private Trained train(PrintWriter o, String name, DataSplit data, Path baseFile, Path runDir, Sizes z, int workers)
            throws IOException {
        o.printf(Locale.ROOT, "  %s: LoRA r=%d on every layer, %d steps of batch %d, AdamW lr %.0e, cosine%n", name, RANK,
                z.steps(), z.batch(), LR);
        o.flush();
        Recorder rec = new Recorder(new TrainProgress(o, System.console() != null, name));
        TrainResult r;
        try {
            r = new Trainer(settings(baseFile, runDir, z, workers), rec).run(data.train(), data.validation().orElseThrow());
        } finally {
            rec.progress.close();
        }
        double secs = ((Number) r.metrics().get("time_s")).doubleValue();
        long bytes = bundleBytes(r.output());
        o.printf(Locale.ROOT, "  %s: adapter %s (%s) in %.1f s; the trainer measures %s on the held-out images%n", name,
                r.output(), Format.bytes(bytes), secs, QuickstartReport.acc(r.evaluation().accuracy()));
        return new Trained(r.output(), r.evaluation().accuracy(), bytes, secs, ((Number) r.metrics().get("steps")).longValue(),
                rec.steps(), rec.losses());
    }

    /** What the runtime answered: accuracy per line, the merged package's result, latency. */
    private record Served(List<QuickstartReport.Line> lines, QuickstartReport.Merged merged,
                          List<QuickstartReport.Latency> latency) {
    }

    /**
     * Starts the runtime on the repository, sends every held-out image of each line with the base
     * model, the line's adapter, the other line's adapter and (first line) the merged package, and
     * stops the runtime.
     */
    private Served serveAndClassify(PrintWriter o, Path repo, Map<String, Path> testDirs, Map<String, Trained> trained,
                                    long mergedModelBytes, Sizes z, int workers) throws IOException, InterruptedException {
        Map<String, Object> props = Map.of("peft4j.threads", workers);
        List<QuickstartReport.Line> lineResults = new ArrayList<>();
        QuickstartReport.Merged mergedResult = null;
        List<QuickstartReport.Latency> latency = new ArrayList<>();
        String first = LINES.get(0).name();
        try (Peft4jServer server = Peft4jServer.start(new Peft4jServer.Options(repo, "127.0.0.1", port, null, 5_000, props))) {
            o.printf("  runtime listening at %s (models: merged, side)%n", server.uri());
            o.flush();
            HttpClassifier http = new HttpClassifier(server.uri());
            Timings baseMs = new Timings();
            Timings adapterMs = new Timings();
            Timings mergedMs = new Timings();
            List<Labelled> firstImages = images(testDirs.get(first));
            http.warmUp("side", null, firstImages.get(0).png(), z.warmupRequests());
            for (String a : trained.keySet()) {
                http.warmUp("side", a, firstImages.get(0).png(), z.warmupRequests());
            }
            http.warmUp("merged", null, firstImages.get(0).png(), z.warmupRequests());
            for (SyntheticDefects.Line line : LINES) {
                String name = line.name();
                String other = LINES.stream().map(SyntheticDefects.Line::name).filter(n -> !n.equals(name)).findFirst()
                        .orElseThrow();
                List<Labelled> imgs = name.equals(first) ? firstImages : images(testDirs.get(name));
                int n = imgs.size();
                int rightBase = 0;
                int rightOwn = 0;
                int rightOther = 0;
                int rightMerged = 0;
                int disagree = 0;
                int same = 0;
                // each way of serving classifies the line's images in one run, as a camera on that line would
                String[] base = http.classify("side", null, imgs, baseMs);
                String[] own = http.classify("side", name, imgs, adapterMs);
                String[] cross = http.classify("side", other, imgs, adapterMs);
                String[] mergedAnswers = name.equals(first) ? http.classify("merged", null, imgs, mergedMs) : null;
                for (int i = 0; i < n; i++) {
                    String truth = imgs.get(i).label();
                    rightBase += base[i].equals(truth) ? 1 : 0;
                    rightOwn += own[i].equals(truth) ? 1 : 0;
                    rightOther += cross[i].equals(truth) ? 1 : 0;
                    disagree += own[i].equals(cross[i]) ? 0 : 1;
                    if (mergedAnswers != null) {
                        rightMerged += mergedAnswers[i].equals(truth) ? 1 : 0;
                        same += mergedAnswers[i].equals(own[i]) ? 1 : 0;
                    }
                }
                Trained t = trained.get(name);
                QuickstartReport.Line lr = new QuickstartReport.Line(name, other, n, (double) rightBase / n, (double) rightOwn / n,
                        (double) rightOther / n, disagree, t.trainerAccuracy(), t.bytes(), t.seconds(), t.steps(), t.lossSteps(),
                        t.loss());
                lineResults.add(lr);
                o.printf("  %-9s %d images: base %s, %s adapter %s, %s adapter %s; the adapters disagree on %d%n", name, n,
                        QuickstartReport.acc(lr.base()), name, QuickstartReport.acc(lr.own()), other,
                        QuickstartReport.acc(lr.otherAdapter()), disagree);
                o.flush();
                if (name.equals(first)) {
                    mergedResult = new QuickstartReport.Merged(name, n, (double) rightMerged / n, same, mergedModelBytes);
                }
            }
            latency.add(latency("base model (side package, no adapter)", baseMs));
            latency.add(latency("side package + adapter", adapterMs));
            latency.add(latency("merged package", mergedMs));
            o.printf("  %d requests; stopping the runtime%n", baseMs.roundTrip.size() + adapterMs.roundTrip.size()
                    + mergedMs.roundTrip.size());
            o.flush();
        }
        return new Served(lineResults, mergedResult, latency);
    }

    /** --out, or a new folder under runs/; an existing folder must be empty. */
    private Path workDir() throws IOException {
        Path d = out;
        if (d == null) {
            String stamp = DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss").format(LocalDateTime.now(ZoneOffset.UTC));
            d = Path.of("runs", "quickstart-" + stamp);
            for (int i = 2; Files.exists(d); i++) {
                d = Path.of("runs", "quickstart-" + stamp + "-" + i);
            }
        }
        d = d.toAbsolutePath().normalize();
        if (Files.exists(d)) {
            if (!Files.isDirectory(d)) {
                throw new Peft4jException(ErrorCode.IO, "--out " + d + " exists and is not a folder");
            }
            try (Stream<Path> s = Files.list(d)) {
                if (s.findAny().isPresent()) {
                    throw Peft4jException.invalid("--out " + d + " is not empty; give a new or empty folder (the quickstart "
                            + "never writes over earlier results)");
                }
            }
        }
        try {
            Files.createDirectories(d);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot create " + d + ": " + e.getMessage(), e);
        }
        return d;
    }

    private TrainSettings settings(Path base, Path runDir, Sizes z, int workers) {
        TrainSettings s = new TrainSettings();
        s.base = base;
        s.out = runDir;
        s.method = TrainSettings.Method.LORA;
        s.targets = "all";
        s.rank = RANK;
        s.alpha = ALPHA;
        s.lr = LR;
        s.schedule = LrSchedule.Kind.COSINE;
        s.warmupSteps = z.warmup();
        s.steps = z.steps();
        s.batch = z.batch();
        s.threads = workers;
        s.seed = seed;
        return s.validate();
    }

    private static long bundleBytes(Path bundle) throws IOException {
        return Files.size(bundle.resolve(AdapterBundle.WEIGHTS_FILE)) + Files.size(bundle.resolve(AdapterBundle.CONFIG_FILE));
    }

    private static void printExport(PrintWriter o, ExportReport r, String what) {
        o.printf(Locale.ROOT, "  %s package %s: model.onnx %s, %s; validated in ONNX Runtime (max relative difference %.1e)%n",
                r.manifest().mode(), r.out(), Format.bytes(r.modelBytes()), what, r.maxRel());
        o.flush();
    }

    private static QuickstartReport.Latency latency(String what, Timings t) {
        double[] v = t.roundTrip.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        double[] server = t.server.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return new QuickstartReport.Latency(what, v.length, quantile(v, 0.50), quantile(v, 0.95), quantile(server, 0.50));
    }

    /** Milliseconds per request: the client's round trip, and the time the server reports for itself. */
    private static final class Timings {
        final List<Double> roundTrip = new ArrayList<>();
        final List<Double> server = new ArrayList<>();
    }

    /** The q-quantile of sorted values, interpolated linearly between ranks; NaN when there are none. */
    static double quantile(double[] sorted, double q) {
        if (sorted.length == 0) {
            return Double.NaN;
        }
        double pos = q * (sorted.length - 1);
        int lo = (int) Math.floor(pos);
        int hi = Math.min(lo + 1, sorted.length - 1);
        return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
    }

    /** The images of a test folder ({@code DIR/<class>/*.png}) with their class, in name order. */
    private static List<Labelled> images(Path dir) throws IOException {
        List<Labelled> l = new ArrayList<>();
        for (String c : DefaultModel.LABELS) {
            try (Stream<Path> s = Files.list(dir.resolve(c))) {
                for (Path p : s.filter(p -> p.getFileName().toString().endsWith(".png")).sorted().toList()) {
                    l.add(new Labelled(c, Files.readAllBytes(p)));
                }
            }
        }
        if (l.isEmpty()) {
            throw new Peft4jException(ErrorCode.IO, "no test images in " + dir);
        }
        return l;
    }

    private static void step(PrintWriter o, int n, String title, long t0) {
        o.printf(Locale.ROOT, "%n[%d/5] %s (at %.1f s)%n", n, title, (System.nanoTime() - t0) / 1e9);
        o.flush();
    }

    private record Labelled(String label, byte[] png) {
    }

    private record Trained(Path adapter, double trainerAccuracy, long bytes, double seconds, long steps, double[] lossSteps,
                           double[] loss) {
    }

    /** Passes the trainer's events on to the progress display and keeps the loss of every step. */
    private static final class Recorder implements io.peft4j.trainer.train.TrainListener {
        final TrainProgress progress;
        private final List<double[]> points = new ArrayList<>();

        Recorder(TrainProgress progress) {
            this.progress = progress;
        }

        @Override
        public void started(long fromStep, long totalSteps, int stepsPerEpoch) {
            progress.started(fromStep, totalSteps, stepsPerEpoch);
        }

        @Override
        public void step(long step, long totalSteps, double loss, double lr) {
            points.add(new double[] {step, loss});
            progress.step(step, totalSteps, loss, lr);
        }

        @Override
        public void evaluated(int epoch, long step, io.peft4j.trainer.train.Evaluation e) {
            // the held-out accuracy is reported once, at the end
        }

        @Override
        public void message(String line) {
            progress.message("  " + line);
        }

        @Override
        public void finished() {
            progress.finished();
        }

        double[] steps() {
            return points.stream().mapToDouble(p -> p[0]).toArray();
        }

        double[] losses() {
            return points.stream().mapToDouble(p -> p[1]).toArray();
        }
    }

    /** Sends images to {@code POST /v2/models/{m}/classify} and reads the top label; one request at a time. */
    private static final class HttpClassifier {
        private static final ObjectMapper JSON = new ObjectMapper();
        private final URI base;
        private final HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(10)).build();

        HttpClassifier(URI base) {
            this.base = base;
        }

        void warmUp(String model, String adapter, byte[] png, int n) throws IOException, InterruptedException {
            for (int i = 0; i < n; i++) {
                top(model, adapter, png, new Timings());
            }
        }

        /** The top label of every image, in order. */
        String[] classify(String model, String adapter, List<Labelled> images, Timings ms)
                throws IOException, InterruptedException {
            String[] top = new String[images.size()];
            for (int i = 0; i < top.length; i++) {
                top[i] = top(model, adapter, images.get(i).png(), ms);
            }
            return top;
        }

        /** The top label for {@code png}; the round trip's and the server's milliseconds are added to {@code ms}. */
        String top(String model, String adapter, byte[] png, Timings ms) throws IOException, InterruptedException {
            String q = "?top=1" + (adapter == null ? "" : "&adapter=" + adapter);
            HttpRequest req = HttpRequest.newBuilder(base.resolve("/v2/models/" + model + "/classify" + q))
                    .timeout(Duration.ofSeconds(60)).header("Content-Type", "image/png")
                    .POST(HttpRequest.BodyPublishers.ofByteArray(png)).build();
            long t0 = System.nanoTime();
            HttpResponse<String> r = client.send(req, HttpResponse.BodyHandlers.ofString());
            double roundTrip = (System.nanoTime() - t0) / 1e6;
            if (r.statusCode() != 200) {
                throw new IllegalStateException("the runtime answered " + r.statusCode() + " to " + req.uri() + ": " + r.body());
            }
            JsonNode answer = JSON.readTree(r.body());
            JsonNode labels = answer.path("labels");
            if (!labels.isArray() || labels.isEmpty() || !labels.get(0).path("label").isTextual()) {
                throw new IllegalStateException("no labels in the runtime's answer to " + req.uri() + ": " + r.body());
            }
            ms.roundTrip.add(roundTrip);
            ms.server.add(answer.path("latency_ms").asDouble(Double.NaN));
            return labels.get(0).path("label").asText();
        }
    }
}
