package io.peft4j.devices.trt;

import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;

import java.nio.ByteBuffer;

/** The few CUDA runtime calls the TensorRT backend makes, with errors turned into exceptions. */
final class Cuda {

    private Cuda() {
    }

    static void check(int err, String call) {
        if (err != 0) {
            String text = cudart.cudaGetErrorString(err).getString();
            // a device failure, not bad input: callers see it as an internal error
            throw new IllegalStateException("CUDA " + call + " failed: " + text + " (error " + err + ")");
        }
    }

    /** Memory on the GPU, grown on demand; {@link #close()} frees it once. */
    static final class DeviceBuffer implements AutoCloseable {
        private Pointer ptr;
        private long capacity;

        DeviceBuffer() {
        }

        /** A buffer holding {@code bytes}, copied synchronously (weights, adapter tensors). */
        static DeviceBuffer of(ByteBuffer bytes) {
            DeviceBuffer b = new DeviceBuffer();
            b.ensure(Math.max(1, bytes.remaining()));
            try (BytePointer host = new BytePointer(bytes.remaining())) {
                host.put(toArray(bytes));
                check(cudart.cudaMemcpy(b.ptr, host, bytes.remaining(), cudart.cudaMemcpyHostToDevice), "cudaMemcpy");
            }
            return b;
        }

        /** Makes room for {@code bytes} (contents are not kept when it grows). */
        Pointer ensure(long bytes) {
            if (ptr == null || capacity < bytes) {
                free();
                Pointer p = new Pointer();
                check(cudart.cudaMalloc(p, Math.max(bytes, 256)), "cudaMalloc(" + bytes + " bytes)");
                ptr = p;
                capacity = Math.max(bytes, 256);
            }
            return ptr;
        }

        Pointer pointer() {
            return ptr;
        }

        private void free() {
            if (ptr != null) {
                cudart.cudaFree(ptr);
                ptr = null;
                capacity = 0;
            }
        }

        @Override
        public void close() {
            free();
        }
    }

    /** Page-locked host memory for asynchronous copies, grown on demand. */
    static final class HostBuffer implements AutoCloseable {
        private BytePointer ptr;
        private long capacity;

        BytePointer ensure(long bytes) {
            if (ptr == null || capacity < bytes) {
                close();
                Pointer p = new Pointer();
                check(cudart.cudaMallocHost(p, Math.max(bytes, 256)), "cudaMallocHost(" + bytes + " bytes)");
                capacity = Math.max(bytes, 256);
                ptr = new BytePointer(p).capacity(capacity);
            }
            return ptr;
        }

        @Override
        public void close() {
            if (ptr != null) {
                cudart.cudaFreeHost(ptr);
                ptr = null;
                capacity = 0;
            }
        }
    }

    static CUstream_st createStream() {
        CUstream_st s = new CUstream_st();
        check(cudart.cudaStreamCreate(s), "cudaStreamCreate");
        return s;
    }

    static byte[] toArray(ByteBuffer b) {
        ByteBuffer d = b.duplicate();
        byte[] a = new byte[d.remaining()];
        d.get(a);
        return a;
    }
}
