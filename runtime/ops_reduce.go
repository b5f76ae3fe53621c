package runtime

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// Reductions and the operators along one axis: the Reduce family, ArgMax
// and ArgMin, Softmax, LogSoftmax and Hardmax, CumSum and TopK.

var reduceOps = []opDef{
	// The Reduce operators take axes as an attribute until opset 18
	// (ReduceSum: 13), then as an optional input with noop_with_empty_axes.
	{opType: "ReduceSum", since: 1, compile: compileReduce(reduceSum, false)},
	{opType: "ReduceSum", since: 13, compile: compileReduce(reduceSum, true)},
	{opType: "ReduceMean", since: 1, compile: compileReduce(reduceMean, false)},
	{opType: "ReduceMean", since: 18, compile: compileReduce(reduceMean, true)},
	{opType: "ReduceMax", since: 1, compile: compileReduce(reduceMax, false)},
	{opType: "ReduceMax", since: 18, compile: compileReduce(reduceMax, true)},
	{opType: "ReduceMin", since: 1, compile: compileReduce(reduceMin, false)},
	{opType: "ReduceMin", since: 18, compile: compileReduce(reduceMin, true)},
	{opType: "ReduceProd", since: 1, compile: compileReduce(reduceProd, false)},
	{opType: "ReduceProd", since: 18, compile: compileReduce(reduceProd, true)},
	{opType: "ReduceL1", since: 1, compile: compileReduce(reduceL1, false)},
	{opType: "ReduceL1", since: 18, compile: compileReduce(reduceL1, true)},
	{opType: "ReduceL2", since: 1, compile: compileReduce(reduceL2, false)},
	{opType: "ReduceL2", since: 18, compile: compileReduce(reduceL2, true)},
	{opType: "ReduceLogSum", since: 1, compile: compileReduce(reduceLogSum, false)},
	{opType: "ReduceLogSum", since: 18, compile: compileReduce(reduceLogSum, true)},
	{opType: "ReduceLogSumExp", since: 1, compile: compileReduce(reduceLogSumExp, false)},
	{opType: "ReduceLogSumExp", since: 18, compile: compileReduce(reduceLogSumExp, true)},
	{opType: "ReduceSumSquare", since: 1, compile: compileReduce(reduceSumSquare, false)},
	{opType: "ReduceSumSquare", since: 18, compile: compileReduce(reduceSumSquare, true)},

	{opType: "ArgMax", since: 1, compile: compileArg(true)},
	{opType: "ArgMin", since: 1, compile: compileArg(false)},

	// Before opset 13 these coerce the input to 2-D at axis (default 1);
	// from 13 they work along the single axis (default -1).
	{opType: "Softmax", since: 1, compile: compileSoftmax(softmax, true)},
	{opType: "Softmax", since: 13, compile: compileSoftmax(softmax, false)},
	{opType: "LogSoftmax", since: 1, compile: compileSoftmax(logSoftmax, true)},
	{opType: "LogSoftmax", since: 13, compile: compileSoftmax(logSoftmax, false)},
	{opType: "Hardmax", since: 1, compile: compileSoftmax(hardmax, true)},
	{opType: "Hardmax", since: 13, compile: compileSoftmax(hardmax, false)},

	{opType: "CumSum", since: 11, compile: compileCumSum},
	{opType: "TopK", since: 1, compile: compileTopK(false)},
	{opType: "TopK", since: 10, compile: compileTopK(true)},
}

type reduceKind uint8

const (
	reduceSum reduceKind = iota
	reduceMean
	reduceMax
	reduceMin
	reduceProd
	reduceL1
	reduceL2
	reduceLogSum
	reduceLogSumExp
	reduceSumSquare
)

// normalizeAxis maps axis in [-rank, rank) to [0, rank).
func normalizeAxis(axis int64, rank int) (int, error) {
	if axis < -int64(rank) || axis >= int64(rank) {
		return 0, fmt.Errorf("axis %d is out of range for rank %d", axis, rank)
	}
	if axis < 0 {
		axis += int64(rank)
	}
	return int(axis), nil
}

// axisSplit returns the sizes before, at and after axis of shape.
func axisSplit(shape []int, axis int) (outer, n, inner int) {
	outer, inner = 1, 1
	for _, d := range shape[:axis] {
		outer *= d
	}
	for _, d := range shape[axis+1:] {
		inner *= d
	}
	return outer, shape[axis], inner
}

func compileReduce(kind reduceKind, axesInput bool) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		keepdims := n.AttrInt("keepdims", 1) != 0
		noop := axesInput && n.AttrInt("noop_with_empty_axes", 0) != 0
		attrAxes := n.AttrInts("axes", nil)
		if axesInput && attrAxes != nil {
			return nil, errors.New("axes is an input from this opset, not an attribute")
		}
		return func(e *env, in []*Tensor) ([]*Tensor, error) {
			if err := inputs(in, 1); err != nil {
				return nil, err
			}
			axes := attrAxes
			if axesInput && len(in) > 1 && in[1] != nil {
				var err error
				if axes, err = dataOf[int64](in[1]); err != nil {
					return nil, fmt.Errorf("axes: %w", err)
				}
			}
			out, err := reduce(e, kind, in[0], axes, keepdims, noop)
			if err != nil {
				return nil, err
			}
			return []*Tensor{out}, nil
		}, nil
	}
}

// reduce computes a Reduce operator into output 0. An empty axes list
// reduces everything, or nothing when noop is set (the elementwise part,
// such as the square of ReduceSumSquare, still applies).
func reduce(e *env, kind reduceKind, x *Tensor, axes []int64, keepdims, noop bool) (*Tensor, error) {
	rank := x.Rank()
	reduced := make([]bool, rank)
	if len(axes) == 0 && !noop {
		for i := range reduced {
			reduced[i] = true
		}
	}
	for _, a := range axes {
		ax, err := normalizeAxis(a, rank)
		if err != nil {
			return nil, err
		}
		if reduced[ax] {
			return nil, fmt.Errorf("axis %d is repeated in axes %v", a, axes)
		}
		reduced[ax] = true
	}
	// kept has the input's rank with the reduced dimensions set to 1.
	kept := make([]int, rank)
	var oshape []int
	count := 1
	for i, d := range x.Shape {
		kept[i] = d
		if reduced[i] {
			kept[i] = 1
			count *= d
			if keepdims {
				oshape = append(oshape, 1)
			}
			continue
		}
		oshape = append(oshape, d)
	}
	out, err := e.output(0, x.DType, oshape...)
	if err != nil {
		return nil, err
	}
	r := reduction{kind: kind, shape: x.Shape, kept: kept, count: count, e: e}
	switch d := x.Data.(type) {
	case []float32:
		err = reduceFloat(r, out.Data.([]float32), d)
		narrow(out.DType, out.Data.([]float32))
	case []float64:
		err = reduceFloat(r, out.Data.([]float64), d)
	case []int64:
		err = reduceInt(r, out.Data.([]int64), d)
	case []int32:
		err = reduceInt(r, out.Data.([]int32), d)
	case []int16:
		err = reduceInt(r, out.Data.([]int16), d)
	case []int8:
		err = reduceInt(r, out.Data.([]int8), d)
	case []uint64:
		err = reduceInt(r, out.Data.([]uint64), d)
	case []uint32:
		err = reduceInt(r, out.Data.([]uint32), d)
	case []uint16:
		err = reduceInt(r, out.Data.([]uint16), d)
	case []uint8:
		err = reduceInt(r, out.Data.([]uint8), d)
	case []bool:
		err = reduceBool(r, out.Data.([]bool), d)
	default:
		err = unsupportedType(x.DType)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// A reduction describes one Reduce computation: the input shape, the
// shape of the accumulators (the input's with reduced dimensions 1), and
// how many input elements fold into each.
type reduction struct {
	kind        reduceKind
	shape, kept []int
	count       int
	e           *env
}

// scratch returns a float64 buffer for accumulators. Reduce operators have
// one output, so the env's buffer 1 is free to reuse across runs.
func (r reduction) scratch(k, n int) ([]float64, error) {
	t, err := r.e.output(1+k, onnx.TensorProto_DOUBLE, n)
	if err != nil {
		return nil, err
	}
	return t.Data.([]float64), nil
}

// walk calls f for each innermost row of the input: the row and the
// accumulator offset, where the row folds into one accumulator (wide
// false) or maps element by element onto len(row) of them (wide true).
func walk[T any](r reduction, x []T, f func(row []T, acc int, wide bool)) {
	it := newBroadcastIter(r.shape, r.shape, r.kept)
	for ; it.rows > 0; it.next() {
		f(x[it.out:it.out+it.inner], it.offs[1], it.steps[1] == 1)
	}
}

func reduceFloat[T floating](r reduction, o, x []T) error {
	switch r.kind {
	case reduceMax, reduceMin:
		extremes(r, o, x, T(math.Inf(-1)), T(math.Inf(1)))
		return nil
	case reduceLogSumExp:
		return logSumExp(r, o, x)
	}
	acc, err := r.scratch(0, len(o))
	if err != nil {
		return err
	}
	accumulate(r, acc, x)
	finish(r, o, acc)
	return nil
}

func reduceInt[T integer](r reduction, o, x []T) error {
	switch r.kind {
	case reduceMax, reduceMin:
		lo, hi := intLimits[T]()
		extremes(r, o, x, lo, hi)
		return nil
	case reduceSum, reduceProd, reduceL1, reduceSumSquare:
		// Integer sums and products wrap; accumulating in T gives the
		// same result as accumulating wider and converting.
		accumulate(r, o, x)
		return nil
	case reduceLogSumExp:
		return logSumExp(r, o, x)
	case reduceMean:
		if r.count == 0 {
			return errors.New("the mean of an empty set of integers is undefined")
		}
	}
	acc, err := r.scratch(0, len(o))
	if err != nil {
		return err
	}
	accumulate(r, acc, x)
	finish(r, o, acc)
	return nil
}

// reduceBool is ReduceMax (any) and ReduceMin (all) on bool tensors,
// ordered false < true (opset 20).
func reduceBool(r reduction, o, x []bool) error {
	if r.kind != reduceMax && r.kind != reduceMin {
		return unsupportedType(onnx.TensorProto_BOOL)
	}
	init := r.kind == reduceMin // empty: min of nothing is true
	fill(o, init)
	walk(r, x, func(row []bool, at int, wide bool) {
		if wide {
			a := o[at : at+len(row)]
			for i, v := range row {
				if v != init {
					a[i] = v
				}
			}
			return
		}
		if slices.Contains(row, !init) {
			o[at] = !init
		}
	})
	return nil
}

// intLimits returns the lowest and highest values of T.
func intLimits[T integer]() (lo, hi T) {
	var l, h int64 // through variables: T cannot hold every constant
	switch any(lo).(type) {
	case int8:
		l, h = math.MinInt8, math.MaxInt8
	case int16:
		l, h = math.MinInt16, math.MaxInt16
	case int32:
		l, h = math.MinInt32, math.MaxInt32
	case int64:
		l, h = math.MinInt64, math.MaxInt64
	default: // unsigned: all ones is the highest
		return 0, ^lo
	}
	return T(l), T(h)
}

// integerRange gives the smallest and largest values of T that float64
// converts to T without overflow: intLimits, as float64.
func integerRange[T integer]() (lo, hi float64) {
	l, h := intLimits[T]()
	lo, hi = float64(l), float64(h)
	if hi >= 1<<63 {
		// The highest int64 and uint64 round up to 2^63 and 2^64, which
		// T cannot hold; the largest float64 below them it can.
		hi = math.Nextafter(hi, 0)
	}
	return lo, hi
}

// extremes is ReduceMax and ReduceMin, propagating NaN. lo and hi are the
// results for an empty set: the type's lowest value for Max and highest
// for Min.
func extremes[T number](r reduction, o, x []T, lo, hi T) {
	isMax := r.kind == reduceMax
	if isMax {
		fill(o, lo)
	} else {
		fill(o, hi)
	}
	walk(r, x, func(row []T, at int, wide bool) {
		if wide {
			a := o[at : at+len(row)]
			if isMax {
				for i, v := range row {
					a[i] = maxNaN(a[i], v)
				}
			} else {
				for i, v := range row {
					a[i] = minNaN(a[i], v)
				}
			}
			return
		}
		m := o[at]
		if isMax {
			for _, v := range row {
				m = maxNaN(m, v)
			}
		} else {
			for _, v := range row {
				m = minNaN(m, v)
			}
		}
		o[at] = m
	})
}

// accumulate folds x into acc for the sums and the product, applying the
// elementwise map of the kind (abs, square) first.
func accumulate[T, A number](r reduction, acc []A, x []T) {
	init := A(0)
	if r.kind == reduceProd {
		init = 1
	}
	fill(acc, init)
	switch r.kind {
	case reduceProd:
		walk(r, x, func(row []T, at int, wide bool) {
			if wide {
				a := acc[at : at+len(row)]
				for i, v := range row {
					a[i] *= A(v)
				}
				return
			}
			p := acc[at]
			for _, v := range row {
				p *= A(v)
			}
			acc[at] = p
		})
	case reduceL1:
		walk(r, x, func(row []T, at int, wide bool) {
			if wide {
				a := acc[at : at+len(row)]
				for i, v := range row {
					if v < 0 {
						v = -v
					}
					a[i] += A(v)
				}
				return
			}
			s := acc[at]
			for _, v := range row {
				if v < 0 {
					v = -v
				}
				s += A(v)
			}
			acc[at] = s
		})
	case reduceL2, reduceSumSquare:
		walk(r, x, func(row []T, at int, wide bool) {
			if wide {
				a := acc[at : at+len(row)]
				for i, v := range row {
					a[i] += A(v) * A(v)
				}
				return
			}
			s := acc[at]
			for _, v := range row {
				s += A(v) * A(v)
			}
			acc[at] = s
		})
	default: // Sum, Mean, LogSum
		walk(r, x, func(row []T, at int, wide bool) {
			if wide {
				a := acc[at : at+len(row)]
				for i, v := range row {
					a[i] += A(v)
				}
				return
			}
			s := acc[at]
			for _, v := range row {
				s += A(v)
			}
			acc[at] = s
		})
	}
}

// finish converts float64 accumulators into the outputs.
func finish[T number](r reduction, o []T, acc []float64) {
	switch r.kind {
	case reduceMean:
		n := float64(r.count)
		for i, s := range acc {
			o[i] = T(s / n)
		}
	case reduceL2:
		for i, s := range acc {
			o[i] = T(math.Sqrt(s))
		}
	case reduceLogSum:
		for i, s := range acc {
			o[i] = T(math.Log(s))
		}
	default:
		for i, s := range acc {
			o[i] = T(s)
		}
	}
}

// logSumExp computes log(sum(exp(x))) as m + log(sum(exp(x-m))) with m the
// maximum, so that large inputs do not overflow.
func logSumExp[T number](r reduction, o, x []T) error {
	m, err := r.scratch(0, len(o))
	if err != nil {
		return err
	}
	s, err := r.scratch(1, len(o))
	if err != nil {
		return err
	}
	fill(m, math.Inf(-1))
	clear(s)
	walk(r, x, func(row []T, at int, wide bool) {
		if wide {
			a := m[at : at+len(row)]
			for i, v := range row {
				a[i] = maxNaN(a[i], float64(v))
			}
			return
		}
		v := m[at]
		for _, w := range row {
			v = maxNaN(v, float64(w))
		}
		m[at] = v
	})
	walk(r, x, func(row []T, at int, wide bool) {
		if wide {
			a, b := m[at:at+len(row)], s[at:at+len(row)]
			for i, v := range row {
				b[i] += math.Exp(float64(v) - a[i])
			}
			return
		}
		mx, sum := m[at], 0.0
		for _, v := range row {
			sum += math.Exp(float64(v) - mx)
		}
		s[at] += sum
	})
	for i, mx := range m {
		if math.IsInf(mx, 0) {
			// All -Inf (or empty): -Inf; any +Inf: +Inf.
			o[i] = T(mx)
			continue
		}
		o[i] = T(mx + math.Log(s[i]))
	}
	return nil
}

// --- ArgMax, ArgMin ---

func compileArg(isMax bool) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		axisAttr := n.AttrInt("axis", 0)
		keepdims := n.AttrInt("keepdims", 1) != 0
		last := n.AttrInt("select_last_index", 0) != 0
		return func(e *env, in []*Tensor) ([]*Tensor, error) {
			if err := inputs(in, 1); err != nil {
				return nil, err
			}
			x := in[0]
			axis, err := normalizeAxis(axisAttr, x.Rank())
			if err != nil {
				return nil, err
			}
			outer, n, inner := axisSplit(x.Shape, axis)
			if n == 0 {
				return nil, fmt.Errorf("axis %d is empty: no index to return", axisAttr)
			}
			oshape := slices.Clone(x.Shape)
			if keepdims {
				oshape[axis] = 1
			} else {
				oshape = slices.Delete(oshape, axis, axis+1)
			}
			out, err := e.output(0, onnx.TensorProto_INT64, oshape...)
			if err != nil {
				return nil, err
			}
			o := out.Data.([]int64)
			switch d := x.Data.(type) {
			case []float32:
				argExtreme(o, d, outer, n, inner, isMax, last)
			case []float64:
				argExtreme(o, d, outer, n, inner, isMax, last)
			case []int64:
				argExtreme(o, d, outer, n, inner, isMax, last)
			case []int32:
				argExtreme(o, d, outer, n, inner, isMax, last)
			case []int16:
				argExtreme(o, d, outer, n, inner, isMax, last)
			case []int8:
				argExtreme(o, d, outer, n, inner, isMax, last)
			case []uint64:
				argExtreme(o, d, outer, n, inner, isMax, last)
			case []uint32:
				argExtreme(o, d, outer, n, inner, isMax, last)
			case []uint16:
				argExtreme(o, d, outer, n, inner, isMax, last)
			case []uint8:
				argExtreme(o, d, outer, n, inner, isMax, last)
			default:
				return nil, unsupportedType(x.DType)
			}
			return []*Tensor{out}, nil
		}, nil
	}
}

// argExtreme writes the index along the middle axis of the largest (or
// smallest) element, the first or last of equal ones. NaN counts as the
// extreme, as in numpy.
func argExtreme[T number](o []int64, x []T, outer, n, inner int, isMax, last bool) {
	better := func(v, best T) bool {
		switch {
		case best != best:
			return last && v != v
		case v != v:
			return true
		case isMax:
			return v > best || last && v == best
		}
		return v < best || last && v == best
	}
	for b := 0; b < outer; b++ {
		base := b * n * inner
		res := o[b*inner : (b+1)*inner]
		for j := range res {
			best, at := x[base+j], 0
			for k := 1; k < n; k++ {
				if v := x[base+k*inner+j]; better(v, best) {
					best, at = v, k
				}
			}
			res[j] = int64(at)
		}
	}
}

// --- Softmax, LogSoftmax, Hardmax ---

type softmaxKind uint8

const (
	softmax softmaxKind = iota
	logSoftmax
	hardmax
)

func compileSoftmax(kind softmaxKind, coerce2D bool) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		def := int64(-1)
		if coerce2D {
			def = 1
		}
		axisAttr := n.AttrInt("axis", def)
		return func(e *env, in []*Tensor) ([]*Tensor, error) {
			if err := inputs(in, 1); err != nil {
				return nil, err
			}
			x := in[0]
			rank := x.Rank()
			var outer, n, inner int
			if coerce2D {
				// The input is flattened to [d0*...*d(axis-1),
				// d(axis)*...]; axis may equal the rank.
				if axisAttr < -int64(rank) || axisAttr > int64(rank) {
					return nil, fmt.Errorf("axis %d is out of range for rank %d", axisAttr, rank)
				}
				axis := int(axisAttr)
				if axis < 0 {
					axis += rank
				}
				outer, n, inner = 1, 1, 1
				for i, d := range x.Shape {
					if i < axis {
						outer *= d
					} else {
						n *= d
					}
				}
			} else {
				axis, err := normalizeAxis(axisAttr, rank)
				if err != nil {
					return nil, err
				}
				outer, n, inner = axisSplit(x.Shape, axis)
			}
			out, err := e.output(0, x.DType, x.Shape...)
			if err != nil {
				return nil, err
			}
			switch d := x.Data.(type) {
			case []float32:
				o := out.Data.([]float32)
				softmaxAlong(kind, o, d, outer, n, inner)
				narrow(out.DType, o)
			case []float64:
				softmaxAlong(kind, out.Data.([]float64), d, outer, n, inner)
			default:
				return nil, unsupportedType(x.DType)
			}
			return []*Tensor{out}, nil
		}, nil
	}
}

// softmaxAlong applies kind along the middle axis of x seen as
// [outer, n, inner].
func softmaxAlong[T floating](kind softmaxKind, o, x []T, outer, n, inner int) {
	if inner == 1 {
		for b := 0; b < outer; b++ {
			softmaxRow(kind, o[b*n:(b+1)*n], x[b*n:(b+1)*n])
		}
		return
	}
	// Strided: gather each column into a contiguous row and back.
	col := make([]T, n)
	res := make([]T, n)
	for b := 0; b < outer; b++ {
		base := b * n * inner
		for j := 0; j < inner; j++ {
			for k := range col {
				col[k] = x[base+k*inner+j]
			}
			softmaxRow(kind, res, col)
			for k, v := range res {
				o[base+k*inner+j] = v
			}
		}
	}
}

func softmaxRow[T floating](kind softmaxKind, o, x []T) {
	if len(x) == 0 {
		return
	}
	o = o[:len(x)]
	m, at := x[0], 0
	for k, v := range x {
		if v > m || v != v && m == m {
			m, at = v, k
		}
	}
	switch kind {
	case hardmax:
		clear(o)
		o[at] = 1
	case softmax:
		inv := 1 / expShifted(o, x, m)
		for k, v := range o {
			o[k] = T(float64(v) * inv)
		}
	case logSoftmax:
		shift := float64(m) + math.Log(expShifted(o, x, m))
		for k, v := range x {
			o[k] = T(float64(v) - shift)
		}
	}
}

// expShifted sets o to exp(x-m) and returns the sum, in float64.
func expShifted[T floating](o, x []T, m T) float64 {
	o = o[:len(x)]
	s := 0.0
	if xf, ok := any(x).([]float32); ok {
		of, mf := any(o).([]float32), float32(m)
		for k, v := range xf {
			z := expFloat32(v - mf)
			of[k] = z
			s += float64(z)
		}
		return s
	}
	for k, v := range x {
		z := math.Exp(float64(v - m))
		o[k] = T(z)
		s += z
	}
	return s
}

// --- CumSum ---

func compileCumSum(n *graph.Node) (kernel, error) {
	exclusive := n.AttrInt("exclusive", 0) != 0
	reverse := n.AttrInt("reverse", 0) != 0
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if err := inputs(in, 2); err != nil {
			return nil, err
		}
		x := in[0]
		ax := numbersAs[int64](in[1])
		if len(ax) != 1 || !isIntegerType(in[1].DType) {
			return nil, fmt.Errorf("axis must be an integer scalar, got %s", in[1])
		}
		axis, err := normalizeAxis(ax[0], x.Rank())
		if err != nil {
			return nil, err
		}
		outer, n, inner := axisSplit(x.Shape, axis)
		out, err := e.output(0, x.DType, x.Shape...)
		if err != nil {
			return nil, err
		}
		switch d := x.Data.(type) {
		case []float32:
			o := out.Data.([]float32)
			cumSum(o, d, outer, n, inner, exclusive, reverse)
			narrow(out.DType, o)
		case []float64:
			cumSum(out.Data.([]float64), d, outer, n, inner, exclusive, reverse)
		case []int64:
			cumSum(out.Data.([]int64), d, outer, n, inner, exclusive, reverse)
		case []int32:
			cumSum(out.Data.([]int32), d, outer, n, inner, exclusive, reverse)
		case []uint64:
			cumSum(out.Data.([]uint64), d, outer, n, inner, exclusive, reverse)
		case []uint32:
			cumSum(out.Data.([]uint32), d, outer, n, inner, exclusive, reverse)
		default:
			return nil, unsupportedType(x.DType)
		}
		return []*Tensor{out}, nil
	}, nil
}

// cumSum runs the sums along the middle axis of [outer, n, inner], a row
// of inner elements at a time.
func cumSum[T number](o, x []T, outer, n, inner int, exclusive, reverse bool) {
	for b := 0; b < outer; b++ {
		base := b * n * inner
		row := func(k int) int { return base + k*inner }
		for step := 0; step < n; step++ {
			k, prev := step, step-1
			if reverse {
				k, prev = n-1-step, n-step
			}
			dst := o[row(k) : row(k)+inner]
			switch {
			case step == 0 && exclusive:
				clear(dst)
			case step == 0:
				copy(dst, x[row(k):row(k)+inner])
			case exclusive:
				// o[k] = o[prev] + x[prev]
				p, v := o[row(prev):row(prev)+inner], x[row(prev):row(prev)+inner]
				for j := range dst {
					dst[j] = p[j] + v[j]
				}
			default:
				p, v := o[row(prev):row(prev)+inner], x[row(k):row(k)+inner]
				for j := range dst {
					dst[j] = p[j] + v[j]
				}
			}
		}
	}
}

// --- TopK ---

func compileTopK(kInput bool) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		axisAttr := n.AttrInt("axis", -1)
		largest := n.AttrInt("largest", 1) != 0
		kAttr := n.AttrInt("k", -1)
		if !kInput && n.Attr("k") == nil {
			return nil, errors.New("attribute k is required")
		}
		return func(e *env, in []*Tensor) ([]*Tensor, error) {
			if err := inputs(in, 1); err != nil {
				return nil, err
			}
			x := in[0]
			k := kAttr
			if kInput {
				if err := inputs(in, 2); err != nil {
					return nil, err
				}
				kv, err := dataOf[int64](in[1])
				if err != nil || len(kv) != 1 {
					return nil, fmt.Errorf("K must hold one int64, got %s", in[1])
				}
				k = kv[0]
			}
			axis, err := normalizeAxis(axisAttr, x.Rank())
			if err != nil {
				return nil, err
			}
			outer, n, inner := axisSplit(x.Shape, axis)
			if k < 0 || k > int64(n) {
				return nil, fmt.Errorf("k is %d, axis %d has %d elements", k, axisAttr, n)
			}
			oshape := slices.Clone(x.Shape)
			oshape[axis] = int(k)
			values, err := e.output(0, x.DType, oshape...)
			if err != nil {
				return nil, err
			}
			indices, err := e.output(1, onnx.TensorProto_INT64, oshape...)
			if err != nil {
				return nil, err
			}
			idx := indices.Data.([]int64)
			switch d := x.Data.(type) {
			case []float32:
				topK(values.Data.([]float32), idx, d, outer, n, inner, int(k), largest)
			case []float64:
				topK(values.Data.([]float64), idx, d, outer, n, inner, int(k), largest)
			case []int64:
				topK(values.Data.([]int64), idx, d, outer, n, inner, int(k), largest)
			case []int32:
				topK(values.Data.([]int32), idx, d, outer, n, inner, int(k), largest)
			case []int16:
				topK(values.Data.([]int16), idx, d, outer, n, inner, int(k), largest)
			case []int8:
				topK(values.Data.([]int8), idx, d, outer, n, inner, int(k), largest)
			case []uint64:
				topK(values.Data.([]uint64), idx, d, outer, n, inner, int(k), largest)
			case []uint32:
				topK(values.Data.([]uint32), idx, d, outer, n, inner, int(k), largest)
			case []uint16:
				topK(values.Data.([]uint16), idx, d, outer, n, inner, int(k), largest)
			case []uint8:
				topK(values.Data.([]uint8), idx, d, outer, n, inner, int(k), largest)
			default:
				return nil, unsupportedType(x.DType)
			}
			return []*Tensor{values, indices}, nil
		}, nil
	}
}

// topK writes the k largest (or smallest) elements along the middle axis
// of [outer, n, inner], in order, equal values by lower index first; the
// sorted attribute is honoured by always sorting. NaN orders below every
// number, as cmp.Compare has it.
func topK[T number](vals []T, idx []int64, x []T, outer, n, inner, k int, largest bool) {
	order := make([]int, n)
	for b := 0; b < outer; b++ {
		base := b * n * inner
		for j := 0; j < inner; j++ {
			for i := range order {
				order[i] = i
			}
			at := func(i int) T { return x[base+i*inner+j] }
			slices.SortFunc(order, func(p, q int) int {
				c := cmp.Compare(at(p), at(q))
				if largest {
					c = -c
				}
				if c == 0 {
					c = cmp.Compare(p, q)
				}
				return c
			})
			obase := b * k * inner
			for r := 0; r < k; r++ {
				vals[obase+r*inner+j] = at(order[r])
				idx[obase+r*inner+j] = int64(order[r])
			}
		}
	}
}

// expFloat32 is e**x to within 2 ulp of float32 for x down to -87 (below,
// where results turn subnormal, it defers to math.Exp), at a third of the
// cost of math.Exp: Softmax and Sigmoid on float32 spend most of their
// time here.
func expFloat32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > 88.72284:
		return float32(math.Inf(1))
	case x < -87:
		return float32(math.Exp(float64(x)))
	}
	// x = n*ln2 + r with |r| <= ln2/2; ln2 split in two so that n*ln2Hi
	// is exact.
	const (
		log2e = 1.44269504088896341
		ln2Hi = 0.693359375
		ln2Lo = -2.12194440e-4
	)
	n := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - n*ln2Hi - n*ln2Lo
	// Taylor series to r**7/7!: the remainder is below 1e-8 relative.
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	if n > 127 { // 2**128 is not a float32, but e**x still may be
		p *= 2
		n--
	}
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}
