package io.peft4j.core.adapter;

import io.peft4j.core.Peft4jException;

import java.util.List;

/**
 * A tensor name in a Hugging Face PEFT {@code adapter_model.safetensors}: the module it belongs to
 * and its role, e.g. {@code base_model.model.layer1.0.conv1.lora_A.weight} is module
 * {@code layer1.0.conv1}, role {@code lora_A.weight}. PEFT strips the adapter name ("default")
 * when it saves, and saves {@code modules_to_save} copies under the module's own parameter names
 * ({@code base_model.model.fc.weight}: role {@code weight}). Prompt-learning methods save
 * {@code prompt_embeddings} with no module.
 *
 * @param module the PyTorch module path ({@code ""} for prompt embeddings)
 * @param role   what the tensor is to that module
 */
public record PeftKey(String module, String role) {

    /** Every key of a PEFT-saved model adapter starts with this. */
    public static final String PREFIX = "base_model.model.";

    /** Roles with a dot in them, longest first, so that they are matched before plain suffixes. */
    private static final List<String> ROLES = List.of("lora_magnitude_vector.weight", "lora_A.weight", "lora_B.weight",
            "lora_B.bias", "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector", "ia3_l", "weight", "bias");

    public static PeftKey parse(String key) {
        if (key.equals("prompt_embeddings")) {
            return new PeftKey("", key);
        }
        if (!key.startsWith(PREFIX)) {
            throw Peft4jException.malformed("tensor '" + key + "' is not a PEFT adapter key (expected '" + PREFIX
                    + "<module>.lora_A.weight' and the like)");
        }
        String rest = key.substring(PREFIX.length());
        String module = null;
        String role = null;
        for (String r : ROLES) {
            if (rest.endsWith("." + r) && rest.length() > r.length() + 1) {
                module = rest.substring(0, rest.length() - r.length() - 1);
                role = r.equals("lora_magnitude_vector.weight") ? "lora_magnitude_vector" : r;
                break;
            }
        }
        if (module == null) {
            int dot = rest.lastIndexOf('.');
            if (dot <= 0) {
                throw Peft4jException.malformed("tensor '" + key + "' names no module");
            }
            module = rest.substring(0, dot);
            role = rest.substring(dot + 1);
        }
        // an adapter tensor of a kind not listed above (lora_C.weight) parses as module "fc.lora_C": no
        // layer has that path, so binding it to a graph reports it, together with every other bad key
        return new PeftKey(module, role);
    }

    /** The key PEFT writes for this module and role. */
    public String key() {
        return module.isEmpty() ? role : PREFIX + module + "." + role;
    }

    public static String of(String module, String role) {
        return new PeftKey(module, role).key();
    }
}
