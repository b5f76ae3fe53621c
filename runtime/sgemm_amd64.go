//go:build !purego

package runtime

import "golang.org/x/sys/cpu"

// sgemmKernelFast reports whether the assembly micro-kernel runs on this
// CPU. Building with the purego tag leaves it out, so that the fallback
// can be tested on any machine.
func sgemmKernelFast() bool { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

//go:noescape
func sgemmKernel6x16(k int, a, b, c *float32, ldc int, accumulate bool)

//go:noescape
func sgemmKernel6x16Rows(k int, a, b *float32, rowOff *int, c *float32, ldc int, accumulate bool)

//go:noescape
func sgemmPackRows(dst, src *float32, rowOff *int, k int)

// sgemmKernelAssembly tells the tests that sgemmKernel6x16 is the
// assembly one, which only runs where sgemmKernelFast holds.
const sgemmKernelAssembly = true
