package passes

import (
	"slices"
	"testing"

	"onnxopt/graph"
	"onnxopt/onnx"
)

func TestFuseGemm(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opset int64
		build func(b *builder)
		nodes string // op types after the pass
		fused int
		check func(t *testing.T, b *builder)
	}{
		{"bias [N]", 13, func(b *builder) {
			x := b.input("x", 2, 3)
			y := b.node("MatMul", "m", x, b.weights("B", 1, -1, 1, 3, 4))
			b.output(b.node("Add", "y", y, b.weights("C", 2, -1, 1, 4)))
		}, "Gemm", 1, func(t *testing.T, b *builder) {
			gemm := b.g.Nodes[0]
			if names := valueNames(gemm.Inputs); !slices.Equal(names, []string{"x", "B", "C"}) || gemm.Outputs[0].Name != "y" || len(gemm.Attrs) != 0 {
				t.Errorf("Gemm reads %v, writes %q, attributes %v", names, gemm.Outputs[0].Name, gemm.Attrs)
			}
		}},
		{"typed product", 13, func(b *builder) {
			x := b.input("x", 2, 3)
			y := b.node("MatMul", "m", x, b.weights("B", 1, -1, 1, 3, 4))
			y.SetTensorType(onnx.TensorProto_FLOAT, graph.Known(2, 4))
			b.g.ValueInfo = append(b.g.ValueInfo, y)
			b.output(b.node("Add", "y", y, b.weights("C", 2, -1, 1, 4)))
		}, "Gemm", 1, func(t *testing.T, b *builder) {
			if len(b.g.ValueInfo) != 0 || b.g.Lookup("m") != nil {
				t.Errorf("the product is still listed: value_info %v", b.g.ValueInfo)
			}
		}},
		{"bias first", 13, func(b *builder) {
			x := b.input("x", 2, 3)
			y := b.node("MatMul", "m", x, b.weights("B", 1, -1, 1, 3, 4))
			b.output(b.node("Add", "y", b.weights("C", 2, -1, 1, 4), y))
		}, "Gemm", 1, nil},
		{"bias [1, N]", 13, func(b *builder) {
			x := b.input("x", 2, 3)
			y := b.node("MatMul", "m", x, b.weights("B", 1, -1, 1, 3, 4))
			b.output(b.node("Add", "y", y, b.weights("C", 2, -1, 1, 1, 4)))
		}, "Gemm", 1, nil},
		{"bias [M, N]", 13, func(b *builder) {
			x := b.input("x", 2, 3)
			y := b.node("MatMul", "m", x, b.weights("B", 1, -1, 1, 3, 4))
			b.output(b.node("Add", "y", y, b.weights("C", 2, -1, 1, 2, 4)))
		}, "Gemm", 1, nil},
		{"bias [M, 1] and scalar", 13, func(b *builder) {
			x := b.input("x", 2, 3)
			y := b.node("MatMul", "m", x, b.weights("B", 1, -1, 1, 3, 4))
			z := b.node("Add", "z", y, b.weights("C", 2, -1, 1, 2, 1))
			y2 := b.node("MatMul", "m2", z, b.weights("B2", 3, -1, 1, 4, 2))
			b.output(b.node("Add", "y", y2, b.init("s", nil, 0.25)))
		}, "Gemm Gemm", 2, nil},
		{"symbolic batch", 13, func(b *builder) {
			x := b.g.Value("x")
			x.SetTensorType(onnx.TensorProto_FLOAT, graph.Shape{{Param: "batch"}, {Value: 3, Known: true}})
			b.g.Inputs = append(b.g.Inputs, x)
			y := b.node("MatMul", "m", x, b.weights("B", 1, -1, 1, 3, 4))
			b.output(b.node("Relu", "y", b.node("Add", "a", y, b.weights("C", 2, -1, 1, 4))))
		}, "Gemm Relu", 1, func(t *testing.T, b *builder) {
			if out := b.g.Nodes[0].Outputs[0]; out.Name != "a" || out != b.g.Nodes[1].Inputs[0] {
				t.Errorf("Gemm writes %q, want a, read by Relu", out.Name)
			}
		}},
		{"A's shape inferred", 13, func(b *builder) {
			x := b.input("x", 2, 3, 2)
			y := b.node("MatMul", "m", b.node("Flatten", "f", x), b.weights("B", 1, -1, 1, 6, 4))
			b.output(b.node("Add", "y", y, b.weights("C", 2, -1, 1, 4)))
		}, "Flatten Gemm", 1, nil},
		{"opset 6 asks Gemm to broadcast", 6, func(b *builder) {
			x := b.input("x", 2, 3)
			y := b.node("MatMul", "m", x, b.weights("B", 1, -1, 1, 3, 4))
			z := b.node("Add", "y", y, b.weights("C", 2, -1, 1, 4))
			z.Producer.SetAttr(intAttr("broadcast", 1))
			b.output(z)
		}, "Gemm", 1, func(t *testing.T, b *builder) {
			if b.g.Nodes[0].AttrInt("broadcast", 0) != 1 {
				t.Errorf("Gemm attributes %v, want broadcast=1", b.g.Nodes[0].Attrs)
			}
		}},

		// Left alone.
		{"A is 3-D", 13, func(b *builder) {
			x := b.input("x", 2, 2, 3)
			y := b.node("MatMul", "m", x, b.weights("B", 1, -1, 1, 3, 4))
			b.output(b.node("Add", "y", y, b.weights("C", 2, -1, 1, 4)))
		}, "MatMul Add", 0, nil},
		{"B is an input", 13, func(b *builder) {
			x := b.input("x", 2, 3)
			y := b.node("MatMul", "m", x, b.input("B", 3, 4))
			b.output(b.node("Add", "y", y, b.weights("C", 2, -1, 1, 4)))
		}, "MatMul Add", 0, nil},
		{"bias is computed", 13, func(b *builder) {
			x := b.input("x", 2, 3)
			y := b.node("MatMul", "m", x, b.weights("B", 1, -1, 1, 3, 4))
			b.output(b.node("Add", "y", y, b.node("Relu", "r", b.input("c", 4))))
		}, "MatMul Relu Add", 0, nil},
		{"product read twice", 13, func(b *builder) {
			x := b.input("x", 2, 3)
			y := b.node("MatMul", "m", x, b.weights("B", 1, -1, 1, 3, 4))
			b.output(b.node("Add", "y", y, b.weights("C", 2, -1, 1, 4)), y)
		}, "MatMul Add", 0, nil},
		{"bias [M, N] with M unknown", 13, func(b *builder) {
			x := b.g.Value("x")
			x.SetTensorType(onnx.TensorProto_FLOAT, graph.Shape{{Param: "batch"}, {Value: 3, Known: true}})
			b.g.Inputs = append(b.g.Inputs, x)
			y := b.node("MatMul", "m", x, b.weights("B", 1, -1, 1, 3, 4))
			b.output(b.node("Add", "y", y, b.weights("C", 2, -1, 1, 2, 4)))
		}, "MatMul Add", 0, nil},
		{"bias broadcasts the product", 13, func(b *builder) {
			x := b.input("x", 1, 3)
			y := b.node("MatMul", "m", x, b.weights("B", 1, -1, 1, 3, 4))
			b.output(b.node("Add", "y", y, b.weights("C", 2, -1, 1, 5, 4)))
		}, "MatMul Add", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(t, tc.opset)
			tc.build(b)
			// Gemm adds C to the finished product where Add did the
			// same, but BLAS may sum the product in another order.
			res := checkPassClose(t, b.m, "fuse-gemm", foldRTol, foldATol)
			if got := opTypes(b.g); got != tc.nodes || res.Changes != tc.fused {
				t.Errorf("nodes %q, %d fused; want %q, %d", got, res.Changes, tc.nodes, tc.fused)
			}
			if got := b.g.Outputs[0].Name; got != "y" {
				t.Errorf("first output is %q, want y", got)
			}
			if tc.check != nil {
				tc.check(t, b)
			}
		})
	}
}

func valueNames(vs []*graph.Value) []string {
	names := make([]string, len(vs))
	for i, v := range vs {
		if v != nil {
			names[i] = v.Name
		}
	}
	return names
}
