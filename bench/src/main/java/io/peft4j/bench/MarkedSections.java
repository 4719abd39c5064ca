package io.peft4j.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The sections of {@code docs/BENCHMARKS.md} that commands other than {@code bench/run} measure
 * ({@code bench/train-quality}, {@code bench/load}, {@code bench/train-vs-pytorch}): each lies between
 * {@code <!-- PREFIX KEY:begin -->} and {@code <!-- PREFIX KEY:end -->}, e.g.
 * {@code <!-- load-test:resnet18:begin -->}. {@link #splice} replaces one of them in place (or
 * appends it); {@link #carryOver} keeps all of them when {@code bench/run} rewrites the file.
 */
final class MarkedSections {

    /** The marker prefixes of every section that another command owns. */
    static final List<String> PREFIXES = List.of(TrainQuality.MARKER, LoadTest.MARKER, StepVsPyTorch.MARKER,
            MergedSessionMemory.MARKER);

    private static final Pattern BLOCK = Pattern.compile(
            "<!-- (training-quality|load-test|train-vs-pytorch|merged-sessions):([A-Za-z0-9._-]+):begin -->.*?<!-- \\1:\\2:end -->", Pattern.DOTALL);

    private MarkedSections() {
    }

    /** Replaces the section {@code key} under {@code prefix} of {@code docs} with {@code md} (appends it, marked, when there is none). */
    static void splice(Path docs, String prefix, String key, String md) throws IOException {
        String text = Files.exists(docs) ? Files.readString(docs, StandardCharsets.UTF_8) : "";
        Report.write(docs, splice(text, prefix, key, md));
    }

    /** {@code text} with the section {@code key} under {@code prefix} replaced by {@code md}, or appended. */
    static String splice(String text, String prefix, String key, String md) {
        if (!PREFIXES.contains(prefix)) {
            throw new IllegalArgumentException("unknown section prefix " + prefix);
        }
        String begin = prefix + key + ":begin -->";
        String end = prefix + key + ":end -->";
        String block = begin + "\n" + md.strip() + "\n" + end;
        int b = text.indexOf(begin);
        int e = b < 0 ? -1 : text.indexOf(end, b);
        return b >= 0 && e > b ? text.substring(0, b) + block + text.substring(e + end.length())
                : text.stripTrailing() + (text.isBlank() ? "" : "\n\n") + block + "\n";
    }

    /**
     * {@code md} followed by every marked section of {@code old} (in their order there), so that
     * rewriting the file with {@code md} loses none of them. Sections {@code md} has already are not doubled.
     */
    static String carryOver(String old, String md) {
        StringBuilder sb = new StringBuilder(md.stripTrailing());
        Matcher m = BLOCK.matcher(old);
        boolean any = false;
        while (m.find()) {
            if (md.contains(m.group().substring(0, m.group().indexOf("-->") + 3))) {
                continue;
            }
            sb.append("\n\n").append(m.group());
            any = true;
        }
        return any ? sb.append('\n').toString() : md;
    }
}
