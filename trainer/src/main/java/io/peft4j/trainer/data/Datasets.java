package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.tensor.DataType;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * Opening training data for a model ({@link #open}), and views of datasets ({@link #subset}).
 *
 * <p>{@code open} tells the kind of data from its path, checks it against the model's inputs, and
 * reads or lists it; every problem with the data (a missing file, an empty folder, an image that
 * does not decode, a damaged IDX file, shapes or types that do not fit the model, labels out of
 * range, a validation set with other classes, a missing text column) is a {@link Peft4jException}
 * that names the file, raised before training starts wherever the data can be checked up front.
 *
 * <p>Image inputs: the model's one FLOAT input of rank 4, {@code [batch, channels, height, width]};
 * a fixed height and width are used as they are (an explicit image size must agree), dynamic ones
 * take the spec's image size or {@value DataSpec#DEFAULT_IMAGE_SIZE}; a dynamic channel count means
 * 3. Text inputs: {@code input_ids} and, if the model takes them, {@code attention_mask} and
 * {@code token_type_ids}. NumPy data feeds the model's only input.
 */
public final class Datasets {

    private Datasets() {
    }

    /** Opens {@code spec}'s training data (and validation data or split) for a model with {@code inputs}. */
    public static DataSplit open(DataSpec spec, ModelInputs inputs) {
        DataSpec.Kind kind = kind(spec.source(), spec.kind());
        if (!spec.validation().isEmpty()) {
            DataSpec.Kind vk = kind(spec.validation(), spec.kind());
            if (vk != kind) {
                throw Peft4jException.invalid("the validation data " + spec.validation() + " is " + name(vk)
                        + " but the training data is " + name(kind));
            }
        }
        DataSplit opened = switch (kind) {
            case IMAGE_FOLDER, IDX -> images(spec, inputs, kind);
            case NPY -> npy(spec, inputs);
            case TEXT -> text(spec, inputs);
            case AUTO -> throw new IllegalStateException("kind was not resolved");
        };
        if (spec.valSplit() == 0) {
            return opened;
        }
        Dataset all = opened.train();
        Splits.Split split = Splits.stratified(Splits.labels(all), spec.valSplit(), spec.seed());
        if (split.validation().length == 0) {
            throw Peft4jException.invalid("a validation split of " + spec.valSplit() + " leaves no validation examples in "
                    + spec.source().get(0) + ": no class has two examples");
        }
        return new DataSplit(new Subset(all, split.train(), true, "training split"),
                Optional.of(new Subset(all, split.validation(), false, "validation split")), opened.preprocessing());
    }

    /**
     * A view of {@code ds} holding the examples {@code indices} (in that order; repeats allowed):
     * same classes, batches made by {@code ds}.
     */
    public static Dataset subset(Dataset ds, int[] indices) {
        return new Subset(ds, indices, true, "subset");
    }

    /** What kind of data {@code source} is: {@code declared}, or told from the path for {@link DataSpec.Kind#AUTO}. */
    public static DataSpec.Kind kind(List<Path> source, DataSpec.Kind declared) {
        for (Path p : source) {
            if (!Files.exists(p)) {
                throw new Peft4jException(ErrorCode.IO, "data not found: " + p);
            }
        }
        if (source.size() == 2) {
            boolean npy = source.stream().allMatch(p -> lower(p).endsWith(".npy"));
            if (!npy || (declared != DataSpec.Kind.AUTO && declared != DataSpec.Kind.NPY)) {
                throw Peft4jException.invalid("two data paths " + source + " are a NumPy pair X.npy,Y.npy; other data is one path");
            }
            return DataSpec.Kind.NPY;
        }
        Path p = source.get(0);
        if (declared == DataSpec.Kind.NPY) {
            throw Peft4jException.invalid("NumPy data is a pair of files X.npy,Y.npy; got " + p);
        }
        if (declared != DataSpec.Kind.AUTO) {
            return declared;
        }
        String name = lower(p);
        if (Files.isDirectory(p)) {
            return DataSpec.Kind.IMAGE_FOLDER;
        }
        if (Idx.IMAGES.matcher(p.getFileName().toString()).matches()) {
            return DataSpec.Kind.IDX;
        }
        if (name.endsWith(".npy")) {
            throw Peft4jException.invalid("NumPy data is a pair of files X.npy,Y.npy (features, labels); got only " + p);
        }
        if (TextTable.formatOf(p).isPresent()) {
            return DataSpec.Kind.TEXT;
        }
        throw Peft4jException.invalid("cannot tell what kind of data " + p + " is: expected a folder of class folders, "
                + "an IDX file *-idx3-ubyte[.gz], a NumPy pair X.npy,Y.npy, or a .tsv, .csv or .jsonl text file");
    }

    private static String lower(Path p) {
        return p.getFileName().toString().toLowerCase(Locale.ROOT);
    }

    private static String name(DataSpec.Kind k) {
        return switch (k) {
            case IMAGE_FOLDER -> "an image folder";
            case IDX -> "IDX images";
            case NPY -> "a NumPy pair";
            case TEXT -> "a text file";
            case AUTO -> "of unknown kind";
        };
    }

    // ---------------------------------------------------------------- images

    /** The image input of a model and how images are prepared for it. */
    record ImageGeometry(ModelInputs.Input input, int channels, int height, int width, float[] mean, float[] std) {
    }

    static ImageGeometry imageGeometry(DataSpec spec, ModelInputs inputs) {
        return imageGeometry(inputs, spec.imageHeight(), spec.imageWidth(), spec.mean(), spec.std());
    }

    /**
     * The image input of a model: {@code height} and {@code width} are the requested image size (0:
     * the model's), {@code mean} and {@code std} the requested statistics (empty: the defaults).
     */
    static ImageGeometry imageGeometry(ModelInputs inputs, int height, int width, float[] mean, float[] std) {
        List<ModelInputs.Input> images = inputs.inputs().stream()
                .filter(i -> i.rank() == 4 && i.type() == DataType.FLOAT).toList();
        if (images.isEmpty()) {
            throw Peft4jException.shape("the model has no image input (FLOAT [batch, channels, height, width]); its inputs are "
                    + inputs.describe());
        }
        if (images.size() > 1) {
            throw Peft4jException.unsupported("the model has several image inputs " + images + "; image data feeds one");
        }
        ModelInputs.Input in = images.get(0);
        for (ModelInputs.Input other : inputs.inputs()) {
            if (other != in) {
                throw Peft4jException.unsupported("model input '" + other.name() + "' (" + other.describe()
                        + ") is not fed by image data, which feeds '" + in.name() + "' only");
            }
        }
        if (in.dim(0) >= 0) {
            throw Peft4jException.shape("model input '" + in.name() + "' (" + in.describe() + ") has a fixed batch size of "
                    + in.dim(0) + "; training needs a dynamic batch dimension");
        }
        long c = in.dim(1) < 0 ? 3 : in.dim(1);
        if (c != 1 && c != 3) {
            throw Peft4jException.unsupported("model input '" + in.name() + "' (" + in.describe() + ") takes " + c
                    + " channels; images have 1 (gray) or 3 (RGB)");
        }
        int h = side(in, 2, height, height, width);
        int w = side(in, 3, width, height, width);
        float[] m = stats(mean, (int) c, "mean", c == 3 ? DataSpec.IMAGENET_MEAN : new float[] {DataSpec.GRAY_MEAN});
        float[] sd = stats(std, (int) c, "std", c == 3 ? DataSpec.IMAGENET_STD : new float[] {DataSpec.GRAY_STD});
        return new ImageGeometry(in, (int) c, h, w, m, sd);
    }

    private static int side(ModelInputs.Input in, int axis, int given, int height, int width) {
        long fixed = in.dim(axis);
        if (fixed >= 0) {
            if (fixed < 1 || fixed > 16384) {
                throw Peft4jException.unsupported("model input '" + in.name() + "' (" + in.describe()
                        + ") has an image side of " + fixed + "; 1..16384 is supported");
            }
            if (given > 0 && given != fixed) {
                throw Peft4jException.invalid("the model takes " + in.dim(2) + "x" + in.dim(3) + " images ('" + in.name()
                        + "' is " + in.describe() + "); an image size of " + height + "x" + width
                        + " does not fit");
            }
            return (int) fixed;
        }
        return given > 0 ? given : DataSpec.DEFAULT_IMAGE_SIZE;
    }

    private static float[] stats(float[] given, int channels, String what, float[] defaults) {
        float[] v = given.length == 0 ? defaults : given;
        if (v.length == 1) {
            float[] out = new float[channels];
            Arrays.fill(out, v[0]);
            return out;
        }
        if (v.length != channels) {
            throw Peft4jException.invalid("the model takes " + channels + "-channel images; " + what + " has " + v.length
                    + " values (give 1 or " + channels + ")");
        }
        return v;
    }

    private static DataSplit images(DataSpec spec, ModelInputs inputs, DataSpec.Kind kind) {
        ImageGeometry g = imageGeometry(spec, inputs);
        ImageTransform t = new ImageTransform(g.channels(), g.height(), g.width(), g.mean(), g.std());
        long budget = spec.cacheBytes() >= 0 ? spec.cacheBytes() : Runtime.getRuntime().maxMemory() / 4;
        String input = g.input().name();
        Path src = spec.source().get(0);
        Optional<Path> valSrc = spec.validation().stream().findFirst();
        ImageDataset train;
        Optional<Dataset> val = Optional.empty();
        if (kind == DataSpec.Kind.IMAGE_FOLDER) {
            ImageFolder f = ImageFolder.scan(src, spec.workers());
            Optional<ImageFolder> vf = valSrc.map(v -> ImageFolder.scan(v, spec.workers()));
            vf.ifPresent(v -> sameClasses(f, v));
            train = new ImageDataset("image folder " + src, f.classes(), f.labels(), f, t, input, spec.augment(), budget,
                    spec.workers());
            long left = Math.max(0, budget - train.cachedBytes());
            val = vf.map(v -> new ImageDataset("image folder " + v.dir(), v.classes(), v.labels(), v, t, input, false, left,
                    spec.workers()));
        } else {
            IdxData d = idx(src, null);
            train = new ImageDataset("IDX " + src, d.classes(), d.labels(), d.images(), t, input, spec.augment(), budget,
                    spec.workers());
            val = valSrc.map(v -> {
                IdxData vd = idx(v, d.classes());
                return new ImageDataset("IDX " + v, vd.classes(), vd.labels(), vd.images(), t, input, false, 0, 1);
            });
        }
        Manifest.Preprocessing pre = new Manifest.Preprocessing(input, g.height(), g.width(), g.channels(),
                doubles(g.mean()), doubles(g.std()));
        return new DataSplit(train, val, Optional.of(pre));
    }

    private static List<Double> doubles(float[] v) {
        List<Double> out = new ArrayList<>();
        for (float f : v) {
            out.add((double) f);
        }
        return out;
    }

    private static void sameClasses(ImageFolder train, ImageFolder val) {
        if (train.classes().equals(val.classes())) {
            return;
        }
        List<String> missing = new ArrayList<>(train.classes());
        missing.removeAll(val.classes());
        List<String> extra = new ArrayList<>(val.classes());
        extra.removeAll(train.classes());
        throw Peft4jException.invalid("the validation folder " + val.dir() + " has other classes than " + train.dir()
                + (missing.isEmpty() ? "" : "; missing: " + missing) + (extra.isEmpty() ? "" : "; not in training: " + extra));
    }

    private record IdxData(Idx.Images images, int[] labels, List<String> classes) {
    }

    /** An IDX images file and the labels beside it; {@code classes} null makes them from the labels. */
    private static IdxData idx(Path imagesFile, List<String> classes) {
        Path labelsFile = Idx.labelsFor(imagesFile).orElseThrow(() -> new Peft4jException(ErrorCode.IO,
                "no labels beside " + imagesFile + ": expected " + imagesFile.getFileName().toString()
                        .replaceFirst("(?i)\\.gz$", "").replace("images", "labels").replace("idx3", "idx1") + "[.gz]"));
        Idx.Images images = new Idx.Images(imagesFile, Idx.read(imagesFile));
        Idx.Array labels = Idx.read(labelsFile);
        if (labels.dims().length != 1) {
            throw Peft4jException.shape(labelsFile + " holds an IDX array of shape " + Arrays.toString(labels.dims())
                    + "; labels are [count]");
        }
        if (labels.count() != images.size()) {
            throw Peft4jException.shape(imagesFile + " has " + images.size() + " images but " + labelsFile + " has "
                    + labels.count() + " labels");
        }
        if (images.size() == 0) {
            throw Peft4jException.invalid(imagesFile + " holds no images");
        }
        int[] y = new int[labels.count()];
        int max = 0;
        for (int i = 0; i < y.length; i++) {
            y[i] = labels.data()[i] & 0xff;
            max = Math.max(max, y[i]);
            if (classes != null && y[i] >= classes.size()) {
                throw Peft4jException.invalid(labelsFile + ": label " + i + " is " + y[i] + ", out of range for the "
                        + classes.size() + " classes of the training data");
            }
        }
        List<String> names = classes != null ? classes : IntStream.rangeClosed(0, max).mapToObj(Integer::toString).toList();
        return new IdxData(images, y, names);
    }

    // ---------------------------------------------------------------- NumPy

    private static DataSplit npy(DataSpec spec, ModelInputs inputs) {
        if (inputs.inputs().size() != 1) {
            throw Peft4jException.unsupported("NumPy data feeds one model input; the model takes " + inputs.inputs().size()
                    + ": " + inputs.describe());
        }
        ModelInputs.Input in = inputs.inputs().get(0);
        NpyDataset train = new NpyDataset(spec.source().get(0), spec.source().get(1), in, null);
        Optional<Dataset> val = spec.validation().isEmpty() ? Optional.empty()
                : Optional.of(new NpyDataset(spec.validation().get(0), spec.validation().get(1), in, train.classes()));
        return new DataSplit(train, val, Optional.empty());
    }

    // ---------------------------------------------------------------- text

    private static DataSplit text(DataSpec spec, ModelInputs inputs) {
        TextDataset.TextInputs ti = TextDataset.TextInputs.of(inputs);
        int maxLength = ti.fixedLength() > 0 ? Math.min(spec.maxLength(), ti.fixedLength()) : spec.maxLength();
        Path src = spec.source().get(0);
        TextTable.Examples ex = TextTable.read(src, spec.textColumn(), spec.labelColumn());
        TextDataset.Labels labels = TextDataset.Labels.of(ex.labels(), ex.lines(), src);
        int[] y = labels.indexes(ex.labels(), ex.lines(), src);
        Optional<Path> valSrc = spec.validation().stream().findFirst();
        Optional<TextTable.Examples> vex = valSrc.map(v -> TextTable.read(v, Optional.of(ex.textColumn()),
                Optional.of(ex.labelColumn())));
        Optional<int[]> vy = vex.map(v -> labels.indexes(v.labels(), v.lines(), valSrc.get()));
        try (TextTokenizer tok = spec.tokenizer().map(p -> TextTokenizer.open(p, maxLength))
                .or(() -> TextTokenizer.bundledMiniLm(maxLength))
                .orElseThrow(() -> Peft4jException.invalid("text data needs a tokenizer: give a Hugging Face tokenizer.json"))) {
            String origin = "text " + src + " (text '" + ex.textColumn() + "', label '" + ex.labelColumn() + "', tokenizer "
                    + tok.source() + ")";
            TextDataset train = new TextDataset(origin, labels.classes(), y, tok.encode(ex.texts()), tok.padId(), ti,
                    spec.padding(), maxLength);
            Optional<Dataset> val = vex.map(v -> new TextDataset("text " + valSrc.get() + " (tokenizer " + tok.source() + ")",
                    labels.classes(), vy.get(), tok.encode(v.texts()), tok.padId(), ti, spec.padding(), maxLength));
            return new DataSplit(train, val, Optional.empty());
        }
    }

    // ---------------------------------------------------------------- views

    /** Some examples of another dataset; optionally never augmented (validation). */
    private static final class Subset implements Dataset {
        private final Dataset parent;
        private final int[] indices;
        private final boolean augment;
        private final String what;

        Subset(Dataset parent, int[] indices, boolean augment, String what) {
            for (int i : indices) {
                if (i < 0 || i >= parent.size()) {
                    throw Peft4jException.invalid("example " + i + " is outside the dataset of " + parent.size());
                }
            }
            this.parent = parent;
            this.indices = indices.clone();
            this.augment = augment;
            this.what = what;
        }

        @Override
        public int size() {
            return indices.length;
        }

        @Override
        public List<String> classes() {
            return parent.classes();
        }

        @Override
        public int label(int i) {
            return parent.label(indices[i]);
        }

        @Override
        public Batch batch(int[] idx, SplittableRandom rng) {
            int[] mapped = new int[idx.length];
            for (int k = 0; k < idx.length; k++) {
                mapped[k] = indices[idx[k]];
            }
            return parent.batch(mapped, augment ? rng : null);
        }

        @Override
        public String describe() {
            return what + " of " + indices.length + " examples of " + parent.describe();
        }
    }
}
