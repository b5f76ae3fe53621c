package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"onnxopt/verify"
	"onnxopt/verify/verifytest"
)

const digitsCalibration = "../../testdata/models/digits_cnn/calibration.pb"

// verifyJSON is the part of the JSON report the tests read. Pointers tell
// null (a non-finite number) from zero.
type verifyJSON struct {
	Pass        bool `json:"pass"`
	Comparisons []struct {
		Reference string `json:"reference"`
		Candidate string `json:"candidate"`
		Pass      bool   `json:"pass"`
		Outputs   []struct {
			Name    string      `json:"name"`
			Metrics metricsJSON `json:"metrics"`
			Samples int         `json:"samples"`
		} `json:"outputs"`
		Layers *struct {
			Values []struct {
				Value   string      `json:"value"`
				Metrics metricsJSON `json:"metrics"`
			} `json:"values"`
			FirstOutside int `json:"first_outside"`
		} `json:"layers"`
	} `json:"comparisons"`
}

type metricsJSON struct {
	MaxAbs    *float64 `json:"max_abs_error"`
	MeanAbs   *float64 `json:"mean_abs_error"`
	MaxRel    *float64 `json:"max_rel_error"`
	Cosine    *float64 `json:"cosine"`
	SQNR      *float64 `json:"sqnr_db"`
	Identical bool     `json:"identical"`
	Top1      *float64 `json:"top1"`
}

// zeroError reports whether m shows no error on any metric: SQNR null
// (infinite) and marked identical, cosine 1, top-1 1.
func (m metricsJSON) zeroError() bool {
	zero := func(p *float64) bool { return p != nil && *p == 0 }
	return zero(m.MaxAbs) && zero(m.MeanAbs) && zero(m.MaxRel) && m.Cosine != nil && *m.Cosine == 1 &&
		m.SQNR == nil && m.Identical && m.Top1 != nil && *m.Top1 == 1
}

func decodeVerify(t *testing.T, out string) verifyJSON {
	t.Helper()
	var r verifyJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	return r
}

// TestVerifySelf verifies the CNN against itself on random inputs, with
// every layer, and on its calibration batch sample by sample: zero error
// on every metric.
func TestVerifySelf(t *testing.T) {
	for _, args := range [][]string{
		{"--per-layer", "--dim", "batch=4"},
		{"--calibration", digitsCalibration, "--batch-size", "100"},
	} {
		code, out, errOut := onnxopt(append([]string{"verify", digitsCNN, digitsCNN, "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		r := decodeVerify(t, out)
		if !r.Pass || len(r.Comparisons) != 1 || len(r.Comparisons[0].Outputs) != 1 {
			t.Fatalf("%v: %+v", args, r)
		}
		if m := r.Comparisons[0].Outputs[0].Metrics; !m.zeroError() {
			t.Errorf("%v: logits %+v", args, m)
		}
		if layers := r.Comparisons[0].Layers; layers != nil {
			if len(layers.Values) != 10 || layers.FirstOutside != -1 {
				t.Errorf("%v: %d layers, first outside %d", args, len(layers.Values), layers.FirstOutside)
			}
			for _, l := range layers.Values {
				if !l.Metrics.Identical || l.Metrics.SQNR != nil {
					t.Errorf("%v: layer %s %+v", args, l.Value, l.Metrics)
				}
			}
		}
	}
	if got := decodeVerify(t, func() string {
		_, out, _ := onnxopt("verify", digitsCNN, digitsCNN, "--json", "--calibration", digitsCalibration)
		return out
	}()).Comparisons[0].Outputs[0].Samples; got != 256 {
		t.Errorf("calibration checked %d samples, want 256", got)
	}
	code, out, _ := onnxopt("verify", digitsCNN, digitsCNN)
	if code != 0 || !strings.Contains(out, "logits  0 ") || !strings.HasSuffix(out, "\nok\n") {
		t.Errorf("text report, exit %d:\n%s", code, out)
	}
}

// TestVerifyPerturbed changes one weight of the second convolution by 1%:
// exit 1, and per-layer comparison names that convolution first.
func TestVerifyPerturbed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "perturbed.onnx")
	conv, err := verifytest.ScaleWeight(digitsCNN, path, "onnx::Conv_41", 1.01)
	if err != nil {
		t.Fatal(err)
	}
	convOut := conv.Outputs[0].Name
	code, out, errOut := onnxopt("verify", digitsCNN, path, "--test-data", digitsData, "--per-layer")
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, errOut)
	}
	if !strings.Contains(errOut, `first layer outside it: "`+convOut+`"`) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
		t.Errorf("stderr %q does not name %s on one line", errOut, convOut)
	}
	var marked []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "← first outside the tolerance") {
			marked = append(marked, line)
		}
	}
	if len(marked) != 1 || !strings.Contains(marked[0], convOut) || !strings.Contains(out, "worst 8 by SQNR") {
		t.Errorf("report marks %q, want the line of %s:\n%s", marked, convOut, out)
	}

	code, out, _ = onnxopt("verify", digitsCNN, path, "--test-data", digitsData, "--per-layer", "--json")
	r := decodeVerify(t, out)
	layers := r.Comparisons[0].Layers
	if code != 1 || r.Pass || layers == nil || layers.FirstOutside < 0 || layers.Values[layers.FirstOutside].Value != convOut {
		t.Errorf("JSON: exit %d, pass %v, layers %+v", code, r.Pass, layers)
	}
}

// TestVerifyTestData checks the CNN alone against torch's logits stored
// in its test data, given as the data set or as the folder holding it.
func TestVerifyTestData(t *testing.T) {
	for _, dir := range []string{digitsData, filepath.Dir(digitsData)} {
		code, out, errOut := onnxopt("verify", digitsCNN, "--test-data", dir, "--atol", "1e-4", "--rtol", "0", "--min-top1", "1", "--json")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", dir, code, errOut)
		}
		r := decodeVerify(t, out)
		m := r.Comparisons[0].Outputs[0].Metrics
		if r.Comparisons[0].Reference != "expected" || m.MaxAbs == nil || *m.MaxAbs > 1e-4 || *m.Top1 != 1 {
			t.Errorf("%s: %+v", dir, r.Comparisons[0])
		}
	}
	// Tighter than float32 sums in another order: fails.
	if code, _, errOut := onnxopt("verify", digitsCNN, "--test-data", digitsData, "--atol", "0", "--rtol", "0"); code != 1 {
		t.Errorf("exact match with torch: exit %d, want 1: %s", code, errOut)
	}
}

// TestVerifyBothBackends runs the candidate in onnxopt's runtime and in
// ONNX Runtime: all agree within 1e-4.
func TestVerifyBothBackends(t *testing.T) {
	if err := verify.ORTAvailable(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	code, out, errOut := onnxopt("verify", digitsCNN, digitsCNN, "--test-data", digitsData, "--backend", "both", "--atol", "1e-4", "--rtol", "0", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	r := decodeVerify(t, out)
	if len(r.Comparisons) != 3 {
		t.Fatalf("%d comparisons, want 3", len(r.Comparisons))
	}
	last := r.Comparisons[2]
	m := last.Outputs[0].Metrics
	if last.Reference != "candidate (ours)" || last.Candidate != "candidate (ort)" || m.MaxAbs == nil || *m.MaxAbs > 1e-4 || *m.Top1 != 1 {
		t.Errorf("ours vs ORT: %+v", last)
	}
}

// TestVerifyNameMapFromOptimize feeds the report of "onnxopt optimize
// --json" to --name-map.
func TestVerifyNameMapFromOptimize(t *testing.T) {
	dir := t.TempDir()
	opt := filepath.Join(dir, "opt.onnx")
	code, out, errOut := onnxopt("optimize", digitsCNN, "-o", opt, "--json")
	if code != 0 {
		t.Fatalf("optimize: exit %d: %s", code, errOut)
	}
	report := filepath.Join(dir, "report.json")
	if err := os.WriteFile(report, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = onnxopt("verify", digitsCNN, opt, "--per-layer", "--name-map", report, "--json")
	if code != 0 {
		t.Fatalf("verify: exit %d: %s", code, errOut)
	}
	if r := decodeVerify(t, out); r.Comparisons[0].Layers == nil || len(r.Comparisons[0].Layers.Values) == 0 {
		t.Errorf("no layer paired: %+v", r.Comparisons[0].Layers)
	}
}

func TestVerifyUsage(t *testing.T) {
	dir := t.TempDir()
	badMap := filepath.Join(dir, "names.json")
	if err := os.WriteFile(badMap, []byte(`{"a": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(digitsData, "input_0.pb")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"verify"}, "want at least 1 argument"},
		{[]string{"verify", digitsCNN, digitsCNN, digitsCNN}, "got 3 arguments"},
		{[]string{"verify", digitsCNN}, "give --test-data DIR, or a second model"},
		{[]string{"verify", digitsCNN, digitsCNN, "--backend", "gpu"}, `unknown backend "gpu"`},
		{[]string{"verify", digitsCNN, digitsCNN, "--input", input, "--test-data", digitsData}, "give inputs one way"},
		{[]string{"verify", digitsCNN, digitsCNN, "--input", input, "--seed", "3"}, "do not apply to inputs from files"},
		{[]string{"verify", digitsCNN, digitsCNN, "--range", "1,0"}, "finite LO < HI"},
		{[]string{"verify", digitsCNN, digitsCNN, "--dim", "batch"}, "NAME=VALUE"},
		{[]string{"verify", digitsCNN, digitsCNN, "--atol", "-1"}, "0 or more"},
		{[]string{"verify", digitsCNN, digitsCNN, "--min-top1", "2"}, "at most 1"},
		{[]string{"verify", digitsCNN, digitsCNN, "--input", "nope=" + input}, `no input "nope"`},
		{[]string{"verify", digitsCNN, digitsCNN, "--calibration", "../../testdata/models/digits_cnn/labels.pb"}, `got int64, want float`},
		{[]string{"verify", digitsCNN, digitsCNN, "--name-map", badMap}, "names.json"},
		{[]string{"verify", digitsCNN, filepath.Join(dir, "missing.onnx")}, "no such file"},
		{[]string{"verify", digitsCNN, "--test-data", dir}, "test_data_set_N"},
		{[]string{"verify", digitsCNN, "--test-data", digitsData, "--per-layer"}, "per-layer comparison needs two models"},
		{[]string{"verify", digitsCNN, digitsCNN, "--per-layer", "--backend", "ort"}, "per-layer comparison needs the candidate in onnxopt's runtime"},
	} {
		code, _, errOut := onnxopt(tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("onnxopt %v: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, code, errOut, tc.want)
		}
		if strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
			t.Errorf("onnxopt %v: error takes more than two lines: %q", tc.args, errOut)
		}
	}
}

// TestVerifyWithoutORT points ORT_LIB at a missing file: asking for ONNX
// Runtime is exit 2 with how to install it.
func TestVerifyWithoutORT(t *testing.T) {
	t.Setenv("ORT_LIB", filepath.Join(t.TempDir(), "missing.so"))
	code, _, errOut := onnxopt("verify", digitsCNN, digitsCNN, "--backend", "ort")
	if code != 2 || !strings.Contains(errOut, "scripts/install-ort.sh") {
		t.Errorf("exit %d, stderr %q; want 2 naming scripts/install-ort.sh", code, errOut)
	}
}
