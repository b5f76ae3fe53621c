package onnx

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"unsafe"
)

// dataDir returns a data folder the tests read, skipping the test when it is
// missing, or failing it under CI, where the data must be present.
func dataDir(t testing.TB, dir string) string {
	t.Helper()
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("test data missing under CI: %v", err)
		}
		t.Skipf("test data missing: %v", err)
	}
	return dir
}

// suiteDir is the ONNX conformance suite: $ONNX_TESTDATA or the Debian
// package's folder.
func suiteDir(t testing.TB) string {
	dir := os.Getenv("ONNX_TESTDATA")
	if dir == "" {
		dir = "/usr/share/libonnx-testdata/data"
	}
	return dataDir(t, dir)
}

// sharedModelsDir holds the real models beside the repository.
func sharedModelsDir(t testing.TB) string {
	return dataDir(t, filepath.Join("..", "..", "shared", "models"))
}

// suiteModels lists every model.onnx of the suite and the shared models.
func suiteModels(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(suiteDir(t), "*", "*", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 1000 {
		t.Fatalf("found %d suite models, want the full suite", len(paths))
	}
	shared := sharedModelsDir(t)
	for _, rel := range []string{"digits_mlp/model.onnx", "digits_cnn/model.onnx", "perf/resnet18.onnx"} {
		paths = append(paths, filepath.Join(shared, rel))
	}
	sort.Strings(paths)
	return paths
}

func atoi(t testing.TB, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func uintptrOf(p *byte) uintptr { return uintptr(unsafe.Pointer(p)) }

func itoa(i int) string { return strconv.Itoa(i) }

func unsafePointer(s []float32) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(s)) }
