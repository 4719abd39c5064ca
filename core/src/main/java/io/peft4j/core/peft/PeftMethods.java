package io.peft4j.core.peft;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.peft.ia3.Ia3Method;
import io.peft4j.core.peft.lora.LoraMethod;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The registry of PEFT methods by {@code peft_type}; each is registered once. */
public final class PeftMethods {

    private static final Map<String, PeftMethod> METHODS = new LinkedHashMap<>();

    static {
        register(new LoraMethod());
        register(new Ia3Method());
    }

    private PeftMethods() {
    }

    /** Registers a method; a second method for the same {@code peft_type} is refused. */
    public static synchronized void register(PeftMethod method) {
        PeftMethod had = METHODS.putIfAbsent(method.peftType(), method);
        if (had != null) {
            throw Peft4jException.invalid("a PEFT method for peft_type '" + method.peftType() + "' is already registered ("
                    + had.getClass().getName() + ")");
        }
    }

    /** The method for {@code peftType}; refused with the known ones named when there is none. */
    public static synchronized PeftMethod get(String peftType) {
        PeftMethod m = METHODS.get(peftType);
        if (m == null) {
            throw Peft4jException.unsupported("peft4j has no implementation of peft_type '" + peftType + "' (it implements "
                    + String.join(", ", METHODS.keySet()) + ")");
        }
        return m;
    }

    public static synchronized List<PeftMethod> all() {
        return new ArrayList<>(METHODS.values());
    }
}
