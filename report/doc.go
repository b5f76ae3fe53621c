// Package report writes what a command did to a model as one HTML page
// that needs nothing else: its style is inline, its charts are PNG images
// in data URLs, it has no script and fetches nothing.
//
// The page has a section for each of:
//
//   - the summary: nodes, parameters, non-zeros, bytes, FLOPs and latency
//     in onnxopt's runtime of each model, with the change between them,
//     and whether the numeric check passed;
//   - the passes that ran (passes.PassReport);
//   - the weights of each layer (Conv, ConvTranspose, Gemm, MatMul,
//     Gather, QLinearConv, QLinearMatMul) as histograms, before over
//     after, with the zeros and the weights changed counted: quantized
//     weights, stored as integers behind a DequantizeLinear (QDQ) or with
//     a QLinear op's scale and zero point, are shown dequantized, as
//     onnxopt's runtime computes them. Layers pair across the two models
//     by node name. A model with more than MaxHistograms layers shows its
//     largest;
//   - the share of each layer's weights that are zero, as bars;
//   - the SQNR of every intermediate value of a per-layer comparison
//     (verify.Options.PerLayer), as bars in topological order with the
//     first value outside the tolerance marked, and a table of them all;
//   - the verification: tolerance, inputs, and each output's error.
//
// Every section is present, and says why when it has nothing to show; the
// Section constants are their ids.
//
// # Use
//
// A command collects the models and what it knows of them in an Input,
// and Build measures them:
//
//	r, err := report.Build(report.Input{
//		Title:  "onnxopt prune model.onnx -o pruned.onnx",
//		Before: &report.Model{Role: "before", Name: path, Graph: original},
//		After:  &report.Model{Role: "after", Name: out, Graph: pruned},
//		Passes: passReports,            // from passes.Run, or nil
//		Verify: verifyReport,           // from verify.Models with PerLayer, or nil
//		Inputs: feeds, InputsName: "…", // what the latency is timed on, or nil
//	})
//	if err == nil {
//		err = r.WriteFile("report.html") // through a temporary file
//	}
//
// Build times each model's compiled plan (runtime.Compile) on Inputs: one
// untimed run, then Runs runs taking turns, and reports the median. The
// original model must be kept apart from the one the passes rewrite in
// place: load it again, or clone it (graph.FromProto of ToProto).
//
// In cmd/onnxopt, commands that rewrite a model (optimize, prune,
// quantize) add --report with the help reportUsage, keep the model as
// read, and after writing their output call writeRewriteReport with a
// rewrite: the paths, both models, the pass reports, env.Renamed, the
// inputs their --verify uses (or none, for seeded random ones) and the
// tolerance that suits a lossy change (an infinite ATol and RTol leave the
// SQNR to tell the error). It runs the per-layer comparison, builds the
// report and writes it; "onnxopt optimize" is the example.
package report
