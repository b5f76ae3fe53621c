package passes

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// Folding reassociates float arithmetic (the BatchNormalization scale
// moves into the weights, the bias into the sum), so folded models are
// compared with the unfolded ones within these tolerances, on outputs of
// order 1.
const (
	foldRTol = 1e-5
	foldATol = 1e-6
)

// weights adds a float32 initializer of the given shape filled with
// seeded values in [lo, hi).
func (b *builder) weights(name string, seed uint64, lo, hi float64, dims ...int64) *graph.Value {
	n, err := onnx.NumElements(dims)
	if err != nil {
		b.t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = float32(lo + (hi-lo)*rng.Float64())
	}
	return b.init(name, dims, vals...)
}

// batchNorm adds a BatchNormalization over c channels of x with seeded
// statistics; epsilon 0 leaves the attribute out.
func (b *builder) batchNorm(out string, x *graph.Value, c int64, epsilon float32) *graph.Value {
	y := b.node("BatchNormalization", out, x,
		b.weights(out+"_scale", 11, 0.5, 2, c),
		b.weights(out+"_bias", 12, -1, 1, c),
		b.weights(out+"_mean", 13, -0.5, 0.5, c),
		b.weights(out+"_var", 14, 0.1, 3, c))
	if epsilon != 0 {
		y.Producer.SetAttr(floatAttr("epsilon", epsilon))
	}
	return y
}

func intAttr(name string, v int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func floatAttr(name string, v float32) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func intsAttr(name string, v ...int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_INTS.Enum(), Ints: v}
}

func TestFoldBatchNorm(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opset  int64
		build  func(b *builder)
		nodes  string // op types after the pass
		folded int
		note   string // in the result's notes, when not ""
		check  func(t *testing.T, b *builder)
	}{
		{"conv with bias", 13, func(b *builder) {
			x := b.input("x", 2, 3, 6, 6)
			y := b.node("Conv", "c", x, b.weights("W", 1, -1, 1, 4, 3, 3, 3), b.weights("B", 2, -1, 1, 4))
			b.output(b.batchNorm("y", y, 4, 0))
		}, "Conv", 1, "", nil},
		{"conv without bias, epsilon", 13, func(b *builder) {
			x := b.input("x", 1, 3, 5, 5)
			y := b.node("Conv", "c", x, b.weights("W", 1, -1, 1, 5, 3, 3, 3))
			y.Producer.SetAttr(intsAttr("pads", 1, 1, 1, 1))
			b.output(b.batchNorm("y", y, 5, 1e-2))
		}, "Conv", 1, "", func(t *testing.T, b *builder) {
			conv := b.g.Nodes[0]
			if len(conv.Inputs) != 3 || conv.Inputs[2] == nil || !conv.Inputs[2].IsConstant() {
				t.Errorf("Conv inputs %v: want a constant bias", conv.Inputs)
			}
		}},
		{"group conv", 13, func(b *builder) {
			x := b.input("x", 1, 4, 5, 5)
			y := b.node("Conv", "c", x, b.weights("W", 1, -1, 1, 6, 2, 3, 3), b.weights("B", 2, -1, 1, 6))
			y.Producer.SetAttr(intAttr("group", 2))
			b.output(b.batchNorm("y", y, 6, 0))
		}, "Conv", 1, "", nil},
		{"depthwise conv 1-D", 13, func(b *builder) {
			x := b.input("x", 2, 3, 7)
			y := b.node("Conv", "c", x, b.weights("W", 1, -1, 1, 3, 1, 3))
			y.Producer.SetAttr(intAttr("group", 3))
			b.output(b.batchNorm("y", y, 3, 1e-3))
		}, "Conv", 1, "", nil},
		{"conv transpose", 13, func(b *builder) {
			x := b.input("x", 1, 3, 4, 4)
			y := b.node("ConvTranspose", "c", x, b.weights("W", 1, -1, 1, 3, 4, 3, 3))
			b.output(b.batchNorm("y", y, 4, 0))
		}, "ConvTranspose", 1, "", nil},
		{"conv transpose with groups", 13, func(b *builder) {
			// W [Cin 4, Cout/group 3, 2, 2] with group 2: 6 output channels.
			x := b.input("x", 2, 4, 3, 3)
			y := b.node("ConvTranspose", "c", x, b.weights("W", 1, -1, 1, 4, 3, 2, 2), b.weights("B", 2, -1, 1, 6))
			y.Producer.SetAttr(intAttr("group", 2))
			y.Producer.SetAttr(intsAttr("strides", 2, 2))
			b.output(b.batchNorm("y", y, 6, 0))
		}, "ConvTranspose", 1, "", nil},
		{"gemm transB 0", 13, func(b *builder) {
			x := b.input("x", 3, 4)
			y := b.node("Gemm", "g", x, b.weights("W", 1, -1, 1, 4, 5), b.weights("C", 2, -1, 1, 5))
			b.output(b.batchNorm("y", y, 5, 0))
		}, "Gemm", 1, "", nil},
		{"gemm transB 1, alpha, beta, C [1, N]", 13, func(b *builder) {
			x := b.input("x", 3, 4)
			y := b.node("Gemm", "g", x, b.weights("W", 1, -1, 1, 5, 4), b.weights("C", 2, -1, 1, 1, 5))
			y.Producer.SetAttr(intAttr("transB", 1))
			y.Producer.SetAttr(floatAttr("alpha", 0.5))
			y.Producer.SetAttr(floatAttr("beta", 2))
			b.output(b.batchNorm("y", y, 5, 0))
		}, "Gemm", 1, "", func(t *testing.T, b *builder) {
			gemm := b.g.Nodes[0]
			if gemm.Attr("beta") != nil || gemm.AttrFloat("alpha", 1) != 0.5 {
				t.Errorf("Gemm keeps beta or loses alpha: %v", gemm.Attrs)
			}
		}},
		{"gemm without C, transA", 13, func(b *builder) {
			x := b.input("x", 4, 3)
			y := b.node("Gemm", "g", x, b.weights("W", 1, -1, 1, 5, 4))
			y.Producer.SetAttr(intAttr("transA", 1))
			y.Producer.SetAttr(intAttr("transB", 1))
			b.output(b.batchNorm("y", y, 5, 0))
		}, "Gemm", 1, "", nil},
		{"gemm C [M, 1]", 13, func(b *builder) {
			x := b.input("x", 3, 4)
			y := b.node("Gemm", "g", x, b.weights("W", 1, -1, 1, 4, 5), b.weights("C", 2, -1, 1, 3, 1))
			b.output(b.batchNorm("y", y, 5, 0))
		}, "Gemm", 1, "", func(t *testing.T, b *builder) {
			if dims := b.g.Nodes[0].Inputs[2].Init.GetDims(); !slices.Equal(dims, []int64{3, 5}) {
				t.Errorf("C has shape %v, want [3 5]", dims)
			}
		}},
		{"inner value keeps its name", 13, func(b *builder) {
			x := b.input("x", 1, 2, 4, 4)
			y := b.node("Conv", "c", x, b.weights("W", 1, -1, 1, 3, 2, 1, 1))
			n := b.batchNorm("n", y, 3, 0)
			b.output(b.node("Relu", "r", n))
		}, "Conv Relu", 1, "", func(t *testing.T, b *builder) {
			if out := b.g.Nodes[0].Outputs[0]; out.Name != "n" || out != b.g.Nodes[1].Inputs[0] {
				t.Errorf("Conv writes %q; want n, read by Relu", out.Name)
			}
			if b.g.Lookup("c") != nil {
				t.Errorf("the Conv's old output is still in scope")
			}
		}},
		{"opset 6, BN with is_test", 6, func(b *builder) {
			x := b.input("x", 1, 2, 3, 3)
			y := b.node("Conv", "c", x, b.weights("W", 1, -1, 1, 3, 2, 2, 2))
			n := b.batchNorm("y", y, 3, 0)
			n.Producer.SetAttr(intAttr("is_test", 1))
			b.output(n)
		}, "Conv", 1, "", nil},
		{"shared weights are copied", 13, func(b *builder) {
			x := b.input("x", 1, 3, 4, 4)
			w, bias := b.weights("W", 1, -1, 1, 3, 3, 1, 1), b.weights("B", 2, -1, 1, 3)
			y := b.node("Conv", "c", x, w, bias)
			other := b.node("Conv", "other", x, w, bias)
			b.output(b.batchNorm("y", y, 3, 0), other)
		}, "Conv Conv", 1, "", func(t *testing.T, b *builder) {
			var folded, other *graph.Node
			for _, n := range b.g.Nodes {
				if n.Outputs[0].Name == "y" {
					folded = n
				} else {
					other = n
				}
			}
			if other.Inputs[1].Name != "W" || other.Inputs[2].Name != "B" {
				t.Errorf("the other Conv reads %v", other.Inputs)
			}
			if folded.Inputs[1] == other.Inputs[1] || folded.Inputs[2] == other.Inputs[2] {
				t.Errorf("the folded Conv still shares weights: %v", folded.Inputs)
			}
		}},

		// Left alone.
		{"training mode", 15, func(b *builder) {
			x := b.input("x", 2, 3, 4, 4)
			y := b.node("Conv", "c", x, b.weights("W", 1, -1, 1, 3, 3, 1, 1))
			n := b.batchNorm("y", y, 3, 0)
			n.Producer.SetAttr(intAttr("training_mode", 1))
			b.output(n)
		}, "Conv BatchNormalization", 0, "training_mode is set", nil},
		{"conv output read twice", 13, func(b *builder) {
			x := b.input("x", 1, 3, 4, 4)
			y := b.node("Conv", "c", x, b.weights("W", 1, -1, 1, 3, 3, 1, 1))
			b.output(b.batchNorm("y", y, 3, 0), b.node("Relu", "r", y))
		}, "Conv BatchNormalization Relu", 0, "", nil},
		{"conv output is a graph output", 13, func(b *builder) {
			x := b.input("x", 1, 3, 4, 4)
			y := b.node("Conv", "c", x, b.weights("W", 1, -1, 1, 3, 3, 1, 1))
			b.output(b.batchNorm("y", y, 3, 0), y)
		}, "Conv BatchNormalization", 0, "", nil},
		{"weights are an input", 13, func(b *builder) {
			x := b.input("x", 1, 3, 4, 4)
			y := b.node("Conv", "c", x, b.input("W", 3, 3, 1, 1))
			b.output(b.batchNorm("y", y, 3, 0))
		}, "Conv BatchNormalization", 0, `BatchNormalization "BatchNormalization_y" not folded: the weights of "Conv_c" (Conv): "W" is a graph input`, nil},
		{"opset 6, BN without is_test", 6, func(b *builder) {
			x := b.input("x", 1, 2, 3, 3)
			y := b.node("Conv", "c", x, b.weights("W", 1, -1, 1, 3, 2, 2, 2))
			b.output(b.batchNorm("y", y, 3, 0))
		}, "Conv BatchNormalization", 0, "is_test is not set", nil},
		{"after Relu", 13, func(b *builder) {
			x := b.input("x", 1, 3, 4, 4)
			b.output(b.batchNorm("y", b.node("Relu", "r", x), 3, 0))
		}, "Relu BatchNormalization", 0, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(t, tc.opset)
			tc.build(b)
			res := checkPassClose(t, b.m, "fold-batchnorm", foldRTol, foldATol)
			if got := opTypes(b.g); got != tc.nodes || res.Changes != tc.folded {
				t.Errorf("nodes %q, %d folded; want %q, %d", got, res.Changes, tc.nodes, tc.folded)
			}
			if got := b.g.Outputs[0].Name; got != "y" && got != "r" {
				t.Errorf("first output is %q", got)
			}
			if tc.note != "" && !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, tc.note) }) {
				t.Errorf("notes %q, want one saying %q", res.Notes, tc.note)
			}
			if tc.check != nil {
				tc.check(t, b)
			}
		})
	}
}
