package passes

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// TestIm2colMatchesConv checks the design matrices reconstruction builds
// for Conv against the runtime's Conv: each row times the weights of each
// output channel of its group must give the convolution's output, within
// 1e-5 + 1e-5·|y| (float32 sums in another order).
func TestIm2colMatchesConv(t *testing.T) {
	for _, tc := range []struct {
		name  string
		x, w  []int64
		attrs []*onnx.AttributeProto
	}{
		{"groups, pads, strides, dilations", []int64{2, 4, 6, 7}, []int64{6, 2, 3, 2},
			[]*onnx.AttributeProto{intAttr("group", 2), intsAttr("pads", 1, 0, 2, 1), intsAttr("strides", 2, 1), intsAttr("dilations", 1, 2)}},
		{"same upper", []int64{1, 3, 7, 6}, []int64{4, 3, 3, 3},
			[]*onnx.AttributeProto{stringAttr("auto_pad", "SAME_UPPER"), intsAttr("strides", 2, 2)}},
		{"same lower", []int64{2, 2, 5, 5}, []int64{3, 2, 2, 2},
			[]*onnx.AttributeProto{stringAttr("auto_pad", "SAME_LOWER")}},
		{"valid", []int64{1, 2, 5, 6}, []int64{2, 2, 3, 2},
			[]*onnx.AttributeProto{stringAttr("auto_pad", "VALID"), intsAttr("strides", 1, 2)}},
		{"1-D", []int64{2, 3, 9}, []int64{4, 3, 3},
			[]*onnx.AttributeProto{intsAttr("strides", 2), intsAttr("pads", 1, 1)}},
		{"3-D depthwise", []int64{1, 2, 4, 4, 3}, []int64{2, 1, 2, 2, 2},
			[]*onnx.AttributeProto{intAttr("group", 2), intsAttr("pads", 0, 1, 1, 1, 0, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(t, 13)
			w := b.weights("W", 2, -1, 1, tc.w...)
			b.output(b.nodeWith("Conv", "y", []*graph.Value{b.input("x", tc.x...), w}, tc.attrs...))
			x := randomTensor(t, 1, tc.x)
			y := run(t, b.m, map[string]*runtime.Tensor{"x": x})["y"]
			weights, _, err := PrunableWeights(b.m)
			if err != nil {
				t.Fatal(err)
			}
			l, why := asLinearLayer(weights[0])
			if why != "" {
				t.Fatal(why)
			}
			groups, err := l.rows(x, y, nil)
			if err != nil {
				t.Fatal(err)
			}
			ws := float64s(weightOf(t, b.m, "W"))
			outsG := l.outs / l.groups
			for gi, g := range groups {
				for r := range g.rows {
					for o := range outsG {
						var sum float64
						for f := range l.features {
							sum += g.design[r*l.features+f] * ws[l.element(gi*outsG+o, f)]
						}
						want := g.target[r*outsG+o]
						if math.Abs(sum-want) > 1e-5+1e-5*math.Abs(want) {
							t.Fatalf("group %d row %d channel %d: design·w = %g, Conv gives %g", gi, r, o, sum, want)
						}
					}
				}
			}
		})
	}
}

// ridgeByQR solves min ‖Dθ − y‖² + λ‖θ − θ₀‖² as the stacked least
// squares [D; √λ·I]θ ≈ [y; √λ·θ₀] by QR factorization: the same problem as
// reconstruction's normal equations, solved another way.
func ridgeByQR(t *testing.T, d [][]float64, y, prior []float64) []float64 {
	t.Helper()
	k := len(prior)
	var trace float64
	for _, row := range d {
		for _, v := range row {
			trace += v * v
		}
	}
	lambda := reconstructDamping * trace / float64(k)
	a := mat.NewDense(len(d)+k, k, nil)
	b := mat.NewVecDense(len(d)+k, nil)
	for r, row := range d {
		for j, v := range row {
			a.Set(r, j, v)
		}
		b.SetVec(r, y[r])
	}
	for j := range k {
		a.Set(len(d)+j, j, math.Sqrt(lambda))
		b.SetVec(len(d)+j, math.Sqrt(lambda)*prior[j])
	}
	var x mat.VecDense
	if err := x.SolveVec(a, b); err != nil {
		t.Fatal(err)
	}
	return x.RawVector().Data
}

// refitCase is a model with a layer to refit, and the layout of its
// weights.
type refitCase struct {
	name   string
	build  func(b *builder)
	layer  string // the layer's output value
	input  string // the value the layer reads
	weight string
	bias   string // "" when the layer has no bias to refit
	// fixed is a bias that stays, read by the test from the model
	fixed string
	// scale and biasScale are Gemm's alpha and beta.
	scale, biasScale float64
	// element is the index of feature f of channel o in the weight.
	element     func(o, f int) int
	outs, feats int
}

func gemmRows(x *runtime.Tensor, scale float64, bias bool) [][]float64 {
	xs := float64s(x.Data.([]float32))
	k := x.Shape[len(x.Shape)-1]
	var rows [][]float64
	for r := range len(xs) / k {
		row := make([]float64, k)
		for f := range k {
			row[f] = scale * xs[r*k+f]
		}
		if bias {
			row = append(row, 1)
		}
		rows = append(rows, row)
	}
	return rows
}

func column(y *runtime.Tensor, o int, less float64) []float64 {
	ys := float64s(y.Data.([]float32))
	n := y.Shape[len(y.Shape)-1]
	col := make([]float64, len(ys)/n)
	for r := range col {
		col[r] = ys[r*n+o] - less
	}
	return col
}

// TestReconstructLeastSquares prunes single layers and a two-layer MLP by
// magnitude with --reconstruct and checks every output channel's kept
// weights (and bias) against the ridge least-squares solution computed by
// QR from the layer's inputs in the pruned model and its outputs in the
// original one, within 1e-4 of the largest weight (the weights are stored
// as float32). The pruned weights stay zero, and the outputs on the
// calibration data get closer to the original's than without refitting.
func TestReconstructLeastSquares(t *testing.T) {
	cases := []refitCase{
		{name: "gemm transB with bias", build: func(b *builder) {
			b.output(b.nodeWith("Gemm", "y", []*graph.Value{b.batchInput("x", 6), b.weights("W", 1, -1, 1, 4, 6), b.weights("B", 2, -1, 1, 4)}, intAttr("transB", 1)))
		}, layer: "y", input: "x", weight: "W", bias: "B", scale: 1, biasScale: 1, outs: 4, feats: 6,
			element: func(o, f int) int { return o*6 + f }},
		{name: "gemm alpha beta", build: func(b *builder) {
			y := b.node("Gemm", "y", b.batchInput("x", 5), b.weights("W", 1, -1, 1, 5, 3), b.weights("B", 2, -1, 1, 1, 3))
			y.Producer.SetAttr(floatAttr("alpha", 0.5))
			y.Producer.SetAttr(floatAttr("beta", 2))
			b.output(y)
		}, layer: "y", input: "x", weight: "W", bias: "B", scale: 0.5, biasScale: 2, outs: 3, feats: 5,
			element: func(o, f int) int { return f*3 + o }},
		{name: "shared bias stays", build: func(b *builder) {
			x := b.batchInput("x", 5)
			c := b.weights("C", 2, -1, 1, 3)
			b.output(b.node("Gemm", "y", x, b.weights("W", 1, -1, 1, 5, 3), c), b.node("Gemm", "y2", x, b.weights("W2", 3, -1, 1, 5, 3), c))
		}, layer: "y", input: "x", weight: "W", fixed: "C", scale: 1, biasScale: 1, outs: 3, feats: 5,
			element: func(o, f int) int { return f*3 + o }},
		{name: "computed bias stays", build: func(b *builder) {
			y := b.node("Gemm", "y", b.batchInput("x", 5), b.weights("W", 1, -1, 1, 5, 3), b.node("Identity", "C", b.weights("C0", 2, -1, 1, 3)))
			y.Producer.SetAttr(floatAttr("beta", 0.5))
			b.output(y)
		}, layer: "y", input: "x", weight: "W", fixed: "C", scale: 1, biasScale: 0.5, outs: 3, feats: 5,
			element: func(o, f int) int { return f*3 + o }},
		{name: "batched matmul", build: func(b *builder) {
			b.output(b.node("MatMul", "y", b.batchInput("x", 3, 6), b.weights("W", 1, -1, 1, 6, 4)))
		}, layer: "y", input: "x", weight: "W", scale: 1, outs: 4, feats: 6,
			element: func(o, f int) int { return f*4 + o }},
		{name: "second of two layers", build: func(b *builder) {
			x := b.batchInput("x", 4)
			h := b.nodeWith("Gemm", "h", []*graph.Value{x, b.weights("W1", 1, -1, 1, 8, 4), b.weights("B1", 2, 0, 1, 8)}, intAttr("transB", 1))
			b.output(b.node("Gemm", "y", b.node("Relu", "r", h), b.weights("W", 3, -1, 1, 8, 3), b.weights("B", 4, -1, 1, 3)))
		}, layer: "y", input: "r", weight: "W", bias: "B", scale: 1, biasScale: 1, outs: 3, feats: 8,
			element: func(o, f int) int { return f*3 + o }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(t, 13)
			tc.build(b)
			original, err := graph.FromProto(proto.CloneOf(b.m.ToProto()))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := graph.FromProto(proto.CloneOf(b.m.ToProto()))
			if err != nil {
				t.Fatal(err)
			}
			calib := calibrationFor(t, b.g, 9, 40)
			p := applyPrune(t, b.m, "prune-magnitude", calib, "--sparsity", "0.6", "--reconstruct")
			applyPrune(t, plain, "prune-magnitude", nil, "--sparsity", "0.6")

			pruned, refitted := weightOf(t, plain, tc.weight), weightOf(t, p.back, tc.weight)
			if !slices.Equal(zeros(refitted), zeros(pruned)) {
				t.Fatalf("zeros %v after refitting, %v before", zeros(refitted), zeros(pruned))
			}
			x := fetch(t, p.back, calib[0], tc.input)[tc.input]
			y := fetch(t, original, calib[0], tc.layer)[tc.layer]
			rows := gemmRows(x, tc.scale, tc.bias != "")
			var bias, oldBias []float32
			if tc.bias != "" {
				bias, oldBias = weightOf(t, p.back, tc.bias), weightOf(t, plain, tc.bias)
			}
			for o := range tc.outs {
				var kept []int
				for f := range tc.feats {
					if pruned[tc.element(o, f)] != 0 {
						kept = append(kept, f)
					}
				}
				var d [][]float64
				for _, row := range rows {
					var dk []float64
					for _, f := range kept {
						dk = append(dk, row[f])
					}
					if tc.bias != "" {
						dk = append(dk, 1)
					}
					d = append(d, dk)
				}
				var prior, got []float64
				for _, f := range kept {
					prior = append(prior, float64(pruned[tc.element(o, f)]))
					got = append(got, float64(refitted[tc.element(o, f)]))
				}
				if tc.bias != "" {
					prior = append(prior, tc.biasScale*float64(oldBias[o]))
					got = append(got, tc.biasScale*float64(bias[o]))
				}
				less := 0.0
				if tc.fixed != "" {
					less = tc.biasScale * float64(fetch(t, p.back, calib[0], tc.fixed)[tc.fixed].Data.([]float32)[o])
				}
				want := ridgeByQR(t, d, column(y, o, less), prior)
				scale := 0.0
				for _, v := range want {
					scale = max(scale, math.Abs(v))
				}
				for j := range want {
					if math.Abs(got[j]-want[j]) > 1e-4*scale {
						t.Fatalf("channel %d, kept weight %d: %g, least squares gives %g", o, j, got[j], want[j])
					}
				}
			}
			if !slices.ContainsFunc(p.res.Notes, func(n string) bool { return strings.Contains(n, "refitted") }) {
				t.Errorf("no note on the refit in %q", p.res.Notes)
			}
			if stays := fmt.Sprintf("bias %q, not a constant of its own, stays", tc.fixed); tc.fixed != "" && !slices.ContainsFunc(p.res.Notes, func(n string) bool { return strings.Contains(n, stays) }) {
				t.Errorf("notes %q, want one saying %s", p.res.Notes, stays)
			}
			ref := fetch(t, original, calib[0], "y")["y"]
			errRefit, errPlain := sumSquares(t, fetch(t, p.back, calib[0], "y")["y"], ref), sumSquares(t, fetch(t, plain, calib[0], "y")["y"], ref)
			if !(errRefit < errPlain) {
				t.Errorf("squared error %g after refitting, %g without", errRefit, errPlain)
			}
		})
	}
}

// sumSquares is Σ(a−b)².
func sumSquares(t *testing.T, a, b *runtime.Tensor) float64 {
	t.Helper()
	x, y := a.Data.([]float32), b.Data.([]float32)
	if len(x) != len(y) {
		t.Fatalf("%s and %s differ in size", a, b)
	}
	var s float64
	for i := range x {
		d := float64(x[i]) - float64(y[i])
		s += d * d
	}
	return s
}

// TestReconstructConv refits a grouped, padded Conv with bias: it must get
// closer to the original's outputs on the calibration data than pruning
// alone, its output error must be what the pass reports, and each
// channel's weights must solve its ridge least-squares problem (within
// 1e-4 of the largest weight, as TestReconstructLeastSquares).
func TestReconstructConv(t *testing.T) {
	for _, computed := range []bool{false, true} {
		t.Run(map[bool]string{false: "own bias", true: "computed bias"}[computed], func(t *testing.T) {
			reconstructConv(t, computed)
		})
	}
}

// reconstructConv is TestReconstructConv with a bias of its own, refitted,
// or one an Identity node computes, which stays.
func reconstructConv(t *testing.T, computed bool) {
	build := func(t *testing.T) *builder {
		b := newBuilder(t, 13)
		x := b.batchInput("x", 4, 5, 5)
		bias := b.weights("B", 2, -1, 1, 6)
		if computed {
			bias = b.node("Identity", "Bc", bias)
		}
		b.output(b.nodeWith("Conv", "y", []*graph.Value{x, b.weights("W", 1, -1, 1, 6, 2, 3, 3), bias},
			intAttr("group", 2), intsAttr("pads", 1, 1, 1, 1)))
		return b
	}
	b, plain, original := build(t), build(t), build(t)
	calib := calibrationFor(t, b.g, 3, 8)
	p := applyPrune(t, b.m, "prune-magnitude", calib, "--sparsity", "0.7", "--reconstruct")
	applyPrune(t, plain.m, "prune-magnitude", nil, "--sparsity", "0.7")
	if !slices.Equal(zeros(weightOf(t, p.back, "W")), zeros(weightOf(t, plain.m, "W"))) {
		t.Fatal("refitting changed the mask")
	}
	ref := run(t, original.m, calib[0])["y"]
	errRefit, errPlain := sumSquares(t, run(t, p.back, calib[0])["y"], ref), sumSquares(t, run(t, plain.m, calib[0])["y"], ref)
	energy := sumSquares(t, ref, runZeros(t, ref))
	var before, after float64
	if len(p.res.Notes) != 1 {
		t.Fatalf("notes %q, want one", p.res.Notes)
	}
	_, text, _ := strings.Cut(p.res.Notes[0], "output error ")
	if _, err := fmt.Sscanf(text, "%g → %g", &before, &after); err != nil {
		t.Fatalf("note %q: %v", p.res.Notes[0], err)
	}
	// The note rounds to 3 digits; the runtime sums in float32.
	for _, c := range []struct{ note, want float64 }{{before, errPlain / energy}, {after, errRefit / energy}} {
		if math.Abs(c.note-c.want) > 5e-3*c.want {
			t.Errorf("note %q reports %g, the outputs give %g", p.res.Notes[0], c.note, c.want)
		}
	}
	if !(errRefit < errPlain) {
		t.Errorf("squared error %g after refitting, %g without", errRefit, errPlain)
	}

	// Each channel's kept weights and bias against the ridge least
	// squares by QR, from the design rows TestIm2colMatchesConv checks.
	weights, _, err := PrunableWeights(original.m)
	if err != nil {
		t.Fatal(err)
	}
	l, why := asLinearLayer(weights[0])
	if why != "" {
		t.Fatal(why)
	}
	groups, err := l.rows(calib[0]["x"], ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	pruned, refitted := weightOf(t, plain.m, "W"), weightOf(t, p.back, "W")
	oldBias, bias := weightOf(t, plain.m, "B"), weightOf(t, p.back, "B")
	outsG := l.outs / l.groups
	for o := range l.outs {
		g := groups[o/outsG]
		var kept []int
		for f := range l.features {
			if pruned[l.element(o, f)] != 0 {
				kept = append(kept, f)
			}
		}
		d := make([][]float64, g.rows)
		y := make([]float64, g.rows)
		for r := range g.rows {
			for _, f := range kept {
				d[r] = append(d[r], g.design[r*l.features+f])
			}
			y[r] = g.target[r*outsG+o%outsG]
			if computed {
				y[r] -= float64(oldBias[o])
			} else {
				d[r] = append(d[r], 1)
			}
		}
		var prior, got []float64
		for _, f := range kept {
			prior = append(prior, float64(pruned[l.element(o, f)]))
			got = append(got, float64(refitted[l.element(o, f)]))
		}
		if computed {
			if bias[o] != oldBias[o] {
				t.Fatalf("the computed bias changed")
			}
		} else {
			prior, got = append(prior, float64(oldBias[o])), append(got, float64(bias[o]))
		}
		want := ridgeByQR(t, d, y, prior)
		scale := 0.0
		for _, v := range want {
			scale = max(scale, math.Abs(v))
		}
		for j := range want {
			if math.Abs(got[j]-want[j]) > 1e-4*scale {
				t.Fatalf("channel %d, kept weight %d: %g, least squares gives %g", o, j, got[j], want[j])
			}
		}
	}
}

// runZeros returns a tensor of zeros shaped like x.
func runZeros(t *testing.T, x *runtime.Tensor) *runtime.Tensor {
	t.Helper()
	z, err := runtime.NewTensor(x.DType, x.Shape...)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// TestReconstructSkips: layers reconstruction cannot refit keep their
// pruned weights, with a note saying why.
func TestReconstructSkips(t *testing.T) {
	b := newBuilder(t, 13)
	x := b.batchInput("x", 4)
	shared := b.weights("S", 1, -1, 1, 4, 4)
	h := b.node("MatMul", "h", b.node("MatMul", "h0", x, shared), shared)
	u := b.node("Unsqueeze", "u", h, b.g.AddInitializer(mustInt64s(t, "axes", 2)))
	b.output(b.nodeWith("ConvTranspose", "y", []*graph.Value{u, b.weights("T", 2, -1, 1, 4, 2, 3)}))
	calib := calibrationFor(t, b.g, 4, 6)
	p := applyPrune(t, b.m, "prune-magnitude", calib, "--sparsity", "0.5", "--reconstruct")
	for _, want := range []string{`"S" is shared by 2 layers`, "refitting ConvTranspose weights"} {
		if !slices.ContainsFunc(p.res.Notes, func(n string) bool { return strings.Contains(n, want) }) {
			t.Errorf("notes %q, want one saying %q", p.res.Notes, want)
		}
	}
	if len(zeros(weightOf(t, p.back, "S"))) != 8 || len(zeros(weightOf(t, p.back, "T"))) != 12 {
		t.Error("the skipped layers lost their pruning")
	}
}

func mustInt64s(t *testing.T, name string, vals ...int64) *onnx.TensorProto {
	t.Helper()
	tp, err := onnx.NewTensor(name, onnx.TensorProto_INT64, []int64{int64(len(vals))}, vals)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}
