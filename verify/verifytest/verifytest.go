// Package verifytest makes models for the tests of numeric verification:
// copies of a model with one weight changed or one value renamed, so that
// a test knows exactly where the copy departs from the original.
package verifytest

import (
	"errors"
	"fmt"
	"math"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// ScaleWeight copies the model at src to dst with the element of largest
// magnitude of the float32 initializer called weight multiplied by
// factor. It returns the first node that reads the weight: the first
// whose output the change moves.
func ScaleWeight(src, dst, weight string, factor float32) (*graph.Node, error) {
	m, err := graph.Load(src)
	if err != nil {
		return nil, err
	}
	g := m.Graph
	if err := g.Sort(); err != nil {
		return nil, err
	}
	v := g.Lookup(weight)
	if v == nil || v.Init == nil {
		return nil, fmt.Errorf("%s: no initializer %q", src, weight)
	}
	data, err := onnx.Decode(v.Init)
	if err != nil {
		return nil, fmt.Errorf("%s: %q: %w", src, weight, err)
	}
	w, ok := data.([]float32)
	if !ok || len(w) == 0 {
		return nil, fmt.Errorf("%s: %q is not a non-empty float32 tensor", src, weight)
	}
	scaled := append([]float32(nil), w...)
	largest := 0
	for i, x := range scaled {
		if math.Abs(float64(x)) > math.Abs(float64(scaled[largest])) {
			largest = i
		}
	}
	scaled[largest] *= factor
	t, err := onnx.NewTensor(weight, onnx.TensorProto_DataType(v.Init.GetDataType()), v.Init.GetDims(), scaled)
	if err != nil {
		return nil, err
	}
	v.SetInit(t)
	var first *graph.Node
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in == v && first == nil {
				first = n
			}
		}
	}
	if first == nil {
		return nil, fmt.Errorf("%s: no node reads %q", src, weight)
	}
	return first, m.Save(dst, onnx.WriteOptions{})
}

// RenameValue copies the model at src to dst with the value old, which a
// node computes, called new.
func RenameValue(src, dst, old, new string) error {
	m, err := graph.Load(src)
	if err != nil {
		return err
	}
	v := m.Graph.Lookup(old)
	if v == nil || v.Producer == nil {
		return errors.New(src + ": no node computes " + old)
	}
	if err := v.Rename(new); err != nil {
		return err
	}
	return m.Save(dst, onnx.WriteOptions{})
}
