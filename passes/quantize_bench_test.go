package passes

import (
	"testing"
	"time"

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
