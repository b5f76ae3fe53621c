package main

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"onnxopt/graph"
	"onnxopt/runtime"
)

const (
	digitsCNNCalibration = "../../testdata/models/digits_cnn/calibration.pb"
	digitsMLP            = "../../testdata/models/digits_mlp/model.onnx"
)

// quantizeJSON is the part of the quantize report the tests read.
type quantizeJSON struct {
	Mode        string `json:"mode"`
	Before      struct{ Bytes int64 }
	After       struct{ Bytes int64 }
	Calibration *calibrationJSON `json:"calibration"`
	Quantized   []layerJSON      `json:"quantized"`
	Float       []layerJSON      `json:"float"`
	Notes       []string         `json:"notes"`
	Verify      *struct {
		Comparisons []struct {
			Outputs []struct {
				Name    string `json:"name"`
				Metrics struct {
					MaxAbs *float64 `json:"max_abs_error"`
					Top1   *float64 `json:"top1"`
				} `json:"metrics"`
			} `json:"outputs"`
		} `json:"comparisons"`
	} `json:"verify"`
}

// digitsAccuracy runs a digits CNN on its 397 held-out samples.
func digitsAccuracy(t *testing.T, path string) float64 {
	t.Helper()
	m, err := graph.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	in, err := runtime.ReadTensorFile(filepath.Join(digitsData, "input_0.pb"))
	if err != nil {
		t.Fatal(err)
	}
	labels, err := runtime.ReadTensorFile(filepath.Join(filepath.Dir(digitsData), "labels.pb"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := runtime.Compile(m.Graph)
	if err != nil {
		t.Fatal(err)
	}
	out, err := plan.Run(map[string]*runtime.Tensor{"input": in})
	if err != nil {
		t.Fatal(err)
	}
	logits := out[m.Graph.Outputs[0].Name].Data.([]float32)
	correct := 0
	for i, label := range labels.Data.([]int64) {
		row := logits[i*10 : (i+1)*10]
		best := 0
		for j := range row {
			if row[j] > row[best] {
				best = j
			}
		}
		if int64(best) == label {
			correct++
		}
	}
	return float64(correct) / float64(len(labels.Data.([]int64)))
}

// TestQuantizeStaticCommand quantizes the digits CNN per channel from its
// calibration samples and checks the report and the written model: every
// layer quantized, 3.8 times fewer parameter bytes, and at most 0.3 points
// of accuracy lost on the held-out samples.
func TestQuantizeStaticCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "int8.onnx")
	code, stdout, stderr := onnxopt("quantize", digitsCNN, "-o", out, "--calibration", digitsCNNCalibration, "--per-channel", "--verify", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r quantizeJSON
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if r.Mode != "static" || r.Calibration == nil || r.Calibration.Samples != 256 || r.Calibration.Batches != 8 {
		t.Errorf("mode %q, calibration %+v", r.Mode, r.Calibration)
	}
	if len(r.Quantized) != 4 || len(r.Float) != 0 {
		t.Errorf("quantized %+v, float %+v", r.Quantized, r.Float)
	}
	for _, l := range r.Quantized {
		if l.Weight != "per-channel" || len(l.Activations) != 1 {
			t.Errorf("layer %+v", l)
		}
	}
	if ratio := float64(r.Before.Bytes) / float64(r.After.Bytes); ratio < 3.8 {
		t.Errorf("parameters %d → %d bytes, %.2fx", r.Before.Bytes, r.After.Bytes, ratio)
	}
	if r.Verify == nil || len(r.Verify.Comparisons) != 1 || len(r.Verify.Comparisons[0].Outputs) != 1 {
		t.Fatalf("verify %+v", r.Verify)
	}
	m := r.Verify.Comparisons[0].Outputs[0].Metrics
	if m.MaxAbs == nil || *m.MaxAbs == 0 || *m.MaxAbs > 1 || m.Top1 == nil || *m.Top1 < 0.99 {
		t.Errorf("verify metrics: max abs %v, top-1 %v", m.MaxAbs, m.Top1)
	}
	fp32, int8 := digitsAccuracy(t, digitsCNN), digitsAccuracy(t, out)
	if int8 < fp32-0.003 {
		t.Errorf("accuracy %.4f, fp32 %.4f", int8, fp32)
	}

	// Quantizing again leaves the pairs alone and says so.
	again := filepath.Join(t.TempDir(), "again.onnx")
	code, stdout, stderr = onnxopt("quantize", out, "-o", again, "--calibration", digitsCNNCalibration)
	if code != 0 || !strings.Contains(stderr, "the model is quantized already (8 DequantizeLinear, 4 QuantizeLinear)") || !strings.Contains(stdout, "quantized (4)") {
		t.Errorf("again: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestQuantizeWeightCommand quantizes the MLP's weights, keeping the first
// and last layers float, and checks the text report.
func TestQuantizeWeightCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "w8.onnx")
	code, stdout, stderr := onnxopt("quantize", digitsMLP, "-o", out, "--keep-first-last", "--verify")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"mode        weight", "quantized (1)\n  Gemm           /fc2/Gemm", "kept in float (2)",
		`"/fc1/Gemm" (Gemm) kept in float: --keep-first-last`, "random inputs in [0, 1), seed 1", "top-1 agreement", "wrote " + out} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestQuantizeUsage(t *testing.T) {
	dir := t.TempDir()
	writeTensor := func(name string, data []float32, shape ...int) string {
		tensor, err := runtime.FromSlice(data, shape...)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := runtime.WriteTensorFile(path, "input", tensor); err != nil {
			t.Fatal(err)
		}
		return path
	}
	nan := make([]float32, 3*64)
	nan[70] = float32(math.NaN())
	out := filepath.Join(dir, "out.onnx")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{digitsCNN}, "-o OUT is required"},
		{[]string{digitsCNN, "-o", out, "--mode", "dynamic"}, "--mode dynamic: want weight, static or int4"},
		{[]string{digitsCNN, "-o", out, "--block-size", "64"}, "--block-size applies to --mode int4"},
		{[]string{digitsCNN, "-o", out, "--mode", "int4", "--per-channel"}, "--per-channel applies to --mode weight and static"},
		{[]string{digitsCNN, "-o", out, "--mode", "static"}, "--mode static needs calibration samples"},
		{[]string{digitsCNN, "-o", out, "--method", "entropy"}, "--method applies to --mode static"},
		{[]string{digitsCNN, "-o", out, "--calibration", digitsCNNCalibration, "--method", "mse"}, `unknown calibration method "mse"`},
		{[]string{digitsCNN, "-o", out, "--calibration", "../../testdata/models/digits_mlp/calibration.pb"},
			`calibration input "input": shape [256 64] does not match the input's [batch,1,8,8]`},
		{[]string{digitsMLP, "-o", out, "--calibration", writeTensor("nan.npy", nan, 3, 64)}, `calibration input "input": sample 1 holds NaN`},
		{[]string{digitsMLP, "-o", out, "--calibration", writeTensor("empty.npy", nil, 0, 64)}, "the calibration data holds no samples"},
	} {
		code, _, stderr := onnxopt(append([]string{"quantize"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestQuantizeBudgetCommand quantizes the digits CNN with a budget below
// the error of quantizing every layer (0.30 on its calibration samples):
// the report must list layers kept in float with the reason, and --verify,
// which runs the same samples, must find the outputs within the budget.
func TestQuantizeBudgetCommand(t *testing.T) {
	const budget = 0.15
	out := filepath.Join(t.TempDir(), "int8.onnx")
	code, stdout, stderr := onnxopt("quantize", digitsCNN, "-o", out, "--calibration", digitsCNNCalibration, "--per-channel",
		"--max-error", fmt.Sprint(budget), "--verify", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r quantizeJSON
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Float) == 0 || len(r.Quantized) == 0 || len(r.Float)+len(r.Quantized) != 4 {
		t.Errorf("quantized %+v, float %+v", r.Quantized, r.Float)
	}
	for _, l := range r.Float {
		if !slices.ContainsFunc(r.Notes, func(n string) bool {
			return strings.HasPrefix(n, fmt.Sprintf("%q (%s) kept in float by the budget", l.Node, l.Op))
		}) {
			t.Errorf("no note says why %s is float: %q", l.Node, r.Notes)
		}
	}
	m := r.Verify.Comparisons[0].Outputs[0].Metrics
	if m.MaxAbs == nil || *m.MaxAbs > budget {
		t.Errorf("max abs error %v on the calibration samples, budget %g", m.MaxAbs, budget)
	}
	code, stdout, stderr = onnxopt("quantize", digitsCNN, "-o", out, "--calibration", digitsCNNCalibration, "--per-channel", "--max-error", fmt.Sprint(budget))
	if code != 0 || !strings.Contains(stdout, "kept in float (") || !strings.Contains(stdout, "within the budget") {
		t.Errorf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestQuantizeInt4Command quantizes the digits MLP's weights to int4
// blocks and checks the report, the size and the written model's accuracy.
func TestQuantizeInt4Command(t *testing.T) {
	out := filepath.Join(t.TempDir(), "int4.onnx")
	code, stdout, stderr := onnxopt("quantize", digitsMLP, "-o", out, "--mode", "int4", "--block-size", "16", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r quantizeJSON
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if r.Mode != "int4" || len(r.Quantized) != 3 || len(r.Float) != 0 {
		t.Errorf("mode %q, quantized %+v, float %+v", r.Mode, r.Quantized, r.Float)
	}
	for _, l := range r.Quantized {
		if l.Weight != "int4 blocks of 16" {
			t.Errorf("layer %+v", l)
		}
	}
	if !slices.ContainsFunc(r.Notes, func(n string) bool { return strings.HasPrefix(n, "default opset import raised from 13 to 21") }) {
		t.Errorf("notes %q", r.Notes)
	}
	// Half a byte a weight and a float32 scale every 16 is 4/(0.5+4/16)
	// = 5.33 times smaller; the float biases take a little of that.
	if ratio := float64(r.Before.Bytes) / float64(r.After.Bytes); ratio < 5 || ratio > 5.34 {
		t.Errorf("parameters %d → %d bytes, %.2fx", r.Before.Bytes, r.After.Bytes, ratio)
	}
	m, err := graph.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Opset(""); v != 21 {
		t.Errorf("opset %d", v)
	}
	plan, err := runtime.Compile(m.Graph)
	if err != nil {
		t.Fatal(err)
	}
	in, err := runtime.RandomInputs(m.Graph, 1, 0, 1, map[string]int64{"batch": 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plan.Run(in); err != nil {
		t.Fatal(err)
	}
}
