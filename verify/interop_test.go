//go:build cgo

package verify

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"onnxopt/graph"
	"onnxopt/internal/suite"
	"onnxopt/onnx"
	"onnxopt/passes"
	"onnxopt/runtime"
)

// interopKinds are the kinds of model onnxopt's passes write: each must
// load in ONNX Runtime and agree with onnxopt's runtime on the same
// (transformed) model. Lossless rewrites must agree to float rounding;
// quantized models may differ where ONNX Runtime fuses QDQ pairs into
// integer kernels, within a quantization step of the outputs.
var interopKinds = []struct {
	name   string
	passes string   // "" for the default cleanup pipeline
	flags  []string // pass options, as on the command line
	tol    Tolerance
}{
	{name: "cleaned", tol: floatTol},
	{name: "pruned", passes: "unused-initializers,prune-magnitude", flags: []string{"--sparsity", "0.5"}, tol: floatTol},
	{name: "pruned-nm", passes: "unused-initializers,prune-nm", tol: floatTol},
	{name: "pruned-structured", passes: "unused-initializers,prune-structured", flags: []string{"--sparsity", "0.5"}, tol: floatTol},
	{name: "quantized-weight", passes: "unused-initializers,quantize-weight", tol: quantTol},
	{name: "quantized-static", passes: "unused-initializers,quantize-static", tol: quantTol},
	{name: "pruned+quantized", passes: "unused-initializers,prune-magnitude,quantize-static", flags: []string{"--sparsity", "0.5"}, tol: quantTol},
}

var (
	// floatTol bounds float rewrites: the two runtimes differ only in
	// the order they sum.
	floatTol = Tolerance{ATol: 1e-4, RTol: 1e-3}
	// quantTol bounds quantized models: ONNX Runtime fuses QDQ pairs
	// into integer kernels, which round once where onnxopt's runtime
	// dequantizes and computes in float, so single elements may differ
	// by a quantization step; the outputs as a whole must agree.
	quantTol = Tolerance{ATol: math.Inf(1), RTol: math.Inf(1), MinCosine: 0.999, MinTop1: 0.99}
)

// notApplicable are the errors of a pass that finds nothing to do on a
// model, which the interop test counts rather than fails.
var notApplicable = []string{
	"the model has no prunable weights",
	"QuantizeLinear and DequantizeLinear need opset 10",
}

// TestInterop runs every kind over the digits models and the suite's
// PyTorch folders. A suite model that ONNX Runtime cannot run before any
// pass (it has no kernels for some opset-6 ops) is counted and left out.
func TestInterop(t *testing.T) {
	needORT(t)
	type model struct {
		name, path string
		cases      []Case
	}
	var models []model
	for _, name := range []string{"digits_mlp", "digits_cnn"} {
		dir := filepath.Join(suite.RepoRoot(), "testdata", "models", name)
		models = append(models, model{name: name, path: filepath.Join(dir, "model.onnx")})
	}
	for _, dir := range suite.Cases(t, "pytorch-converted", "pytorch-operator") {
		models = append(models, model{name: filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir), path: filepath.Join(dir, "model.onnx")})
	}
	for i := range models {
		m := &models[i]
		g, err := Load(m.path)
		if err != nil {
			t.Fatal(err)
		}
		if m.cases, err = ReadTestData(filepath.Dir(m.path), g.Graph.Graph); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	// ResNet-18 (random weights, opset 13) is the one model with batch
	// normalization, residual adds and opset-13 quantization.
	resnet := filepath.Join(suite.SharedModels(t), "perf", "resnet18.onnx")
	g, err := graph.Load(resnet)
	if err != nil {
		t.Fatal(err)
	}
	in, err := runtime.RandomInputs(g.Graph, 1, 0, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	models = append(models, model{name: "resnet18", path: resnet, cases: []Case{{Name: "random", Inputs: in}}})
	for _, kind := range interopKinds {
		t.Run(kind.name, func(t *testing.T) {
			var ran, unsupported, skipped int
			for _, m := range models {
				orig, err := Load(m.path)
				if err != nil {
					t.Fatal(err)
				}
				if r, err := Models(orig, orig, m.cases, Options{Tolerance: floatTol, Backend: ORT}); err != nil || !r.Pass {
					unsupported++ // ONNX Runtime cannot run the original
					continue
				}
				cand, err := transform(t, m.path, kind.passes, kind.flags, m.cases)
				if err != nil {
					if slices.ContainsFunc(notApplicable, func(s string) bool { return strings.Contains(err.Error(), s) }) {
						skipped++
						continue
					}
					t.Errorf("%s: %v", m.name, err)
					continue
				}
				r, err := Models(orig, cand, m.cases, Options{Tolerance: kind.tol, Backend: Both})
				if err != nil {
					t.Errorf("%s: %v", m.name, err)
					continue
				}
				ran++
				cmp := r.Comparisons[len(r.Comparisons)-1]
				if cmp.Reference != "candidate (ours)" || cmp.Candidate != "candidate (ort)" {
					t.Fatalf("last comparison is %s vs %s", cmp.Reference, cmp.Candidate)
				}
				if !cmp.Pass {
					t.Errorf("%s: onnxopt and ONNX Runtime disagree on the %s model: %s", m.name, kind.name, describe(cmp))
				}
			}
			t.Logf("%s: %d models agree in both runtimes; %d have nothing for the passes to do; %d left out, which ONNX Runtime cannot run before any pass",
				kind.name, ran, skipped, unsupported)
			if ran < 2 {
				t.Errorf("only %d models ran", ran)
			}
		})
	}
}

// transform applies passes to the model at path, calibrating on the
// cases' inputs, and saves the result, so that ONNX Runtime reads what
// onnxopt writes.
func transform(t *testing.T, path, list string, flags []string, cases []Case) (*Model, error) {
	t.Helper()
	m, err := graph.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	infos := passes.Default()
	if list != "" {
		if infos, err = passes.Parse(list); err != nil {
			t.Fatal(err)
		}
	}
	fs := pflag.NewFlagSet("interop", pflag.ContinueOnError)
	steps, shared := passes.Bind(infos, fs)
	if err := fs.Parse(flags); err != nil {
		t.Fatal(err)
	}
	if err := shared.Apply(); err != nil {
		t.Fatal(err)
	}
	env := &passes.Env{}
	for _, c := range cases {
		env.Calibration = append(env.Calibration, c.Inputs)
	}
	if _, err := passes.Run(m, steps, env, passes.Options{}); err != nil {
		return nil, err
	}
	out := filepath.Join(t.TempDir(), "model.onnx")
	if err := m.Save(out, onnx.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	cand, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	return cand, nil
}

func describe(cmp Comparison) string {
	var parts []string
	for _, o := range cmp.Outputs {
		if !o.Pass {
			parts = append(parts, fmt.Sprintf("%s: max abs %.3g, cosine %.6f", o.Name, o.Metrics.MaxAbs, o.Metrics.Cosine))
		}
	}
	return strings.Join(parts, ", ")
}
