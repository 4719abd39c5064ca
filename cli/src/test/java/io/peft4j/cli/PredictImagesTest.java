package io.peft4j.cli;

import io.peft4j.core.adapter.AdapterBundle;
import io.peft4j.core.adapter.AdapterConfig;
import io.peft4j.core.image.Images;
import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.pkg.ModelPackage;
import io.peft4j.core.tensor.Npy;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.TinyModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code predict IMAGE...} on a package with preprocessing and labels: the top labels per image, softmax scores. */
class PredictImagesTest {

    @TempDir
    Path tmp;

    @Test
    void printsTopLabelsMatchingTheArrayRoute() throws Exception {
        Model m = TinyModels.cnn(4);
        Path base = tmp.resolve("base.onnx");
        OnnxIO.write(m, base);
        AdapterBundle a = AdapterBundle.read(writeAdapter(m, tmp.resolve("line-a")));
        assertEquals("LORA", a.config().peftType());
        Files.writeString(tmp.resolve("labels.txt"), "crazing\ninclusion\npatches\n");
        Path pkg = tmp.resolve("pkg");
        CliRun e = CliRun.of("export", "--base", base.toString(), "--adapter", tmp.resolve("line-a").toString(), "--mode", "side",
                "--out", pkg.toString(), "--labels", tmp.resolve("labels.txt").toString(), "--image-size", "8", "--channels", "1",
                "--mean", "0.5", "--std", "0.25");
        assertEquals(0, e.exitCode(), e.err());
        assertEquals(List.of("crazing", "inclusion", "patches"), ModelPackage.open(pkg).manifest().labels());

        List<Path> images = new ArrayList<>();
        Random r = new Random(3);
        for (int i = 0; i < 2; i++) {
            BufferedImage img = new BufferedImage(16, 16, BufferedImage.TYPE_BYTE_GRAY);
            for (int y = 0; y < 16; y++) {
                for (int x = 0; x < 16; x++) {
                    int v = r.nextInt(256);
                    img.getRaster().setSample(x, y, 0, v);
                }
            }
            Path f = tmp.resolve("img" + i + ".png");
            ImageIO.write(img, "png", f.toFile());
            images.add(f);
        }
        CliRun p = CliRun.of("predict", "--model", pkg.toString(), "--adapter", "line-a", "--top", "3",
                images.get(0).toString(), images.get(1).toString());
        assertEquals(0, p.exitCode(), p.err());
        String[] lines = p.out().split("\\R");
        assertEquals(8, lines.length, p.out());

        // the same images through --npy: the printed first label is the arg max
        Tensor x = Images.batch(List.of(Images.read(images.get(0)), Images.read(images.get(1))), 8, 8, 1, new float[] {0.5f},
                new float[] {0.25f});
        Npy.write(tmp.resolve("x.npy"), x);
        CliRun n = CliRun.of("predict", "--model", pkg.toString(), "--adapter", "line-a", "--npy", tmp.resolve("x.npy").toString(),
                "--out", tmp.resolve("y.npy").toString());
        assertEquals(0, n.exitCode(), n.err());
        float[] y = Npy.read(tmp.resolve("y.npy")).toFloatArray();
        String[] labels = {"crazing", "inclusion", "patches"};
        for (int i = 0; i < 2; i++) {
            int best = 0;
            for (int c = 1; c < 3; c++) {
                best = y[i * 3 + c] > y[i * 3 + best] ? c : best;
            }
            double[] prob = PredictCommand.softmax(new float[] {y[i * 3], y[i * 3 + 1], y[i * 3 + 2]});
            String top = lines[i * 4 + 1].strip();
            assertTrue(top.endsWith(labels[best]), p.out());
            assertTrue(top.startsWith(String.format(java.util.Locale.ROOT, "%.4f", prob[best])), p.out());
        }
        CliRun noPre = CliRun.of("predict", "--model", base.toString(), images.get(0).toString());
        assertEquals(2, noPre.exitCode());
        assertTrue(noPre.err().contains("without preprocessing"), noPre.err());
    }

    static Path writeAdapter(Model m, Path dir) {
        AdapterBundle fresh = io.peft4j.core.peft.AdapterBinding.init(m, AdapterConfig.lora(2, 4, List.of("conv1", "fc2")), 1);
        java.util.Map<String, Tensor> t = new java.util.TreeMap<>();
        Random r = new Random(1);
        fresh.tensors().forEach((k, v) -> {
            float[] f = new float[(int) v.numel()];
            for (int i = 0; i < f.length; i++) {
                f[i] = (float) (r.nextGaussian() * 0.3);
            }
            t.put(k, Tensor.ofFloats(v.shape(), f));
        });
        new AdapterBundle(fresh.config(), t).write(dir);
        return dir;
    }
}
