package runtime

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
)

func TestRunNode(t *testing.T) {
	opsets := []graph.Opset{{Domain: "", Version: 13}}
	x := mustTensor(t, []float32{-2, 0.5, 3}, 3)

	// The same tensor for both inputs, against values worked out by hand.
	got, err := RunNode(NodeCall{IRVersion: 8, Opsets: opsets, OpType: "Mul", Name: "square",
		Inputs: []*Tensor{x, x}, Outputs: []bool{true}})
	if err != nil {
		t.Fatal(err)
	}
	wantData(t, "Mul(x, x)", got[0], f32T, []int{3}, []float32{4, 0.25, 9})

	// An omitted optional input (Clip's min) and an omitted output
	// (Dropout's mask).
	got, err = RunNode(NodeCall{IRVersion: 8, Opsets: opsets, OpType: "Clip", Name: "clip",
		Inputs: []*Tensor{x, nil, mustTensor(t, []float32{1})}, Outputs: []bool{true}})
	if err != nil {
		t.Fatal(err)
	}
	wantData(t, "Clip(x, max=1)", got[0], f32T, []int{3}, []float32{-2, 0.5, 1})
	got, err = RunNode(NodeCall{IRVersion: 8, Opsets: opsets, OpType: "Dropout", Name: "dropout",
		Inputs: []*Tensor{x}, Outputs: []bool{true, false}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1] != nil {
		t.Fatalf("Dropout without its mask returned %v, want the output and nil", got)
	}
	wantData(t, "Dropout(x)", got[0], f32T, []int{3}, []float32{-2, 0.5, 3})

	// Attributes: along axis 0 every column holds equal values, along
	// the default last axis it would not.
	axis := &onnx.AttributeProto{Name: proto.String("axis"), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(0)}
	got, err = RunNode(NodeCall{IRVersion: 8, Opsets: opsets, OpType: "Softmax", Name: "softmax", Attrs: []*onnx.AttributeProto{axis},
		Inputs: []*Tensor{mustTensor(t, []float32{1, 2, 1, 2}, 2, 2)}, Outputs: []bool{true}})
	if err != nil {
		t.Fatal(err)
	}
	wantData(t, "Softmax axis 0", got[0], f32T, []int{2, 2}, []float32{0.5, 0.5, 0.5, 0.5})

	// Errors name the node.
	_, err = RunNode(NodeCall{IRVersion: 8, Opsets: opsets, OpType: "Add", Name: "bad_add",
		Inputs: []*Tensor{x, mustTensor(t, []float32{1, 2}, 2)}, Outputs: []bool{true}})
	if err == nil || !strings.Contains(err.Error(), "bad_add") {
		t.Errorf("Add of shapes [3] and [2]: error %v, want one naming the node", err)
	}
}
