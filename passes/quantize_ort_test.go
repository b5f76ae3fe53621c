//go:build cgo

package passes

import (
	"os"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/internal/testmodels"
	"onnxopt/onnx"
	"onnxopt/runtime"
	"onnxopt/runtime/ort"
)

// ortAccuracy runs m on the digits test samples in ONNX Runtime, which
// fuses the QDQ pairs into integer kernels, and returns the accuracy and
// the logits.
func (d digits) ortAccuracy(t *testing.T, m *graph.Model) (float64, []float32) {
	t.Helper()
	b, err := proto.Marshal(m.ToProto())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ort.OpenBytes(b, ort.Options{})
	if err != nil {
		t.Fatalf("ONNX Runtime does not load the model: %v", err)
	}
	defer s.Close()
	shape := make([]int64, len(d.test.Shape))
	for i, n := range d.test.Shape {
		shape[i] = int64(n)
	}
	out, err := s.Run(map[string]*ort.Tensor{m.Graph.Inputs[0].Name: {DType: int32(onnx.TensorProto_FLOAT), Shape: shape, Data: d.test.Data}})
	if err != nil {
		t.Fatal(err)
	}
	logits := out[m.Graph.Outputs[0].Name].Data.([]float32)
	return accuracyOf(logits, d.labels), logits
}

// needORT skips the test when the ONNX Runtime library is not installed,
// except under CI, where it fails.
func needORT(t *testing.T) {
	t.Helper()
	if _, err := ort.LibraryPath(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("ONNX Runtime missing, skipping: %v", err)
	}
}

// TestQuantizeDigitsORT quantizes the digits models as
// TestQuantizeStaticDigits does and checks that ONNX Runtime loads them and
// loses no more accuracy than onnxopt's runtime allows.
func TestQuantizeDigitsORT(t *testing.T) {
	needORT(t)
	for _, c := range digitsCases {
		for _, mode := range []string{"static per channel", "static per tensor", "weight per channel", "static int32 bias", "static every tensor"} {
			d := loadDigits(t, c.dir, c.anchor)
			fp32, _ := d.ortAccuracy(t, d.model)
			var m *graph.Model
			switch mode {
			case "weight per channel":
				p := newQuantizeWeight().(*weightQuantization)
				p.PerChannel = true
				_, m = applyQuant(t, d.model, p, nil)
			case "static int32 bias":
				m, _ = quantizeDigits(t, d, func(p *staticQuantization) { p.PerChannel, p.Int32Bias = true, true })
			case "static every tensor":
				m, _ = quantizeDigits(t, d, func(p *staticQuantization) {
					p.PerChannel, p.Int32Bias, p.OpTypes = true, true, append(p.OpTypes, digitsOtherOps...)
				})
			default:
				m, _ = quantizeDigits(t, d, func(p *staticQuantization) { p.PerChannel = mode == "static per channel" })
			}
			int8Acc, logits := d.ortAccuracy(t, m)
			ours := run(t, m, map[string]*runtime.Tensor{m.Graph.Inputs[0].Name: d.test})[m.Graph.Outputs[0].Name]
			oursT, _ := runtime.FromSlice(logits, ours.Shape...)
			maxAbs, _, _ := runtime.Compare(oursT, ours, 0, 0)
			t.Logf("%s %s: ONNX Runtime accuracy %.4f (fp32 %.4f); logits differ from onnxopt's runtime by up to %.3g", c.dir, mode, int8Acc, fp32, maxAbs)
			if int8Acc < fp32-maxAccuracyLoss {
				t.Errorf("%s %s: int8 accuracy in ONNX Runtime %.4f, fp32 %.4f: lost more than %.1f points", c.dir, mode, int8Acc, fp32, 100*maxAccuracyLoss)
			}
		}
	}
}

// TestQuantizeInt4ORT quantizes the digits MLP and a small GPT (opset 17,
// raised to 21) to int4 blocks of 32 and checks that ONNX Runtime 1.30
// loads them and computes what onnxopt's runtime does. For the MLP's Gemm
// layers both dequantize the same integers exactly and differ only in the
// order of float sums. ONNX Runtime fuses the GPT's DequantizeLinear and
// MatMul pairs into MatMulNBits, which at its default accuracy level (4)
// quantizes the activations to int8 a block at a time: there its logits
// may differ from onnxopt's by a fifth of the int4 model's own difference
// from the float one, and no more.
func TestQuantizeInt4ORT(t *testing.T) {
	needORT(t)
	gpt, err := testmodels.GPT(testmodels.GPTConfig{Layers: 2, DModel: 128, Vocab: 256, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	gptModel, err := graph.FromProto(gpt)
	if err != nil {
		t.Fatal(err)
	}
	d := loadDigits(t, "digits_mlp", "mlp")
	for _, tc := range []struct {
		name            string
		model           *graph.Model
		inputs          func(g *graph.Graph) map[string]*runtime.Tensor
		int8Activations bool // ONNX Runtime quantizes the activations
	}{
		{"digits_mlp", d.model, func(g *graph.Graph) map[string]*runtime.Tensor {
			return map[string]*runtime.Tensor{g.Inputs[0].Name: d.test}
		}, false},
		{"gpt", gptModel, func(g *graph.Graph) map[string]*runtime.Tensor {
			in, err := runtime.RandomInputs(g, 3, 0, 256, map[string]int64{"batch": 2, "seq": 7})
			if err != nil {
				t.Fatal(err)
			}
			return in
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inputs := tc.inputs(tc.model.Graph)
			name := tc.model.Graph.Outputs[0].Name
			float := run(t, tc.model, inputs)[name]
			res, m := applyQuant(t, tc.model, newQuantizeInt4(), &Env{})
			want := run(t, m, inputs)[name]
			b, err := proto.Marshal(m.ToProto())
			if err != nil {
				t.Fatal(err)
			}
			s, err := ort.OpenBytes(b, ort.Options{})
			if err != nil {
				t.Fatalf("ONNX Runtime does not load the int4 model: %v", err)
			}
			defer s.Close()
			feeds := map[string]*ort.Tensor{}
			for name, in := range inputs {
				shape := make([]int64, len(in.Shape))
				for i, n := range in.Shape {
					shape[i] = int64(n)
				}
				feeds[name] = &ort.Tensor{DType: int32(in.DType), Shape: shape, Data: in.Data}
			}
			out, err := s.Run(feeds)
			if err != nil {
				t.Fatal(err)
			}
			got, err := runtime.FromSlice(out[name].Data, want.Shape...)
			if err != nil {
				t.Fatal(err)
			}
			int4Error, _, _ := runtime.Compare(want, float, 0, 0)
			// Float sums of up to 512 products, in different orders.
			rtol, atol := 1e-4, 1e-4
			if tc.int8Activations {
				rtol, atol = 0, int4Error/5
			}
			maxAbs, _, ok := runtime.Compare(got, want, rtol, atol)
			t.Logf("%s: %d weights in int4, %.3g from float; ONNX Runtime and onnxopt's runtime differ by up to %.3g", tc.name, res.Changes, int4Error, maxAbs)
			if !ok {
				t.Errorf("ONNX Runtime's %s differs from onnxopt's runtime by up to %g (rtol %g, atol %g)", name, maxAbs, rtol, atol)
			}
		})
	}
}
