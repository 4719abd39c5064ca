package io.peft4j.core.onnx;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoggingLevel;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import com.google.protobuf.Descriptors;
import com.google.protobuf.Message;
import com.google.protobuf.TextFormat;
import io.peft4j.core.onnx.proto.Onnx.AttributeProto;
import io.peft4j.core.onnx.proto.Onnx.GraphProto;
import io.peft4j.core.onnx.proto.Onnx.ModelProto;
import io.peft4j.core.onnx.proto.Onnx.NodeProto;
import io.peft4j.core.onnx.proto.Onnx.TensorProto;
import io.peft4j.core.onnx.proto.Onnx.TypeProto;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Tensor;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.reflect.Array;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.BiConsumer;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * ONNX's operator conformance suite (Debian's {@code libonnx-testdata}) through peft4j's reader
 * and writer: every test model is read with {@link OnnxIO#read(Path)}, written back with
 * {@link OnnxIO#write(Model, Path)}, and the written file is run in ONNX Runtime on the test's
 * inputs; its outputs must match the expected ones. A case that fails is run again from the
 * original bytes: only when the original passes (or ORT computes something else from it) is the
 * failure ours. The written model must also read back to the same normalized proto.
 *
 * <p>The summary line is printed and a per-case report is written to
 * {@code target/conformance-report.txt}.
 */
class ConformanceRoundTripTest {

    static final String NOT_INSTALLED = "libonnx-testdata is not installed (apt-get install -y libonnx-testdata); "
            + "skipping the ONNX conformance round trip";

    /** The suite's folders, in the order they are run. */
    static final List<String> SUITES = List.of("node", "pytorch-converted", "pytorch-operator", "simple");

    /** Tolerances of ONNX's backend tests for floating-point outputs. */
    static final double RTOL = 1e-3;
    static final double ATOL = 1e-5;

    enum Outcome { PASS, FAIL_OURS, ORT_LIMITATION, SKIPPED_UNSUPPORTED_INPUT }

    record CaseResult(String name, Outcome outcome, String category, String detail) {
        static CaseResult pass(String name) {
            return new CaseResult(name, Outcome.PASS, "", "");
        }
    }

    /** The suite's data folder (holding node/, simple/, ...), or null when it is not installed. */
    static Path suiteRoot() {
        List<String> candidates = new ArrayList<>();
        String configured = System.getProperty("peft4j.onnx.testdata");
        if (configured != null && !configured.isBlank()) {
            candidates.add(configured);
        }
        candidates.add("/usr/share/libonnx-testdata/data");
        candidates.add("/usr/include/onnx/backend/test/data");
        candidates.add("/usr/lib/python3/dist-packages/onnx/backend/test/data");
        candidates.add("/usr/share/onnx/testdata");
        for (String c : candidates) {
            Path p = Path.of(c);
            if (Files.isDirectory(p.resolve("node"))) {
                return p;
            }
        }
        return null;
    }

    /** One thread per session, quiet: the suite is many tiny models. */
    static OrtSession.SessionOptions sessionOptions() throws OrtException {
        OrtSession.SessionOptions options = new OrtSession.SessionOptions();
        options.setIntraOpNumThreads(1);
        options.setInterOpNumThreads(1);
        options.setSessionLogLevel(OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL);
        return options;
    }

    @Test
    void everyConformanceModelSurvivesTheRoundTrip(@TempDir Path tmp) throws Exception {
        Path root = suiteRoot();
        Assumptions.assumeTrue(root != null, NOT_INSTALLED);
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            Assumptions.abort("ONNX tensors are little-endian; this test feeds their bytes to ORT as they are");
        }

        List<Path> cases = new ArrayList<>();
        for (String suite : SUITES) {
            Path dir = root.resolve(suite);
            if (!Files.isDirectory(dir)) {
                continue;
            }
            try (Stream<Path> s = Files.list(dir)) {
                s.filter(p -> Files.isRegularFile(p.resolve("model.onnx"))).sorted().forEach(cases::add);
            }
        }

        long start = System.nanoTime();
        List<CaseResult> results = new ArrayList<>();
        OrtEnvironment env = OrtEnvironment.getEnvironment(OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL, "peft4j-conformance");
        try (OrtSession.SessionOptions options = sessionOptions()) {
            Runner runner = new Runner(env, options);
            for (Path dir : cases) {
                String name = root.relativize(dir).toString();
                CaseResult r;
                try {
                    r = runCase(runner, name, dir, tmp.resolve(name), OnnxIO::write);
                } catch (Exception | AssertionError e) {
                    // anything the harness did not expect is reported, never hidden
                    r = new CaseResult(name, Outcome.FAIL_OURS, "unexpected error", describe(e));
                }
                results.add(r);
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;

        EnumMap<Outcome, Integer> counts = new EnumMap<>(Outcome.class);
        for (Outcome o : Outcome.values()) {
            counts.put(o, 0);
        }
        for (CaseResult r : results) {
            counts.merge(r.outcome(), 1, Integer::sum);
        }
        String summary = String.format("conformance round trip: %d models, %d pass, %d ORT limitations, "
                        + "%d skipped (unsupported inputs), %d ours failed (%.1f s)",
                results.size(), counts.get(Outcome.PASS), counts.get(Outcome.ORT_LIMITATION),
                counts.get(Outcome.SKIPPED_UNSUPPORTED_INPUT), counts.get(Outcome.FAIL_OURS), seconds);
        System.out.println(summary);
        Path report = writeReport(root, results, summary);
        System.out.println("conformance report: " + report);

        List<CaseResult> ours = results.stream().filter(r -> r.outcome() == Outcome.FAIL_OURS).toList();
        if (!ours.isEmpty()) {
            StringBuilder sb = new StringBuilder(summary).append("\nfailures caused by peft4j's round trip:");
            for (CaseResult r : ours) {
                sb.append("\n  ").append(r.name()).append(": ").append(firstLine(r.detail(), 400));
            }
            fail(sb.toString());
        }
    }

    @Test
    void theHarnessNoticesABrokenRoundTrip(@TempDir Path tmp) throws Exception {
        Path root = suiteRoot();
        Assumptions.assumeTrue(root != null, NOT_INSTALLED);
        Path leakyRelu = root.resolve("node/test_leakyrelu");
        Assumptions.assumeTrue(Files.isRegularFile(leakyRelu.resolve("model.onnx")), "node/test_leakyrelu is missing");

        OrtEnvironment env = OrtEnvironment.getEnvironment(OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL, "peft4j-conformance");
        try (OrtSession.SessionOptions options = sessionOptions()) {
            Runner runner = new Runner(env, options);

            CaseResult good = runCase(runner, "good", leakyRelu, tmp.resolve("good"), OnnxIO::write);
            assertEquals(Outcome.PASS, good.outcome(), good.toString());

            // the model changes before it is written: the proto checks agree, ORT's outputs do not
            CaseResult changedAlpha = runCase(runner, "alpha", leakyRelu, tmp.resolve("alpha"), (m, p) -> {
                m.graph().nodes().get(0).setAttr("alpha", 0.5f);
                OnnxIO.write(m, p);
            });
            assertEquals(Outcome.FAIL_OURS, changedAlpha.outcome(), changedAlpha.toString());

            // the file written is not the model that was read
            CaseResult renamed = runCase(runner, "renamed", leakyRelu, tmp.resolve("renamed"), (m, p) -> {
                m.graph().setName("not the original");
                OnnxIO.write(m, p);
                m.graph().setName(m.graph().name() + " any more");
            });
            assertEquals(Outcome.FAIL_OURS, renamed.outcome(), renamed.toString());
            assertEquals("written model differs", renamed.category());

            // something is dropped on the way that the normalized comparison cannot see
            CaseResult dropped = runCase(runner, "dropped", leakyRelu, tmp.resolve("dropped"), (m, p) -> {
                m.graph().setName("renamed");
                OnnxIO.write(m, p);
            });
            assertEquals(Outcome.FAIL_OURS, dropped.outcome(), dropped.toString());
        }
    }

    // ---------------------------------------------------------------- one case

    /**
     * Runs one test directory. {@code writer} writes the model that was read (OnnxIO::write; the
     * harness's own test passes broken writers to see that it notices).
     */
    static CaseResult runCase(Runner runner, String name, Path dir, Path outDir, BiConsumer<Model, Path> writer)
            throws IOException {
        Path modelFile = dir.resolve("model.onnx");
        byte[] original = Files.readAllBytes(modelFile);

        // 1. the round trip under test
        Model model;
        try {
            model = OnnxIO.read(modelFile);
        } catch (RuntimeException e) {
            return new CaseResult(name, Outcome.FAIL_OURS, "read", describe(e));
        }
        Path written = outDir.resolve("model.onnx");
        try {
            writer.accept(model, written);
        } catch (RuntimeException e) {
            return new CaseResult(name, Outcome.FAIL_OURS, "write", describe(e));
        }
        byte[] writtenBytes = Files.readAllBytes(written);

        // 2. what was written reads back to the same (normalized) model
        ModelProto before = OnnxIO.toProto(model);
        ModelProto after;
        try {
            after = OnnxIO.toProto(OnnxIO.read(written));
        } catch (RuntimeException e) {
            return new CaseResult(name, Outcome.FAIL_OURS, "read back", describe(e));
        }
        if (!before.equals(after)) {
            return new CaseResult(name, Outcome.FAIL_OURS, "written model differs", firstDifference(before, after));
        }

        // ... and is the original up to encoding: nothing was dropped on the way
        ModelProto proto = ModelProto.parseFrom(original);
        String lossy = losslessDifference(proto, ModelProto.parseFrom(writtenBytes));
        if (lossy != null) {
            return new CaseResult(name, Outcome.FAIL_OURS, "written model is not the original up to encoding", lossy);
        }

        // 3. the test's inputs and expected outputs
        GraphProto graph = proto.getGraph();
        Set<String> initializerNames = new HashSet<>();
        for (TensorProto t : graph.getInitializerList()) {
            initializerNames.add(t.getName());
        }
        List<ValueInfoProto> fed = graph.getInputList().stream()
                .filter(v -> !initializerNames.contains(v.getName())).toList();
        Path data = dir.resolve("test_data_set_0");
        int inputFiles = countFiles(data, "input_");
        int outputFiles = countFiles(data, "output_");
        if (inputFiles > fed.size()) {
            return new CaseResult(name, Outcome.FAIL_OURS, "harness", "the test has " + inputFiles
                    + " input files for " + fed.size() + " graph inputs");
        }
        for (int i = 0; i < inputFiles; i++) {
            String kind = valueKind(fed.get(i).getType());
            if (!kind.equals("tensor")) {
                return new CaseResult(name, Outcome.SKIPPED_UNSUPPORTED_INPUT, kind + " input",
                        "input '" + fed.get(i).getName() + "' is of kind " + kind + ", which peft4j's schema has no proto for");
            }
        }
        for (int i = 0; i < outputFiles; i++) {
            String kind = valueKind(graph.getOutput(i).getType());
            if (!kind.equals("tensor")) {
                return new CaseResult(name, Outcome.SKIPPED_UNSUPPORTED_INPUT, kind + " output",
                        "output '" + graph.getOutput(i).getName() + "' is of kind " + kind + ", which peft4j's schema has no proto for");
            }
        }
        LinkedHashMap<String, Tensor> inputs = new LinkedHashMap<>();
        Map<String, DataType> unsignedInputs = new HashMap<>();
        for (int i = 0; i < inputFiles; i++) {
            String inputName = fed.get(i).getName();
            Tensor t = asDeclared(readTensor(data.resolve("input_" + i + ".pb")), fed.get(i).getType());
            String unsupported = Runner.unsupportedFeed(t.dtype());
            if (unsupported != null) {
                return new CaseResult(name, Outcome.SKIPPED_UNSUPPORTED_INPUT, t.dtype() + " input",
                        "input '" + inputName + "': " + unsupported);
            }
            if (Runner.SIGNED_CARRIER.containsKey(t.dtype())) {
                unsignedInputs.put(inputName, t.dtype());
            }
            inputs.put(inputName, t);
        }
        LinkedHashMap<String, Tensor> expected = new LinkedHashMap<>();
        for (int i = 0; i < outputFiles; i++) {
            expected.put(graph.getOutput(i).getName(),
                    asDeclared(readTensor(data.resolve("output_" + i + ".pb")), graph.getOutput(i).getType()));
        }

        // 4. run what we wrote
        RunResult ours = runner.run(Runner.feedable(writtenBytes, unsignedInputs), inputs, expected.keySet());
        String oursVsExpected = ours.error() == null ? compareAll(expected, ours.outputs()) : ours.error();
        if (ours.error() == null && oursVsExpected == null) {
            return unsignedInputs.isEmpty() ? CaseResult.pass(name) : new CaseResult(name, Outcome.PASS, "",
                    "unsigned inputs " + unsignedInputs.keySet() + " fed as signed and cast in the model");
        }

        // 5. it failed: is it our doing, or does ORT fail on the original just as well?
        byte[] originalFeedable = Runner.feedable(original, unsignedInputs);
        RunResult orig = runner.run(originalFeedable, inputs, expected.keySet());
        if (orig.error() != null) {
            return new CaseResult(name, Outcome.ORT_LIMITATION, ortCategory(orig.error()), firstLine(orig.error(), 300));
        }
        String origVsExpected = compareAll(expected, orig.outputs());
        if (origVsExpected == null) {
            return new CaseResult(name, Outcome.FAIL_OURS, "original passes",
                    "the original model passes in ORT; the written one: " + oursVsExpected);
        }
        if (ours.error() != null) {
            return new CaseResult(name, Outcome.FAIL_OURS, "original runs",
                    "ORT runs the original model (outputs differ from the expected ones: " + origVsExpected
                            + ") but fails on the written one: " + ours.error());
        }
        String oursVsOrig = compareAll(orig.outputs(), ours.outputs());
        if (oursVsOrig == null) {
            return new CaseResult(name, Outcome.ORT_LIMITATION, "output mismatch (same for the original)", origVsExpected);
        }
        RunResult again = runner.run(originalFeedable, inputs, expected.keySet());
        if (again.error() == null && compareAll(orig.outputs(), again.outputs()) != null) {
            return new CaseResult(name, Outcome.ORT_LIMITATION, "non-deterministic outputs",
                    "two runs of the original model differ; vs expected: " + origVsExpected);
        }
        return new CaseResult(name, Outcome.FAIL_OURS, "outputs differ from the original's",
                "ORT computes different outputs from the written model than from the original: " + oursVsOrig);
    }

    static int countFiles(Path dir, String prefix) {
        int n = 0;
        while (Files.isRegularFile(dir.resolve(prefix + n + ".pb"))) {
            n++;
        }
        return n;
    }

    static Tensor readTensor(Path file) throws IOException {
        TensorProto p = TensorProto.parseFrom(Files.readAllBytes(file));
        return TensorProtos.toTensor(p, file.toString());
    }

    /**
     * The suite stores bfloat16 data as UINT16 tensors (numpy has no bfloat16); such a tensor is
     * read as the BFLOAT16 that the model declares, bit for bit.
     */
    static Tensor asDeclared(Tensor t, TypeProto declared) {
        int elemType = declared.getTensorType().getElemType();
        if (t.dtype() == DataType.UINT16 && elemType == DataType.BFLOAT16.onnxCode()) {
            return Tensor.wrap(DataType.BFLOAT16, t.shape(), t.bytes());
        }
        return t;
    }

    static String valueKind(TypeProto t) {
        return switch (t.getValueCase()) {
            case TENSOR_TYPE -> "tensor";
            case SEQUENCE_TYPE -> "sequence";
            case MAP_TYPE -> "map";
            case OPTIONAL_TYPE -> "optional";
            case SPARSE_TENSOR_TYPE -> "sparse tensor";
            default -> "value of unknown type";
        };
    }

    // ---------------------------------------------------------------- ONNX Runtime

    /** Outputs by name, or the error that stopped loading or running. */
    record RunResult(Map<String, Tensor> outputs, String error) {
    }

    static final class Runner {
        /**
         * ORT's Java API cannot create unsigned 16/32/64-bit tensors; such inputs are fed as the
         * signed type of the same width and cast (bit-preserving) inside the model.
         */
        static final Map<DataType, DataType> SIGNED_CARRIER = Map.of(
                DataType.UINT16, DataType.INT16, DataType.UINT32, DataType.INT32, DataType.UINT64, DataType.INT64);
        static final String CARRIER_SUFFIX = "__peft4j_signed";

        private final OrtEnvironment env;
        private final OrtSession.SessionOptions options;

        Runner(OrtEnvironment env, OrtSession.SessionOptions options) {
            this.env = env;
            this.options = options;
        }

        /** Why a tensor of this type cannot be fed through ORT's Java API, or null. */
        static String unsupportedFeed(DataType t) {
            return switch (t) {
                case FLOAT, DOUBLE, INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64, BOOL, FLOAT16,
                        BFLOAT16, STRING -> null;
                default -> "ORT's Java API cannot create " + t + " tensors";
            };
        }

        /**
         * The model with every unsigned 16/32/64-bit input turned into a signed input of the same
         * width followed by a Cast to the original type (unchanged when there is none).
         */
        static byte[] feedable(byte[] model, Map<String, DataType> unsignedInputs) throws IOException {
            if (unsignedInputs.isEmpty()) {
                return model;
            }
            ModelProto p = ModelProto.parseFrom(model);
            GraphProto.Builder g = p.getGraph().toBuilder();
            List<NodeProto> casts = new ArrayList<>();
            for (int i = 0; i < g.getInputCount(); i++) {
                ValueInfoProto in = g.getInput(i);
                DataType unsigned = unsignedInputs.get(in.getName());
                if (unsigned == null) {
                    continue;
                }
                String carrier = in.getName() + CARRIER_SUFFIX;
                ValueInfoProto.Builder v = in.toBuilder().setName(carrier);
                v.getTypeBuilder().getTensorTypeBuilder().setElemType(SIGNED_CARRIER.get(unsigned).onnxCode());
                g.setInput(i, v);
                casts.add(NodeProto.newBuilder().setOpType("Cast").setName("cast_" + carrier)
                        .addInput(carrier).addOutput(in.getName())
                        .addAttribute(AttributeProto.newBuilder().setName("to").setType(AttributeProto.AttributeType.INT)
                                .setI(unsigned.onnxCode()))
                        .build());
            }
            List<NodeProto> nodes = new ArrayList<>(casts);
            nodes.addAll(g.getNodeList());
            g.clearNode().addAllNode(nodes);
            return p.toBuilder().setGraph(g).build().toByteArray();
        }

        RunResult run(byte[] model, Map<String, Tensor> inputs, Iterable<String> outputNames) {
            Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
            try (OrtSession session = env.createSession(model, options)) {
                for (Map.Entry<String, Tensor> e : inputs.entrySet()) {
                    String feedName = session.getInputNames().contains(e.getKey() + CARRIER_SUFFIX)
                            ? e.getKey() + CARRIER_SUFFIX : e.getKey();
                    feeds.put(feedName, toOrt(e.getValue()));
                }
                Set<String> wanted = new java.util.LinkedHashSet<>();
                outputNames.forEach(wanted::add);
                try (OrtSession.Result result = session.run(feeds, wanted)) {
                    Map<String, Tensor> outputs = new LinkedHashMap<>();
                    for (String n : wanted) {
                        OnnxValue v = result.get(n).orElse(null);
                        if (!(v instanceof OnnxTensor t)) {
                            return new RunResult(null, "output '" + n + "' is not a tensor: " + v);
                        }
                        outputs.put(n, fromOrt(t));
                    }
                    return new RunResult(outputs, null);
                }
            } catch (OrtException e) {
                return new RunResult(null, "ORT: " + e.getMessage());
            } finally {
                for (OnnxTensor t : feeds.values()) {
                    t.close();
                }
            }
        }

        OnnxTensor toOrt(Tensor t) throws OrtException {
            long[] shape = t.shape();
            if (t.dtype() == DataType.STRING) {
                String[] values = new String[t.strings().size()];
                for (int i = 0; i < values.length; i++) {
                    values[i] = new String(t.strings().get(i), StandardCharsets.UTF_8);
                }
                return OnnxTensor.createTensor(env, values, shape);
            }
            ByteBuffer direct = ByteBuffer.allocateDirect((int) t.byteSize()).order(ByteOrder.nativeOrder());
            direct.put(t.bytes()).flip();
            OnnxJavaType type = switch (t.dtype()) {
                case FLOAT -> OnnxJavaType.FLOAT;
                case DOUBLE -> OnnxJavaType.DOUBLE;
                case INT8 -> OnnxJavaType.INT8;
                case UINT8 -> OnnxJavaType.UINT8;
                case INT16, UINT16 -> OnnxJavaType.INT16;
                case INT32, UINT32 -> OnnxJavaType.INT32;
                case INT64, UINT64 -> OnnxJavaType.INT64;
                case BOOL -> OnnxJavaType.BOOL;
                case FLOAT16 -> OnnxJavaType.FLOAT16;
                case BFLOAT16 -> OnnxJavaType.BFLOAT16;
                default -> throw new IllegalArgumentException("cannot feed " + t.dtype());
            };
            return OnnxTensor.createTensor(env, direct, shape, type);
        }

        static Tensor fromOrt(OnnxTensor t) throws OrtException {
            TensorInfo info = t.getInfo();
            // the Java enum's numbers are not ONNX's; its names are (ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, ...)
            DataType dtype = DataType.valueOf(info.onnxType.name().substring("ONNX_TENSOR_ELEMENT_DATA_TYPE_".length()));
            long[] shape = info.getShape();
            if (dtype == DataType.STRING) {
                List<byte[]> values = new ArrayList<>();
                flattenStrings(t.getValue(), values);
                return Tensor.ofStrings(shape, values);
            }
            return Tensor.wrap(dtype, shape, t.getByteBuffer());
        }

        private static void flattenStrings(Object v, List<byte[]> out) {
            if (v instanceof String s) {
                out.add(s.getBytes(StandardCharsets.UTF_8));
            } else if (v != null && v.getClass().isArray()) {
                for (int i = 0; i < Array.getLength(v); i++) {
                    flattenStrings(Array.get(v, i), out);
                }
            }
        }
    }

    // ---------------------------------------------------------------- comparison

    /** Null when every expected output matches, else what differs first. */
    static String compareAll(Map<String, Tensor> expected, Map<String, Tensor> actual) {
        for (Map.Entry<String, Tensor> e : expected.entrySet()) {
            Tensor a = actual.get(e.getKey());
            if (a == null) {
                return "output '" + e.getKey() + "' is missing";
            }
            String d = compare(e.getValue(), a);
            if (d != null) {
                return "output '" + e.getKey() + "': " + d;
            }
        }
        return null;
    }

    /** Null when {@code actual} matches {@code expected} (tolerances for floating point), else why not. */
    static String compare(Tensor expected, Tensor actual) {
        if (expected.dtype() != actual.dtype()) {
            return "type " + actual.dtype() + ", expected " + expected.dtype();
        }
        if (!Arrays.equals(expected.shape(), actual.shape())) {
            return "shape " + Arrays.toString(actual.shape()) + ", expected " + Arrays.toString(expected.shape());
        }
        DataType t = expected.dtype();
        switch (t) {
            case STRING -> {
                for (int i = 0; i < expected.strings().size(); i++) {
                    if (!Arrays.equals(expected.strings().get(i), actual.strings().get(i))) {
                        return "element " + i + " is '" + new String(actual.strings().get(i), StandardCharsets.UTF_8)
                                + "', expected '" + new String(expected.strings().get(i), StandardCharsets.UTF_8) + "'";
                    }
                }
                return null;
            }
            case FLOAT, DOUBLE, FLOAT16, BFLOAT16 -> {
                return closeEnough(expected.toDoubleArray(), actual.toDoubleArray());
            }
            case COMPLEX64 -> {
                return closeEnough(floats(expected), floats(actual));
            }
            case COMPLEX128 -> {
                return closeEnough(doubles(expected), doubles(actual));
            }
            default -> {
                if (expected.bytes().equals(actual.bytes())) {
                    return null;
                }
                if (t == DataType.BOOL || t.elementSize() > 0) {
                    long n = expected.numel();
                    for (long i = 0; i < n; i++) {
                        if (expected.getLong(i) != actual.getLong(i)) {
                            return "element " + i + " is " + actual.getLong(i) + ", expected " + expected.getLong(i);
                        }
                    }
                }
                return "bytes differ";
            }
        }
    }

    private static double[] floats(Tensor t) {
        ByteBuffer b = t.bytes();
        double[] out = new double[b.remaining() / 4];
        for (int i = 0; i < out.length; i++) {
            out[i] = b.getFloat(i * 4);
        }
        return out;
    }

    private static double[] doubles(Tensor t) {
        ByteBuffer b = t.bytes();
        double[] out = new double[b.remaining() / 8];
        for (int i = 0; i < out.length; i++) {
            out[i] = b.getDouble(i * 8);
        }
        return out;
    }

    private static String closeEnough(double[] expected, double[] actual) {
        int bad = 0;
        int first = -1;
        for (int i = 0; i < expected.length; i++) {
            double e = expected[i];
            double a = actual[i];
            boolean ok = (Double.isNaN(e) && Double.isNaN(a)) || e == a || Math.abs(a - e) <= ATOL + RTOL * Math.abs(e);
            if (!ok) {
                bad++;
                if (first < 0) {
                    first = i;
                }
            }
        }
        if (bad == 0) {
            return null;
        }
        return bad + " of " + expected.length + " elements differ, first at " + first + ": " + actual[first]
                + ", expected " + expected[first];
    }

    // ---------------------------------------------------------------- reporting

    /** A short category for an ORT failure on the original model. */
    static String ortCategory(String error) {
        String e = error == null ? "" : error;
        if (e.contains("ai.onnx.preview.training")) {
            return "training ops (ai.onnx.preview.training) are not in ORT's inference build";
        }
        if (e.contains("layout_ == 0")) {
            return "RNN/GRU/LSTM with layout=1 is not supported";
        }
        if (e.contains("string_normalizer") || e.contains("StringNormalizer")) {
            return "StringNormalizer: locale not available";
        }
        if (e.contains("Could not find an implementation") || e.contains("NOT_IMPLEMENTED")) {
            return "no CPU kernel for the op version or element type";
        }
        if (e.contains("is not a registered function/op") || e.contains("No opset import for domain")
                || e.contains("not supported") || e.contains("Unsupported") || e.contains("is under development")) {
            return "op, opset or domain not supported";
        }
        if (e.contains("Invalid rank for input") || e.contains("Got invalid dimensions for input")
                || e.contains("Unexpected input data type")) {
            return "test data does not fit the model's declared inputs";
        }
        if (e.contains("Type Error") || e.contains("ShapeInferenceError") || e.contains("INVALID_GRAPH")
                || e.contains("INVALID_PROTOBUF")) {
            return "model rejected at load";
        }
        if (e.contains("RUNTIME_EXCEPTION") || e.contains("INVALID_ARGUMENT")) {
            return "error while running";
        }
        return "other ORT error";
    }

    static Path writeReport(Path root, List<CaseResult> results, String summary) throws IOException {
        Path target = Path.of(System.getProperty("basedir", ".")).resolve("target");
        Files.createDirectories(target);
        Path report = target.resolve("conformance-report.txt");
        StringBuilder sb = new StringBuilder();
        sb.append(summary).append('\n');
        sb.append("suite: ").append(root).append('\n');
        sb.append("tolerances: rtol ").append(RTOL).append(", atol ").append(ATOL)
                .append(" (floating point); exact for integers, booleans and strings\n\n");

        Map<String, List<String>> byCategory = new TreeMap<>();
        for (CaseResult r : results) {
            if (r.outcome() == Outcome.ORT_LIMITATION || r.outcome() == Outcome.SKIPPED_UNSUPPORTED_INPUT
                    || r.outcome() == Outcome.FAIL_OURS) {
                byCategory.computeIfAbsent(r.outcome() + ": " + r.category(), k -> new ArrayList<>()).add(r.name());
            }
        }
        sb.append("by category:\n");
        for (Map.Entry<String, List<String>> e : byCategory.entrySet()) {
            sb.append(String.format("  %-70s %4d%n", e.getKey(), e.getValue().size()));
        }
        sb.append('\n');
        for (CaseResult r : results) {
            sb.append(String.format("%-26s %s", r.outcome(), r.name()));
            if (!r.category().isEmpty()) {
                sb.append("  [").append(r.category()).append(']');
            }
            if (!r.detail().isEmpty()) {
                sb.append("  ").append(firstLine(r.detail(), 400));
            }
            sb.append('\n');
        }
        Files.writeString(report, sb.toString(), StandardCharsets.UTF_8);
        return report;
    }

    static String describe(Throwable e) {
        return e.getClass().getSimpleName() + ": " + e.getMessage();
    }

    static String firstLine(String s, int max) {
        if (s == null) {
            return "";
        }
        String one = s.replace('\n', ' ').replace('\r', ' ');
        return one.length() <= max ? one : one.substring(0, max) + "...";
    }

    /**
     * Null when {@code written} is {@code original} up to the encodings peft4j normalizes
     * (initializer data moved to raw_data, the "ai.onnx" domain spelled ""), else the first difference.
     */
    static String losslessDifference(ModelProto original, ModelProto written) {
        ModelProto.Builder m = original.toBuilder();
        for (int i = 0; i < m.getOpsetImportCount(); i++) {
            if (m.getOpsetImport(i).getDomain().equals("ai.onnx")) {
                m.setOpsetImport(i, m.getOpsetImport(i).toBuilder().setDomain(""));
            }
        }
        GraphProto.Builder g = m.getGraphBuilder();
        for (int i = 0; i < g.getInitializerCount(); i++) {
            TensorProto t = g.getInitializer(i);
            Tensor v = TensorProtos.toTensor(t, t.getName());
            TensorProto.Builder b = t.toBuilder().clearFloatData().clearDoubleData().clearInt32Data().clearInt64Data()
                    .clearUint64Data().clearStringData().clearRawData();
            TensorProto data = TensorProtos.toProto(t.getName(), v);
            if (v.dtype() == DataType.STRING) {
                b.addAllStringData(data.getStringDataList());
            } else {
                b.setRawData(data.getRawData());
            }
            g.setInitializer(i, b);
        }
        ModelProto normalized = (ModelProto) withoutExplicitDefaults(m.build());
        ModelProto w = (ModelProto) withoutExplicitDefaults(written);
        return normalized.equals(w) ? null : firstDifference(normalized, w);
    }

    /** The message with singular fields that are set to their default value cleared, recursively. */
    static Message withoutExplicitDefaults(Message msg) {
        Message.Builder b = msg.toBuilder();
        for (Map.Entry<Descriptors.FieldDescriptor, Object> e : msg.getAllFields().entrySet()) {
            Descriptors.FieldDescriptor f = e.getKey();
            if (f.isRepeated()) {
                if (f.getJavaType() == Descriptors.FieldDescriptor.JavaType.MESSAGE) {
                    List<?> items = (List<?>) e.getValue();
                    for (int i = 0; i < items.size(); i++) {
                        b.setRepeatedField(f, i, withoutExplicitDefaults((Message) items.get(i)));
                    }
                }
            } else if (f.getJavaType() == Descriptors.FieldDescriptor.JavaType.MESSAGE) {
                b.setField(f, withoutExplicitDefaults((Message) e.getValue()));
            } else if (e.getValue().equals(f.getDefaultValue())) {
                b.clearField(f);
            }
        }
        return b.build();
    }

    /** The first line where the text forms of two protos differ, with a little context. */
    static String firstDifference(ModelProto a, ModelProto b) {
        String[] la = TextFormat.printer().printToString(a).split("\n");
        String[] lb = TextFormat.printer().printToString(b).split("\n");
        int n = Math.min(la.length, lb.length);
        for (int i = 0; i < n; i++) {
            if (!la[i].equals(lb[i])) {
                return "line " + (i + 1) + ": before '" + firstLine(la[i], 150) + "', after '" + firstLine(lb[i], 150) + "'";
            }
        }
        return "before has " + la.length + " lines, after " + lb.length;
    }
}
