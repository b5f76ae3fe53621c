package runtime

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// Vision operators: NonMaxSuppression, GridSample, RoiAlign and
// MaxUnpool. The sampling kernels compute in float64.
var visionOps = []opDef{
	// NonMaxSuppression-11 only relaxes the box coordinates to any
	// diagonal pair, which -10 already takes.
	{"", "NonMaxSuppression", 10, compileNonMaxSuppression},
	{"", "GridSample", 16, compileGridSample(16)},
	// GridSample-20 renames bilinear and bicubic to linear and cubic
	// and allows more spatial dimensions.
	{"", "GridSample", 20, compileGridSample(20)},
	// RoiAlign-16 adds coordinate_transformation_mode; -10 behaves as its
	// output_half_pixel.
	{"", "RoiAlign", 10, compileRoiAlign(10)},
	{"", "RoiAlign", 16, compileRoiAlign(16)},
	// MaxUnpool-11 only adds types.
	{"", "MaxUnpool", 9, compileMaxUnpool},
}

// --- NonMaxSuppression ---

type nmsKernel struct {
	centerBox bool // boxes are [x_center, y_center, width, height], not corners
	corners   []float64
	order     []int
	kept      []int
	selected  []int64
}

func compileNonMaxSuppression(n *graph.Node) (kernel, error) {
	center := n.AttrInt("center_point_box", 0)
	if center != 0 && center != 1 {
		return nil, fmt.Errorf("center_point_box %d is not 0 or 1", center)
	}
	k := &nmsKernel{centerBox: center == 1}
	return k.run, nil
}

// optionalScalarFloat reads an optional one-element float input.
func optionalScalarFloat(in []*Tensor, i int, what string) (v float64, ok bool, err error) {
	if len(in) <= i || in[i] == nil {
		return 0, false, nil
	}
	if err := checkFloat(what, in[i]); err != nil {
		return 0, false, err
	}
	vs, err := floatsOf(in[i])
	if err != nil || len(vs) != 1 {
		return 0, false, fmt.Errorf("%s must hold one number, got %s", what, in[i])
	}
	return vs[0], true, nil
}

// run selects, for each batch and class, the boxes in decreasing order
// of score whose overlap (intersection over union) with every box
// selected before is at most iou_threshold, up to
// max_output_boxes_per_class, among those scoring above score_threshold.
// The output lists [batch, class, box] triples.
func (k *nmsKernel) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if err := inputs(in, 2); err != nil {
		return nil, err
	}
	boxes, scores := in[0], in[1]
	if err := checkFloat("boxes", boxes); err != nil {
		return nil, err
	}
	if err := checkFloat("scores", scores); err != nil {
		return nil, err
	}
	if boxes.Rank() != 3 || boxes.Shape[2] != 4 {
		return nil, fmt.Errorf("boxes has shape %v, want [batches, boxes, 4]", boxes.Shape)
	}
	batches, count := boxes.Shape[0], boxes.Shape[1]
	if scores.Rank() != 3 || scores.Shape[0] != batches || scores.Shape[2] != count {
		return nil, fmt.Errorf("scores has shape %v, want [%d, classes, %d] for boxes %v", scores.Shape, batches, count, boxes.Shape)
	}
	classes := scores.Shape[1]
	maxOut, err := optionalScalarInt(in, 2, "max_output_boxes_per_class", 0)
	if err != nil {
		return nil, err
	}
	iouThreshold, _, err := optionalScalarFloat(in, 3, "iou_threshold")
	if err != nil {
		return nil, err
	}
	if !(iouThreshold >= 0 && iouThreshold <= 1) {
		return nil, fmt.Errorf("iou_threshold %g is not in [0, 1]", iouThreshold)
	}
	scoreThreshold, hasScoreThreshold, err := optionalScalarFloat(in, 4, "score_threshold")
	if err != nil {
		return nil, err
	}
	boxData, err := floatsOf(boxes)
	if err != nil {
		return nil, err
	}
	scoreData, err := floatsOf(scores)
	if err != nil {
		return nil, err
	}

	// Corners as y1, x1, y2, x2 with y1 <= y2 and x1 <= x2.
	corners := scratchSlice(&k.corners, len(boxData))
	for i := 0; i < len(boxData); i += 4 {
		b, c := boxData[i:i+4], corners[i:i+4]
		if k.centerBox {
			xc, yc, w, h := b[0], b[1], b[2], b[3]
			c[0], c[1], c[2], c[3] = yc-h/2, xc-w/2, yc+h/2, xc+w/2
		} else {
			c[0], c[1], c[2], c[3] = min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])
		}
	}

	selected := k.selected[:0]
	for b := range batches {
		for c := range classes {
			s := scoreData[(b*classes+c)*count : (b*classes+c+1)*count]
			order := k.order[:0]
			for i, v := range s {
				if !hasScoreThreshold || v > scoreThreshold {
					order = append(order, i)
				}
			}
			slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(s[j], s[i]) })
			k.order = order
			kept := k.kept[:0]
			for _, i := range order {
				if int64(len(kept)) >= maxOut {
					break
				}
				box := corners[(b*count+i)*4 : (b*count+i+1)*4]
				suppressed := false
				for _, j := range kept {
					if iou(box, corners[(b*count+j)*4:(b*count+j+1)*4]) > iouThreshold {
						suppressed = true
						break
					}
				}
				if !suppressed {
					kept = append(kept, i)
					selected = append(selected, int64(b), int64(c), int64(i))
				}
			}
			k.kept = kept
		}
	}
	k.selected = selected
	out, err := e.output(0, onnx.TensorProto_INT64, len(selected)/3, 3)
	if err != nil {
		return nil, err
	}
	copy(out.Data.([]int64), selected)
	return []*Tensor{out}, nil
}

// iou is the intersection over union of two boxes given as y1, x1, y2,
// x2 corners; boxes without area overlap nothing.
func iou(a, b []float64) float64 {
	areaA := (a[2] - a[0]) * (a[3] - a[1])
	areaB := (b[2] - b[0]) * (b[3] - b[1])
	if areaA <= 0 || areaB <= 0 {
		return 0
	}
	h := min(a[2], b[2]) - max(a[0], b[0])
	w := min(a[3], b[3]) - max(a[1], b[1])
	if h <= 0 || w <= 0 {
		return 0
	}
	inter := h * w
	return inter / (areaA + areaB - inter)
}

// --- GridSample ---

type gridMode uint8

const (
	gridLinear gridMode = iota
	gridNearest
	gridCubic
)

type gridPadding uint8

const (
	padZeros gridPadding = iota
	padBorder
	padReflection
)

type gridSampleKernel struct {
	mode         gridMode
	padding      gridPadding
	alignCorners bool
	x, grid, out []float64
}

func compileGridSample(since int64) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		k := &gridSampleKernel{alignCorners: n.AttrInt("align_corners", 0) != 0}
		linear, cubic := "bilinear", "bicubic"
		if since >= 20 {
			linear, cubic = "linear", "cubic"
		}
		switch m := n.AttrString("mode", linear); m {
		case linear:
			k.mode = gridLinear
		case "nearest":
			k.mode = gridNearest
		case cubic:
			k.mode = gridCubic
		default:
			return nil, fmt.Errorf("mode %q is not %s, nearest or %s", m, linear, cubic)
		}
		switch p := n.AttrString("padding_mode", "zeros"); p {
		case "zeros":
			k.padding = padZeros
		case "border":
			k.padding = padBorder
		case "reflection":
			k.padding = padReflection
		default:
			return nil, fmt.Errorf("padding_mode %q is not zeros, border or reflection", p)
		}
		return k.run, nil
	}
}

// run samples X [N, C, H, W] at the points of grid [N, Ho, Wo, 2], which
// holds (x, y) pairs normalized to [-1, 1] over the input's width and
// height, into Y [N, C, Ho, Wo], as PyTorch's grid_sample does.
func (k *gridSampleKernel) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if err := inputs(in, 2); err != nil {
		return nil, err
	}
	x, grid := in[0], in[1]
	if err := checkFloat("X", x); err != nil {
		return nil, err
	}
	if err := checkFloat("grid", grid); err != nil {
		return nil, err
	}
	if x.Rank() != 4 {
		return nil, fmt.Errorf("X has shape %v: only 4-D inputs [N, C, H, W] (two spatial dimensions) are implemented", x.Shape)
	}
	batch, channels, height, width := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	if grid.Rank() != 4 || grid.Shape[0] != batch || grid.Shape[3] != 2 {
		return nil, fmt.Errorf("grid has shape %v, want [%d, H_out, W_out, 2] for X %v", grid.Shape, batch, x.Shape)
	}
	outH, outW := grid.Shape[1], grid.Shape[2]
	out, err := e.output(0, x.DType, batch, channels, outH, outW)
	if err != nil {
		return nil, err
	}
	src, err := loadFloats(&k.x, x)
	if err != nil {
		return nil, err
	}
	g, err := loadFloats(&k.grid, grid)
	if err != nil {
		return nil, err
	}
	dst := scratchSlice(&k.out, out.Len())
	plane, outPlane := height*width, outH*outW
	for n := range batch {
		for p := range outPlane {
			gx, gy := g[(n*outPlane+p)*2], g[(n*outPlane+p)*2+1]
			for c := range channels {
				img := src[(n*channels+c)*plane : (n*channels+c+1)*plane]
				dst[(n*channels+c)*outPlane+p] = k.sample(img, height, width, gx, gy)
			}
		}
	}
	storeFloats(out, dst)
	return []*Tensor{out}, nil
}

// sample interpolates img, of height h and width w, at the normalized
// point (gx, gy).
func (k *gridSampleKernel) sample(img []float64, h, w int, gx, gy float64) float64 {
	ix := unnormalize(gx, w, k.alignCorners)
	iy := unnormalize(gy, h, k.alignCorners)
	if k.mode == gridCubic {
		// Bicubic interpolation pads each of its 16 taps rather than the
		// point.
		x0, y0 := math.Floor(ix), math.Floor(iy)
		var rows [4]float64
		for i := range rows {
			y := y0 - 1 + float64(i)
			var taps [4]float64
			for j := range taps {
				taps[j] = k.paddedPixel(img, h, w, x0-1+float64(j), y)
			}
			rows[i] = cubicInterp(taps, ix-x0)
		}
		return cubicInterp(rows, iy-y0)
	}
	ix = k.pad(ix, w)
	iy = k.pad(iy, h)
	if k.mode == gridNearest {
		return pixelAt(img, h, w, math.RoundToEven(ix), math.RoundToEven(iy))
	}
	x0, y0 := math.Floor(ix), math.Floor(iy)
	dx, dy := ix-x0, iy-y0
	return (1-dy)*((1-dx)*pixelAt(img, h, w, x0, y0)+dx*pixelAt(img, h, w, x0+1, y0)) +
		dy*((1-dx)*pixelAt(img, h, w, x0, y0+1)+dx*pixelAt(img, h, w, x0+1, y0+1))
}

// unnormalize maps a coordinate in [-1, 1] to a pixel position: -1 and 1
// are the centers of the edge pixels with align_corners, else their outer
// edges.
func unnormalize(v float64, size int, alignCorners bool) float64 {
	if alignCorners {
		return (v + 1) / 2 * float64(size-1)
	}
	return ((v+1)*float64(size) - 1) / 2
}

// pad moves a pixel position outside [0, size-1] inside by the padding
// mode: border clamps it, reflection mirrors it at the edges (the pixel
// centers with align_corners, else the outer edges) and then clamps.
// Zeros leaves it, for pixelAt to read zero.
func (k *gridSampleKernel) pad(v float64, size int) float64 {
	switch k.padding {
	case padBorder:
		return clampCoord(v, size)
	case padReflection:
		if k.alignCorners {
			v = reflectCoord(v, 0, float64(size-1))
		} else {
			v = reflectCoord(v, -0.5, float64(size)-0.5)
		}
		return clampCoord(v, size)
	}
	return v
}

func clampCoord(v float64, size int) float64 {
	return min(float64(size-1), max(v, 0))
}

// reflectCoord mirrors v at lo and hi until it lies between them.
func reflectCoord(v, lo, hi float64) float64 {
	span := hi - lo
	if span <= 0 {
		return 0
	}
	d := math.Abs(v - lo)
	extra := math.Mod(d, span)
	if int64(math.Floor(d/span))%2 == 0 {
		return lo + extra
	}
	return hi - extra
}

// paddedPixel reads the pixel at integer position (x, y) after padding.
func (k *gridSampleKernel) paddedPixel(img []float64, h, w int, x, y float64) float64 {
	return pixelAt(img, h, w, k.pad(x, w), k.pad(y, h))
}

// pixelAt reads img at integer position (x, y), or zero outside it
// (which includes NaN positions).
func pixelAt(img []float64, h, w int, x, y float64) float64 {
	if !(x >= 0 && x < float64(w) && y >= 0 && y < float64(h)) {
		return 0
	}
	return img[int(y)*w+int(x)]
}

// cubicInterp interpolates four equally spaced samples at t in [0, 1)
// past the second, with Keys' cubic convolution kernel (a = -0.75).
func cubicInterp(p [4]float64, t float64) float64 {
	const a = -0.75
	near := func(x float64) float64 { return ((a+2)*x-(a+3))*x*x + 1 }
	far := func(x float64) float64 { return ((a*x-5*a)*x+8*a)*x - 4*a }
	return p[0]*far(t+1) + p[1]*near(t) + p[2]*near(1-t) + p[3]*far(2-t)
}

// --- RoiAlign ---

type roiAlignKernel struct {
	maxMode       bool
	outH, outW    int
	samplingRatio int
	spatialScale  float64
	halfPixel     bool // shift the region by half a pixel: half_pixel mode
	x, rois, out  []float64
	taps          []bilinearTap // the samples of one bin
}

// A bilinearTap is one sampling point of a bin: the offsets of its four
// neighbouring pixels in a channel and their weights.
type bilinearTap struct {
	at [4]int
	w  [4]float64
}

func compileRoiAlign(since int64) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		k := &roiAlignKernel{
			outH:          int(n.AttrInt("output_height", 1)),
			outW:          int(n.AttrInt("output_width", 1)),
			samplingRatio: int(n.AttrInt("sampling_ratio", 0)),
			spatialScale:  float64(n.AttrFloat("spatial_scale", 1)),
		}
		switch m := n.AttrString("mode", "avg"); m {
		case "avg":
		case "max":
			k.maxMode = true
		default:
			return nil, fmt.Errorf("mode %q is not avg or max", m)
		}
		if oh, ow := n.AttrInt("output_height", 1), n.AttrInt("output_width", 1); oh < 1 || ow < 1 || oh > maxElements || ow > maxElements {
			return nil, fmt.Errorf("output_height %d and output_width %d must be positive", oh, ow)
		}
		if sr := n.AttrInt("sampling_ratio", 0); sr < 0 || sr > maxElements {
			return nil, fmt.Errorf("sampling_ratio %d is negative", sr)
		}
		if since >= 16 {
			switch m := n.AttrString("coordinate_transformation_mode", "half_pixel"); m {
			case "half_pixel":
				k.halfPixel = true
			case "output_half_pixel":
			default:
				return nil, fmt.Errorf("coordinate_transformation_mode %q is not half_pixel or output_half_pixel", m)
			}
		}
		return k.run, nil
	}
}

// run pools each region of interest rois[r] = (x1, y1, x2, y2) of image
// batch_indices[r] of X [N, C, H, W] into output_height × output_width
// bins, each the average (or maximum) of bilinear samples on a regular
// grid in the bin.
func (k *roiAlignKernel) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if err := inputs(in, 3); err != nil {
		return nil, err
	}
	x, rois, batchIndices := in[0], in[1], in[2]
	if err := checkFloat("X", x); err != nil {
		return nil, err
	}
	if err := checkFloat("rois", rois); err != nil {
		return nil, err
	}
	if x.Rank() != 4 {
		return nil, fmt.Errorf("X has shape %v, want [N, C, H, W]", x.Shape)
	}
	batch, channels, height, width := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	if rois.Rank() != 2 || rois.Shape[1] != 4 {
		return nil, fmt.Errorf("rois has shape %v, want [num_rois, 4]", rois.Shape)
	}
	numRois := rois.Shape[0]
	idx, err := intsInput(batchIndices, "batch_indices")
	if err != nil {
		return nil, err
	}
	if !sameShape(batchIndices.Shape, []int{numRois}) {
		return nil, fmt.Errorf("batch_indices has shape %v, want [%d]", batchIndices.Shape, numRois)
	}
	out, err := e.output(0, x.DType, numRois, channels, k.outH, k.outW)
	if err != nil {
		return nil, err
	}
	src, err := loadFloats(&k.x, x)
	if err != nil {
		return nil, err
	}
	boxes, err := loadFloats(&k.rois, rois)
	if err != nil {
		return nil, err
	}
	dst := scratchSlice(&k.out, out.Len())
	offset := 0.0
	if k.halfPixel {
		offset = 0.5
	}
	plane, bins := height*width, k.outH*k.outW
	for r := range numRois {
		b := idx[r]
		if b < 0 || b >= int64(batch) {
			return nil, fmt.Errorf("batch index %d of region %d is not in [0, %d)", b, r, batch)
		}
		box := boxes[r*4 : r*4+4]
		x1, y1 := box[0]*k.spatialScale-offset, box[1]*k.spatialScale-offset
		x2, y2 := box[2]*k.spatialScale-offset, box[3]*k.spatialScale-offset
		roiW, roiH := x2-x1, y2-y1
		if !k.halfPixel {
			// Malformed regions are forced to 1×1.
			roiW, roiH = max(roiW, 1), max(roiH, 1)
		}
		binH, binW := roiH/float64(k.outH), roiW/float64(k.outW)
		gh, gw := float64(k.samplingRatio), float64(k.samplingRatio)
		if k.samplingRatio == 0 {
			// An inverted region has no samples and pools to 0, as in
			// the reference.
			gh, gw = max(math.Ceil(binH), 0), max(math.Ceil(binW), 0)
		}
		if !(gh*gw <= maxElements) {
			return nil, fmt.Errorf("region %d, %v, needs %g×%g samples per bin", r, box, gh, gw)
		}
		gridH, gridW := int(gh), int(gw)
		count := float64(max(gridH*gridW, 1))
		for bin := range bins {
			ph, pw := bin/k.outW, bin%k.outW
			taps := k.taps[:0]
			for iy := range gridH {
				y := y1 + float64(ph)*binH + (float64(iy)+0.5)*binH/float64(gridH)
				for ix := range gridW {
					x := x1 + float64(pw)*binW + (float64(ix)+0.5)*binW/float64(gridW)
					taps = append(taps, bilinearAt(height, width, y, x))
				}
			}
			k.taps = taps
			for c := range channels {
				img := src[(int(b)*channels+c)*plane : (int(b)*channels+c+1)*plane]
				dst[(r*channels+c)*bins+bin] = k.pool(img, taps, count)
			}
		}
	}
	storeFloats(out, dst)
	return []*Tensor{out}, nil
}

// pool averages the bilinear samples of one bin over count, or, as the
// reference does for max, takes the maximum over the weighted neighbours
// of every sample.
func (k *roiAlignKernel) pool(img []float64, taps []bilinearTap, count float64) float64 {
	if !k.maxMode {
		sum := 0.0
		for _, t := range taps {
			sum += t.w[0]*img[t.at[0]] + t.w[1]*img[t.at[1]] + t.w[2]*img[t.at[2]] + t.w[3]*img[t.at[3]]
		}
		return sum / count
	}
	m := 0.0
	for i, t := range taps {
		v := max(t.w[0]*img[t.at[0]], t.w[1]*img[t.at[1]], t.w[2]*img[t.at[2]], t.w[3]*img[t.at[3]])
		if i == 0 || v > m {
			m = v
		}
	}
	return m
}

// bilinearAt gives the neighbours and weights of point (y, x), clamped
// to the image; a point more than a pixel outside weighs nothing.
func bilinearAt(height, width int, y, x float64) bilinearTap {
	var t bilinearTap
	if !(y >= -1 && y <= float64(height) && x >= -1 && x <= float64(width)) {
		return t
	}
	y, x = max(y, 0), max(x, 0)
	yLow, xLow := int(y), int(x)
	yHigh, xHigh := yLow+1, xLow+1
	if yLow >= height-1 {
		yLow, yHigh, y = height-1, height-1, float64(height-1)
	}
	if xLow >= width-1 {
		xLow, xHigh, x = width-1, width-1, float64(width-1)
	}
	ly, lx := y-float64(yLow), x-float64(xLow)
	hy, hx := 1-ly, 1-lx
	t.at = [4]int{yLow*width + xLow, yLow*width + xHigh, yHigh*width + xLow, yHigh*width + xHigh}
	t.w = [4]float64{hy * hx, hy * lx, ly * hx, ly * lx}
	return t
}

// --- MaxUnpool ---

type maxUnpoolKernel struct {
	window windowAttrs
}

func compileMaxUnpool(n *graph.Node) (kernel, error) {
	w, err := readWindowAttrs(n)
	if err != nil {
		return nil, err
	}
	if w.kernel == nil {
		return nil, fmt.Errorf("the kernel_shape attribute is required")
	}
	k := &maxUnpoolKernel{window: w}
	return k.run, nil
}

// run scatters X into a zeroed output at the positions I gives, indices
// into the flattened output as MaxPool's Indices output holds them. The
// output's shape is output_shape when given, else the input's before
// max pooling with kernel_shape, strides and pads.
func (k *maxUnpoolKernel) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if err := inputs(in, 2); err != nil {
		return nil, err
	}
	x, indices := in[0], in[1]
	spatial := x.Rank() - 2
	if spatial < 1 {
		return nil, fmt.Errorf("X has shape %v, want [N, C, spatial...]", x.Shape)
	}
	if !sameShape(indices.Shape, x.Shape) {
		return nil, fmt.Errorf("I has shape %v, want X's %v", indices.Shape, x.Shape)
	}
	idx, err := dataOf[int64](indices)
	if err != nil {
		return nil, fmt.Errorf("I: %w", err)
	}
	w := &k.window
	if len(w.kernel) != spatial {
		return nil, fmt.Errorf("kernel_shape %v has %d dimensions, X %v has %d spatial ones", w.kernel, len(w.kernel), x.Shape, spatial)
	}
	if w.strides != nil && len(w.strides) != spatial || w.pads != nil && len(w.pads) != 2*spatial {
		return nil, fmt.Errorf("strides %v or pads %v do not match the %d spatial dimensions", w.strides, w.pads, spatial)
	}
	// The indices count in the shape max pooling came from; output_shape
	// may only add padding at the end of each spatial dimension.
	pooled := make([]int, x.Rank())
	pooled[0], pooled[1] = x.Shape[0], x.Shape[1]
	for i := range spatial {
		stride, padBegin, padEnd := 1, 0, 0
		if w.strides != nil {
			stride = w.strides[i]
		}
		if w.pads != nil {
			padBegin, padEnd = w.pads[i], w.pads[spatial+i]
		}
		d := (x.Shape[2+i]-1)*stride + w.kernel[i] - padBegin - padEnd
		if d < 0 {
			return nil, fmt.Errorf("kernel_shape %v, strides %v and pads %v give a negative output size for X %v", w.kernel, w.strides, w.pads, x.Shape)
		}
		pooled[2+i] = d
	}
	shape := pooled
	if len(in) > 2 && in[2] != nil {
		want, err := intsInput(in[2], "output_shape")
		if err != nil {
			return nil, err
		}
		if len(want) != x.Rank() {
			return nil, fmt.Errorf("output_shape %v does not have X's rank %d", want, x.Rank())
		}
		shape = make([]int, len(want))
		for i, d := range want {
			if d < int64(pooled[i]) || d > maxElements || i < 2 && d != int64(pooled[i]) {
				return nil, fmt.Errorf("output_shape %v is smaller than %v, the shape before pooling, or changes N or C", want, pooled)
			}
			shape[i] = int(d)
		}
	}
	out, err := e.zeroed(0, x.DType, shape...)
	if err != nil {
		return nil, err
	}
	targets, err := unpoolTargets(idx, pooled, shape)
	if err != nil {
		return nil, err
	}
	switch d := x.Data.(type) {
	case []float32:
		scatterTo(out.Data.([]float32), d, targets)
	case []float64:
		scatterTo(out.Data.([]float64), d, targets)
	default:
		return nil, unsupportedType(x.DType)
	}
	return []*Tensor{out}, nil
}

// unpoolTargets maps indices into the flattened shape pooled to offsets
// into shape, which is at least as large in every dimension.
func unpoolTargets(idx []int64, pooled, shape []int) ([]int, error) {
	total := int64(mustElements(pooled))
	targets := make([]int, len(idx))
	ps, os := stridesOf(pooled), stridesOf(shape)
	for i, v := range idx {
		if v < 0 || v >= total {
			return nil, fmt.Errorf("index %d at element %d is outside the unpooled shape %v", v, i, pooled)
		}
		r, t := int(v), 0
		for d := range pooled {
			t += r / ps[d] * os[d]
			r %= ps[d]
		}
		targets[i] = t
	}
	return targets, nil
}

func scatterTo[T any](dst, src []T, targets []int) {
	for i, t := range targets {
		dst[t] = src[i]
	}
}
