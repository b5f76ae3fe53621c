package passes

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// A ProgressReporter is a pass that can report how far long work, such
// as calibration, has got. The callback gets the steps done and the total.
type ProgressReporter interface {
	SetProgress(fn func(done, total int))
}

// CalibrationBatches checks a set of calibration samples against g's
// inputs and splits it into batches of at most batchSize samples (of
// exactly the input's size when its batch dimension is fixed), ready for
// Env.Calibration.
// samples holds one tensor per input that has no default, stacked along
// axis 0, all with the same number of samples; they must match the
// inputs' types and declared sizes, and floats must be finite. The
// batches share memory with samples, which the runtime only reads.
func CalibrationBatches(g *graph.Graph, samples map[string]*runtime.Tensor, batchSize int) ([]map[string]*runtime.Tensor, error) {
	if batchSize < 1 {
		return nil, fmt.Errorf("batch size %d is not positive", batchSize)
	}
	count := -1
	var first string
	for _, in := range g.Inputs {
		t, ok := samples[in.Name]
		switch {
		case !ok && in.Init != nil:
			continue
		case !ok:
			return nil, fmt.Errorf("no calibration data for input %q", in.Name)
		}
		n, fixed, err := checkSamples(in, t)
		if err != nil {
			return nil, fmt.Errorf("calibration input %q: %w", in.Name, err)
		}
		switch {
		case count < 0:
			count, first = n, in.Name
		case n != count:
			return nil, fmt.Errorf("calibration input %q has %d samples, input %q has %d", in.Name, n, first, count)
		}
		if fixed > 0 {
			if n%fixed != 0 {
				return nil, fmt.Errorf("calibration input %q: %d samples do not make whole batches of %d, the model's fixed batch size", in.Name, n, fixed)
			}
			batchSize = fixed
		}
	}
	for name := range samples {
		if in := g.Lookup(name); in == nil || !g.IsInput(in) {
			return nil, fmt.Errorf("calibration data names %q, which is not an input of the model", name)
		}
	}
	if count < 0 {
		return nil, errors.New("the model has no inputs to calibrate with")
	}
	if count == 0 {
		return nil, errors.New("the calibration data holds no samples")
	}
	var batches []map[string]*runtime.Tensor
	for lo := 0; lo < count; lo += batchSize {
		hi := min(lo+batchSize, count)
		batch := map[string]*runtime.Tensor{}
		for name, t := range samples {
			b, err := sampleRows(t, lo, hi)
			if err != nil {
				return nil, fmt.Errorf("calibration input %q: %w", name, err)
			}
			batch[name] = b
		}
		batches = append(batches, batch)
	}
	return batches, nil
}

// checkSamples checks a stack of samples for input in and returns their
// number and the input's fixed batch size (0 when dynamic).
func checkSamples(in *graph.Value, t *runtime.Tensor) (n, fixed int, err error) {
	if t.Kind != runtime.KindTensor {
		return 0, 0, errors.New("not a tensor")
	}
	if want := in.ElemType(); want != onnx.TensorProto_UNDEFINED && t.DType != want {
		return 0, 0, fmt.Errorf("of type %v, the input is %v", t.DType, want)
	}
	if len(t.Shape) == 0 {
		return 0, 0, errors.New("a scalar has no batch axis to stack samples along")
	}
	if shape, ok := in.Shape(); ok {
		if len(shape) != len(t.Shape) {
			return 0, 0, fmt.Errorf("shape %v does not match the input's %v", t.Shape, shape)
		}
		for i, d := range shape[1:] {
			if d.Known && d.Value != int64(t.Shape[i+1]) {
				return 0, 0, fmt.Errorf("shape %v does not match the input's %v", t.Shape, shape)
			}
		}
		if shape[0].Known {
			fixed = int(shape[0].Value)
		}
	}
	if f, ok := t.Data.([]float32); ok {
		if i := slices.IndexFunc(f, func(x float32) bool { return math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) }); i >= 0 {
			return 0, 0, fmt.Errorf("sample %d holds %v", i/max(1, len(f)/t.Shape[0]), f[i])
		}
	}
	if f, ok := t.Data.([]float64); ok {
		if i := slices.IndexFunc(f, func(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) }); i >= 0 {
			return 0, 0, fmt.Errorf("sample %d holds %v", i/max(1, len(f)/t.Shape[0]), f[i])
		}
	}
	return t.Shape[0], fixed, nil
}

// sampleRows returns samples [lo, hi) of t, sharing its data.
func sampleRows(t *runtime.Tensor, lo, hi int) (*runtime.Tensor, error) {
	row := 1
	for _, d := range t.Shape[1:] {
		row *= d
	}
	data := reflect.ValueOf(t.Data).Slice(lo*row, hi*row).Interface()
	shape := append([]int{hi - lo}, t.Shape[1:]...)
	b, err := runtime.FromSlice(data, shape...)
	if err != nil {
		return nil, err
	}
	b.DType = t.DType // FLOAT16 and BFLOAT16 are held as []float32 too
	return b, nil
}

// Calibration methods: how a tensor's range is chosen from what the
// calibration data made it hold.
const (
	methodMinMax     = "minmax"     // the least and greatest values seen
	methodPercentile = "percentile" // clip the tails beyond a percentile
	methodEntropy    = "entropy"    // the clip whose int8 histogram is nearest, by KL divergence
)

// calibration says how activation ranges are measured.
type calibration struct {
	method     string
	percentile float64 // for methodPercentile, in (50, 100]
	bins       int     // histogram bins, for the methods that use one
	symmetric  bool    // int8 with a zero point of 0, else uint8
}

func (c calibration) check() error {
	switch c.method {
	case methodMinMax:
	case methodPercentile:
		if !(c.percentile > 50 && c.percentile <= 100) {
			return fmt.Errorf("percentile %g is not in (50, 100]", c.percentile)
		}
		if c.bins < 1 {
			return fmt.Errorf("%d histogram bins", c.bins)
		}
	case methodEntropy:
		if c.bins < 2*entropyStartBin {
			return fmt.Errorf("entropy calibration needs at least %d histogram bins, got %d", 2*entropyStartBin, c.bins)
		}
	default:
		return fmt.Errorf("unknown calibration method %q (want %s, %s or %s)", c.method, methodMinMax, methodPercentile, methodEntropy)
	}
	return nil
}

// tensorStats is what calibration keeps of one value: its range, and for
// the histogram methods a histogram over it. Its size does not depend on
// the number of samples.
type tensorStats struct {
	min, max float64
	seen     bool
	hist     histogram
}

// A histogram counts values in equal bins over [lo, hi]; of their
// magnitudes when abs is set.
type histogram struct {
	lo, hi float64
	abs    bool
	counts []float64
}

func (h *histogram) add(xs []float32) {
	width := (h.hi - h.lo) / float64(len(h.counts))
	last := len(h.counts) - 1
	for _, x := range xs {
		v := float64(x)
		if h.abs {
			v = math.Abs(v)
		}
		i := 0
		if width > 0 {
			i = min(max(int((v-h.lo)/width), 0), last)
		}
		h.counts[i]++
	}
}

// edge is the lower edge of bin i; edge(len) is hi.
func (h *histogram) edge(i int) float64 {
	return h.lo + (h.hi-h.lo)*float64(i)/float64(len(h.counts))
}

// quantile returns the value below which a fraction q of the counts lie:
// the upper edge of the bin where the cumulative count reaches it, or,
// when lower, the lower edge of that bin (for the lower tail).
func (h *histogram) quantile(q float64, lower bool) float64 {
	var total float64
	for _, c := range h.counts {
		total += c
	}
	target := q * total
	var cum float64
	for i, c := range h.counts {
		cum += c
		if cum >= target && cum > 0 {
			if lower {
				return h.edge(i)
			}
			return h.edge(i + 1)
		}
	}
	return h.hi
}

// calibrate runs g on every batch and returns the statistics of the named
// values, which must be in g's own scope. Values that are not float32 are
// left out of the result. The histogram methods run the batches twice:
// first for the ranges, then for histograms over them, so that the bins
// do not depend on the order of the batches.
func (c calibration) calibrate(g *graph.Graph, names []string, batches []map[string]*runtime.Tensor, progress func(done, total int)) (map[string]*tensorStats, error) {
	plan, err := runtime.Compile(g)
	if err != nil {
		return nil, err
	}
	stats := map[string]*tensorStats{}
	for _, name := range names {
		stats[name] = &tensorStats{}
	}
	rounds := 1
	if c.method != methodMinMax {
		rounds = 2
	}
	total := rounds * len(batches)
	done := 0
	visit := func(each func(s *tensorStats, x []float32)) error {
		for b, batch := range batches {
			values, err := plan.Fetch(batch, names)
			if err != nil {
				return fmt.Errorf("calibration batch %d: %w", b, err)
			}
			for _, name := range names {
				s := stats[name]
				if s == nil {
					continue
				}
				x, ok := values[name].Data.([]float32)
				if !ok || values[name].DType != onnx.TensorProto_FLOAT {
					delete(stats, name)
					continue
				}
				if i := slices.IndexFunc(x, func(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }); i >= 0 {
					return fmt.Errorf("calibration batch %d: value %q holds %v", b, name, x[i])
				}
				each(s, x)
			}
			done++
			if progress != nil {
				progress(done, total)
			}
		}
		return nil
	}
	err = visit(func(s *tensorStats, x []float32) {
		for _, v := range x {
			f := float64(v)
			if !s.seen {
				s.min, s.max, s.seen = f, f, true
			}
			s.min, s.max = min(s.min, f), max(s.max, f)
		}
	})
	if err != nil || rounds == 1 {
		return stats, err
	}
	for _, s := range stats {
		s.hist = c.histogramFor(s)
	}
	return stats, visit(func(s *tensorStats, x []float32) { s.hist.add(x) })
}

// histogramFor is the histogram the method needs: of magnitudes over [0,
// max|x|], except for asymmetric percentiles, which clip each tail on its
// own.
func (c calibration) histogramFor(s *tensorStats) histogram {
	h := histogram{abs: true, hi: max(-s.min, s.max), counts: make([]float64, c.bins)}
	if c.method == methodPercentile && !c.symmetric {
		h = histogram{lo: s.min, hi: s.max, counts: make([]float64, c.bins)}
	}
	return h
}

// qparams are the scale and zero point of a QuantizeLinear.
type qparams struct {
	scale     float32
	zeroPoint int32
}

// paramsOf turns the statistics of each value into its quantization
// parameters, for several values at once: the entropy method's search
// takes far longer than the rest.
func (c calibration) paramsOf(stats map[string]*tensorStats, r intRange) map[string]qparams {
	names := slices.Sorted(maps.Keys(stats))
	out := make([]qparams, len(names))
	parallel(len(names), func(i int) {
		scale, zp := c.params(stats[names[i]], r)
		out[i] = qparams{scale, zp}
	})
	params := make(map[string]qparams, len(names))
	for i, name := range names {
		params[name] = out[i]
	}
	return params
}

// params turns a value's statistics into the scale and zero point of its
// QuantizeLinear.
func (c calibration) params(s *tensorStats, r intRange) (float32, int32) {
	lo, hi := s.min, s.max
	switch c.method {
	case methodPercentile:
		if c.symmetric {
			t := s.hist.quantile(c.percentile/100, false)
			lo, hi = -t, t
		} else {
			lo, hi = s.hist.quantile(1-c.percentile/100, true), s.hist.quantile(c.percentile/100, false)
		}
	case methodEntropy:
		levels := int(r.hi) + 1 // the non-negative levels: 128 for int8
		if !c.symmetric && s.min >= 0 {
			levels = int(r.hi-r.lo) + 1
		}
		t := float64(entropyThreshold(s.hist.counts, levels)) * s.hist.hi / float64(len(s.hist.counts))
		lo, hi = max(lo, -t), min(hi, t)
	}
	if c.symmetric {
		return symmetricParams(max(-lo, hi), r), 0
	}
	return affineParams(lo, hi, r)
}

// entropyStartBin is the fewest histogram bins a clip may keep.
const entropyStartBin = 128

// entropyThreshold picks the clip of a histogram of magnitudes that loses
// least information when quantized to levels levels, as TensorRT's
// calibrator does, in the form MXNet and ONNX Runtime implement: for each
// candidate clip of i bins, P is the histogram up to i with the clipped
// tail added to its last bin; Q merges the clipped histogram's bins into
// levels groups (the last group takes the remainder) and spreads each
// group's count evenly over the group's bins where P is not zero; both are
// smoothed so that no bin is empty (entropySmoothing of a count moves into
// each empty bin from the others), and the clip minimizing KL(P‖Q) wins,
// the narrowest of equals. It returns the clip in bins.
//
// The divergence is computed in closed form rather than bin by bin:
// smoothing keeps each histogram's total, so with P's total Ps (every
// count) and Q's total Qs,
//
//	KL(P‖Q) = (1/Ps)·Σ p′·log(p′/q′) + log(Qs/Ps),
//
// where the bins empty in P, also empty in Q, smoothed alike to ε, add
// nothing to the sum, and q′ is the same across the non-empty bins of a
// group. Group totals come from prefix sums, so a candidate costs a
// logarithm per non-empty bin, one per distinct count among the small
// ones, and a few operations per group.
func entropyThreshold(hist []float64, levels int) int {
	bins := slices.Clone(hist)
	// A ReLU output's zeros, all in bin 0, would outweigh the rest and
	// favor narrow clips: count bin 0 as bin 1, as PyTorch's
	// pytorch-quantization does.
	if len(bins) > 1 {
		bins[0] = bins[1]
	}
	n := len(bins)
	// prefix[i] is the sum of bins[:i], nonEmpty[i] the number of
	// non-empty bins among them.
	prefix, nonEmpty := make([]float64, n+1), make([]int, n+1)
	for j, c := range bins {
		prefix[j+1] = prefix[j] + c
		nonEmpty[j+1] = nonEmpty[j]
		if c != 0 {
			nonEmpty[j+1]++
		}
	}
	total := prefix[n]
	const eps = entropySmoothing
	// logSmall[c] is log(c − shiftP) for the candidate logStamp[c].
	var logSmall [256]float64
	var logStamp [256]int
	best, bestDiv := n, math.Inf(1)
	for i := max(entropyStartBin, levels); i <= n; i++ {
		tail := total - prefix[i]
		last := bins[i-1] + tail // P's last bin
		// P's non-empty bins: those of bins[:i], and the last one when
		// only the tail fills it.
		nonZeroP := nonEmpty[i]
		if bins[i-1] == 0 && last != 0 {
			nonZeroP++
		}
		if nonZeroP == 0 {
			continue
		}
		shiftP := eps * float64(i-nonZeroP) / float64(nonZeroP)
		// Q is empty where P is, and across a group whose bins hold
		// nothing but P's tail.
		merged := i / levels
		group := func(k int) (lo, hi int) {
			lo, hi = k*merged, (k+1)*merged
			if k == levels-1 {
				hi = i
			}
			return lo, hi
		}
		var qs float64
		nonZeroQ := 0
		for k := range levels {
			lo, hi := group(k)
			nz := nonEmpty[hi] - nonEmpty[lo]
			if hi == i && bins[i-1] == 0 && last != 0 {
				nz++
			}
			if mass := prefix[hi] - prefix[lo]; mass != 0 {
				qs += mass
				nonZeroQ += nz
			}
		}
		if nonZeroQ == 0 {
			continue
		}
		shiftQ := eps * float64(i-nonZeroQ) / float64(nonZeroQ)
		var sum float64
		for k := range levels {
			lo, hi := group(k)
			mass := prefix[hi] - prefix[lo]
			nz := nonEmpty[hi] - nonEmpty[lo]
			if hi == i && bins[i-1] == 0 && last != 0 {
				nz++
			}
			if nz == 0 {
				continue
			}
			q := eps
			if mass != 0 {
				q = mass/float64(nz) - shiftQ
			}
			logQ := math.Log(q)
			for j := lo; j < hi; j++ {
				c := bins[j]
				if j == i-1 {
					c = last
				}
				if c == 0 {
					continue
				}
				p := c - shiftP
				var logP float64
				// Most bins of a long tail hold a few values: their
				// logarithms repeat within a candidate.
				if small := int(c); float64(small) == c && small < len(logSmall) {
					if logStamp[small] != i {
						logSmall[small], logStamp[small] = math.Log(p), i
					}
					logP = logSmall[small]
				} else {
					logP = math.Log(p)
				}
				sum += p * (logP - logQ)
			}
		}
		if div := sum/total + math.Log(qs/total); div < bestDiv {
			best, bestDiv = i, div
		}
	}
	return best
}

// entropySmoothing is the share of a count that smoothing puts in each
// empty bin of a histogram, taken evenly from its non-empty bins.
const entropySmoothing = 1e-4
