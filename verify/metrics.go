package verify

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"onnxopt/onnx"
	"onnxopt/runtime"
)

// Tolerance says when a candidate's values are close enough to the
// reference's.
type Tolerance struct {
	// ATol and RTol bound every element: |cand−ref| ≤ ATol + RTol·|ref|.
	// +Inf for either turns the elementwise check off.
	ATol float64 `json:"atol"`
	RTol float64 `json:"rtol"`
	// MinCosine is the least cosine similarity allowed; 0 or less checks
	// nothing.
	MinCosine float64 `json:"min_cosine"`
	// MinTop1 is the least fraction of rows of a classifier-shaped output
	// ([N, C] floats) whose largest element must be in the same column;
	// 0 or less checks nothing.
	MinTop1 float64 `json:"min_top1"`
}

// MarshalJSON writes an infinite tolerance (a check turned off) as null.
func (t Tolerance) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ATol      *float64 `json:"atol"`
		RTol      *float64 `json:"rtol"`
		MinCosine float64  `json:"min_cosine"`
		MinTop1   float64  `json:"min_top1"`
	}{finite(t.ATol), finite(t.RTol), t.MinCosine, t.MinTop1})
}

// Metrics measure how far a candidate's values are from the reference's.
type Metrics struct {
	// Elements is the number of elements compared.
	Elements int
	// Outside counts the elements beyond ATol + RTol·|ref|, and those
	// where only one side is NaN or the sides are different infinities.
	Outside int
	// MaxAbs and MeanAbs are the largest and the mean |cand−ref|; MaxRel
	// is the largest |cand−ref|/|ref| over elements where ref is not
	// zero. A NaN or infinity on one side only makes all three +Inf.
	MaxAbs, MeanAbs, MaxRel float64
	// Cosine is the cosine similarity of the two as vectors: 1 when both
	// are zero, 0 when only one is.
	Cosine float64
	// SQNR is the signal-to-quantization-noise ratio in decibels,
	// 10·log10(Σref² / Σ(cand−ref)²): +Inf when the values are
	// identical, −Inf when the reference is all zeros and the candidate
	// is not, or when one side holds NaN or infinity where the other
	// does not.
	SQNR float64
	// Rows is the number of rows of a classifier-shaped output ([N, C]
	// floats with C > 1), and Top1 the fraction of them whose largest
	// element is in the same column in both. Both are 0 for other values.
	Rows int
	Top1 float64
	// Mismatch says why the values could not be compared (element types
	// or shapes differ); the other fields are then zero.
	Mismatch string
}

// Identical reports whether the candidate equals the reference element
// for element (NaN matching NaN).
func (m Metrics) Identical() bool {
	return m.Mismatch == "" && m.Outside == 0 && math.IsInf(m.SQNR, 1)
}

// within reports whether m meets t. Outside was counted with t's ATol and
// RTol already.
func (m Metrics) within(t Tolerance) bool {
	if m.Mismatch != "" || m.Outside > 0 {
		return false
	}
	if t.MinCosine > 0 && !(m.Cosine >= t.MinCosine) {
		return false
	}
	if t.MinTop1 > 0 && m.Rows > 0 && !(m.Top1 >= t.MinTop1) {
		return false
	}
	return true
}

// metricsJSON is the JSON form of Metrics. JSON has no infinities or NaN:
// such values are written as null. sqnr_db is null with identical true
// for identical values (+Inf), and null with identical false when the
// reference has no signal or one side is not finite (−Inf).
type metricsJSON struct {
	Elements  int      `json:"elements"`
	Outside   int      `json:"outside_tolerance"`
	MaxAbs    *float64 `json:"max_abs_error"`
	MeanAbs   *float64 `json:"mean_abs_error"`
	MaxRel    *float64 `json:"max_rel_error"`
	Cosine    *float64 `json:"cosine"`
	SQNR      *float64 `json:"sqnr_db"`
	Identical bool     `json:"identical"`
	Rows      int      `json:"rows,omitempty"`
	Top1      *float64 `json:"top1,omitempty"`
	Mismatch  string   `json:"mismatch,omitempty"`
}

// MarshalJSON writes the metrics with non-finite values as null; see
// metricsJSON.
func (m Metrics) MarshalJSON() ([]byte, error) {
	j := metricsJSON{
		Elements: m.Elements, Outside: m.Outside,
		MaxAbs: finite(m.MaxAbs), MeanAbs: finite(m.MeanAbs), MaxRel: finite(m.MaxRel),
		Cosine: finite(m.Cosine), SQNR: finite(m.SQNR), Identical: m.Identical(),
		Rows: m.Rows, Mismatch: m.Mismatch,
	}
	if m.Rows > 0 {
		j.Top1 = &m.Top1
	}
	return json.Marshal(j)
}

func finite(x float64) *float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return nil
	}
	return &x
}

// accumulator gathers the sums behind Metrics over any number of
// slices, so that metrics of a sample, a batch and a whole run come from
// one pass over the data.
type accumulator struct {
	elements, outside              int
	sumAbs, sumRef2, sumCand2, dot float64
	sumErr2, maxAbs, maxRel        float64
	// nonFinite is set when one side holds NaN or an infinity that the
	// other side does not.
	nonFinite   bool
	rows, agree int
	mismatch    string
}

func (a *accumulator) merge(b *accumulator) {
	if a.mismatch == "" {
		a.mismatch = b.mismatch
	}
	a.elements += b.elements
	a.outside += b.outside
	a.sumAbs += b.sumAbs
	a.sumRef2 += b.sumRef2
	a.sumCand2 += b.sumCand2
	a.dot += b.dot
	a.sumErr2 += b.sumErr2
	a.maxAbs = math.Max(a.maxAbs, b.maxAbs)
	a.maxRel = math.Max(a.maxRel, b.maxRel)
	a.nonFinite = a.nonFinite || b.nonFinite
	a.rows += b.rows
	a.agree += b.agree
}

func (a *accumulator) metrics() Metrics {
	if a.mismatch != "" {
		return Metrics{Mismatch: a.mismatch}
	}
	m := Metrics{Elements: a.elements, Outside: a.outside, MaxAbs: a.maxAbs, MaxRel: a.maxRel, Rows: a.rows}
	if a.elements > 0 {
		m.MeanAbs = a.sumAbs / float64(a.elements)
	}
	switch {
	case a.sumRef2 == 0 && a.sumCand2 == 0:
		m.Cosine = 1
	case a.sumRef2 == 0 || a.sumCand2 == 0:
		m.Cosine = 0
	default:
		// Clamped: rounding can take identical vectors a hair past 1.
		m.Cosine = math.Min(1, math.Max(-1, a.dot/math.Sqrt(a.sumRef2*a.sumCand2)))
	}
	switch {
	case a.sumErr2 == 0:
		m.SQNR = math.Inf(1)
	default:
		m.SQNR = 10 * math.Log10(a.sumRef2/a.sumErr2)
	}
	if a.rows > 0 {
		m.Top1 = float64(a.agree) / float64(a.rows)
	}
	if a.nonFinite {
		m.MaxAbs, m.MeanAbs, m.MaxRel = math.Inf(1), math.Inf(1), math.Inf(1)
		m.SQNR = math.Inf(-1)
		m.Cosine = math.NaN()
	}
	return m
}

// number is the element types whose differences are measured.
type number interface {
	~float32 | ~float64 | ~int64 | ~int32 | ~int16 | ~int8 | ~uint64 | ~uint32 | ~uint16 | ~uint8
}

// addNumbers accumulates the differences between ref and cand, which
// have the same length. With rowLen > 0 the slices are rows of rowLen
// elements whose argmax positions are compared too.
func addNumbers[T number](a *accumulator, ref, cand []T, rowLen int, tol Tolerance) {
	a.elements += len(ref)
	for i, rv := range ref {
		r, c := float64(rv), float64(cand[i])
		if math.IsNaN(r) || math.IsNaN(c) || math.IsInf(r, 0) || math.IsInf(c, 0) {
			if r != c && !(math.IsNaN(r) && math.IsNaN(c)) {
				a.nonFinite = true
				a.outside++
			}
			continue
		}
		d := math.Abs(c - r)
		if d > tol.ATol+tol.RTol*math.Abs(r) {
			a.outside++
		}
		a.sumAbs += d
		a.sumErr2 += d * d
		a.sumRef2 += r * r
		a.sumCand2 += c * c
		a.dot += r * c
		a.maxAbs = math.Max(a.maxAbs, d)
		if r != 0 {
			a.maxRel = math.Max(a.maxRel, d/math.Abs(r))
		}
	}
	if rowLen <= 0 {
		return
	}
	for lo := 0; lo+rowLen <= len(ref); lo += rowLen {
		a.rows++
		if argmax(ref[lo:lo+rowLen]) == argmax(cand[lo:lo+rowLen]) {
			a.agree++
		}
	}
}

// argmax returns the index of the first largest element; NaN is never
// largest.
func argmax[T number](xs []T) int {
	best := -1
	for i, x := range xs {
		if x != x {
			continue
		}
		if best < 0 || x > xs[best] {
			best = i
		}
	}
	return best
}

// incomparable reports why ref and cand cannot be compared element for
// element, or "" when they can.
func incomparable(ref, cand *runtime.Tensor) string {
	switch {
	case ref == nil || cand == nil:
		return "missing value"
	case ref.Kind != runtime.KindTensor || cand.Kind != runtime.KindTensor:
		return "sequences and optionals are not compared"
	case ref.DType != cand.DType:
		return fmt.Sprintf("element types differ: reference %s, candidate %s", dtypeName(ref.DType), dtypeName(cand.DType))
	case !slices.Equal(ref.Shape, cand.Shape):
		return fmt.Sprintf("shapes differ: reference %v, candidate %v", ref.Shape, cand.Shape)
	case ref.Len() != cand.Len():
		return fmt.Sprintf("element counts differ: reference %d, candidate %d", ref.Len(), cand.Len())
	}
	return ""
}

func dtypeName(dt onnx.TensorProto_DataType) string {
	return strings.ToLower(dt.String())
}

// classifierRow returns the row length of a classifier-shaped tensor
// ([N, C] floats, C > 1), or 0.
func classifierRow(t *runtime.Tensor) int {
	if t.Rank() != 2 || t.Shape[1] < 2 {
		return 0
	}
	switch t.Data.(type) {
	case []float32, []float64:
		return t.Shape[1]
	}
	return 0
}

// addRange accumulates elements [lo, hi) of two tensors that
// incomparable has accepted. rowLen is as for addNumbers and must divide
// lo and hi.
func addRange(a *accumulator, ref, cand *runtime.Tensor, lo, hi, rowLen int, tol Tolerance) {
	switch r := ref.Data.(type) {
	case []float32:
		addNumbers(a, r[lo:hi], cand.Data.([]float32)[lo:hi], rowLen, tol)
	case []float64:
		addNumbers(a, r[lo:hi], cand.Data.([]float64)[lo:hi], rowLen, tol)
	case []int64:
		addNumbers(a, r[lo:hi], cand.Data.([]int64)[lo:hi], 0, tol)
	case []int32:
		addNumbers(a, r[lo:hi], cand.Data.([]int32)[lo:hi], 0, tol)
	case []int16:
		addNumbers(a, r[lo:hi], cand.Data.([]int16)[lo:hi], 0, tol)
	case []int8:
		addNumbers(a, r[lo:hi], cand.Data.([]int8)[lo:hi], 0, tol)
	case []uint64:
		addNumbers(a, r[lo:hi], cand.Data.([]uint64)[lo:hi], 0, tol)
	case []uint32:
		addNumbers(a, r[lo:hi], cand.Data.([]uint32)[lo:hi], 0, tol)
	case []uint16:
		addNumbers(a, r[lo:hi], cand.Data.([]uint16)[lo:hi], 0, tol)
	case []uint8:
		addNumbers(a, r[lo:hi], cand.Data.([]uint8)[lo:hi], 0, tol)
	case []bool:
		addNumbers(a, boolsAsBytes(r[lo:hi]), boolsAsBytes(cand.Data.([]bool)[lo:hi]), 0, tol)
	case []string:
		c := cand.Data.([]string)[lo:hi]
		a.elements += hi - lo
		for i, s := range r[lo:hi] {
			if s != c[i] {
				a.outside++
				a.nonFinite = true // no distance between strings
			}
		}
	default:
		a.mismatch = fmt.Sprintf("elements of %T are not compared", ref.Data)
	}
}

func boolsAsBytes(bs []bool) []uint8 {
	out := make([]uint8, len(bs))
	for i, b := range bs {
		if b {
			out[i] = 1
		}
	}
	return out
}
