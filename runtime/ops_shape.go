package runtime

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// Shape and layout operators: they move elements without computing on
// them, so most kernels work on any element type through copyStrided.
// Reshape, Flatten, Squeeze and Unsqueeze return views sharing the input's
// data.

var shapeOps = []opDef{
	{"", "Reshape", 1, compileReshapeAttr},
	{"", "Reshape", 5, compileReshape},
	{"", "Flatten", 1, compileFlatten},
	{"", "Transpose", 1, compileTranspose},
	{"", "Squeeze", 1, compileSqueezeAttr},
	{"", "Squeeze", 13, compileSqueeze},
	{"", "Unsqueeze", 1, compileUnsqueezeAttr},
	{"", "Unsqueeze", 13, compileUnsqueeze},
	{"", "Concat", 1, compileConcat},
	{"", "Split", 1, compileSplitAttr},
	{"", "Split", 13, compileSplit},
	{"", "Slice", 1, compileSliceAttr},
	{"", "Slice", 10, compileSlice},
	{"", "Gather", 1, compileGather},
	{"", "GatherElements", 11, compileGatherElements},
	{"", "GatherND", 11, compileGatherND},
	{"", "Scatter", 9, compileScatterElements},
	{"", "ScatterElements", 11, compileScatterElements},
	{"", "ScatterND", 11, compileScatterND},
	{"", "Expand", 8, compileExpand},
	{"", "Tile", 6, compileTile},
	{"", "Shape", 1, compileShape},
	{"", "Size", 1, compileSize},
	{"", "ConstantOfShape", 9, compileConstantOfShape},
	{"", "Constant", 1, compileConstant},
	{"", "Range", 11, compileRange},
	{"", "NonZero", 9, compileNonZero},
	{"", "OneHot", 9, compileOneHot},
	{"", "Trilu", 14, compileTrilu},
	{"", "EyeLike", 9, compileEyeLike},
	{"", "ReverseSequence", 10, compileReverseSequence},
	{"", "Compress", 9, compileCompress},
	{"", "Unique", 11, compileUnique},
}

// view returns x with a new shape and the same data.
func view(x *Tensor, shape []int) *Tensor {
	return &Tensor{DType: x.DType, Shape: shape, Data: x.Data}
}

// intsInput reads an integer tensor (int64 or int32), such as a shape or
// axes input, as int64s. An int64 tensor's data is returned as is, so the
// caller must not write to it.
func intsInput(t *Tensor, what string) ([]int64, error) {
	switch d := t.Data.(type) {
	case []int64:
		return d, nil
	case []int32:
		out := make([]int64, len(d))
		for i, v := range d {
			out[i] = int64(v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s must be int64 or int32, got %s", what, t)
}

// scalarInt reads a one-element integer tensor.
func scalarInt(t *Tensor, what string) (int64, error) {
	v, err := intsInput(t, what)
	if err != nil {
		return 0, err
	}
	if len(v) != 1 {
		return 0, fmt.Errorf("%s must hold one element, got %s", what, t)
	}
	return v[0], nil
}

// normAxis maps an axis in [-rank, rank) to [0, rank).
func normAxis(axis int64, rank int) (int, error) {
	if axis < -int64(rank) || axis >= int64(rank) {
		return 0, fmt.Errorf("axis %d is out of range for rank %d", axis, rank)
	}
	if axis < 0 {
		axis += int64(rank)
	}
	return int(axis), nil
}

// stridesOf returns the row-major element strides of shape.
func stridesOf(shape []int) []int {
	st := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = acc
		acc *= shape[i]
	}
	return st
}

// copyStrided copies n elements src[s], src[s+stride], ... into
// dst[d:d+n]; dst and src hold the same element type. A zero stride fills
// with src[s]; a negative one walks backwards.
func copyStrided(dst, src any, d, s, n, stride int) error {
	if n <= 0 {
		return nil
	}
	switch dd := dst.(type) {
	case []float32:
		return stridedOf(dd, src, d, s, n, stride)
	case []float64:
		return stridedOf(dd, src, d, s, n, stride)
	case []int64:
		return stridedOf(dd, src, d, s, n, stride)
	case []int32:
		return stridedOf(dd, src, d, s, n, stride)
	case []int16:
		return stridedOf(dd, src, d, s, n, stride)
	case []int8:
		return stridedOf(dd, src, d, s, n, stride)
	case []uint64:
		return stridedOf(dd, src, d, s, n, stride)
	case []uint32:
		return stridedOf(dd, src, d, s, n, stride)
	case []uint16:
		return stridedOf(dd, src, d, s, n, stride)
	case []uint8:
		return stridedOf(dd, src, d, s, n, stride)
	case []bool:
		return stridedOf(dd, src, d, s, n, stride)
	case []string:
		return stridedOf(dd, src, d, s, n, stride)
	}
	return fmt.Errorf("cannot copy elements of %T", dst)
}

func stridedOf[T any](dst []T, src any, d, s, n, stride int) error {
	sd, ok := src.([]T)
	if !ok {
		return fmt.Errorf("cannot copy %T into %T", src, dst)
	}
	last := s + (n-1)*stride
	if d < 0 || d+n > len(dst) || s < 0 || s >= len(sd) || last < 0 || last >= len(sd) {
		return fmt.Errorf("copy of %d elements from %d by %d out of range (%d into %d)", n, s, stride, len(sd), len(dst))
	}
	out := dst[d : d+n]
	switch stride {
	case 1:
		copy(out, sd[s:s+n])
	case 0:
		v := sd[s]
		for i := range out {
			out[i] = v
		}
	default:
		for i := range out {
			out[i] = sd[s]
			s += stride
		}
	}
	return nil
}

// An odometer counts through the indices of a shape in row-major order,
// keeping a linear offset into one or more strided operands.
type odometer struct {
	shape []int
	idx   []int
	offs  []int   // per operand
	st    [][]int // per operand, per dimension
}

func newOdometer(shape []int, strides ...[]int) *odometer {
	return &odometer{shape: shape, idx: make([]int, len(shape)), offs: make([]int, len(strides)), st: strides}
}

// next advances by one position; it reports false after the last.
func (o *odometer) next() bool {
	for i := len(o.shape) - 1; i >= 0; i-- {
		o.idx[i]++
		for k := range o.offs {
			o.offs[k] += o.st[k][i]
		}
		if o.idx[i] < o.shape[i] {
			return true
		}
		for k := range o.offs {
			o.offs[k] -= o.st[k][i] * o.shape[i]
		}
		o.idx[i] = 0
	}
	return false
}

// stridedWalk copies the region of src described by shape, start offset
// base and per-dimension source strides into dst in row-major order.
func stridedWalk(dst, src any, shape []int, base int, strides []int) error {
	n := mustElements(shape)
	if n == 0 {
		return nil
	}
	if len(shape) == 0 {
		return copyStrided(dst, src, 0, base, 1, 1)
	}
	r := len(shape) - 1
	inner, innerStride := shape[r], strides[r]
	o := newOdometer(shape[:r], strides[:r])
	for d := 0; d < n; d += inner {
		if err := copyStrided(dst, src, d, base+o.offs[0], inner, innerStride); err != nil {
			return err
		}
		o.next()
	}
	return nil
}

// oneOf returns a one-element slice of dt holding v.
func oneOf(dt onnx.TensorProto_DataType, v float64) (any, error) {
	s, err := makeSlice(dt, 1)
	if err != nil {
		return nil, err
	}
	switch d := s.(type) {
	case []float32:
		d[0] = float32(v)
	case []float64:
		d[0] = v
	case []int64:
		d[0] = int64(v)
	case []int32:
		d[0] = int32(v)
	case []int16:
		d[0] = int16(v)
	case []int8:
		d[0] = int8(v)
	case []uint64:
		d[0] = uint64(v)
	case []uint32:
		d[0] = uint32(v)
	case []uint16:
		d[0] = uint16(v)
	case []uint8:
		d[0] = uint8(v)
	case []bool:
		d[0] = v != 0
	default:
		return nil, fmt.Errorf("%s holds no numbers", dtypeName(dt))
	}
	return s, nil
}

// --- Reshape, Flatten, Squeeze, Unsqueeze: views ---

func compileReshapeAttr(n *graph.Node) (kernel, error) {
	if n.Attr("shape") == nil {
		return nil, errors.New("attribute shape is required")
	}
	spec := n.AttrInts("shape", nil)
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		shape, err := reshapeTo(in[0].Shape, spec, false)
		if err != nil {
			return nil, err
		}
		return []*Tensor{view(in[0], shape)}, nil
	}, nil
}

func compileReshape(n *graph.Node) (kernel, error) {
	allowZero := n.AttrInt("allowzero", 0) != 0
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if len(in) < 2 || in[1] == nil {
			return nil, errors.New("input shape is required")
		}
		spec, err := intsInput(in[1], "shape")
		if err != nil {
			return nil, err
		}
		shape, err := reshapeTo(in[0].Shape, spec, allowZero)
		if err != nil {
			return nil, err
		}
		return []*Tensor{view(in[0], shape)}, nil
	}, nil
}

// reshapeTo resolves a Reshape shape: 0 copies the input's dimension
// (unless allowZero, where it is a zero size) and one -1 is inferred.
func reshapeTo(in []int, spec []int64, allowZero bool) ([]int, error) {
	out := make([]int, len(spec))
	infer := -1
	known := 1
	for i, d := range spec {
		switch {
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has more than one -1", spec)
			}
			infer = i
			continue
		case d == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("shape %v copies dimension %d of the rank-%d input", spec, i, len(in))
			}
			out[i] = in[i]
		case d < 0 || d > maxElements:
			return nil, fmt.Errorf("shape %v has an invalid dimension %d", spec, d)
		default:
			out[i] = int(d)
		}
		known *= out[i]
		if known > maxElements {
			return nil, fmt.Errorf("shape %v is too large", spec)
		}
	}
	total := mustElements(in)
	if infer >= 0 {
		if known == 0 {
			if allowZero {
				return nil, fmt.Errorf("shape %v has both 0 and -1 with allowzero", spec)
			}
			return nil, fmt.Errorf("cannot infer the -1 in %v with a zero dimension", spec)
		}
		if total%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", in, spec)
		}
		out[infer] = total / known
		known *= out[infer]
	}
	if known != total {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", in, total, out)
	}
	return out, nil
}

func compileFlatten(n *graph.Node) (kernel, error) {
	axis := n.AttrInt("axis", 1)
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		a := axis
		if a < 0 {
			a += int64(x.Rank())
		}
		if a < 0 || a > int64(x.Rank()) {
			return nil, fmt.Errorf("axis %d is out of range for rank %d", axis, x.Rank())
		}
		return []*Tensor{view(x, []int{mustElements(x.Shape[:a]), mustElements(x.Shape[a:])})}, nil
	}, nil
}

func compileSqueezeAttr(n *graph.Node) (kernel, error) {
	axes := n.AttrInts("axes", nil)
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		return squeeze(in[0], axes)
	}, nil
}

func compileSqueeze(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		var axes []int64
		if len(in) > 1 && in[1] != nil {
			var err error
			if axes, err = intsInput(in[1], "axes"); err != nil {
				return nil, err
			}
		}
		return squeeze(in[0], axes)
	}, nil
}

// squeeze drops the given axes, which must have size 1, or every size-1
// axis when axes is empty.
func squeeze(x *Tensor, axes []int64) ([]*Tensor, error) {
	drop := make([]bool, x.Rank())
	for _, a := range axes {
		i, err := normAxis(a, x.Rank())
		if err != nil {
			return nil, err
		}
		if x.Shape[i] != 1 {
			return nil, fmt.Errorf("cannot squeeze axis %d of size %d", a, x.Shape[i])
		}
		drop[i] = true
	}
	shape := []int{}
	for i, d := range x.Shape {
		if len(axes) == 0 && d == 1 || drop[i] {
			continue
		}
		shape = append(shape, d)
	}
	return []*Tensor{view(x, shape)}, nil
}

func compileUnsqueezeAttr(n *graph.Node) (kernel, error) {
	if n.Attr("axes") == nil {
		return nil, errors.New("attribute axes is required")
	}
	axes := n.AttrInts("axes", nil)
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		return unsqueeze(in[0], axes)
	}, nil
}

func compileUnsqueeze(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if len(in) < 2 || in[1] == nil {
			return nil, errors.New("input axes is required")
		}
		axes, err := intsInput(in[1], "axes")
		if err != nil {
			return nil, err
		}
		return unsqueeze(in[0], axes)
	}, nil
}

// unsqueeze inserts size-1 axes at the given positions of the output.
func unsqueeze(x *Tensor, axes []int64) ([]*Tensor, error) {
	rank := x.Rank() + len(axes)
	ones := make([]bool, rank)
	for _, a := range axes {
		i, err := normAxis(a, rank)
		if err != nil {
			return nil, err
		}
		if ones[i] {
			return nil, fmt.Errorf("axes %v repeat axis %d", axes, i)
		}
		ones[i] = true
	}
	shape := make([]int, rank)
	k := 0
	for i := range shape {
		if ones[i] {
			shape[i] = 1
			continue
		}
		shape[i] = x.Shape[k]
		k++
	}
	return []*Tensor{view(x, shape)}, nil
}

// --- Transpose ---

func compileTranspose(n *graph.Node) (kernel, error) {
	perm := n.AttrInts("perm", nil)
	hasPerm := n.Attr("perm") != nil
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		r := x.Rank()
		p := make([]int, r)
		if hasPerm {
			if len(perm) != r {
				return nil, fmt.Errorf("perm %v does not match rank %d", perm, r)
			}
			seen := make([]bool, r)
			for i, a := range perm {
				if a < 0 || a >= int64(r) || seen[a] {
					return nil, fmt.Errorf("perm %v is not a permutation of 0..%d", perm, r-1)
				}
				seen[a] = true
				p[i] = int(a)
			}
		} else {
			for i := range p {
				p[i] = r - 1 - i
			}
		}
		shape := make([]int, r)
		src := stridesOf(x.Shape)
		st := make([]int, r)
		for i, a := range p {
			shape[i] = x.Shape[a]
			st[i] = src[a]
		}
		out, err := e.output(0, x.DType, shape...)
		if err != nil {
			return nil, err
		}
		if err := stridedWalk(out.Data, x.Data, shape, 0, st); err != nil {
			return nil, err
		}
		return []*Tensor{out}, nil
	}, nil
}

// --- Concat and Split ---

func compileConcat(n *graph.Node) (kernel, error) {
	if n.Attr("axis") == nil && n.Opset() >= 4 {
		return nil, errors.New("attribute axis is required")
	}
	axis := n.AttrInt("axis", 1)
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if len(in) == 0 || in[0] == nil {
			return nil, errors.New("no inputs")
		}
		first := in[0]
		a, err := normAxis(axis, first.Rank())
		if err != nil {
			return nil, err
		}
		shape := slices.Clone(first.Shape)
		shape[a] = 0
		for _, x := range in {
			if x == nil || x.DType != first.DType || x.Rank() != first.Rank() {
				return nil, fmt.Errorf("inputs %s and %s differ in dtype or rank", first, x)
			}
			for i, d := range x.Shape {
				if i != a && d != first.Shape[i] {
					return nil, fmt.Errorf("inputs %s and %s differ outside axis %d", first, x, axis)
				}
			}
			shape[a] += x.Shape[a]
		}
		out, err := e.output(0, first.DType, shape...)
		if err != nil {
			return nil, err
		}
		outer := mustElements(shape[:a])
		inner := mustElements(shape[a+1:])
		row := shape[a] * inner
		for o := 0; o < outer; o++ {
			d := o * row
			for _, x := range in {
				chunk := x.Shape[a] * inner
				if err := copyStrided(out.Data, x.Data, d, o*chunk, chunk, 1); err != nil {
					return nil, err
				}
				d += chunk
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

// compileSplitAttr covers opsets 1 to 12, where split is an attribute (or,
// in opset 1, optionally the second input).
func compileSplitAttr(n *graph.Node) (kernel, error) {
	axis := n.AttrInt("axis", 0)
	sizes := n.AttrInts("split", nil)
	outputs := len(n.Outputs)
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		s := sizes
		if len(in) > 1 && in[1] != nil {
			var err error
			if s, err = intsInput(in[1], "split"); err != nil {
				return nil, err
			}
		}
		return split(e, in[0], axis, s, outputs, false)
	}, nil
}

// compileSplit covers opset 13 on, where split is an input, and 18 on,
// where num_outputs splits into nearly equal parts.
func compileSplit(n *graph.Node) (kernel, error) {
	axis := n.AttrInt("axis", 0)
	outputs := len(n.Outputs)
	uneven := false
	if a := n.Attr("num_outputs"); a != nil {
		if a.Proto.GetI() != int64(outputs) {
			return nil, fmt.Errorf("num_outputs %d, but the node has %d outputs", a.Proto.GetI(), outputs)
		}
		uneven = true
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		var s []int64
		if len(in) > 1 && in[1] != nil {
			var err error
			if s, err = intsInput(in[1], "split"); err != nil {
				return nil, err
			}
		}
		return split(e, in[0], axis, s, outputs, uneven)
	}, nil
}

// split cuts x along axis into the given sizes or, without sizes, into
// outputs equal parts; with uneven the last part may be smaller.
func split(e *env, x *Tensor, axis int64, sizes []int64, outputs int, uneven bool) ([]*Tensor, error) {
	a, err := normAxis(axis, x.Rank())
	if err != nil {
		return nil, err
	}
	dim := x.Shape[a]
	parts := make([]int, outputs)
	switch {
	case len(sizes) > 0:
		if len(sizes) != outputs {
			return nil, fmt.Errorf("split %v has %d sizes for %d outputs", sizes, len(sizes), outputs)
		}
		total := 0
		for i, s := range sizes {
			if s < 0 || s > int64(dim) {
				return nil, fmt.Errorf("split %v has an invalid size", sizes)
			}
			parts[i] = int(s)
			total += parts[i]
		}
		if total != dim {
			return nil, fmt.Errorf("split %v does not add up to dimension %d of size %d", sizes, a, dim)
		}
	case outputs == 0:
		return nil, errors.New("no outputs")
	case uneven:
		chunk := (dim + outputs - 1) / outputs
		left := dim
		for i := range parts {
			parts[i] = min(chunk, left)
			left -= parts[i]
		}
	default:
		if dim%outputs != 0 {
			return nil, fmt.Errorf("dimension %d of size %d does not split into %d equal parts", a, dim, outputs)
		}
		for i := range parts {
			parts[i] = dim / outputs
		}
	}
	outer := mustElements(x.Shape[:a])
	inner := mustElements(x.Shape[a+1:])
	outs := make([]*Tensor, outputs)
	start := 0
	for i, p := range parts {
		shape := slices.Clone(x.Shape)
		shape[a] = p
		out, err := e.output(i, x.DType, shape...)
		if err != nil {
			return nil, err
		}
		chunk := p * inner
		for o := 0; o < outer; o++ {
			if err := copyStrided(out.Data, x.Data, o*chunk, (o*dim+start)*inner, chunk, 1); err != nil {
				return nil, err
			}
		}
		start += p
		outs[i] = out
	}
	return outs, nil
}

// --- Slice ---

func compileSliceAttr(n *graph.Node) (kernel, error) {
	if n.Attr("starts") == nil || n.Attr("ends") == nil {
		return nil, errors.New("attributes starts and ends are required")
	}
	starts := n.AttrInts("starts", nil)
	ends := n.AttrInts("ends", nil)
	axes := n.AttrInts("axes", nil)
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		return slice(e, in[0], starts, ends, axes, nil)
	}, nil
}

func compileSlice(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if len(in) < 3 || in[1] == nil || in[2] == nil {
			return nil, errors.New("inputs starts and ends are required")
		}
		starts, err := intsInput(in[1], "starts")
		if err != nil {
			return nil, err
		}
		ends, err := intsInput(in[2], "ends")
		if err != nil {
			return nil, err
		}
		var axes, steps []int64
		if len(in) > 3 && in[3] != nil {
			if axes, err = intsInput(in[3], "axes"); err != nil {
				return nil, err
			}
		}
		if len(in) > 4 && in[4] != nil {
			if steps, err = intsInput(in[4], "steps"); err != nil {
				return nil, err
			}
		}
		return slice(e, in[0], starts, ends, axes, steps)
	}, nil
}

// slice takes x[starts:ends:steps] along axes (all axes in order when axes
// is empty, step 1 when steps is empty), clamping like numpy.
func slice(e *env, x *Tensor, starts, ends, axes, steps []int64) ([]*Tensor, error) {
	r := x.Rank()
	if len(ends) != len(starts) || len(axes) > 0 && len(axes) != len(starts) || len(steps) > 0 && len(steps) != len(starts) {
		return nil, fmt.Errorf("starts %v, ends %v, axes %v and steps %v differ in length", starts, ends, axes, steps)
	}
	first := make([]int, r)
	step := make([]int, r)
	count := slices.Clone(x.Shape)
	for i := range step {
		step[i] = 1
	}
	seen := make([]bool, r)
	for i := range starts {
		a := int64(i)
		if len(axes) > 0 {
			a = axes[i]
		}
		ax, err := normAxis(a, r)
		if err != nil {
			return nil, err
		}
		if seen[ax] {
			return nil, fmt.Errorf("axes %v repeat axis %d", axes, ax)
		}
		seen[ax] = true
		st := int64(1)
		if len(steps) > 0 {
			st = steps[i]
		}
		if st == 0 {
			return nil, errors.New("slice step is zero")
		}
		dim := int64(x.Shape[ax])
		s, en := starts[i], ends[i]
		if s < 0 {
			s += dim
		}
		if en < 0 {
			en += dim
		}
		var c int64
		if st > 0 {
			s = min(max(s, 0), dim)
			en = min(max(en, 0), dim)
			if en > s {
				c = (en - s + st - 1) / st
			}
		} else {
			s = min(max(s, -1), dim-1)
			en = min(max(en, -1), dim-1)
			if s > en {
				c = (s - en - st - 1) / -st
			}
		}
		first[ax], step[ax], count[ax] = int(s), int(st), int(c)
	}
	out, err := e.output(0, x.DType, count...)
	if err != nil {
		return nil, err
	}
	src := stridesOf(x.Shape)
	base := 0
	st := make([]int, r)
	for i := range st {
		base += first[i] * src[i]
		st[i] = step[i] * src[i]
	}
	if err := stridedWalk(out.Data, x.Data, count, base, st); err != nil {
		return nil, err
	}
	return []*Tensor{out}, nil
}

// --- Gather family ---

// indexAt normalizes a possibly negative index into a dimension of size
// dim.
func indexAt(i int64, dim int) (int, error) {
	if i < -int64(dim) || i >= int64(dim) {
		return 0, fmt.Errorf("index %d is out of range for a dimension of size %d", i, dim)
	}
	if i < 0 {
		i += int64(dim)
	}
	return int(i), nil
}

func compileGather(n *graph.Node) (kernel, error) {
	axis := n.AttrInt("axis", 0)
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x, ind := in[0], in[1]
		a, err := normAxis(axis, x.Rank())
		if err != nil {
			return nil, err
		}
		idx, err := intsInput(ind, "indices")
		if err != nil {
			return nil, err
		}
		shape := slices.Concat(x.Shape[:a], ind.Shape, x.Shape[a+1:])
		out, err := e.output(0, x.DType, shape...)
		if err != nil {
			return nil, err
		}
		dim := x.Shape[a]
		outer := mustElements(x.Shape[:a])
		inner := mustElements(x.Shape[a+1:])
		if inner == 0 || outer == 0 {
			return []*Tensor{out}, nil
		}
		for j, v := range idx {
			k, err := indexAt(v, dim)
			if err != nil {
				return nil, err
			}
			for o := 0; o < outer; o++ {
				if err := copyStrided(out.Data, x.Data, (o*len(idx)+j)*inner, (o*dim+k)*inner, inner, 1); err != nil {
					return nil, err
				}
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

// elementTargets maps each position of indices (a tensor of x's rank) to
// the offset in a tensor of shape xshape that it addresses along axis, as
// GatherElements and ScatterElements read them.
func elementTargets(xshape []int, ind *Tensor, axis int64) ([]int, error) {
	if ind.Rank() != len(xshape) {
		return nil, fmt.Errorf("indices %s and data of shape %v differ in rank", ind, xshape)
	}
	a, err := normAxis(axis, len(xshape))
	if err != nil {
		return nil, err
	}
	for i, d := range ind.Shape {
		if i != a && d > xshape[i] {
			return nil, fmt.Errorf("indices %s exceed data of shape %v", ind, xshape)
		}
	}
	idx, err := intsInput(ind, "indices")
	if err != nil {
		return nil, err
	}
	targets := make([]int, len(idx))
	if len(idx) == 0 {
		return targets, nil
	}
	st := stridesOf(xshape)
	// The odometer walks indices' positions, keeping the data offset of
	// the same position with the axis coordinate left at zero.
	dataSt := slices.Clone(st)
	dataSt[a] = 0
	o := newOdometer(ind.Shape, dataSt)
	for i, v := range idx {
		k, err := indexAt(v, xshape[a])
		if err != nil {
			return nil, err
		}
		targets[i] = o.offs[0] + k*st[a]
		o.next()
	}
	return targets, nil
}

func compileGatherElements(n *graph.Node) (kernel, error) {
	axis := n.AttrInt("axis", 0)
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x, ind := in[0], in[1]
		targets, err := elementTargets(x.Shape, ind, axis)
		if err != nil {
			return nil, err
		}
		out, err := e.output(0, x.DType, ind.Shape...)
		if err != nil {
			return nil, err
		}
		for i, t := range targets {
			if err := copyStrided(out.Data, x.Data, i, t, 1, 1); err != nil {
				return nil, err
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

// ndTargets resolves GatherND/ScatterND index tuples: for data of shape
// xshape with batch dimensions, it returns the shape of the index tuples'
// grid (indices' shape without its last dimension), the size of the block
// each tuple addresses, and the data offset of each tuple's block.
func ndTargets(xshape []int, ind *Tensor, batch int) (grid []int, block int, offs []int, err error) {
	q := ind.Rank()
	if q < 1 {
		return nil, 0, nil, fmt.Errorf("indices %s must have rank at least 1", ind)
	}
	m := ind.Shape[q-1]
	if batch < 0 || batch >= q || batch > len(xshape) || m > len(xshape)-batch {
		return nil, 0, nil, fmt.Errorf("indices %s with batch_dims %d do not fit data of shape %v", ind, batch, xshape)
	}
	for i := 0; i < batch; i++ {
		if ind.Shape[i] != xshape[i] {
			return nil, 0, nil, fmt.Errorf("indices %s and data of shape %v differ in batch dimension %d", ind, xshape, i)
		}
	}
	idx, err := intsInput(ind, "indices")
	if err != nil {
		return nil, 0, nil, err
	}
	grid = ind.Shape[:q-1]
	block = mustElements(xshape[batch+m:])
	batchSize := mustElements(xshape[batch:])
	perBatch := mustElements(ind.Shape[batch : q-1])
	st := stridesOf(xshape)
	offs = make([]int, mustElements(grid))
	for t := range offs {
		off := t / max(perBatch, 1) * batchSize
		for j := 0; j < m; j++ {
			k, err := indexAt(idx[t*m+j], xshape[batch+j])
			if err != nil {
				return nil, 0, nil, err
			}
			off += k * st[batch+j]
		}
		offs[t] = off
	}
	return grid, block, offs, nil
}

func compileGatherND(n *graph.Node) (kernel, error) {
	batch := n.AttrInt("batch_dims", 0)
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x, ind := in[0], in[1]
		if batch < 0 || batch > int64(x.Rank()) {
			return nil, fmt.Errorf("batch_dims %d is out of range for rank %d", batch, x.Rank())
		}
		grid, block, offs, err := ndTargets(x.Shape, ind, int(batch))
		if err != nil {
			return nil, err
		}
		m := ind.Shape[ind.Rank()-1]
		out, err := e.output(0, x.DType, slices.Concat(grid, x.Shape[int(batch)+m:])...)
		if err != nil {
			return nil, err
		}
		for t, off := range offs {
			if err := copyStrided(out.Data, x.Data, t*block, off, block, 1); err != nil {
				return nil, err
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

// --- Scatter family ---

func compileScatterElements(n *graph.Node) (kernel, error) {
	axis := n.AttrInt("axis", 0)
	reduction := n.AttrString("reduction", "none")
	if err := checkReduction(reduction); err != nil {
		return nil, err
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x, ind, upd := in[0], in[1], in[2]
		if upd.DType != x.DType || !slices.Equal(upd.Shape, ind.Shape) {
			return nil, fmt.Errorf("updates %s must match indices %s in shape and data %s in dtype", upd, ind, x)
		}
		targets, err := elementTargets(x.Shape, ind, axis)
		if err != nil {
			return nil, err
		}
		out, err := copyOf(e, x)
		if err != nil {
			return nil, err
		}
		if err := scatter(out.Data, upd.Data, targets, 1, reduction); err != nil {
			return nil, err
		}
		return []*Tensor{out}, nil
	}, nil
}

func compileScatterND(n *graph.Node) (kernel, error) {
	reduction := n.AttrString("reduction", "none")
	if err := checkReduction(reduction); err != nil {
		return nil, err
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x, ind, upd := in[0], in[1], in[2]
		grid, block, offs, err := ndTargets(x.Shape, ind, 0)
		if err != nil {
			return nil, err
		}
		m := ind.Shape[ind.Rank()-1]
		if want := slices.Concat(grid, x.Shape[m:]); upd.DType != x.DType || !slices.Equal(upd.Shape, want) {
			return nil, fmt.Errorf("updates %s must have shape %v and data %s's dtype", upd, want, x)
		}
		out, err := copyOf(e, x)
		if err != nil {
			return nil, err
		}
		if err := scatter(out.Data, upd.Data, offs, block, reduction); err != nil {
			return nil, err
		}
		return []*Tensor{out}, nil
	}, nil
}

func checkReduction(r string) error {
	switch r {
	case "none", "add", "mul", "max", "min":
		return nil
	}
	return fmt.Errorf("unknown reduction %q", r)
}

// copyOf returns a copy of x in the node's first output buffer.
func copyOf(e *env, x *Tensor) (*Tensor, error) {
	out, err := e.output(0, x.DType, x.Shape...)
	if err != nil {
		return nil, err
	}
	return out, copyStrided(out.Data, x.Data, 0, 0, x.Len(), 1)
}

// scatter combines block elements of upd per target offset into dst, in
// order, by reduction.
func scatter(dst, upd any, targets []int, block int, reduction string) error {
	if reduction == "none" {
		for t, off := range targets {
			if err := copyStrided(dst, upd, off, t*block, block, 1); err != nil {
				return err
			}
		}
		return nil
	}
	switch d := dst.(type) {
	case []float32:
		return scatterReduce(d, upd, targets, block, reduction)
	case []float64:
		return scatterReduce(d, upd, targets, block, reduction)
	case []int64:
		return scatterReduce(d, upd, targets, block, reduction)
	case []int32:
		return scatterReduce(d, upd, targets, block, reduction)
	case []int16:
		return scatterReduce(d, upd, targets, block, reduction)
	case []int8:
		return scatterReduce(d, upd, targets, block, reduction)
	case []uint64:
		return scatterReduce(d, upd, targets, block, reduction)
	case []uint32:
		return scatterReduce(d, upd, targets, block, reduction)
	case []uint16:
		return scatterReduce(d, upd, targets, block, reduction)
	case []uint8:
		return scatterReduce(d, upd, targets, block, reduction)
	}
	return fmt.Errorf("reduction %q does not apply to %T", reduction, dst)
}

func scatterReduce[T float32 | float64 | int64 | int32 | int16 | int8 | uint64 | uint32 | uint16 | uint8](dst []T, upd any, targets []int, block int, reduction string) error {
	u, ok := upd.([]T)
	if !ok || len(u) < len(targets)*block {
		return fmt.Errorf("updates %T do not match data %T", upd, dst)
	}
	for t, off := range targets {
		if off < 0 || off+block > len(dst) {
			return fmt.Errorf("scatter target %d is out of range", off)
		}
		d, s := dst[off:off+block], u[t*block:(t+1)*block]
		switch reduction {
		case "add":
			for i, v := range s {
				d[i] += v
			}
		case "mul":
			for i, v := range s {
				d[i] *= v
			}
		case "max":
			for i, v := range s {
				d[i] = max(d[i], v)
			}
		case "min":
			for i, v := range s {
				d[i] = min(d[i], v)
			}
		}
	}
	return nil
}

// --- Expand and Tile ---

func compileExpand(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		spec, err := intsInput(in[1], "shape")
		if err != nil {
			return nil, err
		}
		want := make([]int, len(spec))
		for i, d := range spec {
			if d < 0 || d > maxElements {
				return nil, fmt.Errorf("shape %v has an invalid dimension", spec)
			}
			want[i] = int(d)
		}
		shape, err := broadcastShapes(x.Shape, want)
		if err != nil {
			return nil, err
		}
		out, err := e.output(0, x.DType, shape...)
		if err != nil {
			return nil, err
		}
		if err := expand(out, x); err != nil {
			return nil, err
		}
		return []*Tensor{out}, nil
	}, nil
}

// expand broadcasts x into out through broadcast.go's expandInto.
func expand(out, x *Tensor) error {
	if out.Len() == 0 {
		return nil
	}
	switch d := out.Data.(type) {
	case []float32:
		return expandAs(d, out.Shape, x)
	case []float64:
		return expandAs(d, out.Shape, x)
	case []int64:
		return expandAs(d, out.Shape, x)
	case []int32:
		return expandAs(d, out.Shape, x)
	case []int16:
		return expandAs(d, out.Shape, x)
	case []int8:
		return expandAs(d, out.Shape, x)
	case []uint64:
		return expandAs(d, out.Shape, x)
	case []uint32:
		return expandAs(d, out.Shape, x)
	case []uint16:
		return expandAs(d, out.Shape, x)
	case []uint8:
		return expandAs(d, out.Shape, x)
	case []bool:
		return expandAs(d, out.Shape, x)
	case []string:
		return expandAs(d, out.Shape, x)
	}
	return fmt.Errorf("cannot expand %s", x)
}

func expandAs[T any](dst []T, shape []int, x *Tensor) error {
	src, ok := x.Data.([]T)
	if !ok {
		return fmt.Errorf("cannot expand %T into %T", x.Data, dst)
	}
	expandInto(dst, shape, src, x.Shape)
	return nil
}

func compileTile(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		reps, err := intsInput(in[1], "repeats")
		if err != nil {
			return nil, err
		}
		if len(reps) != x.Rank() {
			return nil, fmt.Errorf("repeats %v do not match rank %d", reps, x.Rank())
		}
		shape := make([]int, x.Rank())
		for i, r := range reps {
			if r < 0 || r > maxElements {
				return nil, fmt.Errorf("repeats %v has an invalid count", reps)
			}
			shape[i] = x.Shape[i] * int(r)
		}
		out, err := e.output(0, x.DType, shape...)
		if err != nil {
			return nil, err
		}
		total := out.Len()
		if total == 0 {
			return []*Tensor{out}, nil
		}
		if x.Rank() == 0 {
			return []*Tensor{out}, copyStrided(out.Data, x.Data, 0, 0, 1, 1)
		}
		// Each output row of the last dimension is a source row
		// repeated; output index i reads source index i mod size in the
		// other dimensions.
		r := x.Rank() - 1
		row, outRow := x.Shape[r], shape[r]
		src := stridesOf(x.Shape)
		idx := make([]int, r)
		for d := 0; d < total; d += outRow {
			s := 0
			for i, v := range idx {
				s += v % x.Shape[i] * src[i]
			}
			for k := 0; k < outRow; k += row {
				if err := copyStrided(out.Data, x.Data, d+k, s, row, 1); err != nil {
					return nil, err
				}
			}
			for i := r - 1; i >= 0; i-- {
				idx[i]++
				if idx[i] < shape[i] {
					break
				}
				idx[i] = 0
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

// --- Shape, Size, constants ---

func compileShape(n *graph.Node) (kernel, error) {
	start := n.AttrInt("start", 0)
	end, hasEnd := n.AttrInt("end", 0), n.Attr("end") != nil
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		r := int64(in[0].Rank())
		clamp := func(v int64) int64 {
			if v < 0 {
				v += r
			}
			return min(max(v, 0), r)
		}
		s, en := clamp(start), r
		if hasEnd {
			en = clamp(end)
		}
		dims := []int{}
		if en > s {
			dims = in[0].Shape[s:en]
		}
		out, err := e.output(0, onnx.TensorProto_INT64, len(dims))
		if err != nil {
			return nil, err
		}
		d := out.Data.([]int64)
		for i, v := range dims {
			d[i] = int64(v)
		}
		return []*Tensor{out}, nil
	}, nil
}

func compileSize(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		out, err := e.output(0, onnx.TensorProto_INT64)
		if err != nil {
			return nil, err
		}
		out.Data.([]int64)[0] = int64(mustElements(in[0].Shape))
		return []*Tensor{out}, nil
	}, nil
}

func compileConstantOfShape(n *graph.Node) (kernel, error) {
	value := &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{1}, Data: []float32{0}}
	if tp := n.AttrTensor("value"); tp != nil {
		var err error
		if value, err = TensorFromProto(tp); err != nil {
			return nil, fmt.Errorf("attribute value: %w", err)
		}
		if value.Len() != 1 {
			return nil, fmt.Errorf("attribute value must hold one element, got %s", value)
		}
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		spec, err := intsInput(in[0], "shape")
		if err != nil {
			return nil, err
		}
		shape := make([]int, len(spec))
		for i, d := range spec {
			if d < 0 || d > maxElements {
				return nil, fmt.Errorf("shape %v has an invalid dimension", spec)
			}
			shape[i] = int(d)
		}
		out, err := e.output(0, value.DType, shape...)
		if err != nil {
			return nil, err
		}
		return []*Tensor{out}, copyStrided(out.Data, value.Data, 0, 0, out.Len(), 0)
	}, nil
}

func compileConstant(n *graph.Node) (kernel, error) {
	if len(n.Attrs) != 1 {
		return nil, fmt.Errorf("exactly one value attribute is required, the node has %d", len(n.Attrs))
	}
	a := n.Attrs[0].Proto
	var t *Tensor
	var err error
	switch a.GetName() {
	case "value":
		t, err = TensorFromProto(a.GetT())
	case "sparse_value":
		return nil, errors.New("attribute sparse_value: the runtime does not compute sparse tensors")
	case "value_float":
		t, err = FromSlice([]float32{a.GetF()})
	case "value_floats":
		t, err = FromSlice(slices.Clone(a.GetFloats()), len(a.GetFloats()))
	case "value_int":
		t, err = FromSlice([]int64{a.GetI()})
	case "value_ints":
		t, err = FromSlice(slices.Clone(a.GetInts()), len(a.GetInts()))
	case "value_string":
		t, err = FromSlice([]string{string(a.GetS())})
	case "value_strings":
		ss := make([]string, len(a.GetStrings()))
		for i, s := range a.GetStrings() {
			ss[i] = string(s)
		}
		t, err = FromSlice(ss, len(ss))
	default:
		return nil, fmt.Errorf("unknown attribute %q", a.GetName())
	}
	if err != nil {
		return nil, fmt.Errorf("attribute %s: %w", a.GetName(), err)
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		return []*Tensor{t}, nil
	}, nil
}

// --- Range, NonZero, OneHot, Trilu, EyeLike ---

func compileRange(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		start, limit, delta := in[0], in[1], in[2]
		if start.Len() != 1 || limit.Len() != 1 || delta.Len() != 1 ||
			limit.DType != start.DType || delta.DType != start.DType {
			return nil, fmt.Errorf("start %s, limit %s and delta %s must be scalars of one type", start, limit, delta)
		}
		switch s := start.Data.(type) {
		case []float32:
			return rangeOf(e, start.DType, s[0], limit.Data.([]float32)[0], delta.Data.([]float32)[0])
		case []float64:
			return rangeOf(e, start.DType, s[0], limit.Data.([]float64)[0], delta.Data.([]float64)[0])
		case []int64:
			return rangeOf(e, start.DType, s[0], limit.Data.([]int64)[0], delta.Data.([]int64)[0])
		case []int32:
			return rangeOf(e, start.DType, s[0], limit.Data.([]int32)[0], delta.Data.([]int32)[0])
		case []int16:
			return rangeOf(e, start.DType, s[0], limit.Data.([]int16)[0], delta.Data.([]int16)[0])
		}
		return nil, fmt.Errorf("range does not take %s", start)
	}, nil
}

func rangeOf[T float32 | float64 | int64 | int32 | int16](e *env, dt onnx.TensorProto_DataType, start, limit, delta T) ([]*Tensor, error) {
	if delta == 0 {
		return nil, errors.New("delta is zero")
	}
	count := math.Ceil((float64(limit) - float64(start)) / float64(delta))
	if count > maxElements {
		return nil, fmt.Errorf("range of %g elements is too large", count)
	}
	n := int(max(count, 0))
	out, err := e.output(0, dt, n)
	if err != nil {
		return nil, err
	}
	d := out.Data.([]T)
	for i := range d {
		d[i] = start + T(i)*delta
	}
	return []*Tensor{out}, nil
}

func compileNonZero(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		nz, err := nonZeros(x.Data)
		if err != nil {
			return nil, err
		}
		r := x.Rank()
		out, err := e.output(0, onnx.TensorProto_INT64, r, len(nz))
		if err != nil {
			return nil, err
		}
		d := out.Data.([]int64)
		st := stridesOf(x.Shape)
		for j, flat := range nz {
			for i := 0; i < r; i++ {
				d[i*len(nz)+j] = int64(flat / st[i] % x.Shape[i])
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

// nonZeros lists the flat positions of the elements that are not zero
// (false, or the empty string).
func nonZeros(data any) ([]int, error) {
	switch d := data.(type) {
	case []float32:
		return nonZerosOf(d), nil
	case []float64:
		return nonZerosOf(d), nil
	case []int64:
		return nonZerosOf(d), nil
	case []int32:
		return nonZerosOf(d), nil
	case []int16:
		return nonZerosOf(d), nil
	case []int8:
		return nonZerosOf(d), nil
	case []uint64:
		return nonZerosOf(d), nil
	case []uint32:
		return nonZerosOf(d), nil
	case []uint16:
		return nonZerosOf(d), nil
	case []uint8:
		return nonZerosOf(d), nil
	case []bool:
		return nonZerosOf(d), nil
	case []string:
		return nonZerosOf(d), nil
	}
	return nil, fmt.Errorf("NonZero does not take %T", data)
}

func nonZerosOf[T comparable](d []T) []int {
	var zero T
	var nz []int
	for i, v := range d {
		if v != zero {
			nz = append(nz, i)
		}
	}
	return nz
}

// floatsOf reads a numeric tensor's elements as float64.
func floatsOf(t *Tensor) ([]float64, error) {
	switch d := t.Data.(type) {
	case []float32:
		return widen(d), nil
	case []float64:
		return d, nil
	case []int64:
		return widen(d), nil
	case []int32:
		return widen(d), nil
	case []int16:
		return widen(d), nil
	case []int8:
		return widen(d), nil
	case []uint64:
		return widen(d), nil
	case []uint32:
		return widen(d), nil
	case []uint16:
		return widen(d), nil
	case []uint8:
		return widen(d), nil
	}
	return nil, fmt.Errorf("%s is not numeric", t)
}

func widen[T float32 | int64 | int32 | int16 | int8 | uint64 | uint32 | uint16 | uint8](d []T) []float64 {
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = float64(v)
	}
	return out
}

func compileOneHot(n *graph.Node) (kernel, error) {
	axis := n.AttrInt("axis", -1)
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		ind, depthT, values := in[0], in[1], in[2]
		idx, err := floatsOf(ind)
		if err != nil {
			return nil, fmt.Errorf("indices: %w", err)
		}
		dv, err := floatsOf(depthT)
		if err != nil || len(dv) != 1 {
			return nil, fmt.Errorf("depth must be one number, got %s", depthT)
		}
		if values.Len() != 2 {
			return nil, fmt.Errorf("values must hold [off, on], got %s", values)
		}
		depth := int(dv[0])
		if depth < 1 || depth > maxElements {
			return nil, fmt.Errorf("depth %g is invalid", dv[0])
		}
		a, err := normAxis(axis, ind.Rank()+1)
		if err != nil {
			return nil, err
		}
		shape := slices.Concat(ind.Shape[:a], []int{depth}, ind.Shape[a:])
		out, err := e.output(0, values.DType, shape...)
		if err != nil {
			return nil, err
		}
		if err := copyStrided(out.Data, values.Data, 0, 0, out.Len(), 0); err != nil {
			return nil, err
		}
		inner := mustElements(ind.Shape[a:])
		for i, v := range idx {
			k := int64(v)
			if k < 0 {
				k += int64(depth)
			}
			if k < 0 || k >= int64(depth) {
				continue
			}
			o, j := i/inner, i%inner
			if err := copyStrided(out.Data, values.Data, (o*depth+int(k))*inner+j, 1, 1, 1); err != nil {
				return nil, err
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

func compileTrilu(n *graph.Node) (kernel, error) {
	upper := n.AttrInt("upper", 1) != 0
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		if x.Rank() < 2 {
			return nil, fmt.Errorf("input %s must have rank at least 2", x)
		}
		k := int64(0)
		if len(in) > 1 && in[1] != nil {
			var err error
			if k, err = scalarInt(in[1], "k"); err != nil {
				return nil, err
			}
		}
		out, err := copyOf(e, x)
		if err != nil {
			return nil, err
		}
		zero, err := makeSlice(x.DType, 1)
		if err != nil {
			return nil, err
		}
		rows, cols := x.Shape[x.Rank()-2], x.Shape[x.Rank()-1]
		mats := mustElements(x.Shape[:x.Rank()-2])
		for m := 0; m < mats; m++ {
			for i := 0; i < rows; i++ {
				// Row i keeps columns j with j-i >= k (upper) or
				// j-i <= k (lower).
				diag := int64(i) + k
				lo, hi := 0, cols // the zeroed columns
				if upper {
					hi = int(min(max(diag, 0), int64(cols)))
				} else {
					lo = int(min(max(diag+1, 0), int64(cols)))
				}
				base := (m*rows + i) * cols
				if err := copyStrided(out.Data, zero, base+lo, 0, hi-lo, 0); err != nil {
					return nil, err
				}
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

func compileEyeLike(n *graph.Node) (kernel, error) {
	k := n.AttrInt("k", 0)
	dtype := onnx.TensorProto_DataType(n.AttrInt("dtype", 0))
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		if x.Rank() != 2 {
			return nil, fmt.Errorf("input %s must have rank 2", x)
		}
		dt := dtype
		if dt == onnx.TensorProto_UNDEFINED {
			dt = x.DType
		}
		one, err := oneOf(dt, 1)
		if err != nil {
			return nil, err
		}
		out, err := e.zeroed(0, dt, x.Shape...)
		if err != nil {
			return nil, err
		}
		rows, cols := x.Shape[0], x.Shape[1]
		for i := 0; i < rows; i++ {
			if j := int64(i) + k; j >= 0 && j < int64(cols) {
				if err := copyStrided(out.Data, one, i*cols+int(j), 0, 1, 1); err != nil {
					return nil, err
				}
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

// --- ReverseSequence, Compress, Unique ---

func compileReverseSequence(n *graph.Node) (kernel, error) {
	batchAxis := n.AttrInt("batch_axis", 1)
	timeAxis := n.AttrInt("time_axis", 0)
	if !(batchAxis == 0 && timeAxis == 1 || batchAxis == 1 && timeAxis == 0) {
		return nil, fmt.Errorf("batch_axis %d and time_axis %d must be 0 and 1", batchAxis, timeAxis)
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		if x.Rank() < 2 {
			return nil, fmt.Errorf("input %s must have rank at least 2", x)
		}
		lens, err := intsInput(in[1], "sequence_lens")
		if err != nil {
			return nil, err
		}
		batch, steps := x.Shape[batchAxis], x.Shape[timeAxis]
		if len(lens) != batch {
			return nil, fmt.Errorf("sequence_lens has %d entries for a batch of %d", len(lens), batch)
		}
		out, err := e.output(0, x.DType, x.Shape...)
		if err != nil {
			return nil, err
		}
		inner := mustElements(x.Shape[2:])
		st := stridesOf(x.Shape)
		bst, tst := st[batchAxis], st[timeAxis]
		for b, l := range lens {
			if l < 0 || l > int64(steps) {
				return nil, fmt.Errorf("sequence length %d is out of range for %d steps", l, steps)
			}
			for t := 0; t < steps; t++ {
				src := t
				if t < int(l) {
					src = int(l) - 1 - t
				}
				if err := copyStrided(out.Data, x.Data, b*bst+t*tst, b*bst+src*tst, inner, 1); err != nil {
					return nil, err
				}
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

func compileCompress(n *graph.Node) (kernel, error) {
	axis, hasAxis := n.AttrInt("axis", 0), n.Attr("axis") != nil
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x, cond := in[0], in[1]
		c, ok := cond.Data.([]bool)
		if !ok || cond.Rank() != 1 {
			return nil, fmt.Errorf("condition must be a rank-1 bool tensor, got %s", cond)
		}
		shape := []int{x.Len()}
		a := 0
		if hasAxis {
			var err error
			if a, err = normAxis(axis, x.Rank()); err != nil {
				return nil, err
			}
			shape = slices.Clone(x.Shape)
		}
		dim := shape[a]
		var keep []int
		for j, v := range c {
			if !v {
				continue
			}
			if j >= dim {
				return nil, fmt.Errorf("condition selects index %d beyond the size %d", j, dim)
			}
			keep = append(keep, j)
		}
		outer := mustElements(shape[:a])
		inner := mustElements(shape[a+1:])
		shape[a] = len(keep)
		out, err := e.output(0, x.DType, shape...)
		if err != nil {
			return nil, err
		}
		for o := 0; o < outer; o++ {
			for i, j := range keep {
				if err := copyStrided(out.Data, x.Data, (o*len(keep)+i)*inner, (o*dim+j)*inner, inner, 1); err != nil {
					return nil, err
				}
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

func compileUnique(n *graph.Node) (kernel, error) {
	sorted := n.AttrInt("sorted", 1) != 0
	axis, hasAxis := n.AttrInt("axis", 0), n.Attr("axis") != nil
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		shape := []int{x.Len()}
		a := 0
		if hasAxis {
			var err error
			if a, err = normAxis(axis, x.Rank()); err != nil {
				return nil, err
			}
			shape = x.Shape
		}
		cmp, err := elementCompare(x.Data)
		if err != nil {
			return nil, err
		}
		dim := shape[a]
		outer := mustElements(shape[:a])
		inner := mustElements(shape[a+1:])
		// Slices j along the axis compare as their elements in row-major
		// order of the other dimensions, like numpy.unique.
		compareSlices := func(i, j int) int {
			for o := 0; o < outer; o++ {
				for k := 0; k < inner; k++ {
					if c := cmp((o*dim+i)*inner+k, (o*dim+j)*inner+k); c != 0 {
						return c
					}
				}
			}
			return 0
		}
		// first[u] is the first index of unique slice u, in order of
		// first occurrence; inverse maps each slice to its unique.
		var first []int
		counts := []int64{}
		order := make([]int, dim)
		for i := range order {
			order[i] = i
		}
		// A stable sort groups equal slices with the earliest first.
		sort.SliceStable(order, func(p, q int) bool { return compareSlices(order[p], order[q]) < 0 })
		group := make([]int, dim) // group of each slice, in sorted order of groups
		for p, i := range order {
			if p == 0 || compareSlices(order[p-1], i) != 0 {
				first = append(first, i)
				counts = append(counts, 0)
			}
			group[i] = len(first) - 1
			counts[len(first)-1]++
		}
		rank := make([]int, len(first)) // output position of each group
		for g := range rank {
			rank[g] = g
		}
		if !sorted {
			byFirst := make([]int, len(first))
			for g := range byFirst {
				byFirst[g] = g
			}
			sort.Slice(byFirst, func(p, q int) bool { return first[byFirst[p]] < first[byFirst[q]] })
			for pos, g := range byFirst {
				rank[g] = pos
			}
		}
		u := len(first)
		yShape := slices.Clone(shape)
		yShape[a] = u
		y, err := e.output(0, x.DType, yShape...)
		if err != nil {
			return nil, err
		}
		indices, err := e.output(1, onnx.TensorProto_INT64, u)
		if err != nil {
			return nil, err
		}
		inv, err := e.output(2, onnx.TensorProto_INT64, dim)
		if err != nil {
			return nil, err
		}
		cnt, err := e.output(3, onnx.TensorProto_INT64, u)
		if err != nil {
			return nil, err
		}
		for g, j := range first {
			pos := rank[g]
			indices.Data.([]int64)[pos] = int64(j)
			cnt.Data.([]int64)[pos] = counts[g]
			for o := 0; o < outer; o++ {
				if err := copyStrided(y.Data, x.Data, (o*u+pos)*inner, (o*dim+j)*inner, inner, 1); err != nil {
					return nil, err
				}
			}
		}
		for i := 0; i < dim; i++ {
			inv.Data.([]int64)[i] = int64(rank[group[i]])
		}
		return []*Tensor{y, indices, inv, cnt}, nil
	}, nil
}

// elementCompare returns a function comparing two elements of data by
// position, ordering NaN after every number.
func elementCompare(data any) (func(i, j int) int, error) {
	switch d := data.(type) {
	case []float32:
		return compareFloatsAt(d), nil
	case []float64:
		return compareFloatsAt(d), nil
	case []int64:
		return compareOrderedAt(d), nil
	case []int32:
		return compareOrderedAt(d), nil
	case []int16:
		return compareOrderedAt(d), nil
	case []int8:
		return compareOrderedAt(d), nil
	case []uint64:
		return compareOrderedAt(d), nil
	case []uint32:
		return compareOrderedAt(d), nil
	case []uint16:
		return compareOrderedAt(d), nil
	case []uint8:
		return compareOrderedAt(d), nil
	case []string:
		return func(i, j int) int { return strings.Compare(d[i], d[j]) }, nil
	case []bool:
		return func(i, j int) int {
			switch {
			case d[i] == d[j]:
				return 0
			case d[j]:
				return -1
			}
			return 1
		}, nil
	}
	return nil, fmt.Errorf("cannot order elements of %T", data)
}

func compareOrderedAt[T int64 | int32 | int16 | int8 | uint64 | uint32 | uint16 | uint8](d []T) func(i, j int) int {
	return func(i, j int) int {
		switch {
		case d[i] < d[j]:
			return -1
		case d[i] > d[j]:
			return 1
		}
		return 0
	}
}

func compareFloatsAt[T float32 | float64](d []T) func(i, j int) int {
	return func(i, j int) int {
		a, b := d[i], d[j]
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		case a == b:
			return 0
		case a != a && b != b:
			return 0
		case a != a:
			return 1
		}
		return -1
	}
}
