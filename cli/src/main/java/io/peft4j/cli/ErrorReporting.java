package io.peft4j.cli;

import java.io.PrintWriter;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;

import io.peft4j.core.Peft4jException;
import picocli.CommandLine;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ParseResult;
import picocli.CommandLine.UnmatchedArgumentException;

/**
 * How the {@code peft4j} command reports failures: one line on standard error that starts with
 * {@code peft4j: error:}, and an exit code. The full stack trace only with {@code --stacktrace}.
 *
 * <ul>
 *   <li>Usage errors (unknown options, missing parameters): exit code 2, and a hint to run
 *       {@code --help} for the command at fault.
 *   <li>A {@link Peft4jException} (also when it is the cause of another exception): its message,
 *       exit code 2. These are the failures peft4j explains itself.
 *   <li>Anything else is a bug or an environment problem: the exception's type and message, a
 *       hint to rerun with {@code --stacktrace}, exit code 1.
 * </ul>
 */
final class ErrorReporting {

    static final String PREFIX = "peft4j: error: ";

    /** Exit code for a {@link Peft4jException}: the user's input or setup is at fault. */
    static final int EXIT_USER_ERROR = 2;

    /** Exit code for an exception peft4j did not expect. */
    static final int EXIT_UNEXPECTED = 1;

    /** How deep to look through causes for a {@link Peft4jException}. */
    private static final int MAX_CAUSE_DEPTH = 16;

    private ErrorReporting() {}

    /** A {@link CommandLine.IParameterExceptionHandler}: one line, exit code 2. */
    static int handleUsageError(ParameterException ex, String[] args) {
        CommandLine at = ex.getCommandLine();
        PrintWriter err = at.getErr();
        StringBuilder line = new StringBuilder(PREFIX).append(oneLine(ex.getMessage()));
        if (ex instanceof UnmatchedArgumentException unmatched) {
            List<String> suggestions = unmatched.getSuggestions();
            if (!suggestions.isEmpty()) {
                List<String> shown = suggestions.subList(0, Math.min(3, suggestions.size()));
                line.append(" (did you mean ").append(String.join(" or ", shown)).append("?)");
            }
        }
        line.append("; try '").append(at.getCommandSpec().qualifiedName()).append(" --help'");
        err.println(line);
        err.flush();
        return at.getCommandSpec().exitCodeOnInvalidInput();
    }

    /** A {@link CommandLine.IExecutionExceptionHandler} for exceptions thrown by a command. */
    static int handleFailure(Exception ex, CommandLine at, ParseResult parseResult) {
        PrintWriter err = at.getErr();
        boolean trace = stacktraceRequested(parseResult);
        Peft4jException known = findPeft4jException(ex);
        int exitCode;
        if (known != null) {
            String message = known.getMessage();
            if (message == null || message.isBlank()) {
                message = known.code().name().toLowerCase(java.util.Locale.ROOT).replace('_', ' ');
            }
            err.println(PREFIX + oneLine(message));
            exitCode = EXIT_USER_ERROR;
        } else {
            String described = ex.getMessage() == null
                    ? ex.getClass().getName()
                    : ex.getClass().getName() + ": " + oneLine(ex.getMessage());
            err.println(PREFIX + described
                    + (trace ? "" : " (run with " + Peft4jCli.STACKTRACE_OPTION + " for details)"));
            exitCode = EXIT_UNEXPECTED;
        }
        if (trace) {
            ex.printStackTrace(err);
        }
        err.flush();
        return exitCode;
    }

    /** Whether {@code --stacktrace} was given to the command or any of its subcommands. */
    static boolean stacktraceRequested(ParseResult parseResult) {
        for (ParseResult level = parseResult; level != null; level = level.subcommand()) {
            if (level.hasMatchedOption(Peft4jCli.STACKTRACE_OPTION)) {
                return true;
            }
        }
        return false;
    }

    /** The exception itself or its nearest cause that is a {@link Peft4jException}, or null. */
    static Peft4jException findPeft4jException(Throwable ex) {
        Set<Throwable> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        Throwable current = ex;
        for (int depth = 0; current != null && depth < MAX_CAUSE_DEPTH && seen.add(current); depth++) {
            if (current instanceof Peft4jException known) {
                return known;
            }
            current = current.getCause();
        }
        return null;
    }

    /** Keeps a report on one line: line breaks inside a message become "; ". */
    static String oneLine(String message) {
        if (message == null) {
            return "";
        }
        return message.strip().replaceAll("\\s*\\R\\s*", "; ");
    }
}
