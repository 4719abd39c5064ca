package io.peft4j.runtime;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonFactoryBuilder;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.StreamWriteFeature;
import io.peft4j.core.tensor.DataType;
import io.peft4j.core.tensor.Half;
import io.peft4j.core.tensor.Tensor;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;

/**
 * Open Inference Protocol v2 JSON for inference: reads a request body into tensors and writes a
 * response, streaming with jackson-core. Tensor data is parsed token by token straight into the
 * element type's array (an off-heap little-endian buffer that ONNX Runtime reads in place), flat
 * or nested, so that a body of millions of numbers costs one pass and no boxing; the element count
 * must match the shape. Output data is written the same way, flattened row-major.
 *
 * <p>Triton's binary tensor data extension ({@code binary_tensor_data}): when the request says
 * how long its JSON is ({@code Inference-Header-Content-Length}), an input with
 * {@code "parameters": {"binary_data_size": N}} and no {@code data} takes the next N bytes after
 * the JSON, in input order: little-endian elements without padding, BOOL one byte each, BYTES a
 * 4-byte little-endian length before each element. The sizes must account for every byte after
 * the JSON. Outputs asked for with {@code "binary_data": true} (or all, with the request's
 * {@code "binary_data_output": true}) are written the same way after the response's JSON, which
 * gives each one's {@code binary_data_size}.
 *
 * <p>Every fault in a body (not JSON, missing or misspelt fields, unknown datatypes, data that does
 * not fit the shape or the datatype) is an {@link ApiException} 400 whose message says which
 * input and what is wrong.
 */
public final class InferCodec {

    private static final JsonFactory JSON = new JsonFactoryBuilder()
            .enable(StreamReadFeature.USE_FAST_DOUBLE_PARSER)
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(StreamWriteFeature.USE_FAST_DOUBLE_WRITER)
            // the body size limit is the server's; no nesting limit beyond Jackson's default depth
            .streamReadConstraints(StreamReadConstraints.builder().maxStringLength(64 << 20).build())
            .build();

    private InferCodec() {
    }

    /** One input tensor of a request. */
    public record Input(String name, String datatype, Tensor tensor) {
    }

    /**
     * A parsed request.
     *
     * @param id               the caller's request id, echoed back (null when absent)
     * @param inputs           the inputs in request order
     * @param outputs          the outputs asked for (empty: all)
     * @param adapter          {@code parameters.adapter}: one adapter for the batch, or null
     * @param adapters         {@code parameters.adapters}: one per row ({@code null} entries: base), or null
     * @param binaryData       {@code outputs[].parameters.binary_data} where an output gives it
     * @param binaryDataOutput {@code parameters.binary_data_output}: outputs are binary unless they say otherwise
     */
    public record Request(String id, List<Input> inputs, Set<String> outputs, String adapter, List<String> adapters,
                          Map<String, Boolean> binaryData, boolean binaryDataOutput) {

        /** Whether {@code output} is to be answered as binary tensor data. */
        public boolean binary(String output) {
            return binaryData.getOrDefault(output, binaryDataOutput);
        }
    }

    /**
     * A response body: JSON alone ({@code headerLength} -1), or JSON of {@code headerLength}
     * bytes followed by binary tensor data.
     */
    public record Body(byte[] bytes, int headerLength) {

        /** Whether binary tensor data follows the JSON (the answer is then {@code application/octet-stream}). */
        public boolean binary() {
            return headerLength >= 0;
        }
    }

    /** The HTTP header that gives the length of the JSON before binary tensor data. */
    public static final String HEADER_LENGTH = "Inference-Header-Content-Length";

    // ---------------------------------------------------------------- datatypes

    /** The OIP datatype name of an element type. */
    public static String datatype(DataType t) {
        return switch (t) {
            case FLOAT -> "FP32";
            case FLOAT16 -> "FP16";
            case DOUBLE -> "FP64";
            case BFLOAT16 -> "BF16";
            case INT64 -> "INT64";
            case INT32 -> "INT32";
            case INT16 -> "INT16";
            case INT8 -> "INT8";
            case UINT8 -> "UINT8";
            case UINT16 -> "UINT16";
            case UINT32 -> "UINT32";
            case UINT64 -> "UINT64";
            case BOOL -> "BOOL";
            case STRING -> "BYTES";
            default -> t.name();
        };
    }

    /** The element type of an OIP datatype this service takes. */
    static DataType dataType(String datatype, String input) {
        return switch (datatype) {
            case "FP32" -> DataType.FLOAT;
            case "FP16" -> DataType.FLOAT16;
            case "FP64" -> DataType.DOUBLE;
            case "INT64" -> DataType.INT64;
            case "INT32" -> DataType.INT32;
            case "INT16" -> DataType.INT16;
            case "INT8" -> DataType.INT8;
            case "UINT8" -> DataType.UINT8;
            case "BOOL" -> DataType.BOOL;
            case "BYTES" -> DataType.STRING;
            default -> throw ApiException.badRequest("input '" + input + "': datatype '" + datatype + "' is not supported "
                    + "(FP32, FP16, FP64, INT64, INT32, INT16, INT8, UINT8, BOOL, BYTES)");
        };
    }

    // ---------------------------------------------------------------- reading

    /** Parses a JSON inference request body; {@code maxRows} bounds every input's first axis. */
    public static Request read(byte[] body, long maxRows) {
        return read(body, -1, maxRows);
    }

    /**
     * Parses an inference request body whose first {@code headerLength} bytes are JSON and the
     * rest binary tensor data; {@code headerLength} -1: no {@code Inference-Header-Content-Length}
     * header, the body is all JSON.
     */
    public static Request read(byte[] body, int headerLength, long maxRows) {
        if (body == null || body.length == 0) {
            throw ApiException.badRequest("the request body is empty; send a JSON object with \"inputs\"");
        }
        if (headerLength > body.length) {
            throw ApiException.badRequest(HEADER_LENGTH + " is " + headerLength + " but the body has only " + body.length + " bytes");
        }
        if (headerLength == 0) {
            throw ApiException.badRequest(HEADER_LENGTH + " is 0; it gives the length of the JSON request at the start of the body");
        }
        Binary binary = new Binary(body, headerLength);
        if (headerLength < 0) {
            FastFloatData.Scan scan = FastFloatData.scan(body, body.length);
            if (scan != null) {
                try {
                    return parse(scan.json, scan.json.length, maxRows, binary, scan);
                } catch (ApiException e) {
                    // parsed again as sent below, so that the message points into the body the client sent
                }
            }
        }
        return parse(body, headerLength < 0 ? body.length : headerLength, maxRows, binary, null);
    }

    /** The request in the first {@code jsonLength} bytes of {@code body}; {@code scan}: its FP32 data taken out already, or null. */
    private static Request parse(byte[] body, int jsonLength, long maxRows, Binary binary, FastFloatData.Scan scan) {
        try (JsonParser p = JSON.createParser(body, 0, jsonLength)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw ApiException.badRequest("the request body must be a JSON object with \"inputs\"");
            }
            String id = null;
            List<Input> inputs = null;
            Set<String> outputs = new LinkedHashSet<>();
            String adapter = null;
            List<String> adapters = null;
            Map<String, Boolean> binaryData = new LinkedHashMap<>();
            boolean binaryDataOutput = false;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                JsonToken t = p.nextToken();
                switch (field) {
                    case "id" -> id = text(p, t, "id");
                    case "inputs" -> inputs = readInputs(p, t, maxRows, jsonLength / 2 + 1, binary, scan);
                    case "outputs" -> readOutputs(p, t, outputs, binaryData);
                    case "parameters" -> {
                        expect(t, JsonToken.START_OBJECT, "parameters must be an object");
                        while (p.nextToken() == JsonToken.FIELD_NAME) {
                            String k = p.currentName();
                            JsonToken v = p.nextToken();
                            if (k.equals("adapter")) {
                                adapter = v == JsonToken.VALUE_NULL ? null : text(p, v, "parameters.adapter");
                            } else if (k.equals("adapters")) {
                                adapters = readAdapters(p, v);
                            } else if (k.equals("binary_data_output")) {
                                binaryDataOutput = bool(v, "parameters.binary_data_output");
                            } else {
                                p.skipChildren();
                            }
                        }
                    }
                    default -> p.skipChildren();   // OIP lets requests carry more; what peft4j does not use is ignored
                }
            }
            if (p.currentToken() != JsonToken.END_OBJECT || p.nextToken() != null) {
                throw ApiException.badRequest("the request body has trailing content after its JSON object");
            }
            if (inputs == null || inputs.isEmpty()) {
                throw ApiException.badRequest("the request has no \"inputs\"");
            }
            if (adapter != null && adapters != null) {
                throw ApiException.badRequest("give parameters.adapter (one for the batch) or parameters.adapters (one per "
                        + "row), not both");
            }
            binary.finish();
            return new Request(id, inputs, outputs, adapter, adapters, binaryData, binaryDataOutput);
        } catch (JsonProcessingException e) {
            // a limit jackson enforces (a number over 1000 digits) comes without a location
            throw ApiException.badRequest("malformed JSON: " + e.getOriginalMessage() + (e.getLocation() == null ? ""
                    : " at line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr()));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void expect(JsonToken got, JsonToken want, String message) {
        if (got != want) {
            throw ApiException.badRequest(message);
        }
    }

    private static boolean bool(JsonToken t, String what) {
        if (t != JsonToken.VALUE_TRUE && t != JsonToken.VALUE_FALSE) {
            throw ApiException.badRequest(what + " must be true or false");
        }
        return t == JsonToken.VALUE_TRUE;
    }

    private static String text(JsonParser p, JsonToken t, String what) throws IOException {
        if (t != JsonToken.VALUE_STRING) {
            throw ApiException.badRequest(what + " must be a string");
        }
        return p.getText();
    }

    private static List<String> readAdapters(JsonParser p, JsonToken t) throws IOException {
        expect(t, JsonToken.START_ARRAY, "parameters.adapters must be an array with one adapter name (or null) per row");
        List<String> out = new ArrayList<>();
        for (JsonToken v = p.nextToken(); v != JsonToken.END_ARRAY; v = p.nextToken()) {
            if (v == JsonToken.VALUE_NULL) {
                out.add(null);
            } else {
                out.add(text(p, v, "each of parameters.adapters"));
            }
        }
        if (out.isEmpty()) {
            throw ApiException.badRequest("parameters.adapters is empty; give one adapter name (or null) per row");
        }
        return out;
    }

    private static void readOutputs(JsonParser p, JsonToken t, Set<String> outputs, Map<String, Boolean> binaryData)
            throws IOException {
        expect(t, JsonToken.START_ARRAY, "outputs must be an array of {\"name\": ...} objects");
        for (JsonToken o = p.nextToken(); o != JsonToken.END_ARRAY; o = p.nextToken()) {
            expect(o, JsonToken.START_OBJECT, "each of outputs must be an object with a name");
            String name = null;
            Boolean binary = null;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String k = p.currentName();
                JsonToken v = p.nextToken();
                if (k.equals("name")) {
                    name = text(p, v, "outputs[].name");
                } else if (k.equals("parameters")) {
                    expect(v, JsonToken.START_OBJECT, "outputs[].parameters must be an object");
                    while (p.nextToken() == JsonToken.FIELD_NAME) {
                        String q = p.currentName();
                        JsonToken w = p.nextToken();
                        if (q.equals("binary_data")) {
                            binary = bool(w, "outputs[].parameters.binary_data");
                        } else {
                            p.skipChildren();
                        }
                    }
                } else {
                    p.skipChildren();
                }
            }
            if (name == null) {
                throw ApiException.badRequest("an entry of outputs has no name");
            }
            outputs.add(name);
            if (binary != null) {
                binaryData.put(name, binary);
            }
        }
    }

    private static List<Input> readInputs(JsonParser p, JsonToken t, long maxRows, long maxElements, Binary binary,
                                          FastFloatData.Scan scan) throws IOException {
        expect(t, JsonToken.START_ARRAY, "inputs must be an array of tensors");
        List<Input> inputs = new ArrayList<>();
        Set<String> names = new LinkedHashSet<>();
        for (JsonToken o = p.nextToken(); o != JsonToken.END_ARRAY; o = p.nextToken()) {
            expect(o, JsonToken.START_OBJECT, "each of inputs must be an object with name, shape, datatype and data");
            Input in = readInput(p, inputs.size(), maxRows, maxElements, binary, scan);
            if (!names.add(in.name())) {
                throw ApiException.badRequest("input '" + in.name() + "' is given twice");
            }
            inputs.add(in);
        }
        return inputs;
    }

    private static Input readInput(JsonParser p, int position, long maxRows, long maxElements, Binary binary,
                                   FastFloatData.Scan scan) throws IOException {
        String name = null;
        long[] shape = null;
        String datatype = null;
        Values data = null;
        long binarySize = -1;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String k = p.currentName();
            JsonToken v = p.nextToken();
            String what = name == null ? "inputs[" + position + "]" : "input '" + name + "'";
            switch (k) {
                case "name" -> name = text(p, v, what + ".name");
                case "datatype" -> datatype = text(p, v, what + ".datatype");   // jackson refuses duplicate fields
                case "shape" -> shape = readShape(p, v, what);
                case "data" -> {
                    int fast = scan != null && v == JsonToken.VALUE_STRING ? scan.index(p.getText()) : -1;
                    if (fast >= 0) {
                        data = Values.ofFloats(scan.floats(fast), scan.count(fast));
                        break;
                    }
                    DataType dt = datatype == null ? null : dataType(datatype, name == null ? what : name);
                    // preallocate for the shape, but never beyond what the body can hold (a number takes 2 bytes at least)
                    long expected = shape == null ? -1 : Math.min(Tensor.numel(shape), maxElements);
                    data = Values.read(p, v, dt, expected, what);
                }
                case "parameters" -> binarySize = readInputParameters(p, v, what);
                default -> p.skipChildren();
            }
        }
        String what = name == null ? "inputs[" + position + "]" : "input '" + name + "'";
        if (name == null || name.isEmpty()) {
            throw ApiException.badRequest(what + " has no name");
        }
        if (shape == null) {
            throw ApiException.badRequest(what + " has no shape");
        }
        if (datatype == null) {
            throw ApiException.badRequest(what + " has no datatype");
        }
        if (data != null && binarySize >= 0) {
            throw ApiException.badRequest(what + " has both data and parameters.binary_data_size; give one of them");
        }
        if (data == null && binarySize < 0) {
            throw ApiException.badRequest(what + " has no data (nor parameters.binary_data_size for binary tensor data)");
        }
        if (shape.length > 0 && shape[0] > maxRows) {
            throw ApiException.badRequest(what + " has " + shape[0] + " rows; this server takes at most " + maxRows
                    + " per request (peft4j.max-batch-rows)");
        }
        DataType dt = dataType(datatype, name);
        if (binarySize >= 0) {
            return new Input(name, datatype, binary.take(dt, shape, binarySize, what));
        }
        return new Input(name, datatype, data.toTensor(dt, shape, what));
    }

    /** An input's parameters: its {@code binary_data_size}, or -1 when it has none. */
    private static long readInputParameters(JsonParser p, JsonToken t, String what) throws IOException {
        expect(t, JsonToken.START_OBJECT, what + ".parameters must be an object");
        long size = -1;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String k = p.currentName();
            JsonToken v = p.nextToken();
            if (k.equals("binary_data_size")) {
                if (v != JsonToken.VALUE_NUMBER_INT || p.getNumberType() == JsonParser.NumberType.BIG_INTEGER || p.getLongValue() < 0) {
                    throw ApiException.badRequest(what + ".parameters.binary_data_size must be a non-negative integer (bytes)");
                }
                size = p.getLongValue();
            } else {
                p.skipChildren();
            }
        }
        return size;
    }

    /**
     * The binary tensor data after the JSON of a request: inputs take their bytes in order, and
     * together they must take all of it.
     */
    private static final class Binary {
        private final byte[] body;
        private final int start;       // first byte after the JSON; -1: no Inference-Header-Content-Length
        private int position;

        Binary(byte[] body, int headerLength) {
            this.body = body;
            this.start = headerLength;
            this.position = headerLength;
        }

        Tensor take(DataType dt, long[] shape, long size, String what) {
            if (start < 0) {
                throw ApiException.badRequest(what + " has parameters.binary_data_size but the request has no " + HEADER_LENGTH
                        + " header; send the length of the JSON in bytes in that header and the tensor bytes after the JSON");
            }
            long numel = Tensor.numel(shape);
            if (dt != DataType.STRING && size != dt.byteSize(numel)) {
                throw ApiException.badRequest(what + ": binary_data_size is " + size + " bytes; shape " + Arrays.toString(shape)
                        + " of " + datatype(dt) + " takes " + dt.byteSize(numel) + " (" + numel + " × " + dt.elementSize() + ")");
            }
            long left = body.length - position;
            if (size > left) {
                throw ApiException.badRequest(what + ": binary_data_size is " + size + " bytes but only " + left + " bytes of binary "
                        + "data are left after the JSON" + (position > start ? " and the inputs before it" : "")
                        + " (body " + body.length + " bytes, " + HEADER_LENGTH + " " + start + ")");
            }
            int n = (int) size;
            Tensor t = dt == DataType.STRING ? strings(shape, numel, n, what) : fixed(dt, shape, n, what);
            position += n;
            return t;
        }

        private Tensor fixed(DataType dt, long[] shape, int n, String what) {
            if (dt == DataType.BOOL) {
                for (int i = position; i < position + n; i++) {
                    if (body[i] != 0 && body[i] != 1) {
                        throw ApiException.badRequest(what + ": BOOL binary data must be bytes 0 or 1, got " + (body[i] & 0xff)
                                + " at element " + (i - position));
                    }
                }
            }
            ByteBuffer b = direct(Math.max(n, 1));
            b.put(body, position, n).flip();
            return Tensor.wrap(dt, shape, b);
        }

        /** BYTES elements: each a 4-byte little-endian length and that many bytes. */
        private Tensor strings(long[] shape, long numel, int n, String what) {
            ByteBuffer b = ByteBuffer.wrap(body, position, n).order(ByteOrder.LITTLE_ENDIAN);
            List<byte[]> out = new ArrayList<>((int) Math.min(numel, 1 << 16));
            while (b.hasRemaining()) {
                if (b.remaining() < 4) {
                    throw ApiException.badRequest(what + ": BYTES binary data ends inside the 4-byte length of element " + out.size());
                }
                long len = b.getInt() & 0xffffffffL;
                if (len > b.remaining()) {
                    throw ApiException.badRequest(what + ": BYTES element " + out.size() + " says " + len + " bytes but only "
                            + b.remaining() + " of its binary_data_size are left");
                }
                byte[] s = new byte[(int) len];
                b.get(s);
                out.add(s);
            }
            if (out.size() != numel) {
                throw ApiException.badRequest(what + ": BYTES binary data holds " + out.size() + " elements; shape "
                        + Arrays.toString(shape) + " needs " + numel);
            }
            return Tensor.ofStrings(shape, out);
        }

        /** Every byte after the JSON belongs to an input. */
        void finish() {
            if (start >= 0 && position != body.length) {
                throw ApiException.badRequest("the body has " + (body.length - start) + " bytes after its " + start + "-byte JSON ("
                        + HEADER_LENGTH + "), but the inputs' binary_data_size add up to " + (position - start));
            }
        }
    }

    private static long[] readShape(JsonParser p, JsonToken t, String what) throws IOException {
        expect(t, JsonToken.START_ARRAY, what + ".shape must be an array of non-negative integers");
        long[] dims = new long[8];
        int n = 0;
        for (JsonToken d = p.nextToken(); d != JsonToken.END_ARRAY; d = p.nextToken()) {
            if (d != JsonToken.VALUE_NUMBER_INT || p.getLongValue() < 0) {
                throw ApiException.badRequest(what + ".shape must be an array of non-negative integers");
            }
            if (n == 32) {
                throw ApiException.badRequest(what + ".shape has more than 32 dimensions");
            }
            if (n == dims.length) {
                dims = Arrays.copyOf(dims, n * 2);
            }
            dims[n++] = p.getLongValue();
        }
        long[] shape = Arrays.copyOf(dims, n);
        long numel = 1;
        try {
            for (long d : shape) {
                numel = Math.multiplyExact(numel, d);
            }
        } catch (ArithmeticException e) {
            numel = Long.MAX_VALUE;
        }
        if (numel > Integer.MAX_VALUE) {
            throw ApiException.badRequest(what + ".shape " + Arrays.toString(shape) + " has more elements than one tensor can hold");
        }
        return shape;
    }

    /**
     * Tensor data as parsed: typed when the datatype (and, for preallocation, the shape) came
     * before {@code data} in the object, as numbers, booleans or strings otherwise.
     */
    private static final class Values {
        private DataType dtype;          // the type the buffer holds; null: generic numbers
        private ByteBuffer buf;          // typed data, little-endian
        private double[] numbers;        // generic: value of each number
        private float[] floats;          // generic: the float of each number's text (no double rounding)
        private long[] integers;         // generic: exact value when the number was an integer
        private boolean[] integral;
        private List<byte[]> strings;
        private int count;

        /** FP32 data parsed already ({@link FastFloatData}): {@code count} floats, {@code floats} positioned at their end. */
        static Values ofFloats(ByteBuffer floats, int count) {
            Values v = new Values();
            v.dtype = DataType.FLOAT;
            v.buf = floats;
            v.count = count;
            return v;
        }

        static Values read(JsonParser p, JsonToken t, DataType dt, long expected, String what) throws IOException {
            Values v = new Values();
            v.dtype = dt;
            int capacity = expected >= 0 ? (int) expected : 1024;
            if (dt == DataType.STRING) {
                v.strings = new ArrayList<>(Math.min(capacity, 1 << 16));
            } else if (dt != null) {
                v.buf = direct(dt.byteSize(Math.max(capacity, 1)));
            } else {
                v.numbers = new double[Math.max(capacity, 16)];
                v.floats = new float[v.numbers.length];
                v.integers = new long[v.numbers.length];
                v.integral = new boolean[v.numbers.length];
            }
            if (t != JsonToken.START_ARRAY) {
                // a scalar tensor's data may be given bare
                v.add(p, t, what);
            } else {
                v.readArray(p, what);
            }
            return v;
        }

        private void readArray(JsonParser p, String what) throws IOException {
            int depth = 1;
            while (depth > 0) {
                JsonToken t = p.nextToken();
                if (t == JsonToken.START_ARRAY) {
                    depth++;
                } else if (t == JsonToken.END_ARRAY) {
                    depth--;
                } else {
                    add(p, t, what);
                }
            }
        }

        private void add(JsonParser p, JsonToken t, String what) throws IOException {
            if (dtype == DataType.STRING) {
                if (t != JsonToken.VALUE_STRING) {
                    throw ApiException.badRequest(what + ": BYTES data must be strings, got " + describe(t));
                }
                strings.add(p.getText().getBytes(StandardCharsets.UTF_8));
                count++;
                return;
            }
            if (dtype == null) {
                addGeneric(p, t, what);
                return;
            }
            int size = dtype.elementSize();
            if (buf.remaining() < size) {
                grow();
            }
            switch (dtype) {
                case FLOAT -> buf.putFloat(number(p, t, what));
                case FLOAT16 -> buf.putShort(Half.floatToFp16(number(p, t, what)));
                case DOUBLE -> buf.putDouble(doubleNumber(p, t, what));
                case INT64 -> buf.putLong(integer(p, t, what, Long.MIN_VALUE, Long.MAX_VALUE));
                case INT32 -> buf.putInt((int) integer(p, t, what, Integer.MIN_VALUE, Integer.MAX_VALUE));
                case INT16 -> buf.putShort((short) integer(p, t, what, Short.MIN_VALUE, Short.MAX_VALUE));
                case INT8 -> buf.put((byte) integer(p, t, what, Byte.MIN_VALUE, Byte.MAX_VALUE));
                case UINT8 -> buf.put((byte) integer(p, t, what, 0, 255));
                case BOOL -> {
                    if (t != JsonToken.VALUE_TRUE && t != JsonToken.VALUE_FALSE) {
                        throw ApiException.badRequest(what + ": BOOL data must be true or false, got " + describe(t));
                    }
                    buf.put((byte) (t == JsonToken.VALUE_TRUE ? 1 : 0));
                }
                default -> throw new IllegalStateException(dtype.toString());
            }
            count++;
        }

        private void addGeneric(JsonParser p, JsonToken t, String what) throws IOException {
            if (count == numbers.length) {
                int n = Math.max(16, count * 2);
                numbers = Arrays.copyOf(numbers, n);
                floats = Arrays.copyOf(floats, n);
                integers = Arrays.copyOf(integers, n);
                integral = Arrays.copyOf(integral, n);
            }
            if (t == JsonToken.VALUE_STRING) {
                if (strings == null) {
                    strings = new ArrayList<>();
                }
                strings.add(p.getText().getBytes(StandardCharsets.UTF_8));
            } else if (t == JsonToken.VALUE_TRUE || t == JsonToken.VALUE_FALSE) {
                numbers[count] = t == JsonToken.VALUE_TRUE ? 1 : 0;
                floats[count] = (float) numbers[count];
                integers[count] = (long) numbers[count];
                integral[count] = true;
            } else if (t == JsonToken.VALUE_NUMBER_INT && p.getNumberType() == JsonParser.NumberType.BIG_INTEGER) {
                String text = p.getText();   // beyond 64 bits: fine for floating point, out of range otherwise
                numbers[count] = Double.parseDouble(text);
                floats[count] = Float.parseFloat(text);
            } else if (t == JsonToken.VALUE_NUMBER_INT) {
                integers[count] = p.getLongValue();
                numbers[count] = integers[count];
                floats[count] = number(p, t, what);   // one rounding, as Float.parseFloat of the digits
                integral[count] = true;
            } else if (t == JsonToken.VALUE_NUMBER_FLOAT) {
                // both from the text: jackson derives one from the other once either is asked for, rounding twice
                String text = p.getText();
                numbers[count] = Double.parseDouble(text);
                floats[count] = Float.parseFloat(text);
            } else {
                throw ApiException.badRequest(what + ": data must hold numbers, booleans or strings, got " + describe(t));
            }
            count++;
        }

        private void grow() {
            long bigger = Math.max(16, (long) buf.capacity() * 2);
            if (bigger > Integer.MAX_VALUE - 8) {
                throw ApiException.badRequest("tensor data is larger than one buffer can hold");
            }
            ByteBuffer b = direct(bigger);
            buf.flip();
            b.put(buf);
            buf = b;
        }

        /** The tensor of {@code dt} and {@code shape}; the element count must match the shape. */
        Tensor toTensor(DataType dt, long[] shape, String what) {
            long numel = Tensor.numel(shape);
            if (count != numel) {
                throw ApiException.badRequest(what + " has " + count + " data elements; shape " + Arrays.toString(shape)
                        + " needs " + numel);
            }
            if (dt == DataType.STRING) {
                if (dtype == null && (strings == null || strings.size() != count)) {
                    throw ApiException.badRequest(what + ": BYTES data must be strings");
                }
                return Tensor.ofStrings(shape, strings);
            }
            if (dtype == null) {
                if (strings != null) {
                    throw ApiException.badRequest(what + ": " + datatype(dt) + " data must be numbers, got strings");
                }
                Values typed = new Values();
                typed.dtype = dt;
                typed.buf = direct(dt.byteSize(Math.max(count, 1)));
                for (int i = 0; i < count; i++) {
                    typed.putGeneric(numbers[i], floats[i], integers[i], integral[i], what);
                }
                typed.count = count;
                return typed.toTensor(dt, shape, what);
            }
            buf.flip();
            return Tensor.wrap(dt, shape, buf);
        }

        private void putGeneric(double d, float f, long l, boolean isInt, String what) {
            switch (dtype) {
                case FLOAT -> buf.putFloat(f);
                case FLOAT16 -> buf.putShort(Half.floatToFp16(f));
                case DOUBLE -> buf.putDouble(d);
                case BOOL -> {
                    if (!isInt || (l != 0 && l != 1)) {
                        throw ApiException.badRequest(what + ": BOOL data must be true or false");
                    }
                    buf.put((byte) l);
                }
                default -> {
                    if (!isInt && d == Math.rint(d)) {
                        throw ApiException.badRequest(what + ": " + d + " is out of range for " + datatype(dtype));
                    }
                    if (!isInt) {
                        throw ApiException.badRequest(what + ": " + datatype(dtype) + " data must be integers, got " + d);
                    }
                    long[] range = range(dtype);
                    if (l < range[0] || l > range[1]) {
                        throw ApiException.badRequest(what + ": " + l + " is out of range for " + datatype(dtype));
                    }
                    switch (dtype) {
                        case INT64 -> buf.putLong(l);
                        case INT32 -> buf.putInt((int) l);
                        case INT16 -> buf.putShort((short) l);
                        default -> buf.put((byte) l);
                    }
                }
            }
        }

        private static long[] range(DataType t) {
            return switch (t) {
                case INT32 -> new long[] {Integer.MIN_VALUE, Integer.MAX_VALUE};
                case INT16 -> new long[] {Short.MIN_VALUE, Short.MAX_VALUE};
                case INT8 -> new long[] {Byte.MIN_VALUE, Byte.MAX_VALUE};
                case UINT8 -> new long[] {0, 255};
                default -> new long[] {Long.MIN_VALUE, Long.MAX_VALUE};
            };
        }

        /**
         * A number token as a float, rounded once from its text (jackson's fast parser, the
         * same value as {@code Float.parseFloat}), not through a double.
         */
        private static float number(JsonParser p, JsonToken t, String what) throws IOException {
            if (t != JsonToken.VALUE_NUMBER_FLOAT && t != JsonToken.VALUE_NUMBER_INT) {
                throw ApiException.badRequest(what + ": data must be numbers, got " + describe(t));
            }
            float f = p.getFloatValue();
            if (f == 0 && t == JsonToken.VALUE_NUMBER_INT && p.getTextLength() > 0 && p.getTextCharacters()[p.getTextOffset()] == '-') {
                return -0.0f;   // "-0": jackson reads the integer 0; Float.parseFloat keeps the sign
            }
            return f;
        }

        private static double doubleNumber(JsonParser p, JsonToken t, String what) throws IOException {
            if (t != JsonToken.VALUE_NUMBER_FLOAT && t != JsonToken.VALUE_NUMBER_INT) {
                throw ApiException.badRequest(what + ": data must be numbers, got " + describe(t));
            }
            return p.getDoubleValue();
        }

        private static long integer(JsonParser p, JsonToken t, String what, long min, long max) throws IOException {
            if (t != JsonToken.VALUE_NUMBER_INT) {
                throw ApiException.badRequest(what + ": integer data must be integers, got " + describe(t)
                        + (t == JsonToken.VALUE_NUMBER_FLOAT ? " " + p.getText() : ""));
            }
            long v;
            try {
                v = p.getLongValue();
            } catch (com.fasterxml.jackson.core.exc.InputCoercionException e) {
                throw ApiException.badRequest(what + ": " + p.getText() + " is out of range");
            }
            if (v < min || v > max) {
                throw ApiException.badRequest(what + ": " + v + " is out of range [" + min + ", " + max + "]");
            }
            return v;
        }

        private static String describe(JsonToken t) {
            return switch (t) {
                case VALUE_STRING -> "a string";
                case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> "a number";
                case VALUE_TRUE, VALUE_FALSE -> "a boolean";
                case VALUE_NULL -> "null";
                case START_OBJECT -> "an object";
                default -> t.toString();
            };
        }
    }

    private static ByteBuffer direct(long bytes) {
        if (bytes > Integer.MAX_VALUE - 8) {
            throw ApiException.badRequest("tensor data is larger than one buffer can hold");
        }
        return ByteBuffer.allocateDirect((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    // ---------------------------------------------------------------- writing

    /** The response body, all JSON: model name and version, the request's id, parameters, and the outputs. */
    public static byte[] write(String model, String id, Map<String, Object> parameters, Map<String, Tensor> outputs) {
        return write(model, id, parameters, outputs, name -> false).bytes();
    }

    /**
     * The response body, with the outputs that {@code binary} names as binary tensor data after
     * the JSON (in output order); all JSON when it names none.
     */
    public static Body write(String model, String id, Map<String, Object> parameters, Map<String, Tensor> outputs,
                             Predicate<String> binary) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(4096);
        List<Tensor> binaries = new ArrayList<>();
        long binaryBytes = 0;
        try (JsonGenerator g = JSON.createGenerator(bytes, JsonEncoding.UTF8)) {
            g.writeStartObject();
            g.writeStringField("model_name", model);
            g.writeStringField("model_version", "1");
            if (id != null) {
                g.writeStringField("id", id);
            }
            if (!parameters.isEmpty()) {
                g.writeFieldName("parameters");
                writeValue(g, parameters);
            }
            g.writeArrayFieldStart("outputs");
            for (Map.Entry<String, Tensor> e : outputs.entrySet()) {
                if (binary.test(e.getKey())) {
                    long size = binarySize(e.getValue());
                    writeTensorHeader(g, e.getKey(), e.getValue());
                    g.writeObjectFieldStart("parameters");
                    g.writeNumberField("binary_data_size", size);
                    g.writeEndObject();
                    g.writeEndObject();
                    binaries.add(e.getValue());
                    binaryBytes += size;
                } else {
                    writeTensor(g, e.getKey(), e.getValue());
                }
            }
            g.writeEndArray();
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        if (binaries.isEmpty()) {
            return new Body(bytes.toByteArray(), -1);
        }
        int json = bytes.size();
        if (json + binaryBytes > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException("the response's binary tensor data is larger than one body can hold");
        }
        byte[] out = Arrays.copyOf(bytes.toByteArray(), (int) (json + binaryBytes));
        ByteBuffer w = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN).position(json);
        for (Tensor t : binaries) {
            if (t.dtype() == DataType.STRING) {
                for (byte[] v : t.strings()) {
                    w.putInt(v.length).put(v);
                }
            } else {
                w.put(t.bytes());
            }
        }
        return new Body(out, json);
    }

    /** Bytes of a tensor as binary tensor data. */
    private static long binarySize(Tensor t) {
        if (t.dtype() != DataType.STRING) {
            return t.byteSize();
        }
        long n = 0;
        for (byte[] v : t.strings()) {
            n += 4L + v.length;
        }
        return n;
    }

    private static void writeValue(JsonGenerator g, Object v) throws IOException {
        if (v instanceof Map<?, ?> m) {
            g.writeStartObject();
            for (Map.Entry<?, ?> e : m.entrySet()) {
                g.writeFieldName(String.valueOf(e.getKey()));
                writeValue(g, e.getValue());
            }
            g.writeEndObject();
        } else if (v instanceof List<?> l) {
            g.writeStartArray();
            for (Object o : l) {
                writeValue(g, o);
            }
            g.writeEndArray();
        } else if (v instanceof Number n) {
            if (n instanceof Long || n instanceof Integer) {
                g.writeNumber(n.longValue());
            } else {
                g.writeNumber(n.doubleValue());
            }
        } else if (v instanceof Boolean b) {
            g.writeBoolean(b);
        } else if (v == null) {
            g.writeNull();
        } else {
            g.writeString(v.toString());
        }
    }

    /** Opens an output object with its name, datatype and shape. */
    private static void writeTensorHeader(JsonGenerator g, String name, Tensor t) throws IOException {
        g.writeStartObject();
        g.writeStringField("name", name);
        g.writeStringField("datatype", datatype(t.dtype()));
        g.writeArrayFieldStart("shape");
        for (long d : t.shape()) {
            g.writeNumber(d);
        }
        g.writeEndArray();
    }

    private static void writeTensor(JsonGenerator g, String name, Tensor t) throws IOException {
        writeTensorHeader(g, name, t);
        g.writeArrayFieldStart("data");
        int n = Math.toIntExact(t.numel());
        switch (t.dtype()) {
            case FLOAT -> {
                var b = t.floatBuffer();
                for (int i = 0; i < n; i++) {
                    g.writeNumber(b.get(i));
                }
            }
            case DOUBLE -> {
                var b = t.doubleBuffer();
                for (int i = 0; i < n; i++) {
                    g.writeNumber(b.get(i));
                }
            }
            case FLOAT16 -> {
                var b = t.fp16Bits();
                for (int i = 0; i < n; i++) {
                    g.writeNumber(Half.fp16ToFloat(b.get(i)));
                }
            }
            case INT64 -> {
                var b = t.longBuffer();
                for (int i = 0; i < n; i++) {
                    g.writeNumber(b.get(i));
                }
            }
            case INT32 -> {
                var b = t.intBuffer();
                for (int i = 0; i < n; i++) {
                    g.writeNumber(b.get(i));
                }
            }
            case BOOL -> {
                var b = t.byteView();
                for (int i = 0; i < n; i++) {
                    g.writeBoolean(b.get(i) != 0);
                }
            }
            case STRING -> {
                for (byte[] s : t.strings()) {
                    g.writeString(new String(s, StandardCharsets.UTF_8));
                }
            }
            default -> {
                for (int i = 0; i < n; i++) {
                    g.writeNumber(t.getDouble(i));
                }
            }
        }
        g.writeEndArray();
        g.writeEndObject();
    }

    /** Input name → tensor, in request order. */
    static Map<String, Tensor> tensors(List<Input> inputs) {
        Map<String, Tensor> m = new LinkedHashMap<>();
        inputs.forEach(i -> m.put(i.name(), i.tensor()));
        return m;
    }
}
