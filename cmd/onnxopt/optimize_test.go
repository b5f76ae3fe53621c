package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"onnxopt/runtime"
)

// TestOptimizeDigits runs the default pipeline with --verify on the digits
// CNN and checks the report and the written model's outputs against
// torch's.
func TestOptimizeDigits(t *testing.T) {
	out := filepath.Join(t.TempDir(), "opt.onnx")
	code, stdout, stderr := onnxopt("optimize", digitsCNN, "-o", out, "--verify", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r optimizeReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Passes) == 0 || r.Before.Nodes < r.After.Nodes || r.After.Params == 0 || r.After.FLOPs == 0 {
		t.Errorf("report %+v", r)
	}
	for _, p := range r.Passes {
		if p.MaxAbsError == nil || *p.MaxAbsError > 1e-5 {
			t.Errorf("pass %s: max error %v", p.Name, p.MaxAbsError)
		}
	}
	code, _, stderr = onnxopt("run", out, "--input", filepath.Join(digitsData, "input_0.pb"), "--output-dir", filepath.Dir(out))
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	got, err := runtime.ReadTensorFile(filepath.Join(filepath.Dir(out), "output_0.pb"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := runtime.ReadTensorFile(filepath.Join(digitsData, "output_0.pb"))
	if err != nil {
		t.Fatal(err)
	}
	if maxAbs, _, ok := runtime.Compare(got, want, 0, 1e-4); !ok {
		t.Errorf("optimized model differs from torch by %g (atol 1e-4)", maxAbs)
	}
}

func TestOptimizeUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"optimize", digitsCNN}, "-o OUT is required"},
		{[]string{"optimize", digitsCNN, "-o", "x.onnx", "--passes", "deadcode,nope"}, `unknown pass "nope"`},
	} {
		code, _, stderr := onnxopt(tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	code, stdout, _ := onnxopt("passes")
	if code != 0 || !strings.Contains(stdout, "deadcode (default)") {
		t.Errorf("passes: exit %d:\n%s", code, stdout)
	}
}
