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
	ap := unsafe.Slice(a, k*sgemmMR)
	bp := unsafe.Slice(b, k*sgemmNR)
	cp := unsafe.Slice(c, (sgemmMR-1)*ldc+sgemmNR)
	var acc [sgemmMR][sgemmNR]float32
	for l := range k {
		for i := range sgemmMR {
			av := ap[l*sgemmMR+i]
			for j := range sgemmNR {
				acc[i][j] += av * bp[l*sgemmNR+j]
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
