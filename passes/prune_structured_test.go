package passes

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/internal/suite"
	"onnxopt/onnx"
	"onnxopt/runtime"
	"onnxopt/runtime/ort"
	"onnxopt/verify"
)

// The structured-pruning tests build models whose pruned channels are
// exactly zero (all-zero filters and biases), so that removing them must
// leave the outputs exactly as they were: the proof that the surgery
// slices the right rows and columns everywhere. To make "exactly" hold
// whatever order a runtime sums in, every weight is a multiple of 1/8 in
// [−1, 1] and every input a multiple of 1/4 in [−1, 1]: all products and
// sums of these small models are then exact in float32, so removing zero
// terms and regrouping the others changes no bit.

// dyadic adds a float32 initializer of the given shape holding seeded
// multiples of 1/8 in [−1, 1], never zero, except that the channels zero
// along axis are all zero.
func (b *builder) dyadic(name string, seed uint64, axis int, zero []int, dims ...int64) *graph.Value {
	n, err := onnx.NumElements(dims)
	if err != nil {
		b.t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	vals := make([]float32, n)
	for i := range vals {
		v := rng.IntN(16) - 8 // −1 … 7/8, in eighths
		if v >= 0 {
			v++ // skip 0: −1 … 1
		}
		vals[i] = float32(v) / 8
	}
	outer, size, inner := splitAt(dims, axis)
	for o := range outer {
		for _, c := range zero {
			for i := range inner {
				vals[(o*size+c)*inner+i] = 0
			}
		}
	}
	return b.init(name, dims, vals...)
}

// conv adds a Conv with 3×3 kernels padded to keep the size (1×1 when k
// is 1), with a bias unless bias is nil.
func (b *builder) conv(out string, x, w, bias *graph.Value) *graph.Value {
	inputs := []*graph.Value{x, w}
	if bias != nil {
		inputs = append(inputs, bias)
	}
	y := b.node("Conv", out, inputs...)
	k := w.Init.GetDims()[2]
	y.Producer.SetAttr(intsAttr("pads", k/2, k/2, k/2, k/2))
	return y
}

// dyadicInputs makes seeded inputs for m holding multiples of 1/4 in
// [−1, 1].
func dyadicInputs(t *testing.T, m *graph.Model) map[string]*runtime.Tensor {
	t.Helper()
	inputs, err := runtime.RandomInputs(m.Graph, 3, -1, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range inputs {
		d := in.Data.([]float32)
		for i, v := range d {
			d[i] = float32(int(v*4)) / 4
		}
	}
	return inputs
}

// runStructured runs prune-structured with the given flags on m.
func runStructured(t *testing.T, m *graph.Model, env *Env, flags ...string) (Result, error) {
	t.Helper()
	if env == nil {
		env = &Env{}
	}
	return structuredPass(t, flags...).Run(m, env)
}

// checkStructuredExact runs prune-structured on m, which declares the
// shapes of all its values, and checks that the model verifies, that its
// declared shapes agree with inference, that it survives a save and load,
// and that its outputs are exactly the original's.
func checkStructuredExact(t *testing.T, m *graph.Model, flags ...string) Result {
	t.Helper()
	if err := m.Graph.InferShapes(); err != nil {
		t.Fatal(err)
	}
	for _, n := range m.Graph.Nodes {
		for _, v := range n.Outputs {
			if !m.Graph.IsOutput(v) {
				m.Graph.ValueInfo = append(m.Graph.ValueInfo, v)
			}
		}
	}
	inputs := dyadicInputs(t, m)
	want := run(t, m, inputs)
	res, err := runStructured(t, m, nil, flags...)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Graph.Sort(); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	back, err := graph.FromProto(proto.CloneOf(m.ToProto()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := back.Graph.Infer(); err != nil {
		t.Errorf("declared shapes disagree with inference: %v", err)
	}
	got := run(t, back, inputs)
	for name, w := range want {
		if maxAbs, _, ok := runtime.Compare(got[name], w, 0, 0); !ok {
			t.Errorf("output %q changed by %g", name, maxAbs)
		}
	}
	return res
}

// initDims returns the shape of initializer name.
func initDims(t *testing.T, g *graph.Graph, name string) []int64 {
	t.Helper()
	v := g.Lookup(name)
	if v == nil || v.Init == nil {
		t.Fatalf("no initializer %q", name)
	}
	return v.Init.GetDims()
}

func TestPruneStructured(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		build func(b *builder)
		// shapes are initializer shapes after the pass; values the
		// declared shapes of values.
		shapes  map[string][]int64
		values  map[string][]int64
		changes int
		notes   []string // substrings of the notes, in order
	}{
		{"Conv BatchNormalization Relu Conv", nil, func(b *builder) {
			x := b.input("x", 1, 2, 6, 6)
			c1 := b.conv("c1", x, b.dyadic("w1", 1, 0, []int{1, 3}, 4, 2, 3, 3), b.dyadic("b1", 2, 0, []int{1, 3}, 4))
			// Exact BatchNormalization: variance 1/4 and no epsilon
			// divide by 1/2; the pruned channels' zeros become −1/2,
			// which Relu zeroes.
			bn := b.node("BatchNormalization", "bn", c1, b.init("scale", []int64{4}, 0.5, 1, 2, 0.25),
				b.init("shift", []int64{4}, 0.25, -0.5, 0.5, -0.5), b.init("mean", []int64{4}, 0.5, 0, -0.25, 0),
				b.init("var", []int64{4}, 0.25, 0.25, 0.25, 0.25))
			bn.Producer.SetAttr(floatAttr("epsilon", 0))
			r := b.node("Relu", "r", bn)
			b.output(b.conv("y", r, b.dyadic("w2", 3, 1, nil, 3, 4, 3, 3), b.dyadic("b2", 4, 0, nil, 3)))
		}, map[string][]int64{"w1": {2, 2, 3, 3}, "b1": {2}, "scale": {2}, "shift": {2}, "mean": {2}, "var": {2}, "w2": {3, 2, 3, 3}},
			map[string][]int64{"c1": {1, 2, 6, 6}, "bn": {1, 2, 6, 6}, "r": {1, 2, 6, 6}}, 2,
			[]string{`"Conv_c1" (Conv): 2 of 4 channels kept`, `"Conv_y" (Conv) left alone: its channels reach graph output "y"`}},

		{"Conv Relu Add MaxPool Conv", nil, func(b *builder) {
			x := b.input("x", 2, 1, 4, 4)
			c1 := b.conv("c1", x, b.dyadic("w1", 1, 0, []int{0, 2, 3}, 6, 1, 3, 3), b.dyadic("b1", 2, 0, []int{0, 2, 3}, 6))
			r := b.node("Relu", "r", c1)
			// A per-channel constant, zero on the pruned channels.
			shifted := b.node("Add", "shifted", r, b.init("shift", []int64{6, 1, 1}, 0, 0.5, 0, 0, -0.25, 0.125))
			p := b.node("MaxPool", "p", shifted)
			p.Producer.SetAttr(intsAttr("kernel_shape", 2, 2))
			p.Producer.SetAttr(intsAttr("strides", 2, 2))
			b.output(b.conv("y", p, b.dyadic("w2", 3, 1, nil, 2, 6, 1, 1), nil))
		}, map[string][]int64{"w1": {3, 1, 3, 3}, "b1": {3}, "shift": {3, 1, 1}, "w2": {2, 3, 1, 1}},
			map[string][]int64{"r": {2, 3, 4, 4}, "shifted": {2, 3, 4, 4}, "p": {2, 3, 2, 2}}, 3, nil},

		{"Conv GlobalAveragePool Flatten Gemm", nil, func(b *builder) {
			x := b.input("x", 2, 3, 4, 4)
			c1 := b.conv("c1", x, b.dyadic("w1", 1, 0, []int{1, 2}, 4, 3, 3, 3), b.dyadic("b1", 2, 0, []int{1, 2}, 4))
			f := b.node("Flatten", "f", b.node("GlobalAveragePool", "gap", c1))
			fc := b.node("Gemm", "y", f, b.dyadic("fc", 3, 1, nil, 5, 4), b.dyadic("fcb", 4, 0, nil, 5))
			fc.Producer.SetAttr(intAttr("transB", 1))
			b.output(fc)
		}, map[string][]int64{"w1": {2, 3, 3, 3}, "fc": {5, 2}, "fcb": {5}},
			map[string][]int64{"gap": {2, 2, 1, 1}, "f": {2, 2}}, 2, nil},

		{"Conv Relu Flatten of 2×2 Gemm", nil, func(b *builder) {
			x := b.input("x", 3, 1, 2, 2)
			c1 := b.conv("c1", x, b.dyadic("w1", 1, 0, []int{0, 2}, 3, 1, 1, 1), nil)
			f := b.node("Flatten", "f", b.node("Relu", "r", c1))
			// The features of channel c are rows 4c … 4c+3 of B.
			b.output(b.node("Gemm", "y", f, b.dyadic("fc", 3, 0, nil, 12, 2)))
		}, map[string][]int64{"w1": {1, 1, 1, 1}, "fc": {4, 2}}, map[string][]int64{"f": {3, 4}}, 2, nil},

		{"Reshape flattening", nil, func(b *builder) {
			x := b.input("x", 2, 1, 2, 2)
			c1 := b.conv("c1", x, b.dyadic("w1", 1, 0, []int{1}, 2, 1, 1, 1), nil)
			f := b.node("Reshape", "f", c1, b.tensor("target", onnx.TensorProto_INT64, []int64{2}, []int64{-1, 8}))
			b.output(b.node("MatMul", "y", f, b.dyadic("fc", 3, 0, nil, 8, 3)))
		}, map[string][]int64{"w1": {1, 1, 1, 1}, "fc": {4, 3}}, map[string][]int64{"f": {2, 4}}, 1, nil},

		{"PRelu ReduceMean Squeeze", nil, func(b *builder) {
			x := b.input("x", 1, 2, 2, 2)
			c1 := b.conv("c1", x, b.dyadic("w1", 1, 0, []int{0, 3}, 4, 2, 3, 3), b.dyadic("b1", 2, 0, []int{0, 3}, 4))
			p := b.node("PRelu", "p", c1, b.dyadic("slope", 3, 0, nil, 4, 1, 1))
			r1 := b.node("ReduceMean", "r1", p)
			r1.Producer.SetAttr(intsAttr("axes", 3))
			sq := b.node("Squeeze", "sq", r1, b.tensor("axes", onnx.TensorProto_INT64, []int64{1}, []int64{-1}))
			r2 := b.node("ReduceMean", "r2", sq)
			r2.Producer.SetAttr(intsAttr("axes", 2))
			r2.Producer.SetAttr(intAttr("keepdims", 0))
			b.output(b.node("Gemm", "y", r2, b.dyadic("fc", 4, 0, nil, 4, 3)))
		}, map[string][]int64{"w1": {2, 2, 3, 3}, "slope": {2, 1, 1}, "fc": {2, 3}},
			map[string][]int64{"r1": {1, 2, 2, 1}, "sq": {1, 2, 2}, "r2": {1, 2}}, 2, nil},

		// Normalizing kept channels is exact or not, but the same
		// before and after; the pruned channel stays 0 (bias 0), and the
		// last layer sums a single channel, so no rounding depends on
		// the order of a sum.
		{"InstanceNormalization", nil, func(b *builder) {
			x := b.input("x", 1, 1, 3, 3)
			c1 := b.conv("c1", x, b.dyadic("w1", 1, 0, []int{1}, 2, 1, 3, 3), b.dyadic("b1", 2, 0, []int{1}, 2))
			in := b.node("InstanceNormalization", "in", c1, b.init("scale", []int64{2}, 0.5, 2), b.init("shift", []int64{2}, 0.25, 0))
			b.output(b.conv("y", in, b.dyadic("w2", 3, 0, nil, 1, 2, 1, 1), b.dyadic("b2", 4, 0, nil, 1)))
		}, map[string][]int64{"w1": {1, 1, 3, 3}, "scale": {1}, "shift": {1}, "w2": {1, 1, 1, 1}},
			map[string][]int64{"in": {1, 1, 3, 3}}, 1, nil},

		{"MLP", nil, func(b *builder) {
			x := b.input("x", 4, 6)
			h1 := b.node("Gemm", "h1", x, b.dyadic("fc1", 1, 0, []int{0, 5, 6, 7}, 8, 6), b.dyadic("b1", 2, 0, []int{0, 5, 6, 7}, 8))
			h1.Producer.SetAttr(intAttr("transB", 1))
			r1 := b.node("Relu", "r1", h1)
			h2 := b.node("Gemm", "h2", r1, b.dyadic("fc2", 3, 1, []int{1, 3}, 8, 4), b.dyadic("b2", 4, 0, []int{1, 3}, 4))
			r2 := b.node("Relu", "r2", h2)
			h3 := b.node("Gemm", "y", r2, b.dyadic("fc3", 5, 1, nil, 3, 4))
			h3.Producer.SetAttr(intAttr("transB", 1))
			b.output(h3)
		}, map[string][]int64{"fc1": {4, 6}, "b1": {4}, "fc2": {4, 2}, "b2": {2}, "fc3": {3, 2}},
			map[string][]int64{"r1": {4, 4}, "r2": {4, 2}}, 6,
			[]string{`"Gemm_h1" (Gemm): 4 of 8 channels kept`, `"Gemm_h2" (Gemm): 2 of 4 channels kept`, `"Gemm_y" (Gemm) left alone`}},

		{"MatMul Add Relu MatMul of rank 3", nil, func(b *builder) {
			x := b.input("x", 2, 3, 4)
			h := b.node("MatMul", "h", x, b.dyadic("w1", 1, 1, []int{2, 3}, 4, 4))
			a := b.node("Add", "a", h, b.dyadic("b1", 2, 0, []int{2, 3}, 4))
			b.output(b.node("MatMul", "y", b.node("Relu", "r", a), b.dyadic("w2", 3, 0, nil, 4, 2)))
		}, map[string][]int64{"w1": {4, 2}, "b1": {2}, "w2": {2, 2}}, map[string][]int64{"a": {2, 3, 2}}, 2, nil},

		{"residual Add", nil, func(b *builder) {
			x := b.input("x", 1, 2, 4, 4)
			zero := []int{1, 3}
			r := b.node("Relu", "r", b.conv("ca", x, b.dyadic("wa", 1, 0, zero, 4, 2, 3, 3), b.dyadic("ba", 2, 0, zero, 4)))
			cb := b.conv("cb", r, b.dyadic("wb", 3, 0, zero, 4, 4, 3, 3), b.dyadic("bb", 4, 0, zero, 4))
			s := b.node("Relu", "s", b.node("Add", "sum", r, cb))
			b.output(b.conv("y", s, b.dyadic("wc", 5, 0, nil, 2, 4, 1, 1), nil))
		}, map[string][]int64{"wa": {2, 2, 3, 3}, "wb": {2, 2, 3, 3}, "bb": {2}, "wc": {2, 2, 1, 1}},
			map[string][]int64{"sum": {1, 2, 4, 4}}, 2,
			[]string{`"Conv_ca" (Conv), "Conv_cb" (Conv): 2 of 4 channels kept`}},

		{"Concat with an input kept whole", nil, func(b *builder) {
			x := b.input("x", 1, 2, 3, 3)
			ca := b.conv("ca", x, b.dyadic("wa", 1, 0, []int{0, 2}, 4, 2, 3, 3), b.dyadic("ba", 2, 0, []int{0, 2}, 4))
			cb := b.conv("cb", x, b.dyadic("wb", 3, 0, []int{1, 3, 5}, 6, 2, 1, 1), nil)
			cat := b.node("Concat", "cat", ca, x, cb)
			cat.Producer.SetAttr(intAttr("axis", 1))
			b.output(b.conv("y", b.node("Relu", "r", cat), b.dyadic("wc", 5, 0, nil, 3, 12, 3, 3), nil))
		}, map[string][]int64{"wa": {2, 2, 3, 3}, "wb": {3, 2, 1, 1}, "wc": {3, 7, 3, 3}},
			map[string][]int64{"cat": {1, 7, 3, 3}}, 5, nil},

		{"depthwise Conv pruned with its input", nil, func(b *builder) {
			x := b.input("x", 1, 1, 4, 4)
			zero := []int{1, 2}
			r := b.node("Relu", "r", b.conv("c1", x, b.dyadic("w1", 1, 0, zero, 4, 1, 3, 3), b.dyadic("b1", 2, 0, zero, 4)))
			dw := b.conv("dw", r, b.dyadic("wd", 3, 0, nil, 4, 1, 3, 3), b.dyadic("bd", 4, 0, zero, 4))
			dw.Producer.SetAttr(intAttr("group", 4))
			b.output(b.conv("y", dw, b.dyadic("w2", 5, 0, nil, 2, 4, 1, 1), nil))
		}, map[string][]int64{"w1": {2, 1, 3, 3}, "wd": {2, 1, 3, 3}, "bd": {2}, "w2": {2, 2, 1, 1}},
			map[string][]int64{"dw": {1, 2, 4, 4}}, 2, nil},

		{"global", []string{"--global", "--sparsity=0.4"}, func(b *builder) {
			x := b.input("x", 1, 2, 3, 3)
			r1 := b.node("Relu", "r1", b.conv("c1", x, b.dyadic("w1", 1, 0, []int{2}, 4, 2, 3, 3), nil))
			r2 := b.node("Relu", "r2", b.conv("c2", r1, b.dyadic("w2", 2, 0, []int{0, 4, 5}, 6, 4, 3, 3), nil))
			b.output(b.conv("y", r2, b.dyadic("w3", 3, 0, nil, 2, 6, 3, 3), nil))
		}, map[string][]int64{"w1": {3, 2, 3, 3}, "w2": {3, 3, 3, 3}, "w3": {2, 3, 3, 3}}, nil, 4, nil},

		{"grouped Conv left alone", nil, func(b *builder) {
			x := b.input("x", 1, 2, 3, 3)
			c1 := b.conv("c1", x, b.dyadic("w1", 1, 0, []int{0, 1}, 4, 2, 3, 3), nil)
			g := b.conv("g", c1, b.dyadic("wg", 2, 0, nil, 4, 2, 3, 3), nil)
			g.Producer.SetAttr(intAttr("group", 2))
			b.output(b.conv("y", g, b.dyadic("w2", 3, 0, nil, 1, 4, 1, 1), nil))
		}, map[string][]int64{"w1": {4, 2, 3, 3}, "wg": {4, 2, 3, 3}}, nil, 0,
			[]string{`"Conv_c1" (Conv) left alone: "Conv_g" (Conv) is a grouped convolution (group 2 of 4 channels)`}},

		{"Add of a graph input left alone", nil, func(b *builder) {
			x := b.input("x", 1, 2, 3, 3)
			c1 := b.conv("c1", x, b.dyadic("w1", 1, 0, []int{0, 1}, 4, 2, 3, 3), nil)
			s := b.node("Add", "s", c1, b.input("skip", 1, 4, 3, 3))
			b.output(b.conv("y", s, b.dyadic("w2", 3, 0, nil, 1, 4, 1, 1), nil))
		}, map[string][]int64{"w1": {4, 2, 3, 3}}, nil, 0,
			[]string{`"Conv_c1" (Conv) left alone: "Add_s" (Add) also reads "skip", which differs along the channels and is not a constant`}},

		{"Transpose left alone", nil, func(b *builder) {
			x := b.input("x", 2, 3)
			h := b.node("Gemm", "h", x, b.dyadic("w1", 1, 1, []int{0}, 3, 4))
			b.output(b.node("MatMul", "y", b.node("Transpose", "t", h), b.dyadic("w2", 2, 0, nil, 2, 2)))
		}, map[string][]int64{"w1": {3, 4}}, nil, 0, []string{`left alone: they are read by "Transpose_t" (Transpose)`}},

		{"at least one channel stays", []string{"--sparsity=0.9"}, func(b *builder) {
			x := b.input("x", 1, 1, 2, 2)
			c1 := b.conv("c1", x, b.dyadic("w1", 1, 0, []int{1}, 2, 1, 1, 1), nil)
			c2 := b.conv("c2", c1, b.dyadic("w2", 2, 0, nil, 1, 2, 1, 1), nil)
			b.output(b.conv("y", c2, b.dyadic("w3", 3, 0, nil, 2, 1, 1, 1), nil))
		}, map[string][]int64{"w1": {1, 1, 1, 1}, "w2": {1, 1, 1, 1}, "w3": {2, 1, 1, 1}}, nil, 1,
			[]string{`"Conv_c1" (Conv): 1 of 2 channels kept`, `"Conv_c2" (Conv) keeps its only channel`, `"Conv_y" (Conv) left alone`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(t, 13)
			tc.build(b)
			flops := b.g.FLOPs()
			res := checkStructuredExact(t, b.m, tc.flags...)
			for name, want := range tc.shapes {
				if got := initDims(t, b.g, name); !slices.Equal(got, want) {
					t.Errorf("%s has shape %v, want %v", name, got, want)
				}
			}
			for name, want := range tc.values {
				s, _ := b.g.Lookup(name).Shape()
				if got, _ := s.Static(); !slices.Equal(got, want) {
					t.Errorf("%s is declared %v, want %v", name, s, want)
				}
			}
			if res.Changes != tc.changes {
				t.Errorf("%d channels removed, want %d", res.Changes, tc.changes)
			}
			if after := b.g.FLOPs(); tc.changes > 0 && !(after < flops) {
				t.Errorf("FLOPs %d after, %d before", after, flops)
			}
			notes := strings.Join(res.Notes, "\n")
			rest := notes
			for _, want := range tc.notes {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Errorf("notes lack %q in order:\n%s", want, notes)
					break
				}
				rest = rest[i+len(want):]
			}
		})
	}
}

// TestPruneStructuredNorm checks that --norm ranks by the chosen norm:
// filter a = (1, 0, 0, 0) has the smaller l1 norm and the larger l2 norm
// than b = (3/8, 3/8, 3/8, 3/8).
func TestPruneStructuredNorm(t *testing.T) {
	for _, tc := range []struct {
		norm string
		kept []float32
	}{
		{"l1", []float32{0.375, 0.375, 0.375, 0.375}},
		{"l2", []float32{1, 0, 0, 0}},
	} {
		t.Run(tc.norm, func(t *testing.T) {
			b := newBuilder(t, 13)
			x := b.input("x", 1, 4, 2, 2)
			c1 := b.conv("c1", x, b.init("w1", []int64{2, 4, 1, 1}, 1, 0, 0, 0, 0.375, 0.375, 0.375, 0.375), nil)
			b.output(b.conv("y", c1, b.init("w2", []int64{1, 2, 1, 1}, 1, 1), nil))
			if _, err := runStructured(t, b.m, nil, "--norm="+tc.norm); err != nil {
				t.Fatal(err)
			}
			got, err := onnx.Float32s(b.g.Lookup("w1").Init)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.kept) {
				t.Errorf("kept filter %v, want %v", got, tc.kept)
			}
		})
	}
}

func TestPruneStructuredOptions(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--sparsity=1"}, "--sparsity 1 is outside [0, 1)"},
		{[]string{"--norm=l3"}, `--norm "l3": want l1 or l2`},
		{[]string{"--reconstruct"}, "--reconstruct needs calibration data"},
	} {
		b := newBuilder(t, 13)
		x := b.input("x", 1, 2)
		b.output(b.node("Gemm", "y", x, b.dyadic("w", 1, 0, nil, 2, 2)))
		if _, err := runStructured(t, b.m, nil, tc.flags...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.flags, err, tc.want)
		}
	}
}

// A digitsSet is one of the digits models of testdata/models, with its
// test set and calibration data.
type digitsSet struct {
	dir                   string
	input, labels, calib  *runtime.Tensor
	inputName, outputName string
}

func loadDigitsSet(t testing.TB, name string) (*graph.Model, *digitsSet) {
	t.Helper()
	d := &digitsSet{dir: filepath.Join(suite.RepoRoot(), "testdata", "models", name)}
	m, err := graph.Load(filepath.Join(d.dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for file, dst := range map[string]**runtime.Tensor{
		"test_data_set_0/input_0.pb": &d.input, "labels.pb": &d.labels, "calibration.pb": &d.calib,
	} {
		if *dst, err = runtime.ReadTensorFile(filepath.Join(d.dir, file)); err != nil {
			t.Fatal(err)
		}
	}
	d.inputName, d.outputName = m.Graph.Inputs[0].Name, m.Graph.Outputs[0].Name
	return m, d
}

// logits runs m in onnxopt's runtime on the test set.
func (d *digitsSet) logits(t testing.TB, m *graph.Model) *runtime.Tensor {
	t.Helper()
	plan, err := runtime.Compile(m.Graph)
	if err != nil {
		t.Fatal(err)
	}
	out, err := plan.Run(map[string]*runtime.Tensor{d.inputName: d.input})
	if err != nil {
		t.Fatal(err)
	}
	return out[d.outputName]
}

// openORT opens m in ONNX Runtime with one thread.
func openORT(t testing.TB, m *graph.Model) *ort.Session {
	t.Helper()
	b, err := proto.Marshal(m.ToProto())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ort.OpenBytes(b, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// skipWithoutORT skips when ONNX Runtime cannot run here, except under CI.
func skipWithoutORT(t testing.TB) {
	t.Helper()
	if err := verify.ORTAvailable(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// TestPruneStructuredDigits prunes half the channels of each hidden layer
// of the digits CNN and MLP, with and without --reconstruct, and logs
// FLOPs, bytes and accuracy on the 397 test samples before and after. The
// pruned models must run in ONNX Runtime and agree with onnxopt's runtime
// within 1e-4, and reconstruction must win accuracy back.
func TestPruneStructuredDigits(t *testing.T) {
	const ortATol = 1e-4
	for _, tc := range []struct {
		name   string
		shapes map[string][]int64
	}{
		{"digits_cnn", map[string][]int64{
			"onnx::Conv_38": {8, 1, 3, 3}, "onnx::Conv_41": {16, 8, 3, 3}, "onnx::Conv_44": {32, 16, 3, 3}, "fc.weight": {10, 32}}},
		{"digits_mlp", map[string][]int64{"fc1.weight": {128, 64}, "fc2.weight": {64, 128}, "fc3.weight": {10, 64}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			accuracy := map[string]float64{}
			for _, reconstruct := range []bool{false, true} {
				m, d := loadDigitsSet(t, tc.name)
				before := m.Stats().Bytes
				flops := m.Graph.FLOPs()
				fileBefore := fileSize(t, m)
				acc, err := argmaxAccuracy(d.logits(t, m), d.labels)
				if err != nil {
					t.Fatal(err)
				}
				accuracy["original"] = acc
				env := &Env{}
				flags := []string{"--sparsity=0.5"}
				label := "pruned"
				if reconstruct {
					if env.Calibration, err = CalibrationBatches(m.Graph, map[string]*runtime.Tensor{d.inputName: d.calib}, 64); err != nil {
						t.Fatal(err)
					}
					flags = append(flags, "--reconstruct")
					label = "pruned and refitted"
				}
				reports, err := Run(m, []Step{{lookupPass(t, "prune-structured"), structuredPass(t, flags...)}}, env, Options{})
				if err != nil {
					t.Fatal(err)
				}
				for name, want := range tc.shapes {
					if got := initDims(t, m.Graph, name); !slices.Equal(got, want) {
						t.Errorf("%s has shape %v, want %v", name, got, want)
					}
				}
				logits := d.logits(t, m)
				if accuracy[label], err = argmaxAccuracy(logits, d.labels); err != nil {
					t.Fatal(err)
				}
				after := reports[0].After
				t.Logf("%s: FLOPs %d → %d, parameter bytes %d → %d, file bytes %d → %d, accuracy %.4f → %.4f; %s",
					label, flops, after.FLOPs, before, after.Bytes, fileBefore, fileSize(t, m), acc, accuracy[label], strings.Join(reports[0].Notes, "; "))
				if !(after.FLOPs < flops && after.Bytes < before) {
					t.Errorf("FLOPs %d → %d, bytes %d → %d", flops, after.FLOPs, before, after.Bytes)
				}
				if err := verify.ORTAvailable(); err != nil && os.Getenv("CI") != "true" {
					t.Logf("%s: not checked in ONNX Runtime: %v", label, err)
				} else {
					s := openORT(t, m)
					got, err := s.Run(map[string]*ort.Tensor{d.inputName: {DType: int32(onnx.TensorProto_FLOAT), Shape: int64s(d.input.Shape), Data: d.input.Data}})
					s.Close()
					if err != nil {
						t.Fatal(err)
					}
					ortLogits, err := runtime.FromSlice(got[d.outputName].Data, logits.Shape...)
					if err != nil {
						t.Fatal(err)
					}
					maxAbs, _, ok := runtime.Compare(ortLogits, logits, 0, ortATol)
					if !ok {
						t.Errorf("%s: ONNX Runtime and onnxopt differ by %g (atol %g)", label, maxAbs, ortATol)
					}
					t.Logf("%s: ONNX Runtime runs the model; its logits differ from onnxopt's by up to %.3g", label, maxAbs)
				}
			}
			if !(accuracy["pruned and refitted"] > accuracy["pruned"]) {
				t.Errorf("accuracy %v: reconstruction did not help", accuracy)
			}
		})
	}
}

// fileSize is the size of m serialized.
func fileSize(t testing.TB, m *graph.Model) int {
	t.Helper()
	b, err := proto.Marshal(m.ToProto())
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

func lookupPass(t testing.TB, name string) Info {
	t.Helper()
	info, ok := Lookup(name)
	if !ok {
		t.Fatalf("no pass %q", name)
	}
	return info
}

// structuredPass makes a prune-structured pass with the given flags.
func structuredPass(t testing.TB, flags ...string) Pass {
	t.Helper()
	p := lookupPass(t, "prune-structured").New()
	fs := pflag.NewFlagSet("prune-structured", pflag.ContinueOnError)
	p.Flags(fs)
	if err := fs.Parse(flags); err != nil {
		t.Fatal(err)
	}
	return p
}

// BenchmarkStructuredDigitsCNN compares the latency of the digits CNN
// before and after pruning half the channels of its hidden layers, on its
// 397 test samples in one batch, in ONNX Runtime (one thread) and in
// onnxopt's runtime.
func BenchmarkStructuredDigitsCNN(b *testing.B) { benchmarkStructured(b, "digits_cnn") }

// BenchmarkStructuredDigitsMLP does the same for the digits MLP.
func BenchmarkStructuredDigitsMLP(b *testing.B) { benchmarkStructured(b, "digits_mlp") }

func benchmarkStructured(b *testing.B, name string) {
	original, d := loadDigitsSet(b, name)
	pruned, _ := loadDigitsSet(b, name)
	if _, err := Run(pruned, []Step{{lookupPass(b, "prune-structured"), structuredPass(b, "--sparsity=0.5")}}, nil, Options{}); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		m    *graph.Model
	}{{"original", original}, {"pruned", pruned}} {
		b.Run("ort/"+tc.name, func(b *testing.B) {
			skipWithoutORT(b)
			s := openORT(b, tc.m)
			defer s.Close()
			inputs := map[string]*ort.Tensor{d.inputName: {DType: int32(onnx.TensorProto_FLOAT), Shape: int64s(d.input.Shape), Data: d.input.Data}}
			for b.Loop() {
				if _, err := s.Run(inputs); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("ours/"+tc.name, func(b *testing.B) {
			plan, err := runtime.Compile(tc.m.Graph)
			if err != nil {
				b.Fatal(err)
			}
			inputs := map[string]*runtime.Tensor{d.inputName: d.input}
			for b.Loop() {
				if _, err := plan.Run(inputs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
