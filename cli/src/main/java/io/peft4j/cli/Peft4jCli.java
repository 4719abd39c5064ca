package io.peft4j.cli;

import java.util.concurrent.Callable;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.HelpCommand;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;
import picocli.CommandLine.Spec;

/**
 * The {@code peft4j} command. Subcommands are registered in one place, the {@code subcommands}
 * list of the annotation below; each one lives in its own class in this package.
 *
 * <p>Exit codes: 0 on success, 2 for usage errors and for failures the toolkit reports as a
 * {@link io.peft4j.core.Peft4jException} (bad input, missing files, unsupported models), 1 for
 * anything unexpected. See {@link ErrorReporting}.
 */
@Command(
        name = "peft4j",
        mixinStandardHelpOptions = true,
        versionProvider = VersionProvider.class,
        description = "Parameter-efficient fine-tuning for ONNX models, from training to edge devices.",
        subcommands = {
            HelpCommand.class,
            InspectCommand.class,
            TrainCommand.class,
            ExportCommand.class,
            PredictCommand.class,
            QuickstartCommand.class,
            SynthCommand.class,
            ServeCommand.class,
            DevicesCommand.class,
            DocsCommand.class,
        },
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {
            "0:success",
            "1:unexpected failure (run with --stacktrace for details)",
            "2:usage error, or invalid input reported by peft4j",
        },
        footer = {
            "",
            "Run 'peft4j help <command>' for the options of a command.",
            "The README.md at the root of the peft4j source tree has the quickstart and the full documentation.",
        })
public final class Peft4jCli implements Callable<Integer> {

    /** The name of the global option that makes errors print their full stack trace. */
    static final String STACKTRACE_OPTION = "--stacktrace";

    @Spec
    private CommandSpec spec;

    @Option(
            names = STACKTRACE_OPTION,
            scope = ScopeType.INHERIT,
            description = "Print the full stack trace when a command fails.")
    private boolean stacktrace;

    /** Without a subcommand there is nothing to do: show what there is, as a usage error. */
    @Override
    public Integer call() {
        CommandLine commandLine = spec.commandLine();
        commandLine.usage(commandLine.getErr());
        return commandLine.getCommandSpec().exitCodeOnInvalidInput();
    }

    /**
     * A fully configured command line: the command, its subcommands and the error handlers.
     * Tests call this and redirect output with {@code setOut} and {@code setErr}.
     */
    public static CommandLine newCommandLine() {
        CommandLine commandLine = new CommandLine(new Peft4jCli());
        commandLine.setUsageHelpWidth(110);
        commandLine.setParameterExceptionHandler(ErrorReporting::handleUsageError);
        commandLine.setExecutionExceptionHandler(ErrorReporting::handleFailure);
        return commandLine;
    }

    public static void main(String[] args) {
        int exitCode = newCommandLine().execute(args);
        System.exit(exitCode);
    }
}
