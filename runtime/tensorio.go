package runtime

import (
	"encoding/binary"
	"fmt"
	"math"

	"onnxopt/onnx"
)

// TensorFromProto decodes a TensorProto into a runtime tensor.
func TensorFromProto(tp *onnx.TensorProto) (*Tensor, error) {
	dt := onnx.TensorProto_DataType(tp.GetDataType())
	shape := make([]int, len(tp.GetDims()))
	for i, d := range tp.GetDims() {
		if d < 0 || d > maxElements {
			return nil, fmt.Errorf("tensor %q: bad dimension %d", tp.GetName(), d)
		}
		shape[i] = int(d)
	}
	n, err := elements(shape)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", tp.GetName(), err)
	}
	data, err := decode(tp, dt, n)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", tp.GetName(), err)
	}
	return &Tensor{DType: dt, Shape: shape, Data: data}, nil
}

// decode reads n elements of dt from raw_data or the typed field.
// TODO(lead): replace with the onnx package's codec when it lands.
func decode(tp *onnx.TensorProto, dt onnx.TensorProto_DataType, n int) (any, error) {
	raw := tp.GetRawData()
	hasRaw := tp.RawData != nil
	if tp.GetDataLocation() == onnx.TensorProto_EXTERNAL {
		return nil, fmt.Errorf("external data was not loaded")
	}
	check := func(size int) error {
		if len(raw) != n*size {
			return fmt.Errorf("raw_data has %d bytes, %d elements of %s need %d", len(raw), n, dtypeName(dt), n*size)
		}
		return nil
	}
	count := func(got int) error {
		if got != n {
			return fmt.Errorf("%d elements in the typed field, shape needs %d", got, n)
		}
		return nil
	}
	switch dt {
	case onnx.TensorProto_FLOAT:
		if hasRaw {
			if err := check(4); err != nil {
				return nil, err
			}
			return rawFloat32(raw), nil
		}
		return tp.GetFloatData(), count(len(tp.GetFloatData()))
	case onnx.TensorProto_DOUBLE:
		if hasRaw {
			if err := check(8); err != nil {
				return nil, err
			}
			out := make([]float64, n)
			for i := range out {
				out[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
			}
			return out, nil
		}
		return tp.GetDoubleData(), count(len(tp.GetDoubleData()))
	case onnx.TensorProto_INT64:
		if hasRaw {
			if err := check(8); err != nil {
				return nil, err
			}
			out := make([]int64, n)
			for i := range out {
				out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
			return out, nil
		}
		return tp.GetInt64Data(), count(len(tp.GetInt64Data()))
	case onnx.TensorProto_UINT64, onnx.TensorProto_UINT32:
		if hasRaw {
			if dt == onnx.TensorProto_UINT32 {
				if err := check(4); err != nil {
					return nil, err
				}
				out := make([]uint32, n)
				for i := range out {
					out[i] = binary.LittleEndian.Uint32(raw[4*i:])
				}
				return out, nil
			}
			if err := check(8); err != nil {
				return nil, err
			}
			out := make([]uint64, n)
			for i := range out {
				out[i] = binary.LittleEndian.Uint64(raw[8*i:])
			}
			return out, nil
		}
		if err := count(len(tp.GetUint64Data())); err != nil {
			return nil, err
		}
		if dt == onnx.TensorProto_UINT32 {
			return convertSlice[uint64, uint32](tp.GetUint64Data()), nil
		}
		return tp.GetUint64Data(), nil
	case onnx.TensorProto_STRING:
		ss := tp.GetStringData()
		if err := count(len(ss)); err != nil {
			return nil, err
		}
		out := make([]string, n)
		for i, s := range ss {
			out[i] = string(s)
		}
		return out, nil
	}
	// The remaining types are at most 32 bits wide and use int32_data.
	size := map[onnx.TensorProto_DataType]int{
		onnx.TensorProto_INT32: 4, onnx.TensorProto_INT16: 2, onnx.TensorProto_UINT16: 2,
		onnx.TensorProto_INT8: 1, onnx.TensorProto_UINT8: 1, onnx.TensorProto_BOOL: 1,
		onnx.TensorProto_FLOAT16: 2, onnx.TensorProto_BFLOAT16: 2,
	}[dt]
	if size == 0 {
		return nil, fmt.Errorf("the runtime does not compute in %s", dtypeName(dt))
	}
	words := make([]uint32, n)
	if hasRaw {
		if err := check(size); err != nil {
			return nil, err
		}
		for i := range words {
			switch size {
			case 4:
				words[i] = binary.LittleEndian.Uint32(raw[4*i:])
			case 2:
				words[i] = uint32(binary.LittleEndian.Uint16(raw[2*i:]))
			case 1:
				words[i] = uint32(raw[i])
			}
		}
	} else {
		if err := count(len(tp.GetInt32Data())); err != nil {
			return nil, err
		}
		for i, w := range tp.GetInt32Data() {
			words[i] = uint32(w)
		}
	}
	switch dt {
	case onnx.TensorProto_INT32:
		return convertSlice[uint32, int32](words), nil
	case onnx.TensorProto_INT16:
		out := make([]int16, n)
		for i, w := range words {
			out[i] = int16(uint16(w))
		}
		return out, nil
	case onnx.TensorProto_UINT16:
		return convertSlice[uint32, uint16](words), nil
	case onnx.TensorProto_INT8:
		out := make([]int8, n)
		for i, w := range words {
			out[i] = int8(uint8(w))
		}
		return out, nil
	case onnx.TensorProto_UINT8:
		return convertSlice[uint32, uint8](words), nil
	case onnx.TensorProto_BOOL:
		out := make([]bool, n)
		for i, w := range words {
			out[i] = w != 0
		}
		return out, nil
	case onnx.TensorProto_FLOAT16:
		out := make([]float32, n)
		for i, w := range words {
			out[i] = halfToFloat(uint16(w))
		}
		return out, nil
	default: // BFLOAT16
		out := make([]float32, n)
		for i, w := range words {
			out[i] = math.Float32frombits(w << 16)
		}
		return out, nil
	}
}

func rawFloat32(raw []byte) []float32 {
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

func convertSlice[From, To int32 | uint32 | uint64 | uint16 | uint8](in []From) []To {
	out := make([]To, len(in))
	for i, v := range in {
		out[i] = To(v)
	}
	return out
}

// halfToFloat widens an IEEE 754 binary16 value.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0:
		// A subnormal half is a normal float: shift until the leading
		// one reaches the implicit bit.
		e := uint32(127 - 15 + 1)
		for frac&0x400 == 0 {
			frac <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (frac&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}
