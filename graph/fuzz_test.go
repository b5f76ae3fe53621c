package graph_test

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/internal/suite"
	"onnxopt/onnx"
)

// FuzzLoad feeds arbitrary bytes through everything a model load does:
// parsing, tensor validation, conversion to the IR, Verify, shape
// inference, and conversion back. None of it may panic. Seeded with the
// digits models and a few suite models:
//
//	go test ./graph -run '^$' -fuzz FuzzLoad -fuzztime 10m -fuzzminimizetime 2s
//
// Minimizing a new input as large as the digits models takes minutes at
// the default -fuzzminimizetime, during which no new input runs.
func FuzzLoad(f *testing.F) {
	root := suite.RepoRoot()
	seeds := []string{
		filepath.Join(root, "testdata/models/digits_mlp/model.onnx"),
		filepath.Join(root, "testdata/models/digits_cnn/model.onnx"),
	}
	for _, c := range []string{"node/test_if", "node/test_lstm_defaults", "node/test_resize_upsample_scales_linear", "simple/test_single_relu_model"} {
		seeds = append(seeds, filepath.Join(suite.DefaultDir, c, "model.onnx"))
	}
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		mp, err := onnx.ParseModel(b, dir)
		if err != nil {
			return
		}
		m, err := graph.FromProto(mp)
		if err != nil {
			return
		}
		verr := m.Verify()
		if verr == nil {
			_ = m.Graph.InferShapes()
		}
		out, err := proto.Marshal(m.ToProto())
		if err != nil {
			t.Fatalf("marshal after load: %v", err)
		}
		back, err := onnx.ParseModel(out, dir)
		if err != nil {
			t.Fatalf("re-parse of a loaded model failed: %v", err)
		}
		if verr == nil {
			m2, err := graph.FromProto(back)
			if err != nil {
				t.Fatalf("re-load of a verified model failed: %v", err)
			}
			if err := m2.Verify(); err != nil {
				t.Fatalf("re-loaded model no longer verifies: %v", err)
			}
		}
	})
}
