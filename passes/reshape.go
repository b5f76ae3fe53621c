package passes

import (
	"slices"

	"github.com/spf13/pflag"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// reshapes collapses chains of reshapes and removes reshapes that keep
// their input's shape.
type reshapes struct{}

func (*reshapes) Flags(*pflag.FlagSet) {}

func (*reshapes) Run(m *graph.Model, env *Env) (Result, error) {
	var res Result
	var err error
	m.Graph.Walk(func(g *graph.Graph) bool {
		var n int
		n, err = collapseReshapes(g, env)
		res.Changes += n
		return err == nil
	})
	return res, err
}

// collapseReshapes makes each Reshape whose input comes from a Reshape,
// Flatten, Squeeze or Unsqueeze read that node's input instead, when its
// own shape copies nothing from the intermediate shape; then it removes
// the Reshapes, Flattens and Squeezes whose output has their input's
// shape. It counts the nodes removed and the nodes rewired that remain.
func collapseReshapes(g *graph.Graph, env *Env) (int, error) {
	if err := g.Sort(); err != nil {
		return 0, err
	}
	types := inferTypes(g)
	var r rewrites
	for _, n := range slices.Clone(g.Nodes) {
		if !isStandard(n) || n.Input(0) == nil || len(n.Outputs) != 1 || n.Outputs[0] == nil {
			continue
		}
		var noop bool
		switch n.OpType {
		case "Reshape":
			target, ok := reshapeTarget(n)
			if !ok {
				continue
			}
			allowZero := n.AttrInt("allowzero", 0) != 0
			if p := n.Inputs[0].Producer; p != nil && isReshaping(p) && (allowZero || !slices.Contains(target, 0)) {
				n.SetInput(0, p.Inputs[0])
				r.rewire(n)
				r.removeIfDead(g, p)
			}
			noop = keepsShape(types, n.Inputs[0], target, allowZero)
		case "Flatten", "Squeeze":
		default:
			continue
		}
		if !noop && !sameStaticShape(types, n.Inputs[0], n.Outputs[0]) {
			continue
		}
		if err := r.bypass(g, n, env); err != nil {
			return r.count(), err
		}
	}
	g.Prune()
	return r.count(), nil
}

// isReshaping reports whether n only reshapes its first input: its output
// holds the same elements in the same order.
func isReshaping(n *graph.Node) bool {
	switch n.OpType {
	case "Reshape", "Flatten", "Squeeze", "Unsqueeze":
		return isStandard(n) && n.Input(0) != nil
	}
	return false
}

// reshapeTarget returns the shape a Reshape node asks for, when it is a
// constant: its shape input, or before opset 5 its shape attribute.
func reshapeTarget(n *graph.Node) ([]int64, bool) {
	if n.Opset() < 5 {
		if n.Attr("shape") == nil {
			return nil, false
		}
		return n.AttrInts("shape", nil), true
	}
	s := n.Input(1)
	if s == nil || s.Init == nil || !s.IsConstant() {
		return nil, false
	}
	target, err := onnx.Int64s(s.Init)
	return target, err == nil
}

// keepsShape reports whether reshaping x to target gives x's own shape,
// even where x's sizes are not known: each entry of target copies x's
// size (0, unless allowZero), equals it, or is the one -1, which then
// stands for x's size because every other size is known and non-zero.
func keepsShape(types inferred, x *graph.Value, target []int64, allowZero bool) bool {
	shape, ok := types.shape(x)
	if !ok || len(shape) != len(target) {
		return false
	}
	inferredAt := -1
	for i, d := range target {
		switch {
		case d == -1 && inferredAt < 0:
			inferredAt = i
		case d == 0 && !allowZero:
		case shape[i].Known && shape[i].Value == d:
		default:
			return false
		}
	}
	if inferredAt < 0 {
		return true
	}
	for i, d := range shape {
		if i != inferredAt && (!d.Known || d.Value == 0) {
			return false
		}
	}
	return true
}

// sameStaticShape reports whether x and y have the same known shape.
func sameStaticShape(types inferred, x, y *graph.Value) bool {
	xs, ok1 := types.shape(x)
	ys, ok2 := types.shape(y)
	if !ok1 || !ok2 {
		return false
	}
	a, ok1 := xs.Static()
	b, ok2 := ys.Static()
	return ok1 && ok2 && slices.Equal(a, b)
}
