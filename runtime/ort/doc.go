// Package ort runs ONNX models with ONNX Runtime, the reference runtime that
// onnxopt checks its own results against and measures its speed beside.
//
// ONNX Runtime is a C++ library loaded at run time from a shared object, so
// sessions need cgo: built with CGO_ENABLED=0 this package still compiles
// (Tensor, IOInfo and the TensorProto conversions work), but Open and
// OpenBytes return an error saying that cgo is required. Keeping the cgo
// dependency in this package alone lets the rest of onnxopt build as one
// static binary.
//
// The shared library is found by LibraryPath: the file named by the ORT_LIB
// environment variable, else the one that scripts/install-ort.sh installs
// (ONNX Runtime 1.30 taken from the onnxruntime-node npm package).
//
// Tensors cross the boundary as Tensor values: an ONNX data type, a shape
// and a flat Go slice in row-major order. FromProto and Tensor.Proto convert
// them to and from the onnx.TensorProto messages that ONNX test data and
// initializers use.
package ort
