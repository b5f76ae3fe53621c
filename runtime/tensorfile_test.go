package runtime

import (
	"os"
	"path/filepath"
	"testing"
)

// TestTensorFileRoundTrip writes a tensor as a TensorProto and as a NumPy
// array and reads both back unchanged, with nothing else left in the
// folder.
func TestTensorFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := mustTensor(t, []float32{1, -2.5, 3, 0, 1e-7, 6}, 2, 3)
	for _, name := range []string{"x.pb", "x.npy"} {
		path := filepath.Join(dir, name)
		if err := WriteTensorFile(path, "x", want); err != nil {
			t.Fatal(err)
		}
		got, err := ReadTensorFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok := Compare(got, want, 0, 0); !ok {
			t.Errorf("%s: read back %s, want %s", name, got, want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %v, want x.pb and x.npy only", names)
	}
}
