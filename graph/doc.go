// Package graph is onnxopt's intermediate representation of an ONNX model:
// the form every pass reads and edits.
//
// A Model holds a Graph; a Graph holds Nodes, which read and write Values.
// Each Value knows its Producer and its Uses, so a pass can follow data both
// ways and rewrite it with the mutation methods (NewNode, SetInput,
// ReplaceAllUses, RemoveNode, AddInitializer, Rename, Prune) without
// keeping any index of its own. Subgraphs (the bodies of If, Loop and
// Scan) are Graphs too, with a Parent whose values they may read.
//
// FromProto and ToProto convert to and from the protobuf messages of
// package onnx without losing anything: what the IR does not model
// (training info, functions, unknown fields, the presence of optional
// fields) is carried through, so a model read and written unchanged is the
// same message. Load and Save do the same for files, with external data.
//
// Verify checks the invariants passes must keep (every value defined once,
// no cycles, nodes in topological order, opsets imported, consistent use
// lists); Sort restores topological order. Infer and InferShapes compute
// element types and shapes for the operators of exported CNNs, MLPs, RNNs
// and transformers, leaving unknown what they cannot tell. Stats and FLOPs
// count what a model holds and costs.
package graph
