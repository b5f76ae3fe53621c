package ort

import (
	"fmt"
	"math"
	"os"
	"slices"

	"google.golang.org/protobuf/proto"

	"onnxopt/onnx"
)

// Tolerances for comparing with the ONNX conformance suite's expected
// outputs, as the project uses everywhere.
const (
	suiteRTol = 1e-3
	suiteATol = 1e-7
)

func readTensorProto(path string) (*onnx.TensorProto, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p := &onnx.TensorProto{}
	if err := proto.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

func readTensor(path string) (*Tensor, error) {
	p, err := readTensorProto(path)
	if err != nil {
		return nil, err
	}
	tensor, err := FromProto(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tensor, nil
}

// compareTensors returns an error describing the first element of got that
// differs from want by more than atol + rtol*|want|; integers and booleans
// must be equal. NaN matches NaN.
func compareTensors(got, want *Tensor, rtol, atol float64) error {
	if got.DType != want.DType {
		return fmt.Errorf("data type %s, want %s", dataTypeName(got.DType), dataTypeName(want.DType))
	}
	if !slices.Equal(got.Shape, want.Shape) {
		return fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
	}
	switch w := want.Data.(type) {
	case []float32:
		return compareFloats(got.Data.([]float32), w, rtol, atol)
	case []float64:
		return compareFloats(got.Data.([]float64), w, rtol, atol)
	case []int8:
		return compareExact(got.Data.([]int8), w)
	case []int16:
		return compareExact(got.Data.([]int16), w)
	case []int32:
		return compareExact(got.Data.([]int32), w)
	case []int64:
		return compareExact(got.Data.([]int64), w)
	case []uint8:
		return compareExact(got.Data.([]uint8), w)
	case []uint16:
		return compareExact(got.Data.([]uint16), w)
	case []uint32:
		return compareExact(got.Data.([]uint32), w)
	case []uint64:
		return compareExact(got.Data.([]uint64), w)
	case []bool:
		return compareExact(got.Data.([]bool), w)
	}
	return fmt.Errorf("cannot compare %T", want.Data)
}

func compareFloats[T float32 | float64](got, want []T, rtol, atol float64) error {
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(w) && math.IsNaN(g) || g == w {
			continue
		}
		if !(math.Abs(g-w) <= atol+rtol*math.Abs(w)) {
			return fmt.Errorf("element %d: %g, want %g (rtol %g, atol %g)", i, g, w, rtol, atol)
		}
	}
	return nil
}

func compareExact[T comparable](got, want []T) error {
	for i := range want {
		if got[i] != want[i] {
			return fmt.Errorf("element %d: %v, want %v", i, got[i], want[i])
		}
	}
	return nil
}
