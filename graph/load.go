package graph

import (
	"fmt"

	"onnxopt/onnx"
)

// Load reads an ONNX model file, with its external data, into the IR.
// Malformed files and tensors, and external-data paths that leave the
// model's folder, are refused with an error naming the problem.
func Load(path string) (*Model, error) {
	return LoadWith(path, onnx.ReadOptions{})
}

// LoadWith is Load with options for reading the file: a Progress
// callback.
func LoadWith(path string, opt onnx.ReadOptions) (*Model, error) {
	mp, err := opt.ReadModel(path)
	if err != nil {
		return nil, err
	}
	m, err := FromProto(mp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Save writes the model to path through a temporary file renamed into
// place, so that a failure leaves no partial file.
func (m *Model) Save(path string, opt onnx.WriteOptions) error {
	return onnx.WriteModel(path, m.ToProto(), opt)
}

// LoadRefs reads a model without reading its external data (see
// onnx.ReadModelRefs): initializers stored outside keep their references,
// so a model of any size loads in little memory. Such a model can be
// inspected and verified but not saved or run.
func LoadRefs(path string) (*Model, []onnx.ExternalRef, error) {
	mp, refs, err := onnx.ReadModelRefs(path)
	if err != nil {
		return nil, nil, err
	}
	m, err := FromProto(mp)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, refs, nil
}
