package runtime

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"gorgonia.org/tensor"

	"onnxopt/onnx"
)

// A Tensor is a dense, row-major array: a dtype, a shape and a typed Go
// slice holding the elements. It also carries the runtime's other values,
// sequences and optionals (see Kind).
//
// The runtime keeps its own container rather than gorgonia's tensor.Dense
// because Dense panics on shapes with a zero dimension, which ONNX allows
// and the conformance suite uses. Dense converts both ways without copying
// (Dense and FromDense), and gradients run on gorgonia.
type Tensor struct {
	DType onnx.TensorProto_DataType
	Shape []int
	// Data is []float32 (FLOAT, and FLOAT16/BFLOAT16 computed as float32
	// are converted at the boundary), []float64, []int64, []int32,
	// []int16, []int8, []uint64, []uint32, []uint16, []uint8, []bool or
	// []string, matching DType.
	Data any

	// Kind is KindTensor, the zero value, for a tensor. A sequence or an
	// optional holds its values in Elems (an optional holds one, or none
	// when it is empty) and has DType set to the element type of the
	// tensors inside, known even when there are none; its Shape and Data
	// are nil.
	Kind  Kind
	Elems []*Tensor
}

// A Kind tells the values ONNX has besides tensors: sequences (an ordered
// list of values of one type, of any length) and optionals (a value or
// nothing). The runtime carries them in a Tensor too, so that plans,
// subgraphs and kernels move one type of value; only the operators that
// take them look inside, and the plan refuses them as inputs of every
// other operator before its kernel runs.
type Kind uint8

const (
	KindTensor Kind = iota
	KindSequence
	KindOptional
)

// NewSequence makes a sequence of values whose tensors have element type
// dt. It holds elems themselves, not copies.
func NewSequence(dt onnx.TensorProto_DataType, elems ...*Tensor) *Tensor {
	return &Tensor{DType: dt, Kind: KindSequence, Elems: elems}
}

// NewOptional makes an optional holding v, or an empty optional for
// tensors of element type dt when v is nil.
func NewOptional(dt onnx.TensorProto_DataType, v *Tensor) *Tensor {
	if v == nil {
		return &Tensor{DType: dt, Kind: KindOptional}
	}
	return &Tensor{DType: v.DType, Kind: KindOptional, Elems: []*Tensor{v}}
}

// Tensors of the narrow float types (FLOAT16, BFLOAT16, the float8 types)
// hold []float32 whose values the type can represent: the runtime computes
// them in float32 and rounds where an op (Cast) produces them.

// NewTensor allocates a zeroed tensor.
func NewTensor(dt onnx.TensorProto_DataType, shape ...int) (*Tensor, error) {
	n, err := elements(shape)
	if err != nil {
		return nil, err
	}
	data, err := makeSlice(dt, n)
	if err != nil {
		return nil, err
	}
	return &Tensor{DType: dt, Shape: shape, Data: data}, nil
}

// FromSlice wraps data (a supported Go slice) with shape. The number of
// elements must match.
func FromSlice(data any, shape ...int) (*Tensor, error) {
	dt, n, ok := sliceInfo(data)
	if !ok {
		return nil, fmt.Errorf("unsupported element slice %T", data)
	}
	want, err := elements(shape)
	if err != nil {
		return nil, err
	}
	if want != n {
		return nil, fmt.Errorf("shape %v needs %d elements, slice has %d", shape, want, n)
	}
	return &Tensor{DType: dt, Shape: shape, Data: data}, nil
}

// maxElements caps a tensor at 16 GiB of float32.
const maxElements = 1 << 32

func elements(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > maxElements/d {
			return 0, fmt.Errorf("shape %v has more than %d elements", shape, maxElements)
		}
		n *= d
	}
	return n, nil
}

// Len returns the number of elements.
func (t *Tensor) Len() int {
	_, n, _ := sliceInfo(t.Data)
	return n
}

// Rank returns the number of dimensions.
func (t *Tensor) Rank() int { return len(t.Shape) }

// String prints the dtype and shape, for error messages.
func (t *Tensor) String() string {
	switch t.Kind {
	case KindSequence:
		return fmt.Sprintf("sequence of %d %s values", len(t.Elems), dtypeName(t.DType))
	case KindOptional:
		if len(t.Elems) == 0 {
			return fmt.Sprintf("empty optional of %s", dtypeName(t.DType))
		}
		return fmt.Sprintf("optional of %s", t.Elems[0])
	}
	dims := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = fmt.Sprint(d)
	}
	return fmt.Sprintf("%s[%s]", dtypeName(t.DType), strings.Join(dims, ","))
}

func dtypeName(dt onnx.TensorProto_DataType) string {
	return strings.ToLower(dt.String())
}

// Rows returns rows [lo, hi) along axis 0 of t, the samples of a batch,
// sharing t's data.
func (t *Tensor) Rows(lo, hi int) (*Tensor, error) {
	if t.Kind != KindTensor || t.Rank() == 0 {
		return nil, fmt.Errorf("the %s has no axis 0 to split", t)
	}
	if lo < 0 || hi > t.Shape[0] || lo > hi {
		return nil, fmt.Errorf("rows %d to %d of the %s", lo, hi, t)
	}
	if lo == 0 && hi == t.Shape[0] {
		return t, nil
	}
	stride := mustElements(t.Shape[1:])
	data := reflect.ValueOf(t.Data)
	if data.Kind() != reflect.Slice || data.Len() != stride*t.Shape[0] {
		return nil, errors.New("tensor data does not fill its shape")
	}
	shape := append([]int{hi - lo}, t.Shape[1:]...)
	return &Tensor{DType: t.DType, Shape: shape, Data: data.Slice3(lo*stride, hi*stride, hi*stride).Interface()}, nil
}

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	if t.Kind != KindTensor {
		c := &Tensor{DType: t.DType, Kind: t.Kind, Elems: make([]*Tensor, len(t.Elems))}
		for i, e := range t.Elems {
			c.Elems[i] = e.Clone()
		}
		return c
	}
	c := &Tensor{DType: t.DType, Shape: append([]int(nil), t.Shape...)}
	switch d := t.Data.(type) {
	case []float32:
		c.Data = append([]float32(nil), d...)
	case []float64:
		c.Data = append([]float64(nil), d...)
	case []int64:
		c.Data = append([]int64(nil), d...)
	case []int32:
		c.Data = append([]int32(nil), d...)
	case []int16:
		c.Data = append([]int16(nil), d...)
	case []int8:
		c.Data = append([]int8(nil), d...)
	case []uint64:
		c.Data = append([]uint64(nil), d...)
	case []uint32:
		c.Data = append([]uint32(nil), d...)
	case []uint16:
		c.Data = append([]uint16(nil), d...)
	case []uint8:
		c.Data = append([]uint8(nil), d...)
	case []bool:
		c.Data = append([]bool(nil), d...)
	case []string:
		c.Data = append([]string(nil), d...)
	}
	return c
}

// Dense returns the tensor as a gorgonia tensor sharing its data. It fails
// for shapes with a zero dimension, which gorgonia cannot hold.
func (t *Tensor) Dense() (*tensor.Dense, error) {
	if t.Kind != KindTensor {
		return nil, fmt.Errorf("gorgonia cannot hold the %s", t)
	}
	for _, d := range t.Shape {
		if d == 0 {
			return nil, fmt.Errorf("gorgonia cannot hold the empty tensor %s", t)
		}
	}
	return tensor.New(tensor.WithShape(t.Shape...), tensor.WithBacking(t.Data)), nil
}

// FromDense wraps a gorgonia tensor's data, without copying.
func FromDense(d *tensor.Dense) (*Tensor, error) {
	shape := append([]int(nil), d.Shape()...)
	return FromSlice(d.Data(), shape...)
}

func sliceInfo(data any) (onnx.TensorProto_DataType, int, bool) {
	switch d := data.(type) {
	case []float32:
		return onnx.TensorProto_FLOAT, len(d), true
	case []float64:
		return onnx.TensorProto_DOUBLE, len(d), true
	case []int64:
		return onnx.TensorProto_INT64, len(d), true
	case []int32:
		return onnx.TensorProto_INT32, len(d), true
	case []int16:
		return onnx.TensorProto_INT16, len(d), true
	case []int8:
		return onnx.TensorProto_INT8, len(d), true
	case []uint64:
		return onnx.TensorProto_UINT64, len(d), true
	case []uint32:
		return onnx.TensorProto_UINT32, len(d), true
	case []uint16:
		return onnx.TensorProto_UINT16, len(d), true
	case []uint8:
		return onnx.TensorProto_UINT8, len(d), true
	case []bool:
		return onnx.TensorProto_BOOL, len(d), true
	case []string:
		return onnx.TensorProto_STRING, len(d), true
	}
	return 0, 0, false
}

func makeSlice(dt onnx.TensorProto_DataType, n int) (any, error) {
	switch dt {
	case onnx.TensorProto_FLOAT, onnx.TensorProto_FLOAT16, onnx.TensorProto_BFLOAT16,
		onnx.TensorProto_FLOAT8E4M3FN, onnx.TensorProto_FLOAT8E4M3FNUZ, onnx.TensorProto_FLOAT8E5M2, onnx.TensorProto_FLOAT8E5M2FNUZ:
		return make([]float32, n), nil
	case onnx.TensorProto_DOUBLE:
		return make([]float64, n), nil
	case onnx.TensorProto_INT64:
		return make([]int64, n), nil
	case onnx.TensorProto_INT32:
		return make([]int32, n), nil
	case onnx.TensorProto_INT16:
		return make([]int16, n), nil
	case onnx.TensorProto_INT8:
		return make([]int8, n), nil
	case onnx.TensorProto_UINT64:
		return make([]uint64, n), nil
	case onnx.TensorProto_UINT32:
		return make([]uint32, n), nil
	case onnx.TensorProto_UINT16:
		return make([]uint16, n), nil
	case onnx.TensorProto_UINT8:
		return make([]uint8, n), nil
	case onnx.TensorProto_BOOL:
		return make([]bool, n), nil
	case onnx.TensorProto_STRING:
		return make([]string, n), nil
	}
	return nil, fmt.Errorf("the runtime does not compute in %s", dtypeName(dt))
}

// checkData checks that a tensor's Go slice is the one its dtype computes
// in and that its elements fill its shape, so that kernels can trust both.
func (t *Tensor) checkData() error {
	want, err := makeSlice(t.DType, 0)
	if err != nil {
		return err
	}
	got, n, ok := sliceInfo(t.Data)
	if wantType, _, _ := sliceInfo(want); !ok || got != wantType {
		return fmt.Errorf("%T does not hold %s", t.Data, dtypeName(t.DType))
	}
	if n != mustElements(t.Shape) {
		return fmt.Errorf("%d elements do not fill shape %v", n, t.Shape)
	}
	return nil
}
