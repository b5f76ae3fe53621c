package runtime

import (
	"math"
	"strings"
	"testing"

	"onnxopt/onnx"
)

func TestPoolSuiteCases(t *testing.T) {
	checkSuiteCases(t, []string{
		"node/test_maxpool", "node/test_averagepool", "node/test_globalaveragepool", "node/test_globalmaxpool",
		"pytorch-converted/test_AvgPool", "pytorch-converted/test_MaxPool", "pytorch-operator/test_operator_maxpool",
	}, []suiteCase{
		{path: "node/test_averagepool_1d_default"},
		{path: "node/test_averagepool_2d_ceil"},
		{path: "node/test_averagepool_2d_default"},
		{path: "node/test_averagepool_2d_pads"},
		{path: "node/test_averagepool_2d_pads_count_include_pad"},
		{path: "node/test_averagepool_2d_precomputed_pads"},
		{path: "node/test_averagepool_2d_precomputed_pads_count_include_pad"},
		{path: "node/test_averagepool_2d_precomputed_same_upper"},
		{path: "node/test_averagepool_2d_precomputed_strides"},
		{path: "node/test_averagepool_2d_same_lower"},
		{path: "node/test_averagepool_2d_same_upper"},
		{path: "node/test_averagepool_2d_strides"},
		{path: "node/test_averagepool_3d_default"},
		{path: "node/test_globalaveragepool"},
		{path: "node/test_globalaveragepool_precomputed"},
		{path: "node/test_globalmaxpool"},
		{path: "node/test_globalmaxpool_precomputed"},
		{path: "node/test_maxpool_1d_default"},
		{path: "node/test_maxpool_2d_ceil"},
		{path: "node/test_maxpool_2d_default"},
		{path: "node/test_maxpool_2d_dilations"},
		{path: "node/test_maxpool_2d_pads"},
		{path: "node/test_maxpool_2d_precomputed_pads"},
		{path: "node/test_maxpool_2d_precomputed_same_upper"},
		{path: "node/test_maxpool_2d_precomputed_strides"},
		{path: "node/test_maxpool_2d_same_lower"},
		{path: "node/test_maxpool_2d_same_upper"},
		{path: "node/test_maxpool_2d_strides"},
		{path: "node/test_maxpool_2d_uint8"},
		{path: "node/test_maxpool_3d_default"},
		{path: "node/test_maxpool_with_argmax_2d_precomputed_pads"},
		{path: "node/test_maxpool_with_argmax_2d_precomputed_strides"},
		{path: "pytorch-converted/test_AvgPool1d"},
		{path: "pytorch-converted/test_AvgPool1d_stride"},
		{path: "pytorch-converted/test_AvgPool2d"},
		{path: "pytorch-converted/test_AvgPool2d_stride"},
		{path: "pytorch-converted/test_AvgPool3d"},
		{path: "pytorch-converted/test_AvgPool3d_stride"},
		{path: "pytorch-converted/test_AvgPool3d_stride1_pad0_gpu_input"},
		{path: "pytorch-converted/test_MaxPool1d"},
		{path: "pytorch-converted/test_MaxPool1d_stride"},
		{path: "pytorch-converted/test_MaxPool1d_stride_padding_dilation"},
		{path: "pytorch-converted/test_MaxPool2d"},
		{path: "pytorch-converted/test_MaxPool2d_stride_padding_dilation"},
		{path: "pytorch-converted/test_MaxPool3d"},
		{path: "pytorch-converted/test_MaxPool3d_stride"},
		{path: "pytorch-converted/test_MaxPool3d_stride_padding"},
		{path: "pytorch-operator/test_operator_maxpool"},
	})
}

func floatTensor(shape []int, data ...float32) *Tensor {
	return &Tensor{DType: onnx.TensorProto_FLOAT, Shape: shape, Data: data}
}

// The suite has no LpPool, GlobalLpPool, dilated AveragePool or
// column-major Indices cases; these tests check them on small inputs whose
// results are worked out by hand in the comments.
func TestPoolHandComputed(t *testing.T) {
	x3x3 := floatTensor([]int{1, 1, 3, 3},
		3, -4, 1,
		0, 2, -2,
		1, 1, 5)
	for _, c := range []struct {
		name  string
		call  *opCall
		x     *Tensor
		shape []int
		want  []float64
	}{
		// Windows {3,-4,0,2}, {-4,1,2,-2}, {0,2,1,1}, {2,-2,1,5}.
		{"LpPool p=2", newOpCall("LpPool", 18).ints("kernel_shape", 2, 2), x3x3, []int{1, 1, 2, 2},
			[]float64{math.Sqrt(29), 5, math.Sqrt(6), math.Sqrt(34)}},
		{"LpPool p=1", newOpCall("LpPool", 18).ints("kernel_shape", 2, 2).int("p", 1), x3x3, []int{1, 1, 2, 2},
			[]float64{9, 9, 4, 10}},
		{"LpPool p=3", newOpCall("LpPool", 18).ints("kernel_shape", 2, 2).int("p", 3), x3x3, []int{1, 1, 2, 2},
			[]float64{math.Cbrt(27 + 64 + 8), math.Cbrt(64 + 1 + 8 + 8), math.Cbrt(8 + 1 + 1), math.Cbrt(8 + 8 + 1 + 125)}},
		// Opset 1 takes p as a float.
		{"LpPool-1 float p", newOpCall("LpPool", 1).ints("kernel_shape", 2, 2).float("p", 1), x3x3, []int{1, 1, 2, 2},
			[]float64{9, 9, 4, 10}},
		// Padding adds zeros: the corner windows hold one element each.
		{"LpPool pads strides", newOpCall("LpPool", 18).ints("kernel_shape", 2, 2).ints("pads", 1, 1, 1, 1).ints("strides", 3, 3),
			x3x3, []int{1, 1, 2, 2}, []float64{3, 1, 1, 5}},
		// Dilation 2 reads the corners.
		{"LpPool dilations", newOpCall("LpPool", 18).ints("kernel_shape", 2, 2).ints("dilations", 2, 2), x3x3, []int{1, 1, 1, 1},
			[]float64{math.Sqrt(9 + 1 + 1 + 25)}},
		{"GlobalLpPool", newOpCall("GlobalLpPool", 2), x3x3, []int{1, 1, 1, 1},
			[]float64{math.Sqrt(9 + 16 + 1 + 4 + 4 + 1 + 1 + 25)}},
		{"GlobalLpPool p=1", newOpCall("GlobalLpPool", 2).int("p", 1), x3x3, []int{1, 1, 1, 1}, []float64{19}},
		{"GlobalLpPool-1 float p", newOpCall("GlobalLpPool", 1).float("p", 1), x3x3, []int{1, 1, 1, 1}, []float64{19}},
		{"AveragePool dilations", newOpCall("AveragePool", 19).ints("kernel_shape", 2, 2).ints("dilations", 2, 2), x3x3,
			[]int{1, 1, 1, 1}, []float64{(3 + 1 + 1 + 5) / 4.0}},
		// torch.nn.functional.avg_pool1d([1,2,3,4], 3, 2, padding=1,
		// ceil_mode=True, count_include_pad=True) is [1, 3, 2]: the last
		// window, [3, 6), runs past the end padding, and its divisor
		// counts the input and padding positions 3 and 4 only.
		{"AveragePool ceil count_include_pad", newOpCall("AveragePool", 19).ints("kernel_shape", 3).ints("strides", 2).
			ints("pads", 1, 1).int("ceil_mode", 1).int("count_include_pad", 1),
			floatTensor([]int{1, 1, 4}, 1, 2, 3, 4), []int{1, 1, 3}, []float64{1, 3, 2}},
		// Without count_include_pad a window over padding only has no
		// elements; ceil_mode drops it here as it starts in the padding
		// ((3-1)*2 = 4 >= 3 + 1).
		{"AveragePool ceil exclude pad", newOpCall("AveragePool", 19).ints("kernel_shape", 2).ints("strides", 2).
			ints("pads", 1, 1).int("ceil_mode", 1),
			floatTensor([]int{1, 1, 3}, 1, 2, 3), []int{1, 1, 2}, []float64{1, 2.5}},
		{"MaxPool dilations ceil", newOpCall("MaxPool", 12).ints("kernel_shape", 2).ints("dilations", 2).ints("strides", 2).int("ceil_mode", 1),
			floatTensor([]int{1, 1, 6}, 1, 7, 3, 2, 9, 0), []int{1, 1, 3}, []float64{3, 9, 9}},
		{"GlobalMaxPool", newOpCall("GlobalMaxPool", 1), x3x3, []int{1, 1, 1, 1}, []float64{5}},
		{"GlobalAveragePool", newOpCall("GlobalAveragePool", 1), x3x3, []int{1, 1, 1, 1}, []float64{7.0 / 9}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := c.call.run(c.x)
			if err != nil {
				t.Fatal(err)
			}
			checkAgainst(t, out[0], c.shape, c.want)
		})
	}
}

func TestMaxPoolIndices(t *testing.T) {
	// Two planes of 2×3; 2×2 windows with stride 1 give 1×2 per plane.
	x := floatTensor([]int{1, 2, 2, 3},
		1, 9, 2,
		3, 4, 8,

		7, 0, 6,
		5, 1, 6)
	for _, c := range []struct {
		order int64
		want  []float64
	}{
		// Row-major flat indices: plane 0 maxima 9 at (0,1) twice;
		// plane 1 maxima 7 at (0,0) and the first 6 at (0,2).
		{0, []float64{1, 1, 6, 8}},
		// Column-major within a plane: (h, w) counts as h + w*2.
		{1, []float64{2, 2, 6, 6 + 4}},
	} {
		call := newOpCall("MaxPool", 12).ints("kernel_shape", 2, 2).int("storage_order", c.order)
		call.outputs = 2
		out, err := call.run(x)
		if err != nil {
			t.Fatal(err)
		}
		checkAgainst(t, out[0], []int{1, 2, 1, 2}, []float64{9, 9, 7, 6})
		if out[1].DType != onnx.TensorProto_INT64 {
			t.Fatalf("Indices is %s, want int64", out[1])
		}
		checkAgainst(t, out[1], []int{1, 2, 1, 2}, c.want)
	}
}

func TestMaxPoolInt8(t *testing.T) {
	x := &Tensor{DType: onnx.TensorProto_INT8, Shape: []int{1, 1, 4}, Data: []int8{-128, -128, 5, -7}}
	out, err := newOpCall("MaxPool", 12).ints("kernel_shape", 2).ints("strides", 2).run(x)
	if err != nil {
		t.Fatal(err)
	}
	got := out[0].Data.([]int8)
	if len(got) != 2 || got[0] != -128 || got[1] != 5 {
		t.Errorf("got %v, want [-128 5]", got)
	}
}

func TestPoolErrors(t *testing.T) {
	x := floatTensor([]int{1, 1, 3}, 1, 2, 3)
	for _, c := range []struct {
		call *opCall
		in   *Tensor
		want string
	}{
		{newOpCall("MaxPool", 12), x, "kernel_shape attribute is required"},
		{newOpCall("AveragePool", 19).ints("kernel_shape", 2, 2), x, "kernel_shape [2 2] has 2 dimensions, the input has 1 spatial ones"},
		{newOpCall("MaxPool", 12).ints("kernel_shape", 4), x, "spans 4 elements, more than the 3"},
		{newOpCall("MaxPool", 12).ints("kernel_shape", 2).int("storage_order", 2), x, "storage_order 2"},
		{newOpCall("LpPool", 18).ints("kernel_shape", 2).int("p", 0), x, "p 0 must be positive"},
		{newOpCall("GlobalAveragePool", 1), floatTensor([]int{3}, 1, 2, 3), "rank 2 or more"},
		{newOpCall("AveragePool", 19).ints("kernel_shape", 2), &Tensor{DType: onnx.TensorProto_INT32, Shape: []int{1, 1, 2}, Data: []int32{1, 2}},
			"AveragePool does not compute in int32"},
	} {
		_, err := c.call.run(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.call.op, err, c.want)
		}
	}
}
