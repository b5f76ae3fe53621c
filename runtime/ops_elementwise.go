package runtime

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// Elementwise operators: arithmetic, activations, comparisons and logic,
// casts and the no-ops. Semantics per version follow docs/Operators.md and
// docs/Changelog.md of the ONNX repository.

var elementwiseOps = []opDef{
	// Before opset 7 binary operators broadcast only B onto A, as the
	// broadcast and axis attributes say.
	{opType: "Add", since: 1, compile: compileArith(opAdd, true)},
	{opType: "Add", since: 7, compile: compileArith(opAdd, false)},
	{opType: "Sub", since: 1, compile: compileArith(opSub, true)},
	{opType: "Sub", since: 7, compile: compileArith(opSub, false)},
	{opType: "Mul", since: 1, compile: compileArith(opMul, true)},
	{opType: "Mul", since: 7, compile: compileArith(opMul, false)},
	{opType: "Div", since: 1, compile: compileArith(opDiv, true)},
	{opType: "Div", since: 7, compile: compileArith(opDiv, false)},
	{opType: "Mod", since: 10, compile: compileMod},
	{opType: "BitwiseAnd", since: 18, compile: compileArith(opBitAnd, false)},
	{opType: "BitwiseOr", since: 18, compile: compileArith(opBitOr, false)},
	{opType: "BitwiseXor", since: 18, compile: compileArith(opBitXor, false)},
	{opType: "BitShift", since: 11, compile: compileBitShift},
	{opType: "Pow", since: 1, compile: compilePow(true)},
	{opType: "Pow", since: 7, compile: compilePow(false)},

	{opType: "Sum", since: 1, compile: compileVariadic(opAdd)},
	{opType: "Mean", since: 1, compile: compileVariadic(opMean)},
	{opType: "Min", since: 1, compile: compileVariadic(opMin)},
	{opType: "Max", since: 1, compile: compileVariadic(opMax)},

	{opType: "Abs", since: 1, compile: compileNumericUnary(absRows)},
	{opType: "Neg", since: 1, compile: compileNumericUnary(negRows)},
	{opType: "Sign", since: 9, compile: compileNumericUnary(signRows)},
	{opType: "Relu", since: 1, compile: compileNumericUnary(reluRows)},
	{opType: "BitwiseNot", since: 18, compile: compileBitwiseNot},

	{opType: "Sqrt", since: 1, compile: floatFunc(math.Sqrt)},
	{opType: "Exp", since: 1, compile: floatFunc(math.Exp)},
	{opType: "Log", since: 1, compile: floatFunc(math.Log)},
	{opType: "Reciprocal", since: 1, compile: floatFunc(func(x float64) float64 { return 1 / x })},
	{opType: "Floor", since: 1, compile: floatFunc(math.Floor)},
	{opType: "Ceil", since: 1, compile: floatFunc(math.Ceil)},
	{opType: "Round", since: 11, compile: floatFunc(math.RoundToEven)},
	{opType: "Erf", since: 9, compile: floatFunc(math.Erf)},
	{opType: "Sin", since: 7, compile: floatFunc(math.Sin)},
	{opType: "Cos", since: 7, compile: floatFunc(math.Cos)},
	{opType: "Tan", since: 7, compile: floatFunc(math.Tan)},
	{opType: "Asin", since: 7, compile: floatFunc(math.Asin)},
	{opType: "Acos", since: 7, compile: floatFunc(math.Acos)},
	{opType: "Atan", since: 7, compile: floatFunc(math.Atan)},
	{opType: "Sinh", since: 9, compile: floatFunc(math.Sinh)},
	{opType: "Cosh", since: 9, compile: floatFunc(math.Cosh)},
	{opType: "Asinh", since: 9, compile: floatFunc(math.Asinh)},
	{opType: "Acosh", since: 9, compile: floatFunc(math.Acosh)},
	{opType: "Atanh", since: 9, compile: floatFunc(math.Atanh)},

	{opType: "Sigmoid", since: 1, compile: compileFloatRows(sigmoidRow[float32], sigmoidRow[float64])},
	{opType: "Tanh", since: 1, compile: compileFloatRows(tanhRow[float32], tanhRow[float64])},
	{opType: "Softplus", since: 1, compile: floatFunc(softplus)},
	{opType: "Softsign", since: 1, compile: floatFunc(func(x float64) float64 { return x / (1 + math.Abs(x)) })},
	{opType: "Mish", since: 18, compile: floatFunc(func(x float64) float64 { return x * math.Tanh(softplus(x)) })},
	{opType: "HardSwish", since: 14, compile: floatFunc(func(x float64) float64 { return x * max(0, min(1, x/6+0.5)) })},
	{opType: "LeakyRelu", since: 1, compile: compileLeakyRelu},
	{opType: "Elu", since: 1, compile: compileElu},
	{opType: "Selu", since: 1, compile: compileSelu},
	{opType: "Celu", since: 12, compile: compileCelu},
	{opType: "ThresholdedRelu", since: 10, compile: compileThresholdedRelu},
	{opType: "HardSigmoid", since: 1, compile: compileHardSigmoid},
	{opType: "Shrink", since: 9, compile: compileShrink},
	{opType: "Gelu", since: 20, compile: compileGelu},
	{opType: "PRelu", since: 1, compile: compilePRelu},
	{opType: "Clip", since: 1, compile: compileClipAttrs},
	{opType: "Clip", since: 11, compile: compileClipInputs},

	{opType: "Equal", since: 1, compile: compileCompare(cmpEqual, true)},
	{opType: "Equal", since: 7, compile: compileCompare(cmpEqual, false)},
	{opType: "Less", since: 1, compile: compileCompare(cmpLess, true)},
	{opType: "Less", since: 7, compile: compileCompare(cmpLess, false)},
	{opType: "Greater", since: 1, compile: compileCompare(cmpGreater, true)},
	{opType: "Greater", since: 7, compile: compileCompare(cmpGreater, false)},
	{opType: "LessOrEqual", since: 12, compile: compileCompare(cmpLessOrEqual, false)},
	{opType: "GreaterOrEqual", since: 12, compile: compileCompare(cmpGreaterOrEqual, false)},
	{opType: "And", since: 1, compile: compileLogic(logicAnd, true)},
	{opType: "And", since: 7, compile: compileLogic(logicAnd, false)},
	{opType: "Or", since: 1, compile: compileLogic(logicOr, true)},
	{opType: "Or", since: 7, compile: compileLogic(logicOr, false)},
	{opType: "Xor", since: 1, compile: compileLogic(logicXor, true)},
	{opType: "Xor", since: 7, compile: compileLogic(logicXor, false)},
	{opType: "Not", since: 1, compile: compileNot},
	{opType: "Where", since: 9, compile: compileWhere},
	{opType: "IsNaN", since: 9, compile: compileIsNaN},
	{opType: "IsInf", since: 10, compile: compileIsInf},

	{opType: "Cast", since: 1, compile: compileCast},
	{opType: "CastLike", since: 15, compile: compileCastLike},
	{opType: "Identity", since: 1, compile: compileIdentity},
	{opType: "Dropout", since: 1, compile: compileDropout},
}

// Element type sets, as the kernels instantiate them.
type (
	floating  interface{ ~float32 | ~float64 }
	signedInt interface {
		~int8 | ~int16 | ~int32 | ~int64
	}
	unsignedInt interface {
		~uint8 | ~uint16 | ~uint32 | ~uint64
	}
	integer interface{ signedInt | unsignedInt }
	number  interface{ integer | floating }
)

// dataOf returns t's elements as []T, or an error when t holds another
// type.
func dataOf[T any](t *Tensor) ([]T, error) {
	d, ok := t.Data.([]T)
	if !ok {
		var zero T
		return nil, fmt.Errorf("%s holds %T, want []%T", t, t.Data, zero)
	}
	return d, nil
}

// inputs checks that the first n inputs are present.
func inputs(in []*Tensor, n int) error {
	if len(in) < n {
		return fmt.Errorf("got %d inputs, want at least %d", len(in), n)
	}
	for i := 0; i < n; i++ {
		if in[i] == nil {
			return fmt.Errorf("input %d is required", i)
		}
	}
	return nil
}

// sameType checks that every present input has the dtype of the first.
func sameType(in []*Tensor) error {
	for i, t := range in[1:] {
		if t != nil && t.DType != in[0].DType {
			return fmt.Errorf("input %d is %s, input 0 is %s: they must have the same type", i+1, dtypeName(t.DType), dtypeName(in[0].DType))
		}
	}
	return nil
}

func unsupportedType(dt onnx.TensorProto_DataType) error {
	return fmt.Errorf("the operator does not take %s", dtypeName(dt))
}

// roundToHalf rounds x to the nearest IEEE binary16 value, ties to even,
// and returns it as a float32 (which holds every half value exactly).
// Magnitudes that round above the largest half, 65504, become infinity.
func roundToHalf(x float64) float32 {
	a := math.Abs(x)
	switch {
	case a != a || a == math.Inf(1):
		return float32(x)
	case a >= 65520: // halfway between 65504 and the next binade's 65536
		return float32(math.Copysign(math.Inf(1), x))
	case a < 0x1p-14:
		// Subnormal halves are multiples of 2^-24; scaling by a power of
		// two is exact.
		return float32(math.RoundToEven(x*0x1p24) * 0x1p-24)
	}
	// Keep 10 of float64's 52 fraction bits, rounding the 42 dropped bits
	// to nearest even; a carry into the exponent is the right result.
	b := math.Float64bits(x)
	b += 1<<41 - 1 + (b>>42)&1
	b &^= 1<<42 - 1
	return float32(math.Float64frombits(b))
}

// roundToBFloat16 rounds x to the nearest bfloat16 value (the top half of
// a float32), ties to even, and returns it as a float32.
func roundToBFloat16(x float64) float32 {
	if x != x {
		// Keep the sign, make sure the NaN stays a NaN once its low
		// bits go.
		return math.Float32frombits((math.Float32bits(float32(x)) | 0x00400000) &^ 0xffff)
	}
	if a := math.Abs(x); a < 0x1p-126 || a > math.MaxFloat32 {
		// Subnormal bfloat16s are float32 subnormals; float32 conversion
		// of these tiny values is exact enough to round again. Beyond
		// float32's range the answer is infinity either way.
		b := math.Float32bits(float32(x))
		b += 0x7fff + (b>>16)&1
		return math.Float32frombits(b &^ 0xffff)
	}
	b := math.Float64bits(x)
	b += 1<<44 - 1 + (b>>45)&1
	b &^= 1<<45 - 1
	return float32(math.Float64frombits(b))
}

// narrow rounds data, computed in float32, to the narrow float type dt
// that holds it (float16, bfloat16, the float8 types); for other types it
// does nothing. Float8 results beyond the type's range become infinity or
// NaN, as Cast does without saturation.
func narrow(dt onnx.TensorProto_DataType, data []float32) {
	switch {
	case dt == onnx.TensorProto_FLOAT16:
		for i, v := range data {
			data[i] = roundToHalf(float64(v))
		}
	case dt == onnx.TensorProto_BFLOAT16:
		for i, v := range data {
			data[i] = roundToBFloat16(float64(v))
		}
	case dt.IsFloat8():
		roundToFloat8(dt, data, data, false)
	}
}

// roundToFloat8 rounds in to the float8 type dt into out; saturate is
// Cast's attribute of that name.
func roundToFloat8(dt onnx.TensorProto_DataType, out, in []float32, saturate bool) {
	out = out[:len(in)]
	for i, v := range in {
		out[i] = onnx.Float8frombits(dt, onnx.Float8bits(dt, v, saturate))
	}
}

// --- Binary arithmetic ---

type arithOp uint8

const (
	opAdd arithOp = iota
	opSub
	opMul
	opDiv
	opMean // Sum, then divide by the count: only for the variadic Mean
	opMin
	opMax
	opMod  // integer remainder with the sign of the divisor (Mod, fmod=0)
	opFmod // remainder with the sign of the dividend, C's fmod (Mod, fmod=1)
	opBitAnd
	opBitOr
	opBitXor
	opShiftLeft
	opShiftRight
)

// legacyBroadcast reads the broadcast and axis attributes of the binary
// operators before opset 7, which broadcast B onto A: it returns the shape
// B takes for an A of shape a.
func legacyBroadcast(n *graph.Node) func(a, b []int) ([]int, error) {
	enabled := n.AttrInt("broadcast", 0) != 0
	axisAttr := n.Attr("axis") != nil
	axis := n.AttrInt("axis", 0)
	return func(a, b []int) ([]int, error) {
		if !enabled {
			if !slices.Equal(a, b) {
				return nil, fmt.Errorf("shapes %v and %v differ and the broadcast attribute is not set", a, b)
			}
			return b, nil
		}
		shape := b
		if axisAttr && len(b) > 0 {
			ax := int(axis)
			if ax < 0 {
				ax += len(a)
			}
			if ax < 0 || ax+len(b) > len(a) {
				return nil, fmt.Errorf("axis %d does not place shape %v within %v", axis, b, a)
			}
			shape = make([]int, len(a)-ax)
			copy(shape, b)
			for i := len(b); i < len(shape); i++ {
				shape[i] = 1
			}
		}
		if err := unidirectional(shape, a); err != nil {
			return nil, err
		}
		return shape, nil
	}
}

func compileArith(op arithOp, legacy bool) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		var align func(a, b []int) ([]int, error)
		if legacy {
			align = legacyBroadcast(n)
		}
		return func(e *env, in []*Tensor) ([]*Tensor, error) {
			if err := inputs(in, 2); err != nil {
				return nil, err
			}
			out, err := arith(e, op, in[0], in[1], align)
			if err != nil {
				return nil, err
			}
			return []*Tensor{out}, nil
		}, nil
	}
}

func compileMod(n *graph.Node) (kernel, error) {
	op := opMod
	switch f := n.AttrInt("fmod", 0); f {
	case 0:
	case 1:
		op = opFmod
	default:
		return nil, fmt.Errorf("fmod is %d, want 0 or 1", f)
	}
	return compileArith(op, false)(n)
}

func compileBitShift(n *graph.Node) (kernel, error) {
	switch dir := n.AttrString("direction", ""); dir {
	case "LEFT":
		return compileArith(opShiftLeft, false)(n)
	case "RIGHT":
		return compileArith(opShiftRight, false)(n)
	default:
		return nil, fmt.Errorf("direction is %q, want LEFT or RIGHT", dir)
	}
}

// arith computes a op b with broadcasting into output 0. align, when not
// nil, gives the legacy (opset < 7) shape of b.
func arith(e *env, op arithOp, a, b *Tensor, align func(a, b []int) ([]int, error)) (*Tensor, error) {
	if a.DType != b.DType {
		return nil, fmt.Errorf("input types %s and %s differ", dtypeName(a.DType), dtypeName(b.DType))
	}
	bshape := b.Shape
	if align != nil {
		var err error
		if bshape, err = align(a.Shape, b.Shape); err != nil {
			return nil, err
		}
	}
	oshape, err := broadcastShapes(a.Shape, bshape)
	if err != nil {
		return nil, err
	}
	out, err := e.output(0, a.DType, oshape...)
	if err != nil {
		return nil, err
	}
	switch a.Data.(type) {
	case []float32:
		err = arithFloat[float32](op, out, a, b, bshape)
		narrow(out.DType, out.Data.([]float32))
	case []float64:
		err = arithFloat[float64](op, out, a, b, bshape)
	case []int64:
		err = arithInt[int64](op, out, a, b, bshape)
	case []int32:
		err = arithInt[int32](op, out, a, b, bshape)
	case []int16:
		err = arithInt[int16](op, out, a, b, bshape)
	case []int8:
		err = arithInt[int8](op, out, a, b, bshape)
	case []uint64:
		err = arithInt[uint64](op, out, a, b, bshape)
	case []uint32:
		err = arithInt[uint32](op, out, a, b, bshape)
	case []uint16:
		err = arithInt[uint16](op, out, a, b, bshape)
	case []uint8:
		err = arithInt[uint8](op, out, a, b, bshape)
	default:
		err = unsupportedType(a.DType)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func arithFloat[T floating](op arithOp, out, a, b *Tensor, bshape []int) error {
	var row func(o, x, y []T)
	switch op {
	case opFmod:
		row = func(o, x, y []T) {
			mapBinary(o, x, y, func(p, q T) T { return T(math.Mod(float64(p), float64(q))) })
		}
	case opMod:
		return errors.New("Mod of floating-point numbers needs fmod=1")
	default:
		row = numberRow[T](op)
	}
	if row == nil {
		return unsupportedType(a.DType)
	}
	return binaryRows(out, a, b, bshape, row)
}

func arithInt[T integer](op arithOp, out, a, b *Tensor, bshape []int) error {
	var row func(o, x, y []T)
	switch op {
	case opDiv, opMod, opFmod:
		// Go panics on an integer division by zero, where ONNX leaves the
		// result undefined: refuse it.
		y, err := dataOf[T](b)
		if err != nil {
			return err
		}
		if slices.Contains(y, 0) {
			return errors.New("integer division by zero")
		}
		switch op {
		case opMod:
			row = func(o, x, y []T) {
				mapBinary(o, x, y, func(p, q T) T {
					r := p % q
					if r != 0 && (r < 0) != (q < 0) {
						r += q
					}
					return r
				})
			}
		case opFmod:
			row = func(o, x, y []T) { mapBinary(o, x, y, func(p, q T) T { return p % q }) }
		default:
			row = numberRow[T](op)
		}
	case opBitAnd:
		row = func(o, x, y []T) { mapBinary(o, x, y, func(p, q T) T { return p & q }) }
	case opBitOr:
		row = func(o, x, y []T) { mapBinary(o, x, y, func(p, q T) T { return p | q }) }
	case opBitXor:
		row = func(o, x, y []T) { mapBinary(o, x, y, func(p, q T) T { return p ^ q }) }
	case opShiftLeft, opShiftRight:
		if a.DType != onnx.TensorProto_UINT8 && a.DType != onnx.TensorProto_UINT16 &&
			a.DType != onnx.TensorProto_UINT32 && a.DType != onnx.TensorProto_UINT64 {
			return unsupportedType(a.DType)
		}
		if op == opShiftLeft {
			row = func(o, x, y []T) { mapBinary(o, x, y, func(p, q T) T { return p << q }) }
		} else {
			row = func(o, x, y []T) { mapBinary(o, x, y, func(p, q T) T { return p >> q }) }
		}
	default:
		row = numberRow[T](op)
	}
	if row == nil {
		return unsupportedType(a.DType)
	}
	return binaryRows(out, a, b, bshape, row)
}

// binaryRows runs row over the broadcast of a and b (b taken with bshape)
// into out.
func binaryRows[T any](out, a, b *Tensor, bshape []int, row func(o, x, y []T)) error {
	o, err := dataOf[T](out)
	if err != nil {
		return err
	}
	x, err := dataOf[T](a)
	if err != nil {
		return err
	}
	y, err := dataOf[T](b)
	if err != nil {
		return err
	}
	broadcastBinary(o, out.Shape, x, a.Shape, y, bshape, row)
	return nil
}

// numberRow returns the row function of the operators every numeric type
// has, or nil.
func numberRow[T number](op arithOp) func(o, x, y []T) {
	switch op {
	case opAdd, opMean:
		return addRow[T]
	case opSub:
		return subRow[T]
	case opMul:
		return mulRow[T]
	case opDiv:
		return divRow[T]
	case opMin:
		return func(o, x, y []T) { mapBinary(o, x, y, minNaN[T]) }
	case opMax:
		return func(o, x, y []T) { mapBinary(o, x, y, maxNaN[T]) }
	}
	return nil
}

// minNaN and maxNaN propagate NaN, as numpy's minimum and maximum do.
func minNaN[T number](p, q T) T {
	if p < q || p != p {
		return p
	}
	return q
}

func maxNaN[T number](p, q T) T {
	if p > q || p != p {
		return p
	}
	return q
}

// The four arithmetic rows are written out: as mapBinary's indexed loop
// they run at half the speed.

func addRow[T number](o, x, y []T) {
	switch {
	case len(x) == len(o) && len(y) == len(o):
		for i := range o {
			o[i] = x[i] + y[i]
		}
	case len(x) == len(o):
		v := y[0]
		for i := range o {
			o[i] = x[i] + v
		}
	default:
		v := x[0]
		for i := range o {
			o[i] = v + y[i]
		}
	}
}

func subRow[T number](o, x, y []T) {
	switch {
	case len(x) == len(o) && len(y) == len(o):
		for i := range o {
			o[i] = x[i] - y[i]
		}
	case len(x) == len(o):
		v := y[0]
		for i := range o {
			o[i] = x[i] - v
		}
	default:
		v := x[0]
		for i := range o {
			o[i] = v - y[i]
		}
	}
}

func mulRow[T number](o, x, y []T) {
	switch {
	case len(x) == len(o) && len(y) == len(o):
		for i := range o {
			o[i] = x[i] * y[i]
		}
	case len(x) == len(o):
		v := y[0]
		for i := range o {
			o[i] = x[i] * v
		}
	default:
		v := x[0]
		for i := range o {
			o[i] = v * y[i]
		}
	}
}

// divRow divides; integer callers have checked for zero divisors. Go's
// integer division truncates toward zero, as C's does.
func divRow[T number](o, x, y []T) {
	switch {
	case len(x) == len(o) && len(y) == len(o):
		for i := range o {
			o[i] = x[i] / y[i]
		}
	case len(x) == len(o):
		v := y[0]
		for i := range o {
			o[i] = x[i] / v
		}
	default:
		v := x[0]
		for i := range o {
			o[i] = v / y[i]
		}
	}
}

// --- Variadic Sum, Mean, Min, Max ---

func compileVariadic(op arithOp) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		return func(e *env, in []*Tensor) ([]*Tensor, error) {
			if err := inputs(in, 1); err != nil {
				return nil, err
			}
			if err := inputs(in, len(in)); err != nil {
				return nil, err
			}
			if err := sameType(in); err != nil {
				return nil, err
			}
			shapes := make([][]int, len(in))
			for i, t := range in {
				shapes[i] = t.Shape
			}
			oshape, err := broadcastShapes(shapes...)
			if err != nil {
				return nil, err
			}
			out, err := e.output(0, in[0].DType, oshape...)
			if err != nil {
				return nil, err
			}
			switch in[0].Data.(type) {
			case []float32:
				err = variadic[float32](op, out, in)
				narrow(out.DType, out.Data.([]float32))
			case []float64:
				err = variadic[float64](op, out, in)
			case []int64:
				err = variadic[int64](op, out, in)
			case []int32:
				err = variadic[int32](op, out, in)
			case []int16:
				err = variadic[int16](op, out, in)
			case []int8:
				err = variadic[int8](op, out, in)
			case []uint64:
				err = variadic[uint64](op, out, in)
			case []uint32:
				err = variadic[uint32](op, out, in)
			case []uint16:
				err = variadic[uint16](op, out, in)
			case []uint8:
				err = variadic[uint8](op, out, in)
			default:
				err = unsupportedType(in[0].DType)
			}
			if err != nil {
				return nil, err
			}
			return []*Tensor{out}, nil
		}, nil
	}
}

// variadic folds the inputs into out, which has their broadcast shape.
func variadic[T number](op arithOp, out *Tensor, in []*Tensor) error {
	o, err := dataOf[T](out)
	if err != nil {
		return err
	}
	first, err := dataOf[T](in[0])
	if err != nil {
		return err
	}
	expandInto(o, out.Shape, first, in[0].Shape)
	row := numberRow[T](op)
	for _, t := range in[1:] {
		if err := binaryRows(out, out, t, t.Shape, row); err != nil {
			return err
		}
	}
	if op == opMean {
		n := T(len(in))
		for i := range o {
			o[i] /= n
		}
	}
	return nil
}

// --- Pow ---

func compilePow(legacy bool) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		var align func(a, b []int) ([]int, error)
		if legacy {
			align = legacyBroadcast(n)
		}
		return func(e *env, in []*Tensor) ([]*Tensor, error) {
			if err := inputs(in, 2); err != nil {
				return nil, err
			}
			out, err := pow(e, in[0], in[1], align)
			if err != nil {
				return nil, err
			}
			return []*Tensor{out}, nil
		}, nil
	}
}

// pow raises a to b. The result has a's type; b may have any numeric type
// (Pow-12 on). Integer powers of integers are exact (wrapping like
// repeated multiplication); anything else goes through float64, truncated
// toward zero for an integer base.
func pow(e *env, a, b *Tensor, align func(a, b []int) ([]int, error)) (*Tensor, error) {
	bshape := b.Shape
	if align != nil {
		var err error
		if bshape, err = align(a.Shape, b.Shape); err != nil {
			return nil, err
		}
	}
	oshape, err := broadcastShapes(a.Shape, bshape)
	if err != nil {
		return nil, err
	}
	out, err := e.output(0, a.DType, oshape...)
	if err != nil {
		return nil, err
	}
	exp := numbersAs[float64](b)
	if exp == nil {
		return nil, fmt.Errorf("exponent: %w", unsupportedType(b.DType))
	}
	intExp := isIntegerType(b.DType)
	switch x := a.Data.(type) {
	case []float32:
		powFloat(out.Data.([]float32), oshape, x, a.Shape, exp, bshape)
		narrow(out.DType, out.Data.([]float32))
	case []float64:
		powFloat(out.Data.([]float64), oshape, x, a.Shape, exp, bshape)
	case []int64:
		powInt(out.Data.([]int64), oshape, x, a.Shape, b, exp, bshape, intExp)
	case []int32:
		powInt(out.Data.([]int32), oshape, x, a.Shape, b, exp, bshape, intExp)
	default:
		return nil, unsupportedType(a.DType)
	}
	return out, nil
}

func powFloat[T floating](o []T, oshape []int, x []T, xshape []int, exp []float64, eshape []int) {
	if len(exp) == 1 {
		// Squares (from x**2 in PyTorch) and square roots are common
		// enough to skip math.Pow for.
		switch exp[0] {
		case 2:
			expandInto(o, oshape, x, xshape)
			for i, v := range o {
				o[i] = v * v
			}
			return
		case 0.5:
			expandInto(o, oshape, x, xshape)
			for i, v := range o {
				o[i] = T(math.Sqrt(float64(v)))
			}
			return
		}
	}
	broadcastBinary(o, oshape, x, xshape, exp, eshape, func(o, x []T, y []float64) {
		mapBinary(o, x, y, func(p T, q float64) T { return T(math.Pow(float64(p), q)) })
	})
}

func powInt[T int32 | int64](o []T, oshape []int, x []T, xshape []int, b *Tensor, exp []float64, eshape []int, intExp bool) {
	if !intExp {
		broadcastBinary(o, oshape, x, xshape, exp, eshape, func(o, x []T, y []float64) {
			mapBinary(o, x, y, func(p T, q float64) T { return T(math.Pow(float64(p), q)) })
		})
		return
	}
	iexp := numbersAs[int64](b)
	broadcastBinary(o, oshape, x, xshape, iexp, eshape, func(o, x []T, y []int64) {
		mapBinary(o, x, y, intPow[T])
	})
}

// intPow is base**e by squaring for e >= 0. A negative exponent gives
// 1/base**|e| truncated: 0 except for bases 1 and -1.
func intPow[T int32 | int64](base T, e int64) T {
	if e < 0 {
		switch base {
		case 1:
			return 1
		case -1:
			if e%2 == 0 {
				return 1
			}
			return -1
		}
		return 0
	}
	r := T(1)
	for e > 0 {
		if e&1 != 0 {
			r *= base
		}
		base *= base
		e >>= 1
	}
	return r
}

func isIntegerType(dt onnx.TensorProto_DataType) bool {
	switch dt {
	case onnx.TensorProto_INT8, onnx.TensorProto_INT16, onnx.TensorProto_INT32, onnx.TensorProto_INT64,
		onnx.TensorProto_UINT8, onnx.TensorProto_UINT16, onnx.TensorProto_UINT32, onnx.TensorProto_UINT64:
		return true
	}
	return false
}

// numbersAs converts a numeric tensor's elements to T with Go's
// conversion rules, or returns nil for a non-numeric tensor.
func numbersAs[T number](t *Tensor) []T {
	switch d := t.Data.(type) {
	case []float32:
		return convertNumbers[float32, T](d)
	case []float64:
		return convertNumbers[float64, T](d)
	case []int64:
		return convertNumbers[int64, T](d)
	case []int32:
		return convertNumbers[int32, T](d)
	case []int16:
		return convertNumbers[int16, T](d)
	case []int8:
		return convertNumbers[int8, T](d)
	case []uint64:
		return convertNumbers[uint64, T](d)
	case []uint32:
		return convertNumbers[uint32, T](d)
	case []uint16:
		return convertNumbers[uint16, T](d)
	case []uint8:
		return convertNumbers[uint8, T](d)
	}
	return nil
}

func convertNumbers[F, T number](in []F) []T {
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = T(v)
	}
	return out
}

// --- Unary operators ---

// unaryRows holds one instantiation of a row function per element type;
// nil entries are types the operator does not take.
type unaryRows struct {
	f32 func(o, x []float32)
	f64 func(o, x []float64)
	i64 func(o, x []int64)
	i32 func(o, x []int32)
	i16 func(o, x []int16)
	i8  func(o, x []int8)
	u64 func(o, x []uint64)
	u32 func(o, x []uint32)
	u16 func(o, x []uint16)
	u8  func(o, x []uint8)
}

// runUnary applies rows to x into output 0 of the same type and shape.
func runUnary(e *env, rows unaryRows, x *Tensor) (*Tensor, error) {
	out, err := e.output(0, x.DType, x.Shape...)
	if err != nil {
		return nil, err
	}
	ok := false
	switch d := x.Data.(type) {
	case []float32:
		if ok = rows.f32 != nil; ok {
			o := out.Data.([]float32)
			rows.f32(o, d)
			narrow(x.DType, o)
		}
	case []float64:
		if ok = rows.f64 != nil; ok {
			rows.f64(out.Data.([]float64), d)
		}
	case []int64:
		if ok = rows.i64 != nil; ok {
			rows.i64(out.Data.([]int64), d)
		}
	case []int32:
		if ok = rows.i32 != nil; ok {
			rows.i32(out.Data.([]int32), d)
		}
	case []int16:
		if ok = rows.i16 != nil; ok {
			rows.i16(out.Data.([]int16), d)
		}
	case []int8:
		if ok = rows.i8 != nil; ok {
			rows.i8(out.Data.([]int8), d)
		}
	case []uint64:
		if ok = rows.u64 != nil; ok {
			rows.u64(out.Data.([]uint64), d)
		}
	case []uint32:
		if ok = rows.u32 != nil; ok {
			rows.u32(out.Data.([]uint32), d)
		}
	case []uint16:
		if ok = rows.u16 != nil; ok {
			rows.u16(out.Data.([]uint16), d)
		}
	case []uint8:
		if ok = rows.u8 != nil; ok {
			rows.u8(out.Data.([]uint8), d)
		}
	}
	if !ok {
		return nil, unsupportedType(x.DType)
	}
	return out, nil
}

func unaryKernel(rows unaryRows) kernel {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if err := inputs(in, 1); err != nil {
			return nil, err
		}
		out, err := runUnary(e, rows, in[0])
		if err != nil {
			return nil, err
		}
		return []*Tensor{out}, nil
	}
}

func compileNumericUnary(rows unaryRows) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) { return unaryKernel(rows), nil }
}

func compileFloatRows(f32 func(o, x []float32), f64 func(o, x []float64)) func(n *graph.Node) (kernel, error) {
	return compileNumericUnary(unaryRows{f32: f32, f64: f64})
}

// floatFunc compiles an operator on floating-point tensors that applies f
// to each element. float32 elements are computed in float64 and rounded.
func floatFunc(f func(float64) float64) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) { return unaryKernel(floatRows(f)), nil }
}

func floatRows(f func(float64) float64) unaryRows {
	return unaryRows{f32: func(o, x []float32) { mapVia64(o, x, f) }, f64: func(o, x []float64) { mapVia64(o, x, f) }}
}

// numericRows is floatRows for operators that also take integers, which
// go through float64 and back.
func numericRows(f func(float64) float64) unaryRows {
	return unaryRows{
		f32: func(o, x []float32) { mapVia64(o, x, f) }, f64: func(o, x []float64) { mapVia64(o, x, f) },
		i64: func(o, x []int64) { mapVia64(o, x, f) }, i32: func(o, x []int32) { mapVia64(o, x, f) },
		i16: func(o, x []int16) { mapVia64(o, x, f) }, i8: func(o, x []int8) { mapVia64(o, x, f) },
		u64: func(o, x []uint64) { mapVia64(o, x, f) }, u32: func(o, x []uint32) { mapVia64(o, x, f) },
		u16: func(o, x []uint16) { mapVia64(o, x, f) }, u8: func(o, x []uint8) { mapVia64(o, x, f) },
	}
}

func mapVia64[T number](o, x []T, f func(float64) float64) {
	o = o[:len(x)]
	for i, v := range x {
		o[i] = T(f(float64(v)))
	}
}

func numericUnaryRows(f32 func(o, x []float32), f64 func(o, x []float64), i64 func(o, x []int64), i32 func(o, x []int32),
	i16 func(o, x []int16), i8 func(o, x []int8), u64 func(o, x []uint64), u32 func(o, x []uint32),
	u16 func(o, x []uint16), u8 func(o, x []uint8)) unaryRows {
	return unaryRows{f32, f64, i64, i32, i16, i8, u64, u32, u16, u8}
}

var (
	absRows = numericUnaryRows(absRow[float32], absRow[float64], absRow[int64], absRow[int32], absRow[int16], absRow[int8],
		absRow[uint64], absRow[uint32], absRow[uint16], absRow[uint8])
	negRows = unaryRows{f32: negRow[float32], f64: negRow[float64], i64: negRow[int64], i32: negRow[int32],
		i16: negRow[int16], i8: negRow[int8]}
	signRows = numericUnaryRows(signRow[float32], signRow[float64], signRow[int64], signRow[int32], signRow[int16],
		signRow[int8], signRow[uint64], signRow[uint32], signRow[uint16], signRow[uint8])
	reluRows = unaryRows{f32: reluRow[float32], f64: reluRow[float64], i64: reluRow[int64], i32: reluRow[int32],
		i16: reluRow[int16], i8: reluRow[int8]}
)

func absRow[T number](o, x []T) {
	o = o[:len(x)]
	for i, v := range x {
		if v <= 0 {
			v = 0 - v // also turns -0 into +0
		}
		o[i] = v
	}
}

func negRow[T number](o, x []T) {
	o = o[:len(x)]
	for i, v := range x {
		o[i] = -v
	}
}

func signRow[T number](o, x []T) {
	o = o[:len(x)]
	one := T(1)
	for i, v := range x {
		switch {
		case v > 0:
			v = one
		case v < 0:
			v = -one
		}
		o[i] = v // zeros and NaN stay
	}
}

// reluRow compiles without branches on the sign, which activations
// take at random (measured: 2.1 against 1.3 ns an element on random
// float32 signs), and runs vector instructions on float32 where it can.
// max keeps NaN.
func reluRow[T number](o, x []T) {
	if xf, ok := any(x).([]float32); ok && reluFloat32(any(o).([]float32), xf) {
		return
	}
	o = o[:len(x)]
	for i, v := range x {
		o[i] = max(v, 0)
	}
}

func sigmoidRow[T floating](o, x []T) {
	o = o[:len(x)]
	if xf, ok := any(x).([]float32); ok {
		of := any(o).([]float32)
		for i, v := range xf {
			// exp of a non-positive argument never overflows.
			if v >= 0 {
				of[i] = 1 / (1 + expFloat32(-v))
			} else {
				z := expFloat32(v)
				of[i] = z / (1 + z)
			}
		}
		return
	}
	for i, v := range x {
		if v >= 0 {
			o[i] = T(1 / (1 + math.Exp(-float64(v))))
		} else {
			z := math.Exp(float64(v))
			o[i] = T(z / (1 + z))
		}
	}
}

func tanhRow[T floating](o, x []T) {
	o = o[:len(x)]
	for i, v := range x {
		o[i] = T(math.Tanh(float64(v)))
	}
}

// softplus is log(1+exp(x)), without overflow for large x.
func softplus(x float64) float64 {
	if x > 0 {
		return x + math.Log1p(math.Exp(-x))
	}
	return math.Log1p(math.Exp(x))
}

func compileBitwiseNot(n *graph.Node) (kernel, error) {
	return unaryKernel(unaryRows{
		i64: notRow[int64], i32: notRow[int32], i16: notRow[int16], i8: notRow[int8],
		u64: notRow[uint64], u32: notRow[uint32], u16: notRow[uint16], u8: notRow[uint8],
	}), nil
}

func notRow[T integer](o, x []T) {
	o = o[:len(x)]
	for i, v := range x {
		o[i] = ^v
	}
}

// --- Activations with attributes ---

func compileLeakyRelu(n *graph.Node) (kernel, error) {
	alpha := float64(n.AttrFloat("alpha", 0.01))
	return unaryKernel(floatRows(func(x float64) float64 {
		if x < 0 {
			return alpha * x
		}
		return x
	})), nil
}

func compileElu(n *graph.Node) (kernel, error) {
	alpha := float64(n.AttrFloat("alpha", 1))
	return unaryKernel(floatRows(func(x float64) float64 {
		if x < 0 {
			return alpha * math.Expm1(x)
		}
		return x
	})), nil
}

func compileSelu(n *graph.Node) (kernel, error) {
	alpha := float64(n.AttrFloat("alpha", 1.67326319217681884765625))
	gamma := float64(n.AttrFloat("gamma", 1.05070102214813232421875))
	return unaryKernel(floatRows(func(x float64) float64 {
		if x <= 0 {
			return gamma * alpha * math.Expm1(x)
		}
		return gamma * x
	})), nil
}

func compileCelu(n *graph.Node) (kernel, error) {
	alpha := float64(n.AttrFloat("alpha", 1))
	if alpha == 0 {
		return nil, errors.New("alpha must not be 0")
	}
	return unaryKernel(floatRows(func(x float64) float64 {
		return max(0, x) + min(0, alpha*math.Expm1(x/alpha))
	})), nil
}

func compileThresholdedRelu(n *graph.Node) (kernel, error) {
	alpha := float64(n.AttrFloat("alpha", 1))
	return unaryKernel(floatRows(func(x float64) float64 {
		if x > alpha {
			return x
		}
		return 0
	})), nil
}

func compileHardSigmoid(n *graph.Node) (kernel, error) {
	alpha := float64(n.AttrFloat("alpha", 0.2))
	beta := float64(n.AttrFloat("beta", 0.5))
	return unaryKernel(floatRows(func(x float64) float64 { return max(0, min(1, alpha*x+beta)) })), nil
}

func compileShrink(n *graph.Node) (kernel, error) {
	lambd := float64(n.AttrFloat("lambd", 0.5))
	bias := float64(n.AttrFloat("bias", 0))
	return unaryKernel(numericRows(func(x float64) float64 {
		switch {
		case x < -lambd:
			return x + bias
		case x > lambd:
			return x - bias
		}
		return 0
	})), nil
}

func compileGelu(n *graph.Node) (kernel, error) {
	switch a := n.AttrString("approximate", "none"); a {
	case "none":
		return unaryKernel(floatRows(func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) })), nil
	case "tanh":
		c := math.Sqrt(2 / math.Pi)
		return unaryKernel(floatRows(func(x float64) float64 {
			return 0.5 * x * (1 + math.Tanh(c*(x+0.044715*x*x*x)))
		})), nil
	default:
		return nil, fmt.Errorf("approximate is %q, want none or tanh", a)
	}
}

// PRelu: from opset 7 the slope broadcasts onto X unidirectionally.
// Before, it had one element or X's channel count (dimension 1), as
// Caffe2 took it and the PyTorch exports of that time give it.
func compilePRelu(n *graph.Node) (kernel, error) {
	perChannel := n.Opset() < 7
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if err := inputs(in, 2); err != nil {
			return nil, err
		}
		x, slope := in[0], in[1]
		if err := sameType(in[:2]); err != nil {
			return nil, err
		}
		if perChannel && slope.Rank() == 1 && x.Rank() >= 2 && slope.Shape[0] == x.Shape[1] && slope.Shape[0] != 1 {
			shape := make([]int, x.Rank()-1)
			fill(shape, 1)
			shape[0] = slope.Shape[0]
			slope = &Tensor{DType: slope.DType, Shape: shape, Data: slope.Data}
		}
		if err := unidirectional(slope.Shape, x.Shape); err != nil {
			return nil, fmt.Errorf("slope: %w", err)
		}
		out, err := e.output(0, x.DType, x.Shape...)
		if err != nil {
			return nil, err
		}
		switch x.Data.(type) {
		case []float32:
			err = binaryRows(out, x, slope, slope.Shape, preluRow[float32])
			narrow(out.DType, out.Data.([]float32))
		case []float64:
			err = binaryRows(out, x, slope, slope.Shape, preluRow[float64])
		case []int64:
			err = binaryRows(out, x, slope, slope.Shape, preluRow[int64])
		case []int32:
			err = binaryRows(out, x, slope, slope.Shape, preluRow[int32])
		case []uint64, []uint32:
			// Unsigned inputs are never negative.
			out = x
		default:
			err = unsupportedType(x.DType)
		}
		if err != nil {
			return nil, err
		}
		return []*Tensor{out}, nil
	}, nil
}

func preluRow[T number](o, x, s []T) {
	mapBinary(o, x, s, func(v, a T) T {
		if v < 0 {
			return a * v
		}
		return v
	})
}

// --- Clip ---

// compileClipAttrs is Clip before opset 11, with float min and max
// attributes whose defaults are float32's lowest and highest values.
func compileClipAttrs(n *graph.Node) (kernel, error) {
	lo := &Tensor{DType: onnx.TensorProto_FLOAT, Data: []float32{n.AttrFloat("min", -math.MaxFloat32)}}
	hi := &Tensor{DType: onnx.TensorProto_FLOAT, Data: []float32{n.AttrFloat("max", math.MaxFloat32)}}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if err := inputs(in, 1); err != nil {
			return nil, err
		}
		out, err := clip(e, in[0], lo, hi)
		if err != nil {
			return nil, err
		}
		return []*Tensor{out}, nil
	}, nil
}

// compileClipInputs is Clip from opset 11, with optional scalar min and
// max inputs of the input's type.
func compileClipInputs(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if err := inputs(in, 1); err != nil {
			return nil, err
		}
		var bounds [2]*Tensor
		for k := range bounds {
			if len(in) <= k+1 || in[k+1] == nil {
				continue
			}
			b := in[k+1]
			if b.DType != in[0].DType {
				return nil, fmt.Errorf("input %d is %s, the input is %s", k+1, dtypeName(b.DType), dtypeName(in[0].DType))
			}
			if b.Len() != 1 {
				return nil, fmt.Errorf("input %d must be a scalar, has shape %v", k+1, b.Shape)
			}
			bounds[k] = b
		}
		out, err := clip(e, in[0], bounds[0], bounds[1])
		if err != nil {
			return nil, err
		}
		return []*Tensor{out}, nil
	}, nil
}

// clip limits x to [lo, hi], where each bound is a one-element tensor or
// nil for none. When lo > hi every element becomes hi, as Clip specifies.
func clip(e *env, x, lo, hi *Tensor) (*Tensor, error) {
	out, err := e.output(0, x.DType, x.Shape...)
	if err != nil {
		return nil, err
	}
	switch x.Data.(type) {
	case []float32:
		err = clipTyped(out, x, lo, hi, float32(math.Inf(-1)), float32(math.Inf(1)))
	case []float64:
		err = clipTyped(out, x, lo, hi, math.Inf(-1), math.Inf(1))
	case []int64:
		err = clipTyped[int64](out, x, lo, hi, math.MinInt64, math.MaxInt64)
	case []int32:
		err = clipTyped[int32](out, x, lo, hi, math.MinInt32, math.MaxInt32)
	case []int16:
		err = clipTyped[int16](out, x, lo, hi, math.MinInt16, math.MaxInt16)
	case []int8:
		err = clipTyped[int8](out, x, lo, hi, math.MinInt8, math.MaxInt8)
	case []uint64:
		err = clipTyped[uint64](out, x, lo, hi, 0, math.MaxUint64)
	case []uint32:
		err = clipTyped[uint32](out, x, lo, hi, 0, math.MaxUint32)
	case []uint16:
		err = clipTyped[uint16](out, x, lo, hi, 0, math.MaxUint16)
	case []uint8:
		err = clipTyped[uint8](out, x, lo, hi, 0, math.MaxUint8)
	default:
		err = unsupportedType(x.DType)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func clipTyped[T number](out, x, lo, hi *Tensor, l, h T) error {
	if lo != nil {
		v := numbersAs[T](lo)
		if len(v) != 1 {
			return fmt.Errorf("min must be one number, got %s", lo)
		}
		l = v[0]
	}
	if hi != nil {
		v := numbersAs[T](hi)
		if len(v) != 1 {
			return fmt.Errorf("max must be one number, got %s", hi)
		}
		h = v[0]
	}
	o, err := dataOf[T](out)
	if err != nil {
		return err
	}
	d, err := dataOf[T](x)
	if err != nil {
		return err
	}
	o = o[:len(d)]
	for i, v := range d {
		if v < l {
			v = l
		}
		if v > h {
			v = h
		}
		o[i] = v
	}
	return nil
}

// --- Comparisons and logic ---

type cmpOp uint8

const (
	cmpEqual cmpOp = iota
	cmpLess
	cmpGreater
	cmpLessOrEqual
	cmpGreaterOrEqual
)

func compileCompare(op cmpOp, legacy bool) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		var align func(a, b []int) ([]int, error)
		if legacy {
			align = legacyBroadcast(n)
		}
		return func(e *env, in []*Tensor) ([]*Tensor, error) {
			if err := inputs(in, 2); err != nil {
				return nil, err
			}
			if err := sameType(in[:2]); err != nil {
				return nil, err
			}
			a, b := in[0], in[1]
			out, bshape, err := boolOutput(e, a, b, align)
			if err != nil {
				return nil, err
			}
			switch a.Data.(type) {
			case []float32:
				err = compareRows[float32](op, out, a, b, bshape)
			case []float64:
				err = compareRows[float64](op, out, a, b, bshape)
			case []int64:
				err = compareRows[int64](op, out, a, b, bshape)
			case []int32:
				err = compareRows[int32](op, out, a, b, bshape)
			case []int16:
				err = compareRows[int16](op, out, a, b, bshape)
			case []int8:
				err = compareRows[int8](op, out, a, b, bshape)
			case []uint64:
				err = compareRows[uint64](op, out, a, b, bshape)
			case []uint32:
				err = compareRows[uint32](op, out, a, b, bshape)
			case []uint16:
				err = compareRows[uint16](op, out, a, b, bshape)
			case []uint8:
				err = compareRows[uint8](op, out, a, b, bshape)
			case []string:
				err = compareRows[string](op, out, a, b, bshape)
			case []bool:
				if op != cmpEqual {
					return nil, unsupportedType(a.DType)
				}
				err = logicRows(logicEqual, out, a, b, bshape)
			default:
				err = unsupportedType(a.DType)
			}
			if err != nil {
				return nil, err
			}
			return []*Tensor{out}, nil
		}, nil
	}
}

// boolOutput makes the bool output 0 for a binary operator on a and b,
// with align giving b's legacy shape when not nil.
func boolOutput(e *env, a, b *Tensor, align func(a, b []int) ([]int, error)) (*Tensor, []int, error) {
	bshape := b.Shape
	if align != nil {
		var err error
		if bshape, err = align(a.Shape, b.Shape); err != nil {
			return nil, nil, err
		}
	}
	oshape, err := broadcastShapes(a.Shape, bshape)
	if err != nil {
		return nil, nil, err
	}
	out, err := e.output(0, onnx.TensorProto_BOOL, oshape...)
	return out, bshape, err
}

func compareRows[T cmp.Ordered](op cmpOp, out, a, b *Tensor, bshape []int) error {
	o, err := dataOf[bool](out)
	if err != nil {
		return err
	}
	x, err := dataOf[T](a)
	if err != nil {
		return err
	}
	y, err := dataOf[T](b)
	if err != nil {
		return err
	}
	var row func(o []bool, x, y []T)
	switch op {
	case cmpEqual:
		row = func(o []bool, x, y []T) { mapBinary(o, x, y, func(p, q T) bool { return p == q }) }
	case cmpLess:
		row = func(o []bool, x, y []T) { mapBinary(o, x, y, func(p, q T) bool { return p < q }) }
	case cmpGreater:
		row = func(o []bool, x, y []T) { mapBinary(o, x, y, func(p, q T) bool { return p > q }) }
	case cmpLessOrEqual:
		row = func(o []bool, x, y []T) { mapBinary(o, x, y, func(p, q T) bool { return p <= q }) }
	case cmpGreaterOrEqual:
		row = func(o []bool, x, y []T) { mapBinary(o, x, y, func(p, q T) bool { return p >= q }) }
	}
	broadcastBinary(o, out.Shape, x, a.Shape, y, bshape, row)
	return nil
}

type logicOp uint8

const (
	logicAnd logicOp = iota
	logicOr
	logicXor
	logicEqual
)

func compileLogic(op logicOp, legacy bool) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		var align func(a, b []int) ([]int, error)
		if legacy {
			align = legacyBroadcast(n)
		}
		return func(e *env, in []*Tensor) ([]*Tensor, error) {
			if err := inputs(in, 2); err != nil {
				return nil, err
			}
			a, b := in[0], in[1]
			if a.DType != onnx.TensorProto_BOOL || b.DType != onnx.TensorProto_BOOL {
				return nil, fmt.Errorf("inputs are %s and %s, want bool", dtypeName(a.DType), dtypeName(b.DType))
			}
			out, bshape, err := boolOutput(e, a, b, align)
			if err != nil {
				return nil, err
			}
			if err := logicRows(op, out, a, b, bshape); err != nil {
				return nil, err
			}
			return []*Tensor{out}, nil
		}, nil
	}
}

func logicRows(op logicOp, out, a, b *Tensor, bshape []int) error {
	var row func(o, x, y []bool)
	switch op {
	case logicAnd:
		row = func(o, x, y []bool) { mapBinary(o, x, y, func(p, q bool) bool { return p && q }) }
	case logicOr:
		row = func(o, x, y []bool) { mapBinary(o, x, y, func(p, q bool) bool { return p || q }) }
	case logicXor:
		row = func(o, x, y []bool) { mapBinary(o, x, y, func(p, q bool) bool { return p != q }) }
	case logicEqual:
		row = func(o, x, y []bool) { mapBinary(o, x, y, func(p, q bool) bool { return p == q }) }
	}
	return binaryRows(out, a, b, bshape, row)
}

func compileNot(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if err := inputs(in, 1); err != nil {
			return nil, err
		}
		x, err := dataOf[bool](in[0])
		if err != nil {
			return nil, err
		}
		out, err := e.output(0, onnx.TensorProto_BOOL, in[0].Shape...)
		if err != nil {
			return nil, err
		}
		o := out.Data.([]bool)
		for i, v := range x {
			o[i] = !v
		}
		return []*Tensor{out}, nil
	}, nil
}

func compileWhere(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if err := inputs(in, 3); err != nil {
			return nil, err
		}
		c, x, y := in[0], in[1], in[2]
		cond, err := dataOf[bool](c)
		if err != nil {
			return nil, fmt.Errorf("condition: %w", err)
		}
		if x.DType != y.DType {
			return nil, fmt.Errorf("X is %s and Y is %s: they must have the same type", dtypeName(x.DType), dtypeName(y.DType))
		}
		oshape, err := broadcastShapes(c.Shape, x.Shape, y.Shape)
		if err != nil {
			return nil, err
		}
		out, err := e.output(0, x.DType, oshape...)
		if err != nil {
			return nil, err
		}
		switch x.Data.(type) {
		case []float32:
			err = where[float32](out, cond, c.Shape, x, y)
		case []float64:
			err = where[float64](out, cond, c.Shape, x, y)
		case []int64:
			err = where[int64](out, cond, c.Shape, x, y)
		case []int32:
			err = where[int32](out, cond, c.Shape, x, y)
		case []int16:
			err = where[int16](out, cond, c.Shape, x, y)
		case []int8:
			err = where[int8](out, cond, c.Shape, x, y)
		case []uint64:
			err = where[uint64](out, cond, c.Shape, x, y)
		case []uint32:
			err = where[uint32](out, cond, c.Shape, x, y)
		case []uint16:
			err = where[uint16](out, cond, c.Shape, x, y)
		case []uint8:
			err = where[uint8](out, cond, c.Shape, x, y)
		case []bool:
			err = where[bool](out, cond, c.Shape, x, y)
		case []string:
			err = where[string](out, cond, c.Shape, x, y)
		default:
			err = unsupportedType(x.DType)
		}
		if err != nil {
			return nil, err
		}
		return []*Tensor{out}, nil
	}, nil
}

func where[T any](out *Tensor, cond []bool, cshape []int, x, y *Tensor) error {
	o, err := dataOf[T](out)
	if err != nil {
		return err
	}
	xd, err := dataOf[T](x)
	if err != nil {
		return err
	}
	yd, err := dataOf[T](y)
	if err != nil {
		return err
	}
	broadcastTernary(o, out.Shape, cond, cshape, xd, x.Shape, yd, y.Shape, func(o []T, c []bool, x, y []T) {
		sc, sx, sy := rowStep(len(c)), rowStep(len(x)), rowStep(len(y))
		for i := range o {
			if c[i*sc] {
				o[i] = x[i*sx]
			} else {
				o[i] = y[i*sy]
			}
		}
	})
	return nil
}

func compileIsNaN(n *graph.Node) (kernel, error) {
	return floatPredicate(func(x float64) bool { return x != x }), nil
}

func compileIsInf(n *graph.Node) (kernel, error) {
	pos := n.AttrInt("detect_positive", 1) != 0
	neg := n.AttrInt("detect_negative", 1) != 0
	return floatPredicate(func(x float64) bool { return pos && math.IsInf(x, 1) || neg && math.IsInf(x, -1) }), nil
}

// floatPredicate is a kernel mapping a floating-point tensor to a bool one.
func floatPredicate(f func(float64) bool) kernel {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if err := inputs(in, 1); err != nil {
			return nil, err
		}
		out, err := e.output(0, onnx.TensorProto_BOOL, in[0].Shape...)
		if err != nil {
			return nil, err
		}
		o := out.Data.([]bool)
		switch x := in[0].Data.(type) {
		case []float32:
			for i, v := range x {
				o[i] = f(float64(v))
			}
		case []float64:
			for i, v := range x {
				o[i] = f(v)
			}
		default:
			return nil, unsupportedType(in[0].DType)
		}
		return []*Tensor{out}, nil
	}
}

// --- Cast ---

func compileCast(n *graph.Node) (kernel, error) {
	a := n.Attr("to")
	if a == nil {
		return nil, errors.New("attribute to is required")
	}
	to := onnx.TensorProto_DataType(a.Proto.GetI())
	if a.Proto.GetType() == onnx.AttributeProto_STRING {
		// Cast-1 names the type.
		name := strings.ToUpper(string(a.Proto.GetS()))
		v, ok := onnx.TensorProto_DataType_value[name]
		if !ok {
			return nil, fmt.Errorf("to names no data type: %q", name)
		}
		to = onnx.TensorProto_DataType(v)
	}
	if _, err := makeSlice(to, 0); err != nil {
		return nil, fmt.Errorf("to: %w", err)
	}
	saturate := n.AttrInt("saturate", 1) != 0
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if err := inputs(in, 1); err != nil {
			return nil, err
		}
		out, err := cast(e, in[0], to, saturate)
		if err != nil {
			return nil, err
		}
		return []*Tensor{out}, nil
	}, nil
}

func compileCastLike(n *graph.Node) (kernel, error) {
	saturate := n.AttrInt("saturate", 1) != 0
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if err := inputs(in, 2); err != nil {
			return nil, err
		}
		out, err := cast(e, in[0], in[1].DType, saturate)
		if err != nil {
			return nil, err
		}
		return []*Tensor{out}, nil
	}, nil
}

// cast converts x to dtype to into output 0. Numbers convert with Go's
// rules (floats truncate toward zero into integers; out-of-range values are
// undefined in ONNX too); float16 and bfloat16 round to nearest even from
// the source value, the float8 types from its float32 rounding, saturating
// as saturate says; strings hold plain decimal numbers and "NaN", "INF",
// "+INF", "-INF" in any case.
func cast(e *env, x *Tensor, to onnx.TensorProto_DataType, saturate bool) (*Tensor, error) {
	if x.DType == to {
		return x, nil
	}
	out, err := e.output(0, to, x.Shape...)
	if err != nil {
		return nil, err
	}
	if to.IsFloat8() {
		// Through float32, which Float8bits takes: float32 holds every
		// value of the narrower types, and double rounding from float64
		// can only move ties of a 2- or 3-bit mantissa.
		in, ok := x.Data.([]float32)
		if !ok {
			in = numbersAs[float32](x)
		}
		if in == nil {
			return nil, fmt.Errorf("cannot cast %s to %s", dtypeName(x.DType), dtypeName(to))
		}
		roundToFloat8(to, out.Data.([]float32), in, saturate)
		return out, nil
	}
	switch d := x.Data.(type) {
	case []float32:
		err = castFrom(out, d)
	case []float64:
		err = castFrom(out, d)
	case []int64:
		err = castFrom(out, d)
	case []int32:
		err = castFrom(out, d)
	case []int16:
		err = castFrom(out, d)
	case []int8:
		err = castFrom(out, d)
	case []uint64:
		err = castFrom(out, d)
	case []uint32:
		err = castFrom(out, d)
	case []uint16:
		err = castFrom(out, d)
	case []uint8:
		err = castFrom(out, d)
	case []bool:
		nums := make([]uint8, len(d))
		for i, v := range d {
			if v {
				nums[i] = 1
			}
		}
		if to == onnx.TensorProto_STRING {
			o := out.Data.([]string)
			for i, v := range d {
				o[i] = strconv.FormatBool(v)
			}
			break
		}
		err = castFrom(out, nums)
	case []string:
		err = castFromStrings(out, d)
	default:
		err = unsupportedType(x.DType)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func castFrom[F number](out *Tensor, in []F) error {
	switch o := out.Data.(type) {
	case []float32:
		switch out.DType {
		case onnx.TensorProto_FLOAT16:
			for i, v := range in {
				o[i] = roundToHalf(float64(v))
			}
		case onnx.TensorProto_BFLOAT16:
			for i, v := range in {
				o[i] = roundToBFloat16(float64(v))
			}
		default:
			convertInto(o, in)
		}
	case []float64:
		convertInto(o, in)
	case []int64:
		convertInto(o, in)
	case []int32:
		convertInto(o, in)
	case []int16:
		convertInto(o, in)
	case []int8:
		convertInto(o, in)
	case []uint64:
		convertInto(o, in)
	case []uint32:
		convertInto(o, in)
	case []uint16:
		convertInto(o, in)
	case []uint8:
		convertInto(o, in)
	case []bool:
		for i, v := range in {
			o[i] = v != 0 // NaN is true, as in C
		}
	case []string:
		formatNumbers(o, in)
	default:
		return unsupportedType(out.DType)
	}
	return nil
}

func convertInto[F, T number](o []T, in []F) {
	o = o[:len(in)]
	for i, v := range in {
		o[i] = T(v)
	}
}

// formatNumbers writes numbers in plain decimal, floats with the fewest
// digits that read back to the same value of their type.
func formatNumbers[F number](o []string, in []F) {
	o = o[:len(in)]
	switch d := any(in).(type) {
	case []float32:
		for i, v := range d {
			o[i] = formatFloat(float64(v), 32)
		}
	case []float64:
		for i, v := range d {
			o[i] = formatFloat(v, 64)
		}
	case []uint8, []uint16, []uint32, []uint64:
		for i, v := range in {
			o[i] = strconv.FormatUint(uint64(v), 10)
		}
	default:
		for i, v := range in {
			o[i] = strconv.FormatInt(int64(v), 10)
		}
	}
}

func formatFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "INF"
	case math.IsInf(f, -1):
		return "-INF"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

func castFromStrings(out *Tensor, in []string) error {
	if o, ok := out.Data.([]bool); ok {
		for i, s := range in {
			b, err := strconv.ParseBool(s)
			if err != nil {
				f, ferr := strconv.ParseFloat(s, 64)
				if ferr != nil {
					return fmt.Errorf("element %d: cannot read %q as bool", i, s)
				}
				b = f != 0
			}
			o[i] = b
		}
		return nil
	}
	if out.DType == onnx.TensorProto_INT64 || out.DType == onnx.TensorProto_UINT64 {
		// float64 cannot hold every 64-bit integer: parse them as
		// integers first.
		for i, s := range in {
			if o, ok := out.Data.([]int64); ok {
				if v, err := strconv.ParseInt(s, 10, 64); err == nil {
					o[i] = v
					continue
				}
			}
			if o, ok := out.Data.([]uint64); ok {
				if v, err := strconv.ParseUint(s, 10, 64); err == nil {
					o[i] = v
					continue
				}
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return fmt.Errorf("element %d: cannot read %q as a number", i, s)
			}
			if o, ok := out.Data.([]int64); ok {
				o[i] = int64(f)
			} else {
				out.Data.([]uint64)[i] = uint64(f)
			}
		}
		return nil
	}
	nums := make([]float64, len(in))
	for i, s := range in {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("element %d: cannot read %q as a number", i, s)
		}
		nums[i] = f
	}
	if out.DType == onnx.TensorProto_FLOAT {
		// Parse float32 directly: rounding the decimal once.
		o := out.Data.([]float32)
		for i, s := range in {
			f, _ := strconv.ParseFloat(s, 32)
			o[i] = float32(f)
		}
		return nil
	}
	return castFrom(out, nums)
}

// --- No-ops ---

func compileIdentity(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if err := inputs(in, 1); err != nil {
			return nil, err
		}
		return []*Tensor{in[0]}, nil
	}, nil
}

// compileDropout runs Dropout for inference: the output is the input and
// the mask keeps everything. Opset 12 on takes ratio and training_mode as
// inputs; training with a positive ratio drops elements at random, which
// an inference runtime refuses rather than approximates. Before opset 12
// the is_test attribute of old models is ignored: exporters left it unset
// in models meant for inference.
func compileDropout(n *graph.Node) (kernel, error) {
	opset := n.Opset()
	wantMask := len(n.Outputs) > 1 && n.Outputs[1] != nil
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if err := inputs(in, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if opset >= 12 && len(in) > 2 && in[2] != nil {
			training, err := dataOf[bool](in[2])
			if err != nil || len(training) != 1 {
				return nil, fmt.Errorf("training_mode must be a bool scalar, got %s", in[2])
			}
			ratio := 0.5
			if in[1] != nil {
				r := numbersAs[float64](in[1])
				if len(r) != 1 {
					return nil, fmt.Errorf("ratio must be a floating-point scalar, got %s", in[1])
				}
				ratio = r[0]
			}
			if training[0] && ratio > 0 {
				return nil, e.unsupported("training_mode is true with ratio %g: random dropout cannot be reproduced", ratio)
			}
		}
		if !wantMask {
			return []*Tensor{x}, nil
		}
		// Opset 10 on: a bool mask; opsets 7 to 9: a mask of the input's
		// type.
		maskType := onnx.TensorProto_BOOL
		if opset < 10 {
			maskType = x.DType
		}
		mask, err := e.output(1, maskType, x.Shape...)
		if err != nil {
			return nil, err
		}
		switch m := mask.Data.(type) {
		case []bool:
			for i := range m {
				m[i] = true
			}
		case []float32:
			fill(m, 1)
		case []float64:
			fill(m, 1)
		default:
			return nil, fmt.Errorf("mask: %w", unsupportedType(maskType))
		}
		return []*Tensor{x, mask}, nil
	}, nil
}

func fill[T any](d []T, v T) {
	for i := range d {
		d[i] = v
	}
}
