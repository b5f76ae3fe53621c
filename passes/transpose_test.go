package passes

import (
	"slices"
	"strings"
	"testing"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// transpose adds a Transpose of x; no perm leaves the attribute out.
func (b *builder) transpose(out string, x *graph.Value, perm ...int64) *graph.Value {
	y := b.node("Transpose", out, x)
	if perm != nil {
		y.Producer.SetAttr(intsAttr("perm", perm...))
	}
	return y
}

func TestTranspose(t *testing.T) {
	checkRewrites(t, "transpose", []rewriteCase{
		{"fused", 13, func(b *builder) {
			x := b.input("x", 2, 3, 4)
			b.output(b.node("Relu", "y", b.transpose("t2", b.transpose("t1", x, 1, 0, 2), 0, 2, 1)))
		}, "Transpose Relu", 2},
		{"three fused", 13, func(b *builder) {
			x := b.input("x", 2, 3, 4, 5)
			t := b.transpose("t3", b.transpose("t2", b.transpose("t1", x, 1, 0, 2, 3), 0, 2, 3, 1), 3, 1, 0, 2)
			b.output(b.node("Relu", "y", t))
		}, "Transpose Relu", 3},
		{"cancelled", 13, func(b *builder) {
			x := b.input("x", 2, 3, 4)
			b.output(b.node("Relu", "y", b.transpose("t2", b.transpose("t1", x, 1, 2, 0), 2, 0, 1)))
		}, "Relu", 2},
		{"default perms cancel", 13, func(b *builder) {
			x := b.input("x", 2, 3, 4)
			b.output(b.node("Relu", "y", b.transpose("t2", b.transpose("t1", x))))
		}, "Relu", 2},
		{"identity perm", 13, func(b *builder) {
			b.output(b.node("Relu", "y", b.transpose("t", b.input("x", 2, 3), 0, 1)))
		}, "Relu", 1},
		{"first read elsewhere stays", 13, func(b *builder) {
			x := b.input("x", 2, 3, 4)
			t1 := b.transpose("t1", x, 1, 0, 2)
			b.output(b.node("Relu", "y", t1), b.node("Neg", "z", b.transpose("t2", t1, 1, 0, 2)))
		}, "Transpose Relu Neg", 1},
		{"graph output keeps its name", 13, func(b *builder) {
			r := b.node("Relu", "r", b.input("x", 2, 3))
			b.output(b.transpose("y", b.transpose("t", r, 1, 0), 1, 0))
		}, "Relu", 2},
	}, func(t *testing.T, b *builder, tc rewriteCase) {
		for _, n := range b.g.Nodes {
			if n.OpType != "Transpose" {
				continue
			}
			want := map[string][]int64{"fused": {1, 2, 0}, "three fused": {0, 2, 1, 3}, "first read elsewhere stays": {1, 0, 2}}[tc.name]
			if got := n.AttrInts("perm", nil); n.Inputs[0].Name != "x" || !slices.Equal(got, want) {
				t.Errorf("Transpose %s of %q, perm %v; want %v of x", n.Name, n.Inputs[0].Name, got, want)
			}
		}
	})
}

func TestTransposeInSubgraphs(t *testing.T) {
	outer := []*onnx.TensorProto{tensorProto(t, "a", onnx.TensorProto_FLOAT, []int64{3}, []float32{1, 2, 3})}
	transpose := func(in, out string) *onnx.NodeProto {
		n := nodeProto("Transpose", []string{in}, out)
		n.Attribute = append(n.Attribute, intsAttr("perm", 1, 0))
		return n
	}
	m := ifModel(t, 13, outer, []*onnx.NodeProto{
		transpose("x", "t1"),
		transpose("t1", "t2"),
		nodeProto("Add", []string{"t2", "a"}, "r"),
	}, nil)
	res := checkPass(t, m, "transpose")
	if got := strings.Join(branches(m), ", "); got != "Add, Add" || res.Changes != 4 {
		t.Errorf("branches %q, %d changes; want Add, Add and 4", got, res.Changes)
	}
}
