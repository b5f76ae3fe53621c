package runtime

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// reduceCases are the lowercase op names that conformance node cases of
// the reduction operators start with.
var reduceCases = []string{
	"reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_l1", "reduce_l2",
	"reduce_log_sum", "reduce_log_sum_exp", "reduce_sum_square",
	"argmax", "argmin", "softmax", "logsoftmax", "hardmax", "cumsum", "top_k",
}

func TestReduceConformance(t *testing.T) {
	checkOpCases(t, reduceCases, nil)
}

func BenchmarkSoftmax(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, shape := range [][]int{{397, 10}, {1, 1000}, {64, 512, 512}} {
		b.Run(fmt.Sprint(shape), func(b *testing.B) {
			benchKernel(b, newOpCall("Softmax", 13), randomTensor(rng, f32T, shape...))
		})
	}
}

// TestExpFloat32 checks the fast exp against math.Exp over float32's
// range, with a tolerance of 2 ulp.
func TestExpFloat32(t *testing.T) {
	worst := 0.0
	check := func(x float32) {
		got := float64(expFloat32(x))
		want := math.Exp(float64(x))
		if math.IsInf(want, 1) || want > math.MaxFloat32 {
			if !math.IsInf(got, 1) {
				t.Errorf("exp(%g) = %g, want +Inf", x, got)
			}
			return
		}
		ulp := float64(math.Nextafter32(float32(want), float32(math.Inf(1))) - float32(want))
		if err := math.Abs(got-want) / ulp; err > worst {
			worst = err
			if err > 2 {
				t.Errorf("exp(%g) = %g, want %g (%.2f ulp)", x, got, want, err)
			}
		}
	}
	for x := float32(-100); x < 90; x += 0.001 {
		check(x)
	}
	for _, x := range []float32{0, -0, 88.72283, 88.72284, 88.7229, -87, -87.0001, -103, -104, -200, 1e-8, -1e-8} {
		check(x)
	}
	if got := expFloat32(float32(math.NaN())); got == got {
		t.Errorf("exp(NaN) = %g", got)
	}
	t.Logf("worst error %.2f ulp", worst)
}

// referenceReduce folds x over the axes marked in reduced by the
// definition: each output element, at the multi-index with reduced axes at
// zero, gathers every input element that matches it elsewhere.
func referenceReduce(x []float64, shape []int, reduced []bool, fold func(acc, v float64) float64, init float64) []float64 {
	var outShape []int
	for i, d := range shape {
		if reduced[i] {
			d = 1
		}
		outShape = append(outShape, d)
	}
	out := make([]float64, mustElements(outShape))
	for i := range out {
		out[i] = init
	}
	idx := make([]int, len(shape))
	for flat, v := range x {
		rem := flat
		for i := len(shape) - 1; i >= 0; i-- {
			idx[i] = rem % shape[i]
			rem /= shape[i]
		}
		o := 0
		for i, d := range outShape {
			j := idx[i]
			if reduced[i] {
				j = 0
			}
			o = o*d + j
		}
		out[o] = fold(out[o], v)
	}
	return out
}

// TestReduceMatchesDefinition checks ReduceSum, ReduceMax and ReduceProd
// over every subset of axes of rank-4 integer tensors against the
// definition, which exercises the row walk's merged and strided cases.
func TestReduceMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	shape := []int{2, 3, 1, 4}
	x := make([]int64, mustElements(shape))
	xf := make([]float64, len(x))
	for i := range x {
		x[i] = rng.Int64N(7) - 3
		xf[i] = float64(x[i])
	}
	ops := []struct {
		op   string
		fold func(acc, v float64) float64
		init float64
	}{
		{"ReduceSum", func(a, v float64) float64 { return a + v }, 0},
		{"ReduceMax", math.Max, math.Inf(-1)},
		{"ReduceProd", func(a, v float64) float64 { return a * v }, 1},
		{"ReduceSumSquare", func(a, v float64) float64 { return a + v*v }, 0},
	}
	for mask := 1; mask < 1<<len(shape); mask++ {
		var axes []int64
		reduced := make([]bool, len(shape))
		for i := range shape {
			if mask&(1<<i) != 0 {
				axes = append(axes, int64(i))
				reduced[i] = true
			}
		}
		for _, o := range ops {
			want := referenceReduce(xf, shape, reduced, o.fold, o.init)
			var got []*Tensor
			if o.op == "ReduceSum" {
				got = runOp(t, newOpCall(o.op, 13), mustTensor(t, x, shape...), mustTensor(t, axes, len(axes)))
			} else {
				got = runOp(t, newOpCall(o.op, 13).ints("axes", axes...), mustTensor(t, x, shape...))
			}
			g := got[0].Data.([]int64)
			for i := range want {
				if float64(g[i]) != want[i] {
					t.Errorf("%s over axes %v: element %d = %d, want %g", o.op, axes, i, g[i], want[i])
					break
				}
			}
		}
	}
}

func TestReduceEdgeCases(t *testing.T) {
	empty := mustTensor(t, []float32{}, 2, 0)
	for _, c := range []struct {
		op   string
		want []float32
	}{
		{"ReduceSum", []float32{0, 0}},
		{"ReduceProd", []float32{1, 1}},
		{"ReduceMax", []float32{-inf32, -inf32}},
		{"ReduceMin", []float32{inf32, inf32}},
		{"ReduceMean", []float32{nan32, nan32}},
		{"ReduceL1", []float32{0, 0}},
		{"ReduceL2", []float32{0, 0}},
		{"ReduceSumSquare", []float32{0, 0}},
		{"ReduceLogSum", []float32{-inf32, -inf32}},
		{"ReduceLogSumExp", []float32{-inf32, -inf32}},
	} {
		got := runOp(t, newOpCall(c.op, 18).int("keepdims", 0), empty, mustTensor(t, []int64{1}, 1))
		wantData(t, c.op+" over an empty axis", got[0], f32T, []int{2}, c.want)
	}
	got := runOp(t, newOpCall("ReduceMax", 13).ints("axes", 1), mustTensor(t, []int32{}, 2, 0))
	wantData(t, "ReduceMax int32 of nothing", got[0], i32T, []int{2, 1}, []int32{math.MinInt32, math.MinInt32})
	got = runOp(t, newOpCall("ReduceMin", 13).ints("axes", 1), mustTensor(t, []uint8{}, 1, 0))
	wantData(t, "ReduceMin uint8 of nothing", got[0], u8T, []int{1, 1}, []uint8{255})
	wantFail(t, newOpCall("ReduceMean", 13).ints("axes", 1), "undefined", mustTensor(t, []int32{}, 2, 0))

	x := mustTensor(t, []float32{1, -2, 3, -4}, 2, 2)
	got = runOp(t, newOpCall("ReduceSumSquare", 18).int("noop_with_empty_axes", 1), x)
	wantData(t, "ReduceSumSquare with no axes and noop", got[0], f32T, []int{2, 2}, []float32{1, 4, 9, 16})
	got = runOp(t, newOpCall("ReduceSum", 13).int("noop_with_empty_axes", 1), x, mustTensor(t, []int64{}, 0))
	wantData(t, "ReduceSum with empty axes and noop", got[0], f32T, []int{2, 2}, []float32{1, -2, 3, -4})
	got = runOp(t, newOpCall("ReduceSum", 13).int("keepdims", 0), x)
	wantData(t, "ReduceSum over everything", got[0], f32T, []int{}, []float32{-2})
	got = runOp(t, newOpCall("ReduceL1", 13), mustTensor(t, []float64{-2.5}))
	wantData(t, "ReduceL1 of a scalar", got[0], f64T, []int{}, []float64{2.5})
	got = runOp(t, newOpCall("ReduceMax", 13).ints("axes", 0), mustTensor(t, []float32{1, nan32, 3, 4}, 2, 2))
	wantData(t, "ReduceMax with NaN", got[0], f32T, []int{1, 2}, []float32{3, nan32})
	got = runOp(t, newOpCall("ReduceMean", 13).ints("axes", 0), mustTensor(t, []int8{100, 100, -7, 7, -100, -98}, 2, 3))
	wantData(t, "ReduceMean int8 does not overflow", got[0], i8T, []int{1, 3}, []int8{53, 0, -52})
	got = runOp(t, newOpCall("ReduceSum", 13).int("keepdims", 0), mustTensor(t, []int8{100, 100}, 2))
	wantData(t, "ReduceSum int8 wraps", got[0], i8T, []int{}, []int8{-56})
	got = runOp(t, newOpCall("ReduceLogSumExp", 13).ints("axes", 1).int("keepdims", 0), mustTensor(t, []float32{1000, 1000, inf32, 1}, 2, 2))
	wantData(t, "ReduceLogSumExp of large values", got[0], f32T, []int{2}, []float32{1000 + float32(math.Ln2), inf32})
	got = runOp(t, newOpCall("ReduceMax", 20), mustTensor(t, []bool{false, true, false, false}, 2, 2), mustTensor(t, []int64{1}, 1))
	wantData(t, "ReduceMax bool", got[0], boolT, []int{2, 1}, []bool{true, false})
	wantFail(t, newOpCall("ReduceSum", 11).ints("axes", 0, -2), "repeated", x)
	wantFail(t, newOpCall("ReduceSum", 11).ints("axes", 2), "out of range", x)
	wantFail(t, newOpCall("ReduceSum", 13).ints("axes", 0), "not an attribute", x)
}

func TestArgMax(t *testing.T) {
	x := mustTensor(t, []float32{1, 3, 3, 0, nan32, 2}, 2, 3)
	got := runOp(t, newOpCall("ArgMax", 13).int("axis", 1), x)
	wantData(t, "ArgMax", got[0], i64T, []int{2, 1}, []int64{1, 1})
	got = runOp(t, newOpCall("ArgMax", 13).int("axis", 1).int("select_last_index", 1).int("keepdims", 0), x)
	wantData(t, "ArgMax last", got[0], i64T, []int{2}, []int64{2, 1})
	got = runOp(t, newOpCall("ArgMin", 13).int("axis", 0), mustTensor(t, []int32{5, 1, 2, 1}, 2, 2))
	wantData(t, "ArgMin axis 0", got[0], i64T, []int{1, 2}, []int64{1, 0})
	wantFail(t, newOpCall("ArgMax", 13).int("axis", 1), "empty", mustTensor(t, []float32{}, 2, 0))
	wantFail(t, newOpCall("ArgMax", 13).int("axis", 2), "out of range", x)
	got = runOp(t, newOpCall("ArgMax", 13).int("axis", 1), mustTensor(t, []float32{}, 0, 3))
	wantData(t, "ArgMax of no rows", got[0], i64T, []int{0, 1}, []int64{})
}

func TestSoftmax(t *testing.T) {
	x := mustTensor(t, []float32{0, math.Ln2, 0, math.Ln2}, 1, 2, 2)
	// Opset 13: along the last axis alone.
	got := runOp(t, newOpCall("Softmax", 13), x)
	wantData(t, "Softmax-13", got[0], f32T, []int{1, 2, 2}, []float32{1.0 / 3, 2.0 / 3, 1.0 / 3, 2.0 / 3})
	// Opset 11, axis 1: over the flattened last two axes.
	got = runOp(t, newOpCall("Softmax", 11), x)
	wantData(t, "Softmax-11", got[0], f32T, []int{1, 2, 2}, []float32{1.0 / 6, 2.0 / 6, 1.0 / 6, 2.0 / 6})
	got = runOp(t, newOpCall("Softmax", 13).int("axis", 1), x)
	wantData(t, "Softmax-13 along a middle axis", got[0], f32T, []int{1, 2, 2}, []float32{0.5, 0.5, 0.5, 0.5})
	got = runOp(t, newOpCall("LogSoftmax", 13), mustTensor(t, []float64{1000, 1000}, 2))
	wantData(t, "LogSoftmax of large values", got[0], f64T, []int{2}, []float64{-math.Ln2, -math.Ln2})
	got = runOp(t, newOpCall("Softmax", 13), mustTensor(t, []float32{-inf32, 0, 89, 89}, 4))
	wantData(t, "Softmax with infinities and overflow-prone values", got[0], f32T, []int{4}, []float32{0, 1.4e-39, 0.5, 0.5})
	got = runOp(t, newOpCall("Hardmax", 13), mustTensor(t, []float32{1, 3, 3, 2}, 2, 2))
	wantData(t, "Hardmax", got[0], f32T, []int{2, 2}, []float32{0, 1, 1, 0})
	got = runOp(t, newOpCall("Softmax", 13), mustTensor(t, []float32{}, 0, 3))
	wantData(t, "Softmax of no rows", got[0], f32T, []int{0, 3}, []float32{})
	wantFail(t, newOpCall("Softmax", 13), "out of range", mustTensor(t, []float32{1}))
	wantFail(t, newOpCall("Softmax", 13), "does not take", mustTensor(t, []int32{1}, 1))
}

func TestCumSumTopK(t *testing.T) {
	x := mustTensor(t, []int32{1, 2, 3, 4, 5, 6}, 3, 2)
	got := runOp(t, newOpCall("CumSum", 14), x, mustTensor(t, []int64{0}))
	wantData(t, "CumSum", got[0], i32T, []int{3, 2}, []int32{1, 2, 4, 6, 9, 12})
	got = runOp(t, newOpCall("CumSum", 14).int("exclusive", 1).int("reverse", 1), x, mustTensor(t, []int32{-2}))
	wantData(t, "CumSum exclusive reverse", got[0], i32T, []int{3, 2}, []int32{8, 10, 5, 6, 0, 0})
	got = runOp(t, newOpCall("CumSum", 14).int("reverse", 1), x, mustTensor(t, []int64{1}, 1))
	wantData(t, "CumSum reverse axis 1", got[0], i32T, []int{3, 2}, []int32{3, 2, 7, 4, 11, 6})
	wantFail(t, newOpCall("CumSum", 14), "integer scalar", x, mustTensor(t, []float32{0}))

	v := mustTensor(t, []float32{3, 1, 3, 2, 5, 5}, 2, 3)
	c := newOpCall("TopK", 11)
	c.outputs = 2
	got = runOp(t, c, v, mustTensor(t, []int64{2}, 1))
	wantData(t, "TopK values", got[0], f32T, []int{2, 2}, []float32{3, 3, 5, 5})
	wantData(t, "TopK indices, ties by index", got[1], i64T, []int{2, 2}, []int64{0, 2, 1, 2})
	c = newOpCall("TopK", 11).int("largest", 0).int("axis", 0)
	c.outputs = 2
	got = runOp(t, c, v, mustTensor(t, []int64{1}, 1))
	wantData(t, "TopK smallest along axis 0", got[0], f32T, []int{1, 3}, []float32{2, 1, 3})
	wantData(t, "TopK smallest indices", got[1], i64T, []int{1, 3}, []int64{1, 0, 0})
	got = runOp(t, c, v, mustTensor(t, []int64{0}, 1))
	wantData(t, "TopK with k=0", got[0], f32T, []int{0, 3}, []float32{})
	wantFail(t, c, "k is 3", v, mustTensor(t, []int64{3}, 1))
	old := newOpCall("TopK", 1).int("k", 1)
	old.outputs = 2
	got = runOp(t, old, v)
	wantData(t, "TopK-1 with attribute k", got[0], f32T, []int{2, 1}, []float32{3, 5})
}

// TestIntegerRange checks the float64 bounds that narrowing conversions
// clamp to: each type's limits, or the largest float64 below them where
// float64 rounds the limit up.
func TestIntegerRange(t *testing.T) {
	check := func(name string, lo, hi, wlo, whi float64) {
		if lo != wlo || hi != whi {
			t.Errorf("%s: %v %v want %v %v", name, lo, hi, wlo, whi)
		}
	}
	l, h := integerRange[int64]()
	check("int64", l, h, math.MinInt64, math.Nextafter(math.MaxInt64, 0))
	l, h = integerRange[int32]()
	check("int32", l, h, math.MinInt32, math.MaxInt32)
	l, h = integerRange[int16]()
	check("int16", l, h, math.MinInt16, math.MaxInt16)
	l, h = integerRange[int8]()
	check("int8", l, h, math.MinInt8, math.MaxInt8)
	l, h = integerRange[uint64]()
	check("uint64", l, h, 0, math.Nextafter(math.MaxUint64, 0))
	l, h = integerRange[uint32]()
	check("uint32", l, h, 0, math.MaxUint32)
	l, h = integerRange[uint16]()
	check("uint16", l, h, 0, math.MaxUint16)
	l, h = integerRange[uint8]()
	check("uint8", l, h, 0, math.MaxUint8)
}
