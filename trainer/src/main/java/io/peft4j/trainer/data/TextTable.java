package io.peft4j.trainer.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;

/**
 * Labelled texts from a table, UTF-8: TSV (tab-separated, no quoting, as IANA's
 * {@code text/tab-separated-values}), CSV (RFC 4180: comma-separated, fields in double quotes may
 * hold commas, line breaks and doubled quotes) or JSONL (one JSON object per line).
 *
 * <p>Columns are named (a header row, or JSON fields) or, for TSV and CSV, given as 0-based
 * indexes. Left out, they are detected: a header row is one that names a text column ({@code text},
 * {@code sentence}, …) or a label column ({@code label}, {@code class}, …), and both are then looked
 * up by those names; a table without a header and with two columns has its label in the column
 * that holds only integers, else in the one with fewer distinct values (so
 * {@code label<TAB>text} files such as the SMS Spam Collection need no options; on a tie, the
 * column with the shorter values). A validation table is read with the columns found in the
 * training table. Blank lines are
 * skipped; every error names the file and the line.
 */
final class TextTable {

    static final List<String> TEXT_NAMES = List.of("text", "sentence", "content", "message", "review", "document");
    static final List<String> LABEL_NAMES = List.of("label", "labels", "class", "category", "target");

    enum Format {
        TSV, CSV, JSONL
    }

    /** The examples of a table, in file order, and which columns they came from. */
    record Examples(List<String> texts, List<String> labels, int[] lines, String textColumn, String labelColumn) {
    }

    private record Row(int line, List<String> cells) {
    }

    private TextTable() {
    }

    /** The format a file's extension names, if any. */
    static Optional<Format> formatOf(Path file) {
        String n = file.getFileName().toString().toLowerCase(Locale.ROOT);
        if (n.endsWith(".tsv")) {
            return Optional.of(Format.TSV);
        }
        if (n.endsWith(".csv")) {
            return Optional.of(Format.CSV);
        }
        if (n.endsWith(".jsonl") || n.endsWith(".ndjson")) {
            return Optional.of(Format.JSONL);
        }
        return Optional.empty();
    }

    static Examples read(Path file, Optional<String> textColumn, Optional<String> labelColumn) {
        String content = readUtf8(file);
        Format format = formatOf(file).orElseGet(() -> guess(content));
        if (format == Format.JSONL) {
            return jsonl(file, content, textColumn, labelColumn);
        }
        List<Row> rows = format == Format.TSV ? tsv(content) : csv(file, content);
        return table(file, rows, textColumn, labelColumn);
    }

    private static Format guess(String content) {
        String first = content.strip();
        if (first.startsWith("{")) {
            return Format.JSONL;
        }
        int nl = first.indexOf('\n');
        return (nl < 0 ? first : first.substring(0, nl)).indexOf('\t') >= 0 ? Format.TSV : Format.CSV;
    }

    private static String readUtf8(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new Peft4jException(ErrorCode.IO, "text file not found: " + file, e);
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot read " + file + ": " + e.getMessage(), e);
        }
        try {
            String s = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(java.nio.ByteBuffer.wrap(bytes)).toString();
            return s.startsWith("\uFEFF") ? s.substring(1) : s;
        } catch (CharacterCodingException e) {
            throw Peft4jException.malformed(file + " is not UTF-8 text");
        }
    }

    // ---------------------------------------------------------------- parsing

    private static List<Row> tsv(String content) {
        List<Row> rows = new ArrayList<>();
        int line = 0;
        for (String l : content.split("\r\n|\n|\r", -1)) {
            line++;
            if (!l.isBlank()) {
                rows.add(new Row(line, List.of(l.split("\t", -1))));
            }
        }
        return rows;
    }

    private static List<Row> csv(Path file, String s) {
        List<Row> rows = new ArrayList<>();
        List<String> cells = new ArrayList<>();
        StringBuilder cell = new StringBuilder();
        int line = 1;
        int rowLine = 1;
        int i = 0;
        int n = s.length();
        boolean rowHasContent = false;
        while (i <= n) {
            char c = i < n ? s.charAt(i) : '\n';
            if (c == '"' && cell.isEmpty()) {
                int quoteLine = line;
                i++;
                while (true) {
                    if (i >= n) {
                        throw Peft4jException.malformed(file + ": the quoted field that starts on line " + quoteLine
                                + " is never closed");
                    }
                    char q = s.charAt(i);
                    if (q == '"') {
                        if (i + 1 < n && s.charAt(i + 1) == '"') {
                            cell.append('"');
                            i += 2;
                            continue;
                        }
                        i++;
                        break;
                    }
                    if (q == '\n' || (q == '\r' && !(i + 1 < n && s.charAt(i + 1) == '\n'))) {
                        line++;
                    }
                    cell.append(q);
                    i++;
                }
                rowHasContent = true;
                if (i < n && s.charAt(i) != ',' && s.charAt(i) != '\n' && s.charAt(i) != '\r') {
                    throw Peft4jException.malformed(file + " line " + line + ": text after a closing quote (a quote inside a "
                            + "quoted field is written as two quotes)");
                }
                continue;
            }
            if (c == ',') {
                cells.add(cell.toString());
                cell.setLength(0);
                rowHasContent = true;
                i++;
                continue;
            }
            if (c == '\r' || c == '\n') {
                if (rowHasContent || !cell.isEmpty()) {
                    cells.add(cell.toString());
                    if (!(cells.size() == 1 && cells.get(0).isBlank())) {
                        rows.add(new Row(rowLine, List.copyOf(cells)));
                    }
                }
                cells.clear();
                cell.setLength(0);
                rowHasContent = false;
                i += c == '\r' && i + 1 < n && s.charAt(i + 1) == '\n' ? 2 : 1;
                line++;
                rowLine = line;
                continue;
            }
            cell.append(c);
            i++;
        }
        return rows;
    }

    // ---------------------------------------------------------------- columns

    private static Examples table(Path file, List<Row> rows, Optional<String> textColumn, Optional<String> labelColumn) {
        if (rows.isEmpty()) {
            throw Peft4jException.invalid(file + " is empty: it holds no examples");
        }
        List<String> first = rows.get(0).cells();
        boolean byName = textColumn.filter(c -> index(c) < 0).isPresent() || labelColumn.filter(c -> index(c) < 0).isPresent();
        boolean header;
        if (byName) {
            header = true;
        } else if (textColumn.isEmpty() && labelColumn.isEmpty()) {
            header = find(first, TEXT_NAMES) >= 0 || find(first, LABEL_NAMES) >= 0;
        } else {
            int li = labelColumn.map(TextTable::index).orElse(-1);
            header = li >= 0 && li < first.size() && LABEL_NAMES.contains(first.get(li).strip().toLowerCase(Locale.ROOT));
        }
        List<Row> data = header ? rows.subList(1, rows.size()) : rows;
        if (data.isEmpty()) {
            throw Peft4jException.invalid(file + " has a header row but no examples");
        }
        int ti;
        int li;
        if (header) {
            ti = textColumn.map(c -> column(file, first, c, "text")).orElseGet(() -> named(file, first, TEXT_NAMES, "text"));
            li = labelColumn.map(c -> column(file, first, c, "label")).orElseGet(() -> named(file, first, LABEL_NAMES, "label"));
        } else {
            int cols = first.size();
            ti = textColumn.map(TextTable::index).orElse(-1);
            li = labelColumn.map(TextTable::index).orElse(-1);
            if (ti < 0 && li < 0) {
                if (cols != 2) {
                    throw Peft4jException.invalid(file + " has " + cols + " columns and no header naming 'text' and 'label'; "
                            + "say which column holds the text and which the label");
                }
                li = labelColumnOfTwo(file, data);
                ti = 1 - li;
            } else if (ti < 0 || li < 0) {
                if (cols != 2) {
                    throw Peft4jException.invalid(file + " has " + cols + " columns; say which holds the "
                            + (ti < 0 ? "text" : "label"));
                }
                if (ti < 0) {
                    ti = 1 - li;
                } else {
                    li = 1 - ti;
                }
            }
        }
        if (ti == li) {
            throw Peft4jException.invalid(file + ": the text and the label cannot be the same column (" + ti + ")");
        }
        String tName = header ? first.get(ti).strip() : Integer.toString(ti);
        String lName = header ? first.get(li).strip() : Integer.toString(li);
        List<String> texts = new ArrayList<>(data.size());
        List<String> labels = new ArrayList<>(data.size());
        int[] lines = new int[data.size()];
        for (int k = 0; k < data.size(); k++) {
            Row r = data.get(k);
            if (r.cells().size() <= Math.max(ti, li)) {
                throw Peft4jException.invalid(file + " line " + r.line() + " has " + r.cells().size() + " column"
                        + (r.cells().size() == 1 ? "" : "s") + "; the text is column " + describe(tName, ti, header)
                        + " and the label column " + describe(lName, li, header));
            }
            String label = r.cells().get(li).strip();
            if (label.isEmpty()) {
                throw Peft4jException.invalid(file + " line " + r.line() + " has an empty label");
            }
            texts.add(r.cells().get(ti));
            labels.add(label);
            lines[k] = r.line();
        }
        return new Examples(texts, labels, lines, tName, lName);
    }

    private static String describe(String name, int index, boolean header) {
        return header ? index + " ('" + name + "')" : Integer.toString(index);
    }

    /** A column given as a non-negative integer, else -1. */
    static int index(String column) {
        String c = column.strip();
        if (!c.matches("\\d{1,6}")) {
            return -1;
        }
        return Integer.parseInt(c);
    }

    private static int column(Path file, List<String> header, String given, String what) {
        int idx = index(given);
        if (idx >= 0) {
            if (idx >= header.size()) {
                throw Peft4jException.notFound(file + " has " + header.size() + " columns; there is no " + what + " column " + idx);
            }
            return idx;
        }
        for (int pass = 0; pass < 2; pass++) {
            for (int i = 0; i < header.size(); i++) {
                String h = header.get(i).strip();
                if (pass == 0 ? h.equals(given) : h.equalsIgnoreCase(given.strip())) {
                    return i;
                }
            }
        }
        throw Peft4jException.notFound(file + " has no column '" + given + "' (its header names " + header + ")");
    }

    private static int named(Path file, List<String> header, List<String> names, String what) {
        int i = find(header, names);
        if (i < 0) {
            throw Peft4jException.notFound(file + " has no " + what + " column (one of " + names + "); its header names "
                    + header + "; say which column holds the " + what);
        }
        return i;
    }

    private static int find(List<String> cells, List<String> names) {
        for (String name : names) {
            for (int i = 0; i < cells.size(); i++) {
                if (cells.get(i).strip().equalsIgnoreCase(name)) {
                    return i;
                }
            }
        }
        return -1;
    }

    /**
     * Of two columns, the label is the one that holds only integers if just one does, else the one
     * with fewer distinct values, else the one with shorter values on average.
     */
    private static int labelColumnOfTwo(Path file, List<Row> data) {
        boolean i0 = integers(data, 0);
        boolean i1 = integers(data, 1);
        if (i0 != i1) {
            return i0 ? 0 : 1;
        }
        int d0 = distinct(data, 0);
        int d1 = distinct(data, 1);
        if (d0 != d1) {
            return d0 < d1 ? 0 : 1;
        }
        double l0 = meanLength(data, 0);
        double l1 = meanLength(data, 1);
        if (l0 != l1) {
            return l0 < l1 ? 0 : 1;
        }
        throw Peft4jException.invalid(file + ": both columns have " + d0 + " distinct values of the same mean length, so "
                + "which one is the label cannot be told; say which column holds the text and which the label");
    }

    private static boolean integers(List<Row> rows, int column) {
        for (Row r : rows) {
            if (column >= r.cells().size() || !r.cells().get(column).strip().matches("-?\\d{1,9}")) {
                return false;
            }
        }
        return true;
    }

    private static double meanLength(List<Row> rows, int column) {
        long sum = 0;
        for (Row r : rows) {
            sum += column < r.cells().size() ? r.cells().get(column).strip().length() : 0;
        }
        return (double) sum / rows.size();
    }

    private static int distinct(List<Row> rows, int column) {
        Set<String> seen = new HashSet<>();
        for (Row r : rows) {
            if (column < r.cells().size()) {
                seen.add(r.cells().get(column).strip());
            }
        }
        return seen.size();
    }

    // ---------------------------------------------------------------- JSONL

    private static Examples jsonl(Path file, String content, Optional<String> textField, Optional<String> labelField) {
        ObjectMapper json = new ObjectMapper();
        List<String> texts = new ArrayList<>();
        List<String> labels = new ArrayList<>();
        List<Integer> lines = new ArrayList<>();
        String tName = null;
        String lName = null;
        int line = 0;
        for (String l : content.split("\r\n|\n|\r", -1)) {
            line++;
            if (l.isBlank()) {
                continue;
            }
            JsonNode node;
            try {
                node = json.readTree(l);
            } catch (JsonProcessingException e) {
                throw new Peft4jException(ErrorCode.MALFORMED, file + " line " + line + " is not JSON: "
                        + e.getOriginalMessage(), e);
            }
            if (node == null || !node.isObject()) {
                throw Peft4jException.malformed(file + " line " + line + " is not a JSON object");
            }
            if (tName == null) {
                tName = textField.orElseGet(() -> field(node, TEXT_NAMES));
                lName = labelField.orElseGet(() -> field(node, LABEL_NAMES));
                if (tName == null || lName == null) {
                    throw Peft4jException.notFound(file + " line " + line + " has no " + (tName == null ? "text" : "label")
                            + " field (one of " + (tName == null ? TEXT_NAMES : LABEL_NAMES) + "); its fields are "
                            + fields(node) + "; say which field holds the " + (tName == null ? "text" : "label"));
                }
            }
            JsonNode t = node.get(tName);
            JsonNode lab = node.get(lName);
            if (t == null || lab == null) {
                String missing = t == null ? tName : lName;
                throw Peft4jException.notFound(file + " line " + line + " has no field '" + missing + "'; its fields are "
                        + fields(node));
            }
            if (!t.isTextual()) {
                throw Peft4jException.invalid(file + " line " + line + ": field '" + tName + "' is not a string");
            }
            String label;
            if (lab.isTextual()) {
                label = lab.asText().strip();
            } else if (lab.isIntegralNumber()) {
                label = lab.asText();
            } else {
                throw Peft4jException.invalid(file + " line " + line + ": the label '" + lName
                        + "' is neither a string nor an integer");
            }
            if (label.isEmpty()) {
                throw Peft4jException.invalid(file + " line " + line + " has an empty label");
            }
            texts.add(t.asText());
            labels.add(label);
            lines.add(line);
        }
        if (texts.isEmpty()) {
            throw Peft4jException.invalid(file + " is empty: it holds no examples");
        }
        return new Examples(texts, labels, lines.stream().mapToInt(Integer::intValue).toArray(), tName, lName);
    }

    private static String field(JsonNode node, List<String> names) {
        for (String n : names) {
            if (node.has(n)) {
                return n;
            }
        }
        return null;
    }

    private static List<String> fields(JsonNode node) {
        List<String> out = new ArrayList<>();
        node.fieldNames().forEachRemaining(out::add);
        return out;
    }
}
