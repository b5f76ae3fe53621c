package runtime

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/onnx"
)

// TestSignalSuiteCases runs every conformance case of DFT, STFT, the
// window functions, MelWeightMatrix and TfIdfVectorizer (rtol 1e-3,
// atol 1e-7). The windows' _expanded cases are their function bodies.
func TestSignalSuiteCases(t *testing.T) {
	checkSuiteCases(t, []string{
		"node/test_dft", "node/test_stft", "node/test_hannwindow", "node/test_hammingwindow",
		"node/test_blackmanwindow", "node/test_melweightmatrix", "node/test_tfidfvectorizer",
	}, []suiteCase{
		{path: "node/test_dft"},
		{path: "node/test_dft_axis"},
		{path: "node/test_dft_inverse"},
		{path: "node/test_stft"},
		{path: "node/test_stft_with_window"},
		{path: "node/test_hannwindow"},
		{path: "node/test_hannwindow_expanded"},
		{path: "node/test_hannwindow_symmetric"},
		{path: "node/test_hannwindow_symmetric_expanded"},
		{path: "node/test_hammingwindow"},
		{path: "node/test_hammingwindow_expanded"},
		{path: "node/test_hammingwindow_symmetric"},
		{path: "node/test_hammingwindow_symmetric_expanded"},
		{path: "node/test_blackmanwindow"},
		{path: "node/test_blackmanwindow_expanded"},
		{path: "node/test_blackmanwindow_symmetric"},
		{path: "node/test_blackmanwindow_symmetric_expanded"},
		{path: "node/test_melweightmatrix"},
		{path: "node/test_tfidfvectorizer_tf_batch_onlybigrams_skip0"},
		{path: "node/test_tfidfvectorizer_tf_batch_onlybigrams_skip5"},
		{path: "node/test_tfidfvectorizer_tf_batch_uniandbigrams_skip5"},
		{path: "node/test_tfidfvectorizer_tf_only_bigrams_skip0"},
		{path: "node/test_tfidfvectorizer_tf_onlybigrams_levelempty"},
		{path: "node/test_tfidfvectorizer_tf_onlybigrams_skip5"},
		{path: "node/test_tfidfvectorizer_tf_uniandbigrams_skip5"},
	})
}

// naiveDFT transforms x by the definition: X[k] = sum x[j] exp(∓2πi jk/n),
// divided by n for the inverse.
func naiveDFT(x []complex128, inverse bool) []complex128 {
	n := len(x)
	sign := -1.0
	if inverse {
		sign = 1
	}
	out := make([]complex128, n)
	for k := range out {
		for j, v := range x {
			out[k] += v * cmplx.Exp(complex(0, sign*2*math.Pi*float64(j*k)/float64(n)))
		}
		if inverse {
			out[k] /= complex(float64(n), 0)
		}
	}
	return out
}

func float64Tensor(t *testing.T, shape []int, v []float64) *Tensor {
	t.Helper()
	return mustTensor(t, v, shape...)
}

func randomFloats(rng *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = 2*rng.Float64() - 1
	}
	return v
}

// TestDFTMatchesDefinition checks DFT-17 on a [2, 5, 3, parts] signal
// along each signal axis, cut and padded by dft_length, one-sided and
// inverse, against the definition.
func TestDFTMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shape := []int{2, 5, 3}
	for _, parts := range []int{1, 2} {
		x := randomFloats(rng, 2*5*3*parts)
		for _, axis := range []int{1, 2} {
			for _, length := range []int{0, 2, 7} { // 0: no dft_length
				for _, onesided := range []int64{0, 1} {
					for _, inverse := range []int64{0, 1} {
						if onesided == 1 && parts == 2 {
							continue
						}
						call := newOpCall("DFT", 17).int("axis", int64(axis)).int("onesided", onesided).int("inverse", inverse)
						ins := []*Tensor{float64Tensor(t, append(append([]int(nil), shape...), parts), x)}
						n := shape[axis]
						if length > 0 {
							n = length
							ins = append(ins, i64(t, dims(), int64(length)))
						}
						got, err := call.run(ins...)
						if err != nil {
							t.Fatalf("parts %d axis %d length %d onesided %d inverse %d: %v", parts, axis, length, onesided, inverse, err)
						}
						wantShape, want := dftByDefinition(x, shape, parts, axis, n, onesided == 1, inverse == 1)
						wantClose(t, got[0], wantShape, want...)
					}
				}
			}
		}
	}
}

// dftByDefinition transforms the signal x of shape [shape..., parts]
// along axis with length n.
func dftByDefinition(x []float64, shape []int, parts, axis, n int, onesided, inverse bool) ([]int, []float64) {
	bins := n
	if onesided {
		bins = n/2 + 1
	}
	outShape := append(append([]int(nil), shape...), 2)
	outShape[axis] = bins
	outer, _, inner := axisSplit(shape, axis)
	out := make([]float64, outer*bins*inner*2)
	for o := range outer {
		for i := range inner {
			line := make([]complex128, n)
			for j := 0; j < min(n, shape[axis]); j++ {
				at := ((o*shape[axis]+j)*inner + i) * parts
				line[j] = complex(x[at], 0)
				if parts == 2 {
					line[j] = complex(x[at], x[at+1])
				}
			}
			res := naiveDFT(line, inverse)
			for k := range bins {
				at := ((o*bins+k)*inner + i) * 2
				out[at], out[at+1] = real(res[k]), imag(res[k])
			}
		}
	}
	return outShape, out
}

func TestDFT20TakesAxisInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	x := float64Tensor(t, dims(2, 4, 3, 1), randomFloats(rng, 24))
	want, err := newOpCall("DFT", 17).int("axis", 2).run(x)
	if err != nil {
		t.Fatal(err)
	}
	for _, axis := range []int64{2, -2} {
		got, err := newOpCall("DFT", 20).run(x, nil, i64(t, dims(), axis))
		if err != nil {
			t.Fatal(err)
		}
		wantClose(t, got[0], want[0].Shape, float64s(want[0])...)
	}
	// The default axis of DFT-20 is -2, the last signal axis.
	got, err := newOpCall("DFT", 20).run(x)
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, got[0], want[0].Shape, float64s(want[0])...)
	_, err = newOpCall("DFT", 20).int("axis", 1).run(x)
	wantError(t, err, "axis as an input")
}

func TestDFTRejects(t *testing.T) {
	real3 := f32(t, dims(1, 3, 1), 1, 2, 3)
	for _, tt := range []struct {
		name   string
		call   *opCall
		inputs []*Tensor
		words  []string
	}{
		{"three parts", newOpCall("DFT", 17), []*Tensor{f32(t, dims(1, 1, 3), 1, 2, 3)}, []string{"last dimension of 1 (real) or 2 (complex)"}},
		{"rank 1", newOpCall("DFT", 17), []*Tensor{f32(t, dims(1), 1)}, []string{"last dimension"}},
		{"axis on the parts", newOpCall("DFT", 17).int("axis", 2), []*Tensor{real3}, []string{"not a signal axis"}},
		{"axis out of range", newOpCall("DFT", 17).int("axis", 5), []*Tensor{real3}, []string{"not a signal axis"}},
		{"zero length", newOpCall("DFT", 17), []*Tensor{real3, i64(t, dims(), 0)}, []string{"dft_length 0"}},
		{"two lengths", newOpCall("DFT", 17), []*Tensor{real3, i64(t, dims(2), 3, 3)}, []string{"dft_length must hold one element"}},
		{"onesided complex", newOpCall("DFT", 17).int("onesided", 1), []*Tensor{f32(t, dims(1, 1, 2), 1, 2)}, []string{"onesided", "complex"}},
		{"integer signal", newOpCall("DFT", 17), []*Tensor{i64(t, dims(1, 1, 1), 1)}, []string{"floating-point"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.call.run(tt.inputs...)
			wantError(t, err, tt.words...)
		})
	}
}

// TestSTFTMatchesDefinition checks a complex, two-sided STFT with a
// window against DFTs of the windowed frames.
func TestSTFTMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const batch, length, frame, step = 2, 11, 4, 3
	x := randomFloats(rng, batch*length*2)
	window := randomFloats(rng, frame)
	got, err := newOpCall("STFT", 17).int("onesided", 0).run(
		float64Tensor(t, dims(batch, length, 2), x), i64(t, dims(), step),
		float64Tensor(t, dims(frame), window), i64(t, dims(), frame))
	if err != nil {
		t.Fatal(err)
	}
	frames := (length-frame)/step + 1
	var want []float64
	for b := range batch {
		for f := range frames {
			line := make([]complex128, frame)
			for j := range line {
				at := (b*length + f*step + j) * 2
				line[j] = complex(window[j]*x[at], window[j]*x[at+1])
			}
			for _, v := range naiveDFT(line, false) {
				want = append(want, real(v), imag(v))
			}
		}
	}
	wantClose(t, got[0], dims(batch, frames, frame, 2), want...)
}

func TestSTFTRejects(t *testing.T) {
	signal := f32(t, dims(1, 8, 1), 1, 2, 3, 4, 5, 6, 7, 8)
	window := f32(t, dims(4), 1, 1, 1, 1)
	for _, tt := range []struct {
		name   string
		inputs []*Tensor
		words  []string
	}{
		{"no frame length", []*Tensor{signal, i64(t, dims(), 2)}, []string{"frame length"}},
		{"lengths differ", []*Tensor{signal, i64(t, dims(), 2), window, i64(t, dims(), 3)}, []string{"frame_length 3", "window's length 4"}},
		{"zero step", []*Tensor{signal, i64(t, dims(), 0), window}, []string{"frame_step 0"}},
		{"frame too long", []*Tensor{signal, i64(t, dims(), 1), nil, i64(t, dims(), 9)}, []string{"frame length 9"}},
		{"signal rank", []*Tensor{f32(t, dims(8, 1), 1, 2, 3, 4, 5, 6, 7, 8), i64(t, dims(), 2), window}, []string{"[batch, length, 1 or 2]"}},
		{"onesided complex", []*Tensor{f32(t, dims(1, 4, 2), 1, 2, 3, 4, 5, 6, 7, 8), i64(t, dims(), 2), window}, []string{"onesided"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newOpCall("STFT", 17).run(tt.inputs...)
			wantError(t, err, tt.words...)
		})
	}
}

func TestWindows(t *testing.T) {
	for _, tt := range []struct {
		op       string
		size     int64
		periodic int64
		want     []float64
	}{
		// Hann: 0.5 - 0.5 cos(2πn/N), N = 4 periodic, 2 symmetric.
		{"HannWindow", 4, 1, []float64{0, 0.5, 1, 0.5}},
		{"HannWindow", 3, 0, []float64{0, 1, 0}},
		// Hamming: 25/46 - 21/46 cos(2πn/N).
		{"HammingWindow", 2, 1, []float64{4.0 / 46, 1}},
		// Blackman: 0.42 - 0.5 cos(2πn/N) + 0.08 cos(4πn/N).
		{"BlackmanWindow", 4, 1, []float64{0, 0.34, 1, 0.34}},
		{"BlackmanWindow", 0, 1, nil},
	} {
		got, err := newOpCall(tt.op, 17).int("periodic", tt.periodic).run(mustTensor(t, []int32{int32(tt.size)}))
		if err != nil {
			t.Fatalf("%s %d: %v", tt.op, tt.size, err)
		}
		wantClose(t, got[0], dims(int(tt.size)), tt.want...)
	}
	got, err := newOpCall("HannWindow", 17).int("output_datatype", int64(onnx.TensorProto_DOUBLE)).run(i64(t, dims(), 4))
	if err != nil {
		t.Fatal(err)
	}
	if got[0].DType != onnx.TensorProto_DOUBLE {
		t.Errorf("output_datatype double gave %s", got[0])
	}
	_, err = newOpCall("HannWindow", 17).run(i64(t, dims(), -1))
	wantError(t, err, "size -1")
	_, err = newOpCall("HannWindow", 17).int("output_datatype", int64(onnx.TensorProto_STRING)).run(i64(t, dims(), 4))
	wantError(t, err, "output_datatype", "not a numeric type")
}

func TestMelWeightMatrixOddLength(t *testing.T) {
	// With dft_length 15 the upper edge, half the sample rate, falls one
	// past the 8 spectrum bins: it only closes the last band. Each band
	// peaks at 1 on its centre bin.
	got, err := newOpCall("MelWeightMatrix", 17).run(i64(t, dims(), 4), i64(t, dims(), 15), i64(t, dims(), 8192),
		f32(t, dims(), 0), f32(t, dims(), 4096))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[0].Shape, dims(8, 4)) {
		t.Fatalf("shape %v, want [8 4]", got[0].Shape)
	}
	w := float64s(got[0])
	for band := range 4 {
		peak := 0.0
		for bin := range 8 {
			peak = max(peak, w[bin*4+band])
		}
		if peak != 1 {
			t.Errorf("band %d peaks at %g, want 1", band, peak)
		}
	}
}

func TestMelWeightMatrixRejects(t *testing.T) {
	call := newOpCall("MelWeightMatrix", 17)
	scalar := func(v int64) *Tensor { return i64(t, dims(), v) }
	hz := func(v float32) *Tensor { return f32(t, dims(), v) }
	_, err := call.run(scalar(8), scalar(16), scalar(8192), hz(0), hz(5000))
	wantError(t, err, "half the sample rate")
	_, err = call.run(scalar(0), scalar(16), scalar(8192), hz(0), hz(4096))
	wantError(t, err, "num_mel_bins 0")
	_, err = call.run(scalar(8), scalar(16), scalar(8192), scalar(0), hz(4096))
	wantError(t, err, "lower_edge_hertz", "floating-point")
}

func tfidfCall(mode string, pool *onnx.AttributeProto, counts, indexes []int64, minGram, maxGram, skip int64) *opCall {
	c := newOpCall("TfIdfVectorizer", 9).str("mode", mode).ints("ngram_counts", counts...).ints("ngram_indexes", indexes...).
		int("min_gram_length", minGram).int("max_gram_length", maxGram).int("max_skip_count", skip)
	c.attrs = append(c.attrs, pool)
	return c
}

func intPool(v ...int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String("pool_int64s"), Type: onnx.AttributeProto_INTS.Enum(), Ints: v}
}

func stringPool(v ...string) *onnx.AttributeProto {
	a := &onnx.AttributeProto{Name: proto.String("pool_strings"), Type: onnx.AttributeProto_STRINGS.Enum()}
	for _, s := range v {
		a.Strings = append(a.Strings, []byte(s))
	}
	return a
}

func TestTfIdfVectorizerModes(t *testing.T) {
	// The suite's pool: unigrams 2, 3, 5, 4 and bigrams (5,6), (7,8),
	// (6,7). Without skips the input holds 3 three times, 5 once and each
	// bigram once.
	pool := intPool(2, 3, 5, 4, 5, 6, 7, 8, 6, 7)
	x := mustTensor(t, []int64{1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8}, 12)
	weights := &onnx.AttributeProto{Name: proto.String("weights"), Type: onnx.AttributeProto_FLOATS.Enum(),
		Floats: []float32{0.5, 1, 1.5, 2, 2.5, 3, 3.5}}
	for _, tt := range []struct {
		mode string
		want []float64
	}{
		{"TF", []float64{0, 3, 1, 0, 1, 1, 1}},
		{"IDF", []float64{0, 1, 1.5, 0, 2.5, 3, 3.5}},
		{"TFIDF", []float64{0, 3, 1.5, 0, 2.5, 3, 3.5}},
	} {
		call := tfidfCall(tt.mode, pool, []int64{0, 4}, []int64{0, 1, 2, 3, 4, 5, 6}, 1, 2, 0)
		call.attrs = append(call.attrs, weights)
		got, err := call.run(x)
		if err != nil {
			t.Fatalf("%s: %v", tt.mode, err)
		}
		wantClose(t, got[0], dims(7), tt.want...)
	}
}

func TestTfIdfVectorizerStrings(t *testing.T) {
	// Unigrams x and y, bigram (x, y); the columns are reversed. Each row
	// counts on its own: the bigram spanning the rows is not counted.
	call := tfidfCall("TF", stringPool("x", "y", "x", "y"), []int64{0, 2}, []int64{2, 1, 0}, 1, 2, 0)
	x := mustTensor(t, []string{"x", "y", "y", "x", "y", "x"}, 2, 3)
	got, err := call.run(x)
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, got[0], dims(2, 3), 1, 2, 1, 1, 1, 2)
	// A token holding a space is one token, not two.
	call = tfidfCall("TF", stringPool("x y"), []int64{0}, []int64{0}, 1, 1, 0)
	got, err = call.run(mustTensor(t, []string{"x", "y", "x y"}, 3))
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, got[0], dims(1), 1)
}

func TestTfIdfVectorizerRejects(t *testing.T) {
	x := mustTensor(t, []int64{1, 2}, 2)
	both := tfidfCall("TF", intPool(1), []int64{0}, []int64{0}, 1, 1, 0)
	both.attrs = append(both.attrs, stringPool("a"))
	for _, tt := range []struct {
		name  string
		call  *opCall
		x     *Tensor
		words []string
	}{
		{"mode", tfidfCall("BM25", intPool(1), []int64{0}, []int64{0}, 1, 1, 0), x, []string{"mode \"BM25\""}},
		{"two pools", both, x, []string{"exactly one of pool_int64s and pool_strings"}},
		{"uneven bigrams", tfidfCall("TF", intPool(1, 2, 3), []int64{0, 0}, []int64{0}, 2, 2, 0), x, []string{"ngram_counts"}},
		{"indexes", tfidfCall("TF", intPool(1, 2), []int64{0}, []int64{0}, 1, 1, 0), x, []string{"ngram_indexes has 1 entries for 2 n-grams"}},
		{"gram lengths", tfidfCall("TF", intPool(1), []int64{0}, []int64{0}, 2, 1, 0), x, []string{"min_gram_length 2"}},
		{"strings for integers", tfidfCall("TF", intPool(1), []int64{0}, []int64{0}, 1, 1, 0), mustTensor(t, []string{"a"}, 1), []string{"string"}},
		{"integers for strings", tfidfCall("TF", stringPool("a"), []int64{0}, []int64{0}, 1, 1, 0), x, []string{"int64"}},
		{"rank 3", tfidfCall("TF", intPool(1), []int64{0}, []int64{0}, 1, 1, 0), mustTensor(t, []int64{1}, 1, 1, 1), []string{"[C] or [N, C]"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.call.run(tt.x)
			wantError(t, err, tt.words...)
		})
	}
}

func TestSignalReuseAcrossRuns(t *testing.T) {
	// The transform's plan and buffers persist between runs; a run with
	// another length must not reuse the old ones.
	p, in, out, err := newOpCall("DFT", 17).compile([]bool{true, true})
	if err != nil {
		t.Fatal(err)
	}
	x := f32(t, dims(1, 4, 1), 1, 2, 3, 4)
	for _, n := range []int64{4, 2, 6} {
		got, err := p.Run(map[string]*Tensor{in[0]: x, in[1]: i64(t, dims(), n)})
		if err != nil {
			t.Fatal(err)
		}
		line := make([]complex128, n)
		for j := 0; j < min(int(n), 4); j++ {
			line[j] = complex(float64(j+1), 0)
		}
		var want []float64
		for _, v := range naiveDFT(line, false) {
			want = append(want, real(v), imag(v))
		}
		wantClose(t, got[out[0]], dims(1, int(n), 2), want...)
	}
}
