package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.stream.IntStream;

/**
 * Tokenized texts as {@code input_ids}, {@code attention_mask} and, when the model takes it,
 * {@code token_type_ids} ({@code [n, length]}, int64 or int32 as the model declares). A batch is
 * padded with the tokenizer's pad id to its longest text, to the maximum length, or to the model's
 * fixed sequence length if it has one; the attention mask is 1 on tokens and 0 on padding. Texts
 * are tokenized once, when the dataset is made; {@code batch} ignores its random source.
 */
final class TextDataset implements Dataset {

    static final String INPUT_IDS = "input_ids";
    static final String ATTENTION_MASK = "attention_mask";
    static final String TOKEN_TYPE_IDS = "token_type_ids";

    /** Which model inputs a text batch fills, and the model's fixed sequence length (0 when dynamic). */
    record TextInputs(ModelInputs.Input ids, Optional<ModelInputs.Input> mask, Optional<ModelInputs.Input> types,
                      int fixedLength) {

        /** The text inputs of a model: {@code input_ids} and optionally the mask and token types, nothing else. */
        static TextInputs of(ModelInputs inputs) {
            ModelInputs.Input ids = inputs.find(INPUT_IDS).orElseThrow(() -> Peft4jException.notFound(
                    "the model has no input '" + INPUT_IDS + "' for token ids; its inputs are " + inputs.describe()));
            for (ModelInputs.Input in : inputs.inputs()) {
                if (!List.of(INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS).contains(in.name())) {
                    throw Peft4jException.unsupported("model input '" + in.name() + "' (" + in.describe()
                            + ") is not fed by text data, which feeds " + INPUT_IDS + ", " + ATTENTION_MASK + " and "
                            + TOKEN_TYPE_IDS);
                }
                if (in.rank() != 2 || (in.type() != DataType.INT64 && in.type() != DataType.INT32)) {
                    throw Peft4jException.shape("model input '" + in.name() + "' is " + in.describe()
                            + "; text inputs are INT64 or INT32 [batch, sequence]");
                }
                if (in.dim(0) >= 0) {
                    throw Peft4jException.shape("model input '" + in.name() + "' has a fixed batch size of " + in.dim(0)
                            + "; training needs a dynamic batch dimension");
                }
            }
            long fixed = -1;
            for (ModelInputs.Input in : inputs.inputs()) {
                if (in.dim(1) >= 0) {
                    if (fixed >= 0 && fixed != in.dim(1)) {
                        throw Peft4jException.shape("the model's text inputs disagree on the sequence length: "
                                + inputs.describe());
                    }
                    fixed = in.dim(1);
                }
            }
            if (fixed == 0 || fixed == 1) {
                throw Peft4jException.shape("the model's text inputs have a fixed sequence length of " + fixed
                        + "; that leaves no room for a text");
            }
            return new TextInputs(ids, inputs.find(ATTENTION_MASK), inputs.find(TOKEN_TYPE_IDS), (int) Math.max(0, fixed));
        }
    }

    /** Label strings to class indexes: integers as they are, anything else sorted. */
    record Labels(List<String> classes, boolean numeric) {

        static Labels of(List<String> labels, int[] lines, Path file) {
            boolean numeric = labels.stream().allMatch(l -> l.matches("-?\\d{1,9}"));
            if (numeric) {
                int max = -1;
                for (int k = 0; k < labels.size(); k++) {
                    int v = Integer.parseInt(labels.get(k));
                    if (v < 0) {
                        throw Peft4jException.invalid(file + " line " + lines[k] + ": label " + v
                                + " is negative; integer labels are class indexes from 0");
                    }
                    if (v > 100_000) {
                        throw Peft4jException.invalid(file + " line " + lines[k] + ": label " + v
                                + "; more than 100000 classes is not a classification peft4j trains");
                    }
                    max = Math.max(max, v);
                }
                return new Labels(IntStream.rangeClosed(0, max).mapToObj(Integer::toString).toList(), true);
            }
            return new Labels(List.copyOf(new TreeSet<>(labels)), false);
        }

        int[] indexes(List<String> labels, int[] lines, Path file) {
            Map<String, Integer> index = new LinkedHashMap<>();
            for (int i = 0; i < classes.size(); i++) {
                index.put(classes.get(i), i);
            }
            int[] out = new int[labels.size()];
            for (int k = 0; k < out.length; k++) {
                String l = labels.get(k);
                Integer i = index.get(numeric && l.matches("-?\\d{1,9}") ? Integer.toString(Integer.parseInt(l)) : l);
                if (i == null) {
                    throw Peft4jException.invalid(file + " line " + lines[k] + ": label '" + l + "' is "
                            + (numeric ? "out of range for the " + classes.size() + " classes (0.." + (classes.size() - 1)
                            + ") of the training data" : "not one of the training classes " + classes));
                }
                out[k] = i;
            }
            return out;
        }
    }

    private final String origin;
    private final List<String> classes;
    private final int[] labels;
    private final long[][] ids;
    private final long[][] types;
    private final TextInputs inputs;
    private final DataSpec.Padding padding;
    private final int maxLength;
    private final long padId;
    private final int truncated;

    TextDataset(String origin, List<String> classes, int[] labels, TextTokenizer.Encoded encoded, long padId,
                TextInputs inputs, DataSpec.Padding padding, int maxLength) {
        if (labels.length != encoded.ids().length) {
            throw new IllegalArgumentException(labels.length + " labels for " + encoded.ids().length + " texts");
        }
        this.origin = origin;
        this.classes = List.copyOf(classes);
        this.labels = labels.clone();
        this.ids = encoded.ids();
        this.types = encoded.typeIds();
        this.inputs = inputs;
        this.padding = padding;
        this.maxLength = maxLength;
        this.padId = padId;
        this.truncated = encoded.truncated();
    }

    @Override
    public int size() {
        return labels.length;
    }

    @Override
    public List<String> classes() {
        return classes;
    }

    @Override
    public int label(int i) {
        return labels[i];
    }

    /** Token ids of example {@code i} (special tokens included, not padded). */
    long[] ids(int i) {
        return ids[i].clone();
    }

    @Override
    public Batch batch(int[] indices, SplittableRandom rng) {
        int n = indices.length;
        int length;
        if (inputs.fixedLength() > 0) {
            length = inputs.fixedLength();
        } else if (padding == DataSpec.Padding.MAX_LENGTH) {
            length = maxLength;
        } else {
            length = 1;
            for (int i : indices) {
                length = Math.max(length, ids[i].length);
            }
        }
        long[] idv = new long[n * length];
        long[] mask = new long[n * length];
        long[] typ = new long[n * length];
        long[] y = new long[n];
        for (int k = 0; k < n; k++) {
            int i = indices[k];
            long[] t = ids[i];
            int len = Math.min(t.length, length);
            java.util.Arrays.fill(idv, k * length, (k + 1) * length, padId);
            System.arraycopy(t, 0, idv, k * length, len);
            System.arraycopy(types[i], 0, typ, k * length, len);
            java.util.Arrays.fill(mask, k * length, k * length + len, 1L);
            y[k] = labels[i];
        }
        long[] shape = {n, length};
        Map<String, Tensor> feed = new LinkedHashMap<>();
        feed.put(inputs.ids().name(), tensor(inputs.ids().type(), shape, idv));
        inputs.mask().ifPresent(m -> feed.put(m.name(), tensor(m.type(), shape, mask)));
        inputs.types().ifPresent(t -> feed.put(t.name(), tensor(t.type(), shape, typ)));
        return new Batch(feed, y);
    }

    private static Tensor tensor(DataType type, long[] shape, long[] values) {
        if (type == DataType.INT64) {
            return Tensor.ofLongs(shape, values);
        }
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (long v : values) {
            b.putInt(Math.toIntExact(v));
        }
        b.flip();
        return Tensor.wrap(DataType.INT32, shape, b);
    }

    @Override
    public String describe() {
        List<String> fed = new ArrayList<>(List.of(inputs.ids().name()));
        inputs.mask().ifPresent(m -> fed.add(m.name()));
        inputs.types().ifPresent(t -> fed.add(t.name()));
        String pad = inputs.fixedLength() > 0 ? "padded to the model's " + inputs.fixedLength()
                : padding == DataSpec.Padding.MAX_LENGTH ? "padded to " + maxLength : "padded to each batch's longest";
        return origin + ": " + size() + " texts, " + classes.size() + " classes, " + String.join(" + ", fed) + ", at most "
                + maxLength + " tokens (" + truncated + " truncated), " + pad;
    }
}
