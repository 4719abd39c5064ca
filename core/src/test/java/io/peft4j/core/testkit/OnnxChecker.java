package io.peft4j.core.testkit;

import io.peft4j.core.onnx.Model;
import io.peft4j.core.onnx.OnnxIO;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.onnx.ISchemaRegistry;
import org.bytedeco.onnx.ModelProto;
import org.bytedeco.onnx.OpSchemaRegistry;
import org.bytedeco.onnx.ShapeInferenceOptions;
import org.bytedeco.onnx.global.onnx;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The official ONNX checker and strict shape inference (through the bytedeco ONNX presets), for
 * tests: every graph the project emits should pass {@link #check(Model)}.
 *
 * <p>{@code check} runs {@code onnx::checker::check_model} with the full check (which includes
 * shape inference with type checking and errors made fatal), then shape inference once more
 * with {@code check_type = true}, {@code error_mode = 1} (strict) and data propagation enabled, so
 * that shape computations carried through Shape/Gather/Concat chains are checked too. A model
 * the checker refuses fails with an {@link AssertionError} carrying the checker's message.
 *
 * <p>The native library is loaded once per JVM, on first use; calls are serialized.
 */
public final class OnnxChecker {

    /** ONNX's {@code error_mode}: 0 records errors, 1 throws on the first one. */
    private static final int ERROR_MODE_STRICT = 1;

    private OnnxChecker() {
    }

    /** Loads the native library and looks up the schema registry once. */
    private static final class Native {
        static final ISchemaRegistry REGISTRY;

        static {
            Loader.load(onnx.class);
            REGISTRY = OpSchemaRegistry.Instance();
        }

        private Native() {
        }
    }

    /** Checks a model built or read with peft4j (initializers are inlined for the check). */
    public static void check(Model model) {
        check(OnnxIO.toBytes(model), "model '" + model.graph().name() + "'");
    }

    /** Checks a serialized model. */
    public static void check(byte[] modelBytes) {
        check(modelBytes, "model");
    }

    /**
     * Checks a model file. The checker runs on the file itself, so external data locations are
     * checked against the model's directory; the extra strict inference runs on the model proto
     * (for files under 2 GiB), where externally stored initializers carry no values.
     */
    public static void check(Path modelFile) {
        Path abs = modelFile.toAbsolutePath();
        if (!Files.isRegularFile(abs)) {
            throw new AssertionError("ONNX checker: no model file at " + abs);
        }
        synchronized (Native.class) {
            ISchemaRegistry registry = Native.REGISTRY;
            try {
                onnx.check_model(abs.toString(), true, false, false);
            } catch (RuntimeException e) {
                throw new AssertionError("ONNX checker rejects " + abs + ": " + e.getMessage(), e);
            }
            long size;
            try {
                size = Files.size(abs);
            } catch (IOException e) {
                throw new AssertionError("cannot read " + abs + ": " + e.getMessage(), e);
            }
            if (size < Integer.MAX_VALUE - 64) {
                byte[] bytes;
                try {
                    bytes = Files.readAllBytes(abs);
                } catch (IOException e) {
                    throw new AssertionError("cannot read " + abs + ": " + e.getMessage(), e);
                }
                try (ModelProto proto = parse(bytes, abs.toString())) {
                    strictInference(proto, registry, abs.toString());
                }
            }
        }
    }

    private static void check(byte[] modelBytes, String what) {
        synchronized (Native.class) {
            ISchemaRegistry registry = Native.REGISTRY;
            try (ModelProto proto = parse(modelBytes, what)) {
                try {
                    onnx.check_model(proto, true, false, false);
                } catch (RuntimeException e) {
                    throw new AssertionError("ONNX checker rejects " + what + ": " + e.getMessage(), e);
                }
                strictInference(proto, registry, what);
            }
        }
    }

    /**
     * The model with the value_info that strict shape inference (with data propagation) adds.
     * Fails like {@link #check(Model)} when inference finds an error.
     */
    public static Model inferShapes(Model model) {
        String what = "model '" + model.graph().name() + "'";
        byte[] inferred;
        synchronized (Native.class) {
            ISchemaRegistry registry = Native.REGISTRY;
            try (ModelProto proto = parse(OnnxIO.toBytes(model), what)) {
                strictInference(proto, registry, what);
                inferred = serialize(proto, what);
            }
        }
        return OnnxIO.read(inferred, what + " after shape inference");
    }

    // ---------------------------------------------------------------- native plumbing

    private static void strictInference(ModelProto proto, ISchemaRegistry registry, String what) {
        try (ShapeInferenceOptions options = new ShapeInferenceOptions(true, ERROR_MODE_STRICT, true)) {
            onnx.InferShapes(proto, registry, options, null);
        } catch (RuntimeException e) {
            throw new AssertionError("ONNX shape inference (strict) rejects " + what + ": " + e.getMessage(), e);
        }
    }

    private static ModelProto parse(byte[] bytes, String what) {
        ModelProto proto = new ModelProto();
        try (BytePointer data = new BytePointer(bytes)) {
            if (!proto.ParseFromArray(data, bytes.length)) {
                proto.close();
                throw new AssertionError("ONNX checker: " + what + " does not parse as a ModelProto");
            }
        }
        return proto;
    }

    private static byte[] serialize(ModelProto proto, String what) {
        long size = proto.ByteSizeLong();
        if (size >= Integer.MAX_VALUE) {
            throw new AssertionError(what + " is over protobuf's 2 GiB limit after shape inference");
        }
        try (BytePointer out = new BytePointer(size)) {
            if (!proto.SerializeToArray(out, (int) size)) {
                throw new AssertionError("ONNX: cannot serialize " + what);
            }
            byte[] bytes = new byte[(int) size];
            out.get(bytes);
            return bytes;
        }
    }
}
