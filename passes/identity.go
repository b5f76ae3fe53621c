package passes

import (
	"slices"

	"github.com/spf13/pflag"

	"onnxopt/graph"
)

type identityElimination struct{}

func (*identityElimination) Flags(*pflag.FlagSet) {}

func (*identityElimination) Run(m *graph.Model, env *Env) (Result, error) {
	var res Result
	var err error
	m.Graph.Walk(func(g *graph.Graph) bool {
		for _, n := range slices.Clone(g.Nodes) {
			if !isIdentity(n) {
				continue
			}
			var done bool
			if done, err = bypass(g, n, env); err != nil {
				return false
			} else if done {
				res.Changes++
			}
		}
		g.Prune()
		return true
	})
	return res, err
}

// isIdentity reports whether n passes its first input through unchanged.
func isIdentity(n *graph.Node) bool {
	if n.Domain != "" && n.Domain != "ai.onnx" || len(n.Inputs) == 0 || n.Inputs[0] == nil || len(n.Outputs) == 0 || n.Outputs[0] == nil {
		return false
	}
	switch n.OpType {
	case "Identity":
		return n.Inputs[0].Type == nil || n.Inputs[0].Type.GetTensorType() != nil
	case "Dropout":
		if len(n.Outputs) > 1 && n.Outputs[1] != nil && (len(n.Outputs[1].Uses) > 0 || n.Graph.IsOutput(n.Outputs[1])) {
			return false // the mask is used
		}
		if n.Opset() >= 12 {
			// training_mode (input 2) must be absent or a constant false.
			if t := n.Input(2); t != nil && !isConstFalse(t) {
				return false
			}
		} else if n.AttrInt("is_test", 1) == 0 && n.Opset() < 7 {
			return false
		}
		return true
	}
	return false
}

func isConstFalse(v *graph.Value) bool {
	if !v.IsConstant() || v.Init == nil {
		return false
	}
	raw := v.Init.GetRawData()
	if v.Init.RawData != nil {
		return len(raw) == 1 && raw[0] == 0
	}
	d := v.Init.GetInt32Data()
	return len(d) == 1 && d[0] == 0
}

// bypass removes n, whose output equals its input, and reports whether it
// could.
func bypass(g *graph.Graph, n *graph.Node, env *Env) (bool, error) {
	in, out := n.Inputs[0], n.Outputs[0]
	if !g.IsOutput(out) {
		out.ReplaceAllUses(in)
		g.RemoveNode(n)
		env.rename(out.Name, in.Name)
		return true, nil
	}
	// The output is a graph output and keeps its name: the input's
	// producer must write it directly. That needs a value of this graph,
	// made by a node, and not itself a graph output under its own name.
	if in.Producer == nil || in.Graph != g || g.IsOutput(in) {
		return false, nil
	}
	out.ReplaceAllUses(in)
	g.RemoveNode(n)
	g.ReplaceOutput(out, in)
	if in.Type == nil {
		in.Type = out.Type
	}
	if in.DocString == "" {
		in.DocString = out.DocString
	}
	g.ValueInfo = slices.DeleteFunc(g.ValueInfo, func(v *graph.Value) bool { return v == out })
	g.Prune()
	// Nothing refers to out any more, so Prune has freed its name.
	oldName := in.Name
	if err := in.Rename(out.Name); err != nil {
		return false, err
	}
	env.rename(oldName, in.Name)
	return true, nil
}
