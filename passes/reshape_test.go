package passes

import (
	"strings"
	"testing"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// reshape adds a Reshape of x to a constant shape.
func (b *builder) reshape(out string, x *graph.Value, shape ...int64) *graph.Value {
	return b.node("Reshape", out, x, b.tensor(out+"_shape", onnx.TensorProto_INT64, []int64{int64(len(shape))}, shape))
}

func TestReshape(t *testing.T) {
	batch := graph.Shape{{Param: "N"}, {Value: 12, Known: true}}
	checkRewrites(t, "reshape", []rewriteCase{
		{"chain", 13, func(b *builder) {
			x := b.input("x", 2, 3, 4)
			b.output(b.node("Relu", "y", b.reshape("r2", b.reshape("r1", x, 6, 4), 4, -1)))
		}, "Reshape Relu", 2},
		{"0 copying the intermediate size stays", 13, func(b *builder) {
			x := b.input("x", 2, 3, 4)
			b.output(b.node("Relu", "y", b.reshape("r2", b.reshape("r1", x, 6, 4), 0, 2, 2)))
		}, "Reshape Reshape Relu", 0},
		{"0 as a size with allowzero", 14, func(b *builder) {
			x := b.input("x", 2, 3, 4)
			r2 := b.reshape("r2", b.reshape("r1", x, 6, 4), 4, 6)
			r2.Producer.SetAttr(intAttr("allowzero", 1))
			b.output(b.node("Relu", "y", r2))
		}, "Reshape Relu", 2},
		{"Flatten", 13, func(b *builder) {
			x := b.input("x", 2, 3, 4)
			b.output(b.node("Relu", "y", b.reshape("r", b.node("Flatten", "f", x), 4, 6)))
		}, "Reshape Relu", 2},
		{"Unsqueeze", 13, func(b *builder) {
			x := b.input("x", 2, 3, 4)
			u := b.node("Unsqueeze", "u", x, b.tensor("axes", onnx.TensorProto_INT64, []int64{1}, []int64{0}))
			b.output(b.node("Relu", "y", b.reshape("r", u, 24)))
		}, "Reshape Relu", 2},
		{"back to the input's shape", 13, func(b *builder) {
			x := b.input("x", 2, 3, 4)
			b.output(b.node("Relu", "y", b.reshape("r2", b.reshape("r1", x, 6, 4), 2, 3, 4)))
		}, "Relu", 2},
		{"own shape with a dynamic batch", 13, func(b *builder) {
			x := b.typedInput("x", onnx.TensorProto_FLOAT, batch)
			b.output(b.node("Relu", "y", b.reshape("r", x, -1, 12)))
		}, "Relu", 1},
		{"own shape copied with a dynamic batch", 13, func(b *builder) {
			x := b.typedInput("x", onnx.TensorProto_FLOAT, batch)
			b.output(b.node("Relu", "y", b.reshape("r", x, 0, 12)))
		}, "Relu", 1},
		{"-1 beside an unknown size stays", 13, func(b *builder) {
			x := b.typedInput("x", onnx.TensorProto_FLOAT, batch)
			b.output(b.node("Relu", "y", b.reshape("r", x, 0, -1)))
		}, "Reshape Relu", 0},
		{"Squeeze of nothing", 13, func(b *builder) {
			b.output(b.node("Relu", "y", b.node("Squeeze", "s", b.input("x", 2, 3))))
		}, "Relu", 1},
		{"shape attribute before opset 5", 4, func(b *builder) {
			x := b.input("x", 2, 3, 4)
			r1 := b.node("Reshape", "r1", x)
			r1.Producer.SetAttr(intsAttr("shape", 6, 4))
			r2 := b.node("Reshape", "r2", r1)
			r2.Producer.SetAttr(intsAttr("shape", 2, 12))
			b.output(b.node("Relu", "y", r2))
		}, "Reshape Relu", 2},
		{"graph output keeps its name", 13, func(b *builder) {
			b.output(b.reshape("y", b.node("Relu", "r", b.input("x", 2, 3)), 2, 3))
		}, "Relu", 1},
	}, func(t *testing.T, b *builder, tc rewriteCase) {
		for _, n := range b.g.Nodes {
			if n.OpType == "Reshape" && n.Inputs[0].Name != "x" && tc.changes > 0 {
				t.Errorf("Reshape %s reads %q, want x", n.Name, n.Inputs[0].Name)
			}
		}
	})
}

func TestReshapeInSubgraphs(t *testing.T) {
	outer := []*onnx.TensorProto{
		tensorProto(t, "a", onnx.TensorProto_FLOAT, []int64{3}, []float32{1, 2, 3}),
		tensorProto(t, "flat", onnx.TensorProto_INT64, []int64{1}, []int64{6}),
		tensorProto(t, "square", onnx.TensorProto_INT64, []int64{2}, []int64{2, 3}),
	}
	m := ifModel(t, 13, outer, []*onnx.NodeProto{
		nodeProto("Reshape", []string{"x", "flat"}, "r1"),
		nodeProto("Reshape", []string{"r1", "square"}, "r2"),
		nodeProto("Add", []string{"r2", "a"}, "r"),
	}, nil)
	res := checkPass(t, m, "reshape")
	if got := strings.Join(branches(m), ", "); got != "Add, Add" || res.Changes != 4 {
		t.Errorf("branches %q, %d changes; want Add, Add and 4", got, res.Changes)
	}
}
