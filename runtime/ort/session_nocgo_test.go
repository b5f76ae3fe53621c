//go:build !cgo

package ort

import (
	"strings"
	"testing"
)

func TestWithoutCgo(t *testing.T) {
	if _, err := Open("model.onnx", Options{}); err == nil || !strings.Contains(err.Error(), "cgo") {
		t.Errorf("Open: error %v, want one saying cgo is needed", err)
	}
	if _, err := OpenBytes([]byte{1}, Options{}); err == nil || !strings.Contains(err.Error(), "cgo") {
		t.Errorf("OpenBytes: error %v, want one saying cgo is needed", err)
	}
}
