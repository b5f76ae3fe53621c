package passes

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// calibrationError runs the float model and m on the digits calibration
// samples, all at once, and returns the largest difference of their
// outputs and the fraction of samples whose top-1 class agrees: the
// measure the budget bounds, taken here without the pass's code.
func (d digits) calibrationError(t *testing.T, m *graph.Model) (float64, float64) {
	t.Helper()
	in := map[string]*runtime.Tensor{d.model.Graph.Inputs[0].Name: d.calibration}
	name := d.model.Graph.Outputs[0].Name
	want, got := run(t, d.model, in)[name], run(t, m, in)[name]
	maxAbs, _, _ := runtime.Compare(got, want, 0, 0)
	classes := want.Shape[1]
	w, g := want.Data.([]float32), got.Data.([]float32)
	agree := 0
	for lo := 0; lo < len(w); lo += classes {
		if slices.Index(w[lo:lo+classes], slices.Max(w[lo:lo+classes])) == slices.Index(g[lo:lo+classes], slices.Max(g[lo:lo+classes])) {
			agree++
		}
	}
	return maxAbs, float64(agree) / float64(want.Shape[0])
}

// layerNames lists the digits model's layers that quantization treats.
func layerNames(m *graph.Model) []string {
	var names []string
	for _, n := range m.Graph.Nodes {
		if slices.Contains([]string{"Conv", "Gemm"}, n.OpType) {
			names = append(names, n.Name)
		}
	}
	return names
}

// TestQuantizeBudgetDigits quantizes the digits models with a --max-error
// of half the error every layer quantized gives, so that at least one
// layer must stay float. Independently of the pass, through --exclude, it
// measures each layer's error quantized alone, and checks that the layers
// the budget kept in float are the most sensitive ones by that measure,
// that the model it wrote meets the budget on the calibration data, and
// that keeping one layer fewer in float would not have.
func TestQuantizeBudgetDigits(t *testing.T) {
	for _, c := range digitsCases {
		for _, mode := range []string{"static per channel", "static per tensor", "weight per tensor"} {
			t.Run(c.dir+" "+mode, func(t *testing.T) {
				d := loadDigits(t, c.dir, c.anchor)
				quantize := func(exclude []string, maxError float64) (*graph.Model, Result) {
					d := d
					d.model = cloneModel(t, d.model)
					options := func(o *quantOptions) {
						o.PerChannel = strings.HasSuffix(mode, "per channel")
						o.Exclude = exclude
						o.MaxError = maxError
					}
					if strings.HasPrefix(mode, "static") {
						return quantizeDigits(t, d, func(p *staticQuantization) { options(&p.quantOptions) })
					}
					p := newQuantizeWeight().(*weightQuantization)
					options(&p.quantOptions)
					batches, err := CalibrationBatches(d.model.Graph, map[string]*runtime.Tensor{d.model.Graph.Inputs[0].Name: d.calibration}, 32)
					if err != nil {
						t.Fatal(err)
					}
					res, m := applyQuant(t, d.model, p, &Env{Calibration: batches})
					return m, res
				}
				layers := layerNames(d.model)
				all, _ := quantize(nil, 0)
				allError, _ := d.calibrationError(t, all)
				alone := map[string]float64{}
				for _, l := range layers {
					m, _ := quantize(slices.DeleteFunc(slices.Clone(layers), func(s string) bool { return s == l }), 0)
					alone[l], _ = d.calibrationError(t, m)
				}
				bySensitivity := slices.Clone(layers)
				slices.SortStableFunc(bySensitivity, func(a, b string) int { return cmp.Compare(alone[b], alone[a]) })

				budget := allError / 2
				m, res := quantize(nil, budget)
				kept := floatLayers(m, layers)
				got, top1 := d.calibrationError(t, m)
				t.Logf("every layer quantized: max abs error %.4g; alone: %s", allError, describeErrors(bySensitivity, alone))
				t.Logf("--max-error %.4g: kept in float %q; max abs error %.4g, top-1 agreement %.4f", budget, kept, got, top1)
				for _, n := range res.Notes {
					t.Log("note: " + n)
				}
				k := len(kept)
				if k == 0 || !slices.Equal(slices.Sorted(slices.Values(kept)), slices.Sorted(slices.Values(bySensitivity[:k]))) {
					t.Fatalf("kept %q in float, want the %d most sensitive of %q", kept, max(k, 1), bySensitivity)
				}
				if got > budget {
					t.Errorf("the budget does not hold: max abs error %g > %g", got, budget)
				}
				if k > 1 {
					fewer, _ := quantize(bySensitivity[:k-1], 0)
					if e, _ := d.calibrationError(t, fewer); e <= budget {
						t.Errorf("keeping %q in float already meets the budget (%g ≤ %g)", bySensitivity[:k-1], e, budget)
					}
				}
				notes := strings.Join(res.Notes, "\n")
				for _, l := range kept {
					if !slices.ContainsFunc(res.Notes, func(n string) bool {
						return strings.HasPrefix(n, fmt.Sprintf("%q", l)) && strings.Contains(n, "kept in float by the budget: quantized alone it moves the outputs by up to")
					}) {
						t.Errorf("no note says why %q is float", l)
					}
				}
				if k < len(layers) && !strings.Contains(notes, "within the budget") {
					t.Errorf("notes do not say the budget holds:\n%s", notes)
				}
			})
		}
	}
}

func describeErrors(names []string, errs map[string]float64) string {
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.4g", n, errs[n]))
	}
	return strings.Join(parts, ", ")
}

// floatLayers returns the layers of m, among names, whose weight is still
// float, in the order of names.
func floatLayers(m *graph.Model, names []string) []string {
	var float []string
	for _, n := range m.Graph.Nodes {
		if !slices.Contains(names, n.Name) {
			continue
		}
		if w := n.Input(1); w != nil && w.Init != nil && w.ElemType() == onnx.TensorProto_FLOAT {
			float = append(float, n.Name)
		}
	}
	return float
}

// TestQuantizeBudgetTop1 checks --min-top1 on a classifier whose last
// layer, quantized, ties two classes that differ by less than a weight
// step in every sample: the float model always picks class 1, the
// quantized one class 0 (the first of equals), so that layer must stay
// float while the one before it is quantized.
func TestQuantizeBudgetTop1(t *testing.T) {
	b := newBuilder(t, 13)
	x := b.dynamicInput("x", 4)
	h := b.node("Relu", "h", b.node("MatMul", "hidden", x, b.init("W1", []int64{4, 4},
		1, 0.5, 0.25, 0.125, -0.5, 1, 0.75, 0.25, 0.5, -0.25, 1, 0.5, 0.125, 0.25, -0.5, 1)))
	// The largest weight, 1.27, makes the step 0.01; columns 0 and 1
	// differ by a tenth of it and quantize alike.
	b.output(b.node("MatMul", "logits", h, b.init("W2", []int64{4, 3},
		0.5, 0.501, -1.27, 0.25, 0.251, 0.1, 1, 1.001, -0.2, 0.75, 0.751, 0.3)))
	batches := calibrationOf(t, b.g, 5, 0.1, 1, 64, 16)
	for _, tc := range []struct {
		minTop1 float64
		float   []string
	}{{0.9, []string{"MatMul_logits"}}, {0, nil}} {
		p := newQuantizeWeight().(*weightQuantization)
		p.MinTop1 = tc.minTop1
		res, m := applyQuant(t, cloneModel(t, b.m), p, &Env{Calibration: batches})
		var float []string
		for _, n := range m.Graph.Nodes {
			if n.OpType == "MatMul" && n.Input(1).Init != nil {
				float = append(float, n.Name)
			}
		}
		if !slices.Equal(float, tc.float) {
			t.Errorf("--min-top1 %g: float %q, want %q; notes %q", tc.minTop1, float, tc.float, res.Notes)
		}
		notes := strings.Join(res.Notes, "\n")
		if tc.minTop1 > 0 && (!strings.Contains(notes, "top-1 agreement 0.00%") || !strings.Contains(notes, `"MatMul_logits" (MatMul) kept in float by the budget`)) {
			t.Errorf("notes:\n%s", notes)
		}
	}
}

func cloneModel(t testing.TB, m *graph.Model) *graph.Model {
	t.Helper()
	c, err := graph.FromProto(proto.CloneOf(m.ToProto()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestQuantizeBudgetErrors(t *testing.T) {
	b := newBuilder(t, 13)
	x := b.dynamicInput("x", 2)
	b.output(b.node("Relu", "y", b.node("MatMul", "mm", x, b.init("W", []int64{2, 1}, 1, 2))))
	batches := calibrationOf(t, b.g, 1, -1, 1, 4, 4)
	for _, tc := range []struct {
		configure func(o *quantOptions)
		env       *Env
		want      string
	}{
		{func(o *quantOptions) { o.MaxError = 0.1 }, &Env{}, "measured on calibration data, and none was given"},
		{func(o *quantOptions) { o.MaxError = -1 }, &Env{}, "--max-error -1 is negative"},
		{func(o *quantOptions) { o.MinTop1 = 2 }, &Env{}, "--min-top1 2 is not in [0, 1]"},
		// y is [N, 1]: no classes to agree on.
		{func(o *quantOptions) { o.MinTop1 = 0.5 }, &Env{Calibration: batches}, "no output is shaped [N, C]"},
	} {
		p := newQuantizeWeight().(*weightQuantization)
		tc.configure(&p.quantOptions)
		if _, err := p.Run(cloneModel(t, b.m), tc.env); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}
}
