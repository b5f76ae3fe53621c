package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"onnxopt/onnx"
	"onnxopt/report"
	"onnxopt/report/reporttest"
)

// The bar colours of the report's charts (report/plots.go).
var (
	barBefore = color.RGBA{0xb8, 0xbc, 0xc4, 0xff}
	barAfter  = color.RGBA{0x1f, 0x5f, 0xbf, 0xff}
)

// chartImage decodes the one PNG chart of a report section.
func chartImage(t *testing.T, section *html.Node) image.Image {
	t.Helper()
	imgs := reporttest.All(section, "img")
	if len(imgs) != 1 {
		t.Fatalf("%d images in section %q, want 1", len(imgs), reporttest.Attr(section, "id"))
	}
	_, data, _ := strings.Cut(reporttest.Attr(imgs[0], "src"), ",")
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// barLengths measures, top to bottom, the horizontal bars of colour c in
// img: a bar is a run of pixel rows holding that colour, its length the
// most pixels of it in one of them.
func barLengths(img image.Image, c color.Color) []int {
	r0, g0, b0, a0 := c.RGBA()
	var bars []int
	inBar := false
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		n := 0
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			if r, g, b, a := img.At(x, y).RGBA(); r == r0 && g == g0 && b == b0 && a == a0 {
				n++
			}
		}
		switch {
		case n > 0 && !inBar:
			bars = append(bars, n)
		case n > 0:
			bars[len(bars)-1] = max(bars[len(bars)-1], n)
		}
		inBar = n > 0
	}
	return bars
}

// TestPruneReport prunes the digits CNN globally, so that its layers end
// up with different sparsities, with --report: every layer's histogram
// caption counts the zeros the JSON report counts, the sparsity chart
// draws one bar per layer for the pruned model, none for the original,
// each as long as the layer's sparsity, and the per-layer comparison
// (infinite tolerance) passes but finds the values changed.
func TestPruneReport(t *testing.T) {
	dir := t.TempDir()
	out, page := filepath.Join(dir, "pruned.onnx"), filepath.Join(dir, "report.html")
	code, stdout, stderr := onnxopt("prune", digitsCNN, "-o", out, "--sparsity", "0.6", "--global",
		"--calibration", digitsCNNCalibration, "--report", page, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r pruneReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	doc := readReport(t, page, "pruned.onnx", "report.html")

	if v := reporttest.All(reporttest.ByID(doc, report.SectionSummary), "p", "verdict", "pass"); len(v) != 1 {
		t.Errorf("%d passing verdicts in the summary, want 1", len(v))
	}
	var rows []string
	for _, tr := range reporttest.All(reporttest.ByID(doc, report.SectionPasses), "tr")[1:] {
		rows = append(rows, strings.Fields(reporttest.Text(tr))[0])
	}
	if want := []string{"prune-magnitude", "total"}; fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("pass table rows %q, want %q", rows, want)
	}

	caps := captions(doc)
	if len(caps) != len(r.Weights) {
		t.Errorf("%d histograms, want one for each of the %d weights", len(caps), len(r.Weights))
	}
	for _, w := range r.Weights {
		zeroed := w.Params - w.NonZero
		want := fmt.Sprintf("zeros 0 (0.0%%) → %s (%.1f%%); %s changed", thousands(zeroed), 100*w.Sparsity, thousands(zeroed))
		if !strings.Contains(caps[w.Layer], want) {
			t.Errorf("caption of %s: %q, want %q", w.Layer, caps[w.Layer], want)
		}
	}

	chart := chartImage(t, reporttest.ByID(doc, report.SectionSparsity))
	if before := barLengths(chart, barBefore); len(before) != 0 {
		t.Errorf("bars of the original model %v: it has no zeros", before)
	}
	bars := barLengths(chart, barAfter)
	if len(bars) != len(r.Weights) {
		t.Fatalf("%d bars of the pruned model, want %d", len(bars), len(r.Weights))
	}
	// Bars start at 0% and scale linearly: each is as long, to within the
	// two pixels antialiasing blurs at its ends, as its sparsity over the
	// densest layer's makes it relative to the longest bar.
	longest, densest := 0, 0.0
	for i, w := range r.Weights {
		longest, densest = max(longest, bars[i]), max(densest, w.Sparsity)
	}
	for i, w := range r.Weights {
		if want := w.Sparsity / densest * float64(longest); math.Abs(float64(bars[i])-want) > 2 {
			t.Errorf("bar of %s (sparsity %.3f): %d pixels, want %.1f", w.Layer, w.Sparsity, bars[i], want)
		}
	}

	layers := reporttest.ByID(doc, report.SectionLayerError)
	values := len(reporttest.All(layers, "tr")) - 1
	changed := values - len(reporttest.All(layers, "tr", "identical"))
	if values == 0 || changed == 0 || len(reporttest.All(layers, "tr", "outside")) != 0 {
		t.Errorf("per-layer section: %d values, %d changed, want changed values all within the infinite tolerance", values, changed)
	}
	verify := reporttest.Text(reporttest.ByID(doc, report.SectionVerify))
	if !strings.Contains(verify, "atol inf") || !strings.Contains(verify, "calibration.pb") {
		t.Errorf("verification section %q: want an infinite tolerance and the calibration samples", verify)
	}
}

// TestQuantizeReport quantizes the digits CNN statically, per channel,
// with --report: each layer's histogram shows the float weights against
// the int8 ones dequantized, and its caption counts the weights changed,
// and the largest change, that the two model files give when the int8
// weights are dequantized as ONNX defines it; the per-layer comparison
// (infinite tolerance) passes with values changed.
func TestQuantizeReport(t *testing.T) {
	dir := t.TempDir()
	out, page := filepath.Join(dir, "int8.onnx"), filepath.Join(dir, "report.html")
	code, _, stderr := onnxopt("quantize", digitsCNN, "-o", out, "--calibration", digitsCNNCalibration, "--per-channel", "--report", page)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc := readReport(t, page, "int8.onnx", "report.html")
	if v := reporttest.All(reporttest.ByID(doc, report.SectionSummary), "p", "verdict", "pass"); len(v) != 1 {
		t.Errorf("%d passing verdicts in the summary, want 1", len(v))
	}

	caps := captions(doc)
	original, quantized := modelTensors(readProto(t, digitsCNN)), modelTensors(readProto(t, out))
	layers := 0
	for _, n := range readProto(t, out).Graph.Node {
		if n.GetOpType() != "Conv" && n.GetOpType() != "Gemm" {
			continue
		}
		layers++
		dq := quantized.producers[n.Input[1]]
		if dq == nil || dq.GetOpType() != "DequantizeLinear" || len(dq.Input) != 3 {
			t.Fatalf("%s reads no weight quantized with a zero point", n.GetName())
		}
		w := original.floats(t, original.producers[n.Output[0]].Input[1])
		q, scale, zero := quantized.floats(t, dq.Input[0]), quantized.floats(t, dq.Input[1]), quantized.floats(t, dq.Input[2])
		dims := quantized.inits[dq.Input[0]].GetDims()
		axis := 1 // DequantizeLinear's default
		for _, a := range dq.GetAttribute() {
			if a.GetName() == "axis" {
				axis = int(a.GetI())
			}
		}
		if int64(len(scale)) != dims[axis] {
			t.Fatalf("%s: %d scales for a weight of shape %v along axis %d, want one per channel", dq.GetName(), len(scale), dims, axis)
		}
		inner := 1
		for _, d := range dims[axis+1:] {
			inner *= int(d)
		}
		// y = (x − zero point) · scale, in float32.
		changed, largest := 0, 0.0
		for i, x := range q {
			c := i / inner % len(scale)
			y := float32(x-zero[c]) * float32(scale[c])
			if y != float32(w[i]) {
				changed++
				largest = max(largest, math.Abs(float64(y)-w[i]))
			}
		}
		want := fmt.Sprintf("%d weights, float32 → int8, dequantized zeros", len(w))
		if !strings.Contains(strings.ReplaceAll(caps[n.GetName()], ",", ""), strings.ReplaceAll(want, ",", "")) {
			t.Errorf("caption of %s: %q, want %q", n.GetName(), caps[n.GetName()], want)
		}
		want = fmt.Sprintf("; %s changed, by up to %s", thousands(int64(changed)), num(largest))
		if changed == 0 || !strings.HasSuffix(caps[n.GetName()], want) {
			t.Errorf("caption of %s: %q, want %q", n.GetName(), caps[n.GetName()], want)
		}
	}
	if layers != 4 || len(caps) != layers {
		t.Errorf("%d histograms, %d layers in the model, want 4", len(caps), layers)
	}

	section := reporttest.ByID(doc, report.SectionLayerError)
	values := len(reporttest.All(section, "tr")) - 1
	changed := values - len(reporttest.All(section, "tr", "identical"))
	if values == 0 || changed == 0 || len(reporttest.All(section, "tr", "outside")) != 0 {
		t.Errorf("per-layer section: %d values, %d changed, want changed values all within the infinite tolerance", values, changed)
	}
	verify := reporttest.Text(reporttest.ByID(doc, report.SectionVerify))
	if !strings.Contains(verify, "atol inf") || !strings.Contains(verify, "calibration.pb") {
		t.Errorf("verification section %q: want an infinite tolerance and the calibration samples", verify)
	}
}

// protoTensors indexes a model read straight from its protobuf: its
// initializers by name, and the node producing each value.
type protoTensors struct {
	inits     map[string]*onnx.TensorProto
	producers map[string]*onnx.NodeProto
}

func modelTensors(m *onnx.ModelProto) protoTensors {
	p := protoTensors{inits: map[string]*onnx.TensorProto{}, producers: map[string]*onnx.NodeProto{}}
	for _, init := range m.Graph.Initializer {
		p.inits[init.GetName()] = init
	}
	for _, n := range m.Graph.Node {
		for _, o := range n.Output {
			p.producers[o] = n
		}
	}
	return p
}

// floats decodes the initializer called name.
func (p protoTensors) floats(t *testing.T, name string) []float64 {
	t.Helper()
	init := p.inits[name]
	if init == nil {
		t.Fatalf("no initializer %q", name)
	}
	vals, err := onnx.Float64s(init)
	if err != nil {
		t.Fatal(err)
	}
	return vals
}
