package io.peft4j.cli;

import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.util.AtomicFiles;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code peft4j docs --cli-reference [--out FILE]}: writes the command-line reference that
 * {@link CliReference} generates from the command definitions. Hidden from {@code --help}: it is a
 * tool for the people who change the commands, who regenerate {@code docs/CLI.md} with it.
 */
@Command(name = "docs",
        hidden = true,
        header = "Write generated documentation (the command-line reference).",
        description = {
            "Write the Markdown reference of every peft4j command, generated from the command definitions",
            "(synopsis, description, options and parameters with their defaults), to standard output or --out.",
            "Regenerate the committed reference with: " + CliReference.REGENERATE},
        mixinStandardHelpOptions = true)
public final class DocsCommand implements Callable<Integer> {

    @Spec
    private CommandSpec spec;

    @Option(names = "--cli-reference", required = true, description = "Write the command-line reference (docs/CLI.md).")
    private boolean cliReference;

    @Option(names = "--out", paramLabel = "FILE", description = "Write to FILE, replacing it atomically (default: standard output).")
    private Path out;

    @Override
    public Integer call() {
        String reference = CliReference.generate();
        if (out == null) {
            PrintWriter o = spec.commandLine().getOut();
            o.print(reference);
            o.flush();
            return 0;
        }
        Path dir = out.toAbsolutePath().getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw Peft4jException.notFound("cannot write " + out + ": the directory " + dir + " does not exist");
        }
        if (Files.isDirectory(out)) {
            throw Peft4jException.invalid("--out " + out + " is a directory; give the file to write, e.g. docs/CLI.md");
        }
        AtomicFiles.write(out, stream -> stream.write(reference.getBytes(StandardCharsets.UTF_8)));
        spec.commandLine().getOut().printf("wrote %s%n", out);
        spec.commandLine().getOut().flush();
        return 0;
    }
}
