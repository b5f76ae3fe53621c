package runtime

import (
	"math/rand/v2"
	"strings"
	"testing"

	"onnxopt/onnx"
)

func TestConvSuiteCases(t *testing.T) {
	checkSuiteCases(t, []string{
		"node/test_conv_", "node/test_basic_conv_", "node/test_convtranspose",
		"pytorch-converted/test_Conv", "pytorch-operator/test_operator_conv",
	}, []suiteCase{
		{path: "node/test_basic_conv_with_padding"},
		{path: "node/test_basic_conv_without_padding"},
		{path: "node/test_conv_with_autopad_same"},
		{path: "node/test_conv_with_strides_and_asymmetric_padding"},
		{path: "node/test_conv_with_strides_no_padding"},
		{path: "node/test_conv_with_strides_padding"},
		{path: "node/test_convtranspose"},
		{path: "node/test_convtranspose_1d"},
		{path: "node/test_convtranspose_3d"},
		{path: "node/test_convtranspose_autopad_same"},
		{path: "node/test_convtranspose_dilations"},
		{path: "node/test_convtranspose_kernel_shape"},
		{path: "node/test_convtranspose_output_shape"},
		{path: "node/test_convtranspose_pad"},
		{path: "node/test_convtranspose_pads"},
		{path: "node/test_convtranspose_with_kernel"},
		{path: "pytorch-converted/test_Conv1d"},
		{path: "pytorch-converted/test_Conv1d_dilated"},
		{path: "pytorch-converted/test_Conv1d_groups"},
		{path: "pytorch-converted/test_Conv1d_pad1"},
		{path: "pytorch-converted/test_Conv1d_pad1size1"},
		{path: "pytorch-converted/test_Conv1d_pad2"},
		{path: "pytorch-converted/test_Conv1d_pad2size1"},
		{path: "pytorch-converted/test_Conv1d_stride"},
		{path: "pytorch-converted/test_Conv2d"},
		{path: "pytorch-converted/test_Conv2d_depthwise"},
		{path: "pytorch-converted/test_Conv2d_depthwise_padded"},
		{path: "pytorch-converted/test_Conv2d_depthwise_strided"},
		{path: "pytorch-converted/test_Conv2d_depthwise_with_multiplier"},
		{path: "pytorch-converted/test_Conv2d_dilated"},
		{path: "pytorch-converted/test_Conv2d_groups"},
		{path: "pytorch-converted/test_Conv2d_groups_thnn"},
		{path: "pytorch-converted/test_Conv2d_no_bias"},
		{path: "pytorch-converted/test_Conv2d_padding"},
		{path: "pytorch-converted/test_Conv2d_strided"},
		{path: "pytorch-converted/test_Conv3d"},
		{path: "pytorch-converted/test_Conv3d_dilated"},
		{path: "pytorch-converted/test_Conv3d_dilated_strided"},
		{path: "pytorch-converted/test_Conv3d_groups"},
		{path: "pytorch-converted/test_Conv3d_no_bias"},
		{path: "pytorch-converted/test_Conv3d_stride"},
		{path: "pytorch-converted/test_Conv3d_stride_padding"},
		{path: "pytorch-converted/test_ConvTranspose2d"},
		{path: "pytorch-converted/test_ConvTranspose2d_no_bias"},
		{path: "pytorch-operator/test_operator_conv"},
		{path: "pytorch-operator/test_operator_convtranspose"},
	})
}

// spatialIndex iterates over the positions of shape in row-major order,
// calling f with each multi-index.
func spatialIndex(shape []int, f func(idx []int)) {
	idx := make([]int, len(shape))
	for _, d := range shape {
		if d == 0 {
			return
		}
	}
	for {
		f(idx)
		i := len(shape) - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < shape[i] {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return
		}
	}
}

func flatIndex(idx, shape []int) int {
	at := 0
	for i, d := range shape {
		at = at*d + idx[i]
	}
	return at
}

// A convCase is a Conv or ConvTranspose configuration with explicit
// padding.
type convCase struct {
	name                     string
	x, w                     []int
	bias                     bool
	group                    int
	strides, dilations, pads []int
	outputPadding            []int // ConvTranspose only
	dtype                    onnx.TensorProto_DataType
}

func (c *convCase) spatial() int { return len(c.x) - 2 }

func (c *convCase) attr(list []int, def int) []int {
	if list != nil {
		return list
	}
	out := make([]int, c.spatial())
	for i := range out {
		out[i] = def
	}
	return out
}

func int64s(v []int) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

func (c *convCase) call(op string) *opCall {
	call := newOpCall(op, 17).int("group", int64(max(c.group, 1)))
	call.ints("strides", int64s(c.attr(c.strides, 1))...)
	call.ints("dilations", int64s(c.attr(c.dilations, 1))...)
	pads := c.pads
	if pads == nil {
		pads = make([]int, 2*c.spatial())
	}
	call.ints("pads", int64s(pads)...)
	if c.outputPadding != nil {
		call.ints("output_padding", int64s(c.outputPadding)...)
	}
	return call
}

func (c *convCase) inputs(rng *rand.Rand, biasLen int) []*Tensor {
	dt := c.dtype
	if dt == 0 {
		dt = onnx.TensorProto_FLOAT
	}
	in := []*Tensor{randomTensor(rng, dt, c.x...), randomTensor(rng, dt, c.w...)}
	if c.bias {
		in = append(in, randomTensor(rng, dt, biasLen))
	}
	return in
}

// referenceConv is Conv by its definition: y[n, m, o] = b[m] + Σ over the
// group's input channels c and kernel positions k of x[n, c, o*s + k*d -
// pad] w[m, c, k], positions outside x reading zero.
func (c *convCase) referenceConv(x, w, b []float64) ([]float64, []int) {
	s, d := c.attr(c.strides, 1), c.attr(c.dilations, 1)
	pads := c.pads
	if pads == nil {
		pads = make([]int, 2*c.spatial())
	}
	group := max(c.group, 1)
	n, channels, m := c.x[0], c.x[1], c.w[0]
	inSp, kSp := c.x[2:], c.w[2:]
	outSp := make([]int, c.spatial())
	for i := range outSp {
		outSp[i] = (inSp[i]+pads[i]+pads[c.spatial()+i]-(kSp[i]-1)*d[i]-1)/s[i] + 1
	}
	cg, mg := channels/group, m/group
	outShape := append([]int{n, m}, outSp...)
	y := make([]float64, n*m*mustElements(outSp))
	pos := make([]int, c.spatial())
	for b0 := range n {
		for oc := range m {
			g := oc / mg
			spatialIndex(outSp, func(o []int) {
				sum := 0.0
				if b != nil {
					sum = b[oc]
				}
				for ic := range cg {
					spatialIndex(kSp, func(k []int) {
						for i := range pos {
							pos[i] = o[i]*s[i] + k[i]*d[i] - pads[i]
							if pos[i] < 0 || pos[i] >= inSp[i] {
								return
							}
						}
						xv := x[(b0*channels+g*cg+ic)*mustElements(inSp)+flatIndex(pos, inSp)]
						wv := w[(oc*cg+ic)*mustElements(kSp)+flatIndex(k, kSp)]
						sum += xv * wv
					})
				}
				y[(b0*m+oc)*mustElements(outSp)+flatIndex(o, outSp)] = sum
			})
		}
	}
	return y, outShape
}

// referenceConvTranspose is ConvTranspose by its definition: each x[n, c,
// i] adds x·w[c, m, k] to y[n, g·M/group + m, i*s + k*d - pad_begin] for
// every kernel position k, where g is c's group.
func (c *convCase) referenceConvTranspose(x, w, b []float64) ([]float64, []int) {
	s, d := c.attr(c.strides, 1), c.attr(c.dilations, 1)
	pads := c.pads
	if pads == nil {
		pads = make([]int, 2*c.spatial())
	}
	outPad := c.attr(c.outputPadding, 0)
	group := max(c.group, 1)
	n, channels, mg := c.x[0], c.x[1], c.w[1]
	m := mg * group
	inSp, kSp := c.x[2:], c.w[2:]
	outSp := make([]int, c.spatial())
	for i := range outSp {
		outSp[i] = s[i]*(inSp[i]-1) + outPad[i] + (kSp[i]-1)*d[i] + 1 - pads[i] - pads[c.spatial()+i]
	}
	cg := channels / group
	y := make([]float64, n*m*mustElements(outSp))
	for b0 := range n {
		for oc := range m {
			for j := range mustElements(outSp) {
				if b != nil {
					y[(b0*m+oc)*mustElements(outSp)+j] = b[oc]
				}
			}
		}
	}
	pos := make([]int, c.spatial())
	for b0 := range n {
		for ic := range channels {
			g := ic / cg
			spatialIndex(inSp, func(i []int) {
				xv := x[(b0*channels+ic)*mustElements(inSp)+flatIndex(i, inSp)]
				for om := range mg {
					spatialIndex(kSp, func(k []int) {
						for a := range pos {
							pos[a] = i[a]*s[a] + k[a]*d[a] - pads[a]
							if pos[a] < 0 || pos[a] >= outSp[a] {
								return
							}
						}
						oc := g*mg + om
						y[(b0*m+oc)*mustElements(outSp)+flatIndex(pos, outSp)] += xv * w[(ic*mg+om)*mustElements(kSp)+flatIndex(k, kSp)]
					})
				}
			})
		}
	}
	return y, append([]int{n, m}, outSp...)
}

// convPathCases reach each of Conv's code paths: the 1×1 product, im2col
// per image, im2col over several images (in one and in several chunks),
// groups, and the direct depthwise loops.
var convPathCases = []convCase{
	{name: "pointwise", x: []int{2, 8, 5, 5}, w: []int{4, 8, 1, 1}, bias: true},
	{name: "pointwise groups", x: []int{2, 8, 3, 4}, w: []int{6, 4, 1, 1}, group: 2},
	{name: "1x1 stride 2", x: []int{2, 8, 6, 7}, w: []int{4, 8, 1, 1}, strides: []int{2, 2}, bias: true},
	{name: "batched images", x: []int{7, 3, 4, 4}, w: []int{5, 3, 3, 3}, pads: []int{1, 1, 1, 1}, bias: true},
	{name: "batched images in chunks", x: []int{70, 2, 4, 4}, w: []int{3, 2, 3, 3}, pads: []int{1, 1, 1, 1}, bias: true},
	{name: "batched images no bias", x: []int{5, 2, 5, 4}, w: []int{3, 2, 2, 3}, pads: []int{0, 1, 1, 0}},
	{name: "large images", x: []int{2, 3, 36, 36}, w: []int{4, 3, 3, 3}, bias: true},
	{name: "groups strides dilations", x: []int{3, 6, 7, 8}, w: []int{4, 3, 3, 3}, group: 2,
		strides: []int{2, 1}, dilations: []int{1, 2}, pads: []int{1, 0, 2, 1}, bias: true},
	{name: "depthwise", x: []int{2, 4, 6, 6}, w: []int{4, 1, 3, 3}, group: 4, pads: []int{1, 1, 1, 1}, bias: true},
	{name: "depthwise multiplier", x: []int{2, 3, 5, 5}, w: []int{6, 1, 3, 3}, group: 3, strides: []int{2, 2}},
	{name: "one input channel", x: []int{3, 1, 6, 6}, w: []int{5, 1, 3, 3}, pads: []int{1, 1, 1, 1}, bias: true},
	{name: "1-D", x: []int{3, 4, 9}, w: []int{2, 4, 3}, dilations: []int{2}, pads: []int{1, 2}, bias: true},
	{name: "3-D", x: []int{2, 2, 4, 5, 3}, w: []int{3, 2, 2, 3, 2}, strides: []int{1, 2, 1}, pads: []int{1, 0, 1, 0, 1, 1}, bias: true},
	{name: "window past the input", x: []int{1, 2, 1, 3}, w: []int{2, 2, 3, 3}, pads: []int{2, 2, 2, 2}, strides: []int{1, 3}},
	{name: "float64", x: []int{3, 4, 5, 5}, w: []int{6, 2, 3, 3}, group: 2, pads: []int{1, 1, 1, 1}, bias: true, dtype: onnx.TensorProto_DOUBLE},
	{name: "float64 depthwise", x: []int{1, 3, 4, 4}, w: []int{3, 1, 2, 2}, group: 3, dtype: onnx.TensorProto_DOUBLE},
}

func TestConvMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range convPathCases {
		t.Run(c.name, func(t *testing.T) {
			in := c.inputs(rng, c.w[0])
			out, err := c.call("Conv").run(in...)
			if err != nil {
				t.Fatal(err)
			}
			var b []float64
			if c.bias {
				b = float64s(in[2])
			}
			want, shape := c.referenceConv(float64s(in[0]), float64s(in[1]), b)
			checkAgainst(t, out[0], shape, want)
		})
	}
}

// TestConvScratchReuse runs one plan on batches of changing size, so that
// the node's im2col scratch and output buffers are reused, shrunk and
// regrown.
func TestConvScratchReuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	c := convCase{x: []int{0, 3, 5, 5}, w: []int{4, 3, 3, 3}, pads: []int{1, 1, 1, 1}, bias: true}
	plan, inNames, outNames, err := c.call("Conv").compile([]bool{true, true, true})
	if err != nil {
		t.Fatal(err)
	}
	w, b := randomTensor(rng, onnx.TensorProto_FLOAT, c.w...), randomTensor(rng, onnx.TensorProto_FLOAT, 4)
	for _, batch := range []int{70, 3, 1, 70, 41} {
		c.x[0] = batch
		x := randomTensor(rng, onnx.TensorProto_FLOAT, c.x...)
		got, err := plan.Run(map[string]*Tensor{inNames[0]: x, inNames[1]: w, inNames[2]: b})
		if err != nil {
			t.Fatal(err)
		}
		want, shape := c.referenceConv(float64s(x), float64s(w), float64s(b))
		checkAgainst(t, got[outNames[0]], shape, want)
	}
}

var convTransposeCases = []convCase{
	{name: "strides output_padding", x: []int{2, 3, 4, 4}, w: []int{3, 2, 3, 3}, strides: []int{2, 2},
		pads: []int{1, 1, 0, 0}, outputPadding: []int{1, 0}, bias: true},
	{name: "groups dilations", x: []int{1, 4, 3, 3}, w: []int{4, 3, 2, 2}, group: 2, dilations: []int{2, 2}, bias: true},
	{name: "1-D", x: []int{2, 2, 5}, w: []int{2, 3, 4}, strides: []int{3}, pads: []int{2, 1}},
	{name: "3-D", x: []int{1, 2, 2, 3, 2}, w: []int{2, 2, 2, 2, 3}, strides: []int{2, 1, 2}, bias: true},
	{name: "float64", x: []int{2, 2, 3, 3}, w: []int{2, 2, 3, 3}, strides: []int{2, 2}, pads: []int{1, 1, 1, 1},
		bias: true, dtype: onnx.TensorProto_DOUBLE},
}

func TestConvTransposeMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, c := range convTransposeCases {
		t.Run(c.name, func(t *testing.T) {
			in := c.inputs(rng, c.w[1]*max(c.group, 1))
			out, err := c.call("ConvTranspose").run(in...)
			if err != nil {
				t.Fatal(err)
			}
			var b []float64
			if c.bias {
				b = float64s(in[2])
			}
			want, shape := c.referenceConvTranspose(float64s(in[0]), float64s(in[1]), b)
			checkAgainst(t, out[0], shape, want)
		})
	}
}

func TestConvErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	f := func(shape ...int) *Tensor { return randomTensor(rng, onnx.TensorProto_FLOAT, shape...) }
	for _, c := range []struct {
		name string
		call *opCall
		in   []*Tensor
		want string
	}{
		{"channels", newOpCall("Conv", 17), []*Tensor{f(1, 3, 5, 5), f(4, 2, 3, 3)},
			"X float[1,3,5,5] has 3 channels, but W float[4,2,3,3] with group 1 takes 2×1 = 2"},
		{"group and channels", newOpCall("Conv", 17).int("group", 2), []*Tensor{f(1, 3, 5, 5), f(4, 3, 3, 3)},
			"has 3 channels, but W float[4,3,3,3] with group 2 takes 3×2 = 6"},
		{"group and output channels", newOpCall("Conv", 17).int("group", 3), []*Tensor{f(1, 3, 5, 5), f(5, 1, 3, 3)},
			"group 3 does not divide W float[5,1,3,3]'s 5 output channels"},
		{"bias", newOpCall("Conv", 17), []*Tensor{f(1, 3, 5, 5), f(4, 3, 3, 3), f(3)}, "B float[3] must be 1-D with W's 4 output channels"},
		{"kernel_shape", newOpCall("Conv", 17).ints("kernel_shape", 3, 2), []*Tensor{f(1, 3, 5, 5), f(4, 3, 3, 3)},
			"kernel_shape [3 2] differs from W's spatial shape [3 3]"},
		{"rank", newOpCall("Conv", 17), []*Tensor{f(1, 3, 5, 5), f(4, 3, 3)}, "needs W of X's rank 4"},
		{"window", newOpCall("Conv", 17), []*Tensor{f(1, 3, 2, 5), f(4, 3, 3, 3)}, "spans 3 elements, more than the 2"},
		{"strides", newOpCall("Conv", 17).ints("strides", 1), []*Tensor{f(1, 3, 5, 5), f(4, 3, 3, 3)}, "strides [1] has 1 values for 2 spatial dimensions"},
		{"4-D", newOpCall("Conv", 17), []*Tensor{f(1, 1, 2, 2, 2, 2), f(1, 1, 1, 1, 1, 1)}, "4 spatial dimensions: the runtime takes at most 3"},
		{"transpose channels", newOpCall("ConvTranspose", 17), []*Tensor{f(1, 3, 5, 5), f(4, 2, 3, 3)},
			"X float[1,3,5,5] has 3 channels, but W float[4,2,3,3] takes 4"},
		{"transpose group", newOpCall("ConvTranspose", 17).int("group", 2), []*Tensor{f(1, 3, 5, 5), f(3, 2, 3, 3)},
			"group 2 does not divide X float[1,3,5,5]'s 3 channels"},
		{"transpose output_shape", newOpCall("ConvTranspose", 17).ints("output_shape", 9), []*Tensor{f(1, 3, 5, 5), f(3, 2, 3, 3)},
			"output_shape [9] has 1 values for 2 spatial dimensions"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.call.run(c.in...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

func TestConvAttributeErrors(t *testing.T) {
	for _, c := range []struct {
		call *opCall
		want string
	}{
		{newOpCall("Conv", 17).int("group", 0), "group 0 is not positive"},
		{newOpCall("Conv", 17).ints("strides", 1, 0), "strides [1 0]: every value must be positive"},
		{newOpCall("Conv", 17).ints("pads", 1, 1, 1), "odd length"},
		{newOpCall("Conv", 17).str("auto_pad", "SAME"), `auto_pad "SAME"`},
	} {
		_, _, _, err := c.call.compile([]bool{true, true})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one saying %q", err, c.want)
		}
	}
}

func TestConvFloat16RoundsOutput(t *testing.T) {
	// 1 + 2^-12 is not a float16 value: the product must round to 1.
	x := &Tensor{DType: onnx.TensorProto_FLOAT16, Shape: []int{1, 1, 1, 1}, Data: []float32{1}}
	w := &Tensor{DType: onnx.TensorProto_FLOAT16, Shape: []int{1, 1, 1, 1}, Data: []float32{1}}
	b := &Tensor{DType: onnx.TensorProto_FLOAT16, Shape: []int{1}, Data: []float32{1.0 / 4096}}
	out, err := newOpCall("Conv", 17).run(x, w, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := out[0].Data.([]float32)[0]; got != 1 || out[0].DType != onnx.TensorProto_FLOAT16 {
		t.Errorf("got %s %v, want float16 1", out[0], got)
	}
}

func TestConvEmpty(t *testing.T) {
	// No input channels: every output is its bias.
	x := &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{2, 0, 3, 3}, Data: []float32{}}
	w := &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{2, 0, 2, 2}, Data: []float32{}}
	b := &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{2}, Data: []float32{1, -1}}
	out, err := newOpCall("Conv", 17).run(x, w, b)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1, 1, 1, 1, -1, -1, -1, -1, 1, 1, 1, 1, -1, -1, -1, -1}
	checkAgainst(t, out[0], []int{2, 2, 2, 2}, want)
	// No images.
	x = &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{0, 1, 3, 3}, Data: []float32{}}
	w = &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{2, 1, 2, 2}, Data: make([]float32, 8)}
	if out, err = newOpCall("Conv", 17).run(x, w); err != nil {
		t.Fatal(err)
	}
	checkAgainst(t, out[0], []int{0, 2, 2, 2}, nil)
}
