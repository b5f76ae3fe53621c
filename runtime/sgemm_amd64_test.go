//go:build !purego

package runtime

import "golang.org/x/sys/cpu"

// sgemmTestKernels returns the micro-kernels that run on this CPU, by
// name, so that the tests check each, not only sgemmKernelHere's.
func sgemmTestKernels() map[string]sgemmKernel {
	kernels := map[string]sgemmKernel{}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		kernels["6x16"] = sgemmKernel{mr: 6, tile: sgemmKernel6x16, rows: sgemmKernel6x16Rows}
	}
	if cpu.X86.HasAVX512F {
		kernels["16x16"] = sgemmKernel{mr: 16, tile: sgemmKernel16x16, rows: sgemmKernel16x16Rows}
	}
	return kernels
}
