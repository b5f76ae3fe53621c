package graph

import (
	"sort"

	"onnxopt/onnx"
)

// Stats counts what a model holds: nodes, and the parameters (initializer
// elements) with their non-zeros and bytes.
type Stats struct {
	Nodes   int
	Params  int64
	NonZero int64 // -1 when some data was not loaded (external data left on disk)
	Bytes   int64
	ByType  []TypeStats // one entry per element type, largest first
}

// TypeStats are the parameters of one element type.
type TypeStats struct {
	DType   onnx.DataType
	Tensors int
	Params  int64
	Bytes   int64
}

// Stats counts the model's nodes (subgraphs included) and its initializers
// (those of subgraphs included; Constant nodes are nodes, not parameters).
func (m *Model) Stats() Stats {
	var s Stats
	byType := map[onnx.DataType]*TypeStats{}
	m.Graph.Walk(func(g *Graph) bool {
		s.Nodes += len(g.Nodes)
		for _, v := range g.Initializers {
			t := v.Init
			n, _ := onnx.NumElements(t.GetDims())
			bytes := TensorBytes(t)
			s.Params += n
			s.Bytes += bytes
			if s.NonZero >= 0 {
				if nz, ok := nonZeros(t); ok {
					s.NonZero += nz
				} else {
					s.NonZero = -1
				}
			}
			dt := onnx.DataType(t.GetDataType())
			ts := byType[dt]
			if ts == nil {
				ts = &TypeStats{DType: dt}
				byType[dt] = ts
			}
			ts.Tensors++
			ts.Params += n
			ts.Bytes += bytes
		}
		return true
	})
	for _, ts := range byType {
		s.ByType = append(s.ByType, *ts)
	}
	sort.Slice(s.ByType, func(i, j int) bool {
		if s.ByType[i].Bytes != s.ByType[j].Bytes {
			return s.ByType[i].Bytes > s.ByType[j].Bytes
		}
		return s.ByType[i].DType < s.ByType[j].DType
	})
	return s
}

// TensorBytes is the size of a tensor's data as stored: its element count
// times the element size (packed for sub-byte types), or the string bytes.
func TensorBytes(t *onnx.TensorProto) int64 {
	dt := onnx.DataType(t.GetDataType())
	if dt == onnx.TensorProto_STRING {
		var n int64
		for _, s := range t.GetStringData() {
			n += int64(len(s))
		}
		return n
	}
	n, err := onnx.NumElements(t.GetDims())
	if err != nil {
		return 0
	}
	size, err := dt.RawSize(n)
	if err != nil {
		return 0
	}
	return size
}

func nonZeros(t *onnx.TensorProto) (int64, bool) {
	if t.GetDataLocation() == onnx.TensorProto_EXTERNAL {
		return 0, false
	}
	if size := fixedIntSize(onnx.DataType(t.GetDataType())); size > 0 && t.RawData != nil {
		if err := onnx.ValidateTensor(t); err != nil {
			return 0, false
		}
		return countNonZeroElements(t.RawData, size), true
	}
	data, err := onnx.Decode(t)
	if err != nil {
		return 0, false
	}
	var n int64
	switch d := data.(type) {
	case []float32:
		n = countNonZero(d)
	case []float64:
		n = countNonZero(d)
	case []int8:
		n = countNonZero(d)
	case []uint8:
		n = countNonZero(d)
	case []int16:
		n = countNonZero(d)
	case []uint16:
		n = countNonZero(d)
	case []int32:
		n = countNonZero(d)
	case []uint32:
		n = countNonZero(d)
	case []int64:
		n = countNonZero(d)
	case []uint64:
		n = countNonZero(d)
	case []bool:
		for _, b := range d {
			if b {
				n++
			}
		}
	case []string:
		for _, s := range d {
			if s != "" {
				n++
			}
		}
	default:
		return 0, false
	}
	return n, true
}

// fixedIntSize is the size in bytes of an element of an integer or BOOL
// type dt that fills whole bytes, or 0 for other types.
func fixedIntSize(dt onnx.DataType) int {
	switch dt {
	case onnx.TensorProto_INT8, onnx.TensorProto_UINT8, onnx.TensorProto_BOOL:
		return 1
	case onnx.TensorProto_INT16, onnx.TensorProto_UINT16:
		return 2
	case onnx.TensorProto_INT32, onnx.TensorProto_UINT32:
		return 4
	case onnx.TensorProto_INT64, onnx.TensorProto_UINT64:
		return 8
	}
	return 0
}

// countNonZeroElements counts the elements of size bytes in raw that are
// not all zero bytes: for integers, the non-zero ones. Counting in place
// spares the copy that decoding makes, as large as the tensor.
func countNonZeroElements(raw []byte, size int) int64 {
	var n int64
	if size == 1 {
		for _, b := range raw {
			if b != 0 {
				n++
			}
		}
		return n
	}
	for i := 0; i < len(raw); i += size {
		for _, b := range raw[i : i+size] {
			if b != 0 {
				n++
				break
			}
		}
	}
	return n
}

func countNonZero[T float32 | float64 | int8 | uint8 | int16 | uint16 | int32 | uint32 | int64 | uint64](xs []T) int64 {
	var n int64
	for _, x := range xs {
		if x != 0 {
			n++
		}
	}
	return n
}
