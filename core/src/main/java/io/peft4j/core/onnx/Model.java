package io.peft4j.core.onnx;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.onnx.proto.Onnx.FunctionProto;
import io.peft4j.core.onnx.proto.Onnx.ModelProto;
import io.peft4j.core.onnx.proto.Onnx.OperatorSetIdProto;
import io.peft4j.core.onnx.proto.Onnx.StringStringEntryProto;
import io.peft4j.core.onnx.proto.Onnx.TrainingInfoProto;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An ONNX model: the main {@link Graph}, its opset imports and metadata. Model-local functions and
 * training info are carried through unchanged. Read and write with {@link OnnxIO}.
 */
public final class Model {

    /** The IR version peft4j writes for new models (ONNX 1.16+; ONNX Runtime 1.20+ reads it). */
    public static final long DEFAULT_IR_VERSION = 10;

    private long irVersion = DEFAULT_IR_VERSION;
    private String producerName = "peft4j";
    private String producerVersion = "";
    private String domain = "";
    private long modelVersion;
    private String docString = "";
    private final LinkedHashMap<String, Long> opsets = new LinkedHashMap<>();
    private final LinkedHashMap<String, String> metadata = new LinkedHashMap<>();
    private final List<FunctionProto> functions = new ArrayList<>();
    private final List<TrainingInfoProto> trainingInfo = new ArrayList<>();
    private Graph graph;

    /** A new, empty model importing the default ONNX domain at {@code opset}. */
    public Model(String graphName, long opset) {
        this.graph = new Graph(graphName);
        opsets.put("", opset);
    }

    private Model() {
    }

    static Model fromProto(ModelProto p, Graph graph) {
        Model m = new Model();
        m.irVersion = p.getIrVersion();
        m.producerName = p.getProducerName();
        m.producerVersion = p.getProducerVersion();
        m.domain = p.getDomain();
        m.modelVersion = p.getModelVersion();
        m.docString = p.getDocString();
        for (OperatorSetIdProto o : p.getOpsetImportList()) {
            String d = o.getDomain().equals("ai.onnx") ? "" : o.getDomain();
            m.opsets.put(d, o.getVersion());
        }
        for (StringStringEntryProto e : p.getMetadataPropsList()) {
            m.metadata.put(e.getKey(), e.getValue());
        }
        m.functions.addAll(p.getFunctionsList());
        m.trainingInfo.addAll(p.getTrainingInfoList());
        m.graph = graph;
        return m;
    }

    ModelProto.Builder headerProto() {
        ModelProto.Builder b = ModelProto.newBuilder().setIrVersion(irVersion);
        if (!producerName.isEmpty()) {
            b.setProducerName(producerName);
        }
        if (!producerVersion.isEmpty()) {
            b.setProducerVersion(producerVersion);
        }
        if (!domain.isEmpty()) {
            b.setDomain(domain);
        }
        if (modelVersion != 0) {
            b.setModelVersion(modelVersion);
        }
        if (!docString.isEmpty()) {
            b.setDocString(docString);
        }
        for (Map.Entry<String, Long> e : opsets.entrySet()) {
            OperatorSetIdProto.Builder o = OperatorSetIdProto.newBuilder().setVersion(e.getValue());
            if (!e.getKey().isEmpty()) {
                o.setDomain(e.getKey());
            }
            b.addOpsetImport(o);
        }
        for (Map.Entry<String, String> e : metadata.entrySet()) {
            b.addMetadataProps(StringStringEntryProto.newBuilder().setKey(e.getKey()).setValue(e.getValue()));
        }
        b.addAllFunctions(functions);
        b.addAllTrainingInfo(trainingInfo);
        return b;
    }

    public Graph graph() {
        return graph;
    }

    public long irVersion() {
        return irVersion;
    }

    public void setIrVersion(long v) {
        this.irVersion = v;
    }

    public String producerName() {
        return producerName;
    }

    public String producerVersion() {
        return producerVersion;
    }

    public void setProducer(String name, String version) {
        this.producerName = name;
        this.producerVersion = version;
    }

    public String docString() {
        return docString;
    }

    /** Opset imports, domain to version; the default ONNX domain is {@code ""}. */
    public Map<String, Long> opsets() {
        return Collections.unmodifiableMap(opsets);
    }

    /** The imported version of {@code opDomain} ({@code ""} = ONNX), or 0 when not imported. */
    public long opset(String opDomain) {
        return opsets.getOrDefault(opDomain.equals("ai.onnx") ? "" : opDomain, 0L);
    }

    /**
     * Makes sure {@code opDomain} is imported at least at {@code minVersion}: imports it when
     * missing; refuses when the model imports an older version, since raising an opset can change
     * the meaning of the nodes already in the graph.
     */
    public void requireOpset(String opDomain, long minVersion) {
        String d = opDomain.equals("ai.onnx") ? "" : opDomain;
        Long have = opsets.get(d);
        if (have == null) {
            opsets.put(d, minVersion);
        } else if (have < minVersion) {
            throw Peft4jException.unsupported("this rewrite needs opset " + minVersion + " of domain '"
                    + (d.isEmpty() ? "ai.onnx" : d) + "', the model imports version " + have);
        }
    }

    public void setOpset(String opDomain, long version) {
        opsets.put(opDomain.equals("ai.onnx") ? "" : opDomain, version);
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    public List<FunctionProto> functions() {
        return Collections.unmodifiableList(functions);
    }
}
