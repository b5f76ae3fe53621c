package graph

import (
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"

	"onnxopt/onnx"
)

// Load reads an ONNX model file into the IR.
// TODO(lead): read through onnx.ReadModel (external data, validation) when it lands.
func Load(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := FromProto(mp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
