package runtime

import (
	"fmt"

	"onnxopt/onnx"
)

// TensorFromProto decodes a TensorProto into a runtime tensor. The tensor
// may share memory with tp; the runtime never writes to it. INT4 and UINT4
// tensors, which DequantizeLinear reads (block-quantized weights), are
// unpacked into []int8 and []uint8 with their own DType; no other kernel
// computes in them.
func TensorFromProto(tp *onnx.TensorProto) (*Tensor, error) {
	data, err := onnx.Decode(tp)
	if err != nil {
		return nil, err
	}
	dt := onnx.TensorProto_DataType(tp.GetDataType())
	if _, _, ok := sliceInfo(data); !ok {
		return nil, fmt.Errorf("tensor %q: the runtime does not compute in %s", tp.GetName(), dtypeName(dt))
	}
	switch dt {
	case onnx.TensorProto_INT2, onnx.TensorProto_UINT2:
		return nil, fmt.Errorf("tensor %q: the runtime does not compute in %s", tp.GetName(), dtypeName(dt))
	}
	shape := make([]int, len(tp.GetDims()))
	for i, d := range tp.GetDims() {
		shape[i] = int(d) // onnx.Decode has bounded the dims
	}
	return &Tensor{DType: dt, Shape: shape, Data: data}, nil
}

// TensorToProto encodes a runtime tensor as a TensorProto called name.
func TensorToProto(name string, t *Tensor) (*onnx.TensorProto, error) {
	dims := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = int64(d)
	}
	return onnx.NewTensor(name, t.DType, dims, t.Data)
}
