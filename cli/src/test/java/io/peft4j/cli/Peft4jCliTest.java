package io.peft4j.cli;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.UncheckedIOException;
import java.nio.file.NoSuchFileException;
import java.util.concurrent.Callable;

import org.junit.jupiter.api.Test;

import io.peft4j.core.Peft4jException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

class Peft4jCliTest {

    /** A command that only exists in this test, to see how failures are reported. */
    @Command(name = "fail")
    static final class FailingCommand implements Callable<Integer> {
        private final RuntimeException toThrow;

        FailingCommand(RuntimeException toThrow) {
            this.toThrow = toThrow;
        }

        @Override
        public Integer call() {
            throw toThrow;
        }
    }

    private static CliRun run(String... args) {
        return CliRun.of(args);
    }

    private static CliRun runFailing(RuntimeException toThrow, String... args) {
        CommandLine commandLine = Peft4jCli.newCommandLine();
        commandLine.addSubcommand(new FailingCommand(toThrow));
        return CliRun.of(commandLine, args);
    }

    @Test
    void helpListsTheCommandAndExitsZero() {
        CliRun run = run("--help");
        assertAll(
                () -> assertEquals(0, run.exitCode()),
                () -> assertTrue(run.out().contains("Usage: peft4j"), run.out()),
                () -> assertTrue(run.out().contains("help"), "lists the help subcommand: " + run.out()),
                () -> assertTrue(run.out().contains("--stacktrace"), run.out()),
                () -> assertTrue(run.out().contains("README.md"), "footer points to the README: " + run.out()),
                () -> assertEquals("", run.err()));
    }

    @Test
    void helpSubcommandPrintsTheSameUsage() {
        CliRun run = run("help");
        assertEquals(0, run.exitCode());
        assertTrue(run.out().contains("Usage: peft4j"), run.out());
    }

    @Test
    void versionNamesPeft4jJavaAndOsAndExitsZero() {
        CliRun run = run("--version");
        String expectedVersion = VersionProvider.peft4jVersion();
        assertAll(
                () -> assertEquals(0, run.exitCode()),
                () -> assertNotEquals("unknown", expectedVersion, "version.properties is filtered by Maven"),
                () -> assertTrue(run.out().startsWith("peft4j " + expectedVersion), run.out()),
                () -> assertTrue(run.out().contains("Java " + System.getProperty("java.version")), run.out()),
                () -> assertTrue(run.out().contains(System.getProperty("os.arch")), run.out()),
                () -> assertFalse(run.out().contains("${"), "no unfiltered placeholders: " + run.out()),
                () -> assertEquals("", run.err()));
    }

    @Test
    void unknownOptionIsAOneLineUsageErrorWithExitCodeTwo() {
        CliRun run = run("--frobnicate");
        assertAll(
                () -> assertEquals(2, run.exitCode()),
                () -> assertEquals(1, run.errLines().length, run.err()),
                () -> assertTrue(run.err().startsWith("peft4j: error: Unknown option: '--frobnicate'"), run.err()),
                () -> assertTrue(run.err().contains("peft4j --help"), run.err()),
                () -> assertEquals("", run.out()));
    }

    @Test
    void misspelledOptionSuggestsTheRightOne() {
        CliRun run = run("--verison");
        assertEquals(2, run.exitCode());
        assertEquals(1, run.errLines().length, run.err());
        assertTrue(run.err().contains("did you mean --version"), run.err());
    }

    @Test
    void unknownSubcommandIsAOneLineUsageError() {
        CliRun run = run("frobnicate");
        assertEquals(2, run.exitCode());
        assertEquals(1, run.errLines().length, run.err());
        assertTrue(run.err().startsWith("peft4j: error: "), run.err());
    }

    @Test
    void noArgumentsShowsTheUsageAsAUsageError() {
        CliRun run = run();
        assertEquals(2, run.exitCode());
        assertTrue(run.err().contains("Usage: peft4j"), run.err());
        assertEquals("", run.out());
    }

    @Test
    void usageErrorInASubcommandPointsToThatSubcommandsHelp() {
        CliRun run = runFailing(new IllegalStateException("unused"), "fail", "--nope");
        assertEquals(2, run.exitCode());
        assertEquals(1, run.errLines().length, run.err());
        assertTrue(run.err().contains("'peft4j fail --help'"), run.err());
    }

    @Test
    void peft4jExceptionIsOneLineWithExitCodeTwo() {
        CliRun run = runFailing(Peft4jException.notFound("model.onnx does not exist"), "fail");
        assertAll(
                () -> assertEquals(2, run.exitCode()),
                () -> assertEquals("peft4j: error: model.onnx does not exist", run.err().strip()),
                () -> assertEquals("", run.out()));
    }

    @Test
    void peft4jExceptionIsFoundAmongTheCauses() {
        RuntimeException wrapped = new IllegalStateException("worker failed",
                Peft4jException.shape("lora_A of fc has shape [4, 10], expected [4, 12]"));
        CliRun run = runFailing(wrapped, "fail");
        assertEquals(2, run.exitCode());
        assertEquals("peft4j: error: lora_A of fc has shape [4, 10], expected [4, 12]", run.err().strip());
    }

    @Test
    void multiLineMessagesAreReportedOnOneLine() {
        CliRun run = runFailing(Peft4jException.invalid("two problems:\n  rank is 0\n  alpha is -1"), "fail");
        assertEquals(2, run.exitCode());
        assertEquals("peft4j: error: two problems:; rank is 0; alpha is -1", run.err().strip());
    }

    @Test
    void unexpectedExceptionIsOneLineWithExitCodeOneAndAHint() {
        RuntimeException bug = new UncheckedIOException(new NoSuchFileException("/nowhere"));
        CliRun run = runFailing(bug, "fail");
        assertAll(
                () -> assertEquals(1, run.exitCode()),
                () -> assertEquals(1, run.errLines().length, run.err()),
                () -> assertTrue(run.err().startsWith("peft4j: error: java.io.UncheckedIOException: "), run.err()),
                () -> assertTrue(run.err().contains("run with --stacktrace for details"), run.err()));
    }

    @Test
    void stacktraceOptionPrintsTheTraceBeforeOrAfterTheSubcommand() {
        for (String[] args : new String[][] {{"--stacktrace", "fail"}, {"fail", "--stacktrace"}}) {
            CliRun run = runFailing(new IllegalArgumentException("boom"), args);
            assertEquals(1, run.exitCode(), String.join(" ", args));
            assertTrue(run.errLines().length > 2, run.err());
            assertTrue(run.err().startsWith("peft4j: error: java.lang.IllegalArgumentException: boom"), run.err());
            assertTrue(run.err().contains("\tat "), "a stack trace: " + run.err());
            assertFalse(run.err().contains("run with --stacktrace"), run.err());
        }
    }

    @Test
    void stacktraceOptionAlsoTracesPeft4jExceptions() {
        CliRun run = runFailing(Peft4jException.invalid("rank must be positive"), "--stacktrace", "fail");
        assertEquals(2, run.exitCode());
        assertTrue(run.err().startsWith("peft4j: error: rank must be positive"), run.err());
        assertTrue(run.err().contains("\tat "), run.err());
    }
}
