//go:build !cgo

package verify

import (
	"strings"
	"testing"
)

// TestWithoutCgo checks that a binary without cgo says so when asked for
// ONNX Runtime, and how to fix it.
func TestWithoutCgo(t *testing.T) {
	m := loadModel(t, digitsModel)
	_, err := Models(m, m, []Case{digitsBatch(t)}, Options{Backend: ORT})
	if err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=1") {
		t.Errorf("error %v, want one saying cgo is needed", err)
	}
}
