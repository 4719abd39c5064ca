package io.peft4j.trainer.autodiff;

import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Every rule of the table against central finite differences, on ONNX Runtime. */
class GradientRulesTest {

    @TestFactory
    Stream<DynamicTest> everyRuleAgreesWithFiniteDifferences() {
        return GradCases.all().stream().map(c -> DynamicTest.dynamicTest(c.toString(), () -> GradCheck.check(c)));
    }

    @Test
    void everyRegisteredRuleHasCheckerCases() {
        Set<String> covered = GradCases.all().stream().map(c -> c.op).collect(Collectors.toSet());
        Set<String> missing = new TreeSet<>();
        for (GradientRules.Entry e : GradientRules.standard().entries()) {
            if (e.kind() == GradientRules.Kind.RULE && !covered.contains(e.opType())) {
                missing.add(e.opType());
            }
        }
        assertEquals(Set.of(), missing, "rules without gradient-checker cases");
    }
}
