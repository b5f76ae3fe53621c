package runtime

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
)

func TestControlSuiteCases(t *testing.T) {
	checkSuiteCases(t, []string{"node/test_if", "node/test_loop", "node/test_scan"}, []suiteCase{
		{path: "node/test_if"},
		{path: "node/test_if_opt"},
		{path: "node/test_if_seq"},
		{path: "node/test_loop11"},
		{path: "node/test_loop13_seq"},
		{path: "node/test_loop16_seq_none"},
		{path: "node/test_scan9_sum"},
		{path: "node/test_scan_sum"},
	})
}

func valueInfo(name string, dt onnx.TensorProto_DataType, dims ...int64) *onnx.ValueInfoProto {
	return &onnx.ValueInfoProto{Name: proto.String(name), Type: graph.TensorType(dt, graph.Known(dims...))}
}

func nodeProto(op string, in, out []string, attrs ...*onnx.AttributeProto) *onnx.NodeProto {
	return &onnx.NodeProto{OpType: proto.String(op), Input: in, Output: out, Attribute: attrs}
}

func graphAttr(name string, g *onnx.GraphProto) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_GRAPH.Enum(), G: g}
}

func constantNode(out string, t *Tensor) *onnx.NodeProto {
	tp, err := TensorToProto(out, t)
	if err != nil {
		panic(err)
	}
	return nodeProto("Constant", nil, []string{out},
		&onnx.AttributeProto{Name: proto.String("value"), Type: onnx.AttributeProto_TENSOR.Enum(), T: tp})
}

// compileProto compiles a model of graph g at the given opset.
func compileProto(t *testing.T, opset int64, g *onnx.GraphProto) *Plan {
	t.Helper()
	m, err := graph.FromProto(&onnx.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnx.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}},
		Graph:       g,
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(m.Graph)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func scalarI64(v int64) *Tensor {
	return &Tensor{DType: onnx.TensorProto_INT64, Shape: []int{}, Data: []int64{v}}
}

func scalarBoolTensor(v bool) *Tensor {
	return &Tensor{DType: onnx.TensorProto_BOOL, Shape: []int{}, Data: []bool{v}}
}

func wantFloats(t *testing.T, what string, got *Tensor, shape []int, want ...float32) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: missing", what)
	}
	if !slices.Equal(got.Shape, shape) {
		t.Fatalf("%s: shape %v, want %v", what, got.Shape, shape)
	}
	if g, ok := got.Data.([]float32); !ok || !slices.Equal(g, want) {
		t.Fatalf("%s: got %v, want %v", what, got.Data, want)
	}
}

// loopModel is a Loop whose body adds the outer value step to y, scans y
// and the iteration number, and continues while iter < limit (an outer
// input), up to M trips.
func loopModel(t *testing.T) *Plan {
	body := &onnx.GraphProto{
		Name: proto.String("body"),
		Node: []*onnx.NodeProto{
			nodeProto("Add", []string{"y_in", "step"}, []string{"y_out"}),
			nodeProto("Identity", []string{"y_out"}, []string{"y_scan"}),
			nodeProto("Identity", []string{"iter"}, []string{"iter_scan"}),
			nodeProto("Less", []string{"iter", "limit"}, []string{"cond_out"}),
		},
		Input: []*onnx.ValueInfoProto{
			valueInfo("iter", onnx.TensorProto_INT64), valueInfo("cond_in", onnx.TensorProto_BOOL),
			valueInfo("y_in", onnx.TensorProto_FLOAT, 2),
		},
		Output: []*onnx.ValueInfoProto{
			valueInfo("cond_out", onnx.TensorProto_BOOL), valueInfo("y_out", onnx.TensorProto_FLOAT, 2),
			valueInfo("y_scan", onnx.TensorProto_FLOAT, 2), valueInfo("iter_scan", onnx.TensorProto_INT64),
		},
	}
	return compileProto(t, 13, &onnx.GraphProto{
		Name: proto.String("loop"),
		Node: []*onnx.NodeProto{
			nodeProto("Loop", []string{"M", "cond", "y0"}, []string{"y", "ys", "iters"}, graphAttr("body", body)),
		},
		Input: []*onnx.ValueInfoProto{
			valueInfo("M", onnx.TensorProto_INT64), valueInfo("cond", onnx.TensorProto_BOOL),
			valueInfo("y0", onnx.TensorProto_FLOAT, 2), valueInfo("step", onnx.TensorProto_FLOAT, 2),
			valueInfo("limit", onnx.TensorProto_INT64),
		},
		Output: []*onnx.ValueInfoProto{
			valueInfo("y", onnx.TensorProto_FLOAT, 2), valueInfo("ys", onnx.TensorProto_FLOAT, -1, 2),
			valueInfo("iters", onnx.TensorProto_INT64, -1),
		},
	})
}

func TestLoop(t *testing.T) {
	p := loopModel(t)
	tests := []struct {
		name  string
		m     int64
		cond  bool
		limit int64
		y     []float32
		ys    []float32
		iters []int64
		trips int
	}{
		// M ends the loop: 3 trips.
		{"trip count", 3, true, 100, []float32{4, 23}, []float32{2, 21, 3, 22, 4, 23}, []int64{0, 1, 2}, 3},
		// cond_out = iter < 1 is false after the second trip.
		{"condition", 10, true, 1, []float32{3, 22}, []float32{2, 21, 3, 22}, []int64{0, 1}, 2},
		// A false initial cond runs no trip: y is y0, scans are empty.
		{"no trip", 10, false, 100, []float32{1, 20}, nil, nil, 0},
		{"zero trip count", 0, true, 100, []float32{1, 20}, nil, nil, 0},
		// After runs with other counts, buffers are reused.
		{"trip count again", 1, true, 100, []float32{2, 21}, []float32{2, 21}, []int64{0}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.Run(map[string]*Tensor{
				"M": scalarI64(tc.m), "cond": scalarBoolTensor(tc.cond), "limit": scalarI64(tc.limit),
				"y0": mustTensor(t, []float32{1, 20}, 2), "step": mustTensor(t, []float32{1, 1}, 2),
			})
			if err != nil {
				t.Fatal(err)
			}
			wantFloats(t, "y", got["y"], []int{2}, tc.y...)
			if tc.ys == nil {
				tc.ys = []float32{}
			}
			wantFloats(t, "ys", got["ys"], []int{tc.trips, 2}, tc.ys...)
			iters := got["iters"]
			if !slices.Equal(iters.Shape, []int{tc.trips}) || !slices.Equal(iters.Data.([]int64), append([]int64{}, tc.iters...)) {
				t.Fatalf("iters: got %v %v, want %v", iters.Shape, iters.Data, tc.iters)
			}
		})
	}
}

// Loop-carried values that swap each trip, passed through Identity (which
// returns its input): each trip must read the previous trip's values, not
// buffers the current trip overwrites.
func TestLoopSwapsCarriedValues(t *testing.T) {
	body := &onnx.GraphProto{
		Name: proto.String("body"),
		Node: []*onnx.NodeProto{
			nodeProto("Identity", []string{"b_in"}, []string{"a_out"}),
			nodeProto("Identity", []string{"a_in"}, []string{"b_out"}),
			nodeProto("Identity", []string{"cond_in"}, []string{"cond_out"}),
		},
		Input: []*onnx.ValueInfoProto{
			valueInfo("iter", onnx.TensorProto_INT64), valueInfo("cond_in", onnx.TensorProto_BOOL),
			valueInfo("a_in", onnx.TensorProto_FLOAT, 1), valueInfo("b_in", onnx.TensorProto_FLOAT, 1),
		},
		Output: []*onnx.ValueInfoProto{
			valueInfo("cond_out", onnx.TensorProto_BOOL),
			valueInfo("a_out", onnx.TensorProto_FLOAT, 1), valueInfo("b_out", onnx.TensorProto_FLOAT, 1),
		},
	}
	p := compileProto(t, 16, &onnx.GraphProto{
		Name:   proto.String("swap"),
		Node:   []*onnx.NodeProto{nodeProto("Loop", []string{"M", "", "a", "b"}, []string{"a_end", "b_end"}, graphAttr("body", body))},
		Input:  []*onnx.ValueInfoProto{valueInfo("M", onnx.TensorProto_INT64), valueInfo("a", onnx.TensorProto_FLOAT, 1), valueInfo("b", onnx.TensorProto_FLOAT, 1)},
		Output: []*onnx.ValueInfoProto{valueInfo("a_end", onnx.TensorProto_FLOAT, 1), valueInfo("b_end", onnx.TensorProto_FLOAT, 1)},
	})
	for trips, want := range [][2]float32{{1, 2}, {2, 1}, {1, 2}, {2, 1}, {1, 2}} {
		got, err := p.Run(map[string]*Tensor{"M": scalarI64(int64(trips)), "a": mustTensor(t, []float32{1}, 1), "b": mustTensor(t, []float32{2}, 1)})
		if err != nil {
			t.Fatal(err)
		}
		wantFloats(t, "a_end", got["a_end"], []int{1}, want[0])
		wantFloats(t, "b_end", got["b_end"], []int{1}, want[1])
	}
}

// An If in a Loop body, whose branches read the body's values and the
// outer graph's: y += 1 while iter < 2, then y += big (an outer input).
func TestIfInLoop(t *testing.T) {
	then := &onnx.GraphProto{
		Name:   proto.String("then"),
		Node:   []*onnx.NodeProto{constantNode("one", mustTensor(t, []float32{1}, 1)), nodeProto("Add", []string{"y_in", "one"}, []string{"then_y"})},
		Output: []*onnx.ValueInfoProto{valueInfo("then_y", onnx.TensorProto_FLOAT, 1)},
	}
	els := &onnx.GraphProto{
		Name:   proto.String("else"),
		Node:   []*onnx.NodeProto{nodeProto("Add", []string{"y_in", "big"}, []string{"else_y"})},
		Output: []*onnx.ValueInfoProto{valueInfo("else_y", onnx.TensorProto_FLOAT, 1)},
	}
	body := &onnx.GraphProto{
		Name: proto.String("body"),
		Node: []*onnx.NodeProto{
			constantNode("two", scalarI64(2)),
			nodeProto("Less", []string{"iter", "two"}, []string{"small"}),
			nodeProto("If", []string{"small"}, []string{"y_out"}, graphAttr("then_branch", then), graphAttr("else_branch", els)),
			nodeProto("Identity", []string{"cond_in"}, []string{"cond_out"}),
		},
		Input: []*onnx.ValueInfoProto{
			valueInfo("iter", onnx.TensorProto_INT64), valueInfo("cond_in", onnx.TensorProto_BOOL),
			valueInfo("y_in", onnx.TensorProto_FLOAT, 1),
		},
		Output: []*onnx.ValueInfoProto{valueInfo("cond_out", onnx.TensorProto_BOOL), valueInfo("y_out", onnx.TensorProto_FLOAT, 1)},
	}
	p := compileProto(t, 13, &onnx.GraphProto{
		Name:   proto.String("if_in_loop"),
		Node:   []*onnx.NodeProto{nodeProto("Loop", []string{"M", "", "y0"}, []string{"y"}, graphAttr("body", body))},
		Input:  []*onnx.ValueInfoProto{valueInfo("M", onnx.TensorProto_INT64), valueInfo("y0", onnx.TensorProto_FLOAT, 1), valueInfo("big", onnx.TensorProto_FLOAT, 1)},
		Output: []*onnx.ValueInfoProto{valueInfo("y", onnx.TensorProto_FLOAT, 1)},
	})
	for _, tc := range []struct {
		m    int64
		want float32
	}{{4, 202}, {1, 1}, {3, 102}} {
		got, err := p.Run(map[string]*Tensor{"M": scalarI64(tc.m), "y0": mustTensor(t, []float32{0}, 1), "big": mustTensor(t, []float32{100}, 1)})
		if err != nil {
			t.Fatal(err)
		}
		wantFloats(t, "y", got["y"], []int{1}, tc.want)
	}
}

// Scan-9 with a reversed scan input along axis 1, a forward one along axis
// 0, and scan outputs stacked along axis 1 (one reversed): the state sums
// the slices, and the scan outputs are the running sums and products.
func TestScanAxesAndDirections(t *testing.T) {
	body := &onnx.GraphProto{
		Name: proto.String("body"),
		Node: []*onnx.NodeProto{
			nodeProto("Add", []string{"sum_in", "a_t"}, []string{"sum_out"}),
			nodeProto("Mul", []string{"a_t", "b_t"}, []string{"prod"}),
			nodeProto("Identity", []string{"sum_out"}, []string{"sum_scan"}),
		},
		Input: []*onnx.ValueInfoProto{
			valueInfo("sum_in", onnx.TensorProto_FLOAT, 2), valueInfo("a_t", onnx.TensorProto_FLOAT, 2),
			valueInfo("b_t", onnx.TensorProto_FLOAT, 2),
		},
		Output: []*onnx.ValueInfoProto{
			valueInfo("sum_out", onnx.TensorProto_FLOAT, 2), valueInfo("sum_scan", onnx.TensorProto_FLOAT, 2),
			valueInfo("prod", onnx.TensorProto_FLOAT, 2),
		},
	}
	p := compileProto(t, 11, &onnx.GraphProto{
		Name: proto.String("scan"),
		Node: []*onnx.NodeProto{nodeProto("Scan", []string{"init", "a", "b"}, []string{"sum", "sums", "prods"},
			graphAttr("body", body),
			intAttr("num_scan_inputs", 2),
			intsAttr("scan_input_axes", -1, 0),
			intsAttr("scan_input_directions", 1, 0),
			intsAttr("scan_output_axes", 1, -1),
			intsAttr("scan_output_directions", 0, 1),
		)},
		Input: []*onnx.ValueInfoProto{
			valueInfo("init", onnx.TensorProto_FLOAT, 2), valueInfo("a", onnx.TensorProto_FLOAT, 2, 3),
			valueInfo("b", onnx.TensorProto_FLOAT, 3, 2),
		},
		Output: []*onnx.ValueInfoProto{
			valueInfo("sum", onnx.TensorProto_FLOAT, 2), valueInfo("sums", onnx.TensorProto_FLOAT, 2, 3),
			valueInfo("prods", onnx.TensorProto_FLOAT, 2, 3),
		},
	})
	// a's columns, last first: [3 6], [2 5], [1 4]; b's rows in order:
	// [1 10], [2 20], [3 30].
	a := mustTensor(t, []float32{1, 2, 3, 4, 5, 6}, 2, 3)
	b := mustTensor(t, []float32{1, 10, 2, 20, 3, 30}, 3, 2)
	for range 2 {
		got, err := p.Run(map[string]*Tensor{"init": mustTensor(t, []float32{100, 200}, 2), "a": a, "b": b})
		if err != nil {
			t.Fatal(err)
		}
		wantFloats(t, "sum", got["sum"], []int{2}, 106, 215)
		// Running sums, step along axis 1: [103 206], [105 211], [106 215].
		wantFloats(t, "sums", got["sums"], []int{2, 3}, 103, 105, 106, 206, 211, 215)
		// Products per step [3 60], [4 100], [3 120], stored last first.
		wantFloats(t, "prods", got["prods"], []int{2, 3}, 3, 4, 3, 120, 100, 60)
	}
}

// An If whose branches return an outer-scope value and a constant.
func TestIfOuterScope(t *testing.T) {
	then := &onnx.GraphProto{
		Name:   proto.String("then"),
		Node:   []*onnx.NodeProto{nodeProto("Identity", []string{"x"}, []string{"then_out"})},
		Output: []*onnx.ValueInfoProto{valueInfo("then_out", onnx.TensorProto_FLOAT, 2)},
	}
	els := &onnx.GraphProto{
		Name:   proto.String("else"),
		Node:   []*onnx.NodeProto{constantNode("else_out", mustTensor(t, []float32{7, 8, 9}, 3))},
		Output: []*onnx.ValueInfoProto{valueInfo("else_out", onnx.TensorProto_FLOAT, 3)},
	}
	p := compileProto(t, 13, &onnx.GraphProto{
		Name: proto.String("if"),
		Node: []*onnx.NodeProto{nodeProto("If", []string{"c"}, []string{"y"}, graphAttr("then_branch", then), graphAttr("else_branch", els))},
		Input: []*onnx.ValueInfoProto{
			// c's shape is left unknown, for the kernel to check.
			{Name: proto.String("c"), Type: graph.TensorType(onnx.TensorProto_BOOL, nil)},
			valueInfo("x", onnx.TensorProto_FLOAT, 2),
		},
		Output: []*onnx.ValueInfoProto{valueInfo("y", onnx.TensorProto_FLOAT, -1)},
	})
	for _, c := range []bool{true, false, true} {
		got, err := p.Run(map[string]*Tensor{"c": scalarBoolTensor(c), "x": mustTensor(t, []float32{1, 2}, 2)})
		if err != nil {
			t.Fatal(err)
		}
		if c {
			wantFloats(t, "then", got["y"], []int{2}, 1, 2)
		} else {
			wantFloats(t, "else", got["y"], []int{3}, 7, 8, 9)
		}
	}
	_, err := p.Run(map[string]*Tensor{"c": &Tensor{DType: onnx.TensorProto_BOOL, Shape: []int{2}, Data: []bool{true, false}}, "x": mustTensor(t, []float32{1, 2}, 2)})
	if err == nil || !strings.Contains(err.Error(), "cond must be one bool") {
		t.Fatalf("two-element cond: error %v", err)
	}
}
