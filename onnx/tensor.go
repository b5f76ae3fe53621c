package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"google.golang.org/protobuf/proto"
)

// NumElements is the number of elements of a tensor of shape dims: their
// product, 1 for a scalar. It fails for negative dimensions and for products
// that overflow or exceed what MaxTensorBytes allows for any type.
func NumElements(dims []int64) (int64, error) {
	n := int64(1)
	for i, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("shape %v: dimension %d is negative", dims, i)
		}
		if d != 0 && n > maxElements/d {
			return 0, fmt.Errorf("shape %v: more than %d elements", dims, int64(maxElements))
		}
		n *= d
	}
	return n, nil
}

// dataField names the TensorProto field that holds a tensor's elements when
// raw_data is not used.
type dataField int

const (
	noField dataField = iota
	floatField
	int32Field
	stringField
	int64Field
	doubleField
	uint64Field
)

func (f dataField) String() string {
	return [...]string{"no field", "float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data"}[f]
}

// typedField is the field ONNX assigns to dt (onnx.proto, TensorProto).
func typedField(dt DataType) dataField {
	switch dt {
	case TensorProto_FLOAT, TensorProto_COMPLEX64:
		return floatField
	case TensorProto_DOUBLE, TensorProto_COMPLEX128:
		return doubleField
	case TensorProto_INT64:
		return int64Field
	case TensorProto_UINT32, TensorProto_UINT64:
		return uint64Field
	case TensorProto_STRING:
		return stringField
	case TensorProto_UNDEFINED:
		return noField
	}
	if dt.Valid() {
		return int32Field
	}
	return noField
}

// typedCount is the length of dt's typed field for n elements: complex
// numbers take two entries, and each int32_data entry of a packed type holds
// one byte of packed elements.
func typedCount(dt DataType, n int64) int64 {
	switch {
	case dt.IsComplex():
		return 2 * n
	case dt.IsPacked():
		per := int64(8 / dt.Bits())
		return (n + per - 1) / per
	}
	return n
}

// populatedFields lists the data fields of t that hold something, raw_data
// counted when present even if empty.
func populatedFields(t *TensorProto) []string {
	var fields []string
	if t.RawData != nil {
		fields = append(fields, "raw_data")
	}
	for _, f := range []struct {
		field dataField
		n     int
	}{
		{floatField, len(t.FloatData)}, {int32Field, len(t.Int32Data)}, {stringField, len(t.StringData)},
		{int64Field, len(t.Int64Data)}, {doubleField, len(t.DoubleData)}, {uint64Field, len(t.Uint64Data)},
	} {
		if f.n > 0 {
			fields = append(fields, f.field.String())
		}
	}
	return fields
}

func typedLen(t *TensorProto, f dataField) int {
	switch f {
	case floatField:
		return len(t.FloatData)
	case int32Field:
		return len(t.Int32Data)
	case stringField:
		return len(t.StringData)
	case int64Field:
		return len(t.Int64Data)
	case doubleField:
		return len(t.DoubleData)
	case uint64Field:
		return len(t.Uint64Data)
	}
	return 0
}

// ValidateTensor checks that t has a valid data type and shape and that its
// data, in whichever one field holds it, has the length the shape asks for.
// Tensors whose data is still external, or that use segments, are refused.
func ValidateTensor(t *TensorProto) error {
	if err := validateTensor(t); err != nil {
		return fmt.Errorf("tensor %q: %w", t.GetName(), err)
	}
	return nil
}

func validateTensor(t *TensorProto) error {
	dt := DataType(t.GetDataType())
	if !dt.Valid() {
		return fmt.Errorf("invalid data type %d", t.GetDataType())
	}
	if t.Segment != nil {
		return errors.New("segmented tensors are not supported")
	}
	if t.GetDataLocation() == TensorProto_EXTERNAL {
		return errors.New("data is in an external file that was not loaded")
	}
	n, err := NumElements(t.Dims)
	if err != nil {
		return err
	}
	fields := populatedFields(t)
	switch {
	case len(fields) > 1:
		return fmt.Errorf("data in several fields: %v", fields)
	case len(fields) == 0:
		if n != 0 {
			return fmt.Errorf("shape %v has %d elements but the tensor has no data", t.Dims, n)
		}
		return nil
	case t.RawData != nil:
		if dt == TensorProto_STRING {
			return errors.New("STRING data in raw_data; it belongs in string_data")
		}
		size, err := dt.RawSize(n)
		if err != nil {
			return fmt.Errorf("shape %v: %w", t.Dims, err)
		}
		if int64(len(t.RawData)) != size {
			return fmt.Errorf("raw_data has %d bytes, want %d for %v of shape %v", len(t.RawData), size, dt, t.Dims)
		}
		return nil
	}
	want := typedField(dt)
	if fields[0] != want.String() {
		return fmt.Errorf("%v data in %s; it belongs in %v or raw_data", dt, fields[0], want)
	}
	if dt != TensorProto_STRING {
		if _, err := dt.RawSize(n); err != nil {
			return fmt.Errorf("shape %v: %w", t.Dims, err)
		}
	}
	if got, count := int64(typedLen(t, want)), typedCount(dt, n); got != count {
		return fmt.Errorf("%s has %d entries, want %d for %v of shape %v", want, got, count, dt, t.Dims)
	}
	return nil
}

// rawData is t's data in raw_data layout: raw_data itself when present,
// otherwise the typed field converted bit for bit. t must be valid and not a
// STRING tensor.
func rawData(t *TensorProto) []byte {
	if t.RawData != nil {
		return t.RawData
	}
	dt := DataType(t.GetDataType())
	le := binary.LittleEndian
	switch typedField(dt) {
	case floatField:
		b := make([]byte, 4*len(t.FloatData))
		for i, v := range t.FloatData {
			le.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b
	case doubleField:
		b := make([]byte, 8*len(t.DoubleData))
		for i, v := range t.DoubleData {
			le.PutUint64(b[8*i:], math.Float64bits(v))
		}
		return b
	case int64Field:
		b := make([]byte, 8*len(t.Int64Data))
		for i, v := range t.Int64Data {
			le.PutUint64(b[8*i:], uint64(v))
		}
		return b
	case uint64Field:
		if dt == TensorProto_UINT32 {
			b := make([]byte, 4*len(t.Uint64Data))
			for i, v := range t.Uint64Data {
				le.PutUint32(b[4*i:], uint32(v))
			}
			return b
		}
		b := make([]byte, 8*len(t.Uint64Data))
		for i, v := range t.Uint64Data {
			le.PutUint64(b[8*i:], v)
		}
		return b
	case int32Field:
		// Narrow values are stored in the low bits of each entry, packed
		// types one byte of elements an entry; higher bits are dropped as
		// the ONNX reference implementation does.
		switch dt.Bits() {
		case 32:
			b := make([]byte, 4*len(t.Int32Data))
			for i, v := range t.Int32Data {
				le.PutUint32(b[4*i:], uint32(v))
			}
			return b
		case 16:
			b := make([]byte, 2*len(t.Int32Data))
			for i, v := range t.Int32Data {
				le.PutUint16(b[2*i:], uint16(v))
			}
			return b
		default:
			b := make([]byte, len(t.Int32Data))
			for i, v := range t.Int32Data {
				b[i] = byte(v)
			}
			return b
		}
	}
	return []byte{}
}

// RawData is the data of t in raw_data layout (little-endian, packed for
// the 2- and 4-bit types), converting a typed field bit for bit when
// raw_data is not used. It fails for invalid tensors and STRING tensors. The
// result may be t.RawData itself: treat it as read-only.
func RawData(t *TensorProto) ([]byte, error) {
	if err := ValidateTensor(t); err != nil {
		return nil, err
	}
	if t.GetDataType() == int32(TensorProto_STRING) {
		return nil, fmt.Errorf("tensor %q: STRING tensors have no raw data", t.GetName())
	}
	return rawData(t), nil
}

// Decode returns the elements of t, in row-major order, as the Go slice
// natural to its data type: []float32 for FLOAT and for FLOAT16, BFLOAT16,
// the float8 types and FLOAT4E2M1 (converted exactly); []float64 for
// DOUBLE; []int8, []int16, []int32, []int64, []uint8, []uint16, []uint32,
// []uint64 for the integer types of those widths, with INT4 and INT2
// unpacked into []int8 and UINT4 and UINT2 into []uint8; []bool; []string;
// []complex64 and []complex128. The result may share memory with t (see
// Float32s).
func Decode(t *TensorProto) (any, error) {
	if err := ValidateTensor(t); err != nil {
		return nil, err
	}
	dt := DataType(t.GetDataType())
	n, _ := NumElements(t.Dims)
	if dt == TensorProto_STRING {
		s := make([]string, len(t.StringData))
		for i, b := range t.StringData {
			s[i] = string(b)
		}
		return s, nil
	}
	if dt == TensorProto_FLOAT {
		return float32s(t), nil
	}
	return decodeRaw(dt, rawData(t), int(n)), nil
}

// decodeRaw decodes n elements of type dt from raw, whose length has been
// checked.
func decodeRaw(dt DataType, raw []byte, n int) any {
	le := binary.LittleEndian
	switch dt {
	case TensorProto_FLOAT:
		return decodeLE(raw, 4, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) })
	case TensorProto_DOUBLE:
		return decodeLE(raw, 8, func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) })
	case TensorProto_INT8:
		return decodeLE(raw, 1, func(b []byte) int8 { return int8(b[0]) })
	case TensorProto_UINT8:
		return slices.Clone(raw)
	case TensorProto_INT16:
		return decodeLE(raw, 2, func(b []byte) int16 { return int16(le.Uint16(b)) })
	case TensorProto_UINT16:
		return decodeLE(raw, 2, le.Uint16)
	case TensorProto_INT32:
		return decodeLE(raw, 4, func(b []byte) int32 { return int32(le.Uint32(b)) })
	case TensorProto_UINT32:
		return decodeLE(raw, 4, le.Uint32)
	case TensorProto_INT64:
		return decodeLE(raw, 8, func(b []byte) int64 { return int64(le.Uint64(b)) })
	case TensorProto_UINT64:
		return decodeLE(raw, 8, le.Uint64)
	case TensorProto_BOOL:
		return decodeLE(raw, 1, func(b []byte) bool { return b[0] != 0 })
	case TensorProto_COMPLEX64:
		return decodeLE(raw, 8, func(b []byte) complex64 {
			return complex(math.Float32frombits(le.Uint32(b)), math.Float32frombits(le.Uint32(b[4:])))
		})
	case TensorProto_COMPLEX128:
		return decodeLE(raw, 16, func(b []byte) complex128 {
			return complex(math.Float64frombits(le.Uint64(b)), math.Float64frombits(le.Uint64(b[8:])))
		})
	case TensorProto_FLOAT16:
		return decodeLE(raw, 2, func(b []byte) float32 { return Float16frombits(le.Uint16(b)) })
	case TensorProto_BFLOAT16:
		return decodeLE(raw, 2, func(b []byte) float32 { return BFloat16frombits(le.Uint16(b)) })
	case TensorProto_FLOAT8E4M3FN, TensorProto_FLOAT8E4M3FNUZ, TensorProto_FLOAT8E5M2,
		TensorProto_FLOAT8E5M2FNUZ, TensorProto_FLOAT8E8M0:
		var table [256]float32
		for i := range table {
			table[i] = Float8frombits(dt, uint8(i))
		}
		return decodeLE(raw, 1, func(b []byte) float32 { return table[b[0]] })
	case TensorProto_FLOAT4E2M1:
		codes := unpack(raw, 4, n)
		v := make([]float32, n)
		for i, c := range codes {
			v[i] = Float4frombits(c)
		}
		return v
	case TensorProto_UINT4, TensorProto_UINT2:
		return unpack(raw, dt.Bits(), n)
	case TensorProto_INT4, TensorProto_INT2:
		codes := unpack(raw, dt.Bits(), n)
		shift := 8 - dt.Bits()
		v := make([]int8, n)
		for i, c := range codes {
			v[i] = int8(c<<shift) >> shift // sign-extend
		}
		return v
	}
	return nil
}

func decodeLE[T any](raw []byte, size int, get func([]byte) T) []T {
	v := make([]T, len(raw)/size)
	for i := range v {
		v[i] = get(raw[i*size:])
	}
	return v
}

// unpack splits packed bytes into n codes of the given width, least
// significant bits first.
func unpack(raw []byte, bits, n int) []uint8 {
	per := 8 / bits
	mask := byte(1)<<bits - 1
	codes := make([]uint8, n)
	for i := range codes {
		codes[i] = raw[i/per] >> (bits * (i % per)) & mask
	}
	return codes
}

// pack is the inverse of unpack; the unused high bits of the last byte are
// zero.
func pack(codes []uint8, bits int) []byte {
	per := 8 / bits
	mask := byte(1)<<bits - 1
	raw := make([]byte, (len(codes)+per-1)/per)
	for i, c := range codes {
		raw[i/per] |= (c & mask) << (bits * (i % per))
	}
	return raw
}

func hostLittleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// float32s returns the elements of a valid FLOAT tensor without copying when
// it can: float_data as is, and raw_data reinterpreted in place when the
// host is little-endian and the bytes are 4-byte aligned.
func float32s(t *TensorProto) []float32 {
	if t.RawData == nil {
		if t.FloatData == nil {
			return []float32{}
		}
		return t.FloatData
	}
	raw := t.RawData
	if len(raw) == 0 {
		return []float32{}
	}
	if hostLittleEndian() && uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%4 == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(raw))), len(raw)/4)
	}
	return decodeRaw(TensorProto_FLOAT, raw, len(raw)/4).([]float32)
}

// Float32s returns the elements of t as float32: exactly for FLOAT and the
// narrower float types, rounded to nearest for DOUBLE and for integers
// beyond 2^24, and 0 or 1 for BOOL. It fails for STRING and complex tensors.
//
// For FLOAT tensors the result shares memory with t when it can (float_data,
// or aligned raw_data on a little-endian host): treat it as read-only and
// copy it before changing it.
func Float32s(t *TensorProto) ([]float32, error) {
	v, err := Decode(t)
	if err != nil {
		return nil, err
	}
	if f, ok := v.([]float32); ok {
		return f, nil
	}
	f, ok := convertSlice[float32](v)
	if !ok {
		return nil, fmt.Errorf("tensor %q: %v elements are not real numbers", t.GetName(), DataType(t.GetDataType()))
	}
	return f, nil
}

// Float64s returns the elements of t as float64, exactly except for 64-bit
// integers beyond 2^53. It fails for STRING and complex tensors.
func Float64s(t *TensorProto) ([]float64, error) {
	v, err := Decode(t)
	if err != nil {
		return nil, err
	}
	if f, ok := v.([]float64); ok {
		return f, nil
	}
	f, ok := convertSlice[float64](v)
	if !ok {
		return nil, fmt.Errorf("tensor %q: %v elements are not real numbers", t.GetName(), DataType(t.GetDataType()))
	}
	return f, nil
}

// Int64s returns the elements of an integer or BOOL tensor as int64. It
// fails for other types and for UINT64 values above math.MaxInt64.
func Int64s(t *TensorProto) ([]int64, error) {
	v, err := Decode(t)
	if err != nil {
		return nil, err
	}
	dt := DataType(t.GetDataType())
	switch s := v.(type) {
	case []int64:
		return s, nil
	case []uint64:
		for i, x := range s {
			if x > math.MaxInt64 {
				return nil, fmt.Errorf("tensor %q: element %d (%d) overflows int64", t.GetName(), i, x)
			}
		}
	}
	if !dt.IsInteger() && dt != TensorProto_BOOL {
		return nil, fmt.Errorf("tensor %q: %v elements are not integers", t.GetName(), dt)
	}
	i, _ := convertSlice[int64](v)
	return i, nil
}

type number interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// convertSlice converts a decoded slice of real numbers or bools to []T.
func convertSlice[T number](v any) ([]T, bool) {
	switch s := v.(type) {
	case []float32:
		return convertReal[T](s), true
	case []float64:
		return convertReal[T](s), true
	case []int8:
		return convertReal[T](s), true
	case []int16:
		return convertReal[T](s), true
	case []int32:
		return convertReal[T](s), true
	case []int64:
		return convertReal[T](s), true
	case []uint8:
		return convertReal[T](s), true
	case []uint16:
		return convertReal[T](s), true
	case []uint32:
		return convertReal[T](s), true
	case []uint64:
		return convertReal[T](s), true
	case []bool:
		r := make([]T, len(s))
		for i, b := range s {
			if b {
				r[i] = 1
			}
		}
		return r, true
	}
	return nil, false
}

func convertReal[T, S number](s []S) []T {
	r := make([]T, len(s))
	for i, x := range s {
		r[i] = T(x)
	}
	return r
}

// Encode stores v as the data of t with data type dt, in raw_data (in
// string_data for STRING), and clears the other data fields, external data
// and segment. v must have the Go type Decode returns for dt and as many
// elements as t.Dims asks for. Values for the narrow float types are
// rounded to nearest even, saturating for float8 (see Float8bits); values
// for INT4, UINT4, INT2 and UINT2 must be in range.
func Encode(t *TensorProto, dt DataType, v any) error {
	if err := encode(t, dt, v); err != nil {
		return fmt.Errorf("tensor %q: %w", t.GetName(), err)
	}
	return nil
}

func encode(t *TensorProto, dt DataType, v any) error {
	if !dt.Valid() {
		return fmt.Errorf("invalid data type %d", dt)
	}
	n, err := NumElements(t.Dims)
	if err != nil {
		return err
	}
	if dt != TensorProto_STRING {
		if _, err := dt.RawSize(n); err != nil {
			return err
		}
	}
	var raw []byte
	var strs [][]byte
	var length int
	le := binary.LittleEndian
	mismatch := func() error { return fmt.Errorf("%T does not hold %v elements", v, dt) }
	switch s := v.(type) {
	case []float32:
		length = len(s)
		switch {
		case dt == TensorProto_FLOAT:
			raw = encodeFloat32(s)
		case dt == TensorProto_FLOAT4E2M1:
			codes := make([]uint8, len(s))
			for i, x := range s {
				codes[i] = Float4bits(x)
			}
			raw = pack(codes, 4)
		case dt.IsFloat8():
			raw = encodeLE(s, 1, func(b []byte, x float32) { b[0] = Float8bits(dt, x, true) })
		case dt == TensorProto_FLOAT16 || dt == TensorProto_BFLOAT16:
			format, _ := narrowFormat(dt)
			raw = encodeLE(s, 2, func(b []byte, x float32) { le.PutUint16(b, format.encode(float64(x), false)) })
		default:
			return mismatch()
		}
	case []float64:
		if dt != TensorProto_DOUBLE {
			return mismatch()
		}
		length, raw = len(s), encodeLE(s, 8, func(b []byte, x float64) { le.PutUint64(b, math.Float64bits(x)) })
	case []int8:
		length = len(s)
		switch dt {
		case TensorProto_INT8:
			raw = encodeLE(s, 1, func(b []byte, x int8) { b[0] = byte(x) })
		case TensorProto_INT4, TensorProto_INT2:
			lo, hi := int8(-1)<<(dt.Bits()-1), int8(1)<<(dt.Bits()-1)-1
			codes := make([]uint8, len(s))
			for i, x := range s {
				if x < lo || x > hi {
					return fmt.Errorf("element %d (%d) is out of range for %v", i, x, dt)
				}
				codes[i] = uint8(x)
			}
			raw = pack(codes, dt.Bits())
		default:
			return mismatch()
		}
	case []uint8:
		length = len(s)
		switch dt {
		case TensorProto_UINT8:
			raw = slices.Clone(s)
		case TensorProto_UINT4, TensorProto_UINT2:
			for i, x := range s {
				if x >= 1<<dt.Bits() {
					return fmt.Errorf("element %d (%d) is out of range for %v", i, x, dt)
				}
			}
			raw = pack(s, dt.Bits())
		default:
			return mismatch()
		}
	case []int16:
		if dt != TensorProto_INT16 {
			return mismatch()
		}
		length, raw = len(s), encodeLE(s, 2, func(b []byte, x int16) { le.PutUint16(b, uint16(x)) })
	case []uint16:
		if dt != TensorProto_UINT16 {
			return mismatch()
		}
		length, raw = len(s), encodeLE(s, 2, le.PutUint16)
	case []int32:
		if dt != TensorProto_INT32 {
			return mismatch()
		}
		length, raw = len(s), encodeLE(s, 4, func(b []byte, x int32) { le.PutUint32(b, uint32(x)) })
	case []uint32:
		if dt != TensorProto_UINT32 {
			return mismatch()
		}
		length, raw = len(s), encodeLE(s, 4, le.PutUint32)
	case []int64:
		if dt != TensorProto_INT64 {
			return mismatch()
		}
		length, raw = len(s), encodeLE(s, 8, func(b []byte, x int64) { le.PutUint64(b, uint64(x)) })
	case []uint64:
		if dt != TensorProto_UINT64 {
			return mismatch()
		}
		length, raw = len(s), encodeLE(s, 8, le.PutUint64)
	case []bool:
		if dt != TensorProto_BOOL {
			return mismatch()
		}
		length = len(s)
		raw = encodeLE(s, 1, func(b []byte, x bool) {
			if x {
				b[0] = 1
			}
		})
	case []complex64:
		if dt != TensorProto_COMPLEX64 {
			return mismatch()
		}
		length, raw = len(s), encodeLE(s, 8, func(b []byte, x complex64) {
			le.PutUint32(b, math.Float32bits(real(x)))
			le.PutUint32(b[4:], math.Float32bits(imag(x)))
		})
	case []complex128:
		if dt != TensorProto_COMPLEX128 {
			return mismatch()
		}
		length, raw = len(s), encodeLE(s, 16, func(b []byte, x complex128) {
			le.PutUint64(b, math.Float64bits(real(x)))
			le.PutUint64(b[8:], math.Float64bits(imag(x)))
		})
	case []string:
		if dt != TensorProto_STRING {
			return mismatch()
		}
		length = len(s)
		strs = make([][]byte, len(s))
		for i, x := range s {
			strs[i] = []byte(x)
		}
	default:
		return fmt.Errorf("cannot encode %T", v)
	}
	if int64(length) != n {
		return fmt.Errorf("%d values for shape %v of %d elements", length, t.Dims, n)
	}
	clearData(t)
	t.DataType = proto.Int32(int32(dt))
	if dt == TensorProto_STRING {
		t.StringData = strs
	} else {
		t.RawData = raw
	}
	return nil
}

// clearData removes every representation of t's elements.
func clearData(t *TensorProto) {
	t.Segment = nil
	t.RawData = nil
	t.FloatData = nil
	t.Int32Data = nil
	t.StringData = nil
	t.Int64Data = nil
	t.DoubleData = nil
	t.Uint64Data = nil
	t.ExternalData = nil
	t.DataLocation = nil
}

func encodeLE[T any](s []T, size int, put func([]byte, T)) []byte {
	raw := make([]byte, size*len(s))
	for i, x := range s {
		put(raw[i*size:], x)
	}
	return raw
}

func encodeFloat32(s []float32) []byte {
	if hostLittleEndian() {
		raw := make([]byte, 4*len(s))
		if len(s) > 0 {
			copy(raw, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), 4*len(s)))
		}
		return raw
	}
	return encodeLE(s, 4, func(b []byte, x float32) { binary.LittleEndian.PutUint32(b, math.Float32bits(x)) })
}

// SetFloat32s stores v as the data of t with the floating-point type dt,
// converting as Encode does: rounded to nearest even for the narrow types,
// float8 saturating as the Cast operator does by default. t.Dims must
// already describe len(v) elements.
func SetFloat32s(t *TensorProto, dt DataType, v []float32) error {
	switch {
	case dt == TensorProto_DOUBLE:
		return Encode(t, dt, convertReal[float64](v))
	case dt.IsFloat():
		return Encode(t, dt, v)
	}
	return fmt.Errorf("tensor %q: SetFloat32s needs a floating-point type, not %v", t.GetName(), dt)
}

// NewTensor makes a tensor named name of type dt and shape dims holding v,
// as Encode stores it.
func NewTensor(name string, dt DataType, dims []int64, v any) (*TensorProto, error) {
	t := &TensorProto{Name: proto.String(name), Dims: slices.Clone(dims)}
	if err := Encode(t, dt, v); err != nil {
		return nil, err
	}
	return t, nil
}
