//go:build !amd64 || purego

package runtime

// reluFloat32 reports that no vector loop runs here; the caller's loop
// does the work.
func reluFloat32(o, x []float32) bool { return false }

// maxFloat32 reports that no vector loop runs here; the caller's loop
// does the work.
func maxFloat32(o, a, b []float32) bool { return false }
