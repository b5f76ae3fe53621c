package runtime

import (
	"strings"
	"testing"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// TestCompileRejects checks that Compile refuses, naming the node, op type
// and opset, graphs it cannot run: shapes that disagree, and ops it lacks.
func TestCompileRejects(t *testing.T) {
	build := func(op string, a, b graph.Shape) *graph.Graph {
		m := graph.NewModel(8, graph.Opset{Version: 13})
		g := m.Graph
		x, w := g.Value("x"), g.Value("w")
		x.SetTensorType(onnx.TensorProto_FLOAT, a)
		w.SetTensorType(onnx.TensorProto_FLOAT, b)
		g.Inputs = []*graph.Value{x, w}
		y := g.Value("y")
		if _, err := g.NewNode(op, "layer", []*graph.Value{x, w}, []*graph.Value{y}); err != nil {
			t.Fatal(err)
		}
		g.Outputs = []*graph.Value{y}
		return g
	}
	for _, tc := range []struct {
		name string
		g    *graph.Graph
		want string
	}{
		{"broadcast", build("Add", graph.Known(2, 3), graph.Known(4)), `node "layer" (Add) opset 13: cannot broadcast`},
		{"matmul", build("MatMul", graph.Known(2, 3), graph.Known(4, 5)), `node "layer" (MatMul) opset 13: MatMul inner dimensions differ`},
		{"conv channels", build("Conv", graph.Known(1, 3, 8, 8), graph.Known(4, 2, 3, 3)), `node "layer" (Conv) opset 13: Conv input has 3 channels`},
		{"unsupported", build("NoSuchOp", graph.Known(2), graph.Known(2)), `unsupported op NoSuchOp (ai.onnx, opset 13) at node "layer"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.g)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestRunRejectsInputs checks the inputs a caller passes against the
// graph's declared inputs.
func TestRunRejectsInputs(t *testing.T) {
	m := graph.NewModel(8, graph.Opset{Version: 13})
	g := m.Graph
	x := g.Value("x")
	x.SetTensorType(onnx.TensorProto_FLOAT, graph.Shape{{Param: "batch"}, {Value: 3, Known: true}})
	g.Inputs = []*graph.Value{x}
	y := g.Value("y")
	if _, err := g.NewNode("Relu", "relu", []*graph.Value{x}, []*graph.Value{y}); err != nil {
		t.Fatal(err)
	}
	g.Outputs = []*graph.Value{y}
	plan, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	ok, _ := FromSlice([]float32{1, -2, 3, -4, 5, -6}, 2, 3)
	if out, err := plan.Run(map[string]*Tensor{"x": ok}); err != nil || out["y"].Data.([]float32)[1] != 0 {
		t.Fatalf("valid input: %v %v", out, err)
	}
	ints, _ := FromSlice([]int64{1, 2, 3}, 1, 3)
	rank, _ := FromSlice([]float32{1, 2, 3}, 3)
	width, _ := FromSlice([]float32{1, 2, 3, 4}, 1, 4)
	short := &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{2, 3}, Data: []float32{1, 2}}
	lying := &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{1, 3}, Data: []float64{1, 2, 3}}
	for _, tc := range []struct {
		in   map[string]*Tensor
		want string
	}{
		{map[string]*Tensor{}, `input "x" is not given`},
		{map[string]*Tensor{"x": ok, "z": ok}, `no input "z"`},
		{map[string]*Tensor{"x": ints}, `input "x": got int64, want float`},
		{map[string]*Tensor{"x": rank}, `input "x": got rank 1`},
		{map[string]*Tensor{"x": width}, `input "x": got shape [1 4]`},
		{map[string]*Tensor{"x": short}, `input "x": 2 elements do not fill shape [2 3]`},
		{map[string]*Tensor{"x": lying}, `input "x": []float64 does not hold float`},
	} {
		if _, err := plan.Run(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run: %v; want an error containing %q", err, tc.want)
		}
	}
}
