//go:build cgo

package passes

import (
	"os"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
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
