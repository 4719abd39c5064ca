package io.peft4j.devices.trt;

import org.bytedeco.tensorrt.nvinfer.ILogger;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * TensorRT's logger: warnings and errors go to {@link System.Logger} ({@code io.peft4j.devices.trt}),
 * and the last errors are kept so that a failed build or refit can say why. One instance lives as
 * long as the class (TensorRT keeps the pointer).
 */
final class TrtLogger extends ILogger {

    static final TrtLogger INSTANCE = new TrtLogger();

    private static final System.Logger LOG = System.getLogger("io.peft4j.devices.trt");
    private static final int KEEP = 8;

    private final Deque<String> errors = new ArrayDeque<>();

    private TrtLogger() {
    }

    @Override
    public void log(Severity severity, String msg) {
        switch (severity) {
            case kINTERNAL_ERROR, kERROR -> {
                LOG.log(System.Logger.Level.ERROR, "TensorRT: " + msg);
                synchronized (errors) {
                    if (errors.size() == KEEP) {
                        errors.removeFirst();
                    }
                    errors.addLast(msg);
                }
            }
            case kWARNING -> LOG.log(System.Logger.Level.DEBUG, "TensorRT: " + msg);
            default -> {
                // info and verbose: TensorRT is chatty at these levels
            }
        }
    }

    /** The errors logged since the last call, oldest first; clears them. */
    List<String> drainErrors() {
        synchronized (errors) {
            List<String> out = new ArrayList<>(errors);
            errors.clear();
            return out;
        }
    }
}
