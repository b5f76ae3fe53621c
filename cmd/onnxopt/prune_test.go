package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"onnxopt/onnx"
)

const digitsMLPCalibration = "../../testdata/models/digits_mlp/calibration.pb"

// TestPruneCommand prunes the digits CNN and checks the JSON report
// against the model written, read straight from the protobuf.
func TestPruneCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pruned.onnx")
	code, stdout, stderr := onnxopt("prune", digitsCNN, "-o", out, "--method", "magnitude", "--sparsity", "0.7", "--global", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r pruneReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	before, after := readProto(t, digitsCNN), readProto(t, out)
	// The truth: the weights of the Conv and Gemm nodes, biases apart.
	weights := map[string]bool{}
	for _, n := range after.Graph.Node {
		if n.GetOpType() == "Conv" || n.GetOpType() == "Gemm" {
			weights[n.Input[1]] = true
		}
	}
	var params, nonZero, bytes int64
	for i, init := range after.Graph.Initializer {
		vals, err := onnx.Float32s(init)
		if err != nil {
			t.Fatal(err)
		}
		old, err := onnx.Float32s(before.Graph.Initializer[i])
		if err != nil {
			t.Fatal(err)
		}
		if !weights[init.GetName()] {
			if !slices.Equal(vals, old) {
				t.Errorf("%s, not a weight, changed", init.GetName())
			}
			continue
		}
		params += int64(len(vals))
		bytes += int64(4 * len(vals))
		for j, v := range vals {
			if v != 0 {
				nonZero++
				if v != old[j] {
					t.Fatalf("%s[%d] changed from %g to %g, not to 0", init.GetName(), j, old[j], v)
				}
			}
		}
	}
	if len(r.Weights) != len(weights) || r.Total.Params != params || r.Total.NonZero != nonZero || r.Total.Bytes != bytes {
		t.Errorf("report: %d weights, totals %+v; the file: %d weights, %d params, %d non-zero, %d bytes", len(r.Weights), r.Total, len(weights), params, nonZero, bytes)
	}
	if want := int64(float64(params)*0.3 + 0.5); nonZero != want || r.Zeroed != int(params-nonZero) || r.Total.NonZeroBefore != params {
		t.Errorf("%d non-zero of %d (want %d), zeroed %d", nonZero, params, want, r.Zeroed)
	}
	if r.FileBytes[0] != r.FileBytes[1] || r.Method != "magnitude" || r.Output != out {
		t.Errorf("file bytes %v, method %q, output %q", r.FileBytes, r.Method, r.Output)
	}
}

// TestPruneCommandText reconstructs the digits MLP on its calibration
// samples and verifies it in onnxopt's runtime: the text report has the
// per-layer table, says the file stays dense, and the verification keeps
// the top-1 class on at least 95% of the samples.
func TestPruneCommandText(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pruned.onnx")
	code, stdout, stderr := onnxopt("prune", digitsMLP, "-o", out, "--sparsity", "0.9", "--global",
		"--reconstruct", "--calibration", digitsMLPCalibration, "--verify", "--min-top1", "0.95")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	for _, want := range []string{"/fc2/Gemm", "[128 256]", "90.0%", "stored dense", "refitted", "top-1 agreement", "calibration.pb: 256 samples"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestPruneRandomReproducible(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{}
	for _, run := range []struct{ name, seed string }{{"a", "3"}, {"b", "3"}, {"c", "4"}} {
		out := filepath.Join(dir, run.name+".onnx")
		if code, _, stderr := onnxopt("prune", digitsCNN, "-o", out, "--method", "random", "--sparsity", "0.5", "--seed", run.seed); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		files[run.name] = b
	}
	if !bytes.Equal(files["a"], files["b"]) {
		t.Error("the same seed wrote different files")
	}
	if bytes.Equal(files["a"], files["c"]) {
		t.Error("seeds 3 and 4 wrote the same file")
	}
}

func TestPruneUsage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.onnx")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"unknown method", []string{"--method", "lottery"}, 2, "--method lottery"},
		{"sparsity 1", []string{"--sparsity", "1"}, 2, "outside [0, 1)"},
		{"no output", []string{"-o", ""}, 2, "-o OUT is required"},
		{"gradient without calibration", []string{"--method", "gradient"}, 2, "needs calibration samples"},
		{"reconstruct without calibration", []string{"--reconstruct"}, 2, "--reconstruct needs calibration"},
		{"calibration of another model", []string{"--reconstruct", "--calibration", digitsMLPCalibration}, 2, "does not match"},
		{"bad N:M", []string{"--method", "nm", "--nm", "2"}, 2, "want N:M"},
		{"exclude matching nothing", []string{"--exclude", "LSTM"}, 0, `warning: --exclude "LSTM" matches no layer`},
		{"top-1 not kept", []string{"--method", "random", "--sparsity", "0.9", "--verify", "--calibration", digitsCNNCalibration, "--min-top1", "0.9"}, 1, "top-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"prune", digitsCNN, "-o", out}, tc.args...)
			code, _, stderr := onnxopt(args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}
