package runtime

import (
	"fmt"
	"math"
	"slices"

	"onnxopt/graph"
)

// resizeOps are the operators that resample or rearrange the spatial
// layout of a tensor: Pad, Resize, Upsample, DepthToSpace, SpaceToDepth.
var resizeOps = []opDef{
	{"", "Pad", 1, compilePad(1)},
	{"", "Pad", 2, compilePad(2)},
	{"", "Pad", 11, compilePad(11)},
	{"", "Pad", 18, compilePad(18)},
	{"", "Pad", 19, compilePad(19)},
	{"", "Upsample", 7, compileResize("Upsample", 7)},
	{"", "Upsample", 9, compileResize("Upsample", 9)},
	{"", "Resize", 10, compileResize("Resize", 10)},
	{"", "Resize", 11, compileResize("Resize", 11)},
	{"", "Resize", 13, compileResize("Resize", 13)},
	{"", "Resize", 18, compileResize("Resize", 18)},
	{"", "Resize", 19, compileResize("Resize", 19)},
	{"", "DepthToSpace", 1, compileDepthToSpace},
	{"", "SpaceToDepth", 1, compileSpaceToDepth},
}

// gatherAxes fills dst, of the shape the maps' lengths give, from src, of
// shape in: the element at output index (o0, ..., oR) is src at (maps[0][o0],
// ..., maps[R][oR]), or fill where any of those is -1. Pad and nearest
// Resize both pick source elements independently along each axis.
func gatherAxes[T any](dst, src []T, in []int, maps [][]int, fill T) {
	r := len(maps)
	if len(dst) == 0 {
		return
	}
	if r == 0 {
		dst[0] = src[0]
		return
	}
	strides := stridesOf(in)
	last := maps[r-1]
	idx := make([]int, r-1)
	for d := 0; d < len(dst); d += len(last) {
		row := dst[d : d+len(last)]
		base, outside := 0, false
		for a, i := range idx {
			s := maps[a][i]
			if s < 0 {
				outside = true
				break
			}
			base += s * strides[a]
		}
		if outside {
			for j := range row {
				row[j] = fill
			}
		} else {
			for j, s := range last {
				if s < 0 {
					row[j] = fill
				} else {
					row[j] = src[base+s]
				}
			}
		}
		for a := r - 2; a >= 0; a-- {
			idx[a]++
			if idx[a] < len(maps[a]) {
				break
			}
			idx[a] = 0
		}
	}
}

// gatherAxesInto runs gatherAxes on the data of tensors of one type. fill
// is a one-element slice of that type (from oneOf), or nil for the zero
// value.
func gatherAxesInto(dst, src *Tensor, maps [][]int, fill any) error {
	switch d := dst.Data.(type) {
	case []float32:
		return gatherTyped(d, src, maps, fill)
	case []float64:
		return gatherTyped(d, src, maps, fill)
	case []int64:
		return gatherTyped(d, src, maps, fill)
	case []int32:
		return gatherTyped(d, src, maps, fill)
	case []int16:
		return gatherTyped(d, src, maps, fill)
	case []int8:
		return gatherTyped(d, src, maps, fill)
	case []uint64:
		return gatherTyped(d, src, maps, fill)
	case []uint32:
		return gatherTyped(d, src, maps, fill)
	case []uint16:
		return gatherTyped(d, src, maps, fill)
	case []uint8:
		return gatherTyped(d, src, maps, fill)
	case []bool:
		return gatherTyped(d, src, maps, fill)
	case []string:
		return gatherTyped(d, src, maps, fill)
	}
	return fmt.Errorf("cannot gather elements of %s", dst)
}

func gatherTyped[T any](dst []T, src *Tensor, maps [][]int, fill any) error {
	s, ok := src.Data.([]T)
	if !ok {
		return fmt.Errorf("cannot gather %s into %T", src, dst)
	}
	var f T
	if fill != nil {
		fs, ok := fill.([]T)
		if !ok || len(fs) != 1 {
			return fmt.Errorf("fill value %v does not match %s", fill, src)
		}
		f = fs[0]
	}
	gatherAxes(dst, s, src.Shape, maps, f)
	return nil
}

// Pad modes.
const (
	padConstant = "constant"
	padReflect  = "reflect"
	padEdge     = "edge"
	padWrap     = "wrap"
)

// Pad grows (or, with negative pads, crops) each axis of data. Pad-1 and
// -2 take the pads (named paddings in Pad-1) and the constant value as
// attributes; from Pad-11 they are inputs, from Pad-18 an axes input
// restricts the pads to some axes, and Pad-19 adds the wrap mode.
type pad struct {
	mode       string
	attrPads   []int64 // before opset 11
	attrValue  float64 // before opset 11
	fromInputs bool
}

func compilePad(since int64) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		p := &pad{mode: n.AttrString("mode", padConstant), fromInputs: since >= 11}
		switch p.mode {
		case padConstant, padReflect, padEdge:
		case padWrap:
			if since < 19 {
				return nil, fmt.Errorf("mode %q needs opset 19", p.mode)
			}
		default:
			return nil, fmt.Errorf("unknown mode %q, want constant, reflect, edge or wrap", p.mode)
		}
		if !p.fromInputs {
			name := "pads"
			if since < 2 {
				name = "paddings"
			}
			if n.Attr(name) == nil {
				return nil, fmt.Errorf("attribute %s is required", name)
			}
			p.attrPads = n.AttrInts(name, nil)
			p.attrValue = float64(n.AttrFloat("value", 0))
		}
		return p.run, nil
	}
}

func (p *pad) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, fmt.Errorf("Pad needs input data")
	}
	x := in[0]
	r := x.Rank()
	pads := p.attrPads
	var fill any
	if p.fromInputs {
		if len(in) < 2 || in[1] == nil {
			return nil, fmt.Errorf("Pad needs input pads")
		}
		var err error
		if pads, err = intsInput(in[1], "pads"); err != nil {
			return nil, err
		}
		if len(in) > 2 && in[2] != nil && p.mode == padConstant {
			c := in[2]
			if c.DType != x.DType || c.Len() != 1 {
				return nil, fmt.Errorf("constant_value is %s, want one %s element", c, dtypeName(x.DType))
			}
			fill = c.Data
		}
	} else if p.mode == padConstant && p.attrValue != 0 {
		var err error
		if fill, err = oneOf(x.DType, p.attrValue); err != nil {
			return nil, fmt.Errorf("value: %w", err)
		}
	}
	axes := make([]int, r)
	for i := range axes {
		axes[i] = i
	}
	if len(in) > 3 && in[3] != nil {
		given, err := intsInput(in[3], "axes")
		if err != nil {
			return nil, err
		}
		if axes, err = distinctAxes(given, r); err != nil {
			return nil, err
		}
	}
	if len(pads) != 2*len(axes) {
		return nil, fmt.Errorf("pads has %d values, want %d: a begin and an end for each of %d axes", len(pads), 2*len(axes), len(axes))
	}
	begin, end := make([]int64, r), make([]int64, r)
	for i, a := range axes {
		begin[a], end[a] = pads[i], pads[len(axes)+i]
	}
	maps := make([][]int, r)
	shape := make([]int, r)
	for a := range maps {
		m, err := padMap(p.mode, x.Shape[a], begin[a], end[a])
		if err != nil {
			return nil, fmt.Errorf("axis %d of %s: %w", a, x, err)
		}
		maps[a], shape[a] = m, len(m)
	}
	y, err := e.output(0, x.DType, shape...)
	if err != nil {
		return nil, err
	}
	if err := gatherAxesInto(y, x, maps, fill); err != nil {
		return nil, err
	}
	return []*Tensor{y}, nil
}

// distinctAxes normalizes axes that may count from the back and rejects
// repeats.
func distinctAxes(given []int64, rank int) ([]int, error) {
	axes := make([]int, len(given))
	seen := make([]bool, rank)
	for i, a := range given {
		ax, err := normAxis(a, rank)
		if err != nil {
			return nil, fmt.Errorf("axes %v: %w", given, err)
		}
		if seen[ax] {
			return nil, fmt.Errorf("axes %v names axis %d twice", given, ax)
		}
		seen[ax] = true
		axes[i] = ax
	}
	return axes, nil
}

// padMap gives, for each output position along an axis of length n padded
// by begin and end, the input position it copies, or -1 for the constant.
// Negative pads crop first; the other modes then pad what remains, as the
// ONNX reference does.
func padMap(mode string, n int, begin, end int64) ([]int, error) {
	if begin > math.MaxInt32 || end > math.MaxInt32 || begin < -int64(n) || end < -int64(n) {
		return nil, fmt.Errorf("pads %d and %d do not fit length %d", begin, end, n)
	}
	cropBegin, cropEnd := max(0, -int(begin)), max(0, -int(end))
	kept := n - cropBegin - cropEnd
	if kept < 0 {
		return nil, fmt.Errorf("pads %d and %d crop more than its %d elements", begin, end, n)
	}
	before, after := max(0, int(begin)), max(0, int(end))
	if kept == 0 && before+after > 0 && mode != padConstant {
		return nil, fmt.Errorf("mode %s cannot pad an axis with no elements", mode)
	}
	m := make([]int, kept+before+after)
	for o := range m {
		j := o - before
		if j < 0 || j >= kept {
			switch mode {
			case padConstant:
				m[o] = -1
				continue
			case padEdge:
				j = min(max(j, 0), kept-1)
			case padWrap:
				j = ((j % kept) + kept) % kept
			case padReflect:
				j = reflectIndex(j, kept)
			}
		}
		m[o] = cropBegin + j
	}
	return m, nil
}

// reflectIndex maps j into [0, n) by reflecting about the first and last
// elements without repeating them, as often as it takes.
func reflectIndex(j, n int) int {
	if n == 1 {
		return 0
	}
	period := 2 * (n - 1)
	j = ((j % period) + period) % period
	if j >= n {
		j = period - j
	}
	return j
}

// Resize modes, coordinate transformations and nearest rounding modes.
const (
	resizeNearest = "nearest"
	resizeLinear  = "linear"
	resizeCubic   = "cubic"

	coordHalfPixel          = "half_pixel"
	coordHalfPixelSymmetric = "half_pixel_symmetric"
	coordPytorchHalfPixel   = "pytorch_half_pixel"
	coordAlignCorners       = "align_corners"
	coordAsymmetric         = "asymmetric"
	coordTFHalfPixelForNN   = "tf_half_pixel_for_nn"
	coordTFCropAndResize    = "tf_crop_and_resize"

	roundPreferFloor = "round_prefer_floor"
	roundPreferCeil  = "round_prefer_ceil"
	roundFloor       = "floor"
	roundCeil        = "ceil"
	// roundLegacy is how Upsample and Resize-10 pick the nearest element
	// (they name no rounding): ceil when the axis shrinks, floor when it
	// grows, as ONNX Runtime does and Resize-10's downsampling example
	// expects.
	roundLegacy = "legacy"
)

// A resize holds the checked attributes of Resize or Upsample.
type resize struct {
	op                string
	since             int64
	mode              string
	coord             string
	nearest           string
	cubicA            float64
	excludeOutside    bool
	extrapolation     float64
	antialias         bool
	axes              []int64 // nil: every axis
	policy            string  // keep_aspect_ratio_policy
	attrScales        []float32
	roi, scales, size int // input positions, -1 when the version has none

	scratch [3][]float64
	taps    []axisTaps
}

func compileResize(op string, since int64) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		r := &resize{
			op:      op,
			since:   since,
			mode:    n.AttrString("mode", resizeNearest),
			coord:   coordAsymmetric,
			nearest: roundLegacy,
			policy:  "stretch",
			roi:     -1, scales: 1, size: -1,
		}
		legacy := op == "Upsample" || since < 11
		switch r.mode {
		case resizeNearest, resizeLinear:
		case resizeCubic:
			if legacy {
				return nil, fmt.Errorf("mode cubic needs Resize-11")
			}
		default:
			return nil, fmt.Errorf("unknown mode %q, want nearest, linear or cubic", r.mode)
		}
		if op == "Upsample" && since < 9 {
			if n.Attr("scales") == nil {
				return nil, fmt.Errorf("attribute scales is required")
			}
			r.attrScales = n.AttrFloats("scales", nil)
			r.scales = -1
			for _, s := range r.attrScales {
				if !(s >= 1) {
					return nil, fmt.Errorf("scales %v: Upsample scales must be at least 1", r.attrScales)
				}
			}
		}
		if legacy {
			return r.run, nil
		}
		r.roi, r.scales, r.size = 1, 2, 3
		r.coord = n.AttrString("coordinate_transformation_mode", coordHalfPixel)
		r.nearest = n.AttrString("nearest_mode", roundPreferFloor)
		r.cubicA = float64(n.AttrFloat("cubic_coeff_a", -0.75))
		r.excludeOutside = n.AttrInt("exclude_outside", 0) != 0
		r.extrapolation = float64(n.AttrFloat("extrapolation_value", 0))
		switch r.coord {
		case coordHalfPixel, coordPytorchHalfPixel, coordAlignCorners, coordAsymmetric, coordTFCropAndResize:
		case coordTFHalfPixelForNN:
			if since >= 13 {
				return nil, fmt.Errorf("coordinate_transformation_mode %q was removed in opset 13", r.coord)
			}
		case coordHalfPixelSymmetric:
			if since < 19 {
				return nil, fmt.Errorf("coordinate_transformation_mode %q needs opset 19", r.coord)
			}
		default:
			return nil, fmt.Errorf("unknown coordinate_transformation_mode %q", r.coord)
		}
		switch r.nearest {
		case roundPreferFloor, roundPreferCeil, roundFloor, roundCeil:
		default:
			return nil, fmt.Errorf("unknown nearest_mode %q", r.nearest)
		}
		if since >= 18 {
			// antialias filters linear and cubic interpolation only; the
			// spec gives it no meaning for nearest, which ignores it.
			r.antialias = n.AttrInt("antialias", 0) != 0
			if n.Attr("axes") != nil {
				r.axes = n.AttrInts("axes", nil)
			}
			r.policy = n.AttrString("keep_aspect_ratio_policy", "stretch")
			switch r.policy {
			case "stretch", "not_larger", "not_smaller":
			default:
				return nil, fmt.Errorf("unknown keep_aspect_ratio_policy %q", r.policy)
			}
		}
		return r.run, nil
	}
}

// axisResize describes the resampling of one axis.
type axisResize struct {
	in, out int
	scale   float64
	// width is the output length before flooring or rounding to an
	// integer: in*scale. The ONNX reference maps coordinates with it,
	// and the suite's align_corners cases with fractional scales expect
	// that.
	width    float64
	roiStart float64
	roiEnd   float64
}

func (r *resize) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, fmt.Errorf("%s needs input X", r.op)
	}
	x := in[0]
	axes, err := r.resizeAxes(x.Rank())
	if err != nil {
		return nil, err
	}
	geo, err := r.geometry(x, axes, in)
	if err != nil {
		return nil, err
	}
	shape := make([]int, len(geo))
	for i, g := range geo {
		shape[i] = g.out
	}
	y, err := e.output(0, x.DType, shape...)
	if err != nil {
		return nil, err
	}
	if y.Len() == 0 {
		return []*Tensor{y}, nil
	}
	if r.mode == resizeNearest {
		maps := make([][]int, len(geo))
		for a, g := range geo {
			maps[a] = r.nearestMap(g)
		}
		var fill any
		if r.coord == coordTFCropAndResize {
			if fill, err = oneOf(x.DType, r.extrapolation); err != nil {
				return nil, err
			}
		}
		if err := gatherAxesInto(y, x, maps, fill); err != nil {
			return nil, err
		}
		return []*Tensor{y}, nil
	}
	if err := r.interpolate(y, x, geo); err != nil {
		return nil, err
	}
	return []*Tensor{y}, nil
}

// resizeAxes returns the axes scales, sizes and roi refer to.
func (r *resize) resizeAxes(rank int) ([]int, error) {
	if r.axes == nil {
		axes := make([]int, rank)
		for i := range axes {
			axes[i] = i
		}
		return axes, nil
	}
	return distinctAxes(r.axes, rank)
}

// geometry works out each axis's output length, scale and region of
// interest from the scales or sizes.
func (r *resize) geometry(x *Tensor, axes []int, in []*Tensor) ([]axisResize, error) {
	rank := x.Rank()
	input := func(i int) *Tensor {
		if i < 0 || i >= len(in) || in[i] == nil || in[i].Len() == 0 {
			return nil
		}
		return in[i]
	}
	geo := make([]axisResize, rank)
	for a := range geo {
		d := x.Shape[a]
		geo[a] = axisResize{in: d, out: d, scale: 1, width: float64(d), roiEnd: 1}
	}
	if r.coord == coordTFCropAndResize {
		roi := input(r.roi)
		if roi == nil {
			return nil, fmt.Errorf("coordinate_transformation_mode tf_crop_and_resize needs input roi")
		}
		vals, err := loadFloats(&r.scratch[0], roi)
		if err != nil {
			return nil, fmt.Errorf("roi: %w", err)
		}
		if len(vals) != 2*len(axes) {
			return nil, fmt.Errorf("roi has %d values, want %d: a start and an end for each of %d axes", len(vals), 2*len(axes), len(axes))
		}
		for i, a := range axes {
			geo[a].roiStart, geo[a].roiEnd = vals[i], vals[len(axes)+i]
		}
	}
	scales, sizes := input(r.scales), input(r.size)
	switch {
	case r.attrScales != nil || scales != nil:
		if sizes != nil {
			return nil, fmt.Errorf("scales and sizes are both given; give one")
		}
		var vals []float64
		if r.attrScales != nil {
			vals = make([]float64, len(r.attrScales))
			for i, s := range r.attrScales {
				vals[i] = float64(s)
			}
		} else {
			var err error
			if vals, err = loadFloats(&r.scratch[1], scales); err != nil {
				return nil, fmt.Errorf("scales: %w", err)
			}
		}
		if len(vals) != len(axes) {
			return nil, fmt.Errorf("scales has %d values for %d axes of %s", len(vals), len(axes), x)
		}
		for i, a := range axes {
			s := vals[i]
			if !(s > 0) || math.IsInf(s, 0) {
				return nil, fmt.Errorf("scales %v: each must be positive and finite", vals)
			}
			if r.op == "Upsample" && s < 1 {
				return nil, fmt.Errorf("scales %v: Upsample scales must be at least 1", vals)
			}
			g := &geo[a]
			g.scale, g.width = s, float64(g.in)*s
			// The output length ignores the region of interest, as the
			// ONNX reference and ONNX Runtime do.
			out := math.Floor(g.width)
			if out > maxElements {
				return nil, fmt.Errorf("scale %g makes axis %d longer than %d", s, a, maxElements)
			}
			g.out = int(out)
		}
	case sizes != nil:
		vals, err := intsInput(sizes, "sizes")
		if err != nil {
			return nil, err
		}
		if len(vals) != len(axes) {
			return nil, fmt.Errorf("sizes has %d values for %d axes of %s", len(vals), len(axes), x)
		}
		for i, a := range axes {
			if vals[i] < 0 || vals[i] > maxElements {
				return nil, fmt.Errorf("sizes %v: %d is not a length", vals, vals[i])
			}
			g := &geo[a]
			g.out = int(vals[i])
			g.scale = float64(g.out) / float64(g.in)
			g.width = float64(g.out)
		}
		if r.policy != "stretch" && len(axes) > 0 {
			s := geo[axes[0]].scale
			for _, a := range axes[1:] {
				if r.policy == "not_larger" {
					s = min(s, geo[a].scale)
				} else {
					s = max(s, geo[a].scale)
				}
			}
			for _, a := range axes {
				g := &geo[a]
				g.scale, g.width = s, s*float64(g.in)
				g.out = int(math.Floor(g.width + 0.5))
			}
		}
	default:
		return nil, fmt.Errorf("%s needs scales or sizes", r.op)
	}
	for a, g := range geo {
		if g.in == 0 && g.out > 0 {
			return nil, fmt.Errorf("axis %d of %s is empty and cannot be resized to %d", a, x, g.out)
		}
	}
	return geo, nil
}

// original maps output coordinate x along an axis to the input.
func (r *resize) original(x float64, g axisResize) float64 {
	in := float64(g.in)
	switch r.coord {
	case coordHalfPixel:
		return (x+0.5)/g.scale - 0.5
	case coordHalfPixelSymmetric:
		// Centres the output on the input when rounding the output length
		// moved its end.
		adjustment := float64(g.out) / g.width
		offset := in / 2 * (1 - adjustment)
		return offset + (x+0.5)/g.scale - 0.5
	case coordPytorchHalfPixel:
		if g.width == 1 {
			return -0.5
		}
		return (x+0.5)/g.scale - 0.5
	case coordAlignCorners:
		if g.width == 1 {
			return 0
		}
		return x * (in - 1) / (g.width - 1)
	case coordTFHalfPixelForNN:
		return (x + 0.5) / g.scale
	case coordTFCropAndResize:
		span := g.roiEnd - g.roiStart
		if g.width == 1 {
			return span*(in-1)/2 + g.roiStart*(in-1)
		}
		return x*span*(in-1)/(g.width-1) + g.roiStart*(in-1)
	}
	return x / g.scale // asymmetric
}

// extrapolated reports whether tf_crop_and_resize puts coordinate xo
// outside the input, where extrapolation_value is used.
func (r *resize) extrapolated(xo float64, g axisResize) bool {
	return r.coord == coordTFCropAndResize && (xo < 0 || xo > float64(g.in-1))
}

// nearestMap gives the input element each output position copies along
// an axis, or -1 for extrapolation_value.
func (r *resize) nearestMap(g axisResize) []int {
	m := make([]int, g.out)
	for o := range m {
		xo := r.original(float64(o), g)
		if r.extrapolated(xo, g) {
			m[o] = -1
			continue
		}
		var i float64
		switch r.nearest {
		case roundPreferFloor:
			i = math.Ceil(xo - 0.5)
		case roundPreferCeil:
			i = math.Floor(xo + 0.5)
		case roundFloor:
			i = math.Floor(xo)
		case roundCeil:
			i = math.Ceil(xo)
		default: // roundLegacy
			if g.scale < 1 {
				i = math.Ceil(xo)
			} else {
				i = math.Floor(xo)
			}
		}
		m[o] = int(min(max(i, 0), float64(g.in-1)))
	}
	return m
}

// axisTaps holds, for each output position along an axis, the input
// positions it weighs and their weights: positions idx[start[o]:start[o+1]]
// with weights w[...]. outside marks positions set to extrapolation_value.
type axisTaps struct {
	start    []int
	idx      []int
	w        []float64
	outside  []bool
	identity bool
}

// linearWeight is the triangle filter, stretched by 1/s when s < 1.
func linearWeight(d, s float64) float64 {
	return max(0, 1-math.Abs(d*s))
}

// cubicWeight is Keys' cubic convolution kernel with coefficient a,
// stretched by 1/s when s < 1.
func cubicWeight(d, s, a float64) float64 {
	x := math.Abs(d * s)
	switch {
	case x <= 1:
		return ((a+2)*x-(a+3))*x*x + 1
	case x < 2:
		return ((a*x-5*a)*x+8*a)*x - 4*a
	}
	return 0
}

// buildTaps works out the interpolation weights along an axis. The window
// spans the two (linear) or four (cubic) nearest input positions, or, with
// antialias when the axis shrinks by s, 1/s times as many with the filter
// stretched to match and the weights normalized. exclude_outside drops
// positions beyond the input and renormalizes; the remaining positions
// beyond it repeat the edge element.
func (r *resize) buildTaps(g axisResize, t *axisTaps) {
	t.start, t.idx, t.w, t.outside = append(t.start[:0], 0), t.idx[:0], t.w[:0], t.outside[:0]
	s := 1.0
	if r.antialias {
		s = min(g.scale, 1)
	}
	reach := 1.0 // the filter's half width
	if r.mode == resizeCubic {
		reach = 2
	}
	lo := int(math.Floor(-reach/s)) + 1 // first offset of the window
	t.identity = g.in == g.out
	for o := 0; o < g.out; o++ {
		xo := r.original(float64(o), g)
		out := r.extrapolated(xo, g)
		t.outside = append(t.outside, out)
		if out {
			t.start = append(t.start, len(t.idx))
			t.identity = false
			continue
		}
		// The window is placed so that xo lies in (base, base+1]: the
		// ONNX reference's convention, which decides which positions
		// exclude_outside drops.
		base := math.Floor(xo)
		ratio := xo - base
		if ratio == 0 {
			base, ratio = base-1, 1
		}
		first := len(t.w)
		sum := 0.0
		for j := lo; j <= 1-lo; j++ {
			d := float64(j) - ratio
			var w float64
			if r.mode == resizeCubic {
				w = cubicWeight(d, s, r.cubicA)
			} else {
				w = linearWeight(d, s)
			}
			t.idx = append(t.idx, int(base)+j)
			t.w = append(t.w, w)
			sum += w
		}
		ws, is := t.w[first:], t.idx[first:]
		if r.antialias {
			for k := range ws {
				ws[k] /= sum
			}
		}
		if r.excludeOutside {
			sum = 0
			for k, i := range is {
				if i < 0 || i >= g.in {
					ws[k] = 0
				}
				sum += ws[k]
			}
			for k := range ws {
				ws[k] /= sum
			}
		}
		// Clamp to the edge and drop positions that weigh nothing.
		kept := first
		for k, i := range is {
			if ws[k] == 0 {
				continue
			}
			t.idx[kept] = min(max(i, 0), g.in-1)
			t.w[kept] = ws[k]
			kept++
		}
		t.idx, t.w = t.idx[:kept], t.w[:kept]
		t.start = append(t.start, kept)
		if kept-first != 1 || t.idx[first] != o || t.w[first] != 1 {
			t.identity = false
		}
	}
}

// interpolate resizes x into y with linear or cubic interpolation, one
// axis at a time: the weights are a product of per-axis weights, so the
// passes give the same sums as the n-dimensional window, with
// extrapolation_value spreading unchanged through later passes since
// every pass's weights sum to one.
func (r *resize) interpolate(y, x *Tensor, geo []axisResize) error {
	cur, err := loadFloats(&r.scratch[0], x)
	if err != nil {
		return fmt.Errorf("%s: mode %s needs numbers: %w", r.op, r.mode, err)
	}
	if len(r.taps) < len(geo) {
		r.taps = make([]axisTaps, len(geo))
	}
	shape := slices.Clone(x.Shape)
	next := 1 // the scratch buffer the next pass writes
	for a, g := range geo {
		t := &r.taps[a]
		r.buildTaps(g, t)
		if t.identity {
			continue
		}
		outer := mustElements(shape[:a])
		inner := mustElements(shape[a+1:])
		dst := scratchSlice(&r.scratch[next], outer*g.out*inner)
		resizePass(dst, cur, outer, g.in, inner, t, r.extrapolation)
		cur, shape[a] = dst, g.out
		next = 3 - next // alternate between scratch 1 and 2
	}
	storeFloats(y, cur)
	return nil
}

// resizePass resamples the middle axis of src [outer, in, inner] into dst
// [outer, len(t.start)-1, inner].
func resizePass(dst, src []float64, outer, in, inner int, t *axisTaps, extrapolation float64) {
	out := len(t.start) - 1
	for o := 0; o < outer; o++ {
		s := src[o*in*inner : (o+1)*in*inner]
		d := dst[o*out*inner : (o+1)*out*inner]
		for j := 0; j < out; j++ {
			row := d[j*inner : (j+1)*inner]
			if t.outside[j] {
				for i := range row {
					row[i] = extrapolation
				}
				continue
			}
			clear(row)
			for k := t.start[j]; k < t.start[j+1]; k++ {
				w, from := t.w[k], s[t.idx[k]*inner:(t.idx[k]+1)*inner]
				for i, v := range from {
					row[i] += w * v
				}
			}
		}
	}
}

// DepthToSpace moves blocks of blocksize x blocksize channels of X [N, C,
// H, W] into space: [N, C/blocksize², H*blocksize, W*blocksize]. DCR
// (the default) takes the block position from the outer channel index,
// CRD from the inner.
func compileDepthToSpace(n *graph.Node) (kernel, error) {
	b, err := blockSize(n)
	if err != nil {
		return nil, err
	}
	mode := n.AttrString("mode", "DCR")
	if mode != "DCR" && mode != "CRD" {
		return nil, fmt.Errorf("unknown mode %q, want DCR or CRD", mode)
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x, err := blockInput("DepthToSpace", in)
		if err != nil {
			return nil, err
		}
		nb, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
		if c%(b*b) != 0 {
			return nil, fmt.Errorf("%d channels of %s do not split into blocks of %d", c, x, b*b)
		}
		oc := c / (b * b)
		if h > maxElements/b || w > maxElements/b {
			return nil, fmt.Errorf("blocksize %d makes %s too large", b, x)
		}
		y, err := e.output(0, x.DType, nb, oc, h*b, w*b)
		if err != nil {
			return nil, err
		}
		// y viewed as [N, C', H, b, W, b]; the strides of x for each of
		// those axes.
		plane := h * w
		var cs, rowBlock, colBlock int
		if mode == "DCR" { // x is [N, b, b, C', H, W]
			cs, rowBlock, colBlock = plane, b*oc*plane, oc*plane
		} else { // x is [N, C', b, b, H, W]
			cs, rowBlock, colBlock = b*b*plane, b*plane, plane
		}
		shape := []int{nb, oc, h, b, w, b}
		strides := []int{c * plane, cs, w, rowBlock, 1, colBlock}
		if err := stridedWalk(y.Data, x.Data, shape, 0, strides); err != nil {
			return nil, err
		}
		return []*Tensor{y}, nil
	}, nil
}

// SpaceToDepth is DepthToSpace's DCR inverse: X [N, C, H, W] becomes [N,
// C*blocksize², H/blocksize, W/blocksize].
func compileSpaceToDepth(n *graph.Node) (kernel, error) {
	b, err := blockSize(n)
	if err != nil {
		return nil, err
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x, err := blockInput("SpaceToDepth", in)
		if err != nil {
			return nil, err
		}
		nb, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
		if h%b != 0 || w%b != 0 {
			return nil, fmt.Errorf("height and width of %s are not multiples of blocksize %d", x, b)
		}
		y, err := e.output(0, x.DType, nb, c*b*b, h/b, w/b)
		if err != nil {
			return nil, err
		}
		// y viewed as [N, b, b, C, H/b, W/b]; x as [N, C, H/b, b, W/b, b].
		shape := []int{nb, b, b, c, h / b, w / b}
		strides := []int{c * h * w, w, 1, h * w, b * w, b}
		if err := stridedWalk(y.Data, x.Data, shape, 0, strides); err != nil {
			return nil, err
		}
		return []*Tensor{y}, nil
	}, nil
}

func blockSize(n *graph.Node) (int, error) {
	if n.Attr("blocksize") == nil {
		return 0, fmt.Errorf("attribute blocksize is required")
	}
	b := n.AttrInt("blocksize", 0)
	if b <= 0 || b > math.MaxInt16 {
		return 0, fmt.Errorf("blocksize is %d, want a positive size", b)
	}
	return int(b), nil
}

func blockInput(op string, in []*Tensor) (*Tensor, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, fmt.Errorf("%s needs input input", op)
	}
	x := in[0]
	if x.Rank() != 4 {
		return nil, fmt.Errorf("input is %s, want rank 4 [N, C, H, W]", x)
	}
	return x, nil
}
