package verify

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"onnxopt/runtime"
	"onnxopt/verify/verifytest"
)

const (
	digitsDir   = "../testdata/models/digits_cnn"
	digitsModel = digitsDir + "/model.onnx"
	// conv2Weight is the weight of the CNN's second convolution, which
	// a ReLU and another convolution separate from the input.
	conv2Weight = "onnx::Conv_41"
)

// tight is the default tolerance of "onnxopt verify".
var tight = Tolerance{ATol: DefaultATol, RTol: DefaultRTol}

func loadModel(t testing.TB, path string) *Model {
	t.Helper()
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// digitsBatch is the CNN's 397 held-out samples as one batch.
func digitsBatch(t testing.TB) Case {
	t.Helper()
	x, err := runtime.ReadTensorFile(filepath.Join(digitsDir, "test_data_set_0", "input_0.pb"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Batch("test_data_set_0", map[string]*runtime.Tensor{"input": x})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// perturbedCNN writes a copy of the digits CNN whose second convolution
// has one weight scaled by 1.01, and returns its path and that
// convolution's output.
func perturbedCNN(t testing.TB) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "perturbed.onnx")
	conv, err := verifytest.ScaleWeight(digitsModel, path, conv2Weight, 1.01)
	if err != nil {
		t.Fatal(err)
	}
	if conv.OpType != "Conv" {
		t.Fatalf("%s reads %s, not a Conv", conv, conv2Weight)
	}
	return path, conv.Outputs[0].Name
}

// checkIdentical fails unless m shows no error on any metric.
func checkIdentical(t *testing.T, what string, m Metrics) {
	t.Helper()
	if m.Elements == 0 || m.Outside != 0 || m.MaxAbs != 0 || m.MeanAbs != 0 || m.MaxRel != 0 ||
		m.Cosine != 1 || !math.IsInf(m.SQNR, 1) || !m.Identical() || m.Mismatch != "" {
		t.Errorf("%s: %+v, want zero error, cosine 1, infinite SQNR", what, m)
	}
}

// TestSelf verifies the CNN against itself on its test set (sample by
// sample) and on random inputs, with every layer: every metric must show
// no error.
func TestSelf(t *testing.T) {
	m := loadModel(t, digitsModel)
	random, err := runtime.RandomInputs(m.Graph.Graph, 1, 0, 1, map[string]int64{"batch": 3})
	if err != nil {
		t.Fatal(err)
	}
	cases := []Case{digitsBatch(t), {Name: "random", Inputs: random}}
	r, err := Models(m, loadModel(t, digitsModel), cases, Options{Tolerance: tight, PerLayer: true, BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Pass || len(r.Comparisons) != 1 {
		t.Fatalf("pass %v with %d comparisons", r.Pass, len(r.Comparisons))
	}
	cmp := r.Comparisons[0]
	if len(cmp.Outputs) != 1 {
		t.Fatalf("outputs %+v", cmp.Outputs)
	}
	out := cmp.Outputs[0]
	checkIdentical(t, "logits", out.Metrics)
	if out.Metrics.Rows != 397+3 || out.Metrics.Top1 != 1 {
		t.Errorf("top-1 %g over %d rows, want 1 over 400", out.Metrics.Top1, out.Metrics.Rows)
	}
	if out.Samples != 397 || out.SamplesOutside != 0 || out.Worst == nil {
		t.Fatalf("%d samples, %d outside, worst %+v", out.Samples, out.SamplesOutside, out.Worst)
	}
	checkIdentical(t, "worst sample", out.Worst.Metrics)
	layers := cmp.Layers
	if layers == nil || len(layers.Values) != len(m.Graph.Graph.Nodes) || layers.FirstOutside != -1 || len(layers.Worst) != 0 || len(layers.Unpaired) != 0 {
		t.Fatalf("layers %+v", layers)
	}
	for _, l := range layers.Values {
		checkIdentical(t, l.Value, l.Metrics)
	}

	// JSON has no infinity: the SQNR is null, marked identical.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Comparisons []struct {
			Outputs []struct {
				Metrics struct {
					SQNR      *float64 `json:"sqnr_db"`
					Identical bool     `json:"identical"`
					Cosine    float64  `json:"cosine"`
					Top1      float64  `json:"top1"`
				} `json:"metrics"`
			} `json:"outputs"`
		} `json:"comparisons"`
	}
	if err := json.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	if got := decoded.Comparisons[0].Outputs[0].Metrics; got.SQNR != nil || !got.Identical || got.Cosine != 1 || got.Top1 != 1 {
		t.Errorf("JSON metrics %+v", got)
	}
}

// TestPerturbedWeight changes one weight of the second convolution by 1%:
// the outputs must fail, and per-layer comparison must name that
// convolution as the first layer outside the tolerance, with every value
// before it identical.
func TestPerturbedWeight(t *testing.T) {
	path, convOut := perturbedCNN(t)
	r, err := Models(loadModel(t, digitsModel), loadModel(t, path), []Case{digitsBatch(t)}, Options{Tolerance: tight, PerLayer: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Pass {
		t.Fatalf("a 1%% weight change passed: %+v", r.Comparisons[0].Outputs[0].Metrics)
	}
	out := r.Comparisons[0].Outputs[0]
	if out.Metrics.Outside == 0 || out.SamplesOutside == 0 || math.IsInf(out.Metrics.SQNR, 0) || out.Metrics.Cosine >= 1 {
		t.Errorf("logits %+v, %d samples outside", out.Metrics, out.SamplesOutside)
	}
	layers := r.Comparisons[0].Layers
	if layers.FirstOutside < 0 {
		t.Fatal("no layer outside the tolerance")
	}
	first := layers.Values[layers.FirstOutside]
	if first.Value != convOut || first.Op != "Conv" {
		t.Errorf("first layer outside the tolerance is %q (%s), want %q", first.Value, first.Op, convOut)
	}
	for _, l := range layers.Values[:layers.FirstOutside] {
		checkIdentical(t, l.Value, l.Metrics)
	}
	if len(layers.Worst) == 0 || len(layers.Worst) > 10 {
		t.Fatalf("worst layers %v", layers.Worst)
	}
	for i := 1; i < len(layers.Worst); i++ {
		if layers.Values[layers.Worst[i]].Metrics.SQNR < layers.Values[layers.Worst[i-1]].Metrics.SQNR {
			t.Errorf("worst layers not ordered by SQNR: %v", layers.Worst)
		}
	}
	// Every value from the convolution on is downstream of the change.
	if got := len(layers.Worst); got != len(layers.Values)-layers.FirstOutside {
		t.Errorf("%d layers differ, want the %d from the convolution on", got, len(layers.Values)-layers.FirstOutside)
	}
}

// TestNameMap renames the second convolution's output in a copy: per-layer
// comparison loses it without a name map and pairs it through one.
func TestNameMap(t *testing.T) {
	ref := loadModel(t, digitsModel)
	_, convOut := perturbedCNN(t)
	path := filepath.Join(t.TempDir(), "renamed.onnx")
	if err := verifytest.RenameValue(digitsModel, path, convOut, "conv2_out"); err != nil {
		t.Fatal(err)
	}
	cases := []Case{digitsBatch(t)}
	r, err := Models(ref, loadModel(t, path), cases, Options{Tolerance: tight, PerLayer: true})
	if err != nil {
		t.Fatal(err)
	}
	if l := r.Comparisons[0].Layers; !slices.Equal(l.Unpaired, []string{convOut}) || len(l.Values) != len(ref.Graph.Graph.Nodes)-1 {
		t.Errorf("without a name map: unpaired %v, %d values", l.Unpaired, len(l.Values))
	}
	names := map[string]string{convOut: "conv2_out"}
	r, err = Models(ref, loadModel(t, path), cases, Options{Tolerance: tight, PerLayer: true, NameMap: names})
	if err != nil {
		t.Fatal(err)
	}
	l := r.Comparisons[0].Layers
	if !r.Pass || len(l.Unpaired) != 0 || len(l.Values) != len(ref.Graph.Graph.Nodes) {
		t.Fatalf("with a name map: pass %v, unpaired %v, %d values", r.Pass, l.Unpaired, len(l.Values))
	}
	i := slices.IndexFunc(l.Values, func(v Layer) bool { return v.Value == convOut })
	if i < 0 || l.Values[i].Candidate != "conv2_out" {
		t.Fatalf("renamed value not paired: %+v", l.Values)
	}
	checkIdentical(t, convOut, l.Values[i].Metrics)
}

// TestExpectedDigits checks the CNN against torch's logits, stored as the
// expected outputs of its test data set.
func TestExpectedDigits(t *testing.T) {
	m := loadModel(t, digitsModel)
	cases, err := ReadTestData(digitsDir, m.Graph.Graph)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 1 || cases[0].Name != "test_data_set_0" || cases[0].Want["logits"] == nil {
		t.Fatalf("cases %+v", cases)
	}
	// torch and onnxopt sum in different orders.
	r, err := Expected(m, cases, Options{Tolerance: Tolerance{ATol: 1e-4}})
	if err != nil {
		t.Fatal(err)
	}
	out := r.Comparisons[0].Outputs[0]
	if !r.Pass || out.Metrics.MaxAbs > 1e-4 || out.Metrics.Top1 != 1 || out.Metrics.Rows != 397 {
		t.Errorf("pass %v, logits %+v", r.Pass, out.Metrics)
	}
	if _, err := Expected(m, cases, Options{PerLayer: true}); err == nil {
		t.Error("per-layer comparison against expected outputs accepted")
	}
}

// TestWorstSample alters the expected logits of one sample: that sample
// must be the worst and the only one outside the tolerance.
func TestWorstSample(t *testing.T) {
	m := loadModel(t, digitsModel)
	cases, err := ReadTestData(digitsDir, m.Graph.Graph)
	if err != nil {
		t.Fatal(err)
	}
	c := cases[0]
	want := c.Want["logits"].Clone()
	const bad = 123
	want.Data.([]float32)[bad*10+4] += 0.5
	c.Want["logits"] = want
	c.Samples = c.Inputs["input"].Shape[0]
	for _, batch := range []int{0, 50, 1} {
		r, err := Expected(m, []Case{c}, Options{Tolerance: Tolerance{ATol: 1e-4}, BatchSize: batch})
		if err != nil {
			t.Fatal(err)
		}
		out := r.Comparisons[0].Outputs[0]
		if r.Pass || out.Samples != 397 || out.SamplesOutside != 1 || out.Worst == nil || out.Worst.Index != bad {
			t.Fatalf("batch size %d: pass %v, %d of %d samples outside, worst %+v", batch, r.Pass, out.SamplesOutside, out.Samples, out.Worst)
		}
		if d := out.Worst.Metrics.MaxAbs; math.Abs(d-0.5) > 1e-4 {
			t.Errorf("batch size %d: worst sample's max abs error %g, want 0.5", batch, d)
		}
	}
}

func TestReadTestDataErrors(t *testing.T) {
	m := loadModel(t, digitsModel)
	empty := t.TempDir()
	if _, err := ReadTestData(empty, m.Graph.Graph); err == nil || !strings.Contains(err.Error(), "test_data_set_N") {
		t.Errorf("empty folder: %v", err)
	}
	gap := t.TempDir()
	for _, name := range []string{"test_data_set_0", "test_data_set_2"} {
		if err := os.Mkdir(filepath.Join(gap, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ReadTestData(gap, m.Graph.Graph); err == nil || !strings.Contains(err.Error(), "test_data_set_1 is missing") {
		t.Errorf("gap: %v", err)
	}
	if _, err := ReadTestData(filepath.Join(gap, "test_data_set_0"), m.Graph.Graph); err == nil {
		t.Error("a data set without input files was accepted")
	}
}

func TestReadNameMap(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		text string
		want map[string]string
		bad  bool
	}{
		{text: `{"a": "b", "c": "d"}`, want: map[string]string{"a": "b", "c": "d"}},
		{text: `{"model": "m.onnx", "passes": [], "renamed": {"x": "y"}}`, want: map[string]string{"x": "y"}},
		{text: `{"model": "m.onnx", "passes": []}`, want: map[string]string{}},
		{text: `{"a": 1}`, bad: true},
		{text: `[1, 2]`, bad: true},
	} {
		path := filepath.Join(dir, "names.json")
		if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadNameMap(path)
		switch {
		case tc.bad && err == nil:
			t.Errorf("%s: accepted as %v", tc.text, got)
		case !tc.bad && (err != nil || len(got) != len(tc.want)):
			t.Errorf("%s: %v, %v; want %v", tc.text, got, err, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %q maps to %q, want %q", tc.text, k, got[k], v)
			}
		}
	}
	if got := resolve(map[string]string{"a": "b", "b": "c", "x": "y", "y": "x"}, "a"); got != "c" {
		t.Errorf("chain a→b→c resolves to %q", got)
	}
	resolve(map[string]string{"x": "y", "y": "x"}, "x") // a cycle must end
}

func TestBadOptions(t *testing.T) {
	m := loadModel(t, digitsModel)
	cases := []Case{digitsBatch(t)}
	if _, err := Models(m, m, cases, Options{Backend: "tpu"}); err == nil || !strings.Contains(err.Error(), "ours, ort or both") {
		t.Errorf("unknown backend: %v", err)
	}
	if _, err := Models(m, m, cases, Options{Backend: ORT, PerLayer: true}); err == nil || !strings.Contains(err.Error(), "per-layer") {
		t.Errorf("per-layer with ORT: %v", err)
	}
	if _, err := Models(m, m, nil, Options{}); err == nil {
		t.Error("no cases accepted")
	}
	if _, err := Batch("empty", map[string]*runtime.Tensor{}); err == nil {
		t.Error("a batch without inputs accepted")
	}
}

// TestORTMissing points ORT_LIB at a missing file: the error must say how
// to install ONNX Runtime.
func TestORTMissing(t *testing.T) {
	t.Setenv("ORT_LIB", filepath.Join(t.TempDir(), "missing.so"))
	m := loadModel(t, digitsModel)
	for _, err := range []error{ORTAvailable(), func() error { _, err := Models(m, m, []Case{digitsBatch(t)}, Options{Backend: Both}); return err }()} {
		if err == nil || !strings.Contains(err.Error(), "scripts/install-ort.sh") {
			t.Errorf("error %v, want one naming scripts/install-ort.sh", err)
		}
	}
}

// BenchmarkVerifyDigitsCNN verifies the digits CNN against itself on its
// 397 test samples in one batch, both models in onnxopt's runtime: load
// and compile, two runs, the comparison. Compare with
