package runtime

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/onnx"
)

// TestResizeSuiteCases runs every conformance case of Pad, Resize,
// Upsample, DepthToSpace and SpaceToDepth (rtol 1e-3, atol 1e-7). The
// suite (ONNX 1.12) predates Pad's wrap mode and Resize-18 and -19; the
// tests below check those against the expected values the ONNX test
// generator states.
func TestResizeSuiteCases(t *testing.T) {
	checkSuiteCases(t, []string{
		"node/test_constant_pad", "node/test_edge_pad", "node/test_reflect_pad",
		"node/test_resize", "node/test_upsample", "node/test_depthtospace", "node/test_spacetodepth",
		"pytorch-converted/test_ConstantPad2d", "pytorch-converted/test_ReflectionPad2d",
		"pytorch-converted/test_ReplicationPad2d", "pytorch-converted/test_ZeroPad2d",
		"pytorch-operator/test_operator_pad",
	}, []suiteCase{
		{path: "node/test_constant_pad"},
		{path: "node/test_depthtospace_crd_mode"},
		{path: "node/test_depthtospace_crd_mode_example"},
		{path: "node/test_depthtospace_dcr_mode"},
		{path: "node/test_depthtospace_example"},
		{path: "node/test_edge_pad"},
		{path: "node/test_reflect_pad"},
		{path: "node/test_resize_downsample_scales_cubic"},
		{path: "node/test_resize_downsample_scales_cubic_A_n0p5_exclude_outside"},
		{path: "node/test_resize_downsample_scales_cubic_align_corners"},
		{path: "node/test_resize_downsample_scales_linear"},
		{path: "node/test_resize_downsample_scales_linear_align_corners"},
		{path: "node/test_resize_downsample_scales_nearest"},
		{path: "node/test_resize_downsample_sizes_cubic"},
		{path: "node/test_resize_downsample_sizes_linear_pytorch_half_pixel"},
		{path: "node/test_resize_downsample_sizes_nearest"},
		{path: "node/test_resize_downsample_sizes_nearest_tf_half_pixel_for_nn"},
		{path: "node/test_resize_tf_crop_and_resize"},
		{path: "node/test_resize_upsample_scales_cubic"},
		{path: "node/test_resize_upsample_scales_cubic_A_n0p5_exclude_outside"},
		{path: "node/test_resize_upsample_scales_cubic_align_corners"},
		{path: "node/test_resize_upsample_scales_cubic_asymmetric"},
		{path: "node/test_resize_upsample_scales_linear"},
		{path: "node/test_resize_upsample_scales_linear_align_corners"},
		{path: "node/test_resize_upsample_scales_nearest"},
		{path: "node/test_resize_upsample_sizes_cubic"},
		{path: "node/test_resize_upsample_sizes_nearest"},
		{path: "node/test_resize_upsample_sizes_nearest_ceil_half_pixel"},
		{path: "node/test_resize_upsample_sizes_nearest_floor_align_corners"},
		{path: "node/test_resize_upsample_sizes_nearest_round_prefer_ceil_asymmetric"},
		{path: "node/test_spacetodepth"},
		{path: "node/test_spacetodepth_example"},
		{path: "node/test_upsample_nearest"},
		{path: "pytorch-converted/test_ConstantPad2d"},
		{path: "pytorch-converted/test_ReflectionPad2d"},
		{path: "pytorch-converted/test_ReplicationPad2d"},
		{path: "pytorch-converted/test_ZeroPad2d"},
		{path: "pytorch-operator/test_operator_pad"},
	})
}

// grid1to16 is the 4x4 image of the ONNX Resize examples.
func grid1to16(t *testing.T) *Tensor {
	t.Helper()
	v := make([]float32, 16)
	for i := range v {
		v[i] = float32(i + 1)
	}
	return f32(t, dims(1, 1, 4, 4), v...)
}

func floats32(v ...float32) []float32 { return v }

// TestResizeOpset18And19 checks the features Resize gained after the
// suite's ONNX release against the expected values stated in ONNX's test
// generator (onnx/backend/test/case/node/resize.py).
func TestResizeOpset18And19(t *testing.T) {
	grid := grid1to16(t)
	two := f32(t, dims(1, 1, 2, 2), 1, 2, 3, 4)
	wide := f32(t, dims(1, 1, 2, 4), 1, 2, 3, 4, 5, 6, 7, 8)
	scales := func(v ...float32) *Tensor { return f32(t, dims(len(v)), v...) }
	sizes := func(v ...int64) *Tensor { return i64(t, dims(len(v)), v...) }
	upsampled2x3 := []float64{1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4}
	cases := []struct {
		name  string
		call  *opCall
		in    []*Tensor // X, roi, scales, sizes
		shape []int
		want  []float64
	}{
		{"downsample_scales_linear_antialias",
			newOpCall("Resize", 18).str("mode", "linear").int("antialias", 1),
			[]*Tensor{grid, nil, scales(1, 1, 0.6, 0.6)},
			dims(1, 1, 2, 2), []float64{2.875, 4.5, 9.375, 11}},
		{"downsample_sizes_linear_antialias",
			newOpCall("Resize", 18).str("mode", "linear").int("antialias", 1),
			[]*Tensor{grid, nil, nil, sizes(1, 1, 3, 3)},
			dims(1, 1, 3, 3), []float64{2.3636363, 3.590909, 4.818182, 7.2727275, 8.5, 9.727273, 12.181818, 13.409091, 14.636364}},
		{"downsample_scales_cubic_antialias",
			newOpCall("Resize", 18).str("mode", "cubic").int("antialias", 1),
			[]*Tensor{grid, nil, scales(1, 1, 0.6, 0.6)},
			dims(1, 1, 2, 2), []float64{2.5180721, 4.2858863, 9.589329, 11.357142}},
		{"downsample_sizes_cubic_antialias",
			newOpCall("Resize", 18).str("mode", "cubic").int("antialias", 1),
			[]*Tensor{grid, nil, nil, sizes(1, 1, 3, 3)},
			dims(1, 1, 3, 3), []float64{1.7750092, 3.1200073, 4.4650054, 7.1550016, 8.5, 9.844998, 12.534994, 13.8799925, 15.224991}},
		{"upsample_scales_nearest_axes_3_2",
			newOpCall("Resize", 18).ints("axes", 3, 2),
			[]*Tensor{two, nil, scales(3, 2)},
			dims(1, 1, 4, 6), upsampled2x3},
		{"upsample_sizes_nearest_axes_3_2",
			newOpCall("Resize", 18).ints("axes", 3, 2),
			[]*Tensor{two, nil, nil, sizes(8, 7)},
			dims(1, 1, 7, 8), []float64{
				1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 2, 2, 2, 2,
				3, 3, 3, 3, 4, 4, 4, 4, 3, 3, 3, 3, 4, 4, 4, 4, 3, 3, 3, 3, 4, 4, 4, 4}},
		{"tf_crop_and_resize_axes_3_2",
			newOpCall("Resize", 18).str("mode", "linear").str("coordinate_transformation_mode", "tf_crop_and_resize").ints("axes", 3, 2),
			[]*Tensor{grid, f32(t, dims(4), 0.6, 0.4, 0.8, 0.6), nil, sizes(3, 3)},
			dims(1, 1, 3, 3), []float64{7.6000004, 7.9, 8.2, 8.8, 9.1, 9.400001, 10, 10.3, 10.6}},
		{"upsample_sizes_nearest_not_larger",
			newOpCall("Resize", 18).ints("axes", 2, 3).str("keep_aspect_ratio_policy", "not_larger"),
			[]*Tensor{two, nil, nil, sizes(7, 8)},
			dims(1, 1, 7, 7), []float64{
				1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 2, 2, 2,
				3, 3, 3, 3, 4, 4, 4, 3, 3, 3, 3, 4, 4, 4, 3, 3, 3, 3, 4, 4, 4}},
		// The generator's comment for this case repeats the 7x8 array of
		// the case before it; the scale max(7/2, 8/2) = 4 makes it 8x8.
		{"upsample_sizes_nearest_not_smaller",
			newOpCall("Resize", 18).ints("axes", 2, 3).str("keep_aspect_ratio_policy", "not_smaller"),
			[]*Tensor{two, nil, nil, sizes(7, 8)},
			dims(1, 1, 8, 8), []float64{
				1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 2, 2, 2, 2,
				3, 3, 3, 3, 4, 4, 4, 4, 3, 3, 3, 3, 4, 4, 4, 4, 3, 3, 3, 3, 4, 4, 4, 4, 3, 3, 3, 3, 4, 4, 4, 4}},
		{"downsample_sizes_nearest_not_larger",
			newOpCall("Resize", 18).ints("axes", 2, 3).str("keep_aspect_ratio_policy", "not_larger"),
			[]*Tensor{wide, nil, nil, sizes(1, 3)},
			dims(1, 1, 1, 2), []float64{1, 3}},
		{"downsample_sizes_nearest_not_smaller",
			newOpCall("Resize", 18).ints("axes", 2, 3).str("keep_aspect_ratio_policy", "not_smaller"),
			[]*Tensor{wide, nil, nil, sizes(1, 3)},
			dims(1, 1, 2, 3), []float64{1, 2, 4, 5, 6, 8}},
		{"downsample_scales_linear_half_pixel_symmetric",
			newOpCall("Resize", 19).str("mode", "linear").str("coordinate_transformation_mode", "half_pixel_symmetric"),
			[]*Tensor{f32(t, dims(1, 1, 1, 4), 1, 2, 3, 4), nil, scales(1, 1, 1, 0.6)},
			dims(1, 1, 1, 2), []float64{1.6666667, 3.3333333}},
		{"upsample_scales_linear_half_pixel_symmetric",
			newOpCall("Resize", 19).str("mode", "linear").str("coordinate_transformation_mode", "half_pixel_symmetric"),
			[]*Tensor{two, nil, scales(1, 1, 2.3, 2.94)},
			dims(1, 1, 4, 5), []float64{
				1, 1.15986395, 1.5, 1.84013605, 2,
				1.56521738, 1.72508133, 2.06521738, 2.40535343, 2.56521738,
				2.43478262, 2.59464657, 2.93478262, 3.27491867, 3.43478262,
				3, 3.15986395, 3.5, 3.84013605, 4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := c.call.run(c.in...)
			if err != nil {
				t.Fatal(err)
			}
			wantClose(t, out[0], c.shape, c.want...)
		})
	}
}

// TestUpsampleAndResize10 checks the opsets before coordinate modes:
// asymmetric coordinates, as the Resize-10 examples of ONNX 1.5 expect
// (and ONNX Runtime computes).
func TestUpsampleAndResize10(t *testing.T) {
	two := f32(t, dims(1, 1, 2, 2), 1, 2, 3, 4)
	upsampled2x3 := []float64{1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4}
	linear2x2 := []float64{1, 1.5, 2, 2, 2, 2.5, 3, 3, 3, 3.5, 4, 4, 3, 3.5, 4, 4}

	call := newOpCall("Upsample", 7)
	call.attrs = append(call.attrs, &onnx.AttributeProto{Name: proto.String("scales"), Type: onnx.AttributeProto_FLOATS.Enum(), Floats: floats32(1, 1, 2, 3)})
	out, err := call.run(two)
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, out[0], dims(1, 1, 4, 6), upsampled2x3...)

	out, err = newOpCall("Upsample", 9).str("mode", "linear").run(two, f32(t, dims(4), 1, 1, 2, 2))
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, out[0], dims(1, 1, 4, 4), linear2x2...)

	out, err = newOpCall("Resize", 10).run(f32(t, dims(1, 1, 2, 4), 1, 2, 3, 4, 5, 6, 7, 8), f32(t, dims(4), 1, 1, 0.6, 0.6))
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, out[0], dims(1, 1, 1, 2), 1, 3)

	_, err = newOpCall("Upsample", 9).run(two, f32(t, dims(4), 1, 1, 0.5, 0.5))
	wantError(t, err, "at least 1")
	_, err = newOpCall("Resize", 10).str("mode", "cubic").run(two, f32(t, dims(4), 1, 1, 2, 2))
	wantError(t, err, "cubic")
}

// TestResizeIntegers interpolates uint8 in float64 and truncates, as the
// ONNX reference's astype does: [0, 255] upsampled twice with half_pixel
// weighs them 1, 3/4+1/4, 1/4+3/4, 1.
func TestResizeIntegers(t *testing.T) {
	x := mustTensor(t, []uint8{0, 255}, 1, 2)
	out, err := newOpCall("Resize", 13).str("mode", "linear").run(x, nil, f32(t, dims(2), 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if got := out[0].Data.([]uint8); !slices.Equal(got, []uint8{0, 63, 191, 255}) {
		t.Fatalf("got %v, want [0 63 191 255]", got)
	}
}

func TestResizeRejects(t *testing.T) {
	x := grid1to16(t)
	sc := f32(t, dims(4), 1, 1, 2, 2)
	sz := i64(t, dims(4), 1, 1, 8, 8)
	_, err := newOpCall("Resize", 13).run(x, nil, sc, sz)
	wantError(t, err, "both given")
	_, err = newOpCall("Resize", 13).run(x, nil, nil, nil)
	wantError(t, err, "scales or sizes")
	_, err = newOpCall("Resize", 13).run(x, nil, f32(t, dims(2), 2, 2))
	wantError(t, err, "2 values for 4 axes")
	_, err = newOpCall("Resize", 13).run(x, nil, f32(t, dims(4), 1, 1, 0, 2))
	wantError(t, err, "positive")
	_, err = newOpCall("Resize", 13).run(x, nil, nil, i64(t, dims(4), 1, 1, -1, 2))
	wantError(t, err, "not a length")
	_, err = newOpCall("Resize", 13).str("coordinate_transformation_mode", "tf_crop_and_resize").run(x, nil, nil, sz)
	wantError(t, err, "needs input roi")
	_, err = newOpCall("Resize", 13).str("coordinate_transformation_mode", "tf_crop_and_resize").run(x, f32(t, dims(2), 0, 1), nil, sz)
	wantError(t, err, "roi has 2 values")
	_, err = newOpCall("Resize", 13).run(f32(t, dims(1, 0)), nil, nil, i64(t, dims(2), 1, 2))
	wantError(t, err, "empty")
	_, err = newOpCall("Resize", 18).ints("axes", 2, 2).run(x, nil, f32(t, dims(2), 2, 2))
	wantError(t, err, "twice")
	_, err = newOpCall("Resize", 13).run(mustTensor(t, []string{"a", "b"}, 2), nil, f32(t, dims(1), 2))
	if err != nil {
		t.Fatalf("nearest on strings: %v", err)
	}
	_, err = newOpCall("Resize", 13).str("mode", "linear").run(mustTensor(t, []string{"a", "b"}, 2), nil, f32(t, dims(1), 2))
	wantError(t, err, "needs numbers")

	for _, c := range []struct {
		call *opCall
		word string
	}{
		{newOpCall("Resize", 13).str("mode", "bilinear"), "unknown mode"},
		{newOpCall("Resize", 13).str("coordinate_transformation_mode", "tf_half_pixel_for_nn"), "removed in opset 13"},
		{newOpCall("Resize", 18).str("coordinate_transformation_mode", "half_pixel_symmetric"), "needs opset 19"},
		{newOpCall("Resize", 13).str("nearest_mode", "round"), "nearest_mode"},
		{newOpCall("Resize", 18).str("keep_aspect_ratio_policy", "fit"), "keep_aspect_ratio_policy"},
	} {
		_, err := c.call.run(x, nil, sc)
		wantError(t, err, c.word)
	}
}

// TestResizeReuseAcrossRuns runs one plan with growing and shrinking
// sizes: each run must match a fresh plan's output.
func TestResizeReuseAcrossRuns(t *testing.T) {
	call := newOpCall("Resize", 13).str("mode", "cubic")
	p, inNames, outNames, err := call.compile([]bool{true, false, false, true})
	if err != nil {
		t.Fatal(err)
	}
	x := grid1to16(t)
	for _, size := range []int64{9, 3, 6, 3} {
		sz := i64(t, dims(4), 1, 1, size, size+1)
		got, err := p.Run(map[string]*Tensor{inNames[0]: x, inNames[1]: sz})
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := newOpCall("Resize", 13).str("mode", "cubic").run(x, nil, nil, sz)
		if err != nil {
			t.Fatal(err)
		}
		wantClose(t, got[outNames[0]], fresh[0].Shape, float64s(fresh[0])...)
	}
}

func TestPadModes(t *testing.T) {
	x := f32(t, dims(2, 3), 1, 2, 3, 4, 5, 6)
	pads := func(v ...int64) *Tensor { return i64(t, dims(len(v)), v...) }
	cases := []struct {
		name  string
		call  *opCall
		in    []*Tensor
		shape []int
		want  []float64
	}{
		// np.pad(x, ((0, 0), (2, 1)), mode="wrap")
		{"wrap", newOpCall("Pad", 19).str("mode", "wrap"), []*Tensor{x, pads(0, 2, 0, 1)},
			dims(2, 6), []float64{2, 3, 1, 2, 3, 1, 5, 6, 4, 5, 6, 4}},
		{"edge_axes", newOpCall("Pad", 18).str("mode", "edge"), []*Tensor{x, pads(1, 2), nil, pads(-1)},
			dims(2, 6), []float64{1, 1, 2, 3, 3, 3, 4, 4, 5, 6, 6, 6}},
		{"constant_axes", newOpCall("Pad", 18), []*Tensor{x, pads(1, 0), f32(t, nil, 7), pads(0)},
			dims(3, 3), []float64{7, 7, 7, 1, 2, 3, 4, 5, 6}},
		// A negative pad crops first: [2, 3] remains of row [1, 2, 3],
		// then reflects twice at the end.
		{"reflect_crop", newOpCall("Pad", 11).str("mode", "reflect"), []*Tensor{x, pads(0, -1, 0, 2)},
			dims(2, 4), []float64{2, 3, 2, 3, 5, 6, 5, 6}},
		{"constant_crop", newOpCall("Pad", 11), []*Tensor{x, pads(-1, 0, 0, -2)},
			dims(1, 1), []float64{4}},
		{"attribute", newOpCall("Pad", 2).ints("pads", 0, 1, 0, 0).float("value", 2.5), []*Tensor{x},
			dims(2, 4), []float64{2.5, 1, 2, 3, 2.5, 4, 5, 6}},
		{"paddings", newOpCall("Pad", 1).ints("paddings", 1, 0, 0, 0), []*Tensor{x},
			dims(3, 3), []float64{0, 0, 0, 1, 2, 3, 4, 5, 6}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := c.call.run(c.in...)
			if err != nil {
				t.Fatal(err)
			}
			wantClose(t, out[0], c.shape, c.want...)
		})
	}

	out, err := newOpCall("Pad", 13).run(i64(t, dims(1, 2), 1, 2), pads(1, 0, 0, 1), i64(t, nil, 9))
	if err != nil {
		t.Fatal(err)
	}
	if got := out[0].Data.([]int64); !slices.Equal(out[0].Shape, dims(2, 3)) || !slices.Equal(got, []int64{9, 9, 9, 1, 2, 9}) {
		t.Fatalf("int64 constant pad: got %v %v", out[0].Shape, got)
	}
}

func TestPadRejects(t *testing.T) {
	x := f32(t, dims(2, 3), 1, 2, 3, 4, 5, 6)
	pads := func(v ...int64) *Tensor { return i64(t, dims(len(v)), v...) }
	_, err := newOpCall("Pad", 13).run(x, pads(1, 1))
	wantError(t, err, "pads has 2 values, want 4")
	_, err = newOpCall("Pad", 13).run(x, pads(0, -4, 0, 0))
	wantError(t, err, "do not fit")
	_, err = newOpCall("Pad", 13).run(x, pads(0, -2, 0, -2))
	wantError(t, err, "crop more")
	_, err = newOpCall("Pad", 13).str("mode", "edge").run(f32(t, dims(0, 2)), pads(1, 0, 0, 0))
	wantError(t, err, "no elements")
	_, err = newOpCall("Pad", 13).run(x, pads(0, 1, 0, 1), i64(t, nil, 1))
	wantError(t, err, "constant_value")
	_, err = newOpCall("Pad", 18).run(x, pads(0, 0, 1, 1), nil, pads(1, -1))
	wantError(t, err, "twice")
	_, err = newOpCall("Pad", 18).str("mode", "wrap").run(x, pads(0, 0, 1, 1))
	wantError(t, err, "needs opset 19")
	_, err = newOpCall("Pad", 13).str("mode", "mirror").run(x, pads(0, 0, 1, 1))
	wantError(t, err, "unknown mode")
	_, err = newOpCall("Pad", 2).run(x)
	wantError(t, err, "pads is required")
}

func TestDepthSpaceRejects(t *testing.T) {
	x := f32(t, dims(1, 2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8)
	_, err := newOpCall("DepthToSpace", 13).int("blocksize", 2).run(x)
	wantError(t, err, "blocks of 4")
	_, err = newOpCall("DepthToSpace", 13).int("blocksize", 2).run(f32(t, dims(4, 2), 1, 2, 3, 4, 5, 6, 7, 8))
	wantError(t, err, "rank 4")
	_, err = newOpCall("DepthToSpace", 13).int("blocksize", 2).str("mode", "RCD").run(x)
	wantError(t, err, "unknown mode")
	_, err = newOpCall("SpaceToDepth", 13).int("blocksize", 3).run(x)
	wantError(t, err, "multiples of blocksize 3")
	_, err = newOpCall("SpaceToDepth", 13).run(x)
	wantError(t, err, "blocksize is required")

	// SpaceToDepth then DepthToSpace (DCR) gives X back.
	v := make([]float32, 2*3*4*6)
	for i := range v {
		v[i] = float32(i)
	}
	y := f32(t, dims(2, 3, 4, 6), v...)
	s, err := newOpCall("SpaceToDepth", 13).int("blocksize", 2).run(y)
	if err != nil {
		t.Fatal(err)
	}
	back, err := newOpCall("DepthToSpace", 13).int("blocksize", 2).run(s[0])
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, back[0], y.Shape, float64s(y)...)
}
