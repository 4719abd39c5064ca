package io.peft4j.core;

/**
 * The one exception type of peft4j. Every failure the toolkit reports to a user carries an
 * {@link ErrorCode} that says what kind of problem it is, and a message that says which file,
 * tensor, node or setting is at fault. Unchecked, so that callers are not forced to wrap it.
 */
public class Peft4jException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    /** What kind of problem an exception reports. */
    public enum ErrorCode {
        /** A file is missing or cannot be read or written. */
        IO,
        /** A file is not in the format it claims to be (malformed ONNX, safetensors, JSON). */
        MALFORMED,
        /** Tensor shapes or data types do not fit together. */
        SHAPE_MISMATCH,
        /** A name (node, tensor, module, adapter, option) is unknown. */
        NOT_FOUND,
        /** A value is out of range or a request exceeds a limit. */
        INVALID_ARGUMENT,
        /** The input is valid but uses something peft4j does not support. */
        UNSUPPORTED,
        /** An adapter was made for another base model. */
        FINGERPRINT_MISMATCH,
        /** A graph edit would leave the graph inconsistent. */
        GRAPH_STATE
    }

    private final ErrorCode code;

    public Peft4jException(ErrorCode code, String message) {
        super(message);
        this.code = code;
    }

    public Peft4jException(ErrorCode code, String message, Throwable cause) {
        super(message, cause);
        this.code = code;
    }

    public ErrorCode code() {
        return code;
    }

    public static Peft4jException malformed(String message) {
        return new Peft4jException(ErrorCode.MALFORMED, message);
    }

    public static Peft4jException notFound(String message) {
        return new Peft4jException(ErrorCode.NOT_FOUND, message);
    }

    public static Peft4jException invalid(String message) {
        return new Peft4jException(ErrorCode.INVALID_ARGUMENT, message);
    }

    public static Peft4jException shape(String message) {
        return new Peft4jException(ErrorCode.SHAPE_MISMATCH, message);
    }

    public static Peft4jException unsupported(String message) {
        return new Peft4jException(ErrorCode.UNSUPPORTED, message);
    }
}
