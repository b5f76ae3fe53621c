package report

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"onnxopt/graph"
	"onnxopt/internal/testmodels"
	"onnxopt/onnx"
	"onnxopt/report/reporttest"
	"onnxopt/runtime"
	"onnxopt/verify"
)

const digitsCNN = "../testdata/models/digits_cnn/model.onnx"

// The weights of the digits CNN's second and third convolutions and of
// its classifier.
const (
	conv2Weight = "onnx::Conv_41"
	conv3Weight = "onnx::Conv_44"
	fcWeight    = "fc.weight"
)

func load(t *testing.T) *graph.Model {
	t.Helper()
	m, err := graph.Load(digitsCNN)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func floats(t *testing.T, v *graph.Value) []float32 {
	t.Helper()
	w, err := onnx.Float32s(v.Init)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// dequantizeWeight puts a DequantizeLinear in front of the reader of the
// float32 initializer name, holding the weight quantized to dt (INT8 or
// UINT8) with zeroPoint: per channel along axis 0 when perChannel, else
// per tensor. It returns the values the test expects the model to
// compute: (q − zero point) · scale, worked out here.
func dequantizeWeight(t *testing.T, m *graph.Model, name string, dt onnx.DataType, zeroPoint int, perChannel bool) []float32 {
	t.Helper()
	g := m.Graph
	v := g.Lookup(name)
	w := floats(t, v)
	dims := v.Init.GetDims()
	channels := 1
	if perChannel {
		channels = int(dims[0])
	}
	per := len(w) / channels
	scales := make([]float32, channels)
	for c := range scales {
		var largest float64
		for _, x := range w[c*per : (c+1)*per] {
			largest = max(largest, math.Abs(float64(x)))
		}
		scales[c] = float32(largest / 127)
	}
	want := make([]float32, len(w))
	q8 := make([]int8, len(w))
	qu := make([]uint8, len(w))
	for i, x := range w {
		c := i / per
		q := int(math.Round(float64(x/scales[c]))) + zeroPoint
		q8[i], qu[i] = int8(q), uint8(q)
		want[i] = float32(q-zeroPoint) * scales[c]
	}
	var data, zp any = q8, []int8{int8(zeroPoint)}
	if dt == onnx.TensorProto_UINT8 {
		data, zp = qu, []uint8{uint8(zeroPoint)}
	}
	var scaleDims []int64
	var attrs []*onnx.AttributeProto
	if perChannel {
		scaleDims = []int64{int64(channels)}
		zp = slices.Repeat(zp.([]int8), channels)
		attrs = append(attrs, &onnx.AttributeProto{Name: ptr("axis"), Type: onnx.AttributeProto_INT.Enum(), I: ptr(int64(0))})
	}
	tensor := func(suffix string, dt onnx.DataType, dims []int64, data any) *graph.Value {
		tp, err := onnx.NewTensor(name+suffix, dt, dims, data)
		if err != nil {
			t.Fatal(err)
		}
		return g.AddInitializer(tp)
	}
	qv := tensor("_quantized", dt, dims, data)
	sv := tensor("_scale", onnx.TensorProto_FLOAT, scaleDims, scales)
	zv := tensor("_zero_point", dt, scaleDims, zp)
	out := g.NewValue(name + "_dequantized")
	out.SetTensorType(onnx.TensorProto_FLOAT, graph.Known(dims...))
	reader := v.Uses[0].Node
	dq, err := g.NewNode("DequantizeLinear", name+"_dequantize", []*graph.Value{qv, sv, zv}, []*graph.Value{out}, attrs...)
	if err != nil {
		t.Fatal(err)
	}
	g.InsertBefore(reader, dq)
	v.ReplaceAllUses(out)
	g.RemoveInitializer(v)
	g.Prune()
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	return want
}

// pruneHalf zeroes the smaller half (by magnitude) of the weight name and
// returns how many it zeroed.
func pruneHalf(t *testing.T, m *graph.Model, name string) int {
	t.Helper()
	v := m.Graph.Lookup(name)
	w := floats(t, v)
	order := make([]int, len(w))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmpFloat(math.Abs(float64(w[a])), math.Abs(float64(w[b])))
	})
	for _, i := range order[:len(w)/2] {
		w[i] = 0
	}
	tp, err := onnx.NewTensor(name, onnx.TensorProto_FLOAT, v.Init.GetDims(), w)
	if err != nil {
		t.Fatal(err)
	}
	v.SetInit(tp)
	return len(w) / 2
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func pairByKey(t *testing.T, r *Report, key string) *layerPair {
	t.Helper()
	for _, p := range r.pairs {
		if p.key == key {
			return p
		}
	}
	t.Fatalf("no layer %q among %d", key, len(r.pairs))
	return nil
}

// TestCompressed reports on the digits CNN against a copy whose second
// convolution is int8 per channel in QDQ form, whose third is half
// pruned and whose classifier is uint8 per tensor: the histograms must
// hold the dequantized values, the zero counts what pruning zeroed, and
// the per-layer error must point at the second convolution.
func TestCompressed(t *testing.T) {
	before, after := load(t), load(t)
	wantConv2 := dequantizeWeight(t, after, conv2Weight, onnx.TensorProto_INT8, 0, true)
	wantFC := dequantizeWeight(t, after, fcWeight, onnx.TensorProto_UINT8, 128, false)
	pruned := pruneHalf(t, after, conv3Weight)
	if err := after.Graph.Sort(); err != nil {
		t.Fatal(err)
	}

	inputs, err := runtime.RandomInputs(before.Graph, 1, 0, 1, map[string]int64{"batch": 4})
	if err != nil {
		t.Fatal(err)
	}
	cases := []verify.Case{{Name: "random", Inputs: inputs}}
	vr, err := verify.Models(&verify.Model{Name: "before", Graph: before}, &verify.Model{Name: "after", Graph: after}, cases,
		verify.Options{Tolerance: verify.Tolerance{ATol: verify.DefaultATol, RTol: verify.DefaultRTol}, PerLayer: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Build(Input{
		Title:  "compressed digits CNN",
		Before: &Model{Role: "before", Name: "model.onnx", Graph: before},
		After:  &Model{Role: "after", Name: "compressed.onnx", Graph: after},
		Verify: vr, Inputs: inputs, InputsName: "random inputs", Runs: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.notes) > 0 {
		t.Errorf("notes: %q", r.notes)
	}
	var keys []string
	for _, p := range r.pairs {
		keys = append(keys, p.key)
		if p.before == nil || p.after == nil {
			t.Errorf("layer %q is not paired: %+v", p.key, p)
		}
	}
	if want := []string{"/c1/Conv", "/c2/Conv", "/c3/Conv", "/fc/Gemm"}; !slices.Equal(keys, want) {
		t.Fatalf("layers %q, want %q", keys, want)
	}

	for _, tc := range []struct {
		key, stored string
		want        []float32
	}{{"/c2/Conv", "int8", wantConv2}, {"/fc/Gemm", "uint8", wantFC}} {
		l := pairByKey(t, r, tc.key).after
		if !l.dequantized || l.stored != tc.stored || l.weight == "" {
			t.Errorf("%s: stored %s, dequantized %v, weight %q; want %s dequantized", tc.key, l.stored, l.dequantized, l.weight, tc.stored)
		}
		// (q − zero point) fits float32 exactly, so its product with the
		// scale rounds once, in the runtime as here: equality is exact.
		if !slices.Equal(l.values, tc.want) {
			t.Errorf("%s: dequantized values differ from (q − zero point) · scale", tc.key)
		}
	}
	c3 := pairByKey(t, r, "/c3/Conv")
	if c3.before.zeros != 0 || c3.after.zeros != pruned || c3.after.params != 2*pruned || c3.after.sparsity() != 0.5 {
		t.Errorf("/c3/Conv zeros %d → %d of %d; want 0 → %d", c3.before.zeros, c3.after.zeros, c3.after.params, pruned)
	}
	if n, _, ok := c3.changed(); !ok || n != pruned {
		t.Errorf("/c3/Conv: %d weights changed (comparable %v), want %d", n, ok, pruned)
	}
	if n, _, ok := pairByKey(t, r, "/c1/Conv").changed(); !ok || n != 0 {
		t.Errorf("/c1/Conv: %d weights changed (comparable %v), want none", n, ok)
	}
	for _, m := range r.models {
		if m.latency.err != nil || m.latency.runs != 3 || m.latency.median <= 0 {
			t.Errorf("%s: latency %+v", m.Role, m.latency)
		}
	}

	doc := writeAndCheck(t, r)
	first := reporttest.All(reporttest.ByID(doc, SectionLayerError), "tr", "outside", "first")
	if len(first) != 1 || !strings.Contains(reporttest.Text(first[0]), "/c2/Conv_output_0") {
		t.Errorf("first layer outside the tolerance: %d rows, want /c2/Conv_output_0's", len(first))
	}
	captions := map[string]string{}
	for _, fc := range reporttest.All(reporttest.ByID(doc, SectionWeights), "figcaption") {
		text := reporttest.Text(fc)
		captions[strings.Fields(text)[0]] = text
	}
	for key, want := range map[string]string{
		"/c2/Conv": "float32 → int8, dequantized",
		"/c3/Conv": "zeros 0 (0.0%) → 9,216 (50.0%); 9,216 changed",
		"/fc/Gemm": "float32 → uint8, dequantized",
		"/c1/Conv": "unchanged",
	} {
		if !strings.Contains(captions[key], want) {
			t.Errorf("caption of %s is %q; want it to say %q", key, captions[key], want)
		}
	}
}

// writeAndCheck writes r to a file, checks the page and returns it.
func writeAndCheck(t *testing.T, r *Report) *html.Node {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.html")
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := reporttest.Check(page, Sections())
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("the folder holds %d files, want the report alone", len(entries))
	}
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil || buf.Len() == 0 {
		t.Errorf("Write: %d bytes, %v", buf.Len(), err)
	}
	return doc
}

// TestManyLayers reports on a GPT-shaped model with more layers than get
// a histogram: the largest get one, in graph order, and the page says
// how many were left out. One model alone has no change column.
func TestManyLayers(t *testing.T) {
	proto, err := testmodels.GPT(testmodels.GPTConfig{Layers: 5, DModel: 16, Vocab: 48, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := graph.FromProto(proto)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Build(Input{Title: "gpt", After: &Model{Role: "model", Name: "gpt.onnx", Graph: m}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.pairs) <= MaxHistograms {
		t.Fatalf("%d layers; the test needs more than %d", len(r.pairs), MaxHistograms)
	}
	if len(r.histograms) != MaxHistograms {
		t.Fatalf("%d histograms, want %d", len(r.histograms), MaxHistograms)
	}
	smallestShown := math.MaxInt
	for i, p := range r.histograms {
		smallestShown = min(smallestShown, p.params())
		if i > 0 && p.order <= r.histograms[i-1].order {
			t.Errorf("histograms out of graph order at %q", p.key)
		}
	}
	for _, p := range r.pairs {
		shown := slices.Contains(r.histograms, p)
		if !shown && p.params() > smallestShown {
			t.Errorf("layer %q (%d weights) has no histogram; one of %d has", p.key, p.params(), smallestShown)
		}
		if !shown && p.after.values != nil {
			t.Errorf("layer %q keeps its values without a histogram", p.key)
		}
	}

	doc := writeAndCheck(t, r)
	if figures := reporttest.All(reporttest.ByID(doc, SectionWeights), "figure"); len(figures) != MaxHistograms {
		t.Errorf("%d figures, want %d", len(figures), MaxHistograms)
	}
	if text := reporttest.Text(reporttest.ByID(doc, SectionWeights)); !strings.Contains(text, "The 24 largest of") {
		t.Errorf("the weights section does not say it is capped: %q", text[:200])
	}
	if text := reporttest.Text(reporttest.ByID(doc, SectionSummary)); strings.Contains(text, "change") || strings.Contains(text, "latency") {
		t.Errorf("one model without inputs: summary %q", text)
	}
}

// TestNoModel refuses a report on nothing.
func TestNoModel(t *testing.T) {
	if _, err := Build(Input{Title: "nothing"}); err == nil {
		t.Error("Build without models succeeded")
	}
	if _, err := Build(Input{Title: "no graph", After: &Model{Role: "after", Name: "x.onnx"}}); err == nil {
		t.Error("Build with a model without a graph succeeded")
	}
}
