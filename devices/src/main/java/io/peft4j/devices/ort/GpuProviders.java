package io.peft4j.devices.ort;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtProvider;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.providers.OrtCUDAProviderOptions;
import ai.onnxruntime.providers.OrtTensorRTProviderOptions;
import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.Graph;
import io.peft4j.core.onnx.OnnxIO;
import io.peft4j.core.onnx.proto.Onnx.TensorShapeProto;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Configures ONNX Runtime's GPU execution providers on a session from an {@link OrtBackend.GpuProvider}. */
final class GpuProviders {

    private GpuProviders() {
    }

    static void add(OrtSession.SessionOptions so, OrtBackend.GpuProvider gpu, Path modelFile) throws OrtException {
        OrtProvider wanted = gpu.kind().equals("cuda") ? OrtProvider.CUDA : OrtProvider.TENSOR_RT;
        if (!OrtEnvironment.getAvailableProviders().contains(wanted)) {
            throw Peft4jException.unsupported("this ONNX Runtime has no " + wanted + " provider (it lists "
                    + OrtEnvironment.getAvailableProviders() + "); build with -Pgpu for the onnxruntime_gpu jar, which needs "
                    + "CUDA 12 and cuDNN 9 on the host");
        }
        if (gpu.kind().equals("tensorrt")) {
            OrtTensorRTProviderOptions t = new OrtTensorRTProviderOptions(gpu.deviceId());
            t.add("trt_fp16_enable", gpu.fp16() ? "1" : "0");
            if (gpu.workspaceBytes() > 0) {
                t.add("trt_max_workspace_size", Long.toString(gpu.workspaceBytes()));
            }
            if (gpu.engineCache() != null) {
                t.add("trt_engine_cache_enable", "1");
                t.add("trt_engine_cache_path", gpu.engineCache().toAbsolutePath().toString());
            }
            String[] shapes = profileShapes(OnnxIO.read(modelFile).graph(), gpu.maxBatch());
            if (shapes != null) {
                t.add("trt_profile_min_shapes", shapes[0]);
                t.add("trt_profile_opt_shapes", shapes[1]);
                t.add("trt_profile_max_shapes", shapes[2]);
            }
            so.addTensorrt(t);
        }
        // CUDA runs what TensorRT cannot (or everything, for kind cuda); the CPU provider comes last
        so.addCUDA(new OrtCUDAProviderOptions(gpu.deviceId()));
    }

    /**
     * TensorRT's optimization profile for the inputs a caller feeds (inputs with defaults, such as
     * side adapters, are left to their defaults): {@code name:1x3x64x64,...} for min, opt and max;
     * null when no input has a dynamic axis.
     */
    static String[] profileShapes(Graph g, int maxBatch) {
        List<String> min = new ArrayList<>();
        List<String> opt = new ArrayList<>();
        List<String> max = new ArrayList<>();
        boolean dynamic = false;
        for (ValueInfoProto v : g.inputs()) {
            if (g.hasInitializer(v.getName()) || !v.getType().hasTensorType()) {
                continue;
            }
            List<TensorShapeProto.Dimension> dims = v.getType().getTensorType().getShape().getDimList();
            StringBuilder a = new StringBuilder(v.getName() + ":");
            StringBuilder b = new StringBuilder(v.getName() + ":");
            StringBuilder c = new StringBuilder(v.getName() + ":");
            for (int i = 0; i < dims.size(); i++) {
                String sep = i == 0 ? "" : "x";
                TensorShapeProto.Dimension d = dims.get(i);
                if (d.hasDimValue() && d.getDimValue() > 0) {
                    a.append(sep).append(d.getDimValue());
                    b.append(sep).append(d.getDimValue());
                    c.append(sep).append(d.getDimValue());
                } else {
                    dynamic = true;
                    a.append(sep).append(1);
                    b.append(sep).append(i == 0 ? Math.min(8, maxBatch) : 128);
                    c.append(sep).append(i == 0 ? maxBatch : 256);
                }
            }
            min.add(a.toString());
            opt.add(b.toString());
            max.add(c.toString());
        }
        return dynamic ? new String[] {String.join(",", min), String.join(",", opt), String.join(",", max)} : null;
    }
}
