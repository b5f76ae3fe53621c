package passes

import (
	"slices"

	"github.com/spf13/pflag"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// redundantCasts removes casts that change no value: to the type the input
// already has, and round trips through a type that holds every value of
// the first exactly.
type redundantCasts struct{}

func (*redundantCasts) Flags(*pflag.FlagSet) {}

func (*redundantCasts) Run(m *graph.Model, env *Env) (Result, error) {
	var res Result
	var err error
	m.Graph.Walk(func(g *graph.Graph) bool {
		var n int
		n, err = removeCasts(g, env)
		res.Changes += n
		return err == nil
	})
	return res, err
}

// removeCasts makes Cast(Cast(x, B), C) read x when B holds every value of
// x's type exactly and C holds every value of B (or is x's type), and
// removes each cast to its input's own type. It counts the nodes removed
// and the nodes rewired that remain.
func removeCasts(g *graph.Graph, env *Env) (int, error) {
	if err := g.Sort(); err != nil {
		return 0, err
	}
	types := inferTypes(g)
	var r rewrites
	for _, n := range slices.Clone(g.Nodes) {
		to, ok := castTarget(n, types)
		if !ok || n.Inputs[0] == nil {
			continue
		}
		if p := n.Inputs[0].Producer; p != nil {
			mid, ok := castTarget(p, types)
			src := p.Inputs[0]
			if ok && src != nil {
				from := types.elem(src)
				if exact(from, mid) && (to == from || exact(mid, to)) {
					n.SetInput(0, src)
					r.rewire(n)
					r.removeIfDead(g, p)
				}
			}
		}
		if types.elem(n.Inputs[0]) != to {
			continue
		}
		if err := r.bypass(g, n, env); err != nil {
			return r.count(), err
		}
	}
	g.Prune()
	return r.count(), nil
}

// castTarget returns the element type a Cast or CastLike node n converts
// to.
func castTarget(n *graph.Node, types inferred) (onnx.TensorProto_DataType, bool) {
	if !isStandard(n) || len(n.Inputs) == 0 || len(n.Outputs) != 1 || n.Outputs[0] == nil {
		return 0, false
	}
	var to onnx.TensorProto_DataType
	switch n.OpType {
	case "Cast":
		to = onnx.TensorProto_DataType(n.AttrInt("to", 0))
	case "CastLike":
		to = types.elem(n.Input(1))
	}
	return to, to != onnx.TensorProto_UNDEFINED
}

// rewrites counts the changes of a pass that rewires and removes nodes:
// the nodes removed, and the nodes rewired that remain.
type rewrites struct {
	removed int
	rewired map[*graph.Node]bool
}

// rewire records that n reads other inputs now.
func (r *rewrites) rewire(n *graph.Node) {
	if r.rewired == nil {
		r.rewired = map[*graph.Node]bool{}
	}
	r.rewired[n] = true
}

// dropped records that n was removed.
func (r *rewrites) dropped(n *graph.Node) {
	r.removed++
	delete(r.rewired, n)
}

// removeIfDead removes n, a node of g or an enclosing graph, when nothing
// reads its outputs any more. A node of an enclosing graph is left to
// deadcode, since that graph's node list is being walked.
func (r *rewrites) removeIfDead(g *graph.Graph, n *graph.Node) {
	if n.Graph == g && !isLive(g, n) {
		g.RemoveNode(n)
		r.dropped(n)
	}
}

// bypass removes n, whose output equals its input, where it can (see
// bypass).
func (r *rewrites) bypass(g *graph.Graph, n *graph.Node, env *Env) error {
	done, err := bypass(g, n, env)
	if done {
		r.dropped(n)
	}
	return err
}

func (r *rewrites) count() int { return r.removed + len(r.rewired) }

// exact reports whether every value of type a converts to type b and back
// unchanged.
func exact(a, b onnx.TensorProto_DataType) bool {
	if a == b {
		return true
	}
	if a == onnx.TensorProto_UNDEFINED || b == onnx.TensorProto_UNDEFINED {
		return false
	}
	if a == onnx.TensorProto_BOOL {
		// false and true go to 0 and 1, and come back.
		return b.IsInteger() || mantissaBits(b) > 0
	}
	switch {
	case a.IsInteger() && b.IsInteger():
		// A wider integer type holds every value of a narrower one of the
		// same signedness, and an unsigned one fits a wider signed one.
		return b.Bits() > a.Bits() && (b.IsSigned() || !a.IsSigned())
	case a.IsInteger() && b.IsFloat():
		// A float of p significant bits holds every integer of up to p
		// bits, and its exponent range covers them for the types here.
		bits := a.Bits()
		if a.IsSigned() {
			bits--
		}
		return bits <= mantissaBits(b)
	case a.IsFloat() && b.IsFloat():
		return widerFloat(a, b)
	}
	return false
}

// mantissaBits is the precision of a float type, the implicit bit
// included, or 0 for types not considered.
func mantissaBits(t onnx.TensorProto_DataType) int {
	switch t {
	case onnx.TensorProto_BFLOAT16:
		return 8
	case onnx.TensorProto_FLOAT16:
		return 11
	case onnx.TensorProto_FLOAT:
		return 24
	case onnx.TensorProto_DOUBLE:
		return 53
	}
	return 0
}

// widerFloat reports whether float type b holds every value of a: its
// range and precision both cover a's.
func widerFloat(a, b onnx.TensorProto_DataType) bool {
	switch a {
	case onnx.TensorProto_FLOAT16, onnx.TensorProto_BFLOAT16:
		return b == onnx.TensorProto_FLOAT || b == onnx.TensorProto_DOUBLE
	case onnx.TensorProto_FLOAT:
		return b == onnx.TensorProto_DOUBLE
	}
	return false
}
