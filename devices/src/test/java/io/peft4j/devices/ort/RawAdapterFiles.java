package io.peft4j.devices.ort;

import com.google.flatbuffers.FlatBufferBuilder;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Builds adapter FlatBuffers field by field, including the inconsistent ones that
 * {@link OnnxAdapterFile#toBytes} refuses to write: missing fields, wrong lengths, any type code,
 * another identifier or format version.
 */
final class RawAdapterFiles {

    /** One Parameter table; a null field is left out. */
    static final class Param {
        byte[] name;
        long[] dims;
        Integer dataType;
        byte[] rawData;

        Param(String name, long[] dims, Integer dataType, byte[] rawData) {
            this.name = name == null ? null : name.getBytes(StandardCharsets.UTF_8);
            this.dims = dims;
            this.dataType = dataType;
            this.rawData = rawData;
        }
    }

    Integer formatVersion = 1;
    Integer adapterVersion = 7;
    Integer modelVersion = 3;
    boolean withParameters = true;
    String identifier = "TORT";
    final List<Param> params = new ArrayList<>();

    RawAdapterFiles add(String name, long[] dims, Integer dataType, byte[] rawData) {
        params.add(new Param(name, dims, dataType, rawData));
        return this;
    }

    RawAdapterFiles identifier(String id) {
        this.identifier = id;
        return this;
    }

    byte[] build() {
        FlatBufferBuilder b = new FlatBufferBuilder(256);
        int[] offsets = new int[params.size()];
        for (int i = 0; i < offsets.length; i++) {
            Param p = params.get(i);
            int name = p.name == null ? 0 : b.createString(java.nio.ByteBuffer.wrap(p.name));
            int dims = 0;
            if (p.dims != null) {
                b.startVector(8, p.dims.length, 8);
                for (int k = p.dims.length - 1; k >= 0; k--) {
                    b.addLong(p.dims[k]);
                }
                dims = b.endVector();
            }
            int raw = 0;
            if (p.rawData != null) {
                b.createUnintializedVector(1, p.rawData.length, 8).put(p.rawData);
                raw = b.endVector();
            }
            b.startTable(4);
            if (p.rawData != null) {
                b.addOffset(3, raw, 0);
            }
            if (p.dataType != null) {
                b.addInt(2, p.dataType, Integer.MIN_VALUE);
            }
            if (p.dims != null) {
                b.addOffset(1, dims, 0);
            }
            if (p.name != null) {
                b.addOffset(0, name, 0);
            }
            offsets[i] = b.endTable();
        }
        int vector = withParameters ? b.createVectorOfTables(offsets) : 0;
        b.startTable(4);
        if (withParameters) {
            b.addOffset(3, vector, 0);
        }
        if (modelVersion != null) {
            b.addInt(2, modelVersion, Integer.MIN_VALUE);
        }
        if (adapterVersion != null) {
            b.addInt(1, adapterVersion, Integer.MIN_VALUE);
        }
        if (formatVersion != null) {
            b.addInt(0, formatVersion, Integer.MIN_VALUE);
        }
        b.finish(b.endTable(), identifier);
        return b.sizedByteArray();
    }

    private RawAdapterFiles() {
    }

    static RawAdapterFiles adapter() {
        return new RawAdapterFiles();
    }

    static byte[] floats(int n) {
        return new byte[4 * n];
    }
}
