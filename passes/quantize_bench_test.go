package passes

import (
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/internal/rss"
	"onnxopt/internal/suite"
	"onnxopt/internal/testmodels"
	"onnxopt/onnx"
	"onnxopt/runtime"
	"onnxopt/runtime/ort"
)

// BenchmarkCalibrationDigitsCNN times quantize-static on the digits CNN,
// calibrated on its 256 samples in batches of 32 with each method, against
// compiling the float model and running those batches once. Each
// iteration times both, one after the other, so that load from other
// processes falls on both alike; calibrate-ms and run-ms are their wall
// times and calibrate/run their ratio (the target is under 5).
func BenchmarkCalibrationDigitsCNN(b *testing.B) {
	for _, method := range []string{methodMinMax, methodPercentile, methodEntropy} {
		b.Run(method, func(b *testing.B) {
			d := loadDigits(b, "digits_cnn", "cnn")
			batches, err := CalibrationBatches(d.model.Graph, map[string]*runtime.Tensor{"input": d.calibration}, 32)
			if err != nil {
				b.Fatal(err)
			}
			var calibrate, once time.Duration
			for b.Loop() {
				m := cloneModel(b, d.model)
				start := time.Now()
				plan, err := runtime.Compile(m.Graph)
				if err != nil {
					b.Fatal(err)
				}
				for _, batch := range batches {
					if _, err := plan.Run(batch); err != nil {
						b.Fatal(err)
					}
				}
				once += time.Since(start)

				p := newQuantizeStatic().(*staticQuantization)
				p.Method, p.PerChannel = method, true
				start = time.Now()
				if _, err := p.Run(m, &Env{Calibration: batches}); err != nil {
					b.Fatal(err)
				}
				calibrate += time.Since(start)
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / float64(b.N) }
			b.ReportMetric(ms(calibrate), "calibrate-ms/op")
			b.ReportMetric(ms(once), "run-ms/op")
			b.ReportMetric(float64(calibrate)/float64(once), "calibrate/run")
		})
	}
}

// BenchmarkQuantizeWeightGPT400MB loads the GPT-shaped model of 390 MB of
// float32 weights, quantizes its weights to int8 (quantize-weight, per
// tensor and per channel), or those of its MatMuls to int4 blocks
// (quantize-int4), and saves it, as "onnxopt quantize" does. Besides
// the wall time of the three it reports their CPU time, each part's wall
// time, the model's size and the peak resident set of the process during
// the iteration (VmHWM, reset before each, and getrusage's maxrss), also
// as a multiple of the model's size. The target is 1.5 s and 1.5× the
// model.
func BenchmarkQuantizeWeightGPT400MB(b *testing.B) {
	dir := b.TempDir()
	path, size, err := testmodels.WriteGPT(dir, testmodels.GPT400MB())
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, "int8.onnx")
	for _, tc := range []struct {
		name string
		pass func() Pass
	}{
		{"per-tensor", newQuantizeWeight},
		{"per-channel", func() Pass {
			p := newQuantizeWeight().(*weightQuantization)
			p.PerChannel = true
			return p
		}},
		{"int4-blocks-of-32", newQuantizeInt4},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var load, quantize, save, cpu time.Duration
			var hwm, maxRSS int64
			measure := func(f func() error) time.Duration {
				start, err := rss.CPUTime()
				if err != nil {
					b.Fatal(err)
				}
				wall := time.Now()
				if err := f(); err != nil {
					b.Fatal(err)
				}
				d := time.Since(wall)
				end, err := rss.CPUTime()
				if err != nil {
					b.Fatal(err)
				}
				cpu += end - start
				return d
			}
			for b.Loop() {
				b.StopTimer()
				goruntime.GC()
				debug.FreeOSMemory()
				if err := rss.ResetPeak(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				var m *graph.Model
				load += measure(func() (err error) {
					m, err = graph.Load(path)
					return err
				})
				quantize += measure(func() error {
					_, err := tc.pass().Run(m, &Env{})
					return err
				})
				save += measure(func() error { return m.Save(out, onnx.WriteOptions{}) })
				b.StopTimer()
				peak, err := rss.Peak()
				if err != nil {
					b.Fatal(err)
				}
				most, err := rss.MaxRSS()
				if err != nil {
					b.Fatal(err)
				}
				hwm, maxRSS = max(hwm, peak), max(maxRSS, most)
				goruntime.KeepAlive(m)
				b.StartTimer()
			}
			fi, err := os.Stat(out)
			if err != nil {
				b.Fatal(err)
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / float64(b.N) }
			mb := func(n int64) float64 { return float64(n) / 1e6 }
			b.ReportMetric(ms(cpu), "cpu-ms/op")
			b.ReportMetric(ms(load), "load-ms/op")
			b.ReportMetric(ms(quantize), "quantize-ms/op")
			b.ReportMetric(ms(save), "save-ms/op")
			b.ReportMetric(mb(size), "model-MB")
			b.ReportMetric(mb(fi.Size()), "quantized-MB")
			b.ReportMetric(mb(hwm), "peak-RSS-MB")
			b.ReportMetric(float64(hwm)/float64(size), "peak-RSS/model")
			b.ReportMetric(mb(maxRSS), "maxrss-MB")
			b.ReportMetric(float64(maxRSS)/float64(size), "maxrss/model")
		})
	}
}

// BenchmarkORTLatencyQDQ compares, in ONNX Runtime with one thread, the
// latency of models quantized by quantize-static (per channel, minmax)
// with that of their float form: the digits CNN calibrated on its 256
// samples, run on one sample and on its 397 test samples, and ResNet-18
// calibrated on 8 random images in [0, 1), run on one. Both models are
// cleaned by the default pipeline first (ResNet-18's weights reach its
// Conv nodes through Identity). Each iteration runs the float model, then
// the quantized one, so that load from other processes falls on both
// alike: fp32-ms and qdq-ms are their wall times, qdq/fp32 the ratio;
// likewise for QDQ with int32 biases (--int32-bias) and with the inputs
// of Add, MaxPool, GlobalAveragePool and Flatten quantized too. Each
// variant's largest output difference from the float model on the timed
// input is reported too.
func BenchmarkORTLatencyQDQ(b *testing.B) {
	if _, err := ort.LibraryPath(); err != nil {
		b.Skip(err)
	}
	digitsModel := func(b *testing.B) (*graph.Model, []map[string]*runtime.Tensor, map[string]*runtime.Tensor) {
		d := loadDigits(b, "digits_cnn", "cnn")
		batches, err := CalibrationBatches(d.model.Graph, map[string]*runtime.Tensor{"input": d.calibration}, 32)
		if err != nil {
			b.Fatal(err)
		}
		return d.model, batches, map[string]*runtime.Tensor{"input": d.test}
	}
	resnet := func(b *testing.B) (*graph.Model, []map[string]*runtime.Tensor, map[string]*runtime.Tensor) {
		m, err := graph.Load(filepath.Join(suite.SharedModels(b), "perf", "resnet18.onnx"))
		if err != nil {
			b.Fatal(err)
		}
		in, err := runtime.RandomInputs(m.Graph, 1, 0, 1, map[string]int64{"batch": 8})
		if err != nil {
			b.Fatal(err)
		}
		batches, err := CalibrationBatches(m.Graph, in, 8)
		if err != nil {
			b.Fatal(err)
		}
		return m, batches, nil
	}
	for _, tc := range []struct {
		name  string
		model func(b *testing.B) (*graph.Model, []map[string]*runtime.Tensor, map[string]*runtime.Tensor)
		batch int // samples run at once
	}{
		{"digits_cnn/batch-1", digitsModel, 1},
		{"digits_cnn/batch-397", digitsModel, 397},
		{"resnet18/batch-1", resnet, 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m, batches, test := tc.model(b)
			if _, err := Run(m, Steps(Default()), &Env{}, Options{}); err != nil {
				b.Fatal(err)
			}
			fp32 := ortSession(b, m)
			in := ortInput(b, m, test, tc.batch)
			variants := []struct {
				name      string
				configure func(p *staticQuantization)
			}{
				{"qdq", func(p *staticQuantization) {}},
				{"qdq-int32-bias", func(p *staticQuantization) { p.Int32Bias = true }},
				// Quantizing the inputs of Add, the pools and
				// Flatten too puts a QuantizeLinear after every
				// Conv, which lets ONNX Runtime run them all as
				// QLinearConv.
				{"qdq-all", func(p *staticQuantization) {
					p.Int32Bias = true
					p.OpTypes = append(p.OpTypes, "Add", "MaxPool", "GlobalAveragePool", "Flatten")
				}},
			}
			sessions := make([]*ort.Session, len(variants))
			for i, v := range variants {
				q := cloneModel(b, m)
				p := newQuantizeStatic().(*staticQuantization)
				p.PerChannel = true
				v.configure(p)
				if _, err := p.Run(q, &Env{Calibration: batches}); err != nil {
					b.Fatal(err)
				}
				sessions[i] = ortSession(b, q)
			}
			timed := func(s *ort.Session) time.Duration {
				start := time.Now()
				if _, err := s.Run(in); err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			var fp32Time time.Duration
			times := make([]time.Duration, len(variants))
			for b.Loop() {
				fp32Time += timed(fp32)
				for i, s := range sessions {
					times[i] += timed(s)
				}
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / float64(b.N) }
			b.ReportMetric(ms(fp32Time), "fp32-ms/op")
			// How far each variant's outputs are from the float
			// model's on the same input, in ONNX Runtime.
			want := ortRun(b, fp32, in)
			for i, v := range variants {
				got := ortRun(b, sessions[i], in)
				maxAbs, _, _ := runtime.Compare(got, want, 0, 0)
				b.ReportMetric(maxAbs, v.name+"-max-abs-error")
				b.ReportMetric(ms(times[i]), v.name+"-ms/op")
				b.ReportMetric(float64(times[i])/float64(fp32Time), v.name+"/fp32")
			}
		})
	}
}

// ortRun runs s on in and returns its first output as a runtime tensor.
func ortRun(b *testing.B, s *ort.Session, in map[string]*ort.Tensor) *runtime.Tensor {
	b.Helper()
	out, err := s.Run(in)
	if err != nil {
		b.Fatal(err)
	}
	o := out[s.Outputs()[0].Name]
	shape := make([]int, len(o.Shape))
	for i, d := range o.Shape {
		shape[i] = int(d)
	}
	t, err := runtime.FromSlice(o.Data, shape...)
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// ortSession opens m in ONNX Runtime with one thread, skipping the
// benchmark when ONNX Runtime cannot run (built without cgo).
func ortSession(b *testing.B, m *graph.Model) *ort.Session {
	b.Helper()
	raw, err := proto.Marshal(m.ToProto())
	if err != nil {
		b.Fatal(err)
	}
	s, err := ort.OpenBytes(raw, ort.Options{Threads: 1})
	if err != nil {
		b.Skip(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// ortInput is the first batch samples of test, or of random inputs in
// [0, 1) when test is nil, for m's only input.
func ortInput(b *testing.B, m *graph.Model, test map[string]*runtime.Tensor, batch int) map[string]*ort.Tensor {
	b.Helper()
	name := m.Graph.Inputs[0].Name
	if test == nil {
		var err error
		if test, err = runtime.RandomInputs(m.Graph, 2, 0, 1, map[string]int64{"batch": int64(batch)}); err != nil {
			b.Fatal(err)
		}
	}
	t, err := sampleRows(test[name], 0, batch)
	if err != nil {
		b.Fatal(err)
	}
	shape := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		shape[i] = int64(d)
	}
	return map[string]*ort.Tensor{name: {DType: int32(onnx.TensorProto_FLOAT), Shape: shape, Data: t.Data}}
}
