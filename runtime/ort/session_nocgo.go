//go:build !cgo

package ort

import "errors"

// errNoCgo is returned by every session operation in a binary built with
// CGO_ENABLED=0: ONNX Runtime is a C++ shared library that only cgo can load.
var errNoCgo = errors.New("ort: ONNX Runtime needs cgo; this binary was built with CGO_ENABLED=0 (rebuild with CGO_ENABLED=1 and a C compiler)")

// Session is a model loaded into ONNX Runtime. Without cgo none can be
// opened.
type Session struct{}

// Open returns an error: ONNX Runtime needs cgo.
func Open(modelPath string, opts Options) (*Session, error) { return nil, errNoCgo }

// OpenBytes returns an error: ONNX Runtime needs cgo.
func OpenBytes(model []byte, opts Options) (*Session, error) { return nil, errNoCgo }

// Inputs returns nil: no session exists without cgo.
func (s *Session) Inputs() []IOInfo { return nil }

// Outputs returns nil: no session exists without cgo.
func (s *Session) Outputs() []IOInfo { return nil }

// Run returns an error: ONNX Runtime needs cgo.
func (s *Session) Run(inputs map[string]*Tensor) (map[string]*Tensor, error) { return nil, errNoCgo }

// Close does nothing.
func (s *Session) Close() error { return nil }
