package passes

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// calibrationOf makes calibration batches of the given sizes from random
// inputs in [lo, hi).
func calibrationOf(t *testing.T, g *graph.Graph, seed uint64, lo, hi float64, samples, batch int) []map[string]*runtime.Tensor {
	t.Helper()
	in, err := runtime.RandomInputs(g, seed, lo, hi, map[string]int64{"N": int64(samples)})
	if err != nil {
		t.Fatal(err)
	}
	batches, err := CalibrationBatches(g, in, batch)
	if err != nil {
		t.Fatal(err)
	}
	return batches
}

// dynamicInput declares a float input of shape [N, dims...].
func (b *builder) dynamicInput(name string, dims ...int64) *graph.Value {
	v := b.input(name, append([]int64{1}, dims...)...)
	s := append(graph.Shape{{Param: "N"}}, graph.Known(dims...)...)
	v.SetTensorType(onnx.TensorProto_FLOAT, s)
	return v
}

func scalarOf(t *testing.T, v *graph.Value) float64 {
	t.Helper()
	d, err := onnx.Decode(v.Init)
	if err != nil {
		t.Fatal(err)
	}
	switch d := d.(type) {
	case []float32:
		return float64(d[0])
	case []int8:
		return float64(d[0])
	case []uint8:
		return float64(d[0])
	}
	t.Fatalf("%q holds %T", v.Name, d)
	return 0
}

// TestQuantizeStaticMinMax checks the QDQ rewrite of a MatMul on
// calibration data whose range is known, the scale and zero point that
// range gives (by the formulas of the ONNX quantization tools), and that
// the quantized input is within half a step inside the range and
// saturates outside it.
func TestQuantizeStaticMinMax(t *testing.T) {
	for _, symmetric := range []bool{false, true} {
		b := newBuilder(t, 13)
		x := b.dynamicInput("x", 4)
		b.output(b.node("MatMul", "y", x, b.init("W", []int64{4, 2}, 1, -1, 0.5, 0.25, 0, 2, -2, 1)))
		// Samples in [-1, 3), with the ends themselves present.
		batches := calibrationOf(t, b.g, 3, -1, 3, 64, 16)
		batches[0]["x"].Data.([]float32)[0] = -1
		batches[3]["x"].Data.([]float32)[5] = 3
		p := newQuantizeStatic().(*staticQuantization)
		p.Symmetric = symmetric
		res, m := applyQuant(t, b.m, p, &Env{Calibration: batches})
		if res.Changes != 2 || opTypes(m.Graph) != "DequantizeLinear QuantizeLinear DequantizeLinear MatMul" {
			t.Fatalf("%d changes, nodes %q", res.Changes, opTypes(m.Graph))
		}
		mm := m.Graph.Nodes[3]
		dq := mm.Inputs[0].Producer
		q := dq.Inputs[0].Producer
		if q.OpType != "QuantizeLinear" || q.Inputs[0].Name != "x" || mm.Inputs[1].Producer.OpType != "DequantizeLinear" {
			t.Fatalf("MatMul reads %q and %q", mm.Inputs[0].Name, mm.Inputs[1].Name)
		}
		scale, zp := scalarOf(t, q.Inputs[1]), scalarOf(t, q.Inputs[2])
		wantScale, wantZP := float64(float32(4.0/255)), 64.0 // 1/(4/255) = 63.75
		if symmetric {
			wantScale, wantZP = float64(float32(3.0/127)), 0
		}
		if scale != wantScale || zp != wantZP || (q.Inputs[2].ElemType() == onnx.TensorProto_INT8) != symmetric {
			t.Errorf("symmetric %v: scale %g zero point %g (%v), want %g and %g", symmetric, scale, zp, q.Inputs[2].ElemType(), wantScale, wantZP)
		}
		xs := []float32{-1, 0, 0.3, 3, -5, 10, 2.99, -0.01}
		in, _ := runtime.FromSlice(xs, 2, 4)
		got := fetch(t, m, map[string]*runtime.Tensor{"x": in}, dq.Outputs[0].Name)[dq.Outputs[0].Name].Data.([]float32)
		// The scale maps ±3 to ±127 when symmetric, and QuantizeLinear
		// saturates to int8's -128.
		lo, hi := -1.0, 3.0
		if symmetric {
			lo = -128 * scale
		}
		for i, x := range xs {
			clamped := min(max(float64(x), lo), hi)
			if math.Abs(float64(got[i])-clamped) > scale/2*(1+1e-6) {
				t.Errorf("symmetric %v: x = %g quantizes to %g, want %g within half a step (%g)", symmetric, x, got[i], clamped, scale/2)
			}
		}
		if got[1] != 0 {
			t.Errorf("zero quantizes to %g", got[1])
		}
	}
}

// TestQuantizeStaticLayers checks which layers and inputs are quantized:
// every activation a layer of --op-types reads, once per value, weights
// of those layers, nothing of excluded layers or, with --keep-first-last, of
// the first and last layers with weights.
func TestQuantizeStaticLayers(t *testing.T) {
	build := func(t *testing.T) *builder {
		b := newBuilder(t, 13)
		x := b.dynamicInput("x", 4)
		h1 := b.node("Relu", "h1", b.node("Gemm", "g1", x, b.init("W1", []int64{4, 4}, make([]float32, 16)...)))
		h2 := b.node("Gemm", "g2", h1, b.init("W2", []int64{4, 4}, make([]float32, 16)...))
		h3 := b.node("Add", "h3", h2, h1)
		b.output(b.node("Gemm", "g3", h3, b.init("W3", []int64{4, 2}, make([]float32, 8)...)))
		return b
	}
	for _, tc := range []struct {
		name      string
		configure func(p *staticQuantization)
		quantized []string // values read through DequantizeLinear
	}{
		{"default", func(p *staticQuantization) {}, []string{"x", "W1", "h1", "W2", "h3", "W3"}},
		{"keep first and last", func(p *staticQuantization) { p.KeepFirstLast = true }, []string{"h1", "W2"}},
		{"exclude by name", func(p *staticQuantization) { p.Exclude = []string{"Gemm_g2"} }, []string{"x", "W1", "h3", "W3"}},
		{"exclude by op type", func(p *staticQuantization) { p.Exclude = []string{"Gemm"} }, nil},
		{"add too", func(p *staticQuantization) { p.OpTypes = append(p.OpTypes, "Add") }, []string{"x", "W1", "h1", "W2", "g2", "h3", "W3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := build(t)
			p := newQuantizeStatic().(*staticQuantization)
			tc.configure(p)
			env := &Env{Calibration: calibrationOf(t, b.g, 1, -1, 1, 8, 4)}
			_, m := applyQuant(t, b.m, p, env)
			var got []string
			for _, n := range m.Graph.Nodes {
				if n.OpType == "QuantizeLinear" {
					got = append(got, n.Inputs[0].Name)
				}
				if n.OpType == "DequantizeLinear" && n.Inputs[0].Producer == nil {
					got = append(got, strings.TrimSuffix(n.Inputs[0].Name, "_quantized"))
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.quantized))
			if !slices.Equal(got, want) {
				t.Errorf("quantized %q, want %q", got, want)
			}
			// h1 feeds Relu's reader and the Add: only the layers read
			// it through the pair.
			for _, n := range m.Graph.Nodes {
				for _, v := range n.Inputs {
					if v != nil && strings.HasSuffix(v.Name, "_dequantized") && !slices.Contains(p.OpTypes, n.OpType) && n.OpType != "QuantizeLinear" {
						t.Errorf("%s reads %q", n, v.Name)
					}
				}
			}
		})
	}
}

// TestQuantizeStaticErrors checks what the pass refuses.
func TestQuantizeStaticErrors(t *testing.T) {
	b := newBuilder(t, 13)
	x := b.dynamicInput("x", 2)
	b.output(b.node("MatMul", "y", b.node("Log", "l", x), b.init("W", []int64{2, 2}, 1, 2, 3, 4)))
	for _, tc := range []struct {
		configure func(p *staticQuantization)
		env       *Env
		want      string
	}{
		{func(p *staticQuantization) {}, &Env{}, "no calibration data"},
		{func(p *staticQuantization) { p.Method = "mse" }, &Env{}, `unknown calibration method "mse"`},
		{func(p *staticQuantization) { p.Method = "percentile"; p.Percentile = 101 }, &Env{}, "percentile 101 is not in (50, 100]"},
		{func(p *staticQuantization) { p.Method = "entropy"; p.Bins = 100 }, &Env{}, "at least 256 histogram bins"},
		// Log of negative samples is NaN.
		{func(p *staticQuantization) {}, &Env{Calibration: calibrationOf(t, b.g, 1, -1, 1, 4, 4)}, `value "l" holds NaN`},
	} {
		p := newQuantizeStatic().(*staticQuantization)
		tc.configure(p)
		if _, err := p.Run(b.m, tc.env); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}
}

// The digits models: an MLP and a CNN trained in PyTorch on 8×8 digits,
// with 256 training samples for calibration, 397 held-out samples with
// their labels, and PyTorch's own accuracies.
const digitsModels = "../testdata/models"

type digits struct {
	model       *graph.Model
	calibration *runtime.Tensor
	test        *runtime.Tensor
	labels      []int64
	anchor      torchAnchor
}

type torchAnchor struct {
	FP32         float64 `json:"fp32_acc"`
	StaticInt8PC float64 `json:"torch_static_int8_perchannel_acc"`
}

func loadDigits(t testing.TB, name, anchorKey string) digits {
	t.Helper()
	dir := filepath.Join(digitsModels, name)
	m, err := graph.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	d := digits{model: m}
	if d.calibration, err = runtime.ReadTensorFile(filepath.Join(dir, "calibration.pb")); err != nil {
		t.Fatal(err)
	}
	if d.test, err = runtime.ReadTensorFile(filepath.Join(dir, "test_data_set_0", "input_0.pb")); err != nil {
		t.Fatal(err)
	}
	labels, err := runtime.ReadTensorFile(filepath.Join(dir, "labels.pb"))
	if err != nil {
		t.Fatal(err)
	}
	d.labels = labels.Data.([]int64)
	raw, err := os.ReadFile(filepath.Join(digitsModels, "torch_anchors.json"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]torchAnchor{}
	if err := json.Unmarshal(raw, &anchors); err != nil {
		t.Fatal(err)
	}
	d.anchor = anchors[anchorKey]
	return d
}

// accuracyOf is the fraction of rows of logits [N, C] whose argmax is the
// label.
func accuracyOf(logits []float32, labels []int64) float64 {
	classes := len(logits) / len(labels)
	correct := 0
	for i, label := range labels {
		row := logits[i*classes : (i+1)*classes]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if int64(best) == label {
			correct++
		}
	}
	return float64(correct) / float64(len(labels))
}

// accuracy runs m on the test samples in onnxopt's runtime.
func (d digits) accuracy(t *testing.T, m *graph.Model) float64 {
	t.Helper()
	in := m.Graph.Inputs[0].Name
	out := run(t, m, map[string]*runtime.Tensor{in: d.test})
	return accuracyOf(out[m.Graph.Outputs[0].Name].Data.([]float32), d.labels)
}

// maxAccuracyLoss is how much accuracy int8 may lose against fp32: 0.3
// points, less than two of the 397 test samples.
const maxAccuracyLoss = 0.003

var digitsCases = []struct{ dir, anchor string }{{"digits_mlp", "mlp"}, {"digits_cnn", "cnn"}}

// quantizeDigits quantizes a digits model statically, calibrated on its
// 256 training samples in batches of 32.
func quantizeDigits(t *testing.T, d digits, configure func(p *staticQuantization)) (*graph.Model, Result) {
	t.Helper()
	batches, err := CalibrationBatches(d.model.Graph, map[string]*runtime.Tensor{d.model.Graph.Inputs[0].Name: d.calibration}, 32)
	if err != nil {
		t.Fatal(err)
	}
	p := newQuantizeStatic().(*staticQuantization)
	configure(p)
	res, m := applyQuant(t, d.model, p, &Env{Calibration: batches})
	return m, res
}

// TestQuantizeStaticDigits quantizes the digits models to int8 per
// channel and per tensor, with each calibration method, and checks the
// accuracy on the held-out samples in onnxopt's runtime against the fp32
// model's, and the size of the parameters. (quantize_ort_test.go runs
// such models in ONNX Runtime.)
func TestQuantizeStaticDigits(t *testing.T) {
	for _, c := range digitsCases {
		for _, tc := range []struct {
			name      string
			configure func(p *staticQuantization)
		}{
			{"minmax per channel", func(p *staticQuantization) { p.PerChannel = true }},
			{"minmax per tensor", func(p *staticQuantization) {}},
			{"entropy per channel", func(p *staticQuantization) { p.PerChannel = true; p.Method = "entropy" }},
			{"percentile per channel symmetric", func(p *staticQuantization) {
				p.PerChannel, p.Method, p.Symmetric = true, "percentile", true
			}},
			{"minmax per channel int32 bias", func(p *staticQuantization) { p.PerChannel, p.Int32Bias = true, true }},
			{"minmax per channel every tensor", func(p *staticQuantization) { p.PerChannel, p.OpTypes = true, append(p.OpTypes, digitsOtherOps...) }},
		} {
			d := loadDigits(t, c.dir, c.anchor)
			fp32 := d.accuracy(t, d.model)
			if fp32 != d.anchor.FP32 {
				t.Fatalf("%s: fp32 accuracy %v, PyTorch's %v", c.dir, fp32, d.anchor.FP32)
			}
			before := d.model.Stats().Bytes
			m, res := quantizeDigits(t, d, tc.configure)
			after := m.Stats().Bytes
			int8Acc := d.accuracy(t, m)
			t.Logf("%s %s: accuracy %.4f (fp32 %.4f, PyTorch int8 per channel %.4f); parameters %d → %d bytes (%.2fx); %s",
				c.dir, tc.name, int8Acc, fp32, d.anchor.StaticInt8PC, before, after, float64(before)/float64(after), strings.Join(res.Notes, "; "))
			if int8Acc < fp32-maxAccuracyLoss {
				t.Errorf("%s %s: int8 accuracy %.4f, fp32 %.4f: lost more than %.1f points", c.dir, tc.name, int8Acc, fp32, 100*maxAccuracyLoss)
			}
			if !strings.Contains(tc.name, "int32 bias") {
				checkDigitsBytes(t, c.dir, !strings.Contains(tc.name, "per tensor"), m, before, after)
			}
		}
	}
}

// digitsOtherOps are the digits models' operators besides the layers:
// quantizing their inputs too puts a QuantizeLinear after every layer, so
// that ONNX Runtime runs every layer in integers (Add has no input here).
var digitsOtherOps = []string{"MaxPool", "GlobalAveragePool", "Flatten", "Relu"}

// checkDigitsBytes checks the parameter bytes of a quantized digits model.
// Every weight is int8; biases stay float32, and each weight has float32
// scales and int8 zero points, one per channel or one in all, and each
// activation one of each. Per tensor that is at least 3.9 times smaller
// than fp32; per channel the MLP's 394 channels cost 1,970 bytes of
// scales and zero points, which leaves it 3.8 times smaller.
func checkDigitsBytes(t *testing.T, name string, perChannel bool, m *graph.Model, before, after int64) {
	t.Helper()
	var weights, biases, channels, scalars int64
	for _, v := range m.Graph.Initializers {
		n, _ := onnx.NumElements(v.Init.GetDims())
		switch {
		case strings.HasSuffix(v.Name, "_quantized"):
			if v.ElemType() != onnx.TensorProto_INT8 {
				t.Errorf("%s: weight %q is %v", name, v.Name, v.ElemType())
			}
			weights += n
		case v.ElemType() == onnx.TensorProto_FLOAT && !strings.HasSuffix(v.Name, "_scale"):
			biases += n
		case strings.HasSuffix(v.Name, "_scale") && len(v.Init.GetDims()) == 1:
			channels += n
		case strings.HasSuffix(v.Name, "_scale"):
			scalars++
		}
	}
	if want := weights + 4*biases + 5*channels + 5*scalars; after != want {
		t.Errorf("%s: %d bytes of parameters, want %d (weights %d, biases %d, channels %d, scalar scales %d)",
			name, after, want, weights, biases, channels, scalars)
	}
	if 4*weights+4*biases != before {
		t.Errorf("%s: %d int8 weights and %d biases do not account for %d fp32 bytes", name, weights, biases, before)
	}
	if ratio := float64(before) / float64(after); !perChannel && ratio < 3.9 {
		t.Errorf("%s per tensor: parameters %.3fx smaller, want at least 3.9x", name, ratio)
	}
}

// TestQuantizeStaticInt32Bias checks --int32-bias on a Conv and a Gemm: each
// bias becomes int32 behind a DequantizeLinear whose scale is the input's
// scale times the weight's, per channel or not as the weight's, with no
// zero point, and each dequantized bias is within half a step of the
// float one; a Gemm with beta ≠ 1 keeps its bias float, with a note.
func TestQuantizeStaticInt32Bias(t *testing.T) {
	for _, perChannel := range []bool{false, true} {
		b := newBuilder(t, 13)
		x := b.dynamicInput("x", 2, 3, 3)
		conv := b.node("Conv", "c", x, b.weights("Wc", 1, -1, 1, 3, 2, 2, 2), b.init("Bc", []int64{3}, 0.5, -0.25, 0.013))
		flat := b.node("Flatten", "f", b.node("Relu", "r", conv))
		g1 := b.node("Gemm", "g1", flat, b.weights("Wg", 2, -1, 1, 12, 4), b.init("Bg", []int64{4}, 1, -2, 0.001, 0))
		g2 := b.node("Gemm", "g2", g1, b.weights("Wh", 3, -1, 1, 4, 2), b.init("Bh", []int64{2}, 1, -1))
		g2.Producer.SetAttr(&onnx.AttributeProto{Name: proto.String("beta"), Type: onnx.AttributeProto_FLOAT.Enum(), F: proto.Float32(0.5)})
		b.output(g2)
		batches := calibrationOf(t, b.g, 4, -1, 1, 16, 8)
		p := newQuantizeStatic().(*staticQuantization)
		p.PerChannel, p.Int32Bias = perChannel, true
		res, m := applyQuant(t, b.m, p, &Env{Calibration: batches})
		if notes := strings.Join(res.Notes, "\n"); !strings.Contains(notes, `bias "Bh" of "Gemm_g2" (Gemm) kept in float: Gemm scales it`) || !strings.Contains(notes, "2 biases stored as int32") {
			t.Errorf("notes:\n%s", notes)
		}
		for _, tc := range []struct {
			layer, bias string
			want        []float32
		}{{"Conv_c", "Bc", []float32{0.5, -0.25, 0.013}}, {"Gemm_g1", "Bg", []float32{1, -2, 0.001, 0}}} {
			var n *graph.Node
			for _, node := range m.Graph.Nodes {
				if node.Name == tc.layer {
					n = node
				}
			}
			dq := n.Input(2).Producer
			if dq == nil || dq.OpType != "DequantizeLinear" || len(dq.Inputs) != 2 || dq.Inputs[0].ElemType() != onnx.TensorProto_INT32 {
				t.Fatalf("per channel %v: %s reads its bias from %v", perChannel, tc.layer, dq)
			}
			xScale := floats(t, n.Input(0).Producer.Inputs[1])[0]
			wScales := floats(t, n.Input(1).Producer.Inputs[1])
			scales := floats(t, dq.Inputs[1])
			if len(scales) != len(wScales) || (len(scales) > 1) != perChannel || (dq.Attr("axis") != nil) != perChannel {
				t.Fatalf("per channel %v: %s: bias scales %v, weight scales %v", perChannel, tc.layer, scales, wScales)
			}
			for i, s := range scales {
				if s != xScale*wScales[i] {
					t.Errorf("%s: bias scale %d is %g, want %g·%g", tc.layer, i, s, xScale, wScales[i])
				}
			}
			got := fetch(t, m, batches[0], dq.Outputs[0].Name)[dq.Outputs[0].Name].Data.([]float32)
			for i, v := range tc.want {
				s := scales[min(i, len(scales)-1)]
				if math.Abs(float64(got[i]-v)) > float64(s)/2*(1+1e-6) {
					t.Errorf("%s: bias %d = %g dequantizes to %g, more than half a step (%g) away", tc.layer, i, v, got[i], s)
				}
			}
		}
		run(t, m, batches[0])
	}
}
