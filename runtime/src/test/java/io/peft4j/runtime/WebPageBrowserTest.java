package io.peft4j.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.pkg.Manifest;
import io.peft4j.core.testkit.TestAdapters;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.exporter.ExportOptions;
import io.peft4j.exporter.Exporter;
import io.peft4j.exporter.NamedAdapter;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The web page at {@code /}, driven in headless Chromium over the DevTools protocol against a real
 * server on loopback: it lists the models and a model's adapters, classifies an uploaded image
 * with the chosen adapter (submitted with the keyboard) and with the base model (with the mouse)
 * and shows exactly the labels and scores {@code /classify} answers directly, shows the latency,
 * shows the server's message for a file that is not an image, and says why a model without image
 * preprocessing cannot classify; the page raises no script error and no security (CSP) complaint.
 * Skipped, with a message, where no Chromium is installed ({@code apt-get install chromium}, or
 * {@code $CHROMIUM}). Leaves a screenshot in {@code target/web-page.png}.
 */
class WebPageBrowserTest {

    private static final List<String> TARGETS = List.of("conv1", "fc1", "fc2");
    private static final List<String> LABELS = List.of("scratch", "dent", "ok");

    @TempDir
    static Path tmp;

    static Peft4jServer server;
    static Http http;
    static Chromium browser;
    static String page;

    @BeforeAll
    static void start() throws Exception {
        Path exe = Chromium.executable();
        if (exe == null) {
            return;   // the test says why it skips
        }
        Path repo = tmp.resolve("repo");
        Model base = TinyModels.cnn(1);
        AdapterBundle a = TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 11, 0.3);
        AdapterBundle b = TestAdapters.random(base, AdapterConfig.lora(2, 4, TARGETS), 12, 0.3);
        List<NamedAdapter> ab = List.of(new NamedAdapter("a", a), new NamedAdapter("b", b));
        Exporter.export(base, ab, ExportOptions.of(Manifest.Mode.side).withLabels(LABELS)
                .withPreprocessing(new Manifest.Preprocessing("x", 8, 8, 1, List.of(0.5), List.of(0.25))), repo.resolve("cls"));
        Exporter.export(base, ab, ExportOptions.of(Manifest.Mode.multi), repo.resolve("mm"));
        server = Peft4jServer.start(Peft4jServer.Options.of(repo));
        http = new Http(server.uri(), null);
        browser = Chromium.launch(exe, Files.createDirectories(tmp.resolve("chromium-profile")));
        page = browser.newPage();
        for (String domain : List.of("Page", "Runtime", "Log", "DOM")) {
            browser.send(page, domain + ".enable", Map.of());
        }
    }

    @AfterAll
    static void stop() {
        if (browser != null) {
            browser.close();
        }
        if (server != null) {
            server.close();
        }
    }

    /** Evaluates {@code js} in the page (awaiting a promise) and returns its value as JSON. */
    private static JsonNode eval(String js) {
        JsonNode r = browser.send(page, "Runtime.evaluate", Map.of("expression", js, "returnByValue", true, "awaitPromise", true));
        if (r.has("exceptionDetails")) {
            throw new IllegalStateException("the page threw on " + js + ": " + r.get("exceptionDetails"));
        }
        return r.get("result").path("value");
    }

    /** Waits until {@code js} is true in the page. */
    private static void waitFor(String js, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (System.nanoTime() < deadline) {
            if (eval("Boolean(" + js + ")").asBoolean()) {
                return;
            }
            Thread.sleep(50);
        }
        throw new AssertionError("timed out waiting for " + what + "; the page shows: " + eval("document.body.innerText").asText()
                + "\nscript errors: " + browser.events("Runtime.exceptionThrown") + "\nchromium: " + browser.stderrTail());
    }

    private static void select(String id, String value) {
        eval("(() => { const s = document.getElementById('" + id + "'); s.value = '" + value + "'; "
                + "s.dispatchEvent(new Event('change', { bubbles: true })); return s.value; })()");
    }

    /** Puts {@code file} into the page's file input, as a user choosing it would. */
    private static void chooseFile(Path file) {
        int root = browser.send(page, "DOM.getDocument", Map.of("depth", 0)).get("root").get("nodeId").asInt();
        int input = browser.send(page, "DOM.querySelector", Map.of("nodeId", root, "selector", "#image")).get("nodeId").asInt();
        browser.send(page, "DOM.setFileInputFiles", Map.of("nodeId", input, "files", List.of(file.toAbsolutePath().toString())));
    }

    private static int runs() {
        return Integer.parseInt(eval("document.getElementById('result').dataset.runs || '0'").asText());
    }

    /** Presses Enter on the focused classify button (keyboard use). */
    private static void pressEnterOnClassify() {
        eval("document.getElementById('classify').focus()");
        for (String type : List.of("keyDown", "keyUp")) {
            browser.send(page, "Input.dispatchKeyEvent", Map.of("type", type, "key", "Enter", "code", "Enter",
                    "windowsVirtualKeyCode", 13, "nativeVirtualKeyCode", 13, "text", "\r"));
        }
    }

    /** Clicks the classify button with the mouse, at its centre. */
    private static void clickClassify() {
        JsonNode box = eval("(() => { const b = document.getElementById('classify'); b.scrollIntoView(); "
                + "const r = b.getBoundingClientRect(); return { x: r.x + r.width / 2, y: r.y + r.height / 2 }; })()");
        for (String type : List.of("mousePressed", "mouseReleased")) {
            browser.send(page, "Input.dispatchMouseEvent", Map.of("type", type, "x", box.get("x").asDouble(), "y",
                    box.get("y").asDouble(), "button", "left", "clickCount", 1));
        }
    }

    private static void classifyAndWait(Runnable submit) throws InterruptedException {
        int before = runs();
        submit.run();
        waitFor("Number(document.getElementById('result').dataset.runs || 0) > " + before, "the classification to finish");
    }

    /** The labels and scores the page shows, in order. */
    private static List<String[]> shownLabels() {
        JsonNode rows = eval("[...document.querySelectorAll('#labels tbody tr')].map(r => [r.dataset.label, r.dataset.score])");
        List<String[]> out = new ArrayList<>();
        rows.forEach(r -> out.add(new String[] {r.get(0).asText(), r.get(1).asText()}));
        return out;
    }

    private static void assertSameAsDirect(Http.Reply direct, List<String[]> shown) {
        assertEquals(200, direct.status(), direct.toString());
        JsonNode labels = direct.json().get("labels");
        assertEquals(labels.size(), shown.size(), "rows shown: " + shown.size() + " for " + direct);
        for (int i = 0; i < shown.size(); i++) {
            assertEquals(labels.get(i).get("label").asText(), shown.get(i)[0], "label " + i);
            assertEquals(labels.get(i).get("score").asDouble(), Double.parseDouble(shown.get(i)[1]), 1e-12, "score " + i);
        }
    }

    private static byte[] image(int seed, String format, int type) throws IOException {
        BufferedImage img = new BufferedImage(16, 16, type);
        for (int i = 0; i < 16; i++) {
            for (int j = 0; j < 16; j++) {
                int g = (i * 16 + j * seed) % 256;
                img.setRGB(i, j, (g << 16) | (((g * 3) % 256) << 8) | ((g * 7) % 256));
            }
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        assertTrue(ImageIO.write(img, format, out), format);
        return out.toByteArray();
    }

    @Test
    void thePageClassifiesWithTheChosenAdapterAndShowsErrors() throws Exception {
        Assumptions.assumeTrue(browser != null, "no browser: " + (System.getenv("CHROMIUM") != null ? "$CHROMIUM ("
                + System.getenv("CHROMIUM") + ")" : "/usr/bin/chromium") + " is not installed; apt-get install chromium "
                + "(or set $CHROMIUM) to drive the web page in a browser");
        browser.send(page, "Emulation.setDeviceMetricsOverride", Map.of("width", 1024, "height", 700, "deviceScaleFactor", 1,
                "mobile", false));
        browser.send(page, "Page.navigate", Map.of("url", server.uri().resolve("/").toString()));
        waitFor("document.getElementById('form') && document.getElementById('form').dataset.model === 'cls'",
                "the page to list the models and read model cls");
        assertEquals("[\"cls\",\"mm\"]", eval("[...document.getElementById('model').options].map(o => o.value)").toString());
        assertEquals("[\"\",\"a\",\"b\"]", eval("[...document.getElementById('adapter').options].map(o => o.value)").toString());
        assertTrue(eval("document.getElementById('model-note').textContent").asText().contains("8×8"));

        // adapter b, a PNG, submitted with the keyboard
        byte[] png = image(7, "png", BufferedImage.TYPE_BYTE_GRAY);
        Path pngFile = Files.write(tmp.resolve("part.png"), png);
        select("adapter", "b");
        eval("document.getElementById('top').value = '3'");
        chooseFile(pngFile);
        waitFor("!document.getElementById('preview').hidden", "the preview of the chosen image");
        classifyAndWait(WebPageBrowserTest::pressEnterOnClassify);
        assertEquals("done", eval("document.getElementById('result').dataset.state").asText(),
                eval("document.getElementById('error').textContent").asText());
        List<String[]> withB = shownLabels();
        assertSameAsDirect(http.postBytes("/v2/models/cls/classify?adapter=b&top=3", png, "image/png"), withB);
        assertTrue(eval("document.getElementById('labels-caption').textContent").asText().contains("adapter b (version 1)"));
        double clientMs = Double.parseDouble(eval("document.getElementById('latency').dataset.clientMs").asText());
        double serverMs = Double.parseDouble(eval("document.getElementById('latency').dataset.serverMs").asText());
        assertTrue(serverMs > 0 && clientMs >= serverMs, "client " + clientMs + " ms, server " + serverMs + " ms");
        assertTrue(eval("document.getElementById('latency').textContent").asText().contains("ms on the server"));
        screenshot(Path.of("target", "web-page.png"));

        // the base model, same image, clicked with the mouse: the direct answer, and not adapter b's
        select("adapter", "");
        classifyAndWait(WebPageBrowserTest::clickClassify);
        List<String[]> withBase = shownLabels();
        assertSameAsDirect(http.postBytes("/v2/models/cls/classify?top=3", png, "image/png"), withBase);
        assertNotEquals(withB.get(0)[1], withBase.get(0)[1], "the adapter changes the scores");
        assertTrue(eval("document.getElementById('labels-caption').textContent").asText().contains("the base model"));

        // adapter a, an RGB JPEG (the package takes grayscale: the server converts)
        byte[] jpeg = image(3, "jpg", BufferedImage.TYPE_INT_RGB);
        Path jpegFile = Files.write(tmp.resolve("part.jpg"), jpeg);
        select("adapter", "a");
        chooseFile(jpegFile);
        classifyAndWait(WebPageBrowserTest::clickClassify);
        assertSameAsDirect(http.postBytes("/v2/models/cls/classify?adapter=a&top=3", jpeg, "image/jpeg"), shownLabels());

        // a file that is not an image: the server's message, with its status
        byte[] junk = "this is not an image".getBytes(java.nio.charset.StandardCharsets.UTF_8);
        Path junkFile = Files.write(tmp.resolve("broken.png"), junk);
        chooseFile(junkFile);
        classifyAndWait(WebPageBrowserTest::clickClassify);
        Http.Reply refused = http.postBytes("/v2/models/cls/classify?adapter=a&top=3", junk, "image/png");
        assertEquals(400, refused.status(), refused.toString());
        assertEquals("error", eval("document.getElementById('result').dataset.state").asText());
        assertFalse(eval("document.getElementById('error').hidden").asBoolean());
        String shown = eval("document.getElementById('error').textContent").asText();
        assertTrue(shown.contains("400") && shown.contains(refused.error()), "the page shows: " + shown + "; the server says: "
                + refused.error());
        assertTrue(eval("document.getElementById('labels').hidden").asBoolean(), "no stale labels next to the error");

        // a model without image preprocessing: the page says why it cannot classify
        select("model", "mm");
        waitFor("document.getElementById('form').dataset.model === 'mm'", "the page to read model mm");
        assertTrue(eval("document.getElementById('model-note').textContent").asText().contains("no image preprocessing"));
        assertTrue(eval("document.getElementById('classify').disabled").asBoolean());
        assertEquals("[\"\",\"a\",\"b\"]", eval("[...document.getElementById('adapter').options].map(o => o.value)").toString());

        assertEquals(List.of(), browser.events("Runtime.exceptionThrown"), "script errors");
        List<JsonNode> security = new ArrayList<>();
        browser.events("Log.entryAdded").stream().filter(e -> e.path("params").path("entry").path("source").asText().equals("security"))
                .forEach(security::add);
        assertEquals(List.of(), security, "Content-Security-Policy complaints");
    }

    private static void screenshot(Path file) throws IOException {
        String png = browser.send(page, "Page.captureScreenshot", Map.of("format", "png")).get("data").asText();
        Files.createDirectories(file.toAbsolutePath().getParent());
        Path part = file.resolveSibling(file.getFileName() + ".part");
        Files.write(part, Base64.getDecoder().decode(png));
        Files.move(part, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }
}
