package ort

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/onnx"
)

// identityModel returns a model whose output y is its input x passed
// through Identity. shape declares both: a negative entry is a named
// dynamic dimension, and a nil shape declares none, so not even the rank is
// known.
func identityModel(t testing.TB, dtype int32, shape []int64) []byte {
	t.Helper()
	valueInfo := func(name string) *onnx.ValueInfoProto {
		tensorType := &onnx.TypeProto_Tensor{ElemType: proto.Int32(dtype)}
		if shape != nil {
			tensorType.Shape = &onnx.TensorShapeProto{Dim: []*onnx.TensorShapeProto_Dimension{}}
			for _, d := range shape {
				dim := &onnx.TensorShapeProto_Dimension{}
				if d < 0 {
					dim.Value = &onnx.TensorShapeProto_Dimension_DimParam{DimParam: "n"}
				} else {
					dim.Value = &onnx.TensorShapeProto_Dimension_DimValue{DimValue: d}
				}
				tensorType.Shape.Dim = append(tensorType.Shape.Dim, dim)
			}
		}
		return &onnx.ValueInfoProto{
			Name: proto.String(name),
			Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: tensorType}},
		}
	}
	model := &onnx.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnx.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &onnx.GraphProto{
			Name:   proto.String("identity"),
			Node:   []*onnx.NodeProto{{OpType: proto.String("Identity"), Input: []string{"x"}, Output: []string{"y"}}},
			Input:  []*onnx.ValueInfoProto{valueInfo("x")},
			Output: []*onnx.ValueInfoProto{valueInfo("y")},
		},
	}
	b, err := proto.Marshal(model)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
