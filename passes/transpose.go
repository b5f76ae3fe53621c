package passes

import (
	"slices"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// transposes fuses consecutive Transposes and removes those that keep
// every axis in place.
type transposes struct{}

func (*transposes) Flags(*pflag.FlagSet) {}

func (*transposes) Run(m *graph.Model, env *Env) (Result, error) {
	var res Result
	var err error
	m.Graph.Walk(func(g *graph.Graph) bool {
		var n int
		n, err = fuseTransposes(g, env)
		res.Changes += n
		return err == nil
	})
	return res, err
}

// fuseTransposes makes each Transpose of a Transpose read the first one's
// input with the composed permutation, then removes the Transposes whose
// permutation is the identity. It counts the nodes removed and the nodes
// rewired that remain.
func fuseTransposes(g *graph.Graph, env *Env) (int, error) {
	if err := g.Sort(); err != nil {
		return 0, err
	}
	types := inferTypes(g)
	var r rewrites
	for _, n := range slices.Clone(g.Nodes) {
		perm, ok := permOf(n, types)
		if !ok {
			continue
		}
		if p := n.Inputs[0].Producer; p != nil {
			// Output axis i is axis inner[outer[i]] of the inner input.
			if inner, ok := permOf(p, types); ok && len(inner) == len(perm) {
				composed := make([]int64, len(perm))
				for i, a := range perm {
					composed[i] = inner[a]
				}
				perm = composed
				n.SetInput(0, p.Inputs[0])
				n.SetAttr(&onnx.AttributeProto{Name: proto.String("perm"), Type: onnx.AttributeProto_INTS.Enum(), Ints: composed})
				r.rewire(n)
				r.removeIfDead(g, p)
			}
		}
		if !isIdentityPerm(perm) {
			continue
		}
		if err := r.bypass(g, n, env); err != nil {
			return r.count(), err
		}
	}
	g.Prune()
	return r.count(), nil
}

// permOf returns the permutation of Transpose node n: its perm attribute,
// or the reversal of its input's axes when the rank is known. A perm that
// is not a permutation is refused.
func permOf(n *graph.Node, types inferred) ([]int64, bool) {
	if n.OpType != "Transpose" || !isStandard(n) || n.Input(0) == nil || len(n.Outputs) != 1 || n.Outputs[0] == nil {
		return nil, false
	}
	perm := n.AttrInts("perm", nil)
	if n.Attr("perm") == nil {
		shape, ok := types.shape(n.Inputs[0])
		if !ok {
			return nil, false
		}
		perm = make([]int64, len(shape))
		for i := range perm {
			perm[i] = int64(len(perm) - 1 - i)
		}
	}
	seen := make([]bool, len(perm))
	for _, a := range perm {
		if a < 0 || a >= int64(len(perm)) || seen[a] {
			return nil, false
		}
		seen[a] = true
	}
	return perm, true
}

func isIdentityPerm(perm []int64) bool {
	for i, a := range perm {
		if a != int64(i) {
			return false
		}
	}
	return true
}
