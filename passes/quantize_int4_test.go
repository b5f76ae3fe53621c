package passes

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// TestQuantizeInt4Layers checks the rewrite of a MatMul's B (blocks along
// its rows) and a Gemm's transposed B (along its columns), with K = 40 and
// blocks of 16, the last one 8 long: INT4 data, a [3, N] or [N, 3] scale,
// the axis and block_size attributes, no zero point; every dequantized
// weight within half a step of its block's scale of the float one, zeros
// exact, each block's largest magnitude at ±7 steps; and the output close
// to the float model's.
func TestQuantizeInt4Layers(t *testing.T) {
	b := newBuilder(t, 21)
	x := b.input("x", 2, 40)
	w := b.weights("W", 1, -1, 1, 40, 3)
	w.Init.RawData = nil
	wv := make([]float32, 120)
	for i := range wv {
		wv[i] = float32(math.Sin(float64(i))) * float32(1+i/48) // blocks of different magnitudes
	}
	wv[5] = 0
	if err := onnx.SetFloat32s(w.Init, onnx.TensorProto_FLOAT, wv); err != nil {
		t.Fatal(err)
	}
	h := b.node("MatMul", "h", x, w)
	gw := b.weights("G", 2, -1, 1, 4, 3)
	gv := floats(t, gw)
	g := b.node("Gemm", "y", h, gw, b.init("C", []int64{4}, 1, 2, 3, 4))
	g.Producer.SetAttr(intAttribute("transB", 1))
	b.output(g)
	inputs, _ := runtime.RandomInputs(b.g, 1, -1, 1, nil)
	want := run(t, b.m, inputs)["y"]
	p := newQuantizeInt4().(*int4Quantization)
	p.BlockSize = 16
	res, m := applyQuant(t, b.m, p, &Env{})
	if res.Changes != 2 || opTypes(m.Graph) != "DequantizeLinear DequantizeLinear MatMul Gemm" {
		t.Fatalf("%d changes, nodes %q", res.Changes, opTypes(m.Graph))
	}
	for _, tc := range []struct {
		weight    string
		float     []float32
		axis      int64
		scaleDims []int64
	}{{"W", wv, 0, []int64{3, 3}}, {"G", gv, 1, []int64{4, 1}}} {
		dq := m.Graph.Lookup(tc.weight + "_dequantized").Producer
		if len(dq.Inputs) != 2 || dq.Inputs[0].ElemType() != onnx.TensorProto_INT4 || dq.AttrInt("axis", -1) != tc.axis || dq.AttrInt("block_size", 0) != 16 {
			t.Fatalf("%s: DequantizeLinear reads %d inputs (%v), axis %d, block %d", tc.weight, len(dq.Inputs), dq.Inputs[0].ElemType(), dq.AttrInt("axis", -1), dq.AttrInt("block_size", 0))
		}
		if dims := dq.Inputs[1].Init.GetDims(); !slices.Equal(dims, tc.scaleDims) {
			t.Errorf("%s: scale dims %v, want %v", tc.weight, dims, tc.scaleDims)
		}
		if got := dq.Inputs[0].Init.GetRawData(); len(got) != (len(tc.float)+1)/2 {
			t.Errorf("%s: %d bytes of int4 data for %d weights", tc.weight, len(got), len(tc.float))
		}
		scales := floats(t, dq.Inputs[1])
		deq := fetch(t, m, inputs, dq.Outputs[0].Name)[dq.Outputs[0].Name].Data.([]float32)
		cols := int(dq.Inputs[0].Init.GetDims()[1])
		peak := map[int]float32{}
		for i, v := range tc.float {
			r, c := i/cols, i%cols
			k := r/16*cols + c // axis 0: [3, cols] scales
			if tc.axis == 1 {
				k = r*int(tc.scaleDims[1]) + c/16
			}
			s := scales[k]
			switch {
			case v == 0 && deq[i] != 0:
				t.Errorf("%s: zero weight %d dequantizes to %g", tc.weight, i, deq[i])
			case math.Abs(float64(deq[i]-v)) > float64(s)/2*(1+1e-6):
				t.Errorf("%s: weight %d = %g dequantizes to %g, more than half a step (%g) away", tc.weight, i, v, deq[i], s)
			}
			if a := float32(math.Abs(float64(deq[i]))); a > peak[k] {
				peak[k] = a
			}
		}
		for k, a := range peak {
			if a != 7*scales[k] {
				t.Errorf("%s: block %d peaks at %g, want 7·%g", tc.weight, k, a, scales[k])
			}
		}
	}
	got := run(t, m, inputs)["y"]
	// 40 products of weights off by at most 1/14 of their block's largest
	// (at most 3) and inputs in [-1, 1), through a Gemm of 4 more.
	if maxAbs, _, ok := runtime.Compare(got, want, 0, 40*3.0/14*4); !ok {
		t.Errorf("output differs by %g", maxAbs)
	}
}

// TestQuantizeInt4Opset checks the raise of the default opset import to
// 21 and its refusals.
func TestQuantizeInt4Opset(t *testing.T) {
	build := func(opset int64, extra func(b *builder, x *graph.Value) *graph.Value) *builder {
		b := newBuilder(t, opset)
		x := b.input("x", 2, 16)
		h := b.node("Relu", "h", b.node("MatMul", "mm", x, b.weights("W", 1, -1, 1, 16, 16)))
		b.output(extra(b, h))
		return b
	}
	plain := func(b *builder, x *graph.Value) *graph.Value { return b.node("Softmax", "y", x) }
	groupNorm := func(b *builder, x *graph.Value) *graph.Value { return b.node("GroupNormalization", "y", x) }
	reduce := func(b *builder, x *graph.Value) *graph.Value {
		y := b.node("ReduceMean", "y", x)
		y.Producer.SetAttr(&onnx.AttributeProto{Name: proto.String("axes"), Type: onnx.AttributeProto_INTS.Enum(), Ints: []int64{1}})
		return y
	}
	for _, tc := range []struct {
		name   string
		opset  int64
		extra  func(b *builder, x *graph.Value) *graph.Value
		note   string
		errStr string
	}{
		{"opset 13", 13, plain, "default opset import raised from 13 to 21", ""},
		{"opset 21", 21, plain, "", ""},
		{"reduce axes attribute", 13, reduce, "", `"ReduceMean_y" (ReduceMean) has the axes attribute, an input from opset 18`},
		// Opset 21 made its scale and bias per channel.
		{"group normalization", 18, groupNorm, "", `"GroupNormalization_y" (GroupNormalization) is not known to mean the same at opset 21`},
		{"opset 12", 12, plain, "", "the model imports opset 12: operators changed at 13"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := build(tc.opset, tc.extra)
			inputs, _ := runtime.RandomInputs(b.g, 1, -1, 1, nil)
			res, err := newQuantizeInt4().Run(b.m, &Env{})
			if tc.errStr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errStr) {
					t.Fatalf("%v, want %q", err, tc.errStr)
				}
				if v, _ := b.m.Opset(""); v != tc.opset {
					t.Errorf("a refused model's opset became %d", v)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := b.m.Opset(""); v != 21 || res.Changes != 1 {
				t.Errorf("opset %d, %d changes", v, res.Changes)
			}
			if notes := strings.Join(res.Notes, "\n"); tc.note != "" && !strings.Contains(notes, tc.note) || tc.note == "" && strings.Contains(notes, "raised") {
				t.Errorf("notes %q", notes)
			}
			run(t, b.m, inputs)
		})
	}
}

// TestQuantizeInt4Refusals checks what the pass leaves or refuses.
func TestQuantizeInt4Refusals(t *testing.T) {
	b := newBuilder(t, 21)
	x := b.input("x", 2, 16)
	// A constant A, and a B by a vector: no blocks along K for either.
	b.output(b.node("MatMul", "a", b.weights("A", 1, -1, 1, 2, 16), b.node("Relu", "r", x)))
	b.output(b.node("MatMul", "v", x, b.weights("V", 2, -1, 1, 16)))
	res, _ := applyQuant(t, b.m, newQuantizeInt4(), &Env{})
	notes := strings.Join(res.Notes, "\n")
	if res.Changes != 0 || !strings.Contains(notes, `weight "A" kept in float: "MatMul_a" (MatMul) reads it as A`) ||
		!strings.Contains(notes, `weight "V" kept in float: "MatMul_v" (MatMul) multiplies by a vector`) {
		t.Errorf("%d changes, notes:\n%s", res.Changes, notes)
	}
	for _, tc := range []struct {
		configure func(p *int4Quantization)
		want      string
	}{
		{func(p *int4Quantization) { p.BlockSize = 8 }, "--block-size 8: DequantizeLinear needs blocks of at least 16"},
		{func(p *int4Quantization) { p.OpTypes = []string{"Conv"} }, "--op-types: Conv: int4 blocks are for MatMul and Gemm"},
	} {
		p := newQuantizeInt4().(*int4Quantization)
		tc.configure(p)
		if _, err := p.Run(b.m, &Env{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}
}

// TestQuantizeInt4Digits quantizes the digits MLP's Gemm weights to int4
// blocks of 32 and checks the accuracy on the held-out samples against
// fp32, and the size: 4 bits a weight and a float32 scale a block.
func TestQuantizeInt4Digits(t *testing.T) {
	d := loadDigits(t, "digits_mlp", "mlp")
	fp32 := d.accuracy(t, d.model)
	before := d.model.Stats()
	res, m := applyQuant(t, d.model, newQuantizeInt4(), &Env{})
	int4Acc := d.accuracy(t, m)
	after := m.Stats()
	t.Logf("digits_mlp int4 blocks of 32: %d weights; accuracy %.4f (fp32 %.4f); parameters %d → %d bytes (%.2fx); %s",
		res.Changes, int4Acc, fp32, before.Bytes, after.Bytes, float64(before.Bytes)/float64(after.Bytes), strings.Join(res.Notes, "; "))
	if res.Changes != 3 {
		t.Errorf("%d weights quantized, want 3", res.Changes)
	}
	// int4 keeps 15 levels a block: allow a point of accuracy, four of
	// the 397 samples.
	if int4Acc < fp32-0.01 {
		t.Errorf("int4 accuracy %.4f, fp32 %.4f: lost more than a point", int4Acc, fp32)
	}
	var weights, blocks, biases int64
	for _, v := range m.Graph.Initializers {
		n, _ := onnx.NumElements(v.Init.GetDims())
		switch {
		case v.ElemType() == onnx.TensorProto_INT4:
			weights += n
		case strings.HasSuffix(v.Name, "_scale"):
			blocks += n
		default:
			biases += n
		}
	}
	if want := (weights+1)/2 + 4*blocks + 4*biases; after.Bytes > want+3 || 4*(weights+biases) != before.Bytes {
		t.Errorf("%d bytes: %d int4 weights, %d block scales, %d biases (fp32 %d bytes)", after.Bytes, weights, blocks, biases, before.Bytes)
	}
}

// TestQuantizeBlocksElements checks quantizeBlocks against quantizeValue
// element by element, blocked along each axis of a tensor of more than one
// chunk, read from raw data that cannot be viewed in place, with blocks
// that do not divide the axis.
func TestQuantizeBlocksElements(t *testing.T) {
	dims := []int64{5, 37, floatChunk/37 + 11}
	n := int(dims[0] * dims[1] * dims[2])
	rng := rand.New(rand.NewPCG(9, 9))
	w := make([]float32, n)
	raw := make([]byte, 4*n+1)[1:]
	for i := range w {
		w[i] = float32(rng.NormFloat64())
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(w[i]))
	}
	tp := &onnx.TensorProto{Dims: dims, DataType: proto.Int32(int32(onnx.TensorProto_FLOAT)), RawData: raw}
	for axis := range dims {
		for _, block := range []int{16, 32} {
			q, err := quantizeBlocks(tp, axis, block, int4Range)
			if err != nil {
				t.Fatal(err)
			}
			inner := 1
			for _, d := range dims[axis+1:] {
				inner *= int(d)
			}
			dim := int(dims[axis])
			blocks := (dim + block - 1) / block
			scaleOf := func(i int) int { return (i/inner/dim*blocks+i/inner%dim/block)*inner + i%inner }
			maxAbs := make([]float64, len(q.scales))
			for i, x := range w {
				maxAbs[scaleOf(i)] = max(maxAbs[scaleOf(i)], math.Abs(float64(x)))
			}
			bad := 0
			for i, x := range w {
				k := scaleOf(i)
				scale := symmetricParams(maxAbs[k], int4Range)
				if q.scales[k] != scale || int32(q.data[i]) != quantizeValue(x, scale, 0, int4Range) {
					if bad++; bad <= 5 {
						t.Errorf("axis %d, blocks of %d: element %d (%g): %d with scale %g, want %d with %g",
							axis, block, i, x, q.data[i], q.scales[k], quantizeValue(x, scale, 0, int4Range), scale)
					}
				}
			}
		}
	}
}
