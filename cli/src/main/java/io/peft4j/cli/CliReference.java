package io.peft4j.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import picocli.CommandLine;
import picocli.CommandLine.Help;
import picocli.CommandLine.Help.Ansi;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Model.PositionalParamSpec;

/**
 * Writes the command-line reference ({@code docs/CLI.md}) from picocli's model of the
 * {@code peft4j} command: one section per visible command and subcommand, depth first in the
 * order they are registered, each with its synopsis, header, description, options and positional
 * parameters (description, default value, whether required) and exit codes.
 *
 * <p>The output depends only on the command definitions: no ANSI colours, no terminal width, and
 * defaults are those written in the annotations ({@code defaultValue}), never initial field values
 * that could be computed from the machine. Hidden commands and options are left out, as they are
 * from {@code --help}. {@code CliReferenceTest} regenerates the reference and compares it with the
 * committed file, so the two cannot drift apart.
 */
public final class CliReference {

    /** The command that regenerates the committed reference, quoted in the file and in test failures. */
    public static final String REGENERATE = "./peft4j docs --cli-reference --out docs/CLI.md";

    private CliReference() {
    }

    /** The reference of the fully configured {@code peft4j} command line, as Markdown. */
    public static String generate() {
        return generate(Peft4jCli.newCommandLine());
    }

    /** The reference of {@code root} and its visible subcommands, as Markdown ({@code \n} line ends). */
    public static String generate(CommandLine root) {
        List<CommandLine> commands = new ArrayList<>();
        collect(root, commands);
        StringBuilder md = new StringBuilder();
        String rootName = root.getCommandSpec().qualifiedName();
        md.append("# ").append(rootName).append(" command-line reference\n\n");
        md.append("Generated from the picocli definitions in `cli/src/main/java/io/peft4j/cli/` with `")
                .append(REGENERATE).append("`.\n");
        md.append("Do not edit by hand: `CliReferenceTest` fails when this file and the code disagree.\n\n");
        md.append("Errors print one line on standard error (`").append(rootName)
                .append(": error: ...`); usage errors and invalid input exit with code 2, anything unexpected with 1.\n");
        md.append("In the option tables, _default_ is the value used when the option is not given; `—` means none is\n")
                .append("filled in, and the description says what happens then (often computed, e.g. from the model or the CPU).\n\n");
        md.append("| command | what it does |\n|---|---|\n");
        for (CommandLine c : commands) {
            CommandSpec spec = c.getCommandSpec();
            md.append("| [`").append(spec.qualifiedName()).append("`](#").append(anchor(spec.qualifiedName())).append(") | ")
                    .append(cell(summary(spec))).append(" |\n");
        }
        for (CommandLine c : commands) {
            md.append('\n');
            section(c.getCommandSpec(), md);
        }
        return md.toString();
    }

    /**
     * Where an option or positional parameter of a visible command has no description: one line
     * per such argument, {@code "<command>: <argument>"}; empty when every one is described.
     */
    public static List<String> undocumented(CommandLine root) {
        List<CommandLine> commands = new ArrayList<>();
        collect(root, commands);
        List<String> missing = new ArrayList<>();
        for (CommandLine c : commands) {
            CommandSpec spec = c.getCommandSpec();
            for (ArgSpec arg : spec.args()) {
                if (arg.hidden()) {
                    continue;
                }
                String text = String.join(" ", arg.description()).strip();
                if (text.isEmpty()) {
                    missing.add(spec.qualifiedName() + ": " + argName(arg));
                }
            }
        }
        return missing;
    }

    private static void collect(CommandLine c, List<CommandLine> out) {
        if (c.getCommandSpec().usageMessage().hidden()) {
            return;
        }
        out.add(c);
        // An alias maps to the same CommandLine again: visit each subcommand once.
        c.getSubcommands().values().stream().distinct().forEach(sub -> collect(sub, out));
    }

    private static void section(CommandSpec spec, StringBuilder md) {
        String name = spec.qualifiedName();
        md.append("## ").append(name).append("\n\n");
        String header = String.join(" ", spec.usageMessage().header()).strip();
        if (!header.isEmpty()) {
            md.append(text(header)).append("\n\n");
        }
        Help help = new Help(spec, Help.defaultColorScheme(Ansi.OFF));
        md.append("```text\n").append(stripTrailing(help.synopsis(0))).append("\n```\n\n");
        String description = help.description();
        if (!description.isBlank()) {
            md.append("```text\n").append(stripTrailing(description)).append("\n```\n\n");
        }

        List<OptionSpec> options = spec.options().stream()
                .filter(o -> !o.hidden() && !o.inherited())
                .collect(Collectors.toList());
        if (!options.isEmpty()) {
            md.append("| option | description | default |\n|---|---|---|\n");
            for (OptionSpec o : options) {
                md.append("| ").append(code(optionLabel(o))).append(" | ").append(cell(argDescription(o)))
                        .append(" | ").append(cell(defaultOf(o))).append(" |\n");
            }
            md.append('\n');
        }
        List<String> inherited = spec.options().stream()
                .filter(o -> !o.hidden() && o.inherited())
                .map(o -> "`" + o.longestName() + "`")
                .collect(Collectors.toList());
        if (!inherited.isEmpty()) {
            md.append("Also takes the global ").append(String.join(", ", inherited)).append(" of `")
                    .append(spec.root().qualifiedName()).append("`.\n\n");
        }

        List<PositionalParamSpec> positionals = spec.positionalParameters().stream()
                .filter(p -> !p.hidden())
                .collect(Collectors.toList());
        if (!positionals.isEmpty()) {
            md.append("| parameter | description | default |\n|---|---|---|\n");
            for (PositionalParamSpec p : positionals) {
                md.append("| ").append(code(positionalLabel(p))).append(" | ").append(cell(argDescription(p)))
                        .append(" | ").append(cell(defaultOf(p))).append(" |\n");
            }
            md.append('\n');
        }

        Map<String, String> exitCodes = spec.usageMessage().exitCodeList();
        if (!exitCodes.isEmpty()) {
            md.append("| exit code | meaning |\n|---|---|\n");
            exitCodes.forEach((code, meaning) -> md.append("| ").append(cell(code.strip())).append(" | ")
                    .append(cell(meaning.strip())).append(" |\n"));
            md.append('\n');
        }

        List<String> subcommands = spec.subcommands().values().stream().distinct()
                .map(CommandLine::getCommandSpec)
                .filter(s -> !s.usageMessage().hidden())
                .map(s -> "[`" + s.name() + "`](#" + anchor(s.qualifiedName()) + ")")
                .collect(Collectors.toList());
        if (!subcommands.isEmpty()) {
            md.append("Subcommands: ").append(String.join(", ", subcommands)).append(".\n\n");
        }
        // One blank line between sections, none at the end of the file.
        md.setLength(md.length() - 1);
    }

    /** The header, else the first line of the description. */
    private static String summary(CommandSpec spec) {
        String header = String.join(" ", spec.usageMessage().header()).strip();
        if (!header.isEmpty()) {
            return header;
        }
        String[] description = spec.usageMessage().description();
        return description.length == 0 ? "" : description[0].strip();
    }

    private static String optionLabel(OptionSpec o) {
        String names = String.join(", ", o.names());
        if (o.arity().max() == 0) {
            return names;
        }
        String label = o.paramLabel();
        if (o.splitRegex() != null && !o.splitRegex().isEmpty() && !label.contains(o.splitRegexSynopsisLabel())) {
            label = label + "[" + o.splitRegexSynopsisLabel() + label + "...]";
        }
        return names + "=" + label + (o.isMultiValue() ? " ..." : "");
    }

    private static String positionalLabel(PositionalParamSpec p) {
        return p.paramLabel() + (p.arity().max() > 1 ? " ..." : "");
    }

    private static String argDescription(ArgSpec arg) {
        return String.join(" ", arg.renderedDescription()).strip();
    }

    private static String defaultOf(ArgSpec arg) {
        if (arg.required()) {
            return "required";
        }
        String value = arg.defaultValue();
        if (value == null || value.equals(CommandLine.Option.NULL_VALUE)) {
            return arg.isOption() && ((OptionSpec) arg).arity().max() == 0 ? "off" : "—";
        }
        return "`" + value + "`";
    }

    private static String argName(ArgSpec arg) {
        return arg.isOption() ? ((OptionSpec) arg).longestName() : arg.paramLabel();
    }

    /** GitHub's heading anchor: lower case, spaces to hyphens, punctuation other than - and _ dropped. */
    static String anchor(String heading) {
        StringBuilder a = new StringBuilder();
        for (char ch : heading.toLowerCase(java.util.Locale.ROOT).toCharArray()) {
            if (ch == ' ') {
                a.append('-');
            } else if (Character.isLetterOrDigit(ch) || ch == '-' || ch == '_') {
                a.append(ch);
            }
        }
        return a.toString();
    }

    /**
     * Running text: the characters that would start emphasis, code, HTML or a table cell escaped, so
     * that help text shows as written (underscores inside words and brackets are inert on GitHub).
     */
    private static String text(String s) {
        StringBuilder out = new StringBuilder(s.length() + 16);
        for (char ch : s.toCharArray()) {
            switch (ch) {
                case '\\', '*', '`', '<', '>', '|' -> out.append('\\').append(ch);
                default -> out.append(ch);
            }
        }
        return out.toString();
    }

    /**
     * A table cell: one line, pipes escaped (GitHub needs that inside code spans too), and outside
     * code spans the other active characters escaped as in running text.
     */
    private static String cell(String s) {
        String oneLine = s.replaceAll("\\s*\\R\\s*", " ");
        StringBuilder out = new StringBuilder();
        boolean code = false;
        for (char ch : oneLine.toCharArray()) {
            if (ch == '`') {
                code = !code;
                out.append(ch);
            } else if (ch == '|') {
                out.append("\\|");
            } else if (code) {
                out.append(ch);
            } else {
                out.append(text(String.valueOf(ch)));
            }
        }
        return out.toString();
    }

    /** A code span in a table cell: shown as written, only pipes escaped. */
    private static String code(String s) {
        return "`" + s.replace("|", "\\|") + "`";
    }

    private static String stripTrailing(String block) {
        return block.lines().map(String::stripTrailing).collect(Collectors.joining("\n")).strip();
    }
}
