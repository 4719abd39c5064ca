package io.peft4j.runtime;

/** The toolkit's version as the jar's manifest states it ({@code dev} in a source build). */
final class Versions {

    private Versions() {
    }

    static String peft4j() {
        String v = Versions.class.getPackage().getImplementationVersion();
        return v == null ? "dev" : v;
    }
}
