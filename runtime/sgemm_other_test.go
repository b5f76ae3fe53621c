//go:build !amd64 || purego

package runtime

// sgemmTestKernels returns the micro-kernel in Go, which the tests check
// on every architecture.
func sgemmTestKernels() map[string]sgemmKernel {
	return map[string]sgemmKernel{"6x16 in Go": sgemmKernelHere()}
}
