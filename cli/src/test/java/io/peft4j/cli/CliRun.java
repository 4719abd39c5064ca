package io.peft4j.cli;

import java.io.PrintWriter;
import java.io.StringWriter;

import picocli.CommandLine;

/** What one run of the command printed, and its exit code. */
record CliRun(int exitCode, String out, String err) {

    String[] errLines() {
        return err.isEmpty() ? new String[0] : err.split("\\R");
    }

    /** Runs the fully configured {@code peft4j} command line with {@code args}. */
    static CliRun of(String... args) {
        return of(Peft4jCli.newCommandLine(), args);
    }

    static CliRun of(CommandLine commandLine, String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        commandLine.setOut(new PrintWriter(out, true));
        commandLine.setErr(new PrintWriter(err, true));
        int exitCode = commandLine.execute(args);
        return new CliRun(exitCode, out.toString(), err.toString());
    }
}
