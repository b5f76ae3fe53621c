package testmodels_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/internal/testmodels"
	"onnxopt/onnx"
)

// TestWriteGPTExternal writes a small GPT with external data and checks
// the layout of the data file and that the model reads back as GPT builds
// it in memory.
func TestWriteGPTExternal(t *testing.T) {
	// A width of 320 makes the layer norms and biases 1280 bytes, just
	// over the external threshold, and the weights not multiples of 4096.
	c := testmodels.GPTConfig{Layers: 2, DModel: 320, Vocab: 77, Seed: 5}
	dir := t.TempDir()
	path, err := testmodels.WriteGPTExternal(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("folder holds %d files, want model.onnx and model.onnx.data", len(entries))
	}

	m, refs, err := onnx.ReadModelRefs(path)
	if err != nil {
		t.Fatal(err)
	}
	// Every float initializer but the attention's scale is external.
	if want := 16*c.Layers + 4; len(refs) != want {
		t.Errorf("%d external tensors, want %d", len(refs), want)
	}
	var end, params int64
	for i, r := range refs {
		if r.Location != "model.onnx.data" {
			t.Errorf("tensor %q in %q", r.Tensor, r.Location)
		}
		if r.Offset%4096 != 0 {
			t.Errorf("tensor %q at offset %d, not a multiple of 4096", r.Tensor, r.Offset)
		}
		// Sequential: each tensor starts at the first aligned offset
		// after the one before it.
		if want := (end + 4095) / 4096 * 4096; r.Offset != want {
			t.Errorf("tensor %d %q at offset %d, want %d", i, r.Tensor, r.Offset, want)
		}
		end = r.Offset + r.Length
		params += r.Length / 4
	}
	if params != c.Params() {
		t.Errorf("external tensors hold %d weights, Params says %d", params, c.Params())
	}
	fi, err := os.Stat(filepath.Join(dir, "model.onnx.data"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != end {
		t.Errorf("data file of %d bytes, last tensor ends at %d", fi.Size(), end)
	}
	for _, init := range m.Graph.Initializer {
		if init.RawData != nil || init.FloatData != nil {
			if n, _ := onnx.NumElements(init.Dims); 4*n >= onnx.DefaultExternalThreshold {
				t.Errorf("tensor %q of %d elements kept in the model", init.GetName(), n)
			}
		}
	}

	loaded, err := onnx.ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := testmodels.GPT(c)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(loaded, want) {
		t.Error("model read back with its data differs from GPT's")
	}
}

func TestGPT3GBSize(t *testing.T) {
	c := testmodels.GPT3GB()
	if bytes := 4 * c.Params(); bytes < 2.9e9 || bytes > 3.3e9 || bytes <= math.MaxInt32 {
		t.Errorf("GPT3GB holds %d bytes of weights, want about 3 GB and over 2 GiB", bytes)
	}
}

// BenchmarkWriteGPTExternal reports the bytes allocated to write a model
// of 62 MB: a few megabytes whatever the model's size.
func BenchmarkWriteGPTExternal(b *testing.B) {
	c := testmodels.GPTConfig{Layers: 4, DModel: 768, Vocab: 8192, Seed: 1}
	b.ReportAllocs()
	b.SetBytes(4 * c.Params())
	for b.Loop() {
		if _, err := testmodels.WriteGPTExternal(b.TempDir(), c); err != nil {
			b.Fatal(err)
		}
	}
}
