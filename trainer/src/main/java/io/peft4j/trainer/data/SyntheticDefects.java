package io.peft4j.trainer.data;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.pkg.Manifest;

import java.io.IOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ThreadLocalRandom;
import java.util.stream.Stream;

/**
 * Deterministic synthetic surface-defect images: grayscale pictures of a textured surface (brushed
 * metal, woven fabric) that are either {@code good} or show one defect, a {@code scratch} (a thin
 * long line at any angle), a {@code spot} (a round blob, dark or bright), a {@code crack} (a jagged
 * dark path that branches) or an {@code inclusion} (a cluster of small irregular flakes in the
 * texture). Position, size, orientation and contrast of the defect, the texture, the lighting
 * (exposure, gradient, vignetting) and the sensor noise vary from image to image, and some defects
 * are faint.
 *
 * <p>A {@link Line production line} is a named set of these parameters: {@code metal},
 * {@code metal-dim} (the same surface in low light, with more noise) and {@code fabric}. A model
 * trained on one line does worse on another, which a small adapter can make up for.
 *
 * <p>Each image is a pure function of (line, split, class, index, seed) and the image size: the
 * same call returns the same pixels on every machine and JVM (the generator uses its own seeded
 * random numbers and float arithmetic that Java defines exactly). Train and test splits draw from
 * separate streams, so held-out images are never training images. The images can be used directly
 * as a {@link Dataset} ({@link #dataset}, {@link #open}) or written as PNG class folders
 * {@code DIR/<class>/*.png} ({@link #write}) that {@code peft4j train --data DIR} reads; both give a
 * model the same tensors. Instances are immutable and thread-safe.
 */
public final class SyntheticDefects {

    /** Bumped whenever the pixels for a given call change; written with every folder. */
    public static final int GENERATOR_VERSION = 1;

    public static final int DEFAULT_SIZE = 32;
    public static final int MIN_SIZE = 8;
    public static final int MAX_SIZE = 2048;
    public static final int MAX_PER_CLASS = 1_000_000;

    /** The classes of images. Their order here is fixed and part of every image's seed. */
    public enum Defect {
        GOOD("good", "no defect"),
        SCRATCH("scratch", "a thin long line at a random angle, bright or dark"),
        SPOT("spot", "a round blob, dark or bright"),
        CRACK("crack", "a jagged dark path that branches"),
        INCLUSION("inclusion", "small irregular flakes embedded in the texture");

        private final String label;
        private final String description;

        Defect(String label, String description) {
            this.label = label;
            this.description = description;
        }

        /** The class name, also the folder name. */
        public String label() {
            return label;
        }

        public String description() {
            return description;
        }

        /** The defect called {@code label}; unknown names are a {@link Peft4jException} listing the classes. */
        public static Defect of(String label) {
            for (Defect d : values()) {
                if (d.label.equals(label)) {
                    return d;
                }
            }
            throw Peft4jException.notFound("unknown defect class '" + label + "'; the classes are " + CLASSES);
        }
    }

    /**
     * The class names as labels, sorted by name: the order {@code peft4j train} gives class folders,
     * so that label {@code i} means the same class whether the images come from {@link #dataset} or
     * from folders written by {@link #write}.
     */
    public static final List<String> CLASSES = Arrays.stream(Defect.values()).map(Defect::label).sorted().toList();

    /** Which stream of images: training or held-out test images. */
    public enum Split {
        TRAIN, TEST;

        public String label() {
            return name().toLowerCase(Locale.ROOT);
        }

        public static Split parse(String s) {
            for (Split v : values()) {
                if (v.label().equals(s)) {
                    return v;
                }
            }
            throw Peft4jException.invalid("unknown split '" + s + "'; use train or test");
        }
    }

    /** The kind of surface. */
    public enum Texture {
        /** Long directional streaks, large blotches, fine grain. */
        BRUSHED_METAL,
        /** A plain weave of warp and weft threads, with fuzz. */
        WOVEN_FABRIC
    }

    /**
     * The surface before lighting, in reflectance units (0 black, 1 white).
     *
     * @param reflectance       mean brightness
     * @param reflectanceJitter the mean varies by up to this much from image to image
     * @param textureContrast   amplitude of the texture
     * @param orientation       direction of streaks or warp threads, radians from horizontal
     * @param orientationJitter the direction varies by up to this much, radians
     * @param scale             metal: streak width; fabric: thread spacing (reference pixels, 1/32 of the image side)
     */
    public record Surface(Texture texture, float reflectance, float reflectanceJitter, float textureContrast,
                          float orientation, float orientationJitter, float scale) {
        public Surface {
            if (texture == null) {
                throw Peft4jException.invalid("a surface needs a texture");
            }
            check("reflectance", reflectance, 0, 1);
            check("reflectance jitter", reflectanceJitter, 0, 0.5f);
            check("texture contrast", textureContrast, 0, 1);
            check("orientation", orientation, -7, 7);
            check("orientation jitter", orientationJitter, 0, 7);
            check("scale", scale, 0.25f, 16);
        }
    }

    /**
     * How the surface is lit and seen.
     *
     * @param exposure overall light level (1 nominal); varies by ±10 % from image to image
     * @param gradient the largest brightness change across the image from uneven light (fraction)
     * @param vignette the largest darkening towards the corners (fraction)
     * @param noise    largest standard deviation of the sensor noise, in [0, 1] intensity
     */
    public record Lighting(float exposure, float gradient, float vignette, float noise) {
        public Lighting {
            check("exposure", exposure, 0.05f, 2);
            check("gradient", gradient, 0, 1);
            check("vignette", vignette, 0, 1);
            check("noise", noise, 0, 0.5f);
        }
    }

    /**
     * What the defects look like.
     *
     * @param contrastMin    least defect contrast, in reflectance
     * @param contrastMax    largest defect contrast
     * @param faintFraction  the fraction of defects shown at half their contrast
     * @param darkScratches  the probability that a scratch is darker than the surface (else brighter)
     * @param darkSpots      the probability that a spot is darker
     * @param darkInclusions the probability that an inclusion is darker
     */
    public record Appearance(float contrastMin, float contrastMax, float faintFraction, float darkScratches,
                             float darkSpots, float darkInclusions) {
        public Appearance {
            check("least contrast", contrastMin, 0, 1);
            check("largest contrast", contrastMax, contrastMin, 1);
            check("faint fraction", faintFraction, 0, 1);
            check("dark scratches", darkScratches, 0, 1);
            check("dark spots", darkSpots, 0, 1);
            check("dark inclusions", darkInclusions, 0, 1);
        }
    }

    /**
     * A production line: a named surface, lighting and defect appearance. The name is part of every
     * image's seed, so two lines with the same parameters still give different images.
     */
    public record Line(String name, String description, Surface surface, Lighting lighting, Appearance appearance) {
        public Line {
            if (name == null || !name.matches("[a-z0-9][a-z0-9._-]*")) {
                throw Peft4jException.invalid("a line name is lower-case letters, digits, '.', '_', '-'; got '" + name + "'");
            }
            if (description == null || surface == null || lighting == null || appearance == null) {
                throw Peft4jException.invalid("line '" + name + "' needs a description, surface, lighting and appearance");
            }
        }
    }

    /** Brushed steel under even, bright light: the line the quickstart's base model is trained on. */
    public static final Line METAL = new Line("metal", "brushed metal, horizontal streaks, even bright light",
            new Surface(Texture.BRUSHED_METAL, 0.55f, 0.07f, 0.07f, 0f, 0.12f, 1.0f),
            new Lighting(1.0f, 0.25f, 0.1f, 0.02f),
            new Appearance(0.12f, 0.35f, 0.2f, 0.35f, 0.6f, 0.7f));

    /** The same metal in low light: darker, less contrast, more noise, uneven light. */
    public static final Line METAL_DIM = new Line("metal-dim", "the same metal in low light: dark, noisy, uneven light",
            new Surface(Texture.BRUSHED_METAL, 0.55f, 0.07f, 0.07f, 0f, 0.12f, 1.0f),
            new Lighting(0.5f, 0.4f, 0.3f, 0.025f),
            new Appearance(0.12f, 0.35f, 0.2f, 0.35f, 0.6f, 0.7f));

    /** Woven fabric: a periodic plain weave; stains (spots) are mostly dark. */
    public static final Line FABRIC = new Line("fabric", "woven fabric, plain weave, even light; mostly dark stains",
            new Surface(Texture.WOVEN_FABRIC, 0.6f, 0.08f, 0.12f, 0f, 0.08f, 4.0f),
            new Lighting(1.0f, 0.2f, 0.1f, 0.025f),
            new Appearance(0.15f, 0.4f, 0.2f, 0.5f, 0.85f, 0.6f));

    private static final List<Line> LINES = List.of(METAL, METAL_DIM, FABRIC);

    /** The built-in production lines. */
    public static List<Line> lines() {
        return LINES;
    }

    /** The built-in line called {@code name}; an unknown name is a {@link Peft4jException} that lists them. */
    public static Line line(String name) {
        for (Line l : LINES) {
            if (l.name().equals(name)) {
                return l;
            }
        }
        throw Peft4jException.notFound("unknown production line '" + name + "'; the lines are "
                + String.join(", ", LINES.stream().map(Line::name).toList()));
    }

    private final Line line;
    private final int size;
    private final long seed;
    private final long lineKey;

    /**
     * Images of {@code line}, {@code size × size} pixels.
     *
     * @param seed selects a different, equally valid set of images
     */
    public SyntheticDefects(Line line, int size, long seed) {
        if (line == null) {
            throw Peft4jException.invalid("no production line given");
        }
        checkSize(size);
        this.line = line;
        this.size = size;
        this.seed = seed;
        long h = 0xcbf29ce484222325L;
        for (int i = 0; i < line.name().length(); i++) {
            h = (h ^ line.name().charAt(i)) * 0x100000001b3L;
        }
        this.lineKey = h;
    }

    /** Refuses image sizes outside {@value #MIN_SIZE}..{@value #MAX_SIZE}. */
    public static void checkSize(int size) {
        if (size < MIN_SIZE || size > MAX_SIZE) {
            throw Peft4jException.invalid("the image size must be " + MIN_SIZE + ".." + MAX_SIZE + " pixels, got " + size);
        }
    }

    /** Refuses image counts per class outside 1..{@value #MAX_PER_CLASS}. */
    public static void checkPerClass(int perClass) {
        if (perClass < 1 || perClass > MAX_PER_CLASS) {
            throw Peft4jException.invalid("images per class must be 1.." + MAX_PER_CLASS + ", got " + perClass);
        }
    }

    public Line line() {
        return line;
    }

    public int size() {
        return size;
    }

    public long seed() {
        return seed;
    }

    /** The seed of one image. */
    private long key(Split split, Defect defect, int index) {
        return Splits.mix(Splits.mix(seed, lineKey, split.ordinal()), defect.ordinal(), index);
    }

    /** Image {@code index} of {@code defect} in {@code split}: {@code size × size} gray samples, row by row. */
    public byte[] image(Split split, Defect defect, int index) {
        byte[] out = new byte[size * size];
        render(split, defect, index, out, 0);
        return out;
    }

    private void render(Split split, Defect defect, int index, byte[] out, int off) {
        if (index < 0) {
            throw Peft4jException.invalid("image indices are non-negative, got " + index);
        }
        DefectRenderer.render(line, defect, key(split, defect, index), size, out, off);
    }

    /** The defect of example {@code k} of a dataset with {@code perClass} images per class. */
    private static Defect defectOf(int k, int perClass) {
        return Defect.of(CLASSES.get(k / perClass));
    }

    /**
     * {@code perClass} images of each class as a dataset for a model with {@code inputs}, prepared as
     * {@code peft4j train} prepares image folders by default (the model's size, mean and standard
     * deviation 0.5 for gray), not augmented.
     */
    public Dataset dataset(Split split, int perClass, ModelInputs inputs) {
        return dataset(split, perClass, inputs, new float[0], new float[0], false);
    }

    /**
     * {@code perClass} images of each class as a dataset: example {@code k} is image
     * {@code k % perClass} of class {@code CLASSES.get(k / perClass)}, the order of the folders that
     * {@link #write} makes. Images are rendered when the dataset is made (or per batch when they would
     * take more than a quarter of the heap) and resized to the model's input size when it is fixed
     * and differs.
     *
     * @param mean    per-channel mean of [0, 1] pixels (empty: 0.5 for gray, ImageNet's for RGB models)
     * @param std     per-channel standard deviation (empty: as {@code mean})
     * @param augment random crops and flips in training batches
     */
    public Dataset dataset(Split split, int perClass, ModelInputs inputs, float[] mean, float[] std, boolean augment) {
        checkPerClass(perClass);
        Datasets.ImageGeometry g = geometry(inputs, mean, std);
        ImageTransform t = new ImageTransform(g.channels(), g.height(), g.width(), g.mean(), g.std());
        int n = Math.multiplyExact(perClass, CLASSES.size());
        int[] labels = new int[n];
        for (int k = 0; k < n; k++) {
            labels[k] = k / perClass;
        }
        String origin = String.format(Locale.ROOT, "synthetic %s %s (seed %d, %dx%d)", line.name(), split.label(), seed, size,
                size);
        return new ImageDataset(origin, CLASSES, labels, new Source(split, perClass), t, g.input().name(), augment,
                Runtime.getRuntime().maxMemory() / 4, Math.max(1, Runtime.getRuntime().availableProcessors()));
    }

    /**
     * Training images ({@link Split#TRAIN}, augmented if asked) with held-out test images
     * ({@link Split#TEST}) as validation data, and the preprocessing for a model package.
     */
    public DataSplit open(int trainPerClass, int testPerClass, ModelInputs inputs, boolean augment) {
        Dataset train = dataset(Split.TRAIN, trainPerClass, inputs, new float[0], new float[0], augment);
        Dataset test = dataset(Split.TEST, testPerClass, inputs);
        Datasets.ImageGeometry g = geometry(inputs, new float[0], new float[0]);
        Manifest.Preprocessing pre = new Manifest.Preprocessing(g.input().name(), g.height(), g.width(), g.channels(),
                doubles(g.mean()), doubles(g.std()));
        return new DataSplit(train, Optional.of(test), Optional.of(pre));
    }

    private Datasets.ImageGeometry geometry(ModelInputs inputs, float[] mean, float[] std) {
        boolean dynamic = inputs.inputs().stream().filter(i -> i.rank() == 4).anyMatch(i -> i.dim(2) < 0 || i.dim(3) < 0);
        return Datasets.imageGeometry(inputs, dynamic ? size : 0, dynamic ? size : 0, mean, std);
    }

    private static List<Double> doubles(float[] v) {
        Double[] d = new Double[v.length];
        for (int i = 0; i < v.length; i++) {
            d[i] = (double) v[i];
        }
        return List.of(d);
    }

    /** Renders the images of a dataset on demand. */
    private final class Source implements ImageDataset.Source {
        private final Split split;
        private final int perClass;

        Source(Split split, int perClass) {
            this.split = split;
            this.perClass = perClass;
        }

        @Override
        public int size() {
            return perClass * CLASSES.size();
        }

        @Override
        public Pixels load(int k) {
            return new Pixels(1, size, size, image(split, defectOf(k, perClass), k % perClass));
        }

        @Override
        public String name(int k) {
            return "synthetic " + line.name() + " " + split.label() + " " + fileName(defectOf(k, perClass), k % perClass, perClass);
        }

        @Override
        public boolean inMemory() {
            return false;
        }

        @Override
        public long decodedBytes() {
            return (long) size() * size * size;
        }
    }

    // ---------------------------------------------------------------- folders

    /** What {@link #write} wrote. */
    public record Written(Path dir, int images, long bytes, double seconds) {
    }

    /** The file name of image {@code index} of {@code defect}: {@code scratch_00042.png}, zero-padded so names sort by index. */
    public static String fileName(Defect defect, int index, int perClass) {
        int digits = Math.max(5, Integer.toString(Math.max(0, perClass - 1)).length());
        return defect.label() + "_" + String.format(Locale.ROOT, "%0" + digits + "d", index) + ".png";
    }

    /**
     * Writes {@code perClass} images of each class of {@code split} as PNG files
     * {@code dir/<class>/<class>_<index>.png}, and {@code dir/synth.json} with the line, seed, split,
     * size and generator version. The folder is built under a temporary name beside {@code dir} and
     * moved into place when complete: {@code dir} either does not appear or holds every image. An
     * existing {@code dir} must be an empty folder; anything else is refused and left as it is.
     *
     * @param workers threads that render and encode
     */
    public Written write(Path dir, Split split, int perClass, int workers) {
        checkPerClass(perClass);
        long t0 = System.nanoTime();
        Path target = dir.toAbsolutePath().normalize();
        if (Files.exists(target)) {
            if (!Files.isDirectory(target)) {
                throw new Peft4jException(ErrorCode.IO, target + " exists and is not a folder");
            }
            if (!isEmpty(target)) {
                throw Peft4jException.invalid(target + " exists and is not empty; refusing to write images into it "
                        + "(choose another folder or remove it)");
            }
        }
        Path parent = target.getParent();
        Path staging;
        try {
            Files.createDirectories(parent);
            staging = parent.resolve("." + target.getFileName() + ".tmp-"
                    + Long.toUnsignedString(ThreadLocalRandom.current().nextLong(), 36));
            Files.createDirectory(staging);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot create " + target + ": " + e.getMessage(), e);
        }
        boolean done = false;
        try {
            for (String c : CLASSES) {
                Files.createDirectory(staging.resolve(c));
            }
            int n = Math.multiplyExact(perClass, CLASSES.size());
            long[] bytes = new long[n];
            Parallel.forEach(n, workers, k -> {
                Defect d = defectOf(k, perClass);
                int index = k % perClass;
                byte[] png = GrayPng.encode(image(split, d, index), 0, size, size);
                Path f = staging.resolve(d.label()).resolve(fileName(d, index, perClass));
                try {
                    Files.write(f, png);
                } catch (IOException e) {
                    throw new Peft4jException(ErrorCode.IO, "cannot write " + f + ": " + e.getMessage(), e);
                }
                bytes[k] = png.length;
            });
            Files.writeString(staging.resolve("synth.json"), describe(split, perClass));
            if (Files.exists(target)) {
                Files.delete(target);
            }
            try {
                Files.move(staging, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(staging, target);
            }
            done = true;
            long total = 0;
            for (long b : bytes) {
                total += b;
            }
            return new Written(target, n, total, (System.nanoTime() - t0) / 1e9);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot write " + target + ": " + e.getMessage(), e);
        } finally {
            if (!done) {
                io.peft4j.core.util.AtomicFiles.deleteTreeQuietly(staging);
            }
        }
    }

    /** The provenance written beside the images: everything that determines them. */
    private String describe(Split split, int perClass) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("generator", "peft4j SyntheticDefects");
        m.put("generator_version", GENERATOR_VERSION);
        m.put("line", line.name());
        m.put("description", line.description());
        m.put("split", split.label());
        m.put("seed", seed);
        m.put("size", size);
        m.put("per_class", perClass);
        m.put("classes", CLASSES);
        m.put("surface", line.surface());
        m.put("lighting", line.lighting());
        m.put("appearance", line.appearance());
        try {
            return new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(m) + "\n";
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static boolean isEmpty(Path dir) {
        try (Stream<Path> s = Files.list(dir)) {
            return s.findAny().isEmpty();
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot list " + dir + ": " + e.getMessage(), e);
        }
    }


    private static void check(String what, float v, float min, float max) {
        if (!(v >= min && v <= max)) {
            throw Peft4jException.invalid(what + " must be in [" + min + ", " + max + "], got " + v);
        }
    }
}
