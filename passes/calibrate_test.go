package passes

import (
	"math"
	"math/rand/v2"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"onnxopt/graph"
	"onnxopt/runtime"
)

func TestCalibrationBatches(t *testing.T) {
	b := newBuilder(t, 13)
	x := b.dynamicInput("x", 2)
	fixed := b.input("f", 2, 2, 3)
	b.output(b.node("Relu", "y", x), b.node("Relu", "z", fixed))
	tensor := func(data any, shape ...int) *runtime.Tensor {
		t, err := runtime.FromSlice(data, shape...)
		if err != nil {
			panic(err)
		}
		return t
	}
	ones := func(n int) []float32 {
		f := make([]float32, n)
		for i := range f {
			f[i] = float32(i)
		}
		return f
	}
	good := map[string]*runtime.Tensor{"x": tensor(ones(20), 10, 2), "f": tensor(ones(30), 5, 2, 3)}
	// f's batch size is fixed at 2, which sets the batches' size.
	if _, err := CalibrationBatches(b.g, good, 4); err == nil || !strings.Contains(err.Error(), `input "f" has 5 samples, input "x" has 10`) {
		t.Errorf("counts: %v", err)
	}
	good["f"] = tensor(ones(60), 10, 2, 3)
	batches, err := CalibrationBatches(b.g, good, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(batches) != 5 || batches[4]["x"].Shape[0] != 2 || batches[4]["x"].Data.([]float32)[0] != 16 || batches[4]["f"].Data.([]float32)[0] != 48 {
		t.Errorf("%d batches, last %v", len(batches), batches[len(batches)-1]["x"])
	}

	nan := ones(20)
	nan[13] = float32(math.NaN())
	for _, tc := range []struct {
		inputs map[string]*runtime.Tensor
		want   string
	}{
		{map[string]*runtime.Tensor{"x": tensor(ones(20), 10, 2)}, `no calibration data for input "f"`},
		{map[string]*runtime.Tensor{"x": tensor(ones(20), 10, 2), "f": good["f"], "g": good["f"]}, `names "g", which is not an input`},
		{map[string]*runtime.Tensor{"x": tensor(make([]float64, 20), 10, 2), "f": good["f"]}, "of type DOUBLE, the input is FLOAT"},
		{map[string]*runtime.Tensor{"x": tensor(ones(30), 10, 3), "f": good["f"]}, "shape [10 3] does not match the input's [N,2]"},
		{map[string]*runtime.Tensor{"x": tensor(ones(18), 9, 2), "f": tensor(ones(54), 9, 2, 3)}, "input \"f\": 9 samples do not make whole batches of 2"},
		{map[string]*runtime.Tensor{"x": tensor(ones(0), 0, 2), "f": tensor(ones(0), 0, 2, 3)}, "holds no samples"},
		{map[string]*runtime.Tensor{"x": tensor(nan, 10, 2), "f": good["f"]}, `input "x": sample 6 holds NaN`},
		{map[string]*runtime.Tensor{"x": tensor([]float32{1}), "f": good["f"]}, "a scalar has no batch axis"},
	} {
		if _, err := CalibrationBatches(b.g, tc.inputs, 4); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}
}

// calibrationModel is y = x · W over x [N, 1]: its MatMul reads the
// calibration samples as given.
func calibrationModel(t *testing.T) *builder {
	b := newBuilder(t, 13)
	x := b.dynamicInput("x", 1)
	b.output(b.node("MatMul", "y", x, b.init("W", []int64{1, 1}, 1)))
	return b
}

// samplesOf makes batches of size batch of the given values of x.
func samplesOf(t *testing.T, g *graph.Graph, xs []float32, batch int) []map[string]*runtime.Tensor {
	t.Helper()
	in, err := runtime.FromSlice(xs, len(xs), 1)
	if err != nil {
		t.Fatal(err)
	}
	batches, err := CalibrationBatches(g, map[string]*runtime.Tensor{"x": in}, batch)
	if err != nil {
		t.Fatal(err)
	}
	return batches
}

// calibrated returns the scale and zero point the pass gives x.
func calibrated(t *testing.T, xs []float32, batch int, configure func(p *staticQuantization)) (scale, zp float64) {
	t.Helper()
	b := calibrationModel(t)
	p := newQuantizeStatic().(*staticQuantization)
	configure(p)
	_, m := applyQuant(t, b.m, p, &Env{Calibration: samplesOf(t, b.g, xs, batch)})
	for _, n := range m.Graph.Nodes {
		if n.OpType == "QuantizeLinear" {
			return scalarOf(t, n.Inputs[1]), scalarOf(t, n.Inputs[2])
		}
	}
	t.Fatalf("no QuantizeLinear in %q", opTypes(m.Graph))
	return 0, 0
}

// orderStatistic is the value below which a fraction q of xs lies: the
// sample quantile a histogram's bins approximate from above.
func orderStatistic(xs []float32, q float64) float64 {
	sorted := slices.Clone(xs)
	slices.Sort(sorted)
	return float64(sorted[int(math.Ceil(q*float64(len(xs))))-1])
}

// TestCalibrationMethods checks the clip each method picks on data whose
// distribution is known: 20,000 samples of |N(0, 1)| with one outlier at
// 100 or at 10, and uniform samples in [0, 1).
func TestCalibrationMethods(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gauss := make([]float32, 20000)
	for i := range gauss {
		gauss[i] = float32(math.Abs(rng.NormFloat64()))
	}
	gauss[777] = 100
	gauss10 := slices.Clone(gauss)
	gauss10[777] = 10
	uniform := make([]float32, 20000)
	for i := range uniform {
		uniform[i] = rng.Float32()
	}
	const bins = 2048
	gaussBin, uniformBin := 100.0/bins, float64(slices.Max(uniform))/bins
	for _, tc := range []struct {
		name      string
		data      []float32
		configure func(p *staticQuantization)
		lo, hi    float64 // the range the clip (scale·255, or ·127 symmetric; zero point 0) must be in
	}{
		{"minmax", gauss, func(p *staticQuantization) {}, 100, 100},
		// The percentile is the upper edge of the bin holding the
		// sample's 99.9th percentile (near 3.29, |N(0,1)|'s).
		{"percentile", gauss, func(p *staticQuantization) { p.Method = "percentile"; p.Percentile = 99.9 },
			orderStatistic(gauss, 0.999), orderStatistic(gauss, 0.999) + gaussBin},
		{"percentile uniform", uniform, func(p *staticQuantization) { p.Method = "percentile"; p.Percentile = 99 },
			orderStatistic(uniform, 0.99), orderStatistic(uniform, 0.99) + uniformBin},
		// KL keeps the bulk of the Gaussian (its 99.9th percentile is
		// 3.29, its largest sample 4.4) and drops the outlier, as
		// uint8 (levels of 10/2048·256/255) and int8.
		{"entropy", gauss10, func(p *staticQuantization) { p.Method = "entropy" }, 3.29, 6},
		{"entropy symmetric", gauss10, func(p *staticQuantization) { p.Method = "entropy"; p.Symmetric = true }, 3.29, 6},
		// With the outlier at 100, the bulk fits in the narrowest
		// clip the search tries, levels bins: it clips there or little
		// further, far below the outlier.
		{"entropy far outlier", gauss, func(p *staticQuantization) { p.Method = "entropy" }, 256 * gaussBin, 512 * gaussBin},
		// Nothing to clip in a uniform distribution.
		{"entropy uniform", uniform, func(p *staticQuantization) { p.Method = "entropy" }, 0.99, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scale, zp := calibrated(t, tc.data, 1000, tc.configure)
			clip := scale * 255
			if strings.HasSuffix(tc.name, "symmetric") {
				clip = scale * 127
			}
			if zp != 0 || clip < tc.lo*(1-1e-6) || clip > tc.hi*(1+1e-6) {
				t.Errorf("clip %g (zero point %g), want it in [%g, %g]", clip, zp, tc.lo, tc.hi)
			}
			// The same samples in other batches give the same scale:
			// the statistics do not depend on how the data is split.
			if other, _ := calibrated(t, tc.data, 64, tc.configure); other != scale {
				t.Errorf("batches of 64: scale %g, batches of 1000: %g", other, scale)
			}
		})
	}
}

// TestCalibrationSigned checks the asymmetric percentile, which clips each
// tail on its own, and the symmetric one, which clips magnitudes.
func TestCalibrationSigned(t *testing.T) {
	xs := make([]float32, 10000)
	for i := range xs {
		xs[i] = float32(i)/10000*4 - 1 // uniform in [-1, 3)
	}
	scale, zp := calibrated(t, xs, 500, func(p *staticQuantization) { p.Method = "percentile"; p.Percentile = 99 })
	// Tails at -0.96 and 2.96: within a bin (4/2048) of those.
	lo, hi := -(zp * scale), (255-zp)*scale
	if math.Abs(lo+0.96) > 4.0/2048+scale || math.Abs(hi-2.96) > 4.0/2048+scale {
		t.Errorf("range [%g, %g], want [-0.96, 2.96]", lo, hi)
	}
	scale, zp = calibrated(t, xs, 500, func(p *staticQuantization) {
		p.Method = "percentile"
		p.Percentile = 99
		p.Symmetric = true
	})
	// 99% of magnitudes are below 2.96.
	if clip := scale * 127; zp != 0 || math.Abs(clip-2.96) > 3.0/2048 {
		t.Errorf("symmetric clip %g, zero point %g, want 2.96 and 0", clip, zp)
	}
}

// TestEntropyThreshold checks the KL search on histograms whose answer is
// plain: mass only in the first 64 bins, all different, loses nothing at
// the first clip, where each bin is a level of its own, and something at
// every wider one, which merges bins; an even spread loses nothing at any
// clip, and the widest of equals wins.
func TestEntropyThreshold(t *testing.T) {
	h := make([]float64, 2048)
	for i := range 64 {
		h[i] = float64(64 - i)
	}
	if got := entropyThreshold(h, 128); got != entropyStartBin {
		t.Errorf("mass in the first 64 bins: clip %d, want %d", got, entropyStartBin)
	}
	for i := range h {
		h[i] = 10
	}
	if got := entropyThreshold(h, 128); got != len(h) {
		t.Errorf("flat histogram: clip %d, want %d", got, len(h))
	}
}

func TestHistogramQuantile(t *testing.T) {
	h := histogram{lo: -1, hi: 1, counts: make([]float64, 4)}
	h.add([]float32{-1, -0.6, 0, 0.1, 0.2, 0.9, 1})
	// Bins [-1,-0.5) [-0.5,0) [0,0.5) [0.5,1]: 2, 0, 3, 2.
	if got := h.counts; got[0] != 2 || got[1] != 0 || got[2] != 3 || got[3] != 2 {
		t.Errorf("counts %v", got)
	}
	if q := h.quantile(0.5, false); q != 0.5 {
		t.Errorf("median edge %g, want 0.5", q)
	}
	if q := h.quantile(0.1, true); q != -1 {
		t.Errorf("lower 10%% edge %g, want -1", q)
	}
	abs := histogram{abs: true, hi: 2, counts: make([]float64, 2)}
	abs.add([]float32{-2, -0.5, 0.5, 1.5})
	if abs.counts[0] != 2 || abs.counts[1] != 2 {
		t.Errorf("magnitudes %v", abs.counts)
	}
}

// TestCalibrationMemory checks that calibration streams: calibrating the
// digits CNN on 10 and 100 times its 256 calibration samples (the same
// batches again, so that the samples themselves take no more memory)
// keeps the heap within 10% of calibrating on them once. The heap is
// measured live, after a collection, at the end of 16 batches spread over
// the run: what calibration keeps, which does not depend on when the
// collector runs.
func TestCalibrationMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the digits CNN on 204,800 samples")
	}
	d := loadDigits(t, "digits_cnn", "cnn")
	batches, err := CalibrationBatches(d.model.Graph, map[string]*runtime.Tensor{"input": d.calibration}, 32)
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{methodMinMax, methodEntropy} {
		peaks := map[int]uint64{}
		for _, times := range []int{1, 10, 100} {
			var repeated []map[string]*runtime.Tensor
			for range times {
				repeated = append(repeated, batches...)
			}
			m := cloneModel(t, d.model)
			p := newQuantizeStatic().(*staticQuantization)
			p.Method, p.PerChannel = method, true
			calls := 0
			goruntime.GC()
			p.SetProgress(func(done, total int) {
				calls++
				if done%max(1, total/16) != 0 {
					return
				}
				goruntime.GC()
				var ms goruntime.MemStats
				goruntime.ReadMemStats(&ms)
				peaks[times] = max(peaks[times], ms.HeapInuse)
			})
			if _, err := p.Run(m, &Env{Calibration: repeated}); err != nil {
				t.Fatal(err)
			}
			if want := len(repeated) * map[string]int{methodMinMax: 1, methodEntropy: 2}[method]; calls != want {
				t.Fatalf("%d progress calls, want %d", calls, want)
			}
			t.Logf("%s, %d×256 samples (%d batches): peak live heap %.2f MB", method, times, len(repeated), float64(peaks[times])/1e6)
		}
		for _, times := range []int{10, 100} {
			if ratio := float64(peaks[times]) / float64(peaks[1]); ratio > 1.1 || ratio < 1/1.1 {
				t.Errorf("%s: the peak live heap with %d× the samples is %.3f× that with them once", method, times, ratio)
			}
		}
	}
}

// entropyThresholdDirect is entropyThreshold computed bin by bin, as
// ONNX Runtime's calibrator does: build P and Q for each clip, smooth
// them, normalize them and sum p·log(p/q).
func entropyThresholdDirect(hist []float64, levels int) int {
	bins := slices.Clone(hist)
	if len(bins) > 1 {
		bins[0] = bins[1]
	}
	smooth := func(h []float64) bool {
		zeros := 0
		for _, c := range h {
			if c == 0 {
				zeros++
			}
		}
		if zeros == len(h) {
			return false
		}
		take := entropySmoothing * float64(zeros) / float64(len(h)-zeros)
		for j, c := range h {
			if c == 0 {
				h[j] = entropySmoothing
			} else {
				h[j] = c - take
			}
		}
		return true
	}
	best, bestDiv := len(bins), math.Inf(1)
	for i := max(entropyStartBin, levels); i <= len(bins); i++ {
		p, q := slices.Clone(bins[:i]), make([]float64, i)
		for _, c := range bins[i:] {
			p[i-1] += c
		}
		merged := i / levels
		for k := range levels {
			lo, hi := k*merged, (k+1)*merged
			if k == levels-1 {
				hi = i
			}
			var mass, nonZero float64
			for j := lo; j < hi; j++ {
				mass += bins[j]
				if p[j] != 0 {
					nonZero++
				}
			}
			for j := lo; j < hi; j++ {
				if p[j] != 0 {
					q[j] = mass / nonZero
				}
			}
		}
		if !smooth(p) || !smooth(q) {
			continue
		}
		var pSum, qSum, div float64
		for j := range p {
			pSum += p[j]
			qSum += q[j]
		}
		for j := range p {
			div += p[j] / pSum * math.Log((p[j]/pSum)/(q[j]/qSum))
		}
		if div < bestDiv {
			best, bestDiv = i, div
		}
	}
	return best
}

// TestEntropyThresholdDirect checks entropyThreshold's closed form against
// the divergence computed bin by bin, on histograms of |N(0, σ)| samples
// with outliers, of ReLU outputs, sparse ones with empty stretches, and
// ones whose mass is all in the tail of a clip.
func TestEntropyThresholdDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for trial := range 40 {
		bins := []int{256, 512, 2048}[trial%3]
		h := histogram{abs: true, hi: 8, counts: make([]float64, bins)}
		xs := make([]float32, 2000+rng.IntN(20000))
		sigma := 0.2 + 2*rng.Float64()
		for i := range xs {
			switch {
			case trial%4 == 1 && rng.IntN(2) == 0:
				xs[i] = 0 // ReLU zeros
			case trial%4 == 2 && rng.IntN(50) == 0:
				xs[i] = float32(4 + 4*rng.Float64()) // outliers
			default:
				xs[i] = float32(math.Abs(rng.NormFloat64() * sigma))
			}
		}
		if trial%4 == 3 {
			xs = xs[:30] // mostly empty bins
			xs = append(xs, 7.9)
		}
		h.add(xs)
		for _, levels := range []int{128, 256} {
			if levels > bins/2 {
				continue
			}
			if got, want := entropyThreshold(h.counts, levels), entropyThresholdDirect(h.counts, levels); got != want {
				t.Errorf("trial %d (%d bins, %d levels): clip %d, computed bin by bin %d", trial, bins, levels, got, want)
			}
		}
	}
}
