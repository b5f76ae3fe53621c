package runtime

import (
	"fmt"
	"slices"
)

// Broadcasting follows the numpy rules ONNX adopts (docs/Broadcasting.md):
// shapes are aligned on their last dimension, and in each dimension the
// sizes must be equal or one of them 1.

// broadcastShapes returns the multidirectional broadcast of shapes, or an
// error naming the first dimension where two of them disagree.
func broadcastShapes(shapes ...[]int) ([]int, error) {
	rank := 0
	for _, s := range shapes {
		rank = max(rank, len(s))
	}
	out := make([]int, rank)
	for i := range out {
		out[i] = 1
	}
	for k, s := range shapes {
		off := rank - len(s)
		for i, d := range s {
			o := &out[off+i]
			switch {
			case d == *o || d == 1:
			case *o == 1:
				*o = d
			default:
				return nil, fmt.Errorf("cannot broadcast shapes %v: dimension %d of input %d is %d, want %d or 1",
					shapes, off+i-rank, k, d, *o)
			}
		}
	}
	return out, nil
}

// unidirectional checks that from broadcasts to the shape to without
// changing it, as Gemm's C and PRelu's slope must.
func unidirectional(from, to []int) error {
	if len(from) > len(to) {
		return fmt.Errorf("shape %v has more dimensions than %v and cannot broadcast to it", from, to)
	}
	off := len(to) - len(from)
	for i, d := range from {
		if d != 1 && d != to[off+i] {
			return fmt.Errorf("shape %v does not broadcast to %v: dimension %d is %d, want %d or 1",
				from, to, i, d, to[off+i])
		}
	}
	return nil
}

// sameShape reports whether two shapes are equal.
func sameShape(a, b []int) bool { return slices.Equal(a, b) }

// A broadcastIter walks an output shape one innermost row at a time and
// gives, for each operand broadcast to it, where the row starts and
// whether the operand varies along the row (step 1) or repeats one element
// (step 0).
//
// Dimensions of size 1 are dropped and adjacent dimensions along which
// every operand is laid out alike are merged, so that equal shapes become a
// single row and a [N,C] plus [C] sum becomes N rows of C.
type broadcastIter struct {
	inner  int   // row length
	steps  []int // per operand: 1 if it varies along the row, else 0
	outer  []int // sizes of the remaining dimensions, outermost first
	stride [][]int
	count  []int // position in outer
	offs   []int // per operand: start of the current row
	out    int   // start of the current row in the output
	rows   int   // rows left, including the current one
}

// newBroadcastIter prepares a walk of out for operands of the given shapes,
// which must broadcast to out (broadcastShapes or unidirectional checked
// them).
func newBroadcastIter(out []int, operands ...[]int) *broadcastIter {
	rank := len(out)
	n := len(operands)
	// Per dimension of out, each operand's element stride (0 where it
	// broadcasts).
	strides := make([][]int, n)
	for k, s := range operands {
		st := make([]int, rank)
		off := rank - len(s)
		acc := 1
		for i := len(s) - 1; i >= 0; i-- {
			if s[i] != 1 {
				st[off+i] = acc
			}
			acc *= s[i]
		}
		strides[k] = st
	}
	// Collapse from the innermost dimension outwards.
	var dims []int
	var dstr [][]int // per kept dimension, per operand stride
	for i := rank - 1; i >= 0; i-- {
		d := out[i]
		if d == 1 {
			continue
		}
		if len(dims) > 0 {
			last := len(dims) - 1
			merge := true
			for k := 0; k < n; k++ {
				if strides[k][i] != dstr[last][k]*dims[last] {
					merge = false
					break
				}
			}
			if merge {
				dims[last] *= d
				continue
			}
		}
		st := make([]int, n)
		for k := 0; k < n; k++ {
			st[k] = strides[k][i]
		}
		dims = append(dims, d)
		dstr = append(dstr, st)
	}
	it := &broadcastIter{inner: 1, steps: make([]int, n), offs: make([]int, n)}
	if len(dims) > 0 {
		it.inner = dims[0]
		for k := 0; k < n; k++ {
			if dstr[0][k] != 0 {
				it.steps[k] = 1
			}
		}
		dims, dstr = dims[1:], dstr[1:]
	}
	it.rows = 1
	for i := len(dims) - 1; i >= 0; i-- {
		it.outer = append(it.outer, dims[i])
		it.stride = append(it.stride, dstr[i])
		it.rows *= dims[i]
	}
	it.count = make([]int, len(it.outer))
	for _, d := range out {
		if d == 0 {
			it.rows = 0
		}
	}
	return it
}

// row returns the operand k's slice for the current row: the whole row
// when it varies along it, else its one repeated element.
func rowOf[T any](it *broadcastIter, k int, data []T) []T {
	o := it.offs[k]
	if it.steps[k] == 0 {
		return data[o : o+1]
	}
	return data[o : o+it.inner]
}

// next advances to the following row; it must be called only while rows
// remain.
func (it *broadcastIter) next() {
	it.rows--
	it.out += it.inner
	for i := len(it.outer) - 1; i >= 0; i-- {
		it.count[i]++
		st := it.stride[i]
		if it.count[i] < it.outer[i] {
			for k := range it.offs {
				it.offs[k] += st[k]
			}
			return
		}
		it.count[i] = 0
		for k := range it.offs {
			it.offs[k] -= st[k] * (it.outer[i] - 1)
		}
	}
}

// broadcastUnary writes into out (of shape oshape) the operand a broadcast
// to it, through row, which receives an output row and either the matching
// row of a or a single element of a to repeat.
func broadcastUnary[A, O any](out []O, oshape []int, a []A, ashape []int, row func(out []O, a []A)) {
	it := newBroadcastIter(oshape, ashape)
	for ; it.rows > 0; it.next() {
		row(out[it.out:it.out+it.inner], rowOf(it, 0, a))
	}
}

// broadcastBinary calls row for each output row of the broadcast of a and
// b; each operand row is either the full row or one element to repeat. out
// may be a itself when a already has the output shape.
func broadcastBinary[A, B, O any](out []O, oshape []int, a []A, ashape []int, b []B, bshape []int,
	row func(out []O, a []A, b []B)) {
	if len(a) == len(out) && len(b) == len(out) && sameShape(ashape, bshape) {
		row(out, a, b)
		return
	}
	it := newBroadcastIter(oshape, ashape, bshape)
	for ; it.rows > 0; it.next() {
		row(out[it.out:it.out+it.inner], rowOf(it, 0, a), rowOf(it, 1, b))
	}
}

// broadcastTernary is broadcastBinary for three operands.
func broadcastTernary[A, B, C, O any](out []O, oshape []int, a []A, ashape []int, b []B, bshape []int, c []C, cshape []int,
	row func(out []O, a []A, b []B, c []C)) {
	it := newBroadcastIter(oshape, ashape, bshape, cshape)
	for ; it.rows > 0; it.next() {
		row(out[it.out:it.out+it.inner], rowOf(it, 0, a), rowOf(it, 1, b), rowOf(it, 2, c))
	}
}

// mapBinary applies f elementwise to a row as broadcastBinary passes it,
// where a or b may be a single element to repeat. It is one loop so that
// the compiler inlines it, and f with it, into the caller; hot operators
// still write three plain loops (vector-vector, vector-scalar,
// scalar-vector), which run about twice as fast as this indexed one.
func mapBinary[A, B, O any](out []O, a []A, b []B, f func(A, B) O) {
	sa, sb := rowStep(len(a)), rowStep(len(b))
	for i := range out {
		out[i] = f(a[i*sa], b[i*sb])
	}
}

// rowStep is the index stride of an operand row of length n: 0 for a single
// element to repeat, else 1.
func rowStep(n int) int {
	if n == 1 {
		return 0
	}
	return 1
}

// expandInto copies src broadcast to dst's shape (Expand, and the first
// operand of the variadic ops).
func expandInto[T any](dst []T, dshape []int, src []T, sshape []int) {
	broadcastUnary(dst, dshape, src, sshape, func(out, a []T) {
		if len(a) == len(out) {
			copy(out, a)
			return
		}
		v := a[0]
		for i := range out {
			out[i] = v
		}
	})
}
