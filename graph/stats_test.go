package graph_test

import (
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// TestStatsNonZero checks the non-zero count of initializers of every
// integer width, in raw_data and in typed fields, of BOOL, and of floats
// with a negative zero, against counts made by hand.
func TestStatsNonZero(t *testing.T) {
	tensors := []struct {
		dt      onnx.DataType
		n       int64
		values  any
		nonZero int64
	}{
		{onnx.TensorProto_INT8, 5, []int8{0, -1, 0, 127, -128}, 3},
		{onnx.TensorProto_UINT8, 3, []uint8{0, 0, 255}, 1},
		{onnx.TensorProto_BOOL, 3, []bool{true, false, true}, 2},
		{onnx.TensorProto_INT16, 4, []int16{0, 256, 1, -1}, 3},
		{onnx.TensorProto_UINT16, 2, []uint16{0, 256}, 1},
		{onnx.TensorProto_INT32, 4, []int32{0, 1 << 24, 0, -1}, 2},
		{onnx.TensorProto_UINT32, 2, []uint32{1 << 31, 0}, 1},
		{onnx.TensorProto_INT64, 5, []int64{0, 1 << 40, 0, 0, -1 << 63}, 2},
		{onnx.TensorProto_UINT64, 2, []uint64{0, 0}, 0},
		{onnx.TensorProto_FLOAT, 3, []float32{0, float32(math.Copysign(0, -1)), 0.5}, 1},
		{onnx.TensorProto_DOUBLE, 2, []float64{math.Copysign(0, -1), 2}, 1},
	}
	for _, tc := range tensors {
		raw, err := onnx.NewTensor("raw", tc.dt, []int64{tc.n}, tc.values)
		if err != nil {
			t.Fatal(err)
		}
		cases := []*onnx.TensorProto{raw}
		switch v := tc.values.(type) {
		case []int32:
			cases = append(cases, &onnx.TensorProto{Name: proto.String("typed"), DataType: proto.Int32(int32(tc.dt)), Dims: raw.Dims, Int32Data: v})
		case []int64:
			cases = append(cases, &onnx.TensorProto{Name: proto.String("typed"), DataType: proto.Int32(int32(tc.dt)), Dims: raw.Dims, Int64Data: v})
		}
		for _, init := range cases {
			m := graph.NewModel(8, graph.Opset{Version: 17})
			m.Graph.AddInitializer(init)
			if got := m.Stats().NonZero; got != tc.nonZero {
				t.Errorf("%v %s %v: %d non-zero, want %d", tc.dt, init.GetName(), tc.values, got, tc.nonZero)
			}
		}
	}
}
