package runtime

import (
	"fmt"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// A NodeCall is one node for RunNode to run on its own.
type NodeCall struct {
	// IRVersion and Opsets are the model's the node belongs to: they
	// choose the version of the op that runs.
	IRVersion int64
	Opsets    []graph.Opset
	Domain    string
	OpType    string
	// Name is the node's name, which errors quote.
	Name  string
	Attrs []*onnx.AttributeProto
	// Inputs holds the node's inputs in order; a nil entry omits an
	// optional input.
	Inputs []*Tensor
	// Outputs says which of the node's outputs to compute, in order; a
	// false entry omits an optional output.
	Outputs []bool
}

// RunNode runs one node on its own: it compiles a model of that node
// alone, whose graph inputs are the node's inputs (with the types and
// shapes of the tensors given) and whose outputs are the node's, and runs
// it, so that the results are the runtime's own numbers for that node.
// The results are in the order of c.Outputs, nil where an output is
// omitted.
func RunNode(c NodeCall) ([]*Tensor, error) {
	g := graph.NewModel(c.IRVersion, c.Opsets...).Graph
	feeds := map[string]*Tensor{}
	// A tensor passed for several inputs is one graph input.
	local := map[*Tensor]*graph.Value{}
	inputs := make([]*graph.Value, len(c.Inputs))
	for i, t := range c.Inputs {
		if t == nil {
			continue
		}
		if local[t] == nil {
			v := g.NewValue(fmt.Sprintf("input%d", i))
			if t.Kind == KindTensor {
				shape := make([]int64, len(t.Shape))
				for j, d := range t.Shape {
					shape[j] = int64(d)
				}
				v.SetTensorType(t.DType, graph.Known(shape...))
			}
			g.Inputs = append(g.Inputs, v)
			feeds[v.Name] = t
			local[t] = v
		}
		inputs[i] = local[t]
	}
	outputs := make([]*graph.Value, len(c.Outputs))
	for i, wanted := range c.Outputs {
		if wanted {
			outputs[i] = g.NewValue(fmt.Sprintf("output%d", i))
			g.Outputs = append(g.Outputs, outputs[i])
		}
	}
	n, err := g.NewNode(c.OpType, c.Name, inputs, outputs, c.Attrs...)
	if err != nil {
		return nil, err
	}
	n.Domain = c.Domain
	plan, err := Compile(g)
	if err != nil {
		return nil, err
	}
	results, err := plan.Run(feeds)
	if err != nil {
		return nil, err
	}
	outs := make([]*Tensor, len(outputs))
	for i, v := range outputs {
		if v != nil {
			outs[i] = results[v.Name]
		}
	}
	return outs, nil
}
