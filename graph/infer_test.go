package graph_test

import (
	"path/filepath"
	"testing"

	"onnxopt/graph"
	"onnxopt/internal/suite"
	"onnxopt/onnx"
)

// TestInferShapesAgreesWithSuite drops the declared types of every suite
// model's outputs, infers them again, and checks that whatever inference
// claims agrees with what the model's authors declared. Unknown is allowed;
// wrong is not.
func TestInferShapesAgreesWithSuite(t *testing.T) {
	var known, total int
	for _, dir := range suite.Cases(t, suite.Folders...) {
		m, err := graph.Load(filepath.Join(dir, "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		g := m.Graph
		declared := map[*graph.Value]*onnx.TypeProto{}
		for _, v := range g.Outputs {
			if v.Producer != nil && !g.IsInput(v) {
				declared[v] = v.Type
				v.Type = nil
			}
		}
		for _, v := range g.ValueInfo {
			if _, ok := declared[v]; !ok && v.Producer != nil {
				declared[v] = v.Type
				v.Type = nil
			}
		}
		if err := g.InferShapes(); err != nil {
			t.Errorf("%s: %v", filepath.Base(dir), err)
			continue
		}
		for v, want := range declared {
			total++
			got := v.Type
			if got == nil {
				continue
			}
			gotShape, gotRank := v.Shape()
			v.Type = want
			wantShape, wantRank := v.Shape()
			wantElem := v.ElemType()
			v.Type = got
			if e := v.ElemType(); e != onnx.TensorProto_UNDEFINED && wantElem != onnx.TensorProto_UNDEFINED && e != wantElem {
				t.Errorf("%s: %q inferred %s, declared %s", filepath.Base(dir), v.Name, e, wantElem)
			}
			if !gotRank || !wantRank {
				continue
			}
			if len(gotShape) != len(wantShape) {
				t.Errorf("%s: %q inferred %v, declared %v", filepath.Base(dir), v.Name, gotShape, wantShape)
				continue
			}
			full := true
			for i := range gotShape {
				if gotShape[i].Known && wantShape[i].Known && gotShape[i].Value != wantShape[i].Value {
					t.Errorf("%s: %q inferred %v, declared %v", filepath.Base(dir), v.Name, gotShape, wantShape)
				}
				full = full && (gotShape[i].Known || !wantShape[i].Known)
			}
			if full {
				known++
			}
		}
	}
	t.Logf("inferred %d of %d declared output shapes in full", known, total)
	if known < total/2 {
		t.Errorf("inferred only %d of %d output shapes", known, total)
	}
}

// TestInferShapesRealModels infers every value of the digits and ResNet-18
// models from their inputs alone.
func TestInferShapesRealModels(t *testing.T) {
	shared := suite.SharedModels(t)
	for _, tc := range []struct {
		file string
		out  []int64 // with the batch dim fixed below
	}{
		{"digits_mlp/model.onnx", []int64{7, 10}},
		{"digits_cnn/model.onnx", []int64{7, 10}},
		{"perf/resnet18.onnx", []int64{1, 1000}},
	} {
		m, err := graph.Load(filepath.Join(shared, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		g := m.Graph
		for _, in := range g.Inputs {
			if in.Init == nil {
				s, _ := in.Shape()
				s[0] = graph.Dim{Value: tc.out[0], Known: true}
				in.SetTensorType(in.ElemType(), s)
			}
		}
		for _, v := range g.Outputs {
			v.Type = nil
		}
		if err := g.InferShapes(); err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		for _, n := range g.Nodes {
			for _, v := range n.Outputs {
				if s, ok := v.Shape(); !ok {
					t.Errorf("%s: %q (%s) has no inferred shape", tc.file, v.Name, n.OpType)
				} else if _, static := s.Static(); !static {
					t.Errorf("%s: %q (%s) inferred %v, not static", tc.file, v.Name, n.OpType, s)
				}
			}
		}
		got, _ := g.Outputs[0].Shape()
		if st, _ := got.Static(); len(st) != 2 || st[0] != tc.out[0] || st[1] != tc.out[1] {
			t.Errorf("%s: output shape %v, want %v", tc.file, got, tc.out)
		}
	}
}

// TestFLOPs checks the estimate on the digits CNN against the count worked
// out by hand from its layer shapes: Conv(1→16)·Relu at 8×8,
// Conv(16→32)·Relu at 8×8, MaxPool 2×2 to 4×4, Conv(32→64)·Relu at 4×4,
// GlobalAveragePool, Flatten, Gemm(64→10).
func TestFLOPs(t *testing.T) {
	m, err := graph.Load(filepath.Join(suite.RepoRoot(), "testdata/models/digits_cnn/model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	conv := func(in, out, size int64) int64 {
		outs := out * size * size
		return 2*outs*in*9 + outs + outs // 3×3 MACs, bias, Relu
	}
	want := conv(1, 16, 8) + conv(16, 32, 8) +
		32*4*4*4 + // MaxPool: 4 reads per output
		conv(32, 64, 4) +
		64*4*4 + // GlobalAveragePool
		2*10*64 + 10 // Gemm with bias
	if got := m.Graph.FLOPs(); got != want {
		t.Errorf("FLOPs %d, want %d", got, want)
	}
}
