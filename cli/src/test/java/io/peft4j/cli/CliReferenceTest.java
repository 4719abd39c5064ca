package io.peft4j.cli;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

class CliReferenceTest {

    /** docs/CLI.md of this checkout; Maven runs the tests in the module's directory. */
    private static final Path COMMITTED = Path.of("..", "docs", "CLI.md").toAbsolutePath().normalize();

    @Command(name = "tool", subcommands = {Undocumented.class, Secret.class})
    static final class Tool implements Callable<Integer> {
        @Option(names = "--level", defaultValue = "3", description = "How hard (default: ${DEFAULT-VALUE}).")
        int level;

        @Override
        public Integer call() {
            return 0;
        }
    }

    @Command(name = "bare")
    static final class Undocumented implements Callable<Integer> {
        @Option(names = "--quiet")
        boolean quiet;

        @Option(names = "--described", description = "Has one.")
        boolean described;

        @Parameters(paramLabel = "FILE")
        String file;

        @Override
        public Integer call() {
            return 0;
        }
    }

    @Command(name = "secret", hidden = true)
    static final class Secret implements Callable<Integer> {
        @Option(names = "--hush")
        boolean hush;

        @Override
        public Integer call() {
            return 0;
        }
    }

    @Test
    void committedReferenceIsWhatTheCodeSays() throws IOException {
        assertTrue(Files.isRegularFile(COMMITTED), COMMITTED + " is missing; write it with: " + CliReference.REGENERATE);
        // A checkout with CRLF line ends (git on Windows) is not out of date.
        String committed = Files.readString(COMMITTED, StandardCharsets.UTF_8).replace("\r\n", "\n");
        String generated = CliReference.generate();
        if (!committed.equals(generated)) {
            List<String> a = committed.lines().toList();
            List<String> b = generated.lines().toList();
            int i = 0;
            while (i < a.size() && i < b.size() && a.get(i).equals(b.get(i))) {
                i++;
            }
            String was = i < a.size() ? a.get(i) : "(end of file)";
            String now = i < b.size() ? b.get(i) : "(end of file)";
            throw new AssertionError("docs/CLI.md is out of date with the command definitions; regenerate it with: "
                    + CliReference.REGENERATE + "\n  first difference at line " + (i + 1)
                    + "\n  docs/CLI.md: " + was + "\n  generated:   " + now);
        }
    }

    @Test
    void everyOptionAndParameterOfPeft4jHasADescription() {
        assertEquals(List.of(), CliReference.undocumented(Peft4jCli.newCommandLine()),
                "options and parameters without a description; add one to the @Option / @Parameters annotation");
    }

    @Test
    void undocumentedArgumentsAreFoundAndHiddenCommandsSkipped() {
        assertEquals(List.of("tool bare: --quiet", "tool bare: FILE"), CliReference.undocumented(new CommandLine(new Tool())));
    }

    @Test
    void referenceHasEveryVisibleCommandAndOptionWithDefaults() {
        CommandLine root = Peft4jCli.newCommandLine();
        String md = CliReference.generate(root);
        for (CommandLine sub : root.getSubcommands().values()) {
            CommandSpec spec = sub.getCommandSpec();
            String heading = "\n## " + spec.qualifiedName() + "\n";
            if (spec.usageMessage().hidden()) {
                assertFalse(md.contains(heading), "hidden command " + spec.name() + " is left out");
                continue;
            }
            int start = md.indexOf(heading);
            assertTrue(start >= 0, "section for " + spec.qualifiedName());
            int end = md.indexOf("\n## ", start + 1);
            String section = md.substring(start, end < 0 ? md.length() : end);
            for (OptionSpec o : spec.options()) {
                if (!o.hidden()) {
                    assertTrue(section.contains(o.longestName()), spec.qualifiedName() + " lists " + o.longestName());
                }
            }
        }
        assertAll(
                () -> assertTrue(md.contains("| `--rank=R` | LoRA rank (default: 8). | `8` |"), "train --rank row"),
                () -> assertTrue(md.contains("| `--base=MODEL.onnx` | The frozen base model. | required |"), "required option"),
                () -> assertTrue(md.contains("| `--json` | Print metrics.json at the end instead of the summary. | off |"), "flag"),
                () -> assertTrue(md.contains("| `MODEL.onnx` |"), "positional parameter of inspect"),
                () -> assertTrue(md.contains("Also takes the global `--stacktrace` of `peft4j`."), "inherited option named once"),
                () -> assertTrue(md.contains("| 2 | usage error, or invalid input reported by peft4j |"), "exit codes"),
                () -> assertFalse(md.contains("\u001b["), "no ANSI escapes"),
                () -> assertFalse(md.contains("## peft4j docs"), "the hidden docs command has no section"),
                () -> assertTrue(md.contains("[`peft4j serve`](#peft4j-serve)"), "index links to the sections"));
    }

    @Test
    void smallCommandRendersAsExpected() {
        String md = CliReference.generate(new CommandLine(new Tool()));
        assertAll(
                () -> assertTrue(md.contains("| `--level=<level>` | How hard (default: 3). | `3` |"), md),
                () -> assertTrue(md.contains("## tool bare\n"), md),
                () -> assertTrue(md.contains("| `FILE` |  | required |"), md),
                () -> assertFalse(md.contains("secret"), md),
                () -> assertFalse(md.endsWith("\n\n"), "one newline at the end"));
    }

    @Test
    void docsCommandWritesTheReferenceToOut(@TempDir Path dir) throws IOException {
        Path out = dir.resolve("CLI.md");
        CliRun run = CliRun.of("docs", "--cli-reference", "--out", out.toString());
        assertEquals(0, run.exitCode(), run.err());
        assertEquals(CliReference.generate(), Files.readString(out, StandardCharsets.UTF_8));
        try (var files = Files.list(dir)) {
            assertEquals(List.of(out), files.toList(), "no temporary file left behind");
        }
    }

    @Test
    void docsCommandPrintsTheReferenceWithoutOut() {
        CliRun run = CliRun.of("docs", "--cli-reference");
        assertEquals(0, run.exitCode(), run.err());
        assertEquals(CliReference.generate(), run.out());
    }

    @Test
    void docsCommandRefusesAMissingDirectoryAndAMissingFlag(@TempDir Path dir) {
        Path out = dir.resolve("no-such-dir").resolve("CLI.md");
        CliRun missingDir = CliRun.of("docs", "--cli-reference", "--out", out.toString());
        CliRun isDir = CliRun.of("docs", "--cli-reference", "--out", dir.toString());
        CliRun noFlag = CliRun.of("docs");
        assertAll(
                () -> assertEquals(2, missingDir.exitCode()),
                () -> assertEquals(1, missingDir.errLines().length, missingDir.err()),
                () -> assertTrue(missingDir.err().contains("the directory " + out.getParent() + " does not exist"), missingDir.err()),
                () -> assertFalse(Files.exists(out.getParent())),
                () -> assertEquals(2, isDir.exitCode()),
                () -> assertTrue(isDir.err().contains("is a directory"), isDir.err()),
                () -> assertEquals(2, noFlag.exitCode()),
                () -> assertTrue(noFlag.err().contains("--cli-reference"), noFlag.err()));
    }
}
