package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"onnxopt/internal/suite"
	"onnxopt/runtime"
)

const digitsData = "../../testdata/models/digits_cnn/test_data_set_0"

// TestRunDigits runs the digits CNN on its held-out set and compares the
// written outputs with torch's logits.
func TestRunDigits(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := onnxopt("run", digitsCNN, "--input", "input="+filepath.Join(digitsData, "input_0.pb"), "--output-dir", dir, "--npy", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r runReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Outputs) != 1 || r.Outputs[0].Name != "logits" || len(r.Outputs[0].Files) != 2 {
		t.Fatalf("outputs %+v", r.Outputs)
	}
	want, err := runtime.ReadTensorFile(filepath.Join(digitsData, "output_0.pb"))
	if err != nil {
		t.Fatal(err)
	}
	const atol = 1e-4 // torch and onnxopt sum in different orders
	for _, name := range []string{"output_0.pb", "output_0.npy"} {
		got, err := runtime.ReadTensorFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if maxAbs, _, ok := runtime.Compare(got, want, 0, atol); !ok {
			t.Errorf("%s differs from torch's logits by up to %g (atol %g)", name, maxAbs, atol)
		}
	}
}

func TestRunBadInput(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pb")
	if err := os.WriteFile(garbage, []byte{0xff, 0xff, 0xff}, 0o644); err != nil {
		t.Fatal(err)
	}
	labels := "../../testdata/models/digits_cnn/labels.pb"
	input := filepath.Join(digitsData, "input_0.pb")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", digitsCNN}, `input "input" is not given`},
		{[]string{"run", digitsCNN, "--input", "nope=" + input}, `no input "nope"`},
		{[]string{"run", digitsCNN, "--input", garbage}, "garbage.pb"},
		{[]string{"run", digitsCNN, "--input", labels}, `input "input": got int64, want float`},
		{[]string{"run", digitsCNN, "--input", filepath.Join(dir, "missing.npy")}, "no such file"},
		{[]string{"run", digitsCNN, "--input", input, "--npy"}, "--npy needs --output-dir"},
	} {
		code, _, errOut := onnxopt(tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("onnxopt %v: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, code, errOut, tc.want)
		}
	}
}

// TestConformanceCommand runs the command over the suite's simple folder
// and checks that the JSON report adds up.
func TestConformanceCommand(t *testing.T) {
	root := suite.Dir(t)
	code, out, errOut := onnxopt("conformance", "--json", filepath.Join(root, "simple"), filepath.Join(root, "pytorch-operator"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r conformanceReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Total != 23+35 || len(r.Cases) != r.Total || r.Passed+r.Failed+r.Errors+r.Unsupported != r.Total {
		t.Errorf("totals %d = %d+%d+%d+%d over %d cases", r.Total, r.Passed, r.Failed, r.Errors, r.Unsupported, len(r.Cases))
	}
	if r.RTol != 1e-3 || r.ATol != 1e-7 {
		t.Errorf("tolerances %g %g", r.RTol, r.ATol)
	}
	if code, _, _ := onnxopt("conformance"); code != 2 {
		t.Errorf("no folder: exit %d, want 2", code)
	}
	if code, _, _ := onnxopt("conformance", t.TempDir()); code != 2 {
		t.Errorf("empty folder: exit %d, want 2", code)
	}
}
