package runtime

import (
	"fmt"
	"math"

	"onnxopt/graph"
	"onnxopt/onnx"
)

var poolOps = []opDef{
	// The later versions of MaxPool (8: storage_order and Indices; 10:
	// ceil_mode and dilations; 12: int8 and uint8), AveragePool (7:
	// count_include_pad; 10: ceil_mode; 19: dilations) and LpPool (18:
	// ceil_mode and dilations) only add attributes, which default to the
	// earlier behaviour, or types.
	{"", "MaxPool", 1, compileMaxPool},
	{"", "AveragePool", 1, compileAveragePool},
	// LpPool-1 and GlobalLpPool-1 take p as a float, later versions as
	// an int.
	{"", "LpPool", 1, compileLpPool(false)},
	{"", "LpPool", 2, compileLpPool(true)},
	{"", "GlobalAveragePool", 1, compileGlobalPool(globalAverage, false)},
	{"", "GlobalMaxPool", 1, compileGlobalPool(globalMax, false)},
	{"", "GlobalLpPool", 1, compileGlobalPool(globalLp, false)},
	{"", "GlobalLpPool", 2, compileGlobalPool(globalLp, true)},
}

// poolInput checks a pooling operator's X and resolves its window.
func poolInput(op string, w *windowAttrs, in []*Tensor) (*Tensor, geometry, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, geometry{}, fmt.Errorf("%s needs input X", op)
	}
	x := in[0]
	if x.Rank() < 3 {
		return nil, geometry{}, fmt.Errorf("%s needs X of rank 3 or more (N, C, spatial...), got %s", op, x)
	}
	g, err := w.forward(x.Shape[2:], w.kernel)
	if err != nil {
		return nil, g, err
	}
	return x, g, nil
}

func poolOutputShape(x *Tensor, g *geometry) []int {
	return append([]int{x.Shape[0], x.Shape[1]}, g.out[maxSpatial-(x.Rank()-2):]...)
}

func readPoolWindow(n *graph.Node) (windowAttrs, error) {
	w, err := readWindowAttrs(n)
	if err != nil {
		return w, err
	}
	if w.kernel == nil {
		return w, fmt.Errorf("the kernel_shape attribute is required")
	}
	return w, nil
}

type maxPoolAttrs struct {
	window      windowAttrs
	columnMajor bool      // storage_order 1: Indices count in column-major order
	taps        []int     // scratch for maxPool
	row         []float32 // scratch for maxPoolVector
}

func compileMaxPool(n *graph.Node) (kernel, error) {
	w, err := readPoolWindow(n)
	if err != nil {
		return nil, err
	}
	order := n.AttrInt("storage_order", 0)
	if order != 0 && order != 1 {
		return nil, fmt.Errorf("storage_order %d is not 0 (row major) or 1 (column major)", order)
	}
	attrs := &maxPoolAttrs{window: w, columnMajor: order == 1}
	return attrs.run, nil
}

func (a *maxPoolAttrs) run(e *env, in []*Tensor) ([]*Tensor, error) {
	x, g, err := poolInput("MaxPool", &a.window, in)
	if err != nil {
		return nil, err
	}
	shape := poolOutputShape(x, &g)
	y, err := e.output(0, x.DType, shape...)
	if err != nil {
		return nil, err
	}
	// Indices is computed only when the node has that output.
	var indices []int64
	var idx *Tensor
	if len(e.node.Outputs) > 1 && e.node.Outputs[1] != nil {
		if idx, err = e.output(1, onnx.TensorProto_INT64, shape...); err != nil {
			return nil, err
		}
		indices = idx.Data.([]int64)
	}
	planes := x.Shape[0] * x.Shape[1]
	switch yd := y.Data.(type) {
	case []float32:
		if indices != nil || !maxPoolVector(&g, planes, x.Data.([]float32), yd, &a.row) {
			maxPool(&g, planes, x.Data.([]float32), yd, indices, a.columnMajor, &a.taps)
		}
	case []float64:
		maxPool(&g, planes, x.Data.([]float64), yd, indices, a.columnMajor, &a.taps)
	case []int8:
		maxPool(&g, planes, x.Data.([]int8), yd, indices, a.columnMajor, &a.taps)
	case []uint8:
		maxPool(&g, planes, x.Data.([]uint8), yd, indices, a.columnMajor, &a.taps)
	default:
		return nil, fmt.Errorf("MaxPool does not compute in %s", dtypeName(x.DType))
	}
	if idx == nil {
		return []*Tensor{y}, nil
	}
	return []*Tensor{y, idx}, nil
}

// lowest is the smallest finite value of T, which a window wholly in the
// padding yields, as in ONNX Runtime.
func lowest[T int8 | uint8 | float32 | float64]() T {
	var v T
	switch p := any(&v).(type) {
	case *int8:
		*p = math.MinInt8
	case *float32:
		*p = -math.MaxFloat32
	case *float64:
		*p = -math.MaxFloat64
	}
	return v
}

// maxPool takes the maximum of each window, NaN propagating as in numpy's
// max; indices, when not nil, receives the flat index in X of the first
// maximum (or NaN), counted row-major or column-major over the spatial
// dimensions. A window wholly in the padding yields the lowest value of T
// and index -1. taps is scratch for the window's offsets.
func maxPool[T int8 | uint8 | float32 | float64](g *geometry, planes int, x, y []T, indices []int64, columnMajor bool, taps *[]int) {
	inVol, outVol := g.inVolume(), g.outVolume()
	inH, inW := g.in[1], g.in[2]
	outH, outW := g.out[1], g.out[2]
	// Windows wholly inside the input, the most, read their taps at fixed
	// offsets from the window's first element without bounds checks on
	// each dimension.
	offsets := windowOffsets(g, taps)
	var lo, hi [maxSpatial]int
	for i := range maxSpatial {
		lo[i], hi[i] = validRange(g.out[i], g.stride[i], -g.padBegin[i], g.in[i]-(g.kernel[i]-1)*g.dilation[i])
	}
	for p := range planes {
		xp := x[p*inVol:][:inVol]
		yp := y[p*outVol:][:outVol]
		for od := range g.out[0] {
			for oh := range outH {
				row := (od*outH + oh) * outW
				inside := od >= lo[0] && od < hi[0] && oh >= lo[1] && oh < hi[1]
				base := ((od*g.stride[0]-g.padBegin[0])*inH+oh*g.stride[1]-g.padBegin[1])*inW - g.padBegin[2]
				if indices == nil && inside && lo[2] < hi[2] {
					for ow := range lo[2] {
						yp[row+ow], _ = maxWindow(g, xp, od, oh, ow)
					}
					maxRun(yp[row+lo[2]:row+hi[2]], xp, base+lo[2]*g.stride[2], g.stride[2], offsets)
					for ow := hi[2]; ow < outW; ow++ {
						yp[row+ow], _ = maxWindow(g, xp, od, oh, ow)
					}
					continue
				}
				for ow := range outW {
					o := row + ow
					if !inside || ow < lo[2] || ow >= hi[2] {
						best, at := maxWindow(g, xp, od, oh, ow)
						yp[o] = best
						if indices != nil {
							indices[p*outVol+o] = flatPoolIndex(g, p, at, columnMajor)
						}
						continue
					}
					first := base + ow*g.stride[2]
					best, at := xp[first+offsets[0]], first+offsets[0]
					for _, off := range offsets[1:] {
						if v := xp[first+off]; v > best || v != v && best == best {
							best, at = v, first+off
						}
					}
					yp[o] = best
					indices[p*outVol+o] = flatPoolIndex(g, p, at, columnMajor)
				}
			}
		}
	}
}

// maxPoolVector is maxPool for float32 without Indices with vector
// instructions: maxPool2x2 for the common 2×2 pooling of stride 2,
// maxPoolShifted for other windows inside X, maxPoolRows for the rest. It reports false, having done nothing, where those do
// not run.
func maxPoolVector(g *geometry, planes int, x, y []float32, buf *[]float32) bool {
	if !sgemmKernelFast() {
		return false
	}
	if planes == 0 || g.outVolume() == 0 {
		return true
	}
	pairs := [maxSpatial]int{1, 2, 2}
	if g.kernel == pairs && g.stride == pairs && g.dilation == [maxSpatial]int{1, 1, 1} && g.in[0] == 1 &&
		g.padBegin == [maxSpatial]int{} && g.in[1] == 2*g.out[1] && g.in[2] == 2*g.out[2] &&
		maxPool2x2(planes, g.in[1], g.in[2], x, y, buf) {
		return true
	}
	if windowsInside(g) {
		maxPoolShifted(g, planes, x, y, buf)
	} else {
		maxPoolRows(g, planes, x, y, buf)
	}
	return true
}

// windowsInside reports whether every window lies wholly in the input:
// no padding, and with ceil_mode no window past the input's end.
func windowsInside(g *geometry) bool {
	for i := range maxSpatial {
		if g.padBegin[i] != 0 || (g.out[i]-1)*g.stride[i]+(g.kernel[i]-1)*g.dilation[i] >= g.in[i] {
			return false
		}
	}
	return true
}

// maxPoolShifted computes a MaxPool whose windows lie inside the input
// (windowsInside) over all planes at
// once, one spatial dimension after the other: each tap of a dimension
// after the first is one vector pass of buf[j] = max(buf[j], buf[j+o]),
// o the tap spacing in elements, after which buf holds at each window's
// first element the window's maximum. Small planes, which would leave
// rows of a few elements to maxPoolRows, then cost a few passes over X
// (measured: the digits CNN's 2×2 pooling 1.5 against 0.4 ms).
func maxPoolShifted(g *geometry, planes int, x, y []float32, buf *[]float32) {
	inH, inW := g.in[1], g.in[2]
	inVol, outVol := g.inVolume(), g.outVolume()
	spacing := [maxSpatial]int{g.dilation[0] * inH * inW, g.dilation[1] * inW, g.dilation[2]}
	src := x[:planes*inVol]
	var tmp []float32
	for i := range maxSpatial {
		for range g.kernel[i] - 1 {
			o := spacing[i]
			if tmp == nil {
				tmp = scratchSlice(buf, len(src))
			}
			// Forward and in place, each element is read before it is
			// overwritten.
			n := len(src) - o
			maxFloat32(tmp[:n], src[:n], src[o:])
			src = tmp[:n]
		}
	}
	for p := range planes {
		yp := y[p*outVol:][:outVol]
		at := 0
		for od := range g.out[0] {
			for oh := range g.out[1] {
				first := p*inVol + (od*g.stride[0]*inH+oh*g.stride[1])*inW
				row := yp[at:][:g.out[2]]
				at += len(row)
				for ow := range row {
					row[ow] = src[first+ow*g.stride[2]]
				}
			}
		}
	}
}

// maxPoolRows is maxPool for float32 without Indices: each output row
// takes the maximum of its windows' input rows first, whole rows at a
// time (maxFloat32), then of the columns of that, which leaves a scalar
// max of kernel width for each output instead of one of kernel volume
// (measured: ResNet-18's 3×3 pooling 3.4 against 1.8 ms).
func maxPoolRows(g *geometry, planes int, x, y []float32, rowBuf *[]float32) {
	inD, inH, inW := g.in[0], g.in[1], g.in[2]
	outH, outW := g.out[1], g.out[2]
	inVol, outVol := g.inVolume(), g.outVolume()
	sW, dW, kW := g.stride[2], g.dilation[2], g.kernel[2]
	tmp := scratchSlice(rowBuf, inW)
	// Output columns [lo, hi) have every tap in the input.
	lo, hi := validRange(outW, sW, -g.padBegin[2], inW-(kW-1)*dW)
	lowestFloat32 := lowest[float32]()
	for p := range planes {
		xp := x[p*inVol:][:inVol]
		yp := y[p*outVol:][:outVol]
		for od := range g.out[0] {
			for oh := range outH {
				yrow := yp[(od*outH+oh)*outW:][:outW]
				var rowMax []float32
				for kd := range g.kernel[0] {
					id := od*g.stride[0] + kd*g.dilation[0] - g.padBegin[0]
					if id < 0 || id >= inD {
						continue
					}
					for kh := range g.kernel[1] {
						ih := oh*g.stride[1] + kh*g.dilation[1] - g.padBegin[1]
						if ih < 0 || ih >= inH {
							continue
						}
						r := xp[(id*inH+ih)*inW:][:inW]
						if rowMax == nil {
							rowMax = r
							continue
						}
						maxFloat32(tmp, rowMax, r)
						rowMax = tmp
					}
				}
				for ow := range yrow {
					// A window without taps in X gives lowest, as in
					// maxWindow; one with gives its maximum, -Inf
					// included.
					best, found := lowestFloat32, false
					first := ow*sW - g.padBegin[2]
					if rowMax != nil && ow >= lo && ow < hi {
						taps := rowMax[first:][:(kW-1)*dW+1]
						best = taps[0]
						for kw := dW; kw < len(taps); kw += dW {
							best = max(best, taps[kw])
						}
					} else if rowMax != nil {
						for kw := range kW {
							if iw := first + kw*dW; iw >= 0 && iw < inW {
								if !found {
									best, found = rowMax[iw], true
									continue
								}
								best = max(best, rowMax[iw])
							}
						}
					}
					yrow[ow] = best
				}
			}
		}
	}
}

// maxRun writes into each y[j] the maximum of the taps of x at first +
// j*stride + offsets, for windows wholly inside x. It uses the builtin max,
// which compiles without branches: random data would mispredict a
// comparison half the time (measured: 10x slower).
func maxRun[T int8 | uint8 | float32 | float64](y, x []T, first, stride int, offsets []int) {
	for j := range y {
		at := first + j*stride
		best := x[at+offsets[0]]
		for _, off := range offsets[1:] {
			best = max(best, x[at+off])
		}
		y[j] = best
	}
}

// flatPoolIndex converts the index at of a plane's element to the flat
// index in X that MaxPool's Indices holds, or -1 when at is.
func flatPoolIndex(g *geometry, plane, at int, columnMajor bool) int64 {
	if at < 0 {
		return -1
	}
	inD, inH, inW := g.in[0], g.in[1], g.in[2]
	if columnMajor {
		// The lifted dimensions are (d, h, w) row-major; column-major
		// counts the first one fastest.
		id, ih, iw := at/(inH*inW), at/inW%inH, at%inW
		at = id + ih*inD + iw*inD*inH
	}
	return int64(plane*g.inVolume() + at)
}

// windowOffsets returns the offsets of a window's taps from its first
// element in an input plane, in row-major order, reusing *buf.
func windowOffsets(g *geometry, buf *[]int) []int {
	offsets := (*buf)[:0]
	for kd := range g.kernel[0] {
		for kh := range g.kernel[1] {
			for kw := range g.kernel[2] {
				offsets = append(offsets, ((kd*g.dilation[0])*g.in[1]+kh*g.dilation[1])*g.in[2]+kw*g.dilation[2])
			}
		}
	}
	*buf = offsets
	return offsets
}

// maxWindow returns the maximum of one window, skipping the padding, and
// its index in the plane x: the first maximum, or the first NaN. A window
// wholly in the padding yields the lowest value of T and -1.
func maxWindow[T int8 | uint8 | float32 | float64](g *geometry, x []T, od, oh, ow int) (T, int) {
	inD, inH, inW := g.in[0], g.in[1], g.in[2]
	best, at := lowest[T](), -1
	for kd := range g.kernel[0] {
		id := od*g.stride[0] + kd*g.dilation[0] - g.padBegin[0]
		if id < 0 || id >= inD {
			continue
		}
		for kh := range g.kernel[1] {
			ih := oh*g.stride[1] + kh*g.dilation[1] - g.padBegin[1]
			if ih < 0 || ih >= inH {
				continue
			}
			row := x[(id*inH+ih)*inW:][:inW]
			for kw := range g.kernel[2] {
				iw := ow*g.stride[2] + kw*g.dilation[2] - g.padBegin[2]
				if iw < 0 || iw >= inW {
					continue
				}
				if v := row[iw]; at < 0 || v > best || v != v && best == best {
					best, at = v, (id*inH+ih)*inW+iw
				}
			}
		}
	}
	return best, at
}

// sumPoolAttrs are the attributes of AveragePool and LpPool, which both sum
// over the window: AveragePool the values, divided by the count, and
// LpPool their p-th powers, whose p-th root it takes.
type sumPoolAttrs struct {
	op              string
	window          windowAttrs
	lp              bool
	p               float64
	countIncludePad bool
}

func compileAveragePool(n *graph.Node) (kernel, error) {
	w, err := readPoolWindow(n)
	if err != nil {
		return nil, err
	}
	attrs := sumPoolAttrs{op: "AveragePool", window: w, countIncludePad: n.AttrInt("count_include_pad", 0) != 0}
	return attrs.run, nil
}

func compileLpPool(intP bool) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		w, err := readPoolWindow(n)
		if err != nil {
			return nil, err
		}
		p, err := readP(n, intP)
		if err != nil {
			return nil, err
		}
		attrs := sumPoolAttrs{op: "LpPool", window: w, lp: true, p: p}
		return attrs.run, nil
	}
}

// readP reads the p of LpPool and GlobalLpPool: a float before opset 2, an
// int from it, 2 by default.
func readP(n *graph.Node, intP bool) (float64, error) {
	p := 2.0
	if intP {
		p = float64(n.AttrInt("p", 2))
	} else {
		p = float64(n.AttrFloat("p", 2))
	}
	if !(p > 0) || math.IsInf(p, 0) {
		return 0, fmt.Errorf("p %g must be positive", p)
	}
	return p, nil
}

func (a *sumPoolAttrs) run(e *env, in []*Tensor) ([]*Tensor, error) {
	x, g, err := poolInput(a.op, &a.window, in)
	if err != nil {
		return nil, err
	}
	y, err := e.output(0, x.DType, poolOutputShape(x, &g)...)
	if err != nil {
		return nil, err
	}
	planes := x.Shape[0] * x.Shape[1]
	switch yd := y.Data.(type) {
	case []float32:
		sumPool(a, &g, planes, x.Data.([]float32), yd)
		narrowFloat32s(y.DType, yd)
	case []float64:
		sumPool(a, &g, planes, x.Data.([]float64), yd)
	default:
		return nil, fmt.Errorf("%s does not compute in %s", a.op, dtypeName(x.DType))
	}
	return []*Tensor{y}, nil
}

// tapCount counts the taps of a window that starts at start and lie in
// [lo, hi).
func tapCount(start, kernel, dilation, lo, hi int) int {
	n := 0
	for k := range kernel {
		if p := start + k*dilation; p >= lo && p < hi {
			n++
		}
	}
	return n
}

// sumPool computes AveragePool or LpPool. The padding adds zeros; for
// AveragePool with count_include_pad it counts in the divisor, but the
// part of a window that ceil_mode lets run past the padding does not.
func sumPool[T float32 | float64](a *sumPoolAttrs, g *geometry, planes int, x, y []T) {
	inVol, outVol := g.inVolume(), g.outVolume()
	inD, inH, inW := g.in[0], g.in[1], g.in[2]
	outH, outW := g.out[1], g.out[2]
	power := func(v float64) float64 {
		switch a.p {
		case 1:
			return math.Abs(v)
		case 2:
			return v * v
		}
		return math.Pow(math.Abs(v), a.p)
	}
	for p := range planes {
		xp := x[p*inVol:][:inVol]
		yp := y[p*outVol:][:outVol]
		for od := range g.out[0] {
			startD := od*g.stride[0] - g.padBegin[0]
			for oh := range outH {
				startH := oh*g.stride[1] - g.padBegin[1]
				for ow := range outW {
					startW := ow*g.stride[2] - g.padBegin[2]
					var sum float64
					for kd := range g.kernel[0] {
						id := startD + kd*g.dilation[0]
						if id < 0 || id >= inD {
							continue
						}
						for kh := range g.kernel[1] {
							ih := startH + kh*g.dilation[1]
							if ih < 0 || ih >= inH {
								continue
							}
							row := xp[(id*inH+ih)*inW:][:inW]
							for kw := range g.kernel[2] {
								iw := startW + kw*g.dilation[2]
								if iw < 0 || iw >= inW {
									continue
								}
								if a.lp {
									sum += power(float64(row[iw]))
								} else {
									sum += float64(row[iw])
								}
							}
						}
					}
					o := (od*outH+oh)*outW + ow
					if a.lp {
						yp[o] = T(lpRoot(sum, a.p))
						continue
					}
					count := 1
					for i := range maxSpatial {
						start := [maxSpatial]int{startD, startH, startW}[i]
						lo, hi := 0, g.in[i]
						if a.countIncludePad {
							lo, hi = -g.padBegin[i], g.in[i]+g.padEnd[i]
						}
						count *= tapCount(start, g.kernel[i], g.dilation[i], lo, hi)
					}
					if count == 0 {
						yp[o] = 0
						continue
					}
					yp[o] = T(sum / float64(count))
				}
			}
		}
	}
}

func lpRoot(sum, p float64) float64 {
	switch p {
	case 1:
		return sum
	case 2:
		return math.Sqrt(sum)
	}
	return math.Pow(sum, 1/p)
}

type globalKind int

const (
	globalAverage globalKind = iota
	globalMax
	globalLp
)

var globalNames = [...]string{globalAverage: "GlobalAveragePool", globalMax: "GlobalMaxPool", globalLp: "GlobalLpPool"}

func compileGlobalPool(kind globalKind, intP bool) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		p := 0.0
		if kind == globalLp {
			var err error
			if p, err = readP(n, intP); err != nil {
				return nil, err
			}
		}
		return func(e *env, in []*Tensor) ([]*Tensor, error) {
			return runGlobalPool(e, in, kind, p)
		}, nil
	}
}

// runGlobalPool reduces every spatial plane of X to one value, keeping the
// spatial dimensions with size 1.
func runGlobalPool(e *env, in []*Tensor, kind globalKind, p float64) ([]*Tensor, error) {
	op := globalNames[kind]
	if len(in) < 1 || in[0] == nil {
		return nil, fmt.Errorf("%s needs input X", op)
	}
	x := in[0]
	if x.Rank() < 2 {
		return nil, fmt.Errorf("%s needs X of rank 2 or more (N, C, spatial...), got %s", op, x)
	}
	shape := []int{x.Shape[0], x.Shape[1]}
	plane := 1
	for _, d := range x.Shape[2:] {
		shape = append(shape, 1)
		plane *= d
	}
	y, err := e.output(0, x.DType, shape...)
	if err != nil {
		return nil, err
	}
	switch yd := y.Data.(type) {
	case []float32:
		globalPool(kind, p, plane, x.Data.([]float32), yd)
		narrowFloat32s(y.DType, yd)
	case []float64:
		globalPool(kind, p, plane, x.Data.([]float64), yd)
	default:
		return nil, fmt.Errorf("%s does not compute in %s", op, dtypeName(x.DType))
	}
	return []*Tensor{y}, nil
}

func globalPool[T float32 | float64](kind globalKind, p float64, plane int, x, y []T) {
	for i := range y {
		xs := x[i*plane:][:plane]
		switch kind {
		case globalAverage:
			var sum float64
			for _, v := range xs {
				sum += float64(v)
			}
			y[i] = T(sum / float64(plane))
		case globalMax:
			// As for MaxPool, NaN never wins; an empty plane yields the
			// lowest value.
			best := lowest[T]()
			for _, v := range xs {
				if v > best {
					best = v
				}
			}
			y[i] = best
		case globalLp:
			var sum float64
			for _, v := range xs {
				av := math.Abs(float64(v))
				switch p {
				case 1:
					sum += av
				case 2:
					sum += av * av
				default:
					sum += math.Pow(av, p)
				}
			}
			y[i] = T(lpRoot(sum, p))
		}
	}
}
