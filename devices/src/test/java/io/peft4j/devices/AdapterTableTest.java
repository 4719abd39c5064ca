package io.peft4j.devices;

import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The adapter table both backends keep: versions, registration order, replacement, removal, closing. */
class AdapterTableTest {

    record A(String name, long version) {
        AdapterInfo info() {
            return new AdapterInfo(name, "LORA", 2, version == 1 && name.startsWith("p") ? AdapterInfo.PACKAGE
                    : AdapterInfo.REGISTERED, version, null);
        }
    }

    @Test
    void versionsOrderReplacementRemovalAndClose() {
        AdapterTable<A> t = new AdapterTable<>(A::info);
        Map<String, A> packaged = new LinkedHashMap<>();
        packaged.put("p1", new A("p1", 1));
        packaged.put("p2", new A("p2", 1));
        t.load(packaged);
        AdapterTable.Swap<A> first = t.put("x", v -> new A("x", v));
        assertEquals(1, first.added().version());
        assertNull(first.replaced());
        AdapterTable.Swap<A> again = t.put("x", v -> new A("x", v));
        assertEquals(2, again.added().version());
        assertSame(first.added(), again.replaced());
        AdapterTable.Swap<A> p1 = t.put("p1", v -> new A("p1", v));
        assertEquals(2, p1.added().version(), "a package adapter registered again is version 2");
        assertEquals(List.of("p1", "p2", "x"), t.list().stream().map(AdapterInfo::name).toList());
        Map<String, A> before = t.current();
        assertSame(again.added(), t.remove("x"));
        assertNull(t.remove("x"));
        assertTrue(before.containsKey("x"), "a snapshot taken earlier keeps what it saw");
        assertEquals(List.of("p1", "p2"), t.list().stream().map(AdapterInfo::name).toList());
        assertEquals(3, t.put("x", v -> new A("x", v)).added().version(), "versions keep counting after a removal");
        Map<String, A> held = t.close();
        assertEquals(3, held.size());
        assertTrue(t.current().isEmpty());
        assertNull(t.put("y", v -> { throw new AssertionError("nothing is made once closed"); }));
        assertTrue(t.close().isEmpty());
    }
}
