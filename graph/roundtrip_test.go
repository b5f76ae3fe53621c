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

// TestRoundTripFiles loads every model with graph.Load, saves it inline and
// with external data (every tensor of at least one byte in the data file),
// loads each back, and checks the result against proto.Unmarshal of the
// original file. Data that moves to an external file is stored as raw
// bytes, so that comparison first moves the original's typed fields to
// raw_data too: the same values, in the form external data must take.
func TestRoundTripFiles(t *testing.T) {
	files := roundTripModels(t)
	dir := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want := &onnx.ModelProto{}
		if err := proto.Unmarshal(b, want); err != nil {
			t.Fatal(err)
		}
		m, err := graph.Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		inline := filepath.Join(dir, "inline.onnx")
		if err := m.Save(inline, onnx.WriteOptions{}); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		back, err := graph.Load(inline)
		if err != nil {
			t.Errorf("%s: loading inline copy: %v", f, err)
			continue
		}
		if !proto.Equal(back.ToProto(), want) {
			t.Errorf("%s: inline copy differs", f)
		}
		external := filepath.Join(dir, "external.onnx")
		if err := m.Save(external, onnx.WriteOptions{ExternalData: true, Threshold: 1}); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		back, err = graph.Load(external)
		if err != nil {
			t.Errorf("%s: loading external-data copy: %v", f, err)
			continue
		}
		if err := back.Verify(); err != nil {
			t.Errorf("%s: external-data copy: %v", f, err)
		}
		if !proto.Equal(back.ToProto(), rawForm(t, want)) {
			t.Errorf("%s: external-data copy differs", f)
		}
		os.Remove(external + ".data")
	}
}

// rawForm returns m with every non-string tensor's data in raw_data.
func rawForm(t *testing.T, m *onnx.ModelProto) *onnx.ModelProto {
	t.Helper()
	m = proto.CloneOf(m)
	var visit func(tp *onnx.TensorProto)
	visit = func(tp *onnx.TensorProto) {
		if tp == nil || onnx.DataType(tp.GetDataType()) == onnx.TensorProto_STRING {
			return
		}
		raw, err := onnx.RawData(tp)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) == 0 {
			return
		}
		name, dims, dt, doc, meta := tp.Name, tp.Dims, tp.DataType, tp.DocString, tp.MetadataProps
		proto.Reset(tp)
		tp.Name, tp.Dims, tp.DataType, tp.DocString, tp.MetadataProps = name, dims, dt, doc, meta
		tp.RawData = raw
	}
	var graphs func(g *onnx.GraphProto)
	attrs := func(as []*onnx.AttributeProto) {
		for _, a := range as {
			visit(a.T)
			for _, x := range a.Tensors {
				visit(x)
			}
			if a.SparseTensor != nil {
				visit(a.SparseTensor.Values)
				visit(a.SparseTensor.Indices)
			}
			for _, st := range a.SparseTensors {
				visit(st.Values)
				visit(st.Indices)
			}
			if a.G != nil {
				graphs(a.G)
			}
			for _, g := range a.Graphs {
				graphs(g)
			}
		}
	}
	graphs = func(g *onnx.GraphProto) {
		for _, x := range g.Initializer {
			visit(x)
		}
		for _, st := range g.SparseInitializer {
			visit(st.Values)
			visit(st.Indices)
		}
		for _, n := range g.Node {
			attrs(n.Attribute)
		}
	}
	if m.Graph != nil {
		graphs(m.Graph)
	}
	for _, f := range m.Functions {
		for _, n := range f.Node {
			attrs(n.Attribute)
		}
	}
	return m
}
