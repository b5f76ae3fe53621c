package passes

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// Two layers with weights whose magnitudes make per-layer and global
// pruning choose differently: W2's are mostly larger than W1's.
var (
	pruneW1 = []float32{0.1, -0.5, 0.3, 0.9, -0.2, 0.05, 0.7, -0.4, 0.6, -0.8, 0.15, 0.25} // [3, 4], read with transB
	pruneW2 = []float32{1.35, -1.45, 1.55, -0.65, 0.12, 0.22}                              // [3, 2]
)

// twoGemms is x [N, 4] → Gemm(W1ᵀ, b1) → Relu → Gemm(W2, b2) → y [N, 2],
// built with the given weights.
func twoGemms(t *testing.T, w1, w2 []float32) *builder {
	b := newBuilder(t, 13)
	x := b.batchInput("x", 4)
	h := b.nodeWith("Gemm", "h", []*graph.Value{x, b.init("W1", []int64{3, 4}, w1...), b.init("b1", []int64{3}, 0.5, -0.25, 0.125)}, intAttr("transB", 1))
	r := b.node("Relu", "r", h)
	b.output(b.node("Gemm", "y", r, b.init("W2", []int64{3, 2}, w2...), b.init("b2", []int64{2}, 1, -1)))
	return b
}

// withZeros returns xs with the elements at idx set to 0.
func withZeros(xs []float32, idx ...int) []float32 {
	out := slices.Clone(xs)
	for _, i := range idx {
		out[i] = 0
	}
	return out
}

func TestPruneMagnitude(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		w1, w2 []int // the zeros expected
		warn   string
	}{
		// |W1| sorted: 0.05 (5), 0.1 (0), 0.15 (10), 0.2 (4), 0.25 (11), 0.3 (2), 0.4 (7)...
		// |W2| sorted: 0.12 (4), 0.22 (5), 0.65 (3), 1.35 (0)...
		{"per layer", []string{"--sparsity", "0.5"}, []int{0, 2, 4, 5, 10, 11}, []int{3, 4, 5}, ""},
		// The 9 smallest of all 18: 0.05 0.1 0.12 0.15 0.2 0.22 0.25 0.3 0.4.
		{"global", []string{"--sparsity", "0.5", "--global"}, []int{0, 2, 4, 5, 7, 10, 11}, []int{4, 5}, ""},
		{"zero sparsity", []string{"--sparsity", "0"}, nil, nil, ""},
		{"exclude by op type", []string{"--sparsity", "0.5", "--exclude", "Gemm"}, nil, nil, "nothing to prune"},
		{"exclude by name", []string{"--sparsity", "0.5", "--exclude", "Gemm_y"}, []int{0, 2, 4, 5, 10, 11}, nil, ""},
		{"exclude by pattern", []string{"--sparsity", "0.5", "--exclude", "Gemm_h*"}, nil, []int{3, 4, 5}, ""},
		{"keep first and last", []string{"--sparsity", "0.5", "--keep-first-last"}, nil, nil, "nothing to prune"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := twoGemms(t, pruneW1, pruneW2)
			p := applyPrune(t, b.m, "prune-magnitude", nil, tc.args...)
			got1, got2 := weightOf(t, p.back, "W1"), weightOf(t, p.back, "W2")
			if !slices.Equal(zeros(got1), tc.w1) || !slices.Equal(zeros(got2), tc.w2) {
				t.Errorf("zeros W1 %v, W2 %v; want %v, %v", zeros(got1), zeros(got2), tc.w1, tc.w2)
			}
			if p.res.Changes != len(tc.w1)+len(tc.w2) {
				t.Errorf("%d changes, want %d", p.res.Changes, len(tc.w1)+len(tc.w2))
			}
			if !slices.Equal(weightOf(t, p.back, "b1"), []float32{0.5, -0.25, 0.125}) || !slices.Equal(weightOf(t, p.back, "b2"), []float32{1, -1}) {
				t.Error("a bias changed")
			}
			if tc.warn == "" && len(p.warnings) != 0 || tc.warn != "" && (len(p.warnings) != 1 || !strings.Contains(p.warnings[0], tc.warn)) {
				t.Errorf("warnings %q, want one saying %q", p.warnings, tc.warn)
			}
			want := twoGemms(t, withZeros(pruneW1, tc.w1...), withZeros(pruneW2, tc.w2...))
			sameOutputs(t, p.back, want.m, calibrationFor(t, want.g, 1, 5)[0])
		})
	}
}

// TestPruneSchedule prunes W1 at the schedule's own sparsity and W2 at
// --sparsity, ranked globally on its own.
func TestPruneSchedule(t *testing.T) {
	file := filepath.Join(t.TempDir(), "schedule.json")
	if err := os.WriteFile(file, []byte(`{"Gemm_h": 0.25}`), 0o644); err != nil {
		t.Fatal(err)
	}
	b := twoGemms(t, pruneW1, pruneW2)
	p := applyPrune(t, b.m, "prune-magnitude", nil, "--sparsity", "0.5", "--global", "--schedule", file)
	if got, want := zeros(weightOf(t, p.back, "W1")), []int{0, 5, 10}; !slices.Equal(got, want) {
		t.Errorf("W1 zeros %v, want %v", got, want)
	}
	if got, want := zeros(weightOf(t, p.back, "W2")), []int{3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("W2 zeros %v, want %v", got, want)
	}
}

// TestPruneConstantAndShared prunes a weight a Constant node holds, and a
// weight two MatMuls share, once.
func TestPruneConstantAndShared(t *testing.T) {
	build := func(wc, ws []float32) *builder {
		b := newBuilder(t, 13)
		x := b.batchInput("x", 4)
		tc, err := onnx.NewTensor("", onnx.TensorProto_FLOAT, []int64{4, 4}, wc)
		if err != nil {
			t.Fatal(err)
		}
		c := b.nodeWith("Constant", "C", nil, &onnx.AttributeProto{Name: proto.String("value"), Type: onnx.AttributeProto_TENSOR.Enum(), T: tc})
		h := b.node("MatMul", "h", x, c)
		shared := b.init("S", []int64{4, 4}, ws...)
		h2 := b.node("MatMul", "h2", b.node("Tanh", "a", h), shared)
		b.output(b.node("MatMul", "y", b.node("Tanh", "a2", h2), shared))
		return b
	}
	wc, ws := randomFloats(3, 16), randomFloats(4, 16)
	b := build(wc, ws)
	p := applyPrune(t, b.m, "prune-magnitude", nil, "--sparsity", "0.75")
	gotC, gotS := weightOf(t, p.back, "C"), weightOf(t, p.back, "S")
	if len(zeros(gotC)) != 12 || len(zeros(gotS)) != 12 || p.res.Changes != 24 {
		t.Fatalf("zeros: C %d, S %d, changes %d; want 12, 12, 24", len(zeros(gotC)), len(zeros(gotS)), p.res.Changes)
	}
	if p.back.Graph.Lookup("C").Producer == nil || p.back.Graph.Lookup("C").Producer.OpType != "Constant" {
		t.Error("the Constant node is gone")
	}
	if uses := p.back.Graph.Lookup("S").Uses; len(uses) != 2 {
		t.Errorf("S has %d readers, want 2", len(uses))
	}
	for i := range wc {
		if gotC[i] != 0 && gotC[i] != wc[i] || gotS[i] != 0 && gotS[i] != ws[i] {
			t.Fatalf("element %d changed to a value that is not 0", i)
		}
	}
	// The 4 kept of each are the largest in magnitude.
	for _, c := range []struct {
		orig, got []float32
	}{{wc, gotC}, {ws, gotS}} {
		minKept, maxPruned := float32(2), float32(0)
		for i, v := range c.orig {
			a := max(v, -v)
			if c.got[i] != 0 {
				minKept = min(minKept, a)
			} else {
				maxPruned = max(maxPruned, a)
			}
		}
		if maxPruned > minKept {
			t.Errorf("pruned |w| up to %g but kept one of %g", maxPruned, minKept)
		}
	}
	sameOutputs(t, p.back, build(gotC, gotS).m, calibrationFor(t, b.g, 2, 3)[0])
}

func TestPruneExcludeWarns(t *testing.T) {
	b := twoGemms(t, pruneW1, pruneW2)
	p := applyPrune(t, b.m, "prune-magnitude", nil, "--exclude", "Conv,Gemm_y")
	if len(p.warnings) != 1 || !strings.Contains(p.warnings[0], `"Conv"`) {
		t.Errorf("warnings %q, want one about Conv", p.warnings)
	}
	if !slices.ContainsFunc(p.res.Notes, func(n string) bool { return strings.Contains(n, `"W2"`) && strings.Contains(n, "--exclude") }) {
		t.Errorf("notes %q do not say W2 was excluded", p.res.Notes)
	}
}

func TestPruneErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	unknown := write("unknown.json", `{"Gemm_h": 0.5, "nowhere": 0.5}`)
	tooMuch := write("too-much.json", `{"Gemm_h": 1}`)
	notJSON := write("bad.json", `Gemm_h: 0.5`)
	noWeights := func(t *testing.T) *graph.Model {
		b := newBuilder(t, 13)
		b.output(b.node("Relu", "y", b.batchInput("x", 4)))
		return b.m
	}
	mlp := func(t *testing.T) *graph.Model { return twoGemms(t, pruneW1, pruneW2).m }
	for _, tc := range []struct {
		name  string
		model func(t *testing.T) *graph.Model
		pass  string
		args  []string
		want  string
	}{
		{"sparsity 1", mlp, "prune-magnitude", []string{"--sparsity", "1"}, "outside [0, 1)"},
		{"negative sparsity", mlp, "prune-random", []string{"--sparsity", "-0.1"}, "outside [0, 1)"},
		{"no prunable layers", noWeights, "prune-magnitude", nil, "no prunable weights"},
		{"unknown schedule layer", mlp, "prune-magnitude", []string{"--schedule", unknown}, `named "nowhere"`},
		{"schedule sparsity 1", mlp, "prune-magnitude", []string{"--schedule", tooMuch}, "outside [0, 1)"},
		{"schedule not JSON", mlp, "prune-magnitude", []string{"--schedule", notJSON}, "JSON object"},
		{"missing schedule", mlp, "prune-magnitude", []string{"--schedule", filepath.Join(dir, "none.json")}, "no such file"},
		{"reconstruct without calibration", mlp, "prune-magnitude", []string{"--reconstruct"}, "needs calibration data"},
		{"gradient without calibration", mlp, "prune-gradient", nil, "needs calibration data"},
		{"bad saliency", mlp, "prune-gradient", []string{"--saliency", "hessian"}, `--saliency "hessian"`},
		{"bad N:M", mlp, "prune-nm", []string{"--nm", "4:2"}, "0 < N < M"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := prunePass(tc.model(t), tc.pass, nil, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// TestPruneCalibrationMismatch gives calibration samples of the wrong
// shape: the error names the input and both shapes.
func TestPruneCalibrationMismatch(t *testing.T) {
	b := twoGemms(t, pruneW1, pruneW2)
	x, err := runtime.FromSlice(randomFloats(1, 15), 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	_, err = prunePass(b.m, "prune-magnitude", []map[string]*runtime.Tensor{{"x": x}}, "--reconstruct")
	if err == nil || !strings.Contains(err.Error(), `input "x"`) || !strings.Contains(err.Error(), "[5 3]") {
		t.Errorf("error %v, want one naming input x and shape [5 3]", err)
	}
}

// TestPrunableWeights checks which inputs count as weights, their axes,
// and the notes on those left alone.
func TestPrunableWeights(t *testing.T) {
	b := newBuilder(t, 14)
	x := b.input("x", 1, 2, 5, 5)
	conv := b.node("Conv", "conv", x, b.weights("Wc", 1, -1, 1, 4, 2, 3, 3), b.weights("bc", 2, -1, 1, 4))
	b.nodeWith("ConvTranspose", "convt", []*graph.Value{conv, b.weights("Wt", 3, -1, 1, 4, 3, 2, 2)})
	f := b.input("f", 2, 6)
	b.nodeWith("Gemm", "g0", []*graph.Value{f, b.weights("B0", 4, -1, 1, 6, 3)})
	b.nodeWith("Gemm", "g1", []*graph.Value{f, b.weights("B1", 5, -1, 1, 3, 6)}, intAttr("transB", 1))
	b.node("MatMul", "mb", f, b.weights("MB", 6, -1, 1, 6, 2))
	b.node("MatMul", "ma", b.weights("MA", 7, -1, 1, 3, 2), f)
	b.node("MatMul", "mx", f, b.input("act", 6, 2)) // two activations: no weight
	seq := b.input("seq", 4, 1, 3)
	b.nodeWith("LSTM", "lstm", []*graph.Value{seq, b.weights("LW", 8, -1, 1, 1, 8, 3), b.weights("LR", 9, -1, 1, 1, 8, 2)}, intAttr("hidden_size", 2))
	over := b.weights("OV", 10, -1, 1, 6, 3)
	b.g.Inputs = append(b.g.Inputs, over) // an IR 3 default a caller may override
	b.node("Gemm", "gc", f, b.node("Relu", "computed", b.weights("CW", 11, -1, 1, 6, 3)))
	b.node("Gemm", "go", f, over)
	ints, err := onnx.NewTensor("WI", onnx.TensorProto_INT32, []int64{6, 3}, make([]int32, 18))
	if err != nil {
		t.Fatal(err)
	}
	b.node("Gemm", "gi", f, b.g.AddInitializer(ints))
	shared := b.weights("SH", 12, -1, 1, 6, 6)
	b.node("Gemm", "s0", f, shared)
	b.nodeWith("Gemm", "s1", []*graph.Value{f, shared}, intAttr("transB", 1))

	weights, notes, err := PrunableWeights(b.m)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		name           string
		input, out, in int
		layers         int
	}
	var got []row
	for _, w := range weights {
		got = append(got, row{w.Name(), w.Input, w.OutAxis, w.InAxis, len(w.Layers)})
	}
	want := []row{
		{"Wc", 1, 0, 1, 1},
		{"Wt", 1, 1, 0, 1},
		{"B0", 1, 1, 0, 1},
		{"B1", 1, 0, 1, 1},
		{"MB", 1, 1, 0, 1},
		{"MA", 0, 0, 1, 1},
		{"LW", 1, 1, 2, 1},
		{"LR", 2, 1, 2, 1},
	}
	if !slices.Equal(got, want) {
		t.Errorf("weights\n%v\nwant\n%v", got, want)
	}
	for _, w := range []string{`"OV" is an initializer a graph input can override`, `"computed" is computed by`, `"WI" is of type`, `"SH" left alone`} {
		if !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, w) }) {
			t.Errorf("no note saying %s in %q", w, notes)
		}
	}
}
