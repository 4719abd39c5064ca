package io.peft4j.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Properties;

import picocli.CommandLine.IVersionProvider;

/**
 * What {@code peft4j --version} prints: the peft4j version, the ONNX Runtime it was built with,
 * the Java runtime, and the operating system and architecture. The versions come from
 * {@code version.properties}, which Maven fills in when it builds this module, with the jar
 * manifest's implementation version as a fallback.
 */
public final class VersionProvider implements IVersionProvider {

    static final String RESOURCE = "version.properties";

    @Override
    public String[] getVersion() {
        Properties build = buildProperties();
        return new String[] {
            "peft4j " + peft4jVersion(build),
            "ONNX Runtime " + filledOr(build.getProperty("onnxruntime.version"), "unknown") + " (Java binding, bundled)",
            "Java " + System.getProperty("java.version")
                    + " (" + System.getProperty("java.vm.vendor") + " " + System.getProperty("java.vm.name")
                    + ", " + System.getProperty("java.home") + ")",
            "OS " + System.getProperty("os.name") + " " + System.getProperty("os.version")
                    + " (" + System.getProperty("os.arch") + ")",
        };
    }

    /** The peft4j version: from the build's properties, else the jar manifest, else "unknown". */
    static String peft4jVersion(Properties build) {
        String version = build.getProperty("peft4j.version");
        if (isFilled(version)) {
            return version;
        }
        return filledOr(VersionProvider.class.getPackage().getImplementationVersion(), "unknown");
    }

    static String peft4jVersion() {
        return peft4jVersion(buildProperties());
    }

    static Properties buildProperties() {
        Properties properties = new Properties();
        try (InputStream in = VersionProvider.class.getResourceAsStream(RESOURCE)) {
            if (in != null) {
                properties.load(in);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + RESOURCE + " from the peft4j jar", e);
        }
        return properties;
    }

    private static String filledOr(String value, String fallback) {
        return isFilled(value) ? value : fallback;
    }

    /** False for a missing value and for a placeholder that resource filtering left unresolved. */
    private static boolean isFilled(String value) {
        return value != null && !value.isBlank() && !value.contains("${");
    }
}
