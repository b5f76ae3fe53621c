package runtime

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// The quantized operators follow the formulas of the ONNX specification:
// quantization divides in the precision of the scale's type, rounds half to
// even and saturates to the output type's range; dequantization computes
// (x - zero_point) * scale in float32.
//
// Integer matrix products and convolutions run on the float kernels with
// the zero points subtracted first: in float32 when no partial sum can
// pass 2^24 (the largest magnitudes of the operands and the number of
// terms bound them), else in float64, which holds every sum of up to 2^21
// products of 16-bit integers. Either way the sums are the exact integers.
var quantOps = []opDef{
	{"", "QuantizeLinear", 10, compileQuantizeLinear(false)},
	{"", "QuantizeLinear", 13, compileQuantizeLinear(true)},
	{"", "DequantizeLinear", 10, compileDequantizeLinear(false)},
	{"", "DequantizeLinear", 13, compileDequantizeLinear(true)},
	{"", "DynamicQuantizeLinear", 11, compileDynamicQuantizeLinear},
	{"", "MatMulInteger", 10, compileMatMulInteger},
	{"", "QLinearMatMul", 10, compileQLinearMatMul},
	{"", "ConvInteger", 10, compileConvInteger},
	{"", "QLinearConv", 10, compileQLinearConv},
}

// quantInt is the integer element types a quantized tensor may have.
type quantInt interface {
	int8 | uint8 | int16 | uint16 | int32
}

// quantizeValue rounds q half to even, adds the zero point and saturates
// to [lo, hi]. NaN quantizes as zero, since the spec leaves it undefined.
func quantizeValue(q float32, zp, lo, hi float64) float64 {
	r := math.RoundToEven(float64(q))
	if r != r {
		r = 0
	}
	r += zp
	if r < lo {
		return lo
	}
	if r > hi {
		return hi
	}
	return r
}

// errNarrowType explains the quantized types the runtime cannot hold.
var errNarrowType = errors.New("the runtime holds no 8-bit float or 2-bit tensors, and 4-bit ones only as DequantizeLinear reads them")

// quantizedType reports whether dt is an integer type QuantizeLinear may
// produce, and explains the types it cannot.
func quantizedType(dt onnx.TensorProto_DataType) error {
	switch dt {
	case onnx.TensorProto_INT8, onnx.TensorProto_UINT8, onnx.TensorProto_INT16, onnx.TensorProto_UINT16:
		return nil
	}
	if dt.IsFloat8() || dt.IsPacked() {
		return fmt.Errorf("quantized type %s: %w", dtypeName(dt), errNarrowType)
	}
	return fmt.Errorf("quantized type %s is not int8, uint8, int16 or uint16", dtypeName(dt))
}

// scaleType checks a scale (or precision) type: float32 or a narrower
// float the runtime holds as float32.
func scaleType(what string, dt onnx.TensorProto_DataType) error {
	switch dt {
	case onnx.TensorProto_FLOAT, onnx.TensorProto_FLOAT16, onnx.TensorProto_BFLOAT16:
		return nil
	}
	return fmt.Errorf("%s type %s is not float, float16 or bfloat16", what, dtypeName(dt))
}

// roundTo returns the rounding of float32 values to dt, or nil for float32
// itself.
func roundTo(dt onnx.TensorProto_DataType) func(float32) float32 {
	switch dt {
	case onnx.TensorProto_FLOAT16:
		return func(f float32) float32 { return onnx.Float16frombits(onnx.Float16bits(f)) }
	case onnx.TensorProto_BFLOAT16:
		return func(f float32) float32 { return onnx.BFloat16frombits(onnx.BFloat16bits(f)) }
	}
	return nil
}

// optionalInput returns input i, or nil when it is omitted.
func optionalInput(in []*Tensor, i int) *Tensor {
	if i < len(in) {
		return in[i]
	}
	return nil
}

// floatData returns the []float32 of a float, float16 or bfloat16 tensor.
func floatData(what string, t *Tensor) ([]float32, error) {
	if err := scaleType(what, t.DType); err != nil {
		return nil, err
	}
	d, ok := t.Data.([]float32)
	if !ok {
		return nil, fmt.Errorf("%s holds %T, not []float32", what, t.Data)
	}
	return d, nil
}

// zeroPoints returns a zero point's data as Q, nil for an omitted one.
func zeroPoints[Q quantInt](zp *Tensor) ([]Q, error) {
	if zp == nil {
		return nil, nil
	}
	d, ok := zp.Data.([]Q)
	if !ok {
		return nil, fmt.Errorf("zero point %s holds %T", zp, zp.Data)
	}
	return d, nil
}

// Quantization granularities.
const (
	perTensor = iota
	perAxis
	perBlock
)

// A quantGrain says which scale and zero point apply to each element of a
// tensor seen as [outer, dim, inner] around the quantization axis.
type quantGrain struct {
	kind              int
	outer, dim, inner int
	block             int // elements along the axis that share a scale (perBlock)
	scaleDim          int // the scale's size along the axis (perBlock)
}

// resolveGrain works out the granularity from the scale's shape, as
// QuantizeLinear's specification describes: a scalar (or one-element 1-D)
// scale is per tensor, a 1-D scale as long as the axis is per axis, and
// with block_size set the scale has x's shape but ceil(D/block_size)
// along the axis.
func resolveGrain(xshape []int, scale, zp *Tensor, axis, block int64, axisAllowed bool) (quantGrain, error) {
	if zp != nil && !sameShape(zp.Shape, scale.Shape) && (zp.Len() != 1 || scale.Len() != 1) {
		return quantGrain{}, fmt.Errorf("zero point shape %v differs from scale shape %v", zp.Shape, scale.Shape)
	}
	n := mustElements(xshape)
	if block > 0 {
		a, err := normAxis(axis, len(xshape))
		if err != nil {
			return quantGrain{}, err
		}
		if len(scale.Shape) != len(xshape) {
			return quantGrain{}, fmt.Errorf("blocked quantization needs a scale of rank %d, got shape %v", len(xshape), scale.Shape)
		}
		for i, d := range scale.Shape {
			if i != a && d != xshape[i] {
				return quantGrain{}, fmt.Errorf("blocked scale shape %v does not match input shape %v outside axis %d", scale.Shape, xshape, a)
			}
		}
		dim, s := xshape[a], scale.Shape[a]
		if b := int(block); (dim+b-1)/b != s {
			return quantGrain{}, fmt.Errorf("block_size %d over %d elements needs %d scales along axis %d, got %d", b, dim, (dim+b-1)/b, a, s)
		}
		return quantGrain{kind: perBlock, outer: mustElements(xshape[:a]), dim: dim, inner: mustElements(xshape[a+1:]),
			block: int(block), scaleDim: s}, nil
	}
	if len(scale.Shape) <= 1 && scale.Len() == 1 {
		return quantGrain{kind: perTensor, outer: 1, dim: 1, inner: n}, nil
	}
	if !axisAllowed || len(scale.Shape) != 1 {
		return quantGrain{}, fmt.Errorf("scale of shape %v is neither a scalar nor per-axis", scale.Shape)
	}
	a, err := normAxis(axis, len(xshape))
	if err != nil {
		return quantGrain{}, err
	}
	if scale.Shape[0] != xshape[a] {
		return quantGrain{}, fmt.Errorf("per-axis scale has %d elements, axis %d of input shape %v has %d", scale.Shape[0], a, xshape, xshape[a])
	}
	return quantGrain{kind: perAxis, outer: mustElements(xshape[:a]), dim: xshape[a], inner: mustElements(xshape[a+1:])}, nil
}

// rows calls f for each run of elements [lo, hi) that read scales from
// base on with the given step (0: one scale for the whole run).
func (g quantGrain) rows(f func(lo, hi, base, step int)) {
	if g.kind == perTensor {
		f(0, g.inner, 0, 0)
		return
	}
	for o := 0; o < g.outer; o++ {
		for d := 0; d < g.dim; d++ {
			lo := (o*g.dim + d) * g.inner
			if g.kind == perAxis {
				f(lo, lo+g.inner, d, 0)
			} else {
				f(lo, lo+g.inner, (o*g.scaleDim+d/g.block)*g.inner, 1)
			}
		}
	}
}

func quantizeRows[X float32 | int32, Q quantInt](y []Q, x []X, scale []float32, zp []Q, g quantGrain, narrow func(float32) float32) {
	lo, hi := integerRange[Q]()
	g.rows(func(a, b, base, step int) {
		out, in := y[a:b], x[a:b]
		if step == 0 && narrow == nil {
			// One scale and zero point for the run: the common case.
			s, z := float64(scale[base]), 0.0
			if zp != nil {
				z = float64(zp[base])
			}
			for i, v := range in {
				// float64 division rounded once to float32 is the
				// float32 quotient, correctly rounded.
				out[i] = Q(quantizeValue(float32(float64(v)/s), z, lo, hi))
			}
			return
		}
		for i, v := range in {
			k := base + i*step
			q := float32(float64(v) / float64(scale[k]))
			if narrow != nil {
				q = narrow(q)
			}
			z := 0.0
			if zp != nil {
				z = float64(zp[k])
			}
			out[i] = Q(quantizeValue(q, z, lo, hi))
		}
	})
}

func quantizeTo[X float32 | int32](y *Tensor, x []X, scale []float32, zp *Tensor, g quantGrain, narrow func(float32) float32) error {
	var err error
	switch yd := y.Data.(type) {
	case []int8:
		var z []int8
		if z, err = zeroPoints[int8](zp); err == nil {
			quantizeRows(yd, x, scale, z, g, narrow)
		}
	case []uint8:
		var z []uint8
		if z, err = zeroPoints[uint8](zp); err == nil {
			quantizeRows(yd, x, scale, z, g, narrow)
		}
	case []int16:
		var z []int16
		if z, err = zeroPoints[int16](zp); err == nil {
			quantizeRows(yd, x, scale, z, g, narrow)
		}
	case []uint16:
		var z []uint16
		if z, err = zeroPoints[uint16](zp); err == nil {
			quantizeRows(yd, x, scale, z, g, narrow)
		}
	default:
		err = fmt.Errorf("cannot quantize to %s", y)
	}
	return err
}

// compileQuantizeLinear compiles QuantizeLinear: opset 10 per tensor,
// opset 13 per axis, and from opset 21 the block_size and output_dtype
// attributes, and from 23 precision, which older models simply lack.
func compileQuantizeLinear(axisAllowed bool) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		axis := n.AttrInt("axis", 1)
		block := n.AttrInt("block_size", 0)
		if block < 0 {
			return nil, fmt.Errorf("block_size %d is negative", block)
		}
		outType := onnx.TensorProto_DataType(n.AttrInt("output_dtype", 0))
		if outType != onnx.TensorProto_UNDEFINED {
			if err := quantizedType(outType); err != nil {
				return nil, fmt.Errorf("output_dtype: %w", err)
			}
		}
		precision := onnx.TensorProto_DataType(n.AttrInt("precision", 0))
		if precision != onnx.TensorProto_UNDEFINED {
			if err := scaleType("precision", precision); err != nil {
				return nil, err
			}
		}
		return func(e *env, in []*Tensor) ([]*Tensor, error) {
			x, scale, zp := in[0], optionalInput(in, 1), optionalInput(in, 2)
			if scale == nil {
				return nil, errors.New("y_scale is missing")
			}
			sc, err := floatData("y_scale", scale)
			if err != nil {
				return nil, err
			}
			yType := onnx.TensorProto_UINT8
			switch {
			case zp != nil:
				if outType != onnx.TensorProto_UNDEFINED && outType != zp.DType {
					return nil, fmt.Errorf("output_dtype %s differs from y_zero_point type %s", dtypeName(outType), dtypeName(zp.DType))
				}
				yType = zp.DType
			case outType != onnx.TensorProto_UNDEFINED:
				yType = outType
			}
			if err := quantizedType(yType); err != nil {
				return nil, err
			}
			g, err := resolveGrain(x.Shape, scale, zp, axis, block, axisAllowed)
			if err != nil {
				return nil, err
			}
			div := scale.DType
			if precision != onnx.TensorProto_UNDEFINED {
				div = precision
			}
			y, err := e.output(0, yType, x.Shape...)
			if err != nil {
				return nil, err
			}
			switch xd := x.Data.(type) {
			case []float32:
				err = quantizeTo(y, xd, sc, zp, g, roundTo(div))
			case []int32:
				err = quantizeTo(y, xd, sc, zp, g, roundTo(div))
			default:
				err = fmt.Errorf("cannot quantize %s", x)
			}
			if err != nil {
				return nil, err
			}
			return []*Tensor{y}, nil
		}, nil
	}
}

// dequantizeRows computes y = (x - zp) * scale in float32; the caller
// rounds y to a narrower output type.
func dequantizeRows[Q quantInt](y []float32, x []Q, scale []float32, zp []Q, g quantGrain) {
	g.rows(func(a, b, base, step int) {
		out, in := y[a:b], x[a:b]
		if step == 0 {
			s, z := scale[base], int64(0)
			if zp != nil {
				z = int64(zp[base])
			}
			for i, v := range in {
				out[i] = float32(int64(v)-z) * s
			}
			return
		}
		for i, v := range in {
			k := base + i*step
			d := int64(v)
			if zp != nil {
				d -= int64(zp[k])
			}
			out[i] = float32(d) * scale[k]
		}
	})
}

func dequantizeFrom[Q quantInt](y []float32, x []Q, scale []float32, zp *Tensor, g quantGrain) error {
	z, err := zeroPoints[Q](zp)
	if err != nil {
		return err
	}
	dequantizeRows(y, x, scale, z, g)
	return nil
}

// compileDequantizeLinear compiles DequantizeLinear: opset 10 per tensor,
// opset 13 per axis, from 21 blocked, from 23 output_dtype.
func compileDequantizeLinear(axisAllowed bool) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		axis := n.AttrInt("axis", 1)
		block := n.AttrInt("block_size", 0)
		if block < 0 {
			return nil, fmt.Errorf("block_size %d is negative", block)
		}
		outType := onnx.TensorProto_DataType(n.AttrInt("output_dtype", 0))
		if outType != onnx.TensorProto_UNDEFINED {
			if err := scaleType("output_dtype", outType); err != nil {
				return nil, err
			}
		}
		return func(e *env, in []*Tensor) ([]*Tensor, error) {
			x, scale, zp := in[0], optionalInput(in, 1), optionalInput(in, 2)
			if scale == nil {
				return nil, errors.New("x_scale is missing")
			}
			sc, err := floatData("x_scale", scale)
			if err != nil {
				return nil, err
			}
			if zp != nil && zp.DType != x.DType {
				return nil, fmt.Errorf("x_zero_point type %s differs from x type %s", dtypeName(zp.DType), dtypeName(x.DType))
			}
			g, err := resolveGrain(x.Shape, scale, zp, axis, block, axisAllowed)
			if err != nil {
				return nil, err
			}
			yType := scale.DType
			if outType != onnx.TensorProto_UNDEFINED {
				yType = outType
			}
			y, err := e.output(0, yType, x.Shape...)
			if err != nil {
				return nil, err
			}
			yd := y.Data.([]float32)
			switch xd := x.Data.(type) {
			case []int8:
				err = dequantizeFrom(yd, xd, sc, zp, g)
			case []uint8:
				err = dequantizeFrom(yd, xd, sc, zp, g)
			case []int16:
				err = dequantizeFrom(yd, xd, sc, zp, g)
			case []uint16:
				err = dequantizeFrom(yd, xd, sc, zp, g)
			case []int32:
				err = dequantizeFrom(yd, xd, sc, zp, g)
			default:
				if x.DType.IsFloat8() || x.DType.IsPacked() {
					err = fmt.Errorf("cannot dequantize %s: %w", x, errNarrowType)
				} else {
					err = fmt.Errorf("cannot dequantize %s", x)
				}
			}
			if err != nil {
				return nil, err
			}
			narrowFloat32s(yType, yd)
			return []*Tensor{y}, nil
		}, nil
	}
}

// compileDynamicQuantizeLinear computes the function body of
// DynamicQuantizeLinear-11 in float32: the range of x widened to hold 0,
// scale = range/255, zero point = round(clip(-min/scale, 0, 255)), then
// QuantizeLinear to uint8.
func compileDynamicQuantizeLinear(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		xd, ok := x.Data.([]float32)
		if !ok || x.DType != onnx.TensorProto_FLOAT {
			return nil, fmt.Errorf("x must be float, got %s", x)
		}
		var lo, hi float32
		for _, v := range xd {
			lo = min(lo, v)
			hi = max(hi, v)
		}
		scale := (hi - lo) / 255
		var zp float32
		if scale != 0 {
			zp = float32(math.RoundToEven(float64(min(max(0-lo/scale, 0), 255))))
		}
		y, err := e.output(0, onnx.TensorProto_UINT8, x.Shape...)
		if err != nil {
			return nil, err
		}
		ys, err := e.output(1, onnx.TensorProto_FLOAT)
		if err != nil {
			return nil, err
		}
		yz, err := e.output(2, onnx.TensorProto_UINT8)
		if err != nil {
			return nil, err
		}
		ys.Data.([]float32)[0] = scale
		yz.Data.([]uint8)[0] = uint8(zp)
		yd := y.Data.([]uint8)
		if scale == 0 {
			// x is all zeros (or empty): every element quantizes to the
			// zero point 0, where the function body would divide 0 by 0.
			clear(yd)
		} else {
			g := quantGrain{kind: perTensor, outer: 1, dim: 1, inner: len(xd)}
			quantizeRows(yd, xd, []float32{scale}, []uint8{uint8(zp)}, g, nil)
		}
		return []*Tensor{y, ys, yz}, nil
	}, nil
}

// matmulDims is a numpy-style matrix product A[..., M, K] × B[..., K, N]
// with 1-D operands widened to matrices.
type matmulDims struct {
	matmulShape
	aShape, bShape []int // the operands as matrices
	cShape         []int // the product as matrices: batch, M, N
	outShape       []int // the product without the widened dimensions
}

func matmulShapes(as, bs []int) (matmulDims, error) {
	if len(as) == 0 || len(bs) == 0 {
		return matmulDims{}, fmt.Errorf("matrix product of a scalar: shapes %v and %v", as, bs)
	}
	var d matmulDims
	d.aShape, d.bShape = as, bs
	if len(as) == 1 {
		d.aShape = []int{1, as[0]}
	}
	if len(bs) == 1 {
		d.bShape = []int{bs[0], 1}
	}
	ra, rb := len(d.aShape), len(d.bShape)
	d.m, d.k, d.n = d.aShape[ra-2], d.aShape[ra-1], d.bShape[rb-1]
	if d.bShape[rb-2] != d.k {
		return matmulDims{}, fmt.Errorf("matrix product of shapes %v and %v: inner dimensions %d and %d differ", as, bs, d.k, d.bShape[rb-2])
	}
	d.aBatch, d.bBatch = d.aShape[:ra-2], d.bShape[:rb-2]
	batch, err := broadcastShapes(d.aBatch, d.bBatch)
	if err != nil {
		return matmulDims{}, fmt.Errorf("matrix product batch dimensions: %w", err)
	}
	d.batch = batch
	d.cShape = append(slices.Clone(batch), d.m, d.n)
	d.outShape = slices.Clone(batch)
	if len(as) > 1 {
		d.outShape = append(d.outShape, d.m)
	}
	if len(bs) > 1 {
		d.outShape = append(d.outShape, d.n)
	}
	return d, nil
}

// rowwise gives a per-row parameter of A (a 1-D tensor of M elements) the
// shape [M, 1] so that it broadcasts along A's rows; other shapes are
// returned as they are.
func rowwise(shape []int, aRank, m int) []int {
	if len(shape) == 1 && shape[0] == m && m != 1 && aRank >= 2 {
		return []int{m, 1}
	}
	return shape
}

func centerRows[T quantInt](out []float32, shape []int, x []T, zp []T, zshape []int) {
	if zp == nil {
		for i, v := range x {
			out[i] = float32(v)
		}
		return
	}
	broadcastBinary(out, shape, x, shape, zp, zshape, func(o []float32, a, z []T) {
		if len(z) == 1 {
			c := int32(z[0])
			for i, v := range a[:len(o)] {
				o[i] = float32(int32(v) - c)
			}
			return
		}
		for i := range o {
			o[i] = float32(int32(a[i]) - int32(z[i]))
		}
	})
}

func centerAs[T quantInt](out []float32, shape []int, x []T, zp *Tensor, zshape []int) error {
	z, err := zeroPoints[T](zp)
	if err != nil {
		return err
	}
	centerRows(out, shape, x, z, zshape)
	return nil
}

// centered writes t minus its zero point into out, which holds the
// difference of two 16-bit integers exactly. zshape is the zero point's
// shape as it broadcasts against shape.
func centered(out []float32, t *Tensor, shape []int, zp *Tensor, zshape []int) error {
	if zp != nil {
		if zp.DType != t.DType {
			return fmt.Errorf("zero point type %s differs from input type %s", dtypeName(zp.DType), dtypeName(t.DType))
		}
		if err := unidirectional(zshape, shape); err != nil {
			return fmt.Errorf("zero point: %w", err)
		}
	}
	switch d := t.Data.(type) {
	case []int8:
		return centerAs(out, shape, d, zp, zshape)
	case []uint8:
		return centerAs(out, shape, d, zp, zshape)
	case []int16:
		return centerAs(out, shape, d, zp, zshape)
	case []uint16:
		return centerAs(out, shape, d, zp, zshape)
	}
	return fmt.Errorf("input %s is not 8- or 16-bit integer", t)
}

func maxMagnitude(v []float32) float64 {
	var m float32
	for _, x := range v {
		m = max(m, x, -x)
	}
	return float64(m)
}

// An integerAcc holds integer sums computed in floating point: in f32 when
// no sum can reach 2^24, where float32 stops holding every integer, else
// in f64, which holds them up to 2^53.
type integerAcc struct {
	f32 []float32
	f64 []float64
}

// exactIn32 reports whether every partial sum of terms products of values
// of at most aMax and bMax in magnitude is an integer float32 holds.
func exactIn32(aMax, bMax float64, terms int) bool {
	return aMax*bMax*float64(terms) <= 1<<24
}

// widened copies v into the node's float64 buffer slot.
func widened(e *env, slot int, v []float32, shape []int) ([]float64, error) {
	t, err := e.output(slot, onnx.TensorProto_DOUBLE, shape...)
	if err != nil {
		return nil, err
	}
	d := t.Data.([]float64)
	for i, x := range v {
		d[i] = float64(x)
	}
	return d, nil
}

// integerOperands centers both operands of an integer product into the
// node's float32 buffer slots 1 and 2 (past its outputs), and widens them
// into float64 slots 4 and 5 when terms products could sum beyond float32's
// integers. It returns float32 or float64 operands, the other pair nil.
func integerOperands(e *env, a, azp *Tensor, ashape, azs []int, b, bzp *Tensor, bshape, bzs []int, terms int) (a32, b32 []float32, a64, b64 []float64, err error) {
	at, err := e.output(1, onnx.TensorProto_FLOAT, ashape...)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	bt, err := e.output(2, onnx.TensorProto_FLOAT, bshape...)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	a32, b32 = at.Data.([]float32), bt.Data.([]float32)
	if err := centered(a32, a, ashape, azp, azs); err != nil {
		return nil, nil, nil, nil, err
	}
	if err := centered(b32, b, bshape, bzp, bzs); err != nil {
		return nil, nil, nil, nil, err
	}
	if exactIn32(maxMagnitude(a32), maxMagnitude(b32), terms) {
		return a32, b32, nil, nil, nil
	}
	if a64, err = widened(e, 4, a32, ashape); err != nil {
		return nil, nil, nil, nil, err
	}
	if b64, err = widened(e, 5, b32, bshape); err != nil {
		return nil, nil, nil, nil, err
	}
	return nil, nil, a64, b64, nil
}

// accumulator returns the node's buffer for an integerAcc of shape: slot 3
// in float32 or slot 6 in float64.
func accumulator(e *env, wide bool, shape []int) (integerAcc, error) {
	if wide {
		t, err := e.output(6, onnx.TensorProto_DOUBLE, shape...)
		if err != nil {
			return integerAcc{}, err
		}
		return integerAcc{f64: t.Data.([]float64)}, nil
	}
	t, err := e.output(3, onnx.TensorProto_FLOAT, shape...)
	if err != nil {
		return integerAcc{}, err
	}
	return integerAcc{f32: t.Data.([]float32)}, nil
}

// integerProduct computes (a - a_zero_point) × (b - b_zero_point) exactly.
func integerProduct(e *env, a, azp, b, bzp *Tensor) (matmulDims, integerAcc, error) {
	d, err := matmulShapes(a.Shape, b.Shape)
	if err != nil {
		return d, integerAcc{}, err
	}
	var azs, bzs []int
	if azp != nil {
		azs = rowwise(azp.Shape, len(a.Shape), d.m)
	}
	if bzp != nil {
		bzs = bzp.Shape
	}
	a32, b32, a64, b64, err := integerOperands(e, a, azp, d.aShape, azs, b, bzp, d.bShape, bzs, d.k)
	if err != nil {
		return d, integerAcc{}, err
	}
	acc, err := accumulator(e, a64 != nil, d.cShape)
	if err != nil {
		return d, integerAcc{}, err
	}
	if acc.f64 != nil {
		matmulBatches(d.matmulShape, a64, b64, acc.f64, gemmInto[float64])
	} else {
		matmulBatches(d.matmulShape, a32, b32, acc.f32, gemmInto[float32])
	}
	return d, acc, nil
}

// int32Of writes the integer sums into an int32 output. The spec lets
// the accumulation wrap around in 32 bits.
func int32Of(y []int32, acc integerAcc) {
	if acc.f64 != nil {
		for i, v := range acc.f64 {
			y[i] = int32(int64(v))
		}
		return
	}
	for i, v := range acc.f32 {
		y[i] = int32(v)
	}
}

func compileMatMulInteger(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if len(in) < 2 || in[0] == nil || in[1] == nil {
			return nil, errors.New("MatMulInteger needs inputs A and B")
		}
		d, acc, err := integerProduct(e, in[0], optionalInput(in, 2), in[1], optionalInput(in, 3))
		if err != nil {
			return nil, err
		}
		y, err := e.output(0, onnx.TensorProto_INT32, d.outShape...)
		if err != nil {
			return nil, err
		}
		int32Of(y.Data.([]int32), acc)
		return []*Tensor{y}, nil
	}, nil
}

// requantize writes round(acc * a_scale * b_scale / y_scale) + y_zero_point,
// saturated, into y, with a_scale and b_scale broadcast against acc's shape.
// The multiplier is computed in float32, as the scales are, and so is its
// product with the sum.
func requantize[Q quantInt, F blasFloat](y []Q, acc []F, shape []int, as []float32, ashape []int, bs []float32, bshape []int, ys float32, yzp []Q) {
	lo, hi := integerRange[Q]()
	z := 0.0
	if yzp != nil {
		z = float64(yzp[0])
	}
	broadcastTernary(y, shape, acc, shape, as, ashape, bs, bshape, func(o []Q, c []F, sa, sb []float32) {
		if len(sa) == 1 && len(sb) == 1 {
			m := sa[0] * sb[0] / ys
			for i := range o {
				o[i] = Q(quantizeValue(float32(c[i])*m, z, lo, hi))
			}
			return
		}
		for i := range o {
			a, b := sa[0], sb[0]
			if len(sa) > 1 {
				a = sa[i]
			}
			if len(sb) > 1 {
				b = sb[i]
			}
			o[i] = Q(quantizeValue(float32(c[i])*(a*b/ys), z, lo, hi))
		}
	})
}

func requantizeAcc[Q quantInt](y []Q, acc integerAcc, shape []int, as []float32, ashape []int, bs []float32, bshape []int, ys float32, yzp *Tensor) error {
	z, err := zeroPoints[Q](yzp)
	if err != nil {
		return err
	}
	if acc.f64 != nil {
		requantize(y, acc.f64, shape, as, ashape, bs, bshape, ys, z)
	} else {
		requantize(y, acc.f32, shape, as, ashape, bs, bshape, ys, z)
	}
	return nil
}

func requantizeTo(y *Tensor, acc integerAcc, shape []int, as []float32, ashape []int, bs []float32, bshape []int, ys float32, yzp *Tensor) error {
	switch yd := y.Data.(type) {
	case []int8:
		return requantizeAcc(yd, acc, shape, as, ashape, bs, bshape, ys, yzp)
	case []uint8:
		return requantizeAcc(yd, acc, shape, as, ashape, bs, bshape, ys, yzp)
	case []int16:
		return requantizeAcc(yd, acc, shape, as, ashape, bs, bshape, ys, yzp)
	case []uint16:
		return requantizeAcc(yd, acc, shape, as, ashape, bs, bshape, ys, yzp)
	}
	return fmt.Errorf("cannot quantize to %s", y)
}

// outputQuantization checks y_scale and y_zero_point, which are per tensor,
// and returns the scale and the output type.
func outputQuantization(ys, yzp *Tensor) (float32, onnx.TensorProto_DataType, error) {
	if ys == nil {
		return 0, 0, errors.New("y_scale is missing")
	}
	sd, err := floatData("y_scale", ys)
	if err != nil {
		return 0, 0, err
	}
	if len(sd) != 1 {
		return 0, 0, fmt.Errorf("y_scale must be a scalar, got shape %v", ys.Shape)
	}
	yType := onnx.TensorProto_UINT8
	if yzp != nil {
		if yzp.Len() != 1 {
			return 0, 0, fmt.Errorf("y_zero_point must be a scalar, got shape %v", yzp.Shape)
		}
		yType = yzp.DType
	}
	if err := quantizedType(yType); err != nil {
		return 0, 0, err
	}
	return sd[0], yType, nil
}

// compileQLinearMatMul compiles QLinearMatMul: a per tensor or per row, b
// per tensor or per column, y per tensor.
func compileQLinearMatMul(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if len(in) < 8 {
			return nil, fmt.Errorf("QLinearMatMul takes 8 inputs, got %d", len(in))
		}
		a, as, azp, b, bs, bzp, ys, yzp := in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7]
		if a == nil || b == nil || as == nil || bs == nil {
			return nil, errors.New("a, a_scale, b and b_scale are required")
		}
		asd, err := floatData("a_scale", as)
		if err != nil {
			return nil, err
		}
		bsd, err := floatData("b_scale", bs)
		if err != nil {
			return nil, err
		}
		if azp != nil && !sameShape(as.Shape, azp.Shape) || bzp != nil && !sameShape(bs.Shape, bzp.Shape) {
			return nil, errors.New("each scale must have its zero point's shape")
		}
		ysd, yType, err := outputQuantization(ys, yzp)
		if err != nil {
			return nil, err
		}
		d, acc, err := integerProduct(e, a, azp, b, bzp)
		if err != nil {
			return nil, err
		}
		ashape := rowwise(as.Shape, len(a.Shape), d.m)
		if err := unidirectional(ashape, d.cShape); err != nil {
			return nil, fmt.Errorf("a_scale: %w", err)
		}
		if err := unidirectional(bs.Shape, d.cShape); err != nil {
			return nil, fmt.Errorf("b_scale: %w", err)
		}
		y, err := e.output(0, yType, d.outShape...)
		if err != nil {
			return nil, err
		}
		if err := requantizeTo(y, acc, d.cShape, asd, ashape, bsd, bs.Shape, ysd, yzp); err != nil {
			return nil, err
		}
		return []*Tensor{y}, nil
	}, nil
}

// integerConv computes conv(x - x_zero_point, w - w_zero_point) exactly,
// through Conv's float kernel. Padding adds zeros to the centered input,
// which is padding x with its zero point. w_zero_point may be per output
// channel.
func (c *convAttrs) integerConv(e *env, op string, x, xzp, w, wzp *Tensor, scratch *convScratch) (*convShape, []int, integerAcc, error) {
	var acc integerAcc
	if x.Rank() < 3 || w.Rank() != x.Rank() {
		return nil, nil, acc, fmt.Errorf("%s needs X of rank 3 or more and W of the same rank, got X %s, W %s", op, x, w)
	}
	s := &convShape{batch: x.Shape[0], inChannels: x.Shape[1], outChannels: w.Shape[0], group: c.group}
	if s.inChannels != w.Shape[1]*c.group {
		return nil, nil, acc, fmt.Errorf("X %s has %d channels, but W %s with group %d takes %d", x, s.inChannels, w, c.group, w.Shape[1]*c.group)
	}
	if s.outChannels%c.group != 0 {
		return nil, nil, acc, fmt.Errorf("group %d does not divide W %s's %d output channels", c.group, w, s.outChannels)
	}
	if err := checkKernel(c.window.kernel, w.Shape[2:]); err != nil {
		return nil, nil, acc, err
	}
	var err error
	if s.geometry, err = c.window.forward(x.Shape[2:], w.Shape[2:]); err != nil {
		return nil, nil, acc, err
	}
	outShape := append([]int{s.batch, s.outChannels}, s.out[maxSpatial-(x.Rank()-2):]...)
	var xzs, wzs []int
	if xzp != nil {
		if xzp.Len() != 1 {
			return nil, nil, acc, fmt.Errorf("x_zero_point must be a scalar, got shape %v", xzp.Shape)
		}
		xzs = xzp.Shape
	}
	if wzp != nil {
		wzs = channelwise(wzp.Shape, w.Rank(), s.outChannels)
	}
	// Each output sums a product per input channel of its group and
	// kernel tap.
	terms := w.Shape[1] * s.kernelVolume()
	x32, w32, x64, w64, err := integerOperands(e, x, xzp, x.Shape, xzs, w, wzp, w.Shape, wzs, terms)
	if err != nil {
		return nil, nil, acc, err
	}
	if acc, err = accumulator(e, x64 != nil, outShape); err != nil {
		return nil, nil, acc, err
	}
	if acc.f64 != nil {
		convForward(s, x64, w64, nil, acc.f64, &scratch.f64)
	} else {
		convForward(s, x32, w32, nil, acc.f32, &scratch.f32)
	}
	return s, outShape, acc, nil
}

// channelwise gives a per-output-channel parameter (a 1-D tensor of M
// elements) the shape [M, 1, ...] of the given rank, so that it broadcasts
// along the channel dimension of a tensor whose first axis has M; other
// shapes are returned as they are.
func channelwise(shape []int, rank, m int) []int {
	if len(shape) == 1 && shape[0] == m && m != 1 {
		s := make([]int, rank)
		for i := range s {
			s[i] = 1
		}
		s[0] = m
		return s
	}
	return shape
}

func compileConvInteger(n *graph.Node) (kernel, error) {
	attrs, err := readConvAttrs(n)
	if err != nil {
		return nil, err
	}
	var scratch convScratch
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if len(in) < 2 || in[0] == nil || in[1] == nil {
			return nil, errors.New("ConvInteger needs inputs x and w")
		}
		_, shape, acc, err := attrs.integerConv(e, "ConvInteger", in[0], optionalInput(in, 2), in[1], optionalInput(in, 3), &scratch)
		if err != nil {
			return nil, err
		}
		y, err := e.output(0, onnx.TensorProto_INT32, shape...)
		if err != nil {
			return nil, err
		}
		int32Of(y.Data.([]int32), acc)
		return []*Tensor{y}, nil
	}, nil
}

// addBias adds an int32 bias per output channel to the sums of a
// convolution's [N, M, plane] output. In float32 a sum past 2^24 rounds,
// but requantize rounds it to float32 anyway: float32(exact sum) either
// way.
func addBias(acc integerAcc, bias []int32, channels, plane int) {
	if acc.f64 != nil {
		for i := range acc.f64 {
			acc.f64[i] += float64(bias[i/plane%channels])
		}
		return
	}
	for i := range acc.f32 {
		acc.f32[i] += float32(bias[i/plane%channels])
	}
}

// compileQLinearConv compiles QLinearConv: x and y per tensor, w per tensor
// or per output channel, and an optional int32 bias quantized with scale
// x_scale*w_scale and zero point 0.
func compileQLinearConv(n *graph.Node) (kernel, error) {
	attrs, err := readConvAttrs(n)
	if err != nil {
		return nil, err
	}
	var scratch convScratch
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if len(in) < 8 {
			return nil, fmt.Errorf("QLinearConv takes 8 or 9 inputs, got %d", len(in))
		}
		x, xs, xzp, w, ws, wzp, ys, yzp, b := in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], optionalInput(in, 8)
		if x == nil || w == nil || xs == nil || ws == nil {
			return nil, errors.New("x, x_scale, w and w_scale are required")
		}
		xsd, err := floatData("x_scale", xs)
		if err != nil {
			return nil, err
		}
		if len(xsd) != 1 {
			return nil, fmt.Errorf("x_scale must be a scalar, got shape %v", xs.Shape)
		}
		wsd, err := floatData("w_scale", ws)
		if err != nil {
			return nil, err
		}
		if wzp != nil && !sameShape(ws.Shape, wzp.Shape) {
			return nil, fmt.Errorf("w_zero_point shape %v differs from w_scale shape %v", wzp.Shape, ws.Shape)
		}
		ysd, yType, err := outputQuantization(ys, yzp)
		if err != nil {
			return nil, err
		}
		s, shape, acc, err := attrs.integerConv(e, "QLinearConv", x, xzp, w, wzp, &scratch)
		if err != nil {
			return nil, err
		}
		if b != nil {
			bd, ok := b.Data.([]int32)
			if !ok || b.Rank() != 1 || b.Shape[0] != s.outChannels {
				return nil, fmt.Errorf("B %s must be int32 of shape [%d]", b, s.outChannels)
			}
			addBias(acc, bd, s.outChannels, s.outVolume())
		}
		// Y is [N, M, ...]: a per-channel scale aligns with its second axis.
		wss := channelwise(ws.Shape, len(shape)-1, s.outChannels)
		if err := unidirectional(wss, shape); err != nil {
			return nil, fmt.Errorf("w_scale: %w", err)
		}
		y, err := e.output(0, yType, shape...)
		if err != nil {
			return nil, err
		}
		if err := requantizeTo(y, acc, shape, xsd, nil, wsd, wss, ysd, yzp); err != nil {
			return nil, err
		}
		return []*Tensor{y}, nil
	}, nil
}
