package passes

import (
	"strings"
	"testing"

	"onnxopt/graph"
	"onnxopt/onnx"
)

func TestCSE(t *testing.T) {
	gemm := func(b *builder, out string, x, w *graph.Value, attrs ...int64) *graph.Value {
		y := b.node("Gemm", out, x, w)
		y.Producer.SetAttr(floatAttr("alpha", float32(attrs[0])))
		y.Producer.SetAttr(intAttr("transB", attrs[1]))
		return y
	}
	checkRewrites(t, "cse", []rewriteCase{
		{"repeated node", 13, func(b *builder) {
			x := b.input("x", 2, 3)
			b.output(b.node("Add", "y", b.node("Relu", "a", x), b.node("Relu", "b", x)))
		}, "Relu Add", 1},
		{"repeated chain", 13, func(b *builder) {
			x := b.input("x", 2, 3)
			n1 := b.node("Neg", "n1", b.node("Exp", "e1", x))
			n2 := b.node("Neg", "n2", b.node("Exp", "e2", x))
			b.output(b.node("Mul", "y", n1, n2))
		}, "Exp Neg Mul", 2},
		{"attributes in another order", 13, func(b *builder) {
			x, w := b.input("x", 2, 3), b.weights("w", 1, -1, 1, 3, 3)
			g1 := gemm(b, "g1", x, w, 2, 1)
			g2 := b.node("Gemm", "g2", x, w)
			g2.Producer.SetAttr(intAttr("transB", 1))
			g2.Producer.SetAttr(floatAttr("alpha", 2))
			g3 := gemm(b, "g3", x, w, 3, 1)
			b.output(b.node("Add", "y", b.node("Add", "s", g1, g2), g3))
		}, "Gemm Gemm Add Add", 1},
		{"inputs in another order", 13, func(b *builder) {
			x, c := b.input("x", 2), b.init("c", []int64{2}, 1, 2)
			b.output(b.node("Mul", "y", b.node("Sub", "a", x, c), b.node("Sub", "b", c, x)))
		}, "Sub Sub Mul", 0},
		{"a repeat that is a graph output keeps its name", 13, func(b *builder) {
			x := b.input("x", 2)
			a := b.node("Relu", "a", x)
			b.output(b.node("Relu", "y", x), b.node("Neg", "z", a))
		}, "Relu Neg", 1},
		{"two graph outputs stay apart", 13, func(b *builder) {
			x := b.input("x", 2)
			b.output(b.node("Relu", "y", x), b.node("Relu", "z", x))
		}, "Relu Relu", 0},
		{"identical initializers", 13, func(b *builder) {
			x := b.input("x", 3)
			c1 := b.init("c1", []int64{3}, 1, 2, 3)
			// The same numbers in float_data rather than raw_data.
			c2 := b.g.AddInitializer(&onnx.TensorProto{DataType: c1.Init.DataType, Dims: []int64{3}, FloatData: []float32{1, 2, 3}})
			b.output(b.node("Mul", "y", b.node("Add", "a", x, c1), b.node("Add", "b", x, c2)))
		}, "Add Mul", 2},
		{"initializers of other shapes or types stay", 13, func(b *builder) {
			x := b.input("x", 2, 2)
			shape := b.tensor("shape", onnx.TensorProto_INT64, []int64{2}, []int64{2, 2})
			a := b.node("Add", "a", x, b.init("c1", []int64{2, 2}, 1, 2, 3, 4))
			c := b.node("Reshape", "c", b.init("c2", []int64{4}, 1, 2, 3, 4), shape)
			toFloat := func(out string, v *graph.Value) *graph.Value {
				f := b.node("Cast", out, v)
				f.Producer.SetAttr(intAttr("to", int64(onnx.TensorProto_FLOAT)))
				return f
			}
			fi := toFloat("fi", b.tensor("i", onnx.TensorProto_INT32, []int64{4}, []int32{1, 2, 3, 4}))
			fu := toFloat("fu", b.tensor("u", onnx.TensorProto_UINT32, []int64{4}, []uint32{1, 2, 3, 4}))
			s := b.node("Reshape", "s", b.node("Add", "sum", fi, fu), shape)
			b.output(b.node("Add", "y", b.node("Add", "ac", a, c), s))
		}, "Add Reshape Cast Cast Add Reshape Add Add", 0},
	}, func(t *testing.T, b *builder, tc rewriteCase) {
		if tc.name == "identical initializers" && len(b.g.Initializers) != 1 {
			t.Errorf("%d initializers, want 1", len(b.g.Initializers))
		}
	})
}

// TestCSERenames checks that the manager learns which value carries the
// numbers of each value the pass removed.
func TestCSERenames(t *testing.T) {
	b := newBuilder(t, 13)
	x := b.input("x", 2)
	a := b.node("Relu", "a", x)
	c1, c2 := b.init("c1", []int64{2}, 1, 2), b.init("c2", []int64{2}, 1, 2)
	b.output(b.node("Relu", "y", x), b.node("Add", "z", b.node("Neg", "n", a), b.node("Add", "s", c1, c2)))
	env := &Env{}
	if _, err := (&commonSubexpressions{}).Run(b.m, env); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "y", "c2": "c1"}
	if len(env.Renamed) != len(want) || env.Renamed["a"] != "y" || env.Renamed["c2"] != "c1" {
		t.Errorf("renamed %v, want %v", env.Renamed, want)
	}
}

// TestCSELeavesRandom checks the rewrite only: the runtime draws no
// random numbers, so there is nothing to compare.
func TestCSELeavesRandom(t *testing.T) {
	b := newBuilder(t, 13)
	r1 := b.node("RandomUniform", "r1")
	r1.Producer.SetAttr(intsAttr("shape", 2))
	r2 := b.node("RandomUniform", "r2")
	r2.Producer.SetAttr(intsAttr("shape", 2))
	b.output(b.node("Sub", "y", r1, r2))
	res, err := (&commonSubexpressions{}).Run(b.m, &Env{})
	if err != nil {
		t.Fatal(err)
	}
	if got := opTypes(b.g); got != "RandomUniform RandomUniform Sub" || res.Changes != 0 {
		t.Errorf("nodes %q, %d changes", got, res.Changes)
	}
}

func TestCSEInSubgraphs(t *testing.T) {
	outer := []*onnx.TensorProto{tensorProto(t, "a", onnx.TensorProto_FLOAT, []int64{3}, []float32{1, 2, 3})}
	m := ifModel(t, 13, outer, []*onnx.NodeProto{
		nodeProto("Mul", []string{"x", "a"}, "p"),
		nodeProto("Mul", []string{"x", "a"}, "q"),
		nodeProto("Sub", []string{"p", "q"}, "d"),
		nodeProto("Add", []string{"d", "p"}, "r"),
	}, nil)
	res := checkPass(t, m, "cse")
	if got := strings.Join(branches(m), ", "); got != "Mul Sub Add, Mul Sub Add" || res.Changes != 2 {
		t.Errorf("branches %q, %d changes; want Mul Sub Add twice and 2", got, res.Changes)
	}
}
