// Package onnx reads, writes and decodes ONNX models.
//
// The message types (ModelProto, GraphProto, TensorProto, ...) are generated
// from onnx.proto, a proto2 schema with the field numbers of ONNX IR version
// 11. The hand-written part of the package adds:
//
//   - DataType, the element type of a tensor, with its width and kind;
//   - a tensor codec: Decode, Float32s, Float64s and Int64s read a
//     TensorProto whichever field holds its data, Encode, SetFloat32s and
//     NewTensor write one, and ValidateTensor checks that the data matches
//     the shape;
//   - conversions between float32 and the narrow float formats of ONNX
//     (float16, bfloat16, the float8 variants and float4), rounding to
//     nearest even with the saturation rules of the Cast operator;
//   - ReadModel, ParseModel and WriteModel, which load and save models with
//     or without external data.
//
// Loaded models never refer to external data: ReadModel moves every
// external tensor into raw_data, so the rest of onnxopt sees the same model
// whether it was saved in one file or two. WriteModel decides again where
// the data goes.
//
// Large raw_data fields of a loaded model share memory with the file it was
// read from (the model file's buffer, or a private, copy-on-write memory
// map of an external data file), and Float32s may return a slice
// that shares memory with raw_data. Treat such slices as read-only; replace
// tensor data with Encode or SetFloat32s instead of writing into it.
package onnx
