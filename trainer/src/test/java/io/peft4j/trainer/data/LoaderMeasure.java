package io.peft4j.trainer.data;

import java.nio.file.Path;
import java.util.Locale;

/**
 * A measurement, not a test (surefire runs *Test classes only): how fast the image pipeline
 * delivers training batches from a class-folder dataset (NEU-DET by default), with and without the
 * decoded-image cache, with augmentation, for a model input of {@code 3 × size × size}:
 *
 * <pre>
 * ./mvnw -o -q -pl trainer -am test-compile dependency:build-classpath -Dmdep.outputFile=/tmp/cp -Dmdep.includeScope=test
 * java -Xmx2g -cp trainer/target/test-classes:trainer/target/classes:core/target/classes:$(cat /tmp/cp) \
 *     io.peft4j.trainer.data.LoaderMeasure [../shared/data/neu-det] [size=64] [threads=2] [batch=32] [epochs=3]
 * </pre>
 */
public final class LoaderMeasure {

    private LoaderMeasure() {
    }

    public static void main(String[] args) {
        Path dir = Path.of(args.length > 0 ? args[0] : "../shared/data/neu-det");
        int size = args.length > 1 ? Integer.parseInt(args[1]) : 64;
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 2;
        int batch = args.length > 3 ? Integer.parseInt(args[3]) : 32;
        int epochs = args.length > 4 ? Integer.parseInt(args[4]) : 3;
        ModelInputs model = Fixtures.imageModel(3, size, size);
        System.out.printf(Locale.ROOT, "%s, model input 3x%dx%d, batch %d, %d loader threads, augmentation on, %d cores%n",
                dir, size, size, batch, threads, Runtime.getRuntime().availableProcessors());

        long t0 = System.nanoTime();
        Dataset lazy = Datasets.open(DataSpec.builder(dir).augment(true).cacheBytes(0).workers(threads).build(), model).train();
        double listS = (System.nanoTime() - t0) / 1e9;
        System.out.printf(Locale.ROOT, "open without cache (list + read %d headers): %.2f s%n", lazy.size(), listS);
        for (int e = 0; e < epochs; e++) {
            epoch("decode per batch", lazy, batch, threads, e);
        }

        t0 = System.nanoTime();
        Dataset cached = Datasets.open(DataSpec.builder(dir).augment(true).workers(threads).build(), model).train();
        double openS = (System.nanoTime() - t0) / 1e9;
        System.out.printf(Locale.ROOT, "open with cache (list, headers, decode all on %d threads): %.2f s = %.0f images/s; %s%n",
                threads, openS, cached.size() / openS, cached.describe());
        for (int e = 0; e < epochs; e++) {
            epoch("cached", cached, batch, threads, e);
        }
        for (int e = 0; e < epochs; e++) {
            epoch("cached, 1 thread", cached, batch, 1, e);
        }
    }

    private static void epoch(String what, Dataset ds, int batch, int threads, int epoch) {
        long t0 = System.nanoTime();
        int n = 0;
        try (BatchLoader l = new BatchLoader(ds, Splits.shuffled(ds.size(), 1, epoch), batch, 1, epoch, true, threads)) {
            while (l.hasNext()) {
                n += l.next().size();
            }
        }
        double s = (System.nanoTime() - t0) / 1e9;
        System.out.printf(Locale.ROOT, "  epoch %d, %s: %d images in %.2f s = %.0f images/s%n", epoch, what, n, s, n / s);
    }
}
