// Package suite finds the ONNX conformance data (Debian's libonnx-testdata)
// and the real models under ../shared/models for tests.
package suite

import (
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
)

// DefaultDir is where Debian's libonnx-testdata installs the suite.
const DefaultDir = "/usr/share/libonnx-testdata/data"

// Folders are the suite's folders that onnxopt tests against.
var Folders = []string{"node", "pytorch-converted", "pytorch-operator", "simple"}

// Dir returns the suite's root: $ONNX_TESTDATA, or DefaultDir. When it is
// missing the test is skipped, or fails under CI=true, where the data must
// have been installed.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("ONNX_TESTDATA")
	if dir == "" {
		dir = DefaultDir
	}
	if _, err := os.Stat(filepath.Join(dir, "node")); err != nil {
		missing(t, "ONNX conformance data not found at "+dir+": apt-get install libonnx-testdata, or set ONNX_TESTDATA=DIR")
	}
	return dir
}

// Cases returns the case folders (each holding model.onnx) under the
// named suite folders, sorted.
func Cases(t testing.TB, folders ...string) []string {
	t.Helper()
	root := Dir(t)
	var cases []string
	for _, f := range folders {
		matches, err := filepath.Glob(filepath.Join(root, f, "*", "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			cases = append(cases, filepath.Dir(m))
		}
	}
	sort.Strings(cases)
	if len(cases) == 0 {
		missing(t, "no cases under "+root)
	}
	return cases
}

// SharedModels returns the folder ../shared/models of the repository,
// found from this source file's location, skipping (or failing under
// CI=true) when it is absent.
func SharedModels(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "models")
	if _, err := os.Stat(filepath.Join(dir, "torch_anchors.json")); err != nil {
		missing(t, "shared models not found at "+dir)
	}
	return dir
}

// RepoRoot returns the repository's root folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
