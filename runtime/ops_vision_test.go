package runtime

import (
	"math/rand/v2"
	"testing"

	"onnxopt/onnx"
)

// TestVisionSuiteCases runs every conformance case of NonMaxSuppression,
// GridSample, RoiAlign and MaxUnpool (rtol 1e-3, atol 1e-7).
func TestVisionSuiteCases(t *testing.T) {
	checkSuiteCases(t, []string{
		"node/test_nonmaxsuppression", "node/test_gridsample", "node/test_roialign", "node/test_maxunpool",
	}, []suiteCase{
		{path: "node/test_nonmaxsuppression_center_point_box_format"},
		{path: "node/test_nonmaxsuppression_flipped_coordinates"},
		{path: "node/test_nonmaxsuppression_identical_boxes"},
		{path: "node/test_nonmaxsuppression_limit_output_size"},
		{path: "node/test_nonmaxsuppression_single_box"},
		{path: "node/test_nonmaxsuppression_suppress_by_IOU"},
		{path: "node/test_nonmaxsuppression_suppress_by_IOU_and_scores"},
		{path: "node/test_nonmaxsuppression_two_batches"},
		{path: "node/test_nonmaxsuppression_two_classes"},
		{path: "node/test_gridsample"},
		{path: "node/test_gridsample_aligncorners_true"},
		{path: "node/test_gridsample_bicubic"},
		{path: "node/test_gridsample_bilinear"},
		{path: "node/test_gridsample_border_padding"},
		{path: "node/test_gridsample_nearest"},
		{path: "node/test_gridsample_reflection_padding"},
		{path: "node/test_gridsample_zeros_padding"},
		{path: "node/test_roialign_aligned_false"},
		{path: "node/test_roialign_aligned_true"},
		{path: "node/test_maxunpool_export_with_output_shape"},
		{path: "node/test_maxunpool_export_without_output_shape"},
	})
}

func TestNonMaxSuppressionEdges(t *testing.T) {
	boxes := f32(t, dims(1, 2, 4), 0, 0, 1, 1, 0, 0, 1, 1)
	scores := f32(t, dims(1, 1, 2), 0.5, 0.4)
	call := newOpCall("NonMaxSuppression", 11)
	// max_output_boxes_per_class defaults to 0: nothing is selected.
	got, err := call.run(boxes, scores)
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, got[0], dims(0, 3))
	// A score equal to score_threshold is not above it; the identical
	// boxes overlap fully but iou_threshold 1 keeps both.
	got, err = call.run(boxes, scores, i64(t, dims(1), 5), f32(t, dims(1), 1), f32(t, dims(1), 0.4))
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, got[0], dims(1, 3), 0, 0, 0)
	got, err = call.run(boxes, scores, i64(t, dims(1), 5), f32(t, dims(1), 1))
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, got[0], dims(2, 3), 0, 0, 0, 0, 0, 1)
	// Boxes without area overlap nothing, even when equal.
	flat := f32(t, dims(1, 2, 4), 0, 0, 0, 1, 0, 0, 0, 1)
	got, err = call.run(flat, scores, i64(t, dims(1), 5), f32(t, dims(1), 0))
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, got[0], dims(2, 3), 0, 0, 0, 0, 0, 1)
}

func TestNonMaxSuppressionRejects(t *testing.T) {
	boxes := f32(t, dims(1, 2, 4), 0, 0, 1, 1, 0, 0, 1, 1)
	scores := f32(t, dims(1, 1, 2), 0.5, 0.4)
	for _, tt := range []struct {
		name   string
		call   *opCall
		inputs []*Tensor
		words  []string
	}{
		{"center_point_box", newOpCall("NonMaxSuppression", 11).int("center_point_box", 2), []*Tensor{boxes, scores}, []string{"center_point_box 2"}},
		{"iou_threshold", newOpCall("NonMaxSuppression", 11), []*Tensor{boxes, scores, i64(t, dims(1), 1), f32(t, dims(1), 1.5)}, []string{"iou_threshold 1.5"}},
		{"box corners", newOpCall("NonMaxSuppression", 11), []*Tensor{f32(t, dims(1, 2, 2), 0, 0, 1, 1), scores}, []string{"[batches, boxes, 4]"}},
		{"score count", newOpCall("NonMaxSuppression", 11), []*Tensor{boxes, f32(t, dims(1, 1, 3), 1, 2, 3)}, []string{"scores has shape [1 1 3]"}},
		{"float max output", newOpCall("NonMaxSuppression", 11), []*Tensor{boxes, scores, f32(t, dims(1), 1)}, []string{"max_output_boxes_per_class"}},
		{"two thresholds", newOpCall("NonMaxSuppression", 11), []*Tensor{boxes, scores, i64(t, dims(1), 1), f32(t, dims(2), 0, 0)}, []string{"iou_threshold must hold one number"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.call.run(tt.inputs...)
			wantError(t, err, tt.words...)
		})
	}
}

// gridImage is X = [[1, 2], [3, 4]] as [1, 1, 2, 2].
func gridImage(t *testing.T) *Tensor { return f32(t, dims(1, 1, 2, 2), 1, 2, 3, 4) }

func TestGridSamplePadding(t *testing.T) {
	// Without align_corners, (-1, -1) is the outer corner of pixel (0, 0),
	// pixel position (-0.5, -0.5): bilinear weights 1/4 on it and three
	// pixels outside. The centre (0, 0) averages all four pixels.
	grid := f32(t, dims(1, 1, 2, 2), -1, -1, 0, 0)
	for _, tt := range []struct {
		padding string
		want    []float64
	}{
		{"zeros", []float64{0.25, 2.5}},
		// Border clamps to pixel (0, 0); reflection mirrors -0.5 at the
		// edge -0.5 onto itself, then clamps.
		{"border", []float64{1, 2.5}},
		{"reflection", []float64{1, 2.5}},
	} {
		got, err := newOpCall("GridSample", 16).str("padding_mode", tt.padding).run(gridImage(t), grid)
		if err != nil {
			t.Fatalf("%s: %v", tt.padding, err)
		}
		wantClose(t, got[0], dims(1, 1, 1, 2), tt.want...)
	}
	// With align_corners, (-1, -1) is the centre of pixel (0, 0), and
	// reflection mirrors x = -4, position -1.5, at 0 and 1 onto 0.5,
	// halfway between 1 and 2.
	got, err := newOpCall("GridSample", 16).int("align_corners", 1).str("padding_mode", "reflection").
		run(gridImage(t), f32(t, dims(1, 1, 2, 2), -1, -1, -4, -1))
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, got[0], dims(1, 1, 1, 2), 1, 1.5)
}

func TestGridSampleNearestRoundsHalfToEven(t *testing.T) {
	// With align_corners over two pixels, x = 0 is position 0.5, which
	// rounds to pixel 0; x = 0.2 is 0.6, pixel 1.
	got, err := newOpCall("GridSample", 16).str("mode", "nearest").int("align_corners", 1).
		run(gridImage(t), f32(t, dims(1, 1, 2, 2), 0, -1, 0.2, -1))
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, got[0], dims(1, 1, 1, 2), 1, 2)
}

func TestGridSampleBicubicLinearImage(t *testing.T) {
	// f(x, y) = x + 10y on a 4×4 image, sampled at pixel position
	// (1.5, 1.25) (align_corners) from the taps at 0, 1, 2, 3 in each
	// direction. Keys' weights (a = -0.75) at t = 0.5 are -0.09375,
	// 0.59375, 0.59375, -0.09375, giving x = 1.5; at t = 0.25 they are
	// -0.10546875, 0.87890625, 0.26171875, -0.03515625, giving
	// y = 1.296875: a = -0.75 does not reproduce linear functions.
	img := make([]float32, 16)
	for y := range 4 {
		for x := range 4 {
			img[y*4+x] = float32(x + 10*y)
		}
	}
	gx, gy := float32(1.5*2/3-1), float32(1.25*2/3-1)
	got, err := newOpCall("GridSample", 16).str("mode", "bicubic").int("align_corners", 1).
		run(f32(t, dims(1, 1, 4, 4), img...), f32(t, dims(1, 1, 1, 2), gx, gy))
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, got[0], dims(1, 1, 1, 1), 1.5+12.96875)
}

func TestGridSampleOpsets(t *testing.T) {
	grid := f32(t, dims(1, 1, 1, 2), 0, 0)
	if _, err := newOpCall("GridSample", 20).str("mode", "linear").run(gridImage(t), grid); err != nil {
		t.Errorf("GridSample-20 mode linear: %v", err)
	}
	_, err := newOpCall("GridSample", 16).str("mode", "linear").run(gridImage(t), grid)
	wantError(t, err, "mode \"linear\"")
	_, err = newOpCall("GridSample", 20).str("mode", "bilinear").run(gridImage(t), grid)
	wantError(t, err, "mode \"bilinear\"")
	_, err = newOpCall("GridSample", 16).str("padding_mode", "wrap").run(gridImage(t), grid)
	wantError(t, err, "padding_mode \"wrap\"")
	_, err = newOpCall("GridSample", 20).run(f32(t, dims(1, 1, 1, 1, 1), 1), f32(t, dims(1, 1, 1, 1, 3), 0, 0, 0))
	wantError(t, err, "only 4-D inputs")
	_, err = newOpCall("GridSample", 16).run(gridImage(t), f32(t, dims(2, 1, 1, 2), 0, 0, 0, 0))
	wantError(t, err, "grid has shape [2 1 1 2]")
}

func TestRoiAlignModes(t *testing.T) {
	// The region (0, 0)-(1, 1) of [[1, 2], [3, 4]] without the half-pixel
	// shift, one bin of 2×2 samples at 0.25 and 0.75: bilinear values
	// 1.75, 2.25, 2.75, 3.25 average 2.5. The maximum takes, per sample,
	// the largest weighted neighbour: 0.5625, 1.125, 1.6875, 2.25.
	rois := f32(t, dims(1, 4), 0, 0, 1, 1)
	batch := i64(t, dims(1), 0)
	for _, tt := range []struct {
		mode string
		want float64
	}{{"avg", 2.5}, {"max", 2.25}} {
		got, err := newOpCall("RoiAlign", 16).str("mode", tt.mode).str("coordinate_transformation_mode", "output_half_pixel").
			int("sampling_ratio", 2).run(gridImage(t), rois, batch)
		if err != nil {
			t.Fatalf("%s: %v", tt.mode, err)
		}
		wantClose(t, got[0], dims(1, 1, 1, 1), tt.want)
	}
}

func TestRoiAlignInvertedRegion(t *testing.T) {
	// With half_pixel a region ending before it starts has negative bins
	// and no samples: it pools to 0, as in the reference.
	got, err := newOpCall("RoiAlign", 16).run(gridImage(t), f32(t, dims(1, 4), 1, 1, 0, 0), i64(t, dims(1), 0))
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, got[0], dims(1, 1, 1, 1), 0)
	_, err = newOpCall("RoiAlign", 16).run(gridImage(t), f32(t, dims(1, 4), 0, 0, 1e30, 1e30), i64(t, dims(1), 0))
	wantError(t, err, "samples per bin")
}

func TestRoiAlign10IsOutputHalfPixel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := randomTensor(rng, onnx.TensorProto_FLOAT, 2, 3, 6, 5)
	rois := f32(t, dims(3, 4), 0.5, 1, 4, 5, 2, 0, 3, 3.5, -1, -1, 7, 8)
	batch := i64(t, dims(3), 1, 0, 1)
	want, err := newOpCall("RoiAlign", 16).str("coordinate_transformation_mode", "output_half_pixel").
		int("output_height", 3).int("output_width", 2).float("spatial_scale", 0.8).run(x, rois, batch)
	if err != nil {
		t.Fatal(err)
	}
	got, err := newOpCall("RoiAlign", 10).int("output_height", 3).int("output_width", 2).float("spatial_scale", 0.8).run(x, rois, batch)
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, got[0], want[0].Shape, float64s(want[0])...)
}

func TestRoiAlignRejects(t *testing.T) {
	rois := f32(t, dims(1, 4), 0, 0, 1, 1)
	for _, tt := range []struct {
		name   string
		call   *opCall
		inputs []*Tensor
		words  []string
	}{
		{"batch index", newOpCall("RoiAlign", 16), []*Tensor{gridImage(t), rois, i64(t, dims(1), 1)}, []string{"batch index 1", "[0, 1)"}},
		{"roi columns", newOpCall("RoiAlign", 16), []*Tensor{gridImage(t), f32(t, dims(1, 3), 0, 0, 1), i64(t, dims(1), 0)}, []string{"[num_rois, 4]"}},
		{"index count", newOpCall("RoiAlign", 16), []*Tensor{gridImage(t), rois, i64(t, dims(2), 0, 0)}, []string{"batch_indices has shape [2]"}},
		{"mode", newOpCall("RoiAlign", 16).str("mode", "min"), []*Tensor{gridImage(t), rois, i64(t, dims(1), 0)}, []string{"mode \"min\""}},
		{"transformation", newOpCall("RoiAlign", 16).str("coordinate_transformation_mode", "asymmetric"),
			[]*Tensor{gridImage(t), rois, i64(t, dims(1), 0)}, []string{"asymmetric"}},
		{"output size", newOpCall("RoiAlign", 16).int("output_height", 0), []*Tensor{gridImage(t), rois, i64(t, dims(1), 0)}, []string{"output_height 0"}},
		{"rank", newOpCall("RoiAlign", 16), []*Tensor{f32(t, dims(1, 2, 2), 1, 2, 3, 4), rois, i64(t, dims(1), 0)}, []string{"[N, C, H, W]"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.call.run(tt.inputs...)
			wantError(t, err, tt.words...)
		})
	}
}

func TestMaxUnpoolIndicesSpanBatchAndChannels(t *testing.T) {
	// Two channels pooled from [1, 2, 2, 2] by a 2×2 window: the indices
	// count over the whole tensor, 7 being the last element of channel 1.
	x := f32(t, dims(1, 2, 1, 1), 5, 6)
	idx := i64(t, dims(1, 2, 1, 1), 0, 7)
	call := newOpCall("MaxUnpool", 11).ints("kernel_shape", 2, 2).ints("strides", 2, 2)
	got, err := call.run(x, idx)
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, got[0], dims(1, 2, 2, 2), 5, 0, 0, 0, 0, 0, 0, 6)
	// A larger output_shape pads each spatial dimension at its end:
	// element (0, 1, 1, 1) moves to offset 9 + 3 + 1 in [1, 2, 3, 3].
	got, err = call.run(x, idx, i64(t, dims(4), 1, 2, 3, 3))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float64, 18)
	want[0], want[13] = 5, 6
	wantClose(t, got[0], dims(1, 2, 3, 3), want...)
}

func TestMaxUnpoolRejects(t *testing.T) {
	x := f32(t, dims(1, 1, 1, 1), 5)
	call := newOpCall("MaxUnpool", 11).ints("kernel_shape", 2, 2).ints("strides", 2, 2)
	for _, tt := range []struct {
		name   string
		call   *opCall
		inputs []*Tensor
		words  []string
	}{
		{"index range", call, []*Tensor{x, i64(t, dims(1, 1, 1, 1), 4)}, []string{"index 4", "outside"}},
		{"negative index", call, []*Tensor{x, i64(t, dims(1, 1, 1, 1), -1)}, []string{"index -1"}},
		{"int32 indices", call, []*Tensor{x, mustTensor(t, []int32{0}, 1, 1, 1, 1)}, []string{"I:"}},
		{"index shape", call, []*Tensor{x, i64(t, dims(1, 1, 1, 2), 0, 1)}, []string{"I has shape"}},
		{"small output_shape", call, []*Tensor{x, i64(t, dims(1, 1, 1, 1), 0), i64(t, dims(4), 1, 1, 1, 1)}, []string{"output_shape"}},
		{"output_shape rank", call, []*Tensor{x, i64(t, dims(1, 1, 1, 1), 0), i64(t, dims(2), 2, 2)}, []string{"rank 4"}},
		{"kernel rank", newOpCall("MaxUnpool", 11).ints("kernel_shape", 2), []*Tensor{x, i64(t, dims(1, 1, 1, 1), 0)}, []string{"kernel_shape [2]"}},
		{"no kernel", newOpCall("MaxUnpool", 11), []*Tensor{x, i64(t, dims(1, 1, 1, 1), 0)}, []string{"kernel_shape attribute is required"}},
		{"integer X", call, []*Tensor{i64(t, dims(1, 1, 1, 1), 5), i64(t, dims(1, 1, 1, 1), 0)}, []string{"int64"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.call.run(tt.inputs...)
			wantError(t, err, tt.words...)
		})
	}
}
