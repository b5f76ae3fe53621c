package passes

import (
	"slices"

	"github.com/spf13/pflag"

	"onnxopt/graph"
)

type unusedInitializers struct{}

func (*unusedInitializers) Flags(*pflag.FlagSet) {}

func (*unusedInitializers) Run(m *graph.Model, env *Env) (Result, error) {
	var res Result
	m.Graph.Walk(func(g *graph.Graph) bool {
		inputs := len(g.Inputs)
		g.Inputs = slices.DeleteFunc(g.Inputs, func(v *graph.Value) bool { return v.Init != nil })
		res.Changes += inputs - len(g.Inputs)
		for _, v := range slices.Clone(g.Initializers) {
			if len(v.Uses) == 0 && !g.IsOutput(v) {
				g.RemoveInitializer(v)
				res.Changes++
			}
		}
		g.ValueInfo = slices.DeleteFunc(g.ValueInfo, func(v *graph.Value) bool {
			return v.Producer == nil && v.Init == nil && len(v.Uses) == 0 && !g.IsInput(v) && !g.IsOutput(v)
		})
		g.Prune()
		return true
	})
	return res, nil
}
