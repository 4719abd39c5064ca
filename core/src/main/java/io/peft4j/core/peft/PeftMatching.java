package io.peft4j.core.peft;

import io.peft4j.core.adapter.AdapterConfig;

import java.util.Collection;
import java.util.List;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * How Hugging Face PEFT matches config entries against module paths.
 *
 * <ul>
 *   <li>{@code target_modules} (and {@code modules_to_save}): a string is a regex that must match
 *       the whole path; a list entry matches the path itself or its tail after a '.'
 *       ({@code "query"} matches {@code encoder.layer.0.attention.self.query}).</li>
 *   <li>{@code rank_pattern} / {@code alpha_pattern}: the first key {@code k}, in the config's order,
 *       for which the regex {@code (.*\.)?(k)$} matches the path (PEFT's {@code get_pattern_key}).</li>
 *   <li>IA3 {@code feedforward_modules}: an entry matches when the path ends with it (no dot needed,
 *       as PEFT's {@code key.endswith(target_key)}).</li>
 * </ul>
 */
public final class PeftMatching {

    private PeftMatching() {
    }

    /** Whether {@code config.target_modules} selects the module. */
    public static boolean isTarget(AdapterConfig config, String module) {
        if (config.targetRegex() != null) {
            return Pattern.compile(config.targetRegex()).matcher(module).matches();
        }
        return matchesName(config.targetModules(), module);
    }

    /** A list of names matches a path equal to one, or ending with '.' + one. */
    public static boolean matchesName(Collection<String> names, String module) {
        for (String n : names) {
            if (module.equals(n) || module.endsWith("." + n)) {
                return true;
            }
        }
        return false;
    }

    /** Whether {@code modules_to_save} names the module. */
    public static boolean isSaved(AdapterConfig config, String module) {
        return matchesName(config.modulesToSave(), module);
    }

    /** The first pattern key that matches the module, as PEFT's {@code get_pattern_key}. */
    public static Optional<String> patternKey(Collection<String> keys, String module) {
        for (String k : keys) {
            if (Pattern.compile("(.*\\.)?(" + k + ")").matcher(module).matches()) {
                return Optional.of(k);
            }
        }
        return Optional.empty();
    }

    /** LoRA rank of a module: {@code rank_pattern}'s entry for it, else {@code r}. */
    public static int rank(AdapterConfig config, String module) {
        return patternKey(config.rankPattern().keySet(), module).map(k -> config.rankPattern().get(k)).orElse(config.r());
    }

    /** LoRA alpha of a module: {@code alpha_pattern}'s entry for it, else {@code lora_alpha}. */
    public static double alpha(AdapterConfig config, String module) {
        return patternKey(config.alphaPattern().keySet(), module).map(k -> config.alphaPattern().get(k))
                .orElse(config.loraAlpha());
    }

    /** LoRA scale {@code s} of a module ({@code alpha / r}, or {@code alpha / √r} with rsLoRA). */
    public static double loraScale(AdapterConfig config, String module) {
        return config.scale(rank(config, module), alpha(config, module));
    }

    /** Whether IA3 scales the module's input rather than its output. */
    public static boolean isFeedforward(AdapterConfig config, String module) {
        List<String> ff = config.feedforwardModules();
        for (String f : ff) {
            if (module.endsWith(f)) {
                return true;
            }
        }
        return false;
    }
}
