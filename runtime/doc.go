// Package runtime executes ONNX graphs: it is onnxopt's reference for
// numeric checks, its source of activations for calibration, and its source
// of gradients for pruning.
//
// Compile turns a graph.Graph into a Plan: the nodes in topological order,
// each with a kernel chosen from the operator tables (ops.go lists them, one
// file per family) by op type, domain and opset, its attributes parsed and
// checked once, and shapes checked by inference. A Plan runs many times:
// each node keeps its output buffers and reuses them when shapes repeat,
// so repeated runs do not allocate tensors. Plans are not safe for
// concurrent use.
//
// Values are Tensors: a dtype, a shape and a typed Go slice, or a sequence
// or optional of tensors. gorgonia's tensor.Dense panics on shapes with a
// zero dimension, which ONNX allows, so the runtime keeps its own container
// and converts to gorgonia without copying where gorgonia does the work:
// CompileGrad builds a gorgonia expression graph of a model and
// differentiates a loss with respect to its weights (grad.go).
//
// RunNode runs one node on its own, as constant folding does.
//
// RunCase and RunSuite run the ONNX conformance suite's cases with the
// suite's tolerances; DataSets and ReadDataSet read the suite's data sets;
// RandomInputs, ReadTensorFile and WriteTensorFile make and read inputs.
package runtime
