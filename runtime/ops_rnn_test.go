package runtime

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/onnx"
)

func TestRNNSuiteCases(t *testing.T) {
	checkSuiteCases(t, []string{"node/test_lstm", "node/test_gru", "node/test_rnn", "node/test_simple_rnn"}, []suiteCase{
		{path: "node/test_lstm_batchwise"},
		{path: "node/test_lstm_defaults"},
		{path: "node/test_lstm_with_initial_bias"},
		{path: "node/test_lstm_with_peepholes"},
		{path: "node/test_gru_batchwise"},
		{path: "node/test_gru_defaults"},
		{path: "node/test_gru_seq_length"},
		{path: "node/test_gru_with_initial_bias"},
		{path: "node/test_rnn_seq_length"},
		{path: "node/test_simple_rnn_batchwise"},
		{path: "node/test_simple_rnn_defaults"},
		{path: "node/test_simple_rnn_with_initial_bias"},
	})
}

// referenceActivation is the spec's definition of each activation the
// recurrent operators take.
func referenceActivation(name string, alpha, beta float64) func(float64) float64 {
	switch strings.ToLower(name) {
	case "sigmoid":
		return func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	case "tanh":
		return math.Tanh
	case "relu":
		return func(x float64) float64 { return math.Max(x, 0) }
	case "leakyrelu":
		return func(x float64) float64 {
			if x < 0 {
				return alpha * x
			}
			return x
		}
	case "hardsigmoid":
		return func(x float64) float64 { return math.Max(0, math.Min(1, alpha*x+beta)) }
	case "scaledtanh":
		return func(x float64) float64 { return alpha * math.Tanh(beta*x) }
	case "affine":
		return func(x float64) float64 { return alpha*x + beta }
	case "elu":
		return func(x float64) float64 {
			if x < 0 {
				return alpha * (math.Exp(x) - 1)
			}
			return x
		}
	case "softsign":
		return func(x float64) float64 { return x / (1 + math.Abs(x)) }
	case "softplus":
		return func(x float64) float64 { return math.Log(1 + math.Exp(x)) }
	case "thresholdedrelu":
		return func(x float64) float64 {
			if x > alpha {
				return x
			}
			return 0
		}
	}
	panic(name)
}

// An rnnCase is a recurrent node, its inputs drawn at random, checked
// against referenceRecurrent.
type rnnCase struct {
	name                    string
	cell                    cellKind
	seq, batch, input, hid  int
	direction               string
	layout                  int64
	lens                    []int32 // nil: no sequence_lens
	initial, bias, peephole bool
	clip                    float32
	acts                    []string
	alphas, betas           []float32
	// funcs are the activations as the reference applies them, per
	// direction: what acts, alphas and betas mean.
	funcs            [][]func(float64) float64
	inputForget, lbr bool
	dtype            onnx.TensorProto_DataType
}

// referenceRecurrent computes Y, Y_h and Y_c (layout 0) from the spec's
// equations, one batch entry and time step at a time, in float64.
func (c *rnnCase) referenceRecurrent(x, w, r, b, h0, c0, p []float64) (y, yh, yc []float64) {
	dirs := 1
	if c.direction == "bidirectional" {
		dirs = 2
	}
	H, I, G := c.hid, c.input, c.cell.gates()
	y = make([]float64, c.seq*dirs*c.batch*H)
	yh = make([]float64, dirs*c.batch*H)
	yc = make([]float64, dirs*c.batch*H)
	clip := func(v float64) float64 {
		if c.clip > 0 {
			return math.Max(-float64(c.clip), math.Min(float64(c.clip), v))
		}
		return v
	}
	for d := range dirs {
		f := c.funcs[d]
		reverse := c.direction == "reverse" || d == 1
		for bi := range c.batch {
			h := make([]float64, H)
			cs := make([]float64, H)
			if h0 != nil {
				copy(h, h0[(d*c.batch+bi)*H:])
			}
			if c0 != nil {
				copy(cs, c0[(d*c.batch+bi)*H:])
			}
			steps := c.seq
			if c.lens != nil {
				steps = int(c.lens[bi])
			}
			for s := range steps {
				t := s
				if reverse {
					t = steps - 1 - s
				}
				// xw[g][j] = x·W_g[j] + Wb, hr[g][j] = h·R_g[j] + Rb.
				xw := make([]float64, G*H)
				hr := make([]float64, G*H)
				for row := range G * H {
					for k := range I {
						xw[row] += x[(t*c.batch+bi)*I+k] * w[(d*G*H+row)*I+k]
					}
					for k := range H {
						hr[row] += h[k] * r[(d*G*H+row)*H+k]
					}
					if b != nil {
						xw[row] += b[d*2*G*H+row]
						hr[row] += b[d*2*G*H+G*H+row]
					}
				}
				next := make([]float64, H)
				switch c.cell {
				case cellRNN:
					for j := range H {
						next[j] = f[0](clip(xw[j] + hr[j]))
					}
				case cellLSTM:
					var pi, po, pf float64
					for j := range H {
						if p != nil {
							pi, po, pf = p[d*3*H+j], p[d*3*H+H+j], p[d*3*H+2*H+j]
						}
						in := f[0](clip(xw[j] + hr[j] + pi*cs[j]))
						forget := f[0](clip(xw[2*H+j] + hr[2*H+j] + pf*cs[j]))
						if c.inputForget {
							forget = 1 - in
						}
						cell := f[1](clip(xw[3*H+j] + hr[3*H+j]))
						cs[j] = forget*cs[j] + in*cell
						out := f[0](clip(xw[H+j] + hr[H+j] + po*cs[j]))
						next[j] = out * f[2](cs[j])
					}
				case cellGRU:
					z := make([]float64, H)
					rg := make([]float64, H)
					for j := range H {
						z[j] = f[0](clip(xw[j] + hr[j]))
						rg[j] = f[0](clip(xw[H+j] + hr[H+j]))
					}
					for j := range H {
						var cand float64
						if c.lbr {
							cand = xw[2*H+j] + rg[j]*hr[2*H+j]
						} else {
							// (r⊙h)·R_h + Rb_h, recomputed with the reset hidden state.
							sum := 0.0
							for k := range H {
								sum += rg[k] * h[k] * r[(d*G*H+2*H+j)*H+k]
							}
							if b != nil {
								sum += b[d*2*G*H+G*H+2*H+j]
							}
							cand = xw[2*H+j] + sum
						}
						next[j] = (1-z[j])*f[1](clip(cand)) + z[j]*h[j]
					}
				}
				h = next
				copy(y[((t*dirs+d)*c.batch+bi)*H:], h)
			}
			copy(yh[(d*c.batch+bi)*H:], h)
			copy(yc[(d*c.batch+bi)*H:], cs)
		}
	}
	return y, yh, yc
}

// transposed reorders a row-major tensor of shape by perm.
func transposed(v []float64, shape, perm []int) []float64 {
	out := make([]float64, len(v))
	outShape := make([]int, len(perm))
	for i, p := range perm {
		outShape[i] = shape[p]
	}
	strides := stridesOf(shape)
	forEachIndex(outShape, func(idx []int, flat int) {
		at := 0
		for i, p := range perm {
			at += idx[i] * strides[p]
		}
		out[flat] = v[at]
	})
	return out
}

func fromFloat64s(dt onnx.TensorProto_DataType, v []float64, shape ...int) *Tensor {
	if dt == onnx.TensorProto_DOUBLE {
		return &Tensor{DType: dt, Shape: shape, Data: v}
	}
	d := make([]float32, len(v))
	for i, x := range v {
		d[i] = float32(x)
	}
	return &Tensor{DType: dt, Shape: shape, Data: d}
}

func (c *rnnCase) run(t *testing.T, rng *rand.Rand) {
	dirs := 1
	if c.direction == "bidirectional" {
		dirs = 2
	}
	H, G := c.hid, c.cell.gates()
	random := func(shape ...int) []float64 {
		return float64s(randomTensor(rng, onnx.TensorProto_DOUBLE, shape...))
	}
	x := random(c.seq, c.batch, c.input)
	w := random(dirs, G*H, c.input)
	r := random(dirs, G*H, H)
	var b, h0, c0, p []float64
	if c.bias {
		b = random(dirs, 2*G*H)
	}
	if c.initial {
		h0, c0 = random(dirs, c.batch, H), random(dirs, c.batch, H)
	}
	if c.peephole {
		p = random(dirs, 3*H)
	}
	// The inputs are rounded to the computing type first, so that the
	// reference sees the same numbers.
	round := func(v []float64) []float64 {
		if v == nil || c.dtype == onnx.TensorProto_DOUBLE {
			return v
		}
		for i := range v {
			v[i] = float64(float32(v[i]))
		}
		return v
	}
	x, w, r, b, h0, c0, p = round(x), round(w), round(r), round(b), round(h0), round(c0), round(p)
	wantY, wantYh, wantYc := c.referenceRecurrent(x, w, r, b, h0, c0, p)

	call := newOpCall(c.cell.String(), 14).int("hidden_size", int64(H)).str("direction", c.direction).int("layout", c.layout)
	call.outputs = 2
	if c.cell == cellLSTM {
		call.outputs = 3
		call.int("input_forget", boolInt(c.inputForget))
	}
	if c.cell == cellGRU {
		call.int("linear_before_reset", boolInt(c.lbr))
	}
	if c.clip > 0 {
		call.float("clip", c.clip)
	}
	if c.acts != nil {
		a := &onnx.AttributeProto{Name: proto.String("activations"), Type: onnx.AttributeProto_STRINGS.Enum()}
		for _, s := range c.acts {
			a.Strings = append(a.Strings, []byte(s))
		}
		call.attrs = append(call.attrs, a)
	}
	for _, fl := range []struct {
		name string
		v    []float32
	}{{"activation_alpha", c.alphas}, {"activation_beta", c.betas}} {
		if fl.v != nil {
			call.attrs = append(call.attrs, &onnx.AttributeProto{Name: proto.String(fl.name), Type: onnx.AttributeProto_FLOATS.Enum(), Floats: fl.v})
		}
	}
	batchFirst := c.layout == 1
	xIn := fromFloat64s(c.dtype, x, c.seq, c.batch, c.input)
	state := func(v []float64) *Tensor {
		if v == nil {
			return nil
		}
		if batchFirst {
			return fromFloat64s(c.dtype, transposed(v, []int{dirs, c.batch, H}, []int{1, 0, 2}), c.batch, dirs, H)
		}
		return fromFloat64s(c.dtype, v, dirs, c.batch, H)
	}
	if batchFirst {
		xIn = fromFloat64s(c.dtype, transposed(x, []int{c.seq, c.batch, c.input}, []int{1, 0, 2}), c.batch, c.seq, c.input)
	}
	inputs := []*Tensor{xIn, fromFloat64s(c.dtype, w, dirs, G*H, c.input), fromFloat64s(c.dtype, r, dirs, G*H, H)}
	var bias *Tensor
	if b != nil {
		bias = fromFloat64s(c.dtype, b, dirs, 2*G*H)
	}
	var lens *Tensor
	if c.lens != nil {
		lens = mustTensor(t, c.lens, c.batch)
	}
	inputs = append(inputs, bias, lens, state(h0))
	if c.cell == cellLSTM {
		var peep *Tensor
		if p != nil {
			peep = fromFloat64s(c.dtype, p, dirs, 3*H)
		}
		inputs = append(inputs, state(c0), peep)
	}
	for len(inputs) > 0 && inputs[len(inputs)-1] == nil {
		inputs = inputs[:len(inputs)-1]
	}
	// Run twice: the second run reuses the first one's buffers.
	for run := range 2 {
		got, err := call.run(inputs...)
		if err != nil {
			t.Fatal(err)
		}
		yShape, stateShape := []int{c.seq, dirs, c.batch, H}, []int{dirs, c.batch, H}
		y, yh, yc := wantY, wantYh, wantYc
		if batchFirst {
			y = transposed(wantY, yShape, []int{2, 0, 1, 3})
			yh, yc = transposed(wantYh, stateShape, []int{1, 0, 2}), transposed(wantYc, stateShape, []int{1, 0, 2})
			yShape, stateShape = []int{c.batch, c.seq, dirs, H}, []int{c.batch, dirs, H}
		}
		for k, want := range [][]float64{y, yh, yc}[:call.outputs] {
			t.Run(fmt.Sprintf("run %d output %d", run, k), func(t *testing.T) {
				if got[k].DType != c.dtype {
					t.Fatalf("got %s, want %s", got[k], dtypeName(c.dtype))
				}
				shape := stateShape
				if k == 0 {
					shape = yShape
				}
				checkAgainst(t, got[k], shape, want)
			})
		}
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Attributes and inputs the suite's cases leave out (directions, layout 1,
// sequence_lens with reverse, activations with alpha and beta, clip,
// input_forget, linear_before_reset 0, double), against the spec's
// equations in float64.
func TestRecurrentAgainstReference(t *testing.T) {
	sigmoid, tanh := referenceActivation("Sigmoid", 0, 0), referenceActivation("Tanh", 0, 0)
	tests := []rnnCase{
		{name: "LSTM bidirectional lens initial peepholes", cell: cellLSTM, seq: 4, batch: 3, input: 5, hid: 3,
			direction: "bidirectional", lens: []int32{4, 1, 3}, initial: true, bias: true, peephole: true,
			funcs: [][]func(float64) float64{{sigmoid, tanh, tanh}, {sigmoid, tanh, tanh}}},
		{name: "LSTM reverse layout 1 lens", cell: cellLSTM, seq: 3, batch: 2, input: 2, hid: 4,
			direction: "reverse", layout: 1, lens: []int32{2, 3}, bias: true, initial: true,
			funcs: [][]func(float64) float64{{sigmoid, tanh, tanh}}},
		{name: "LSTM input_forget clip activations", cell: cellLSTM, seq: 3, batch: 2, input: 3, hid: 2,
			direction: "forward", bias: true, inputForget: true, clip: 0.5,
			acts: []string{"HardSigmoid", "LeakyRelu", "Softsign"}, alphas: []float32{0.3, 0.2}, betas: []float32{0.6},
			funcs: [][]func(float64) float64{{referenceActivation("hardsigmoid", 0.3, 0.6), referenceActivation("leakyrelu", 0.2, 0), referenceActivation("softsign", 0, 0)}}},
		{name: "GRU bidirectional linear_before_reset 0", cell: cellGRU, seq: 4, batch: 2, input: 3, hid: 3,
			direction: "bidirectional", bias: true, initial: true, lens: []int32{2, 4},
			funcs: [][]func(float64) float64{{sigmoid, tanh}, {sigmoid, tanh}}},
		{name: "GRU reverse linear_before_reset 1 layout 1", cell: cellGRU, seq: 3, batch: 2, input: 2, hid: 2,
			direction: "reverse", layout: 1, bias: true, lbr: true, initial: true,
			funcs: [][]func(float64) float64{{sigmoid, tanh}}},
		{name: "GRU activations per direction", cell: cellGRU, seq: 2, batch: 1, input: 2, hid: 2,
			direction: "bidirectional", bias: true,
			acts: []string{"Sigmoid", "Tanh", "HardSigmoid", "ScaledTanh"}, alphas: []float32{0.25, 1.5}, betas: []float32{0.4, 0.7},
			funcs: [][]func(float64) float64{{sigmoid, tanh}, {referenceActivation("hardsigmoid", 0.25, 0.4), referenceActivation("scaledtanh", 1.5, 0.7)}}},
		{name: "RNN bidirectional relu", cell: cellRNN, seq: 3, batch: 2, input: 3, hid: 4,
			direction: "bidirectional", bias: true, initial: true, lens: []int32{3, 2}, acts: []string{"Relu"},
			funcs: [][]func(float64) float64{{referenceActivation("relu", 0, 0)}, {referenceActivation("relu", 0, 0)}}},
		{name: "RNN affine elu clip double", cell: cellRNN, seq: 3, batch: 2, input: 2, hid: 2,
			direction: "bidirectional", bias: true, clip: 0.7, acts: []string{"Affine", "Elu"}, alphas: []float32{2, 0.5}, betas: []float32{0.1},
			dtype: onnx.TensorProto_DOUBLE,
			funcs: [][]func(float64) float64{{referenceActivation("affine", 2, 0.1)}, {referenceActivation("elu", 0.5, 0)}}},
		{name: "RNN zero-length sequence", cell: cellRNN, seq: 2, batch: 2, input: 2, hid: 3,
			direction: "forward", initial: true, lens: []int32{0, 2},
			funcs: [][]func(float64) float64{{tanh}}},
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for _, tc := range tests {
		if tc.dtype == onnx.TensorProto_UNDEFINED {
			tc.dtype = onnx.TensorProto_FLOAT
		}
		t.Run(tc.name, func(t *testing.T) { tc.run(t, rng) })
	}
}

func TestRecurrentErrors(t *testing.T) {
	x := mustTensor(t, make([]float32, 2*1*3), 2, 1, 3)
	w := mustTensor(t, make([]float32, 1*4*3), 1, 4, 3)
	r := mustTensor(t, make([]float32, 1*4*4), 1, 4, 4)
	tests := []struct {
		name  string
		call  *opCall
		in    []*Tensor
		words []string
	}{
		{"unknown activation", newOpCall("RNN", 14).str("direction", "forward"), nil, nil},
		{"hidden_size differs", newOpCall("RNN", 14).int("hidden_size", 3), []*Tensor{x, w, r}, []string{"hidden_size 3"}},
		{"W shape", newOpCall("GRU", 14), []*Tensor{x, w, r}, []string{"W", "[1 12 3]"}},
		{"long sequence", newOpCall("RNN", 14), []*Tensor{x, w, r, nil, mustTensor(t, []int32{3}, 1)}, []string{"sequence_lens[0] = 3"}},
		{"direction", newOpCall("LSTM", 14).str("direction", "sideways"), []*Tensor{x, w, r}, []string{"sideways"}},
	}
	tests[0].call.attrs = append(tests[0].call.attrs, &onnx.AttributeProto{Name: proto.String("activations"), Type: onnx.AttributeProto_STRINGS.Enum(), Strings: [][]byte{[]byte("Swish")}})
	tests[0].in, tests[0].words = []*Tensor{x, w, r}, []string{`unknown activation "Swish"`}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.call.outputs = 2
			_, err := tc.call.run(tc.in...)
			wantError(t, err, tc.words...)
		})
	}
}

// An LSTM of a small sequence model: 32 steps, batch 8, 64 inputs, 128
// hidden units.
func BenchmarkLSTM32x8x64x128(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 1))
	x := randomTensor(rng, onnx.TensorProto_FLOAT, 32, 8, 64)
	w := randomTensor(rng, onnx.TensorProto_FLOAT, 1, 4*128, 64)
	r := randomTensor(rng, onnx.TensorProto_FLOAT, 1, 4*128, 128)
	bias := randomTensor(rng, onnx.TensorProto_FLOAT, 1, 8*128)
	call := newOpCall("LSTM", 14).int("hidden_size", 128)
	call.outputs = 3
	benchmarkOp(b, call, x, w, r, bias)
}
