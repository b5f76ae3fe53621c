package passes

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// applyQuant runs a quantization pass on m, checks that the result sorts
// and verifies, and returns it after a save and load.
func applyQuant(t *testing.T, m *graph.Model, p Pass, env *Env) (Result, *graph.Model) {
	t.Helper()
	if env == nil {
		env = &Env{}
	}
	res, err := p.Run(m, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Graph.Sort(); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	back, err := graph.FromProto(proto.CloneOf(m.ToProto()))
	if err != nil {
		t.Fatal(err)
	}
	return res, back
}

// fetch runs m on inputs and returns the named values.
func fetch(t *testing.T, m *graph.Model, inputs map[string]*runtime.Tensor, names ...string) map[string]*runtime.Tensor {
	t.Helper()
	plan, err := runtime.Compile(m.Graph)
	if err != nil {
		t.Fatal(err)
	}
	out, err := plan.Fetch(inputs, names)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func floats(t *testing.T, v *graph.Value) []float32 {
	t.Helper()
	if v == nil || v.Init == nil {
		t.Fatalf("%v is not an initializer", v)
	}
	f, err := onnx.Float32s(v.Init)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestQuantizeValue checks the offline quantization against the rounding
// and saturation the ONNX specification gives (round half to even, then
// saturate), by hand and against the runtime's QuantizeLinear, which the
// ONNX conformance suite checks.
func TestQuantizeValue(t *testing.T) {
	i8 := intRange{dt: onnx.TensorProto_INT8, min: -128, max: 127, lo: -127, hi: 127}
	u8 := activationRange(false)
	for _, tc := range []struct {
		x, scale float32
		zp       int32
		r        intRange
		want     int32
	}{
		{0.5, 1, 0, i8, 0}, {1.5, 1, 0, i8, 2}, {2.5, 1, 0, i8, 2}, {-0.5, 1, 0, i8, 0},
		{-1.5, 1, 0, i8, -2}, {-2.5, 1, 0, i8, -2}, {126.5, 1, 0, i8, 126}, {127.5, 1, 0, i8, 127},
		{-128.5, 1, 0, i8, -128}, {1e9, 1, 0, i8, 127}, {float32(math.Inf(-1)), 1, 0, i8, -128},
		{0.25, 0.5, 0, i8, 0}, {0.75, 0.5, 0, i8, 2}, {-0.5, 1, 128, u8, 128}, {-0.5, 1, 3, u8, 3},
		{-200, 1, 128, u8, 0}, {200, 1, 128, u8, 255}, {3.5, 1, -5, i8, -1},
	} {
		if got := quantizeValue(tc.x, tc.scale, tc.zp, tc.r); got != tc.want {
			t.Errorf("quantize(%g / %g + %d) = %d, want %d", tc.x, tc.scale, tc.zp, got, tc.want)
		}
	}

	xs := []float32{0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.3, -0.7, 12.7, 12.75, 42.35, 126.5, 127.5, 128,
		-127.5, -128.5, -129, 1e9, -1e9, float32(math.Inf(1)), float32(math.Inf(-1)), 1e-45, 3.4e38}
	for _, tc := range []struct {
		scale float32
		zp    int32
		r     intRange
	}{{1, 0, i8}, {0.1, 0, i8}, {1.0 / 3, -5, i8}, {0.1, 128, u8}, {0.05, 0, u8}, {smallestNormal, 0, i8}} {
		b := newBuilder(t, 13)
		x := b.input("x", int64(len(xs)))
		scale := b.init("scale", nil, tc.scale)
		var zpData any = []int8{int8(tc.zp)}
		if tc.r.dt == onnx.TensorProto_UINT8 {
			zpData = []uint8{uint8(tc.zp)}
		}
		zpT, err := onnx.NewTensor("zp", tc.r.dt, nil, zpData)
		if err != nil {
			t.Fatal(err)
		}
		b.output(b.node("QuantizeLinear", "y", x, scale, b.g.AddInitializer(zpT)))
		in, _ := runtime.FromSlice(xs, len(xs))
		y := run(t, b.m, map[string]*runtime.Tensor{"x": in})["y"]
		for i, x := range xs {
			var got int32
			switch d := y.Data.(type) {
			case []int8:
				got = int32(d[i])
			case []uint8:
				got = int32(d[i])
			}
			if want := quantizeValue(x, tc.scale, tc.zp, tc.r); got != want {
				t.Errorf("scale %g zp %d: x %g: QuantizeLinear gives %d, quantizeValue %d", tc.scale, tc.zp, x, got, want)
			}
		}
	}
}

// isNormal reports whether s is a positive normal float32.
func isNormal(s float32) bool {
	return s > 0 && s >= smallestNormal && !math.IsInf(float64(s), 0)
}

func TestScaleGuards(t *testing.T) {
	w := weightRange(false)
	for _, tc := range []struct {
		maxAbs float64
		want   float32
	}{{0, 1}, {1e-40, smallestNormal}, {smallestNormal, smallestNormal}, {127, 1}, {254, 2}} {
		if got := symmetricParams(tc.maxAbs, w); got != tc.want || !isNormal(got) {
			t.Errorf("symmetricParams(%g) = %g, want %g", tc.maxAbs, got, tc.want)
		}
	}
	u8 := activationRange(false)
	for _, tc := range []struct {
		lo, hi float64
		scale  float32
		zp     int32
	}{
		{0, 0, 1, 0},                       // a constant zero activation
		{2, 2, 2.0 / 255, 0},               // a constant: the range widens to hold 0
		{-1, 3, 4.0 / 255, 64},             // 1/(4/255) = 63.75
		{-3, -1, 3.0 / 255, 255},           // all negative: 0 is the top
		{-1e-42, 1e-42, smallestNormal, 0}, // a denormal range
	} {
		scale, zp := affineParams(tc.lo, tc.hi, u8)
		if scale != tc.scale || zp != tc.zp || !isNormal(scale) {
			t.Errorf("affineParams(%g, %g) = %g, %d; want %g, %d", tc.lo, tc.hi, scale, zp, tc.scale, tc.zp)
		}
	}
}

// TestQuantizeWeightConv checks the rewrite of a Conv's weight per
// channel: int8 data, one scale per output channel (1 for a channel of
// zeros), zero weights exactly zero, and every dequantized weight within
// half a step of the float one, through the runtime's DequantizeLinear.
func TestQuantizeWeightConv(t *testing.T) {
	for _, perChannel := range []bool{false, true} {
		b := newBuilder(t, 13)
		x := b.input("x", 1, 2, 3, 3)
		w := []float32{
			0.5, 0, -0.25, 0.125, 0, 0, 0.3, -0.7, // channel 0, a pruned weight among them
			0, 0, 0, 0, 0, 0, 0, 0, // channel 1: all zero
			1e-3, -2e-3, 0, 4e-3, 5e-3, -6e-3, 7e-3, 0, // channel 2: small weights
		}
		b.output(b.node("Conv", "y", x, b.init("W", []int64{3, 2, 2, 2}, w...), b.init("B", []int64{3}, 1, 2, 3)))
		p := newQuantizeWeight().(*weightQuantization)
		p.PerChannel = perChannel
		inputs, _ := runtime.RandomInputs(b.g, 1, -1, 1, nil)
		env := &Env{}
		res, m := applyQuant(t, b.m, p, env)
		if res.Changes != 1 || opTypes(m.Graph) != "DequantizeLinear Conv" {
			t.Fatalf("per channel %v: %d changes, nodes %q", perChannel, res.Changes, opTypes(m.Graph))
		}
		dq := m.Graph.Nodes[0]
		if got := dq.AttrInt("axis", -1); perChannel && got != 0 || !perChannel && dq.Attr("axis") != nil {
			t.Errorf("per channel %v: axis attribute %d", perChannel, got)
		}
		data, scale, zp := dq.Inputs[0], dq.Inputs[1], dq.Inputs[2]
		if data.ElemType() != onnx.TensorProto_INT8 || zp.ElemType() != onnx.TensorProto_INT8 || scale.ElemType() != onnx.TensorProto_FLOAT {
			t.Errorf("types %v %v %v", data.ElemType(), scale.ElemType(), zp.ElemType())
		}
		if m.Graph.Lookup("B").Init == nil || m.Graph.Lookup("W") != nil || env.Renamed["W"] != dq.Outputs[0].Name {
			t.Errorf("bias must stay, W go (renamed %v)", env.Renamed)
		}
		scales := floats(t, scale)
		if perChannel && len(scales) != 3 || !perChannel && len(scales) != 1 {
			t.Fatalf("scales %v", scales)
		}
		if perChannel && (scales[1] != 1 || scales[0] != float32(0.7/127) || scales[2] != float32(7e-3/127)) {
			t.Errorf("scales %v, want [0.7/127 1 7e-3/127]", scales)
		}
		for _, s := range scales {
			if !isNormal(s) {
				t.Errorf("scale %g is not a normal float32", s)
			}
		}
		deq := fetch(t, m, inputs, dq.Outputs[0].Name)[dq.Outputs[0].Name].Data.([]float32)
		for i, v := range w {
			s := scales[0]
			if perChannel {
				s = scales[i/8]
			}
			switch {
			case v == 0 && deq[i] != 0:
				t.Errorf("per channel %v: zero weight %d dequantizes to %g", perChannel, i, deq[i])
			case math.Abs(float64(deq[i]-v)) > float64(s)/2*(1+1e-6):
				t.Errorf("per channel %v: weight %d = %g dequantizes to %g, more than half a step (%g) away", perChannel, i, v, deq[i], s)
			}
		}
		// The largest magnitude maps to ±127 exactly.
		if deq[7] != -127*scales[0] {
			t.Errorf("per channel %v: -0.7 dequantizes to %g, want -127·%g", perChannel, deq[7], scales[0])
		}
		// Per channel, every scale is small enough for each non-zero
		// weight to stay non-zero.
		q, _ := onnx.Decode(data.Init)
		nonZero := 0
		for _, v := range q.([]int8) {
			if v != 0 {
				nonZero++
			}
		}
		if perChannel && nonZero != 11 {
			t.Errorf("%d non-zero int8 weights, want the 11 non-zero float ones", nonZero)
		}
		run(t, m, inputs)
	}
}

// TestQuantizeWeightAxes checks the channel axis of each layer type.
func TestQuantizeWeightAxes(t *testing.T) {
	weight := func(n int) []float32 {
		w := make([]float32, n)
		for i := range w {
			w[i] = float32(i%7) - 3
		}
		return w
	}
	for _, tc := range []struct {
		name  string
		build func(b *builder)
		axis  int64
		scale int
	}{
		{"Gemm", func(b *builder) {
			b.output(b.node("Gemm", "y", b.input("x", 2, 4), b.init("W", []int64{4, 3}, weight(12)...)))
		}, 1, 3},
		{"Gemm transB", func(b *builder) {
			y := b.node("Gemm", "y", b.input("x", 2, 4), b.init("W", []int64{3, 4}, weight(12)...))
			y.Producer.SetAttr(&onnx.AttributeProto{Name: proto.String("transB"), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(1)})
			b.output(y)
		}, 0, 3},
		{"MatMul", func(b *builder) {
			b.output(b.node("MatMul", "y", b.input("x", 2, 4), b.init("W", []int64{4, 5}, weight(20)...)))
		}, 1, 5},
		{"MatMul batched", func(b *builder) {
			b.output(b.node("MatMul", "y", b.input("x", 2, 2, 4), b.init("W", []int64{2, 4, 5}, weight(40)...)))
		}, 2, 5},
		{"ConvTranspose", func(b *builder) {
			b.output(b.node("ConvTranspose", "y", b.input("x", 1, 2, 3, 3), b.init("W", []int64{2, 3, 2, 2}, weight(24)...)))
		}, 1, 3},
		{"Gather", func(b *builder) {
			idx, _ := onnx.NewTensor("idx", onnx.TensorProto_INT64, []int64{2}, []int64{3, 0})
			b.output(b.node("Gather", "y", b.init("E", []int64{4, 3}, weight(12)...), b.g.AddInitializer(idx)))
		}, 0, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(t, 13)
			tc.build(b)
			inputs, _ := runtime.RandomInputs(b.g, 1, -1, 1, nil)
			want := run(t, b.m, inputs)["y"]
			p := newQuantizeWeight().(*weightQuantization)
			p.PerChannel = true
			_, m := applyQuant(t, b.m, p, nil)
			dq := m.Graph.Nodes[0]
			if dq.OpType != "DequantizeLinear" || dq.AttrInt("axis", -1) != tc.axis || len(floats(t, dq.Inputs[1])) != tc.scale {
				t.Fatalf("nodes %q, axis %d, scales %v", opTypes(m.Graph), dq.AttrInt("axis", -1), floats(t, dq.Inputs[1]))
			}
			// The weights are integers from -3 to 3: each channel's
			// scale is 3/127 or less and the products stay close.
			got := run(t, m, inputs)["y"]
			if maxAbs, _, ok := runtime.Compare(got, want, 0, 0.1); !ok {
				t.Errorf("output differs by %g", maxAbs)
			}
		})
	}
}

func TestQuantizeWeightLeavesAlone(t *testing.T) {
	t.Run("shared with a non-layer", func(t *testing.T) {
		b := newBuilder(t, 13)
		x := b.input("x", 2, 2)
		w := b.init("W", []int64{2, 2}, 1, 2, 3, 4)
		b.output(b.node("MatMul", "y", x, w), b.node("Add", "z", x, w))
		res, m := applyQuant(t, b.m, newQuantizeWeight(), nil)
		if res.Changes != 0 || opTypes(m.Graph) != "MatMul Add" || !strings.Contains(strings.Join(res.Notes, "\n"), `weight "W" kept in float: other nodes read it too`) {
			t.Errorf("%d changes, nodes %q, notes %q", res.Changes, opTypes(m.Graph), res.Notes)
		}
	})
	t.Run("excluded and already quantized", func(t *testing.T) {
		b := newBuilder(t, 13)
		x := b.input("x", 2, 2)
		a := b.node("MatMul", "a", x, b.init("W1", []int64{2, 2}, 1, 2, 3, 4))
		q, _ := onnx.NewTensor("Wq", onnx.TensorProto_INT8, []int64{2, 2}, []int8{1, 2, 3, 4})
		w2 := b.node("DequantizeLinear", "W2", b.g.AddInitializer(q), b.init("s", nil, 0.5))
		b.output(b.node("MatMul", "y", a, w2))
		a.Producer.Name = "first"
		var warnings []string
		env := &Env{Warnf: func(format string, args ...any) { warnings = append(warnings, format) }}
		p := newQuantizeWeight().(*weightQuantization)
		p.Exclude = []string{"first"}
		res, m := applyQuant(t, b.m, p, env)
		if res.Changes != 0 || opTypes(m.Graph) != "MatMul DequantizeLinear MatMul" || len(warnings) != 1 {
			t.Errorf("%d changes, nodes %q, warnings %q", res.Changes, opTypes(m.Graph), warnings)
		}
	})
	t.Run("opsets", func(t *testing.T) {
		for _, tc := range []struct {
			opset      int64
			perChannel bool
			want       string
		}{{9, false, "need opset 10 or later"}, {12, true, "per-channel quantization needs opset 13"}} {
			b := newBuilder(t, tc.opset)
			b.output(b.node("MatMul", "y", b.input("x", 2, 2), b.init("W", []int64{2, 2}, 1, 2, 3, 4)))
			p := newQuantizeWeight().(*weightQuantization)
			p.PerChannel = tc.perChannel
			if _, err := p.Run(b.m, &Env{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("opset %d: %v, want %q", tc.opset, err, tc.want)
			}
		}
		b := newBuilder(t, 10)
		b.output(b.node("MatMul", "y", b.input("x", 2, 2), b.init("W", []int64{2, 2}, 1, 2, 3, 4)))
		if res, _ := applyQuant(t, b.m, newQuantizeWeight(), nil); res.Changes != 1 {
			t.Errorf("opset 10 per tensor: %d changes", res.Changes)
		}
	})
	t.Run("non-finite", func(t *testing.T) {
		b := newBuilder(t, 13)
		b.output(b.node("MatMul", "y", b.input("x", 2, 2), b.init("W", []int64{2, 2}, 1, float32(math.Inf(1)), 3, 4)))
		res, _ := applyQuant(t, b.m, newQuantizeWeight(), nil)
		if res.Changes != 0 || !strings.Contains(strings.Join(res.Notes, "\n"), "element 1 is +Inf") {
			t.Errorf("%d changes, notes %q", res.Changes, res.Notes)
		}
	})
}

// TestQuantizeWeightDigits quantizes the weights of the digits models per
// channel and checks the accuracy on the held-out samples against fp32.
func TestQuantizeWeightDigits(t *testing.T) {
	for _, c := range digitsCases {
		d := loadDigits(t, c.dir, c.anchor)
		fp32 := d.accuracy(t, d.model)
		before := d.model.Stats().Bytes
		p := newQuantizeWeight().(*weightQuantization)
		p.PerChannel = true
		res, m := applyQuant(t, d.model, p, nil)
		int8Acc := d.accuracy(t, m)
		t.Logf("%s: %d weights quantized, accuracy %.4f (fp32 %.4f), parameters %d → %d bytes", c.dir, res.Changes, int8Acc, fp32, before, m.Stats().Bytes)
		if int8Acc < fp32-maxAccuracyLoss {
			t.Errorf("%s: int8 weights give accuracy %.4f, fp32 %.4f: lost more than %.1f points", c.dir, int8Acc, fp32, 100*maxAccuracyLoss)
		}
		checkDigitsBytes(t, c.dir, true, m, before, m.Stats().Bytes)
	}
}

// TestQuantizeWeightElements checks quantizeWeight, which divides in
// float32 and rounds with the hardware, against quantizeValue element by
// element, per tensor and per channel along each axis, on raw data at an
// offset that cannot be viewed as []float32 and in float_data, with values
// that fall halfway between steps, and more elements than one chunk.
func TestQuantizeWeightElements(t *testing.T) {
	dims := []int64{3, 5, floatChunk/7 + 3}
	n := int(dims[0] * dims[1] * dims[2])
	w := make([]float32, n)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range w {
		switch {
		case i%13 == 0:
			// Every channel, along any axis, holds ±127/32: the
			// int8 scale is 1/32.
			w[i] = float32(1-2*(i/13%2)) * 127 / 32
		case i%5 == 0:
			// k + 0.5 steps: exact halves, which round to even.
			w[i] = (float32(rng.IntN(200)-100) + 0.5) / 32
		default:
			w[i] = float32(min(max(rng.NormFloat64(), -3.9), 3.9))
		}
	}
	halves := 0
	for _, x := range w {
		if v := x * 32; v != float32(math.Trunc(float64(v))) && v*2 == float32(math.Trunc(float64(v*2))) {
			halves++
		}
	}
	if halves < n/6 {
		t.Fatalf("only %d of %d elements are halfway between steps", halves, n)
	}
	for _, layout := range []string{"unaligned raw", "float_data"} {
		tp := &onnx.TensorProto{Dims: dims, DataType: proto.Int32(int32(onnx.TensorProto_FLOAT))}
		if layout == "float_data" {
			tp.FloatData = w
		} else {
			raw := make([]byte, 4*n+1)[1:]
			for i, x := range w {
				binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
			}
			tp.RawData = raw
		}
		for _, r := range []intRange{weightRange(false), weightRange(true)} {
			for axis := -1; axis < len(dims); axis++ {
				q, err := quantizeWeight(tp, axis, r)
				if err != nil {
					t.Fatal(err)
				}
				inner, channels := n, 1
				if axis >= 0 {
					channels, inner = int(dims[axis]), 1
					for _, d := range dims[axis+1:] {
						inner *= int(d)
					}
				}
				var maxAbs []float64
				for range channels {
					maxAbs = append(maxAbs, 0)
				}
				for i, x := range w {
					c := i / inner % channels
					maxAbs[c] = max(maxAbs[c], math.Abs(float64(x)))
				}
				bad := 0
				for i, x := range w {
					scale := symmetricParams(maxAbs[i/inner%channels], r)
					if want := int8(quantizeValue(x, scale, 0, r)); int8(q.data[i]) != want && bad < 5 {
						t.Errorf("%s, range ±%d, axis %d: element %d (%g, scale %g) quantizes to %d, want %d", layout, r.hi, axis, i, x, scale, int8(q.data[i]), want)
						bad++
					}
				}
			}
		}
	}
}
