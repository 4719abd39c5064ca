package io.peft4j.core.onnx;

import io.peft4j.core.onnx.proto.Onnx.AttributeProto;
import io.peft4j.core.onnx.proto.Onnx.GraphProto;
import io.peft4j.core.onnx.proto.Onnx.NodeProto;
import io.peft4j.core.onnx.proto.Onnx.TensorProto;
import io.peft4j.core.onnx.proto.Onnx.ValueInfoProto;

import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.Set;

/** Scoping helpers for subgraphs kept as protos: which outer values they read, renaming them. */
final class Subgraphs {

    private Subgraphs() {
    }

    /** Names a subgraph reads from enclosing scopes (used but not defined inside it). */
    static Set<String> outerReferences(GraphProto g) {
        Set<String> out = new LinkedHashSet<>();
        collect(g, new HashSet<>(), out);
        return out;
    }

    private static void collect(GraphProto g, Set<String> enclosingLocal, Set<String> out) {
        Set<String> local = new HashSet<>(enclosingLocal);
        for (ValueInfoProto v : g.getInputList()) {
            local.add(v.getName());
        }
        for (TensorProto t : g.getInitializerList()) {
            local.add(t.getName());
        }
        for (NodeProto n : g.getNodeList()) {
            local.addAll(n.getOutputList());
        }
        for (NodeProto n : g.getNodeList()) {
            for (String in : n.getInputList()) {
                if (!in.isEmpty() && !local.contains(in)) {
                    out.add(in);
                }
            }
            for (AttributeProto a : n.getAttributeList()) {
                if (a.hasG()) {
                    collect(a.getG(), local, out);
                }
                for (GraphProto sg : a.getGraphsList()) {
                    collect(sg, local, out);
                }
            }
        }
        for (ValueInfoProto v : g.getOutputList()) {
            if (!local.contains(v.getName())) {
                out.add(v.getName());
            }
        }
    }

    /** Every name defined or used anywhere in the subgraph, nested ones included. */
    static void allNames(GraphProto g, Set<String> out) {
        out.add(g.getName());
        for (ValueInfoProto v : g.getInputList()) {
            out.add(v.getName());
        }
        for (TensorProto t : g.getInitializerList()) {
            out.add(t.getName());
        }
        for (NodeProto n : g.getNodeList()) {
            out.add(n.getName());
            out.addAll(n.getInputList());
            out.addAll(n.getOutputList());
            for (AttributeProto a : n.getAttributeList()) {
                if (a.hasG()) {
                    allNames(a.getG(), out);
                }
                for (GraphProto sg : a.getGraphsList()) {
                    allNames(sg, out);
                }
            }
        }
    }

    /** Renames uses of the outer value {@code from} to {@code to}, unless shadowed inside. */
    static GraphProto renameOuter(GraphProto g, String from, String to) {
        for (ValueInfoProto v : g.getInputList()) {
            if (v.getName().equals(from)) {
                return g;
            }
        }
        for (TensorProto t : g.getInitializerList()) {
            if (t.getName().equals(from)) {
                return g;
            }
        }
        for (NodeProto n : g.getNodeList()) {
            if (n.getOutputList().contains(from)) {
                return g;
            }
        }
        GraphProto.Builder b = g.toBuilder();
        for (int i = 0; i < b.getNodeCount(); i++) {
            NodeProto.Builder nb = b.getNode(i).toBuilder();
            for (int j = 0; j < nb.getInputCount(); j++) {
                if (nb.getInput(j).equals(from)) {
                    nb.setInput(j, to);
                }
            }
            for (int j = 0; j < nb.getAttributeCount(); j++) {
                AttributeProto a = nb.getAttribute(j);
                if (a.hasG() || a.getGraphsCount() > 0) {
                    AttributeProto.Builder ab = a.toBuilder();
                    if (a.hasG()) {
                        ab.setG(renameOuter(a.getG(), from, to));
                    }
                    for (int k = 0; k < a.getGraphsCount(); k++) {
                        ab.setGraphs(k, renameOuter(a.getGraphs(k), from, to));
                    }
                    nb.setAttribute(j, ab.build());
                }
            }
            b.setNode(i, nb.build());
        }
        for (int i = 0; i < b.getOutputCount(); i++) {
            if (b.getOutput(i).getName().equals(from)) {
                b.setOutput(i, b.getOutput(i).toBuilder().setName(to).build());
            }
        }
        return b.build();
    }
}
