package runtime

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/dsp/fourier"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// Signal operators: the discrete Fourier transform (DFT, STFT), the
// window functions and MelWeightMatrix, and TfIdfVectorizer, which turns
// sequences of tokens into n-gram features. Complex tensors are real ones
// with a last dimension of 2 holding the real and imaginary parts; the
// kernels compute in float64.
var signalOps = []opDef{
	{"", "DFT", 17, compileDFT(17)},
	// DFT-20 takes axis as an input, default -2, instead of an attribute.
	{"", "DFT", 20, compileDFT(20)},
	{"", "STFT", 17, compileSTFT},
	{"", "HannWindow", 17, compileWindow(hannWindow)},
	{"", "HammingWindow", 17, compileWindow(hammingWindow)},
	{"", "BlackmanWindow", 17, compileWindow(blackmanWindow)},
	{"", "MelWeightMatrix", 17, compileMelWeightMatrix},
	{"", "TfIdfVectorizer", 9, compileTfIdfVectorizer},
}

// A transform computes discrete Fourier transforms of one length,
// reusing gonum's plan and a line buffer between calls.
type transform struct {
	fft  *fourier.CmplxFFT
	line []complex128
}

// prepare returns the line buffer for a transform of length n, zeroed.
func (t *transform) prepare(n int) []complex128 {
	if t.fft == nil {
		t.fft = fourier.NewCmplxFFT(n)
	} else if t.fft.Len() != n {
		t.fft.Reset(n)
	}
	t.line = scratchSlice(&t.line, n)
	clear(t.line)
	return t.line
}

// run transforms the line prepare returned in place: forward,
// X[k] = sum x[j] exp(-2πi jk/n), or inverse, x[j] = 1/n sum X[k]
// exp(2πi jk/n).
func (t *transform) run(inverse bool) {
	if !inverse {
		t.fft.Coefficients(t.line, t.line)
		return
	}
	t.fft.Sequence(t.line, t.line)
	scale := 1 / float64(len(t.line))
	for i, v := range t.line {
		t.line[i] = complex(real(v)*scale, imag(v)*scale)
	}
}

// signalParts checks that x is a signal with a last dimension of 1 (real)
// or 2 (complex) and reports which.
func signalParts(what string, x *Tensor) (complexIn bool, err error) {
	if err := checkFloat(what, x); err != nil {
		return false, err
	}
	if x.Rank() < 2 {
		return false, fmt.Errorf("%s has shape %v, want a last dimension of 1 (real) or 2 (complex)", what, x.Shape)
	}
	switch x.Shape[x.Rank()-1] {
	case 1:
		return false, nil
	case 2:
		return true, nil
	}
	return false, fmt.Errorf("%s has shape %v, want a last dimension of 1 (real) or 2 (complex)", what, x.Shape)
}

// optionalScalarInt reads an optional integer scalar input; it returns
// def when the input is omitted.
func optionalScalarInt(in []*Tensor, i int, what string, def int64) (int64, error) {
	if len(in) <= i || in[i] == nil {
		return def, nil
	}
	return scalarInt(in[i], what)
}

type dftKernel struct {
	since     int64
	axisAttr  int64
	inverse   bool
	onesided  bool
	transform transform
	data      []float64
	result    []float64
}

func compileDFT(since int64) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		k := &dftKernel{
			since:    since,
			axisAttr: n.AttrInt("axis", 1),
			inverse:  n.AttrInt("inverse", 0) != 0,
			onesided: n.AttrInt("onesided", 0) != 0,
		}
		if since >= 20 && n.Attr("axis") != nil {
			return nil, fmt.Errorf("DFT-%d takes axis as an input, not an attribute", since)
		}
		return k.run, nil
	}
}

// run transforms in[0], of shape [batch, n1, ..., nk, 1 or 2], along one
// signal axis.
func (k *dftKernel) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if err := inputs(in, 1); err != nil {
		return nil, err
	}
	x := in[0]
	complexIn, err := signalParts("input", x)
	if err != nil {
		return nil, err
	}
	rank := x.Rank()
	axis := k.axisAttr
	if k.since >= 20 {
		if axis, err = optionalScalarInt(in, 2, "axis", -2); err != nil {
			return nil, err
		}
	}
	// The last dimension holds the parts of a complex number and is no
	// signal axis.
	ax, err := normAxis(axis, rank)
	if err != nil || ax == rank-1 {
		return nil, fmt.Errorf("axis %d is not a signal axis of input %v", axis, x.Shape)
	}
	length := x.Shape[ax]
	n64, err := optionalScalarInt(in, 1, "dft_length", int64(length))
	if err != nil {
		return nil, err
	}
	if n64 < 1 || n64 > maxElements {
		return nil, fmt.Errorf("dft_length %d must be positive", n64)
	}
	n := int(n64)
	if k.onesided && complexIn {
		return nil, fmt.Errorf("onesided is set for a complex input: only a real signal has a one-sided spectrum")
	}
	bins := n
	if k.onesided {
		bins = n/2 + 1
	}
	shape := append([]int(nil), x.Shape...)
	shape[ax], shape[rank-1] = bins, 2
	out, err := e.output(0, x.DType, shape...)
	if err != nil {
		return nil, err
	}
	src, err := loadFloats(&k.data, x)
	if err != nil {
		return nil, err
	}
	dst := scratchSlice(&k.result, out.Len())
	parts := x.Shape[rank-1]
	outer, _, inner := axisSplit(x.Shape[:rank-1], ax)
	used := min(length, n) // the signal is cut or padded with zeros to n
	for o := range outer {
		for i := range inner {
			line := k.transform.prepare(n)
			for j := range used {
				at := ((o*length+j)*inner + i) * parts
				if complexIn {
					line[j] = complex(src[at], src[at+1])
				} else {
					line[j] = complex(src[at], 0)
				}
			}
			k.transform.run(k.inverse)
			for j := range bins {
				at := ((o*bins+j)*inner + i) * 2
				dst[at], dst[at+1] = real(line[j]), imag(line[j])
			}
		}
	}
	storeFloats(out, dst)
	return []*Tensor{out}, nil
}

type stftKernel struct {
	onesided  bool
	transform transform
	signal    []float64
	window    []float64
	result    []float64
}

func compileSTFT(n *graph.Node) (kernel, error) {
	k := &stftKernel{onesided: n.AttrInt("onesided", 1) != 0}
	return k.run, nil
}

// run computes the short-time Fourier transform of in[0], of shape
// [batch, length, 1 or 2]: the DFT of frames of frame_length samples
// every frame_step samples, each multiplied by the window when there is
// one. The output has shape [batch, frames, bins, 2].
func (k *stftKernel) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if err := inputs(in, 2); err != nil {
		return nil, err
	}
	x := in[0]
	complexIn, err := signalParts("signal", x)
	if err != nil {
		return nil, err
	}
	if x.Rank() != 3 {
		return nil, fmt.Errorf("signal has shape %v, want [batch, length, 1 or 2]", x.Shape)
	}
	if k.onesided && complexIn {
		return nil, fmt.Errorf("onesided is set for a complex signal: only a real signal has a one-sided spectrum")
	}
	step, err := scalarInt(in[1], "frame_step")
	if err != nil {
		return nil, err
	}
	if step < 1 {
		return nil, fmt.Errorf("frame_step %d must be positive", step)
	}
	var window []float64
	frameLength := int64(-1)
	if len(in) > 2 && in[2] != nil {
		w := in[2]
		if err := checkFloat("window", w); err != nil {
			return nil, err
		}
		if w.Rank() != 1 {
			return nil, fmt.Errorf("window has shape %v, want one dimension", w.Shape)
		}
		if window, err = loadFloats(&k.window, w); err != nil {
			return nil, err
		}
		frameLength = int64(len(window))
	}
	if len(in) > 3 && in[3] != nil {
		fl, err := scalarInt(in[3], "frame_length")
		if err != nil {
			return nil, err
		}
		if frameLength >= 0 && fl != frameLength {
			return nil, fmt.Errorf("frame_length %d differs from the window's length %d", fl, frameLength)
		}
		frameLength = fl
	}
	batch, length, parts := x.Shape[0], x.Shape[1], x.Shape[2]
	if frameLength < 0 {
		return nil, fmt.Errorf("neither a window nor frame_length gives the frame length")
	}
	if frameLength < 1 || frameLength > int64(length) {
		return nil, fmt.Errorf("frame length %d is not in [1, %d], the signal's length", frameLength, length)
	}
	n := int(frameLength)
	frames := int((int64(length)-frameLength)/step) + 1
	bins := n
	if k.onesided {
		bins = n/2 + 1
	}
	out, err := e.output(0, x.DType, batch, frames, bins, 2)
	if err != nil {
		return nil, err
	}
	src, err := loadFloats(&k.signal, x)
	if err != nil {
		return nil, err
	}
	dst := scratchSlice(&k.result, out.Len())
	for b := range batch {
		for f := range frames {
			line := k.transform.prepare(n)
			start := b*length + f*int(step)
			for j := range line {
				at := (start + j) * parts
				w := 1.0
				if window != nil {
					w = window[j]
				}
				if complexIn {
					line[j] = complex(w*src[at], w*src[at+1])
				} else {
					line[j] = complex(w*src[at], 0)
				}
			}
			k.transform.run(false)
			o := ((b*frames + f) * bins) * 2
			for j := range bins {
				dst[o+2*j], dst[o+2*j+1] = real(line[j]), imag(line[j])
			}
		}
	}
	storeFloats(out, dst)
	return []*Tensor{out}, nil
}

// A windowFunc gives a window's value at sample i of a period of n
// samples.
type windowFunc func(i, n float64) float64

func hannWindow(i, n float64) float64 { return 0.5 - 0.5*math.Cos(2*math.Pi*i/n) }

func hammingWindow(i, n float64) float64 {
	const a0 = 25.0 / 46
	return a0 - (1-a0)*math.Cos(2*math.Pi*i/n)
}

func blackmanWindow(i, n float64) float64 {
	return 0.42 - 0.5*math.Cos(2*math.Pi*i/n) + 0.08*math.Cos(4*math.Pi*i/n)
}

// outputDatatype reads the output_datatype attribute of the signal
// operators, which must name a numeric type.
func outputDatatype(n *graph.Node) (onnx.TensorProto_DataType, error) {
	dt := onnx.TensorProto_DataType(n.AttrInt("output_datatype", int64(onnx.TensorProto_FLOAT)))
	switch dt {
	case onnx.TensorProto_BOOL, onnx.TensorProto_STRING:
		return dt, fmt.Errorf("output_datatype %s is not a numeric type", dtypeName(dt))
	}
	if _, err := makeSlice(dt, 0); err != nil {
		return dt, fmt.Errorf("output_datatype %d: %w", dt, err)
	}
	return dt, nil
}

// compileWindow compiles HannWindow, HammingWindow or BlackmanWindow: a
// window of size samples, periodic (its period is size) or symmetric (its
// period is size-1).
func compileWindow(f windowFunc) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		dt, err := outputDatatype(n)
		if err != nil {
			return nil, err
		}
		periodic := n.AttrInt("periodic", 1) != 0
		var vals []float64
		return func(e *env, in []*Tensor) ([]*Tensor, error) {
			if err := inputs(in, 1); err != nil {
				return nil, err
			}
			size, err := scalarInt(in[0], "size")
			if err != nil {
				return nil, err
			}
			if size < 0 || size > maxElements {
				return nil, fmt.Errorf("size %d is negative or too large", size)
			}
			out, err := e.output(0, dt, int(size))
			if err != nil {
				return nil, err
			}
			period := float64(size)
			if !periodic {
				period--
			}
			vals = scratchSlice(&vals, int(size))
			for i := range vals {
				vals[i] = f(float64(i), period)
			}
			storeFloats(out, vals)
			return []*Tensor{out}, nil
		}, nil
	}
}

func compileMelWeightMatrix(n *graph.Node) (kernel, error) {
	dt, err := outputDatatype(n)
	if err != nil {
		return nil, err
	}
	var vals []float64
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if err := inputs(in, 5); err != nil {
			return nil, err
		}
		var ints [3]int64
		for i, name := range []string{"num_mel_bins", "dft_length", "sample_rate"} {
			v, err := scalarInt(in[i], name)
			if err != nil {
				return nil, err
			}
			if v < 1 || v > maxElements {
				return nil, fmt.Errorf("%s %d must be positive", name, v)
			}
			ints[i] = v
		}
		melBins, dftLength, sampleRate := int(ints[0]), int(ints[1]), float64(ints[2])
		var edges [2]float64
		for i, name := range []string{"lower_edge_hertz", "upper_edge_hertz"} {
			if err := checkFloat(name, in[3+i]); err != nil {
				return nil, err
			}
			v, err := floatsOf(in[3+i])
			if err != nil || len(v) != 1 {
				return nil, fmt.Errorf("%s must hold one number, got %s", name, in[3+i])
			}
			edges[i] = v[0]
		}
		lower, upper := edges[0], edges[1]
		if lower < 0 || upper <= lower || upper > sampleRate/2 {
			return nil, fmt.Errorf("the band [%g, %g] Hz is not within [0, %g], half the sample rate", lower, upper, sampleRate/2)
		}
		spectrumBins := dftLength/2 + 1
		out, err := e.output(0, dt, spectrumBins, melBins)
		if err != nil {
			return nil, err
		}
		// The mel scale's band edges, spaced evenly in mels over
		// melBins+2 steps as the reference does, mapped to DFT bins.
		toMel := func(hz float64) float64 { return 2595 * math.Log10(1+hz/700) }
		lowMel, highMel := toMel(lower), toMel(upper)
		step := (highMel - lowMel) / float64(melBins+2)
		edgeBins := make([]int, melBins+2)
		for i := range edgeBins {
			hz := 700 * (math.Pow(10, (float64(i)*step+lowMel)/2595) - 1)
			edgeBins[i] = int(math.Floor(float64(dftLength+1) * hz / sampleRate))
			limit := spectrumBins - 1
			if i == melBins+1 {
				limit = spectrumBins // the last edge bounds the last band, exclusively
			}
			if edgeBins[i] > limit {
				return nil, fmt.Errorf("mel band edge %g Hz falls in DFT bin %d of %d", hz, edgeBins[i], spectrumBins)
			}
		}
		vals = scratchSlice(&vals, spectrumBins*melBins)
		clear(vals)
		for i := range melBins {
			lo, center, hi := edgeBins[i], edgeBins[i+1], edgeBins[i+2]
			if center == lo {
				vals[center*melBins+i] = 1
			} else {
				for j := lo; j <= center; j++ {
					vals[j*melBins+i] = float64(j-lo) / float64(center-lo)
				}
			}
			for j := center; j < hi; j++ {
				vals[j*melBins+i] = float64(hi-j) / float64(hi-center)
			}
		}
		storeFloats(out, vals)
		return []*Tensor{out}, nil
	}, nil
}

// --- TfIdfVectorizer ---

type tfidfMode uint8

const (
	tfidfTF    tfidfMode = iota // the count of each n-gram
	tfidfIDF                    // its weight where it occurs
	tfidfTFIDF                  // its count times its weight
)

// A tfidfVectorizer holds the n-grams of the pool, keyed by their
// encoded tokens per length, and the output column and weight of each.
type tfidfVectorizer struct {
	mode                   tfidfMode
	minGram, maxGram, skip int
	strings                bool             // the pool and the input hold strings
	pool                   []map[string]int // per length n-1: encoded n-gram → n-gram number
	columns                []int            // per n-gram number
	weights                []float64        // per n-gram number; nil means 1
	width                  int              // output columns
	key                    []byte
	counts                 []float64
}

func compileTfIdfVectorizer(n *graph.Node) (kernel, error) {
	v := &tfidfVectorizer{
		minGram: int(n.AttrInt("min_gram_length", 0)),
		maxGram: int(n.AttrInt("max_gram_length", 0)),
		skip:    int(n.AttrInt("max_skip_count", 0)),
	}
	switch m := n.AttrString("mode", ""); m {
	case "TF":
		v.mode = tfidfTF
	case "IDF":
		v.mode = tfidfIDF
	case "TFIDF":
		v.mode = tfidfTFIDF
	default:
		return nil, fmt.Errorf("mode %q is not TF, IDF or TFIDF", m)
	}
	if v.minGram < 1 || v.maxGram < v.minGram || v.skip < 0 || n.AttrInt("max_gram_length", 0) > 1<<20 {
		return nil, fmt.Errorf("min_gram_length %d, max_gram_length %d and max_skip_count %d do not satisfy 1 <= min <= max, skip >= 0",
			v.minGram, v.maxGram, v.skip)
	}
	// The pool lists the n-grams by increasing length; ngram_counts
	// gives where each length starts.
	var tokens [][]byte
	ints, strs := n.Attr("pool_int64s"), n.Attr("pool_strings")
	switch {
	case ints != nil && strs == nil:
		for _, t := range ints.Proto.GetInts() {
			tokens = append(tokens, binary.LittleEndian.AppendUint64(nil, uint64(t)))
		}
	case strs != nil && ints == nil:
		v.strings = true
		for _, t := range strs.Proto.GetStrings() {
			tokens = append(tokens, encodeToken(nil, t))
		}
	default:
		return nil, fmt.Errorf("exactly one of pool_int64s and pool_strings must be set")
	}
	starts := n.AttrInts("ngram_counts", nil)
	indexes := n.AttrInts("ngram_indexes", nil)
	number := 0
	for i, start := range starts {
		end := int64(len(tokens))
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		length := i + 1
		if start < 0 || end < start || end > int64(len(tokens)) || (end-start)%int64(length) != 0 {
			return nil, fmt.Errorf("ngram_counts %v does not split a pool of %d tokens into n-grams of lengths 1, 2, ...", starts, len(tokens))
		}
		grams := map[string]int{}
		for at := int(start); at < int(end); at += length {
			grams[string(slices.Concat(tokens[at:at+length]...))] = number
			number++
		}
		v.pool = append(v.pool, grams)
	}
	if len(indexes) != number {
		return nil, fmt.Errorf("ngram_indexes has %d entries for %d n-grams in the pool", len(indexes), number)
	}
	for _, c := range indexes {
		if c < 0 || c >= maxElements {
			return nil, fmt.Errorf("ngram_indexes %v holds a negative column", indexes)
		}
		v.columns = append(v.columns, int(c))
		v.width = max(v.width, int(c)+1)
	}
	if w := n.AttrFloats("weights", nil); w != nil {
		if len(w) != number {
			return nil, fmt.Errorf("weights has %d entries for %d n-grams in the pool", len(w), number)
		}
		for _, x := range w {
			v.weights = append(v.weights, float64(x))
		}
	}
	return v.run, nil
}

// encodeToken appends a string token with its length, so that n-grams of
// different tokens never encode alike.
func encodeToken(dst, token []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(token)))
	return append(dst, token...)
}

// run counts, in each row of X ([C] or [N, C] tokens), the pool's n-grams
// of lengths min_gram_length to max_gram_length whose consecutive tokens
// lie 1 to max_skip_count+1 apart, and writes the features of each row.
func (v *tfidfVectorizer) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if err := inputs(in, 1); err != nil {
		return nil, err
	}
	x := in[0]
	var rows, cols int
	switch x.Rank() {
	case 1:
		rows, cols = 1, x.Shape[0]
	case 2:
		rows, cols = x.Shape[0], x.Shape[1]
	default:
		return nil, fmt.Errorf("X has shape %v, want [C] or [N, C]", x.Shape)
	}
	// appendToken appends the encoding of X's element i, as the pool's
	// tokens are encoded.
	var appendToken func(dst []byte, i int) []byte
	switch d := x.Data.(type) {
	case []string:
		appendToken = func(dst []byte, i int) []byte { return encodeToken(dst, []byte(d[i])) }
	case []int64:
		appendToken = func(dst []byte, i int) []byte { return binary.LittleEndian.AppendUint64(dst, uint64(d[i])) }
	case []int32:
		appendToken = func(dst []byte, i int) []byte { return binary.LittleEndian.AppendUint64(dst, uint64(int64(d[i]))) }
	default:
		return nil, unsupportedType(x.DType)
	}
	if v.strings != (x.DType == onnx.TensorProto_STRING) {
		return nil, fmt.Errorf("X holds %s and the pool does not", dtypeName(x.DType))
	}
	shape := []int{v.width}
	if x.Rank() == 2 {
		shape = []int{rows, v.width}
	}
	out, err := e.zeroed(0, onnx.TensorProto_FLOAT, shape...)
	if err != nil {
		return nil, err
	}
	y := out.Data.([]float32)
	counts := scratchSlice(&v.counts, len(v.columns))
	for r := range rows {
		clear(counts)
		for n := v.minGram; n <= min(v.maxGram, len(v.pool)); n++ {
			grams := v.pool[n-1]
			if len(grams) == 0 {
				continue
			}
			maxGap := v.skip + 1
			if n == 1 {
				maxGap = 1 // a single token has no gaps to skip
			}
			for gap := 1; gap <= maxGap; gap++ {
				for start := 0; start+(n-1)*gap < cols; start++ {
					key := v.key[:0]
					for j := range n {
						key = appendToken(key, r*cols+start+j*gap)
					}
					v.key = key
					if id, ok := grams[string(key)]; ok {
						counts[id]++
					}
				}
			}
		}
		row := y[r*v.width : (r+1)*v.width]
		for id, c := range counts {
			if c == 0 {
				continue
			}
			w := 1.0
			if v.weights != nil {
				w = v.weights[id]
			}
			switch v.mode {
			case tfidfTF:
				row[v.columns[id]] += float32(c)
			case tfidfIDF:
				row[v.columns[id]] += float32(w)
			case tfidfTFIDF:
				row[v.columns[id]] += float32(c * w)
			}
		}
	}
	return []*Tensor{out}, nil
}
