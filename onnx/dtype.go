package onnx

import "fmt"

// DataType is the element type of a tensor, as stored in
// TensorProto.data_type. Its String method gives the ONNX name (FLOAT,
// FLOAT8E4M3FN, ...).
type DataType = TensorProto_DataType

// MaxTensorBytes bounds the data of a single tensor. Larger tensors are
// refused as malformed: no model onnxopt handles has one, and the bound
// keeps a forged shape from asking for an absurd allocation.
const MaxTensorBytes = 16 << 30

// maxElements is the most elements a tensor within MaxTensorBytes can have,
// at 2 bits an element. Counts up to it times 128 bits fit in an int64.
const maxElements = MaxTensorBytes * 8 / 2

// Valid reports whether d is a data type of the ONNX IR other than
// UNDEFINED.
func (d TensorProto_DataType) Valid() bool {
	return d > TensorProto_UNDEFINED && d <= TensorProto_INT2
}

// Bits is the width of one element in bits: 2 for INT2 and UINT2, 4 for INT4,
// UINT4 and FLOAT4E2M1, 8 for the float8 types, 128 for COMPLEX128. It is 0
// for STRING, whose elements vary in size, and for invalid types.
func (d TensorProto_DataType) Bits() int {
	switch d {
	case TensorProto_UINT2, TensorProto_INT2:
		return 2
	case TensorProto_UINT4, TensorProto_INT4, TensorProto_FLOAT4E2M1:
		return 4
	case TensorProto_UINT8, TensorProto_INT8, TensorProto_BOOL,
		TensorProto_FLOAT8E4M3FN, TensorProto_FLOAT8E4M3FNUZ,
		TensorProto_FLOAT8E5M2, TensorProto_FLOAT8E5M2FNUZ, TensorProto_FLOAT8E8M0:
		return 8
	case TensorProto_UINT16, TensorProto_INT16, TensorProto_FLOAT16, TensorProto_BFLOAT16:
		return 16
	case TensorProto_FLOAT, TensorProto_INT32, TensorProto_UINT32:
		return 32
	case TensorProto_DOUBLE, TensorProto_INT64, TensorProto_UINT64, TensorProto_COMPLEX64:
		return 64
	case TensorProto_COMPLEX128:
		return 128
	}
	return 0
}

// IsFloat reports whether d is a real floating-point type, from FLOAT4E2M1
// to DOUBLE.
func (d TensorProto_DataType) IsFloat() bool {
	switch d {
	case TensorProto_FLOAT, TensorProto_DOUBLE, TensorProto_FLOAT16, TensorProto_BFLOAT16,
		TensorProto_FLOAT8E4M3FN, TensorProto_FLOAT8E4M3FNUZ, TensorProto_FLOAT8E5M2,
		TensorProto_FLOAT8E5M2FNUZ, TensorProto_FLOAT8E8M0, TensorProto_FLOAT4E2M1:
		return true
	}
	return false
}

// IsFloat8 reports whether d is one of the five 8-bit float types.
func (d TensorProto_DataType) IsFloat8() bool {
	switch d {
	case TensorProto_FLOAT8E4M3FN, TensorProto_FLOAT8E4M3FNUZ, TensorProto_FLOAT8E5M2,
		TensorProto_FLOAT8E5M2FNUZ, TensorProto_FLOAT8E8M0:
		return true
	}
	return false
}

// IsInteger reports whether d is a signed or unsigned integer type of any
// width. BOOL is not an integer type.
func (d TensorProto_DataType) IsInteger() bool {
	switch d {
	case TensorProto_INT2, TensorProto_INT4, TensorProto_INT8, TensorProto_INT16,
		TensorProto_INT32, TensorProto_INT64,
		TensorProto_UINT2, TensorProto_UINT4, TensorProto_UINT8, TensorProto_UINT16,
		TensorProto_UINT32, TensorProto_UINT64:
		return true
	}
	return false
}

// IsSigned reports whether d holds negative values: signed integers and the
// floating-point types that have a sign bit (all but FLOAT8E8M0), and the
// complex types.
func (d TensorProto_DataType) IsSigned() bool {
	switch d {
	case TensorProto_INT2, TensorProto_INT4, TensorProto_INT8, TensorProto_INT16,
		TensorProto_INT32, TensorProto_INT64, TensorProto_COMPLEX64, TensorProto_COMPLEX128:
		return true
	}
	return d.IsFloat() && d != TensorProto_FLOAT8E8M0
}

// IsComplex reports whether d is COMPLEX64 or COMPLEX128.
func (d TensorProto_DataType) IsComplex() bool {
	return d == TensorProto_COMPLEX64 || d == TensorProto_COMPLEX128
}

// IsPacked reports whether several elements of d share a byte in raw_data
// (the 2- and 4-bit types).
func (d TensorProto_DataType) IsPacked() bool {
	b := d.Bits()
	return b > 0 && b < 8
}

// RawSize is the length of raw_data holding n elements of type d: n times
// the element size, rounded up to whole bytes for the packed types. It fails
// for STRING and invalid types, and for sizes above MaxTensorBytes.
func (d TensorProto_DataType) RawSize(n int64) (int64, error) {
	bits := int64(d.Bits())
	if bits == 0 {
		return 0, fmt.Errorf("data type %v has no fixed element size", d)
	}
	if n < 0 || n > maxElements {
		return 0, fmt.Errorf("%d elements of %v: out of range", n, d)
	}
	size := (n*bits + 7) / 8
	if size > MaxTensorBytes {
		return 0, fmt.Errorf("%d elements of %v take %d bytes, more than the limit of %d", n, d, size, int64(MaxTensorBytes))
	}
	return size, nil
}
