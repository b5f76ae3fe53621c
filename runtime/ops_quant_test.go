package runtime

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
)

func TestQuantSuiteCases(t *testing.T) {
	checkSuiteCases(t, []string{
		"node/test_quantizelinear", "node/test_dequantizelinear", "node/test_dynamicquantizelinear",
		"node/test_qlinearconv", "node/test_qlinearmatmul", "node/test_matmulinteger", "node/test_convinteger",
	}, []suiteCase{
		{path: "node/test_quantizelinear"},
		{path: "node/test_quantizelinear_axis"},
		{path: "node/test_dequantizelinear"},
		{path: "node/test_dequantizelinear_axis"},
		{path: "node/test_dynamicquantizelinear"},
		{path: "node/test_dynamicquantizelinear_expanded"},
		{path: "node/test_dynamicquantizelinear_max_adjusted"},
		{path: "node/test_dynamicquantizelinear_max_adjusted_expanded"},
		{path: "node/test_dynamicquantizelinear_min_adjusted"},
		{path: "node/test_dynamicquantizelinear_min_adjusted_expanded"},
		{path: "node/test_qlinearconv"},
		{path: "node/test_qlinearmatmul_2D"},
		{path: "node/test_qlinearmatmul_3D"},
		{path: "node/test_matmulinteger"},
		{path: "node/test_convinteger_with_padding"},
		{path: "node/test_convinteger_without_padding"},
	})
}

// blockedScaleIndex is where the scale of element idx of x lies in a
// blocked scale of shape sshape: the same index with idx[axis] divided by
// the block size (the spec's definition of blocked quantization).
func blockedScaleIndex(idx, sshape []int, axis, block int) int {
	at := 0
	for i, v := range idx {
		if i == axis {
			v /= block
		}
		at = at*sshape[i] + v
	}
	return at
}

// forEachIndex calls f with every multi-index of shape in row-major order
// and its flat position.
func forEachIndex(shape []int, f func(idx []int, flat int)) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	idx := make([]int, len(shape))
	for flat := range n {
		rem := flat
		for i := len(shape) - 1; i >= 0; i-- {
			idx[i] = rem % shape[i]
			rem /= shape[i]
		}
		f(idx, flat)
	}
}

// The suite (ONNX 1.12) predates blocked quantization (opset 21): these
// cases check DequantizeLinear against the spec's formula y = (x - zp) *
// scale, with the scale and zero point of element idx at idx[axis] /
// block_size along the axis. The product of a small integer and a float32
// is exact in float64, so the comparison is exact.
func TestDequantizeLinearBlocked(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name          string
		xshape        []int
		axis, block   int
		xType         onnx.TensorProto_DataType
		withZeroPoint bool
	}{
		{"int8 axis 1 uneven", []int{3, 5}, 1, 2, onnx.TensorProto_INT8, true},
		{"uint8 axis 0", []int{4, 3}, 0, 2, onnx.TensorProto_UINT8, true},
		{"int16 middle axis of 3", []int{2, 7, 3}, 1, 3, onnx.TensorProto_INT16, true},
		{"uint16 negative axis", []int{2, 2, 9}, -1, 4, onnx.TensorProto_UINT16, true},
		{"int8 no zero point", []int{2, 8}, 1, 8, onnx.TensorProto_INT8, false},
		{"int32 block of one", []int{3, 4}, 1, 1, onnx.TensorProto_INT32, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			axis := tc.axis
			if axis < 0 {
				axis += len(tc.xshape)
			}
			sshape := slices.Clone(tc.xshape)
			sshape[axis] = (sshape[axis] + tc.block - 1) / tc.block
			x := randomInts(rng, tc.xType, tc.xshape...)
			scale := mustTensor(t, randomScales(rng, mustElements(sshape)), sshape...)
			var zp *Tensor
			if tc.withZeroPoint {
				zp = randomInts(rng, tc.xType, sshape...)
			}
			got, err := newOpCall("DequantizeLinear", 21).int("axis", int64(tc.axis)).int("block_size", int64(tc.block)).run(x, scale, zp)
			if err != nil {
				t.Fatal(err)
			}
			xs, ss := ints64(x), scale.Data.([]float32)
			want := make([]float32, len(xs))
			forEachIndex(tc.xshape, func(idx []int, flat int) {
				k := blockedScaleIndex(idx, sshape, axis, tc.block)
				d := xs[flat]
				if zp != nil {
					d -= ints64(zp)[k]
				}
				want[flat] = float32(float64(d) * float64(ss[k]))
			})
			if got[0].DType != onnx.TensorProto_FLOAT || !slices.Equal(got[0].Shape, tc.xshape) {
				t.Fatalf("got %s, want float%v", got[0], tc.xshape)
			}
			if g := got[0].Data.([]float32); !slices.Equal(g, want) {
				t.Fatalf("got %v, want %v", g, want)
			}
		})
	}
}

// Blocked QuantizeLinear against y = saturate(round_half_even(x / scale) +
// zp), the division in float32.
func TestQuantizeLinearBlocked(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, yType := range []onnx.TensorProto_DataType{onnx.TensorProto_INT8, onnx.TensorProto_UINT8, onnx.TensorProto_INT16, onnx.TensorProto_UINT16} {
		t.Run(dtypeName(yType), func(t *testing.T) {
			xshape, sshape, axis, block := []int{2, 3, 10}, []int{2, 3, 3}, 2, 4
			x := randomTensor(rng, onnx.TensorProto_FLOAT, xshape...)
			for i := range x.Data.([]float32) {
				x.Data.([]float32)[i] *= 3
			}
			scale := mustTensor(t, randomScales(rng, mustElements(sshape)), sshape...)
			zp := randomInts(rng, yType, sshape...)
			got, err := newOpCall("QuantizeLinear", 21).int("axis", int64(axis)).int("block_size", int64(block)).run(x, scale, zp)
			if err != nil {
				t.Fatal(err)
			}
			limits := map[onnx.TensorProto_DataType][2]float64{
				onnx.TensorProto_INT8: {-128, 127}, onnx.TensorProto_UINT8: {0, 255},
				onnx.TensorProto_INT16: {-32768, 32767}, onnx.TensorProto_UINT16: {0, 65535},
			}[yType]
			lo, hi := limits[0], limits[1]
			xs, ss, zs := x.Data.([]float32), scale.Data.([]float32), ints64(zp)
			want := make([]int64, len(xs))
			forEachIndex(xshape, func(idx []int, flat int) {
				k := blockedScaleIndex(idx, sshape, axis, block)
				q := math.RoundToEven(float64(xs[flat]/ss[k])) + float64(zs[k])
				want[flat] = int64(math.Min(math.Max(q, lo), hi))
			})
			if got[0].DType != yType {
				t.Fatalf("got %s, want %s", got[0], dtypeName(yType))
			}
			if g := ints64(got[0]); !slices.Equal(g, want) {
				t.Fatalf("got %v, want %v", g, want)
			}
		})
	}
}

// Ties round to even and results saturate, per the spec, with values
// worked out by hand.
func TestQuantizeLinearRoundingAndSaturation(t *testing.T) {
	x := mustTensor(t, []float32{0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1000, -1000, 0.25, float32(math.Inf(1))}, 10)
	scale := mustTensor(t, []float32{0.5}, 1)
	tests := []struct {
		name string
		zp   *Tensor
		want []int64
	}{
		// x/scale = 1, 3, 5, -1, -3, -5, 2000, -2000, 0.5, +Inf.
		{"uint8 zero point 10", mustTensor(t, []uint8{10}), []int64{11, 13, 15, 9, 7, 5, 255, 0, 10, 255}},
		{"int8 zero point -3", mustTensor(t, []int8{-3}), []int64{-2, 0, 2, -4, -6, -8, 127, -128, -3, 127}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := newOpCall("QuantizeLinear", 13).run(x, scale, tc.zp)
			if err != nil {
				t.Fatal(err)
			}
			if g := ints64(got[0]); !slices.Equal(g, tc.want) {
				t.Fatalf("got %v, want %v", g, tc.want)
			}
		})
	}
	// Halves of the quotient: 0.5 → 0, 1.5 → 2, 2.5 → 2, -0.5 → 0, -1.5 → -2.
	halves := mustTensor(t, []float32{0.5, 1.5, 2.5, -0.5, -1.5}, 5)
	got, err := newOpCall("QuantizeLinear", 13).run(halves, mustTensor(t, []float32{1}), mustTensor(t, []int8{0}))
	if err != nil {
		t.Fatal(err)
	}
	if g, want := ints64(got[0]), []int64{0, 2, 2, 0, -2}; !slices.Equal(g, want) {
		t.Fatalf("halves: got %v, want %v", g, want)
	}
}

func TestQuantizeLinearTypes(t *testing.T) {
	x := mustTensor(t, []float32{-70000, -1, 0, 1, 70000}, 5)
	scale := mustTensor(t, []float32{1})
	// Without a zero point the output is uint8, or output_dtype (opset 21).
	got, err := newOpCall("QuantizeLinear", 13).run(x, scale, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].DType != onnx.TensorProto_UINT8 || !slices.Equal(ints64(got[0]), []int64{0, 0, 0, 1, 255}) {
		t.Fatalf("default: got %s %v", got[0], ints64(got[0]))
	}
	got, err = newOpCall("QuantizeLinear", 21).int("output_dtype", int64(onnx.TensorProto_INT16)).run(x, scale, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].DType != onnx.TensorProto_INT16 || !slices.Equal(ints64(got[0]), []int64{-32768, -1, 0, 1, 32767}) {
		t.Fatalf("output_dtype int16: got %s %v", got[0], ints64(got[0]))
	}
	// An int32 input (opset 19 on) divides by the float scale.
	xi := mustTensor(t, []int32{-7, 7, 300}, 3)
	got, err = newOpCall("QuantizeLinear", 21).run(xi, mustTensor(t, []float32{2}), mustTensor(t, []int8{1}))
	if err != nil {
		t.Fatal(err)
	}
	// -3.5 → -4, 3.5 → 4, 150 saturates.
	if !slices.Equal(ints64(got[0]), []int64{-3, 5, 127}) {
		t.Fatalf("int32 input: got %v", ints64(got[0]))
	}
}

func TestQuantizeLinearFloat16Scale(t *testing.T) {
	// 1/3 as float16 is 0.333251953125. 1000 divided by it is 3000.73...,
	// which float16 holds as 3000 (its spacing at 2048..4096 is 2), so the
	// quotient rounds to 3000; in float32 it would round to 3001.
	third := onnx.Float16frombits(onnx.Float16bits(1.0 / 3))
	if third != 0.333251953125 {
		t.Fatalf("1/3 in float16 is %v", third)
	}
	scale := &Tensor{DType: onnx.TensorProto_FLOAT16, Shape: []int{}, Data: []float32{third}}
	x := &Tensor{DType: onnx.TensorProto_FLOAT16, Shape: []int{2}, Data: []float32{1000, 10}}
	got, err := newOpCall("QuantizeLinear", 21).int("output_dtype", int64(onnx.TensorProto_INT16)).run(x, scale, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 10/third = 30.007... → 30 either way.
	if g := ints64(got[0]); !slices.Equal(g, []int64{3000, 30}) {
		t.Fatalf("got %v, want [3000 30]", g)
	}
	// Dequantizing with a float16 scale gives float16: 3001 × third =
	// 1000.088... rounds to 1000 in float16 (spacing 0.5 at 512..1024).
	q := mustTensor(t, []int16{3001}, 1)
	got, err = newOpCall("DequantizeLinear", 21).run(q, scale, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].DType != onnx.TensorProto_FLOAT16 || got[0].Data.([]float32)[0] != 1000 {
		t.Fatalf("got %s %v, want float16 [1000]", got[0], got[0].Data)
	}
}

func TestQuantErrors(t *testing.T) {
	x := mustTensor(t, []float32{1, 2, 3, 4}, 2, 2)
	tests := []struct {
		name  string
		call  *opCall
		in    []*Tensor
		words []string
	}{
		{"float8 output", newOpCall("QuantizeLinear", 21).int("output_dtype", int64(onnx.TensorProto_FLOAT8E4M3FN)),
			[]*Tensor{x, mustTensor(t, []float32{1})}, []string{"8-bit float"}},
		{"int4 output", newOpCall("QuantizeLinear", 21).int("output_dtype", int64(onnx.TensorProto_INT4)),
			[]*Tensor{x, mustTensor(t, []float32{1})}, []string{"4-bit"}},
		{"block count", newOpCall("DequantizeLinear", 21).int("axis", 1).int("block_size", 1),
			[]*Tensor{mustTensor(t, []int8{1, 2, 3, 4}, 2, 2), mustTensor(t, []float32{1, 1}, 2, 1)}, []string{"block_size 1", "needs 2 scales"}},
		{"per-axis length", newOpCall("DequantizeLinear", 13).int("axis", 0),
			[]*Tensor{mustTensor(t, []int8{1, 2, 3, 4}, 2, 2), mustTensor(t, []float32{1, 1, 1}, 3)}, []string{"per-axis scale has 3 elements"}},
		{"per-axis before 13", newOpCall("DequantizeLinear", 10),
			[]*Tensor{mustTensor(t, []int8{1, 2, 3, 4}, 2, 2), mustTensor(t, []float32{1, 1}, 2)}, []string{"neither a scalar nor per-axis"}},
		{"zero point type", newOpCall("DequantizeLinear", 13),
			[]*Tensor{mustTensor(t, []int8{1}, 1), mustTensor(t, []float32{1}), mustTensor(t, []uint8{1})}, []string{"differs from x type"}},
		{"output_dtype and zero point", newOpCall("QuantizeLinear", 21).int("output_dtype", int64(onnx.TensorProto_INT8)),
			[]*Tensor{x, mustTensor(t, []float32{1}), mustTensor(t, []uint8{1})}, []string{"differs from y_zero_point"}},
		{"matmul inner dimension", newOpCall("MatMulInteger", 10),
			[]*Tensor{mustTensor(t, []uint8{1, 2}, 1, 2), mustTensor(t, []uint8{1, 2, 3}, 3, 1)}, []string{"inner dimensions"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.call.run(tc.in...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// MatMulInteger with per-row zero points of A and per-column ones of B,
// and batch broadcasting, against the integer definition.
func TestMatMulIntegerZeroPoints(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	a := randomInts(rng, onnx.TensorProto_UINT8, 2, 3, 4)
	b := randomInts(rng, onnx.TensorProto_INT8, 4, 5)
	azp := randomInts(rng, onnx.TensorProto_UINT8, 3)
	bzp := randomInts(rng, onnx.TensorProto_INT8, 5)
	got, err := newOpCall("MatMulInteger", 10).run(a, b, azp, bzp)
	if err != nil {
		t.Fatal(err)
	}
	av, bv, az, bz := ints64(a), ints64(b), ints64(azp), ints64(bzp)
	var want []int64
	for n := range 2 {
		for i := range 3 {
			for j := range 5 {
				var sum int64
				for k := range 4 {
					sum += (av[(n*3+i)*4+k] - az[i]) * (bv[k*5+j] - bz[j])
				}
				want = append(want, sum)
			}
		}
	}
	if got[0].DType != onnx.TensorProto_INT32 || !slices.Equal(got[0].Shape, []int{2, 3, 5}) {
		t.Fatalf("got %s, want int32[2,3,5]", got[0])
	}
	if g := ints64(got[0]); !slices.Equal(g, want) {
		t.Fatalf("got %v, want %v", g, want)
	}
}

// QLinearMatMul with per-column scales of B, against y = saturate(
// round_half_even(acc * a_scale*b_scale/y_scale) + y_zp) with the
// multiplier and product in float32, as the scales are.
func TestQLinearMatMulPerColumn(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	a := randomInts(rng, onnx.TensorProto_UINT8, 3, 4)
	b := randomInts(rng, onnx.TensorProto_INT8, 4, 2)
	as := mustTensor(t, []float32{0.02})
	azp := mustTensor(t, []uint8{128})
	bs := mustTensor(t, []float32{0.01, 0.03}, 2)
	bzp := mustTensor(t, []int8{0, 3}, 2)
	ys := mustTensor(t, []float32{0.05})
	yzp := mustTensor(t, []int8{-5})
	got, err := newOpCall("QLinearMatMul", 10).run(a, as, azp, b, bs, bzp, ys, yzp)
	if err != nil {
		t.Fatal(err)
	}
	av, bv := ints64(a), ints64(b)
	want := make([]int64, 6)
	for i := range 3 {
		for j := range 2 {
			var acc int64
			for k := range 4 {
				acc += (av[i*4+k] - 128) * (bv[k*2+j] - int64(bzp.Data.([]int8)[j]))
			}
			m := as.Data.([]float32)[0] * bs.Data.([]float32)[j] / ys.Data.([]float32)[0]
			q := math.RoundToEven(float64(float32(acc)*m)) - 5
			want[i*2+j] = int64(math.Min(math.Max(q, -128), 127))
		}
	}
	if g := ints64(got[0]); got[0].DType != onnx.TensorProto_INT8 || !slices.Equal(g, want) {
		t.Fatalf("got %s %v, want int8 %v", got[0], g, want)
	}
}

// QLinearConv with per-output-channel weight scales and zero points, bias
// and padding, against a direct loop over the definition.
func TestQLinearConvPerChannel(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const n, c, h, w, m, kh, kw = 2, 3, 5, 4, 2, 3, 2
	x := randomInts(rng, onnx.TensorProto_UINT8, n, c, h, w)
	wt := randomInts(rng, onnx.TensorProto_INT8, m, c, kh, kw)
	xs, xzp := mustTensor(t, []float32{0.04}), mustTensor(t, []uint8{120})
	ws, wzp := mustTensor(t, []float32{0.01, 0.02}, m), mustTensor(t, []int8{2, -1}, m)
	ys, yzp := mustTensor(t, []float32{0.1}), mustTensor(t, []uint8{100})
	bias := mustTensor(t, []int32{500, -700}, m)
	pads := []int64{1, 0, 1, 1} // top, left, bottom, right
	got, err := newOpCall("QLinearConv", 10).ints("pads", pads...).ints("strides", 2, 1).
		run(x, xs, xzp, wt, ws, wzp, ys, yzp, bias)
	if err != nil {
		t.Fatal(err)
	}
	oh, ow := (h+2-kh)/2+1, (w+1-kw)/1+1
	xv, wv := ints64(x), ints64(wt)
	var want []int64
	for b := range n {
		for o := range m {
			for i := range oh {
				for j := range ow {
					acc := int64(bias.Data.([]int32)[o])
					for ch := range c {
						for u := range kh {
							for v := range kw {
								r, s := i*2+u-1, j+v
								if r < 0 || r >= h || s < 0 || s >= w {
									continue // padding holds the zero point
								}
								acc += (xv[((b*c+ch)*h+r)*w+s] - 120) * (wv[((o*c+ch)*kh+u)*kw+v] - int64(wzp.Data.([]int8)[o]))
							}
						}
					}
					mult := xs.Data.([]float32)[0] * ws.Data.([]float32)[o] / ys.Data.([]float32)[0]
					q := math.RoundToEven(float64(float32(acc)*mult)) + 100
					want = append(want, int64(math.Min(math.Max(q, 0), 255)))
				}
			}
		}
	}
	if !slices.Equal(got[0].Shape, []int{n, m, oh, ow}) {
		t.Fatalf("shape %v, want %v", got[0].Shape, []int{n, m, oh, ow})
	}
	if g := ints64(got[0]); !slices.Equal(g, want) {
		t.Fatalf("got %v, want %v", g, want)
	}
}

// A plan reuses its buffers: a second run with other inputs must not see
// the first one's values.
func TestQuantRepeatedRuns(t *testing.T) {
	call := newOpCall("DynamicQuantizeLinear", 11)
	call.outputs = 3
	p, inNames, outNames, err := call.compile([]bool{true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		x     []float32
		y     []int64
		scale float32
		zp    int64
	}{
		// range [-1, 2]: scale 3/255, zero point round(255/3) = 85.
		{[]float32{-1, 0, 2, 1}, []int64{0, 85, 255, 170}, 3.0 / 255, 85},
		// all zeros: scale 0, zero point 0.
		{[]float32{0, 0, 0, 0}, []int64{0, 0, 0, 0}, 0, 0},
		// float32(1/255) is a little above 1/255: 0.5/scale is 127.4999925
		// in float32 and rounds down.
		{[]float32{0, 1, 0.5, 0.25}, []int64{0, 255, 127, 64}, 1.0 / 255, 0},
	} {
		got, err := p.Run(map[string]*Tensor{inNames[0]: mustTensor(t, tc.x, 4)})
		if err != nil {
			t.Fatal(err)
		}
		if g := ints64(got[outNames[0]]); !slices.Equal(g, tc.y) {
			t.Errorf("x %v: y %v, want %v", tc.x, g, tc.y)
		}
		if s := got[outNames[1]].Data.([]float32)[0]; s != tc.scale {
			t.Errorf("x %v: scale %v, want %v", tc.x, s, tc.scale)
		}
		if z := ints64(got[outNames[2]])[0]; z != tc.zp {
			t.Errorf("x %v: zero point %v, want %v", tc.x, z, tc.zp)
		}
	}
}

// randomInts returns a tensor of an integer type with elements spread over
// most of its range (int32: a few thousand either side of zero).
func randomInts(rng *rand.Rand, dt onnx.TensorProto_DataType, shape ...int) *Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	var data any
	switch dt {
	case onnx.TensorProto_INT8:
		d := make([]int8, n)
		for i := range d {
			d[i] = int8(rng.IntN(256) - 128)
		}
		data = d
	case onnx.TensorProto_UINT8:
		d := make([]uint8, n)
		for i := range d {
			d[i] = uint8(rng.IntN(256))
		}
		data = d
	case onnx.TensorProto_INT16:
		d := make([]int16, n)
		for i := range d {
			d[i] = int16(rng.IntN(65536) - 32768)
		}
		data = d
	case onnx.TensorProto_UINT16:
		d := make([]uint16, n)
		for i := range d {
			d[i] = uint16(rng.IntN(65536))
		}
		data = d
	case onnx.TensorProto_INT32:
		d := make([]int32, n)
		for i := range d {
			d[i] = int32(rng.IntN(8192) - 4096)
		}
		data = d
	}
	return &Tensor{DType: dt, Shape: shape, Data: data}
}

// randomScales returns n positive scales between 0.001 and 0.1.
func randomScales(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = 0.001 + 0.099*rng.Float32()
	}
	return s
}

// ints64 widens an integer tensor's elements.
func ints64(t *Tensor) []int64 {
	switch d := t.Data.(type) {
	case []int8:
		return widenInts(d)
	case []uint8:
		return widenInts(d)
	case []int16:
		return widenInts(d)
	case []uint16:
		return widenInts(d)
	case []int32:
		return widenInts(d)
	case []int64:
		return slices.Clone(d)
	}
	panic("ints64: " + t.String())
}

func widenInts[T int8 | uint8 | int16 | uint16 | int32](d []T) []int64 {
	out := make([]int64, len(d))
	for i, v := range d {
		out[i] = int64(v)
	}
	return out
}

// benchmarkOp runs a one-node plan on inputs, b.N times.
func benchmarkOp(b *testing.B, call *opCall, inputs ...*Tensor) {
	present := make([]bool, len(inputs))
	for i, t := range inputs {
		present[i] = t != nil
	}
	p, inNames, _, err := call.compile(present)
	if err != nil {
		b.Fatal(err)
	}
	feeds := map[string]*Tensor{}
	k := 0
	for _, t := range inputs {
		if t != nil {
			feeds[inNames[k]] = t
			k++
		}
	}
	b.ResetTimer()
	for range b.N {
		if _, err := p.Run(feeds); err != nil {
			b.Fatal(err)
		}
	}
}

// A ResNet-18 activation of the first stage: 1×64×56×56.
func BenchmarkQuantizeLinear64x56x56(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := randomTensor(rng, onnx.TensorProto_FLOAT, 1, 64, 56, 56)
	benchmarkOp(b, newOpCall("QuantizeLinear", 13), x, &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{}, Data: []float32{0.01}},
		&Tensor{DType: onnx.TensorProto_UINT8, Shape: []int{}, Data: []uint8{128}})
}

func BenchmarkDequantizeLinear64x56x56(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := randomInts(rng, onnx.TensorProto_UINT8, 1, 64, 56, 56)
	benchmarkOp(b, newOpCall("DequantizeLinear", 13), x, &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{}, Data: []float32{0.01}},
		&Tensor{DType: onnx.TensorProto_UINT8, Shape: []int{}, Data: []uint8{128}})
}

// A 3×3 convolution of ResNet-18's first stage, weights per channel.
func BenchmarkQLinearConv64x56x56(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 3))
	x := randomInts(rng, onnx.TensorProto_UINT8, 1, 64, 56, 56)
	w := randomInts(rng, onnx.TensorProto_INT8, 64, 64, 3, 3)
	ws := &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{64}, Data: randomScales(rng, 64)}
	wzp := &Tensor{DType: onnx.TensorProto_INT8, Shape: []int{64}, Data: make([]int8, 64)}
	one := func(v float32) *Tensor {
		return &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{}, Data: []float32{v}}
	}
	benchmarkOp(b, newOpCall("QLinearConv", 10).ints("pads", 1, 1, 1, 1), x, one(0.02),
		&Tensor{DType: onnx.TensorProto_UINT8, Shape: []int{}, Data: []uint8{128}}, w, ws, wzp, one(0.05),
		&Tensor{DType: onnx.TensorProto_UINT8, Shape: []int{}, Data: []uint8{128}})
}

// Sums that float32 cannot hold (odd and beyond 2^24) must still be exact:
// 1024 products of 255 and -128 or -127.
func TestMatMulIntegerBeyondFloat32(t *testing.T) {
	const k = 1024
	a := make([]uint8, 2*k)
	for i := range a {
		a[i] = 255
	}
	a[k] = 254 // row 1 differs by one term
	b := make([]int8, k*2)
	for i := range b {
		b[i] = -128
	}
	b[1] = -127 // column 1, first row
	got, err := newOpCall("MatMulInteger", 10).run(mustTensor(t, a, 2, k), mustTensor(t, b, k, 2))
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{
		255 * -128 * k, 255*-128*(k-1) + 255*-127,
		254*-128 + 255*-128*(k-1), 254*-127 + 255*-128*(k-1),
	}
	if g := ints64(got[0]); !slices.Equal(g, want) {
		t.Fatalf("got %v, want %v", g, want)
	}
}

// TestDequantizeLinear4Bit runs DequantizeLinear-21 on INT4 and UINT4
// initializers, packed two to a byte by the onnx codec (an odd count, so
// the last byte is half padding), with INT4/UINT4 zero points, blocked
// along axis 0: TensorFromProto unpacks them, and y = (x − zp)·scale with
// the scale and zero point of row r at r / block_size.
func TestDequantizeLinear4Bit(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, dt := range []onnx.TensorProto_DataType{onnx.TensorProto_INT4, onnx.TensorProto_UINT4} {
		const rows, cols, block = 5, 3, 2
		blocks := (rows + block - 1) / block
		lo, hi := int64(-8), int64(7)
		if dt == onnx.TensorProto_UINT4 {
			lo, hi = 0, 15
		}
		ints := func(n int) ([]int64, any) {
			v := make([]int64, n)
			i8, u8 := make([]int8, n), make([]uint8, n)
			for i := range v {
				v[i] = lo + rng.Int64N(hi-lo+1)
				i8[i], u8[i] = int8(v[i]), uint8(v[i])
			}
			if dt == onnx.TensorProto_INT4 {
				return v, i8
			}
			return v, u8
		}
		xs, xData := ints(rows * cols)
		zs, zData := ints(blocks * cols)
		scales := randomScales(rng, blocks*cols)
		m := graph.NewModel(10, graph.Opset{Version: 21})
		g := m.Graph
		var inputs []*graph.Value
		for _, in := range []struct {
			name string
			dt   onnx.TensorProto_DataType
			dims []int64
			data any
		}{{"x", dt, []int64{rows, cols}, xData}, {"scale", onnx.TensorProto_FLOAT, []int64{int64(blocks), cols}, scales}, {"zp", dt, []int64{int64(blocks), cols}, zData}} {
			tp, err := onnx.NewTensor(in.name, in.dt, in.dims, in.data)
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, g.AddInitializer(tp))
		}
		y := g.NewValue("y")
		if _, err := g.NewNode("DequantizeLinear", "dq", inputs, []*graph.Value{y},
			&onnx.AttributeProto{Name: proto.String("axis"), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(0)},
			&onnx.AttributeProto{Name: proto.String("block_size"), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(block)}); err != nil {
			t.Fatal(err)
		}
		g.Outputs = append(g.Outputs, y)
		plan, err := Compile(g)
		if err != nil {
			t.Fatal(err)
		}
		out, err := plan.Run(nil)
		if err != nil {
			t.Fatal(err)
		}
		got := out["y"].Data.([]float32)
		for i, x := range xs {
			k := i/cols/block*cols + i%cols
			if want := float32(float64(x-zs[k]) * float64(scales[k])); got[i] != want {
				t.Errorf("%v: element %d: got %g, want (%d − %d)·%g", dt, i, got[i], x, zs[k], scales[k])
			}
		}
	}
}
