// Package suite finds the ONNX conformance data (Debian's libonnx-testdata)
// and the real models under ../shared/models for tests.
package suite

import (
	"encoding/json"
	"fmt"
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
		Missing(t, "ONNX conformance data not found at "+dir+": apt-get install libonnx-testdata, or set ONNX_TESTDATA=DIR")
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
		Missing(t, "no cases under "+root)
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
		Missing(t, "shared models not found at "+dir)
	}
	return dir
}

// RepoRoot returns the repository's root folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Missing skips the test, saying what it needs that is missing, or fails
// it under CI=true, where the data must have been installed.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// TorchAnchor returns what PyTorch measured on one of the shared models:
// entry key ("fp32_acc") of model ("mlp", "cnn") in
// dir/torch_anchors.json. A missing file or entry fails the test.
func TorchAnchor(t testing.TB, dir, model, key string) float64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "torch_anchors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var anchors map[string]map[string]json.RawMessage
	if err := json.Unmarshal(b, &anchors); err != nil {
		t.Fatalf("torch_anchors.json: %v", err)
	}
	raw, ok := anchors[model][key]
	if !ok {
		t.Fatalf("torch_anchors.json has no %q entry for %q", key, model)
	}
	var v float64
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("torch_anchors.json: %q of %q: %v", key, model, err)
	}
	return v
}

// ArgmaxAccuracy returns the share of the rows of logits, of the given
// shape [N, C], whose largest entry (the first, on ties) is at the row's
// label.
func ArgmaxAccuracy(logits []float32, shape []int, labels []int64) (float64, error) {
	if len(shape) != 2 || shape[0] != len(labels) || shape[0] == 0 || len(logits) != shape[0]*shape[1] {
		return 0, fmt.Errorf("%d logits of shape %v for %d labels", len(logits), shape, len(labels))
	}
	classes := shape[1]
	correct := 0
	for i, label := range labels {
		row := logits[i*classes : (i+1)*classes]
		best := 0
		for c, v := range row {
			if v > row[best] {
				best = c
			}
		}
		if int64(best) == label {
			correct++
		}
	}
	return float64(correct) / float64(len(labels)), nil
}
