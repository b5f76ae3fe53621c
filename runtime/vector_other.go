//go:build !amd64 || purego

package runtime

// reluFloat32 reports that no vector loop runs here; the caller's loop
// does the work.
func reluFloat32(o, x []float32) bool { return false }

// addConstFloat32 reports that no vector loop runs here; the caller's
// loop does the work.
func addConstFloat32(o, x []float32, v float32) bool { return false }

// maxFloat32 reports that no vector loop runs here; the caller's loop
// does the work.
func maxFloat32(o, a, b []float32) bool { return false }

// transpose8 sets dst[i*dstStride+j] = src[j*srcStride+i] + add for i, j
// in [0, 8).
func transpose8(dst []float32, dstStride int, src []float32, srcStride int, add float32) {
	for i := range 8 {
		for j := range 8 {
			dst[i*dstStride+j] = src[j*srcStride+i] + add
		}
	}
}

// maxPool2x2 reports that no vector loop runs here.
func maxPool2x2(planes, height, width int, x, y []float32, tmp *[]float32) bool { return false }
