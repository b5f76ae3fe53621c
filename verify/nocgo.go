//go:build !cgo

package verify

// cgoEnabled tells whether ONNX Runtime can be loaded at all: only a cgo
// binary can.
const cgoEnabled = false
