package report

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// A layer is the weight of one node that has one: what a histogram and a
// row of the sparsity chart show.
type layer struct {
	// key pairs the layer across two models: the node's name, or the
	// op and weight's name for a node without one.
	key    string
	op     string
	weight string // the weight's value name
	shape  []int
	// stored is the element type the weight is stored as; dequantized
	// says that the values are those of a DequantizeLinear (QDQ) or of
	// a QLinear op's scale and zero point rather than the stored ones.
	stored      string
	dequantized bool
	params      int
	zeros       int
	nonFinite   int
	// values are the weight's values in its order, read by load for the
	// layers that get a histogram.
	values []float32
	// node reads the weight through its input slot.
	node *graph.Node
	slot weightSlot
}

func (l *layer) sparsity() float64 {
	if l.params == 0 {
		return 0
	}
	return float64(l.zeros) / float64(l.params)
}

// weightSlot says which input of a node holds its weight, and for the
// QLinear ops which inputs hold the weight's scale and zero point.
type weightSlot struct {
	weight, scale, zeroPoint int
	// axis is the weight's axis that a per-channel scale runs along.
	axis int
}

// weightOf finds the weight input of the ops that have one: convolutions,
// matrix products and embedding lookups. Integer ops without a scale
// (ConvInteger, MatMulInteger) have no float weights to show.
func weightOf(n *graph.Node) (weightSlot, bool) {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return weightSlot{}, false
	}
	constant := func(i int) bool { return constantOf(n.Input(i)) != nil || dequantizer(n.Input(i)) != nil }
	switch n.OpType {
	case "Conv", "ConvTranspose":
		return weightSlot{weight: 1, scale: -1, zeroPoint: -1}, constant(1)
	case "Gemm", "MatMul":
		if !constant(1) && constant(0) {
			return weightSlot{weight: 0, scale: -1, zeroPoint: -1}, true
		}
		return weightSlot{weight: 1, scale: -1, zeroPoint: -1}, constant(1)
	case "Gather":
		return weightSlot{weight: 0, scale: -1, zeroPoint: -1}, constant(0) && !constant(1)
	case "QLinearConv":
		return weightSlot{weight: 3, scale: 4, zeroPoint: 5, axis: 0}, constant(3) && constant(4)
	case "QLinearMatMul":
		// b_scale is per column of b, its last axis.
		return weightSlot{weight: 3, scale: 4, zeroPoint: 5, axis: -1}, constant(3) && constant(4)
	}
	return weightSlot{}, false
}

// constantOf returns the data of v when v is an initializer or a Constant
// node's tensor, else nil.
func constantOf(v *graph.Value) *onnx.TensorProto {
	switch {
	case v == nil:
		return nil
	case v.Init != nil:
		return v.Init
	case v.Producer != nil && v.Producer.OpType == "Constant" && (v.Producer.Domain == "" || v.Producer.Domain == "ai.onnx"):
		return v.Producer.AttrTensor("value")
	}
	return nil
}

// dequantizer returns the DequantizeLinear node that computes v from
// constants (a QDQ weight), or nil.
func dequantizer(v *graph.Value) *graph.Node {
	if v == nil || v.Producer == nil {
		return nil
	}
	n := v.Producer
	if n.OpType != "DequantizeLinear" || n.Domain != "" && n.Domain != "ai.onnx" {
		return nil
	}
	for _, in := range n.Inputs {
		if in != nil && constantOf(in) == nil {
			return nil
		}
	}
	return n
}

// layersOf returns the layers of m's main graph, in its node order,
// described from their weights' shapes; load reads their values.
func layersOf(m *graph.Model) []*layer {
	var layers []*layer
	for _, n := range m.Graph.Nodes {
		slot, ok := weightOf(n)
		if !ok {
			continue
		}
		v := n.Input(slot.weight)
		l := &layer{key: n.Name, op: n.OpType, weight: v.Name, node: n, slot: slot}
		if l.key == "" {
			l.key = n.OpType + " " + v.Name
		}
		stored := constantOf(v)
		if dq := dequantizer(v); slot.scale < 0 && dq != nil {
			stored, l.weight = constantOf(dq.Input(0)), dq.Input(0).Name
			l.dequantized = true
		}
		l.dequantized = l.dequantized || slot.scale >= 0
		l.stored = dtypeName(stored.GetDataType())
		for _, d := range stored.GetDims() {
			l.shape = append(l.shape, int(d))
		}
		if params, err := onnx.NumElements(stored.GetDims()); err == nil {
			l.params = int(params)
		}
		layers = append(layers, l)
	}
	return layers
}

// load reads the layer's weights, as m computes them, and counts the
// zeros among them, and the non-finite ones, which a histogram cannot
// place. It keeps the values when keep is set.
func (l *layer) load(m *graph.Model, keep bool) error {
	n, slot := l.node, l.slot
	v := n.Input(slot.weight)
	var t *runtime.Tensor
	var err error
	switch dq := dequantizer(v); {
	case slot.scale >= 0:
		stored := constantOf(v)
		axis := int64(slot.axis)
		if axis < 0 {
			axis += int64(len(stored.GetDims()))
		}
		ins := []*onnx.TensorProto{stored, constantOf(n.Input(slot.scale)), constantOf(n.Input(slot.zeroPoint))}
		t, err = dequantize(m, ins, []*onnx.AttributeProto{{Name: ptr("axis"), Type: onnx.AttributeProto_INT.Enum(), I: &axis}})
	case dq != nil:
		ins := make([]*onnx.TensorProto, len(dq.Inputs))
		for i, in := range dq.Inputs {
			ins[i] = constantOf(in)
		}
		attrs := make([]*onnx.AttributeProto, len(dq.Attrs))
		for i, a := range dq.Attrs {
			attrs[i] = a.Proto
		}
		t, err = dequantize(m, ins, attrs)
	default:
		stored := constantOf(v)
		if stored.GetDataLocation() == onnx.TensorProto_EXTERNAL {
			return fmt.Errorf("%q is external data that was not loaded", v.Name)
		}
		t, err = runtime.TensorFromProto(stored)
	}
	if err != nil {
		return fmt.Errorf("%q: %w", l.weight, err)
	}
	if t.Kind != runtime.KindTensor {
		return fmt.Errorf("%q is not a tensor", l.weight)
	}
	l.shape = t.Shape
	switch d := t.Data.(type) {
	case []float32:
		count(l, d, keep)
	case []float64:
		count(l, d, keep)
	default:
		return fmt.Errorf("%q holds %s, not floats", l.weight, l.stored)
	}
	return nil
}

// count counts the values' zeros and non-finite ones, and keeps the
// values when keep is set.
func count[T float32 | float64](l *layer, values []T, keep bool) {
	l.params, l.zeros, l.nonFinite = len(values), 0, 0
	for _, x := range values {
		switch f := float64(x); {
		case math.IsNaN(f) || math.IsInf(f, 0):
			l.nonFinite++
		case f == 0:
			l.zeros++
		}
	}
	l.values = nil
	if keep {
		l.values = make([]float32, len(values))
		for i, x := range values {
			l.values[i] = float32(x)
		}
	}
}

// dequantize runs one DequantizeLinear node on constant inputs (nil for
// an omitted one) with runtime.RunNode at m's opsets, so that the values
// are those the model computes.
func dequantize(m *graph.Model, inputs []*onnx.TensorProto, attrs []*onnx.AttributeProto) (*runtime.Tensor, error) {
	ts := make([]*runtime.Tensor, len(inputs))
	for i, tp := range inputs {
		if tp == nil {
			continue
		}
		t, err := runtime.TensorFromProto(tp)
		if err != nil {
			return nil, err
		}
		ts[i] = t
	}
	// Trailing omitted inputs are dropped, as a serialized node would.
	for len(ts) > 0 && ts[len(ts)-1] == nil {
		ts = ts[:len(ts)-1]
	}
	outs, err := runtime.RunNode(runtime.NodeCall{
		IRVersion: m.IRVersion, Opsets: m.Opsets,
		OpType: "DequantizeLinear", Name: "dequantize", Attrs: attrs,
		Inputs: ts, Outputs: []bool{true},
	})
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

func dtypeName(dt int32) string {
	name := strings.ToLower(onnx.TensorProto_DataType(dt).String())
	if name == "float" {
		return "float32"
	}
	return name
}

func ptr[T any](x T) *T { return &x }

// A layerPair is one layer in the models a report compares; either side
// is nil when only one model has it.
type layerPair struct {
	key           string
	before, after *layer
	order         int // position in the reports' layer order
}

// changed counts the weights that differ between the two sides, and
// the largest difference; ok is false when the sides cannot be compared
// element for element.
func (p *layerPair) changed() (n int, largest float64, ok bool) {
	if p.before == nil || p.after == nil || !slices.Equal(p.before.shape, p.after.shape) ||
		len(p.before.values) != len(p.after.values) || p.before.values == nil || p.after.values == nil {
		return 0, 0, false
	}
	for i, b := range p.before.values {
		a := p.after.values[i]
		if a == b || a != a && b != b {
			continue
		}
		n++
		largest = max(largest, math.Abs(float64(a)-float64(b)))
	}
	return n, largest, true
}

func (p *layerPair) params() int {
	n := 0
	if p.before != nil {
		n = p.before.params
	}
	if p.after != nil {
		n = max(n, p.after.params)
	}
	return n
}

// pairLayers pairs the layers of two models by key, in before's order
// with the layers only after has at the end. Either list may be empty.
func pairLayers(before, after []*layer) []*layerPair {
	var pairs []*layerPair
	byKey := map[string]*layerPair{}
	for _, l := range before {
		if byKey[l.key] != nil {
			continue // a node name used twice: keep the first
		}
		p := &layerPair{key: l.key, before: l, order: len(pairs)}
		byKey[l.key] = p
		pairs = append(pairs, p)
	}
	for _, l := range after {
		p := byKey[l.key]
		switch {
		case p == nil:
			p = &layerPair{key: l.key, order: len(pairs)}
			byKey[l.key] = p
			pairs = append(pairs, p)
		case p.after != nil:
			continue
		}
		p.after = l
	}
	return pairs
}

// largest returns up to n of pairs, those with the most parameters, in
// their order.
func largest(pairs []*layerPair, n int) []*layerPair {
	if len(pairs) <= n {
		return pairs
	}
	bySize := slices.Clone(pairs)
	slices.SortStableFunc(bySize, func(a, b *layerPair) int { return b.params() - a.params() })
	bySize = bySize[:n]
	slices.SortFunc(bySize, func(a, b *layerPair) int { return a.order - b.order })
	return bySize
}
