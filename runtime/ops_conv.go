package runtime

import (
	"fmt"
	"slices"

	"onnxopt/graph"
)

var convOps = []opDef{
	// Conv-11 only clarified the text of Conv-1; the same holds for
	// ConvTranspose.
	{"", "Conv", 1, compileConv},
	{"", "ConvTranspose", 1, compileConvTranspose},
}

// maxSpatial is the number of spatial dimensions the window kernels take:
// 1-D and 2-D windows are computed as 3-D ones with leading unit
// dimensions, so that one loop nest serves all three.
const maxSpatial = 3

// windowAttrs are the sliding-window attributes that Conv, ConvTranspose
// and the pooling operators share. A nil list takes its default.
type windowAttrs struct {
	kernel    []int // kernel_shape; Conv and ConvTranspose infer it from W
	strides   []int // default all 1
	dilations []int // default all 1
	pads      []int // begins then ends; default all 0
	autoPad   string
	ceilMode  bool
}

func readWindowAttrs(n *graph.Node) (windowAttrs, error) {
	var w windowAttrs
	var err error
	if w.kernel, err = positiveInts(n, "kernel_shape"); err != nil {
		return w, err
	}
	if w.strides, err = positiveInts(n, "strides"); err != nil {
		return w, err
	}
	if w.dilations, err = positiveInts(n, "dilations"); err != nil {
		return w, err
	}
	if a := n.Attr("pads"); a != nil {
		for _, p := range a.Proto.GetInts() {
			w.pads = append(w.pads, int(p))
		}
		if len(w.pads)%2 != 0 {
			return w, fmt.Errorf("pads %v has an odd length: want begins then ends", w.pads)
		}
	}
	w.autoPad = n.AttrString("auto_pad", "NOTSET")
	switch w.autoPad {
	case "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER":
	default:
		return w, fmt.Errorf("auto_pad %q is not NOTSET, VALID, SAME_UPPER or SAME_LOWER", w.autoPad)
	}
	w.ceilMode = n.AttrInt("ceil_mode", 0) != 0
	return w, nil
}

// positiveInts reads an optional list attribute whose values must be
// positive and fit an int.
func positiveInts(n *graph.Node, name string) ([]int, error) {
	a := n.Attr(name)
	if a == nil {
		return nil, nil
	}
	vs := a.Proto.GetInts()
	out := make([]int, len(vs))
	for i, v := range vs {
		if v <= 0 || v > maxElements {
			return nil, fmt.Errorf("%s %v: every value must be positive", name, vs)
		}
		out[i] = int(v)
	}
	return out, nil
}

// A geometry is a window resolved against an input's spatial shape and
// lifted to maxSpatial dimensions (leading dimensions of size 1, stride 1,
// no padding).
type geometry struct {
	in, out, kernel, stride, dilation, padBegin, padEnd [maxSpatial]int
}

func (g *geometry) inVolume() int     { return g.in[0] * g.in[1] * g.in[2] }
func (g *geometry) outVolume() int    { return g.out[0] * g.out[1] * g.out[2] }
func (g *geometry) kernelVolume() int { return g.kernel[0] * g.kernel[1] * g.kernel[2] }

// lift checks the attribute lists against the spatial rank of in and
// kernel, and fills g's inputs, leaving out and the pads of auto_pad
// to the caller.
func (w *windowAttrs) lift(in, kernel []int) (geometry, error) {
	var g geometry
	rank := len(in)
	if rank > maxSpatial {
		return g, fmt.Errorf("%d spatial dimensions: the runtime takes at most %d", rank, maxSpatial)
	}
	if len(kernel) != rank {
		return g, fmt.Errorf("kernel_shape %v has %d dimensions, the input has %d spatial ones", kernel, len(kernel), rank)
	}
	if w.strides != nil && len(w.strides) != rank {
		return g, fmt.Errorf("strides %v has %d values for %d spatial dimensions", w.strides, len(w.strides), rank)
	}
	if w.dilations != nil && len(w.dilations) != rank {
		return g, fmt.Errorf("dilations %v has %d values for %d spatial dimensions", w.dilations, len(w.dilations), rank)
	}
	for _, k := range kernel {
		if k <= 0 {
			return g, fmt.Errorf("kernel shape %v has an empty dimension", kernel)
		}
	}
	if w.pads != nil && len(w.pads) != 2*rank {
		return g, fmt.Errorf("pads %v has %d values for %d spatial dimensions, want %d", w.pads, len(w.pads), rank, 2*rank)
	}
	off := maxSpatial - rank
	for i := range maxSpatial {
		g.in[i], g.kernel[i], g.stride[i], g.dilation[i], g.out[i] = 1, 1, 1, 1, 1
	}
	for i := range rank {
		g.in[off+i] = in[i]
		g.kernel[off+i] = kernel[i]
		if w.strides != nil {
			g.stride[off+i] = w.strides[i]
		}
		if w.dilations != nil {
			g.dilation[off+i] = w.dilations[i]
		}
		if w.pads != nil && w.autoPad == "NOTSET" {
			g.padBegin[off+i] = w.pads[i]
			g.padEnd[off+i] = w.pads[rank+i]
		}
	}
	return g, nil
}

// forward resolves the window of Conv and the pools over the spatial
// shape in, with the kernel's spatial shape kernel.
func (w *windowAttrs) forward(in, kernel []int) (geometry, error) {
	g, err := w.lift(in, kernel)
	if err != nil {
		return g, err
	}
	for i := maxSpatial - len(in); i < maxSpatial; i++ {
		if g.padBegin[i] < 0 || g.padEnd[i] < 0 {
			return g, fmt.Errorf("pads %v: negative padding", w.pads)
		}
		extent := (g.kernel[i]-1)*g.dilation[i] + 1
		s := g.stride[i]
		switch w.autoPad {
		case "SAME_UPPER", "SAME_LOWER":
			g.out[i] = (g.in[i] + s - 1) / s
			total := max(0, (g.out[i]-1)*s+extent-g.in[i])
			small, large := total/2, total-total/2
			if w.autoPad == "SAME_UPPER" {
				g.padBegin[i], g.padEnd[i] = small, large
			} else {
				g.padBegin[i], g.padEnd[i] = large, small
			}
		default: // NOTSET and VALID, whose pads lift left at zero
			span := g.in[i] + g.padBegin[i] + g.padEnd[i] - extent
			if span < 0 {
				return g, fmt.Errorf("the window (kernel %d, dilation %d) spans %d elements, more than the %d of the padded input %v",
					g.kernel[i], g.dilation[i], extent, span+extent, in)
			}
			g.out[i] = span/s + 1
			if w.ceilMode && span%s != 0 {
				g.out[i]++
				// A window must start inside the input or its leading
				// padding.
				if (g.out[i]-1)*s >= g.in[i]+g.padBegin[i] {
					g.out[i]--
				}
			}
		}
	}
	return g, nil
}

// convAttrs are Conv's attributes.
type convAttrs struct {
	window windowAttrs
	group  int
}

func readConvAttrs(n *graph.Node) (convAttrs, error) {
	w, err := readWindowAttrs(n)
	if err != nil {
		return convAttrs{}, err
	}
	group := n.AttrInt("group", 1)
	if group <= 0 || group > maxElements {
		return convAttrs{}, fmt.Errorf("group %d is not positive", group)
	}
	return convAttrs{window: w, group: int(group)}, nil
}

// convScratch is a node's working memory (the im2col matrices), kept
// across runs: a plan runs on one goroutine, so each node's kernel owns
// its scratch.
type convScratch struct {
	f32   []float32
	f64   []float64
	sgemm sgemmScratch
	// weights holds W packed for weightsKernel (sgemmA.packed), group
	// after group, packed once when W is a constant (constW), whose
	// tensor weightsOf then is, and on every run otherwise.
	weights       []float32
	weightsKernel sgemmKernel
	weightsOf     *Tensor
	constW        bool
	// rowOff and colOff locate the im2col matrix's rows and panels in
	// the copy of X that convSgemm reads.
	rowOff, colOff []int
}

// packedWeights returns W packed for the float32 product with this
// CPU's micro-kernel, a block of weightsStride floats per group, each of
// outChannelsG rows and depth rows.
func (cs *convScratch) packedWeights(w *Tensor, group, outChannelsG, rows int) (packed []float32, kern sgemmKernel, weightsStride int) {
	kern = sgemmKernelHere()
	stride := roundUp(outChannelsG, kern.mr) * rows
	if cs.constW && cs.weightsOf == w && cs.weightsKernel.mr == kern.mr {
		return cs.weights, kern, stride
	}
	wd := w.Data.([]float32)
	all := scratchSlice(&cs.weights, group*stride)
	for g := range group {
		packSgemmA(all[g*stride:g*stride:(g+1)*stride], kern.mr, false, 1, wd[g*outChannelsG*rows:], rows, outChannelsG, rows)
	}
	cs.weightsKernel, cs.weightsOf = kern, nil
	if cs.constW {
		cs.weightsOf = w
	}
	return all, kern, stride
}

// scratchSlice returns (*buf)[:n], reallocating *buf when it is too short.
func scratchSlice[T any](buf *[]T, n int) []T {
	if cap(*buf) < n {
		*buf = make([]T, n)
	}
	return (*buf)[:n]
}

// convShape holds a Conv's or ConvTranspose's sizes, checked.
type convShape struct {
	batch, inChannels, outChannels, group int
	geometry
}

func compileConv(n *graph.Node) (kernel, error) {
	attrs, err := readConvAttrs(n)
	if err != nil {
		return nil, err
	}
	// A constant W is packed for the product once.
	scratch := convScratch{constW: len(n.Inputs) > 1 && n.Inputs[1] != nil && n.Inputs[1].IsConstant()}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		return attrs.runConv(e, in, &scratch)
	}, nil
}

// convInputs checks the ranks and types of Conv's and ConvTranspose's X,
// W and B, and returns them.
func convInputs(op string, in []*Tensor) (x, w, b *Tensor, err error) {
	if len(in) < 2 || in[0] == nil || in[1] == nil {
		return nil, nil, nil, fmt.Errorf("%s needs inputs X and W", op)
	}
	x, w = in[0], in[1]
	if len(in) > 2 {
		b = in[2]
	}
	if x.Rank() < 3 {
		return nil, nil, nil, fmt.Errorf("%s needs X of rank 3 or more (N, C, spatial...), got %s", op, x)
	}
	if w.Rank() != x.Rank() {
		return nil, nil, nil, fmt.Errorf("%s needs W of X's rank %d, got W %s for X %s", op, x.Rank(), w, x)
	}
	if w.DType != x.DType || (b != nil && b.DType != x.DType) {
		return nil, nil, nil, fmt.Errorf("%s inputs differ in type: X %s, W %s, B %s", op, x, w, b)
	}
	return x, w, b, nil
}

// checkKernel compares W's spatial shape with a kernel_shape attribute.
func checkKernel(attr, fromW []int) error {
	if attr != nil && !slices.Equal(attr, fromW) {
		return fmt.Errorf("kernel_shape %v differs from W's spatial shape %v", attr, fromW)
	}
	return nil
}

func (c *convAttrs) runConv(e *env, in []*Tensor, scratch *convScratch) ([]*Tensor, error) {
	x, w, b, err := convInputs("Conv", in)
	if err != nil {
		return nil, err
	}
	s := convShape{batch: x.Shape[0], inChannels: x.Shape[1], outChannels: w.Shape[0], group: c.group}
	if s.inChannels != w.Shape[1]*c.group {
		return nil, fmt.Errorf("X %s has %d channels, but W %s with group %d takes %d×%d = %d",
			x, s.inChannels, w, c.group, w.Shape[1], c.group, w.Shape[1]*c.group)
	}
	if s.outChannels%c.group != 0 {
		return nil, fmt.Errorf("group %d does not divide W %s's %d output channels", c.group, w, s.outChannels)
	}
	if b != nil && (b.Rank() != 1 || b.Shape[0] != s.outChannels) {
		return nil, fmt.Errorf("B %s must be 1-D with W's %d output channels", b, s.outChannels)
	}
	if err := checkKernel(c.window.kernel, w.Shape[2:]); err != nil {
		return nil, err
	}
	if s.geometry, err = c.window.forward(x.Shape[2:], w.Shape[2:]); err != nil {
		return nil, err
	}
	outShape := append([]int{s.batch, s.outChannels}, s.out[maxSpatial-(x.Rank()-2):]...)
	y, err := e.output(0, x.DType, outShape...)
	if err != nil {
		return nil, err
	}
	switch yd := y.Data.(type) {
	case []float32:
		cG, mG := s.inChannels/s.group, s.outChannels/s.group
		if sgemmKernelFast() && s.batch > 0 && s.outVolume() > 0 && mG > 0 && cG > 0 && (cG > 1 || mG > 1) {
			packed, kern, stride := scratch.packedWeights(w, s.group, mG, cG*s.kernelVolume())
			convSgemm(&s, x.Data.([]float32), biasData[float32](b), yd, scratch, sgemmA{kernel: kern, packed: packed}, stride)
		} else {
			convForward(&s, x.Data.([]float32), w.Data.([]float32), biasData[float32](b), yd, &scratch.f32)
		}
		narrowFloat32s(y.DType, yd)
	case []float64:
		convForward(&s, x.Data.([]float64), w.Data.([]float64), biasData[float64](b), yd, &scratch.f64)
	default:
		return nil, fmt.Errorf("Conv does not compute in %s", dtypeName(x.DType))
	}
	return []*Tensor{y}, nil
}

func biasData[T any](b *Tensor) []T {
	if b == nil {
		return nil
	}
	return b.Data.([]T)
}

// im2colColumns is how many output positions one im2col matrix holds at
// least when images are small: several images then share one product,
// whose overhead per call would otherwise dominate.
const im2colColumns = 1024

// maxIm2colElements bounds an im2col matrix that batches images.
const maxIm2colElements = 1 << 22

// convForward computes Conv: per group, W's rows times the im2col matrix
// of X, the product landing in Y. A 1×1 kernel with unit strides and no
// padding needs no im2col (X already is that matrix). Groups of one input
// and one output channel (depthwise) run as direct loops, as a product
// with one row would waste the BLAS; with more output channels per group
// the product wins (measured: 8x on the digits CNN's one-channel first
// layer).
func convForward[T blasFloat](s *convShape, x, w, bias, y []T, scratch *[]T) {
	inChannelsG := s.inChannels / s.group
	outChannelsG := s.outChannels / s.group
	inVol, outVol, kVol := s.inVolume(), s.outVolume(), s.kernelVolume()
	rows := inChannelsG * kVol // of the im2col matrix
	if s.batch == 0 || outVol == 0 || s.outChannels == 0 {
		return
	}
	if inChannelsG == 1 && outChannelsG == 1 {
		convDepthwise(s, x, w, bias, y)
		return
	}
	if kVol == 1 && s.stride == [maxSpatial]int{1, 1, 1} && s.padBegin == [maxSpatial]int{} && s.padEnd == [maxSpatial]int{} {
		fillBias(y, bias, s.batch, s.outChannels, outVol)
		for n := range s.batch {
			for g := range s.group {
				xg := x[(n*s.inChannels+g*inChannelsG)*inVol:][:inChannelsG*inVol]
				yg := y[(n*s.outChannels+g*outChannelsG)*outVol:][:outChannelsG*outVol]
				wg := w[g*outChannelsG*rows:][:outChannelsG*rows]
				gemmInto(false, false, outChannelsG, outVol, rows, 1, wg, rows, xg, inVol, 1, yg, outVol)
			}
		}
		return
	}
	// Images per im2col matrix.
	per := 1
	if outVol < im2colColumns {
		per = min(s.batch, (im2colColumns+outVol-1)/outVol, max(1, maxIm2colElements/max(1, rows*outVol)))
	}
	cols := per * outVol
	col := scratchSlice(scratch, rows*cols+outChannelsG*cols)
	col, prod := col[:rows*cols], col[rows*cols:]
	if per == 1 {
		fillBias(y, bias, s.batch, s.outChannels, outVol)
	}
	for n0 := 0; n0 < s.batch; n0 += per {
		count := min(per, s.batch-n0)
		for g := range s.group {
			for i := range count {
				xg := x[((n0+i)*s.inChannels+g*inChannelsG)*inVol:][:inChannelsG*inVol]
				im2col(&s.geometry, inChannelsG, xg, col, cols, i*outVol)
			}
			wg := w[g*outChannelsG*rows:][:outChannelsG*rows]
			if per == 1 {
				yg := y[(n0*s.outChannels+g*outChannelsG)*outVol:][:outChannelsG*outVol]
				gemmInto(false, false, outChannelsG, outVol, rows, 1, wg, rows, col, cols, 1, yg, outVol)
				continue
			}
			gemmInto(false, false, outChannelsG, count*outVol, rows, 1, wg, rows, col, cols, 0, prod, cols)
			// prod is [outChannelsG, count images × outVol]; Y wants
			// [image, channel, outVol].
			for i := range count {
				for m := range outChannelsG {
					channel := g*outChannelsG + m
					dst := y[((n0+i)*s.outChannels+channel)*outVol:][:outVol]
					src := prod[m*cols+i*outVol:][:outVol]
					if bias == nil {
						copy(dst, src)
						continue
					}
					bv := bias[channel]
					for j, v := range src {
						dst[j] = v + bv
					}
				}
			}
		}
	}
}

// fillBias sets every output plane to its channel's bias, or to zero.
func fillBias[T blasFloat](y, bias []T, batch, channels, plane int) {
	if bias == nil {
		clear(y)
		return
	}
	for n := range batch {
		for c := range channels {
			dst := y[(n*channels+c)*plane:][:plane]
			bv := bias[c]
			for j := range dst {
				dst[j] = bv
			}
		}
	}
}

// validRange returns the output positions [lo, hi) of out whose input
// position o*stride + offset lies in [0, in).
func validRange(out, stride, offset, in int) (lo, hi int) {
	// o*stride + offset >= 0  <=>  o >= ceil(-offset/stride)
	if offset < 0 {
		lo = (-offset + stride - 1) / stride
	}
	// o*stride + offset < in  <=>  o < ceil((in-offset)/stride)
	if in-offset <= 0 {
		return min(lo, out), min(lo, out)
	}
	hi = min(out, (in-offset+stride-1)/stride)
	return min(lo, hi), hi
}

// im2col writes the im2col matrix of one image's channels x (channels ×
// the input volume) into col, whose rows are (channel, kernel position)
// and whose columns, starting at column off of ld, are output positions.
// Positions in the padding read zero.
func im2col[T any](g *geometry, channels int, x, col []T, ld, off int) {
	inD, inH, inW := g.in[0], g.in[1], g.in[2]
	outD, outH, outW := g.out[0], g.out[1], g.out[2]
	kD, kH, kW := g.kernel[0], g.kernel[1], g.kernel[2]
	inVol, outPlane := inD*inH*inW, outH*outW
	strideH, strideW := g.stride[1], g.stride[2]
	// The kernel position decides which output positions read the
	// padding; the channel loop is innermost so that those ranges, whose
	// divisions would otherwise dominate small images, are computed once.
	for kd := range kD {
		offD := kd*g.dilation[0] - g.padBegin[0]
		dLo, dHi := validRange(outD, g.stride[0], offD, inD)
		for kh := range kH {
			offH := kh*g.dilation[1] - g.padBegin[1]
			hLo, hHi := validRange(outH, strideH, offH, inH)
			for kw := range kW {
				offW := kw*g.dilation[2] - g.padBegin[2]
				wLo, wHi := validRange(outW, strideW, offW, inW)
				// With unit strides and rows as wide as the input's, the
				// taps of consecutive rows are consecutive in x but for the
				// ends of rows in the padding.
				wholeRows := strideH == 1 && strideW == 1 && outW == inW && hLo < hHi
				for c := range channels {
					xc := x[c*inVol:][:inVol]
					row := ((c*kD+kd)*kH+kh)*kW + kw
					dst := col[row*ld+off:][:outD*outPlane]
					// Output positions whose tap falls in the padding
					// read zero: whole planes, whole rows, and the ends
					// of rows.
					clear(dst[:dLo*outPlane])
					clear(dst[dHi*outPlane:])
					for od := dLo; od < dHi; od++ {
						plane := dst[od*outPlane:][:outPlane]
						clear(plane[:hLo*outW])
						clear(plane[hHi*outW:])
						xd := xc[(od*g.stride[0]+offD)*inH*inW:][:inH*inW]
						if wholeRows {
							copyRows(plane[hLo*outW:hHi*outW], xd, (hLo+offH)*inW+offW, outW, wLo, wHi)
							continue
						}
						for oh := hLo; oh < hHi; oh++ {
							seg := plane[oh*outW:][:outW]
							src := xd[(oh*strideH+offH)*inW:][:inW]
							clear(seg[:wLo])
							clear(seg[wHi:])
							if strideW == 1 {
								if wLo < wHi {
									copy(seg[wLo:wHi], src[wLo+offW:])
								}
								continue
							}
							iw := wLo*strideW + offW
							for j := wLo; j < wHi; j++ {
								seg[j] = src[iw]
								iw += strideW
							}
						}
					}
				}
			}
		}
	}
}

// copyRows fills dst, rows of width w, with x from index from on (which
// may lie before x's start or run past its end), and zeros the positions
// before lo and from hi on in each row, which read the padding.
func copyRows[T any](dst, x []T, from, w, lo, hi int) {
	var zeroT T
	start, end := 0, len(dst)
	if from < 0 {
		// These positions are in the first row's leading padding.
		start, from = -from, 0
	}
	end = min(end, start+len(x)-from)
	if start < end {
		copy(dst[start:end], x[from:])
	}
	for r := 0; r < len(dst); r += w {
		row := dst[r:][:w]
		for j := range lo {
			row[j] = zeroT
		}
		for j := hi; j < w; j++ {
			row[j] = zeroT
		}
	}
}

// convDepthwise computes a Conv whose groups each read one input channel,
// with direct loops: output channel m reads input channel m / (M/C).
// convForward calls it for one output channel per group only.
func convDepthwise[T blasFloat](s *convShape, x, w, bias, y []T) {
	g := &s.geometry
	multiplier := s.outChannels / s.group
	inVol, outVol, kVol := g.inVolume(), g.outVolume(), g.kernelVolume()
	inH, inW := g.in[1], g.in[2]
	outH, outW := g.out[1], g.out[2]
	for n := range s.batch {
		for m := range s.outChannels {
			xc := x[(n*s.inChannels+m/multiplier)*inVol:][:inVol]
			wm := w[m*kVol:][:kVol]
			ym := y[(n*s.outChannels+m)*outVol:][:outVol]
			var bv T
			if bias != nil {
				bv = bias[m]
			}
			for od := range g.out[0] {
				for oh := range outH {
					yrow := ym[(od*outH+oh)*outW:][:outW]
					for j := range yrow {
						yrow[j] = bv
					}
					for kd := range g.kernel[0] {
						id := od*g.stride[0] + kd*g.dilation[0] - g.padBegin[0]
						if id < 0 || id >= g.in[0] {
							continue
						}
						for kh := range g.kernel[1] {
							ih := oh*g.stride[1] + kh*g.dilation[1] - g.padBegin[1]
							if ih < 0 || ih >= inH {
								continue
							}
							src := xc[(id*inH+ih)*inW:][:inW]
							for kw := range g.kernel[2] {
								wv := wm[(kd*g.kernel[1]+kh)*g.kernel[2]+kw]
								offW := kw*g.dilation[2] - g.padBegin[2]
								lo, hi := validRange(outW, g.stride[2], offW, inW)
								iw := lo*g.stride[2] + offW
								for j := lo; j < hi; j++ {
									yrow[j] += wv * src[iw]
									iw += g.stride[2]
								}
							}
						}
					}
				}
			}
		}
	}
}

// convTransposeAttrs are ConvTranspose's attributes.
type convTransposeAttrs struct {
	convAttrs
	outputPadding []int
	outputShape   []int
}

func compileConvTranspose(n *graph.Node) (kernel, error) {
	attrs, err := readConvAttrs(n)
	if err != nil {
		return nil, err
	}
	if attrs.window.ceilMode {
		return nil, fmt.Errorf("ConvTranspose has no ceil_mode")
	}
	t := convTransposeAttrs{convAttrs: attrs}
	for _, v := range n.AttrInts("output_padding", nil) {
		if v < 0 || v > maxElements {
			return nil, fmt.Errorf("output_padding %v: values must not be negative", n.AttrInts("output_padding", nil))
		}
		t.outputPadding = append(t.outputPadding, int(v))
	}
	if n.Attr("output_shape") != nil {
		t.outputShape = []int{}
		for _, v := range n.AttrInts("output_shape", nil) {
			if v < 0 || v > maxElements {
				return nil, fmt.Errorf("output_shape %v: values must not be negative", n.AttrInts("output_shape", nil))
			}
			t.outputShape = append(t.outputShape, int(v))
		}
	}
	var scratch convScratch
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		return t.run(e, in, &scratch)
	}, nil
}

// transposed resolves ConvTranspose's window: the output is the input
// spread by the strides plus the kernel's extent, less the padding, which
// output_shape or auto_pad may determine instead of pads.
func (t *convTransposeAttrs) transposed(in, kernel []int) (geometry, error) {
	rank := len(in)
	g, err := t.window.lift(in, kernel)
	if err != nil {
		return g, err
	}
	if t.outputPadding != nil && len(t.outputPadding) != rank {
		return g, fmt.Errorf("output_padding %v has %d values for %d spatial dimensions", t.outputPadding, len(t.outputPadding), rank)
	}
	outShape := t.outputShape
	if outShape != nil && len(outShape) == rank+2 {
		// Some exporters give the whole output shape.
		outShape = outShape[2:]
	}
	if outShape != nil && len(outShape) != rank {
		return g, fmt.Errorf("output_shape %v has %d values for %d spatial dimensions", t.outputShape, len(t.outputShape), rank)
	}
	off := maxSpatial - rank
	for i := range rank {
		j := off + i
		extent := (g.kernel[j]-1)*g.dilation[j] + 1
		outPad := 0
		if t.outputPadding != nil {
			outPad = t.outputPadding[i]
		}
		full := g.stride[j]*(g.in[j]-1) + outPad + extent
		var want int
		switch {
		case outShape != nil:
			want = outShape[i]
		case t.window.autoPad == "SAME_UPPER" || t.window.autoPad == "SAME_LOWER":
			want = g.in[j] * g.stride[j]
		default:
			if g.padBegin[j] < 0 || g.padEnd[j] < 0 {
				return g, fmt.Errorf("pads %v: negative padding", t.window.pads)
			}
			g.out[j] = full - g.padBegin[j] - g.padEnd[j]
			if g.out[j] < 0 {
				return g, fmt.Errorf("pads %v leave a negative output size for input %v", t.window.pads, in)
			}
			continue
		}
		// A negative total widens the output beyond the full one; its
		// extra positions hold only the bias. half rounds down, as in
		// the ONNX reference implementation, so that a total of -1 adds
		// a position at the end.
		total := full - want
		half := total / 2
		if total < 0 && total%2 != 0 {
			half--
		}
		if t.window.autoPad == "SAME_UPPER" {
			g.padBegin[j], g.padEnd[j] = half, total-half
		} else {
			g.padBegin[j], g.padEnd[j] = total-half, half
		}
		g.out[j] = want
	}
	return g, nil
}

func (t *convTransposeAttrs) run(e *env, in []*Tensor, scratch *convScratch) ([]*Tensor, error) {
	x, w, b, err := convInputs("ConvTranspose", in)
	if err != nil {
		return nil, err
	}
	s := convShape{batch: x.Shape[0], inChannels: x.Shape[1], outChannels: w.Shape[1] * t.group, group: t.group}
	if w.Shape[0] != s.inChannels {
		return nil, fmt.Errorf("X %s has %d channels, but W %s takes %d (W is [C, M/group, kernel...])", x, s.inChannels, w, w.Shape[0])
	}
	if s.inChannels%t.group != 0 {
		return nil, fmt.Errorf("group %d does not divide X %s's %d channels", t.group, x, s.inChannels)
	}
	if b != nil && (b.Rank() != 1 || b.Shape[0] != s.outChannels) {
		return nil, fmt.Errorf("B %s must be 1-D with the %d output channels (W's dimension 1 × group %d)", b, s.outChannels, t.group)
	}
	if err := checkKernel(t.window.kernel, w.Shape[2:]); err != nil {
		return nil, err
	}
	if s.geometry, err = t.transposed(x.Shape[2:], w.Shape[2:]); err != nil {
		return nil, err
	}
	outShape := append([]int{s.batch, s.outChannels}, s.out[maxSpatial-(x.Rank()-2):]...)
	y, err := e.output(0, x.DType, outShape...)
	if err != nil {
		return nil, err
	}
	switch yd := y.Data.(type) {
	case []float32:
		convTranspose(&s, x.Data.([]float32), w.Data.([]float32), biasData[float32](b), yd, &scratch.f32, scratch.sgemm.gemm)
		narrowFloat32s(y.DType, yd)
	case []float64:
		convTranspose(&s, x.Data.([]float64), w.Data.([]float64), biasData[float64](b), yd, &scratch.f64, gemmInto[float64])
	default:
		return nil, fmt.Errorf("ConvTranspose does not compute in %s", dtypeName(x.DType))
	}
	return []*Tensor{y}, nil
}

// convTranspose computes ConvTranspose: per image and group, the product
// of W's columns with X gives, for every (output channel, kernel position)
// and input position, a contribution that col2im adds where it lands.
func convTranspose[T blasFloat](s *convShape, x, w, bias, y []T, scratch *[]T, gemm gemmFunc[T]) {
	inChannelsG := s.inChannels / s.group
	outChannelsG := s.outChannels / s.group
	inVol, outVol, kVol := s.inVolume(), s.outVolume(), s.kernelVolume()
	rows := outChannelsG * kVol
	fillBias(y, bias, s.batch, s.outChannels, outVol)
	if inVol == 0 || outVol == 0 || rows == 0 {
		return
	}
	col := scratchSlice(scratch, rows*inVol)
	for n := range s.batch {
		for g := range s.group {
			xg := x[(n*s.inChannels+g*inChannelsG)*inVol:][:inChannelsG*inVol]
			wg := w[g*inChannelsG*rows:][:inChannelsG*rows]
			gemm(true, false, rows, inVol, inChannelsG, 1, wg, rows, xg, inVol, 0, col, inVol)
			yg := y[(n*s.outChannels+g*outChannelsG)*outVol:][:outChannelsG*outVol]
			col2im(&s.geometry, outChannelsG, col, yg)
		}
	}
}

// col2im adds each element of col (rows (channel, kernel position),
// columns input positions) to the output position it maps to in y
// (channels × the output volume), dropping those in the padding.
func col2im[T blasFloat](g *geometry, channels int, col, y []T) {
	inD, inH, inW := g.in[0], g.in[1], g.in[2]
	outD, outH, outW := g.out[0], g.out[1], g.out[2]
	inVol := inD * inH * inW
	row := 0
	for c := range channels {
		yc := y[c*outD*outH*outW:][:outD*outH*outW]
		for kd := range g.kernel[0] {
			offD := kd*g.dilation[0] - g.padBegin[0]
			for kh := range g.kernel[1] {
				offH := kh*g.dilation[1] - g.padBegin[1]
				for kw := range g.kernel[2] {
					offW := kw*g.dilation[2] - g.padBegin[2]
					// Input positions iw whose iw*stride + offW lands in
					// [0, outW).
					lo, hi := validRange(inW, g.stride[2], offW, outW)
					src := col[row*inVol:][:inVol]
					row++
					for id := range inD {
						od := id*g.stride[0] + offD
						if od < 0 || od >= outD {
							continue
						}
						for ih := range inH {
							oh := ih*g.stride[1] + offH
							if oh < 0 || oh >= outH {
								continue
							}
							seg := src[(id*inH+ih)*inW:][:inW]
							dst := yc[(od*outH+oh)*outW:][:outW]
							ow := lo*g.stride[2] + offW
							for j := lo; j < hi; j++ {
								dst[ow] += seg[j]
								ow += g.stride[2]
							}
						}
					}
				}
			}
		}
	}
}
