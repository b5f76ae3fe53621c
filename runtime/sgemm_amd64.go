//go:build !purego

package runtime

import "golang.org/x/sys/cpu"

// sgemmKernelFast reports whether an assembly micro-kernel runs on this
// CPU. Building with the purego tag leaves them out, so that the fallback
// can be tested on any machine.
func sgemmKernelFast() bool { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

// sgemmKernelHere returns the micro-kernel for this CPU, which
// sgemmKernelFast must allow: 16×16 with AVX-512, else 6×16.
func sgemmKernelHere() sgemmKernel {
	if cpu.X86.HasAVX512F {
		return sgemmKernel{mr: 16, tile: sgemmKernel16x16, rows: sgemmKernel16x16Rows}
	}
	return sgemmKernel{mr: 6, tile: sgemmKernel6x16, rows: sgemmKernel6x16Rows}
}

//go:noescape
func sgemmKernel6x16(k int, a, b, c *float32, ldc int, accumulate bool)

//go:noescape
func sgemmKernel6x16Rows(k int, a, b *float32, rowOff *int, c *float32, ldc int, accumulate bool)

//go:noescape
func sgemmKernel16x16(k int, a, b, c *float32, ldc int, accumulate bool)

//go:noescape
func sgemmKernel16x16Rows(k int, a, b *float32, rowOff *int, c *float32, ldc int, accumulate bool)

//go:noescape
func sgemmPackRows(dst, src *float32, rowOff *int, k int)
