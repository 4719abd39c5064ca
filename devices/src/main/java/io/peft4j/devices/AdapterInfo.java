package io.peft4j.devices;

/**
 * An adapter a backend serves.
 *
 * @param name     the name a run selects it by
 * @param peftType PEFT's method name ({@code LORA}, {@code IA3})
 * @param rank     its LoRA rank (0 for methods without one)
 * @param origin   where it came from: {@code package} (exported with the package) or
 *                 {@code registered} (added at run time)
 * @param version  increases by one each time the name is registered again; runs report the
 *                 version they used
 * @param id       the adapter's content identity ({@code <peft_type>:sha256:<hex>}), or null where
 *                 unknown
 */
public record AdapterInfo(String name, String peftType, int rank, String origin, long version, String id) {

    public static final String PACKAGE = "package";
    public static final String REGISTERED = "registered";
}
