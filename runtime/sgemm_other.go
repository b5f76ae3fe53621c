//go:build !amd64 || purego

package runtime

import "unsafe"

// sgemmKernelFast reports whether the assembly micro-kernel runs here: it
// exists for amd64 only, and the purego tag leaves it out.
func sgemmKernelFast() bool { return false }

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
	ap := unsafe.Slice(a, k*sgemmMR)
	cp := unsafe.Slice(c, (sgemmMR-1)*ldc+sgemmNR)
	var acc [sgemmMR][sgemmNR]float32
	for l := range k {
		br := bRow(l)
		for i := range sgemmMR {
			av := ap[l*sgemmMR+i]
			for j, bv := range br {
				acc[i][j] += av * bv
			}
		}
	}
	for i := range sgemmMR {
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

// sgemmKernelAssembly tells the tests that sgemmKernel6x16 is the Go one,
// which runs everywhere.
const sgemmKernelAssembly = false
