//go:build cgo

package verify

import (
	"os"
	"testing"

	"onnxopt/runtime"
	"onnxopt/runtime/ort"
)

// needORT skips the test when ONNX Runtime is not installed, except under
// CI, where it fails.
func needORT(t testing.TB) {
	t.Helper()
	err := ORTAvailable()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(err)
	}
	t.Skip(err)
}

// TestBothDigits runs the CNN in both runtimes on its test set, sample by
// sample: onnxopt's runtime and ONNX Runtime must agree within 1e-4, and
// each with the reference.
func TestBothDigits(t *testing.T) {
	needORT(t)
	m := loadModel(t, digitsModel)
	tol := Tolerance{ATol: 1e-4}
	r, err := Models(m, loadModel(t, digitsModel), []Case{digitsBatch(t)}, Options{Tolerance: tol, Backend: Both})
	if err != nil {
		t.Fatal(err)
	}
	labels := [][2]string{
		{"reference (ours)", "candidate (ours)"},
		{"reference (ours)", "candidate (ort)"},
		{"candidate (ours)", "candidate (ort)"},
	}
	if len(r.Comparisons) != len(labels) {
		t.Fatalf("%d comparisons, want %d", len(r.Comparisons), len(labels))
	}
	for i, cmp := range r.Comparisons {
		if cmp.Reference != labels[i][0] || cmp.Candidate != labels[i][1] {
			t.Errorf("comparison %d is %s vs %s, want %v", i, cmp.Reference, cmp.Candidate, labels[i])
		}
		out := cmp.Outputs[0]
		if !cmp.Pass || out.Metrics.MaxAbs > tol.ATol || out.SamplesOutside != 0 || out.Metrics.Top1 != 1 {
			t.Errorf("%s vs %s: %+v", cmp.Reference, cmp.Candidate, out.Metrics)
		}
	}
	if !r.Pass {
		t.Error("report fails")
	}
	// The two runtimes do not sum in the same order: their outputs
	// differ, so the comparison did run ONNX Runtime.
	if r.Comparisons[2].Outputs[0].Metrics.Identical() {
		t.Error("ONNX Runtime's logits are identical to onnxopt's, bit for bit")
	}
}

// TestExpectedORT checks the CNN in ONNX Runtime against torch's logits,
// from a model given in memory rather than by path.
func TestExpectedORT(t *testing.T) {
	needORT(t)
	m := loadModel(t, digitsModel)
	m.Path = ""
	cases, err := ReadTestData(digitsDir, m.Graph.Graph)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Expected(m, cases, Options{Tolerance: Tolerance{ATol: 1e-4}, Backend: ORT})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Comparisons) != 1 || !r.Pass || r.Comparisons[0].Outputs[0].Metrics.Top1 != 1 {
		t.Errorf("%+v", r.Comparisons)
	}
}

// BenchmarkORTBothDigitsCNN.
func BenchmarkVerifyDigitsCNN(b *testing.B) {
	ref, cand := loadModel(b, digitsModel), loadModel(b, digitsModel)
	cases, err := ReadTestData(digitsDir, ref.Graph.Graph)
	if err != nil {
		b.Fatal(err)
	}
	opt := Options{Tolerance: tight}
	b.ReportAllocs()
	for b.Loop() {
		r, err := Models(ref, cand, cases, opt)
		if err != nil || !r.Pass {
			b.Fatal(err)
		}
	}
}

// BenchmarkORTBothDigitsCNN runs the digits CNN twice, as two sessions, in
// ONNX Runtime on one thread on the same 397 samples: what running a
// reference and a candidate costs there, sessions already open.
func BenchmarkORTBothDigitsCNN(b *testing.B) {
	needORT(b)
	var sessions []*ort.Session
	for range 2 {
		s, err := ort.Open(digitsModel, ort.Options{Threads: 1})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		sessions = append(sessions, s)
	}
	p, err := runtime.TensorToProto("input", digitsBatch(b).Inputs["input"])
	if err != nil {
		b.Fatal(err)
	}
	x, err := ort.FromProto(p)
	if err != nil {
		b.Fatal(err)
	}
	feeds := map[string]*ort.Tensor{"input": x}
	for b.Loop() {
		for _, s := range sessions {
			if _, err := s.Run(feeds); err != nil {
				b.Fatal(err)
			}
		}
	}
}
