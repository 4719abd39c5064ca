package io.peft4j.cli;

import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.tensor.Tensor;
import io.peft4j.core.testkit.TinyModels;
import io.peft4j.devices.AdapterSelection;
import io.peft4j.devices.TensorSpec;
import io.peft4j.devices.ort.OrtBackend;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Run in a fresh JVM by {@link DevicesPlanMeasureTest}: the resident memory a model package adds
 * when ONNX Runtime opens it and runs one batch of zeros. ONNX Runtime's library is loaded and a
 * tiny model run first, so that the library itself is not counted. Prints {@code RSS_GROWTH
 * <bytes>} (VmRSS after the run minus before opening) and {@code HWM_GROWTH <bytes>} (the peak).
 * Arguments: PACKAGE BATCH SEQ_LEN.
 */
public final class RssProbe {

    public static void main(String[] args) throws Exception {
        Path pkg = Path.of(args[0]);
        long batch = Long.parseLong(args[1]);
        long seq = Long.parseLong(args[2]);
        Path tiny = Files.createTempFile("rssprobe", ".onnx");
        OnnxIO.write(TinyModels.cnn(1), tiny);
        try (OrtBackend warm = OrtBackend.open(tiny, new OrtBackend.Options(2, 1))) {
            warm.run(Map.of("x", TinyModels.input(1, 2)), (String) null);
        }
        Files.delete(tiny);
        System.gc();
        long rss0 = status("VmRSS");
        long hwm0 = status("VmHWM");
        try (OrtBackend b = OrtBackend.open(pkg, new OrtBackend.Options(2, 1))) {
            Map<String, Tensor> in = new LinkedHashMap<>();
            for (TensorSpec s : b.info().inputs()) {
                long[] shape = s.shape();
                for (int i = 0; i < shape.length; i++) {
                    if (shape[i] < 0) {
                        shape[i] = i == 0 ? batch : seq;
                    }
                }
                in.put(s.name(), Tensor.zeros(s.dtype(), shape));
            }
            b.run(in, AdapterSelection.of(null), Set.of());
            long rss1 = status("VmRSS");
            long hwm1 = status("VmHWM");
            System.out.println("RSS_GROWTH " + (rss1 - rss0));
            System.out.println("HWM_GROWTH " + (hwm1 - Math.max(hwm0, rss0)));
        }
    }

    private static long status(String key) throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith(key + ":")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        throw new IllegalStateException("no " + key + " in /proc/self/status");
    }
}
