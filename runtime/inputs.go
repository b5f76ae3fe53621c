package runtime

import (
	"fmt"
	"math/rand/v2"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// RandomInputs makes a tensor for every graph input that has no default
// (initializer), from a seeded generator: floats uniform in [lo, hi),
// integers uniform in [max(lo, 0), hi) rounded down, booleans fair coins.
// Symbolic dimensions take their value from dims, by name, or 1.
func RandomInputs(g *graph.Graph, seed uint64, lo, hi float64, dims map[string]int64) (map[string]*Tensor, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := map[string]*Tensor{}
	for _, v := range g.Inputs {
		if v.Init != nil {
			continue
		}
		s, ok := v.Shape()
		if !ok {
			return nil, fmt.Errorf("input %q has no declared shape", v.Name)
		}
		shape := make([]int, len(s))
		for i, d := range s {
			switch {
			case d.Known:
				shape[i] = int(d.Value)
			case d.Param != "" && dims[d.Param] > 0:
				shape[i] = int(dims[d.Param])
			default:
				shape[i] = 1
			}
		}
		t, err := NewTensor(v.ElemType(), shape...)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", v.Name, err)
		}
		uniform := func() float64 { return lo + (hi-lo)*rng.Float64() }
		ilo := max(lo, 0)
		integer := func() float64 { return float64(int64(ilo + (hi-ilo)*rng.Float64())) }
		switch d := t.Data.(type) {
		case []float32:
			for i := range d {
				d[i] = float32(uniform())
			}
			if t.DType != onnx.TensorProto_FLOAT {
				roundNarrow(t)
			}
		case []float64:
			for i := range d {
				d[i] = uniform()
			}
		case []int64:
			for i := range d {
				d[i] = int64(integer())
			}
		case []int32:
			for i := range d {
				d[i] = int32(integer())
			}
		case []int8:
			for i := range d {
				d[i] = int8(integer())
			}
		case []uint8:
			for i := range d {
				d[i] = uint8(integer())
			}
		case []bool:
			for i := range d {
				d[i] = rng.IntN(2) == 1
			}
		default:
			return nil, fmt.Errorf("input %q: no random values for %s", v.Name, dtypeName(v.ElemType()))
		}
		out[v.Name] = t
	}
	return out, nil
}

// roundNarrow rounds a narrow-float tensor's float32 values to its type.
func roundNarrow(t *Tensor) {
	d := t.Data.([]float32)
	for i, x := range d {
		switch t.DType {
		case onnx.TensorProto_FLOAT16:
			d[i] = onnx.Float16frombits(onnx.Float16bits(x))
		case onnx.TensorProto_BFLOAT16:
			d[i] = onnx.BFloat16frombits(onnx.BFloat16bits(x))
		}
	}
}
