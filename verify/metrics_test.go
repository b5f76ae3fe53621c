package verify

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"onnxopt/runtime"
)

func tensor(t *testing.T, data any, shape ...int) *runtime.Tensor {
	t.Helper()
	x, err := runtime.FromSlice(data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func measure(t *testing.T, ref, cand *runtime.Tensor, tol Tolerance) Metrics {
	t.Helper()
	var a accumulator
	if why := incomparable(ref, cand); why != "" {
		a.mismatch = why
	} else {
		addRange(&a, ref, cand, 0, ref.Len(), classifierRow(ref), tol)
	}
	return a.metrics()
}

// TestMetricsByHand checks every metric against values worked out by
// hand.
func TestMetricsByHand(t *testing.T) {
	// Rows [1 2] and [3 0] against [1 2] and [3 1]: one error of 1 on a
	// reference 0, and the second row's argmax stays put.
	ref := tensor(t, []float32{1, 2, 3, 0}, 2, 2)
	cand := tensor(t, []float32{1, 2, 3, 1}, 2, 2)
	m := measure(t, ref, cand, Tolerance{ATol: 0.5})
	sumRef2, sumCand2, dot := 14.0, 15.0, 14.0
	want := Metrics{
		Elements: 4, Outside: 1, MaxAbs: 1, MeanAbs: 0.25, MaxRel: 0,
		Cosine: dot / math.Sqrt(sumRef2*sumCand2), SQNR: 10 * math.Log10(sumRef2/1),
		Rows: 2, Top1: 1,
	}
	if math.Abs(m.Cosine-want.Cosine) > 1e-15 || math.Abs(m.SQNR-want.SQNR) > 1e-12 {
		t.Errorf("cosine %v SQNR %v, want %v %v", m.Cosine, m.SQNR, want.Cosine, want.SQNR)
	}
	m.Cosine, m.SQNR, want.Cosine, want.SQNR = 0, 0, 0, 0
	if m != want {
		t.Errorf("metrics %+v, want %+v", m, want)
	}

	// One row of three: the argmax moves from column 2 to column 0.
	m = measure(t, tensor(t, []float64{1, 2, 4}, 1, 3), tensor(t, []float64{5, 2, 4}, 1, 3), Tolerance{ATol: 4})
	if m.Outside != 0 || m.MaxAbs != 4 || m.MaxRel != 4 || m.Top1 != 0 || m.Rows != 1 {
		t.Errorf("moved argmax: %+v", m)
	}
	// Relative tolerance: |d| = 0.1 ≤ 0 + 0.1·|1|... but not for 0.5.
	m = measure(t, tensor(t, []float32{1, 0.5}, 2), tensor(t, []float32{1.1, 0.6}, 2), Tolerance{RTol: 0.1 + 1e-6})
	if m.Outside != 1 || m.Rows != 0 {
		t.Errorf("rtol: %+v", m)
	}
}

func TestMetricsEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ref, cand  *runtime.Tensor
		cosine     float64
		sqnr       float64
		outside    int
		identical  bool
		mismatched bool
	}{
		{name: "zeros", ref: tensor(t, []float32{0, 0}, 2), cand: tensor(t, []float32{0, 0}, 2), cosine: 1, sqnr: math.Inf(1), identical: true},
		{name: "zero reference", ref: tensor(t, []float32{0, 0}, 2), cand: tensor(t, []float32{0, 1}, 2), cosine: 0, sqnr: math.Inf(-1), outside: 1},
		{name: "NaN matches NaN", ref: tensor(t, []float32{float32(math.NaN()), 1}, 2), cand: tensor(t, []float32{float32(math.NaN()), 1}, 2), cosine: 1, sqnr: math.Inf(1), identical: true},
		{name: "NaN against a number", ref: tensor(t, []float32{float32(math.NaN()), 1}, 2), cand: tensor(t, []float32{0, 1}, 2), cosine: math.NaN(), sqnr: math.Inf(-1), outside: 1},
		{name: "integers", ref: tensor(t, []int64{1, 2}, 2), cand: tensor(t, []int64{1, 2}, 2), cosine: 1, sqnr: math.Inf(1), identical: true},
		{name: "booleans", ref: tensor(t, []bool{true, false}, 2), cand: tensor(t, []bool{false, false}, 2), cosine: 0, sqnr: 0, outside: 1},
		{name: "dtypes", ref: tensor(t, []float32{1}, 1), cand: tensor(t, []float64{1}, 1), mismatched: true},
		{name: "shapes", ref: tensor(t, []float32{1, 2}, 2), cand: tensor(t, []float32{1, 2}, 1, 2), mismatched: true},
	} {
		m := measure(t, tc.ref, tc.cand, Tolerance{})
		if tc.mismatched {
			if m.Mismatch == "" || m.Identical() || m.within(Tolerance{ATol: math.Inf(1)}) {
				t.Errorf("%s: %+v, want a mismatch that fails", tc.name, m)
			}
			continue
		}
		sameCosine := m.Cosine == tc.cosine || math.IsNaN(m.Cosine) && math.IsNaN(tc.cosine)
		if !sameCosine || m.SQNR != tc.sqnr || m.Outside != tc.outside || m.Identical() != tc.identical {
			t.Errorf("%s: %+v, want cosine %v SQNR %v outside %d identical %v", tc.name, m, tc.cosine, tc.sqnr, tc.outside, tc.identical)
		}
		// JSON must stay valid whatever the values.
		b, err := json.Marshal(m)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if math.IsInf(tc.sqnr, 0) && !strings.Contains(string(b), `"sqnr_db":null`) {
			t.Errorf("%s: JSON %s", tc.name, b)
		}
	}
}

// TestMinima checks the cosine and top-1 limits, and that an infinite
// ATol turns the elementwise check off.
func TestMinima(t *testing.T) {
	ref := tensor(t, []float32{1, 0, 0, 1}, 2, 2)
	cand := tensor(t, []float32{1, 0.2, 0.2, 0.1}, 2, 2) // second row's argmax moves
	off := Tolerance{ATol: math.Inf(1)}
	m := measure(t, ref, cand, off)
	if !m.within(off) || m.Top1 != 0.5 {
		t.Fatalf("%+v within %+v: %v", m, off, m.within(off))
	}
	for _, tc := range []struct {
		tol  Tolerance
		pass bool
	}{
		{Tolerance{ATol: math.Inf(1), MinTop1: 0.5}, true},
		{Tolerance{ATol: math.Inf(1), MinTop1: 0.51}, false},
		{Tolerance{ATol: math.Inf(1), MinCosine: m.Cosine}, true},
		{Tolerance{ATol: math.Inf(1), MinCosine: m.Cosine + 1e-9}, false},
	} {
		if got := m.within(tc.tol); got != tc.pass {
			t.Errorf("within %+v: %v, want %v", tc.tol, got, tc.pass)
		}
	}
	b, err := json.Marshal(off)
	if err != nil || !strings.Contains(string(b), `"atol":null`) {
		t.Errorf("infinite atol as JSON: %s, %v", b, err)
	}
}
