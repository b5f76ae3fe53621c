package passes

import (
	"github.com/spf13/pflag"

	"onnxopt/graph"
)

type deadCode struct{}

func (*deadCode) Flags(*pflag.FlagSet) {}

func (*deadCode) Run(m *graph.Model, env *Env) (Result, error) {
	var res Result
	m.Graph.Walk(func(g *graph.Graph) bool {
		res.Changes += removeDead(g)
		return true
	})
	return res, nil
}

// removeDead removes g's dead nodes, last first, so that a chain of them
// goes in one sweep.
func removeDead(g *graph.Graph) int {
	removed := 0
	for i := len(g.Nodes) - 1; i >= 0; i-- {
		n := g.Nodes[i]
		if isLive(g, n) {
			continue
		}
		g.RemoveNode(n)
		removed++
	}
	g.Prune()
	return removed
}

func isLive(g *graph.Graph, n *graph.Node) bool {
	for _, v := range n.Outputs {
		if v != nil && (len(v.Uses) > 0 || g.IsOutput(v)) {
			return true
		}
	}
	return false
}
