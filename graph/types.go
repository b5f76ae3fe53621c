package graph

import (
	"strconv"
	"strings"

	"onnxopt/onnx"
)

// A Dim is one dimension of a tensor shape: a known size, a symbolic name,
// or neither (unknown).
type Dim struct {
	Value int64  // the size, when Known
	Param string // the symbolic name, if any
	Known bool
}

// String prints the size, the symbol, or "?".
func (d Dim) String() string {
	switch {
	case d.Known:
		return strconv.FormatInt(d.Value, 10)
	case d.Param != "":
		return d.Param
	}
	return "?"
}

// Shape is a tensor shape. A nil Shape with ok false from Value.Shape means
// the rank is unknown.
type Shape []Dim

// String prints the shape as [d0,d1,...].
func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = d.String()
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Static returns the shape as sizes when every dimension is known.
func (s Shape) Static() ([]int64, bool) {
	out := make([]int64, len(s))
	for i, d := range s {
		if !d.Known {
			return nil, false
		}
		out[i] = d.Value
	}
	return out, true
}

// Known makes a Shape of known sizes.
func Known(dims ...int64) Shape {
	s := make(Shape, len(dims))
	for i, d := range dims {
		s[i] = Dim{Value: d, Known: true}
	}
	return s
}

// ElemType returns the element type of a tensor value, or UNDEFINED (0)
// when it is not known or the value is not a tensor.
func (v *Value) ElemType() onnx.TensorProto_DataType {
	if v.Init != nil {
		return onnx.TensorProto_DataType(v.Init.GetDataType())
	}
	if tt := v.Type.GetTensorType(); tt != nil {
		return onnx.TensorProto_DataType(tt.GetElemType())
	}
	return onnx.TensorProto_UNDEFINED
}

// Shape returns the value's tensor shape, and false when its rank is not
// known.
func (v *Value) Shape() (Shape, bool) {
	if v.Init != nil {
		return Known(v.Init.GetDims()...), true
	}
	tt := v.Type.GetTensorType()
	if tt == nil || tt.Shape == nil {
		return nil, false
	}
	s := make(Shape, len(tt.Shape.Dim))
	for i, d := range tt.Shape.Dim {
		switch x := d.Value.(type) {
		case *onnx.TensorShapeProto_Dimension_DimValue:
			s[i] = Dim{Value: x.DimValue, Known: true}
		case *onnx.TensorShapeProto_Dimension_DimParam:
			s[i] = Dim{Param: x.DimParam}
		}
	}
	return s, true
}

// SetTensorType sets the value's type to a tensor of elem with the given
// shape; a nil shape means unknown rank.
func (v *Value) SetTensorType(elem onnx.TensorProto_DataType, shape Shape) {
	v.Type = TensorType(elem, shape)
}

// TensorType builds a TypeProto for a tensor; a nil shape leaves the rank
// unknown.
func TensorType(elem onnx.TensorProto_DataType, shape Shape) *onnx.TypeProto {
	e := int32(elem)
	tt := &onnx.TypeProto_Tensor{ElemType: &e}
	if shape != nil {
		tt.Shape = &onnx.TensorShapeProto{Dim: make([]*onnx.TensorShapeProto_Dimension, len(shape))}
		for i, d := range shape {
			dim := &onnx.TensorShapeProto_Dimension{}
			switch {
			case d.Known:
				dim.Value = &onnx.TensorShapeProto_Dimension_DimValue{DimValue: d.Value}
			case d.Param != "":
				dim.Value = &onnx.TensorShapeProto_Dimension_DimParam{DimParam: d.Param}
			}
			tt.Shape.Dim[i] = dim
		}
	}
	return &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: tt}}
}

func tensorTypeOf(t *onnx.TensorProto) *onnx.TypeProto {
	return TensorType(onnx.TensorProto_DataType(t.GetDataType()), Known(t.GetDims()...))
}
