package ort

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"onnxopt/onnx"
)

// Tensor is a dense tensor in row-major order.
//
// Data holds Shape's element count of values, as the slice type that DType
// calls for: []float32 (FLOAT), []float64 (DOUBLE), []int8, []int16, []int32,
// []int64, []uint8, []uint16, []uint32, []uint64 or []bool. A tensor of
// rank 0 has an empty Shape and one element.
type Tensor struct {
	DType int32 // an onnx.TensorProto_DataType
	Shape []int64
	Data  any
}

// IOInfo describes one input or output of a session as the model declares
// it. Dynamic dimensions are -1.
type IOInfo struct {
	Name  string
	DType int32 // an onnx.TensorProto_DataType
	Shape []int64
}

// Options configures a session.
type Options struct {
	// Threads is the number of threads that one operator may use
	// (ONNX Runtime's intra-op threads). Zero means 1, so that measurements
	// and results do not depend on the machine's core count.
	Threads int
}

// dataTypeOf returns the ONNX data type whose elements data holds and its
// length, or false if data is not one of the slice types Tensor allows.
func dataTypeOf(data any) (dtype int32, n int, ok bool) {
	switch d := data.(type) {
	case []float32:
		return int32(onnx.TensorProto_FLOAT), len(d), true
	case []float64:
		return int32(onnx.TensorProto_DOUBLE), len(d), true
	case []int8:
		return int32(onnx.TensorProto_INT8), len(d), true
	case []int16:
		return int32(onnx.TensorProto_INT16), len(d), true
	case []int32:
		return int32(onnx.TensorProto_INT32), len(d), true
	case []int64:
		return int32(onnx.TensorProto_INT64), len(d), true
	case []uint8:
		return int32(onnx.TensorProto_UINT8), len(d), true
	case []uint16:
		return int32(onnx.TensorProto_UINT16), len(d), true
	case []uint32:
		return int32(onnx.TensorProto_UINT32), len(d), true
	case []uint64:
		return int32(onnx.TensorProto_UINT64), len(d), true
	case []bool:
		return int32(onnx.TensorProto_BOOL), len(d), true
	}
	return 0, 0, false
}

// dataTypeName names an ONNX data type for error messages.
func dataTypeName(dtype int32) string {
	if name, ok := onnx.TensorProto_DataType_name[dtype]; ok {
		return name
	}
	return fmt.Sprintf("data type %d", dtype)
}

// numElements returns the number of elements of a tensor of the given shape.
func numElements(shape []int64) (int, error) {
	n := int64(1)
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v: dimension %d is negative", shape, i)
		}
		if d != 0 && n > math.MaxInt32/d {
			return 0, fmt.Errorf("shape %v: too many elements", shape)
		}
		n *= d
	}
	return int(n), nil
}

// check reports whether t's Data has the Go type that DType calls for and as
// many elements as Shape.
func (t *Tensor) check() error {
	if t == nil {
		return errors.New("nil tensor")
	}
	dtype, n, ok := dataTypeOf(t.Data)
	if !ok {
		return fmt.Errorf("unsupported data %T (%s)", t.Data, dataTypeName(t.DType))
	}
	if dtype != t.DType {
		return fmt.Errorf("data %T does not hold %s", t.Data, dataTypeName(t.DType))
	}
	want, err := numElements(t.Shape)
	if err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("shape %v needs %d elements, data has %d", t.Shape, want, n)
	}
	return nil
}

// FromProto decodes a TensorProto holding its values in raw_data or in the
// typed field its data type uses. Strings, 16-bit and smaller floating-point
// types and data stored outside the message are not supported.
func FromProto(p *onnx.TensorProto) (*Tensor, error) {
	dtype := p.GetDataType()
	if p.GetDataLocation() == onnx.TensorProto_EXTERNAL {
		return nil, fmt.Errorf("tensor %q: external data is not supported", p.GetName())
	}
	n, err := numElements(p.GetDims())
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", p.GetName(), err)
	}
	raw := p.GetRawData()
	le := binary.LittleEndian
	var data any
	switch onnx.TensorProto_DataType(dtype) {
	case onnx.TensorProto_FLOAT:
		data, err = decode(raw, p.GetFloatData(), n, 4,
			func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) },
			func(v float32) float32 { return v })
	case onnx.TensorProto_DOUBLE:
		data, err = decode(raw, p.GetDoubleData(), n, 8,
			func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) },
			func(v float64) float64 { return v })
	case onnx.TensorProto_INT8:
		data, err = decode(raw, p.GetInt32Data(), n, 1,
			func(b []byte) int8 { return int8(b[0]) },
			func(v int32) int8 { return int8(v) })
	case onnx.TensorProto_INT16:
		data, err = decode(raw, p.GetInt32Data(), n, 2,
			func(b []byte) int16 { return int16(le.Uint16(b)) },
			func(v int32) int16 { return int16(v) })
	case onnx.TensorProto_INT32:
		data, err = decode(raw, p.GetInt32Data(), n, 4,
			func(b []byte) int32 { return int32(le.Uint32(b)) },
			func(v int32) int32 { return v })
	case onnx.TensorProto_INT64:
		data, err = decode(raw, p.GetInt64Data(), n, 8,
			func(b []byte) int64 { return int64(le.Uint64(b)) },
			func(v int64) int64 { return v })
	case onnx.TensorProto_UINT8:
		data, err = decode(raw, p.GetInt32Data(), n, 1,
			func(b []byte) uint8 { return b[0] },
			func(v int32) uint8 { return uint8(v) })
	case onnx.TensorProto_UINT16:
		data, err = decode(raw, p.GetInt32Data(), n, 2,
			le.Uint16,
			func(v int32) uint16 { return uint16(v) })
	case onnx.TensorProto_UINT32:
		data, err = decode(raw, p.GetUint64Data(), n, 4,
			le.Uint32,
			func(v uint64) uint32 { return uint32(v) })
	case onnx.TensorProto_UINT64:
		data, err = decode(raw, p.GetUint64Data(), n, 8,
			le.Uint64,
			func(v uint64) uint64 { return v })
	case onnx.TensorProto_BOOL:
		data, err = decode(raw, p.GetInt32Data(), n, 1,
			func(b []byte) bool { return b[0] != 0 },
			func(v int32) bool { return v != 0 })
	default:
		return nil, fmt.Errorf("tensor %q: %s is not supported", p.GetName(), dataTypeName(dtype))
	}
	if err != nil {
		return nil, fmt.Errorf("tensor %q (%s): %w", p.GetName(), dataTypeName(dtype), err)
	}
	return &Tensor{DType: dtype, Shape: append([]int64{}, p.GetDims()...), Data: data}, nil
}

// decode reads n values from raw (little-endian, size bytes each) if it is
// not empty, else from the typed field of the TensorProto.
func decode[T, F any](raw []byte, typed []F, n, size int, fromRaw func([]byte) T, fromTyped func(F) T) ([]T, error) {
	out := make([]T, n)
	if len(raw) > 0 {
		if len(raw) != n*size {
			return nil, fmt.Errorf("raw_data has %d bytes, want %d for %d elements", len(raw), n*size, n)
		}
		for i := range out {
			out[i] = fromRaw(raw[i*size:])
		}
		return out, nil
	}
	if len(typed) != n {
		return nil, fmt.Errorf("%d values stored, want %d", len(typed), n)
	}
	for i, v := range typed {
		out[i] = fromTyped(v)
	}
	return out, nil
}

// Proto encodes t as a TensorProto with its values in raw_data, which is
// little-endian whatever the machine.
func (t *Tensor) Proto() (*onnx.TensorProto, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	var raw []byte
	switch d := t.Data.(type) {
	case []float32:
		raw = encode(d, 4, func(b []byte, v float32) { le.PutUint32(b, math.Float32bits(v)) })
	case []float64:
		raw = encode(d, 8, func(b []byte, v float64) { le.PutUint64(b, math.Float64bits(v)) })
	case []int8:
		raw = encode(d, 1, func(b []byte, v int8) { b[0] = byte(v) })
	case []int16:
		raw = encode(d, 2, func(b []byte, v int16) { le.PutUint16(b, uint16(v)) })
	case []int32:
		raw = encode(d, 4, func(b []byte, v int32) { le.PutUint32(b, uint32(v)) })
	case []int64:
		raw = encode(d, 8, func(b []byte, v int64) { le.PutUint64(b, uint64(v)) })
	case []uint8:
		raw = append([]byte{}, d...)
	case []uint16:
		raw = encode(d, 2, le.PutUint16)
	case []uint32:
		raw = encode(d, 4, le.PutUint32)
	case []uint64:
		raw = encode(d, 8, le.PutUint64)
	case []bool:
		raw = encode(d, 1, func(b []byte, v bool) {
			if v {
				b[0] = 1
			}
		})
	}
	dtype := t.DType
	return &onnx.TensorProto{
		Dims:     append([]int64{}, t.Shape...),
		DataType: &dtype,
		RawData:  raw,
	}, nil
}

func encode[T any](data []T, size int, put func([]byte, T)) []byte {
	raw := make([]byte, len(data)*size)
	for i, v := range data {
		put(raw[i*size:], v)
	}
	return raw
}
