package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TextTableTest {

    private static final Optional<String> AUTO = Optional.empty();

    private static Path file(Path dir, String name, String content) throws IOException {
        return Files.writeString(dir.resolve(name), content, StandardCharsets.UTF_8);
    }

    private static TextTable.Examples read(Path f) {
        return TextTable.read(f, AUTO, AUTO);
    }

    private static Peft4jException refused(Path f, Optional<String> text, Optional<String> label) {
        return assertThrows(Peft4jException.class, () -> TextTable.read(f, text, label));
    }

    @Test
    void aTsvWithoutHeaderFindsItsLabelColumn(@TempDir Path dir) throws Exception {
        Path f = file(dir, "sms.tsv", "ham\tGo until jurong point, \"crazy\"..\r\nspam\tFree entry\n\nham\tOk lar...\nham\tU dun say so\n");
        TextTable.Examples e = read(f);
        assertEquals(List.of("Go until jurong point, \"crazy\"..", "Free entry", "Ok lar...", "U dun say so"), e.texts());
        assertEquals(List.of("ham", "spam", "ham", "ham"), e.labels());
        assertArrayEquals(new int[] {1, 2, 4, 5}, e.lines());
        assertEquals("1", e.textColumn());
        assertEquals("0", e.labelColumn());
        Path swapped = file(dir, "swapped.tsv", "good movie\tpos\nbad movie\tneg\nfine\tpos\n");
        assertEquals(List.of("pos", "neg", "pos"), read(swapped).labels());
    }

    @Test
    void csvFollowsRfc4180Quoting(@TempDir Path dir) throws Exception {
        Path f = file(dir, "r.csv", "id,text,label\r\n1,\"a, b\",x\r\n2,\"she said \"\"hi\"\"\nand left\",y\n3,plain,x\n");
        TextTable.Examples e = read(f);
        assertEquals(List.of("a, b", "she said \"hi\"\nand left", "plain"), e.texts());
        assertEquals(List.of("x", "y", "x"), e.labels());
        assertArrayEquals(new int[] {2, 3, 5}, e.lines(), "a record's line is where it starts");
        assertEquals("text", e.textColumn());
    }

    @Test
    void columnsCanBeNamedOrNumbered(@TempDir Path dir) throws Exception {
        Path named = file(dir, "n.csv", "Sentence,Sentiment,extra\nnice,pos,1\nawful,neg,2\n");
        TextTable.Examples e = TextTable.read(named, Optional.of("Sentence"), Optional.of("sentiment"));
        assertEquals(List.of("pos", "neg"), e.labels());
        assertEquals(List.of("nice", "awful"), e.texts());
        TextTable.Examples byIndex = TextTable.read(named, Optional.of("0"), Optional.of("2"));
        assertEquals(List.of("Sentence", "nice", "awful"), byIndex.texts(), "numbered columns without a known header name");
        Path three = file(dir, "three.tsv", "a\t1\tfoo\nb\t2\tbar\n");
        TextTable.Examples t = TextTable.read(three, Optional.of("2"), Optional.of("1"));
        assertEquals(List.of("foo", "bar"), t.texts());
        assertEquals(List.of("1", "2"), t.labels());
        Path headed = file(dir, "h.tsv", "text\tlabel\nfoo\t1\n");
        assertEquals(List.of("foo"), TextTable.read(headed, Optional.of("0"), Optional.of("1")).texts(),
                "a header row naming the label is skipped with numbered columns too");
    }

    @Test
    void jsonlReadsFieldsAndIntegerLabels(@TempDir Path dir) throws Exception {
        Path f = file(dir, "d.jsonl", "{\"text\": \"first\", \"label\": 1}\n\n{\"label\": 0, \"text\": \"second\", \"x\": [1]}\n");
        TextTable.Examples e = read(f);
        assertEquals(List.of("first", "second"), e.texts());
        assertEquals(List.of("1", "0"), e.labels());
        assertArrayEquals(new int[] {1, 3}, e.lines());
        Path custom = file(dir, "c.jsonl", "{\"body\": \"x\", \"tag\": \"a\"}\n");
        assertEquals(List.of("a"), TextTable.read(custom, Optional.of("body"), Optional.of("tag")).labels());
    }

    @Test
    void missingColumnsAndEmptyFilesAreRefusedByName(@TempDir Path dir) throws Exception {
        Path csv = file(dir, "n.csv", "text,label\nnice,pos\n");
        Peft4jException e = refused(csv, Optional.of("review"), AUTO);
        assertEquals(ErrorCode.NOT_FOUND, e.code());
        assertTrue(e.getMessage().contains(csv + " has no column 'review'"), e.getMessage());
        assertTrue(refused(csv, Optional.of("5"), Optional.of("1")).getMessage().contains("there is no text column 5"));
        Path noLabel = file(dir, "x.csv", "text,score\na,1\n");
        assertTrue(refused(noLabel, AUTO, AUTO).getMessage().contains("has no label column"), "a header naming only the text");
        assertEquals(ErrorCode.NOT_FOUND, refused(noLabel, Optional.of("text"), AUTO).code());

        Path empty = file(dir, "e.tsv", "\n\n");
        e = refused(empty, AUTO, AUTO);
        assertTrue(e.getMessage().contains(empty + " is empty"), e.getMessage());
        assertTrue(refused(file(dir, "e.jsonl", ""), AUTO, AUTO).getMessage().contains("is empty"));
        assertTrue(refused(file(dir, "ho.csv", "text,label\n"), AUTO, AUTO).getMessage().contains("header row but no examples"));

        Path short1 = file(dir, "s.tsv", "ham\thello\nspam\n");
        e = refused(short1, AUTO, Optional.of("0"));
        assertTrue(e.getMessage().contains(short1 + " line 2 has 1 column"), e.getMessage());
        Path noLabelValue = file(dir, "nl.tsv", "ham\thello\n \tbye\n");
        assertTrue(refused(noLabelValue, Optional.of("1"), Optional.of("0")).getMessage().contains("line 2 has an empty label"));
        Path jsonMissing = file(dir, "m.jsonl", "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\"}\n");
        e = refused(jsonMissing, AUTO, AUTO);
        assertTrue(e.getMessage().contains(jsonMissing + " line 2 has no field 'label'"), e.getMessage());
    }

    @Test
    void malformedFilesAreRefusedWithTheLine(@TempDir Path dir) throws Exception {
        Path open = file(dir, "q.csv", "text,label\n\"never closed,x\nmore,y\n");
        Peft4jException e = refused(open, AUTO, AUTO);
        assertEquals(ErrorCode.MALFORMED, e.code());
        assertTrue(e.getMessage().contains("starts on line 2 is never closed"), e.getMessage());
        Path after = file(dir, "a.csv", "text,label\n\"quoted\"tail,x\n");
        assertTrue(refused(after, AUTO, AUTO).getMessage().contains("line 2: text after a closing quote"));
        Path badJson = file(dir, "b.jsonl", "{\"text\": \"a\", \"label\": 1}\n{not json}\n");
        assertTrue(refused(badJson, AUTO, AUTO).getMessage().contains(badJson + " line 2 is not JSON"));
        Path array = file(dir, "arr.jsonl", "[1, 2]\n");
        assertTrue(refused(array, AUTO, AUTO).getMessage().contains("line 1 is not a JSON object"));
        Path floatLabel = file(dir, "fl.jsonl", "{\"text\": \"a\", \"label\": 0.5}\n");
        assertTrue(refused(floatLabel, AUTO, AUTO).getMessage().contains("neither a string nor an integer"));
        Path latin1 = dir.resolve("l.tsv");
        Files.write(latin1, new byte[] {'a', '\t', (byte) 0xe9, '\n'});
        assertTrue(refused(latin1, AUTO, AUTO).getMessage().contains("is not UTF-8"));
        Path same = file(dir, "same.tsv", "a\tb\nb\ta\n");
        assertTrue(refused(same, AUTO, AUTO).getMessage().contains("cannot be told"));
        Path wide = file(dir, "w.tsv", "a\tb\tc\n");
        assertTrue(refused(wide, AUTO, AUTO).getMessage().contains("has 3 columns"));
    }
}
