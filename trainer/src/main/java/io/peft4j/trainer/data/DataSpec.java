package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * What to train on and how to prepare it: the options of {@code peft4j train} that concern data,
 * validated when built. {@link Datasets#open} turns it into datasets for a model.
 *
 * @param source      the data: a directory of class folders ({@code DIR/<class>/*.png}), an IDX image file
 *                    ({@code *-idx3-ubyte[.gz]}, its labels file beside it), a NumPy pair (two paths,
 *                    {@code X.npy} then {@code Y.npy}), or a text table ({@code *.tsv}, {@code *.csv},
 *                    {@code *.jsonl})
 * @param kind        what {@code source} is; {@link Kind#AUTO} tells from the path
 * @param validation  separate validation data of the same kind (empty: none)
 * @param valSplit    the fraction of {@code source} held out for validation, stratified by class (0: none);
 *                    not together with {@code validation}
 * @param seed        seeds the validation split (augmentation is seeded by the {@link BatchLoader})
 * @param mean        per-channel mean for images, 1 value or one per channel; empty: ImageNet's for 3
 *                    channels, 0.5 for 1 channel
 * @param std         per-channel standard deviation, as {@code mean}
 * @param imageHeight the image height the model gets; 0: the model's fixed height (224 when it is dynamic)
 * @param imageWidth  the image width, as {@code imageHeight}
 * @param augment     light augmentation of training images (horizontal flip, small random crop)
 * @param tokenizer   a Hugging Face {@code tokenizer.json} for text; empty: all-MiniLM-L6-v2's when it is on
 *                    the class path ({@link TextTokenizer#bundledMiniLm()})
 * @param maxLength   the most tokens per text, special tokens included; longer texts are truncated
 * @param padding     pad each batch to its longest text or always to {@code maxLength}
 * @param textColumn  the text column of a table: a name or a 0-based index; empty: detected
 * @param labelColumn the label column, as {@code textColumn}
 * @param cacheBytes  memory for decoded images kept between epochs; -1: a quarter of the maximum heap
 * @param workers     threads that decode images when the data is opened
 */
public record DataSpec(List<Path> source, Kind kind, List<Path> validation, double valSplit, long seed,
                       float[] mean, float[] std, int imageHeight, int imageWidth, boolean augment,
                       Optional<Path> tokenizer, int maxLength, Padding padding, Optional<String> textColumn,
                       Optional<String> labelColumn, long cacheBytes, int workers) {

    /** ImageNet's per-channel mean (RGB), the default for 3-channel models. */
    public static final float[] IMAGENET_MEAN = {0.485f, 0.456f, 0.406f};
    /** ImageNet's per-channel standard deviation (RGB). */
    public static final float[] IMAGENET_STD = {0.229f, 0.224f, 0.225f};
    /** The default mean and standard deviation for 1-channel models: [0,1] becomes [-1,1]. */
    public static final float GRAY_MEAN = 0.5f;
    public static final float GRAY_STD = 0.5f;
    /** The image size used when the model's height and width are dynamic and none is given. */
    public static final int DEFAULT_IMAGE_SIZE = 224;
    public static final int DEFAULT_MAX_LENGTH = 128;

    /** What kind of data a source is. */
    public enum Kind {
        /** Tell from the path. */
        AUTO,
        /** {@code DIR/<class>/*.{png,jpg,jpeg,bmp}}. */
        IMAGE_FOLDER,
        /** MNIST-style IDX files. */
        IDX,
        /** {@code X.npy} (features) and {@code Y.npy} (labels). */
        NPY,
        /** TSV, CSV or JSONL with a text and a label column. */
        TEXT
    }

    /** How text batches are padded. */
    public enum Padding {
        /** To the longest text of the batch. */
        LONGEST,
        /** Always to {@code maxLength}. */
        MAX_LENGTH
    }

    public DataSpec {
        source = List.copyOf(source);
        validation = List.copyOf(validation);
        mean = mean.clone();
        std = std.clone();
        if (source.isEmpty() || source.size() > 2) {
            throw Peft4jException.invalid("data is one path, or two for a NumPy pair X.npy,Y.npy; got " + source);
        }
        if (validation.size() > 2) {
            throw Peft4jException.invalid("validation data is one path, or two for a NumPy pair; got " + validation);
        }
        if (!(valSplit >= 0 && valSplit < 1)) {
            throw Peft4jException.invalid("the validation split is a fraction in [0, 1), got " + valSplit);
        }
        if (valSplit > 0 && !validation.isEmpty()) {
            throw Peft4jException.invalid("give either a validation split or validation data, not both");
        }
        checkStats("mean", mean, false);
        checkStats("std", std, true);
        if (imageHeight < 0 || imageWidth < 0 || imageHeight > 16384 || imageWidth > 16384
                || (imageHeight == 0) != (imageWidth == 0)) {
            throw Peft4jException.invalid("image size must be 1..16384 in both dimensions (or 0 for the model's), got "
                    + imageHeight + "x" + imageWidth);
        }
        if (maxLength < 2 || maxLength > 1 << 20) {
            throw Peft4jException.invalid("max length must be 2..1048576 tokens, got " + maxLength);
        }
        if (cacheBytes < -1) {
            throw Peft4jException.invalid("image cache size must be -1 (auto) or a number of bytes, got " + cacheBytes);
        }
        if (workers < 1 || workers > 1024) {
            throw Peft4jException.invalid("workers must be 1..1024, got " + workers);
        }
        if (kind == null || padding == null || tokenizer == null || textColumn == null || labelColumn == null) {
            throw Peft4jException.invalid("data spec fields must not be null");
        }
    }

    private static void checkStats(String what, float[] v, boolean positive) {
        if (v.length != 0 && v.length != 1 && v.length != 3) {
            throw Peft4jException.invalid(what + " takes 1 or 3 values, got " + v.length);
        }
        for (float x : v) {
            if (!Float.isFinite(x) || (positive && x <= 0)) {
                throw Peft4jException.invalid(what + " values must be finite" + (positive ? " and positive" : "")
                        + ", got " + x);
            }
        }
    }

    @Override
    public float[] mean() {
        return mean.clone();
    }

    @Override
    public float[] std() {
        return std.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof DataSpec d && source.equals(d.source) && kind == d.kind && validation.equals(d.validation)
                && Double.compare(valSplit, d.valSplit) == 0 && seed == d.seed && Arrays.equals(mean, d.mean)
                && Arrays.equals(std, d.std) && imageHeight == d.imageHeight && imageWidth == d.imageWidth
                && augment == d.augment && tokenizer.equals(d.tokenizer) && maxLength == d.maxLength && padding == d.padding
                && textColumn.equals(d.textColumn) && labelColumn.equals(d.labelColumn) && cacheBytes == d.cacheBytes
                && workers == d.workers;
    }

    @Override
    public int hashCode() {
        return Objects.hash(source, kind, validation, valSplit, seed, Arrays.hashCode(mean), Arrays.hashCode(std), imageHeight,
                imageWidth, augment, tokenizer, maxLength, padding, textColumn, labelColumn, cacheBytes, workers);
    }

    /** Every option, arrays included, for logs and provenance. */
    @Override
    public String toString() {
        return "DataSpec[source=" + source + ", kind=" + kind + ", validation=" + validation + ", valSplit=" + valSplit
                + ", seed=" + seed + ", mean=" + Arrays.toString(mean) + ", std=" + Arrays.toString(std) + ", imageSize="
                + imageHeight + "x" + imageWidth + ", augment=" + augment + ", tokenizer=" + tokenizer.map(Path::toString)
                .orElse("default") + ", maxLength=" + maxLength + ", padding=" + padding + ", textColumn="
                + textColumn.orElse("auto") + ", labelColumn=" + labelColumn.orElse("auto") + ", cacheBytes=" + cacheBytes
                + ", workers=" + workers + "]";
    }

    /** Options for {@code data} with every other option at its default. */
    public static Builder builder(String data) {
        return new Builder(paths(data));
    }

    public static Builder builder(Path data) {
        return new Builder(List.of(data));
    }

    /** A data argument as paths: {@code X.npy,Y.npy} is two, anything else one. */
    public static List<Path> paths(String data) {
        if (data == null || data.isBlank()) {
            throw Peft4jException.invalid("no data given");
        }
        String[] parts = data.split(",", -1);
        if (parts.length == 2 && !parts[0].isBlank() && !parts[1].isBlank()) {
            return List.of(Path.of(parts[0].trim()), Path.of(parts[1].trim()));
        }
        return List.of(Path.of(data));
    }

    public Builder toBuilder() {
        Builder b = new Builder(source);
        b.kind = kind;
        b.validation = new ArrayList<>(validation);
        b.valSplit = valSplit;
        b.seed = seed;
        b.mean = mean.clone();
        b.std = std.clone();
        b.imageHeight = imageHeight;
        b.imageWidth = imageWidth;
        b.augment = augment;
        b.tokenizer = tokenizer;
        b.maxLength = maxLength;
        b.padding = padding;
        b.textColumn = textColumn;
        b.labelColumn = labelColumn;
        b.cacheBytes = cacheBytes;
        b.workers = workers;
        return b;
    }

    /** Builds a {@link DataSpec}; {@link #build()} validates. */
    public static final class Builder {
        private final List<Path> source;
        private Kind kind = Kind.AUTO;
        private List<Path> validation = new ArrayList<>();
        private double valSplit;
        private long seed;
        private float[] mean = new float[0];
        private float[] std = new float[0];
        private int imageHeight;
        private int imageWidth;
        private boolean augment;
        private Optional<Path> tokenizer = Optional.empty();
        private int maxLength = DEFAULT_MAX_LENGTH;
        private Padding padding = Padding.LONGEST;
        private Optional<String> textColumn = Optional.empty();
        private Optional<String> labelColumn = Optional.empty();
        private long cacheBytes = -1;
        private int workers = 2;

        private Builder(List<Path> source) {
            this.source = List.copyOf(source);
        }

        public Builder kind(Kind k) {
            kind = k;
            return this;
        }

        /** Validation data, in the same form as the training data ({@code X.npy,Y.npy} for a pair). */
        public Builder validation(String data) {
            validation = new ArrayList<>(paths(data));
            return this;
        }

        public Builder validation(Path data) {
            validation = new ArrayList<>(List.of(data));
            return this;
        }

        public Builder valSplit(double fraction) {
            valSplit = fraction;
            return this;
        }

        public Builder seed(long s) {
            seed = s;
            return this;
        }

        public Builder mean(float... m) {
            mean = m.clone();
            return this;
        }

        public Builder std(float... s) {
            std = s.clone();
            return this;
        }

        public Builder imageSize(int height, int width) {
            imageHeight = height;
            imageWidth = width;
            return this;
        }

        public Builder augment(boolean a) {
            augment = a;
            return this;
        }

        public Builder tokenizer(Path tokenizerJson) {
            tokenizer = Optional.of(tokenizerJson);
            return this;
        }

        public Builder maxLength(int n) {
            maxLength = n;
            return this;
        }

        public Builder padding(Padding p) {
            padding = p;
            return this;
        }

        /** The text column: a name, or a 0-based index. */
        public Builder textColumn(String column) {
            textColumn = Optional.of(column);
            return this;
        }

        /** The label column: a name, or a 0-based index. */
        public Builder labelColumn(String column) {
            labelColumn = Optional.of(column);
            return this;
        }

        public Builder cacheBytes(long bytes) {
            cacheBytes = bytes;
            return this;
        }

        public Builder workers(int n) {
            workers = n;
            return this;
        }

        public DataSpec build() {
            return new DataSpec(source, kind, validation, valSplit, seed, mean, std, imageHeight, imageWidth, augment,
                    tokenizer, maxLength, padding, textColumn, labelColumn, cacheBytes, workers);
        }
    }
}
