//go:build !purego

package runtime

// Row loops of float32 activations in assembly (vector_amd64.s), for the
// CPUs of sgemmKernelFast.

//go:noescape
func reluFloat32s(o, x *float32, n int)

//go:noescape
func maxFloat32s(o, a, b *float32, n int)

//go:noescape
func addConstFloat32s(o, x *float32, v float32, n int)

// reluFloat32 sets o[i] = max(x[i], 0), keeping NaN, and reports whether
// it did: not where the vector loop does not run.
func reluFloat32(o, x []float32) bool {
	if !sgemmKernelFast() {
		return false
	}
	o = o[:len(x)]
	if n := len(x) &^ 31; n > 0 {
		reluFloat32s(&o[0], &x[0], n)
		o, x = o[n:], x[n:]
	}
	for i, v := range x {
		o[i] = max(v, 0)
	}
	return true
}

// addConstFloat32 sets o[i] = x[i] + v and reports whether it did: not
// where the vector loop does not run.
func addConstFloat32(o, x []float32, v float32) bool {
	if !sgemmKernelFast() {
		return false
	}
	o = o[:len(x)]
	if n := len(x) &^ 7; n > 0 {
		addConstFloat32s(&o[0], &x[0], v, n)
		o, x = o[n:], x[n:]
	}
	for i, xv := range x {
		o[i] = xv + v
	}
	return true
}

// maxFloat32 sets o[i] = max(a[i], b[i]), NaN when either is, and reports
// whether it did: not where the vector loop does not run.
func maxFloat32(o, a, b []float32) bool {
	if !sgemmKernelFast() {
		return false
	}
	o, b = o[:len(a)], b[:len(a)]
	if n := len(a) &^ 7; n > 0 {
		maxFloat32s(&o[0], &a[0], &b[0], n)
		o, a, b = o[n:], a[n:], b[n:]
	}
	for i, v := range a {
		o[i] = max(v, b[i])
	}
	return true
}

//go:noescape
func transpose8x8(dst *float32, dstStride int, src *float32, srcStride int, add float32)

// transpose8 sets dst[i*dstStride+j] = src[j*srcStride+i] + add for i, j
// in [0, 8). Only the lanes layout of Conv calls it, which runs where
// sgemmKernelFast holds.
func transpose8(dst []float32, dstStride int, src []float32, srcStride int, add float32) {
	dst = dst[:7*dstStride+8]
	src = src[:7*srcStride+8]
	transpose8x8(&dst[0], dstStride, &src[0], srcStride, add)
}

//go:noescape
func maxRowPairs(o, x *float32, width, pairs int)

//go:noescape
func maxAdjacent(o, x *float32, n int)

// maxPool2x2 computes a 2×2 MaxPool of stride 2 without padding over
// planes of even height and a width that is a multiple of 8, NaN when any
// element of a window is: the maximum of each pair of rows into tmp (half
// of x), then of each pair of its elements into y, pairs that never
// straddle rows. It reports whether it did: not for other shapes, nor
// where the vector loops do not run.
func maxPool2x2(planes, height, width int, x, y []float32, tmp *[]float32) bool {
	if !sgemmKernelFast() || width%8 != 0 || height%2 != 0 || planes*height*width == 0 {
		return false
	}
	pairs := planes * height / 2
	x = x[:2*pairs*width]
	rows := scratchSlice(tmp, pairs*width)
	y = y[:pairs*width/2]
	maxRowPairs(&rows[0], &x[0], width, pairs)
	n := len(y) &^ 7
	if n > 0 {
		maxAdjacent(&y[0], &rows[0], n)
	}
	for i := n; i < len(y); i++ {
		y[i] = max(rows[2*i], rows[2*i+1])
	}
	return true
}
