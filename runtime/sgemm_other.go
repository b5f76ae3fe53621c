//go:build !amd64 || purego

package runtime

import "unsafe"

// sgemmKernelFast reports whether an assembly micro-kernel runs here:
// they exist for amd64 only, and the purego tag leaves them out.
func sgemmKernelFast() bool { return false }

// sgemmKernelHere returns the micro-kernel in Go.
func sgemmKernelHere() sgemmKernel {
	return sgemmKernel{mr: sgemmGoMR, tile: sgemmKernel6x16, rows: sgemmKernel6x16Rows}
}

// sgemmGoMR is the tile height of the micro-kernel in Go.
const sgemmGoMR = 6

// sgemmKernel6x16 is the micro-kernel in Go, for the tests of the packing
// and blocking, which run on every architecture; products go through
// gonum wherever sgemmKernelFast is false, as it is faster than this.
func sgemmKernel6x16(k int, a, b, c *float32, ldc int, accumulate bool) {
	bp := unsafe.Slice(b, k*sgemmNR)
	sgemmTile(k, a, func(l int) []float32 { return bp[l*sgemmNR:][:sgemmNR] }, c, ldc, accumulate)
}

// sgemmKernel6x16Rows is sgemmKernel6x16 with B's rows at b[rowOff[l]:].
func sgemmKernel6x16Rows(k int, a, b *float32, rowOff *int, c *float32, ldc int, accumulate bool) {
	offs := unsafe.Slice(rowOff, k)
	sgemmTile(k, a, func(l int) []float32 {
		return unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(b), 4*offs[l])), sgemmNR)
	}, c, ldc, accumulate)
}

// sgemmPackRows sets row l of the panel at dst, dst[l*16:][:16], to
// src[rowOff[l]:][:16] for l < k.
func sgemmPackRows(dst, src *float32, rowOff *int, k int) {
	d := unsafe.Slice(dst, k*sgemmNR)
	for l, off := range unsafe.Slice(rowOff, k) {
		copy(d[l*sgemmNR:][:sgemmNR], unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(src), 4*off)), sgemmNR))
	}
}

func sgemmTile(k int, a *float32, bRow func(l int) []float32, c *float32, ldc int, accumulate bool) {
	ap := unsafe.Slice(a, k*sgemmGoMR)
	cp := unsafe.Slice(c, (sgemmGoMR-1)*ldc+sgemmNR)
	var acc [sgemmGoMR][sgemmNR]float32
	for l := range k {
		br := bRow(l)
		for i := range sgemmGoMR {
			av := ap[l*sgemmGoMR+i]
			for j, bv := range br {
				acc[i][j] += av * bv
			}
		}
	}
	for i := range sgemmGoMR {
		row := cp[i*ldc:][:sgemmNR]
		for j := range row {
			if accumulate {
				row[j] += acc[i][j]
			} else {
				row[j] = acc[i][j]
			}
		}
	}
}
