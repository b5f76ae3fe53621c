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

// roundTripModels lists every model of the conformance suite and the
// shared digits and perf models.
func roundTripModels(t *testing.T) []string {
	var files []string
	for _, c := range suite.Cases(t, suite.Folders...) {
		files = append(files, filepath.Join(c, "model.onnx"))
	}
	shared, err := filepath.Glob(filepath.Join(suite.SharedModels(t), "*", "*.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return append(files, shared...)
}

// TestRoundTripProtoIR converts every model to the IR and back, checks that
// the IR verifies, and that the bytes it writes parse to a message equal to
// the original.
func TestRoundTripProtoIR(t *testing.T) {
	files := roundTripModels(t)
	if len(files) < 1072 {
		t.Fatalf("found %d models, want at least the suite's 1072", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want := &onnx.ModelProto{}
		if err := proto.Unmarshal(b, want); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		in := proto.CloneOf(want)
		m, err := graph.FromProto(in)
		if err != nil {
			t.Errorf("%s: FromProto: %v", f, err)
			continue
		}
		if err := m.Verify(); err != nil {
			t.Errorf("%s: Verify: %v", f, err)
		}
		out, err := proto.Marshal(m.ToProto())
		if err != nil {
			t.Errorf("%s: Marshal: %v", f, err)
			continue
		}
		got := &onnx.ModelProto{}
		if err := proto.Unmarshal(out, got); err != nil {
			t.Errorf("%s: re-parse: %v", f, err)
			continue
		}
		if !proto.Equal(got, want) {
			t.Errorf("%s: round trip changed the model", f)
		}
	}
	t.Logf("%d models round-tripped", len(files))
}
