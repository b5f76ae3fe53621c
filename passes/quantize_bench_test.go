package passes

import (
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"testing"
	"time"

	"onnxopt/graph"
	"onnxopt/internal/rss"
	"onnxopt/internal/testmodels"
	"onnxopt/onnx"
	"onnxopt/runtime"
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
// tensor and per channel) and saves it, as "onnxopt quantize" does. Besides
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
	for _, perChannel := range []bool{false, true} {
		name := map[bool]string{false: "per-tensor", true: "per-channel"}[perChannel]
		b.Run(name, func(b *testing.B) {
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
					p := newQuantizeWeight().(*weightQuantization)
					p.PerChannel = perChannel
					_, err := p.Run(m, &Env{})
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
			b.ReportMetric(mb(fi.Size()), "int8-MB")
			b.ReportMetric(mb(hwm), "peak-RSS-MB")
			b.ReportMetric(float64(hwm)/float64(size), "peak-RSS/model")
			b.ReportMetric(mb(maxRSS), "maxrss-MB")
			b.ReportMetric(float64(maxRSS)/float64(size), "maxrss/model")
		})
	}
}
