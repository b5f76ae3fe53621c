// Package verify checks numeric parity: it runs a reference model and a
// candidate (the reference pruned, quantized or otherwise rewritten) on
// the same inputs and measures how far the candidate's outputs are from
// the reference's, or checks one model against stored expected outputs.
//
// For each output it reports the largest and the mean absolute error, the
// largest relative error, the cosine similarity, the SQNR in decibels
// (10·log10 of the reference's energy over the error's: +Inf when the
// outputs are identical) and, for classifier-shaped outputs ([N, C]
// floats), the fraction of rows whose top-1 class agrees. A Tolerance
// turns them into pass or fail. Inputs come as Cases: seeded random data
// (runtime.RandomInputs), files, the ONNX test-data layout (ReadTestData)
// or a batch of independent samples along axis 0 (Batch), which is run
// batched and checked sample by sample, reporting each output's worst.
//
// Per-layer comparison runs both models in onnxopt's runtime and fetches
// every intermediate value the two graphs share, by name or through a map
// of the names passes changed (passes.Env.Renamed, ReadNameMap). The
// values come in the reference's topological order with the first one
// outside the tolerance marked, which points at the layer that a rewrite
// broke, and the ten worst by SQNR.
//
// The candidate can also run in ONNX Runtime (Backend ORT or Both), which
// needs a cgo binary and the library that scripts/install-ort.sh installs;
// ORTAvailable says what is missing. ONNX Runtime returns graph outputs
// only, so per-layer comparison uses onnxopt's runtime.
//
// Reports marshal to JSON with every non-finite number written as null:
// an SQNR of null with "identical": true is +Inf (identical values).
package verify
