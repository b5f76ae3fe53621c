package passes

import (
	"fmt"

	"github.com/spf13/pflag"

	"onnxopt/graph"
)

// weightQuantization stores the weights of layers as int8 read through
// DequantizeLinear; activations stay float.
type weightQuantization struct {
	quantOptions
}

func newQuantizeWeight() Pass {
	return &weightQuantization{quantOptions{OpTypes: []string{"Conv", "ConvTranspose", "Gemm", "MatMul", "Gather"}}}
}

func (p *weightQuantization) Flags(fs *pflag.FlagSet) {
	p.flags(fs, "op types whose constant weights are quantized")
}

func (p *weightQuantization) Run(m *graph.Model, env *Env) (Result, error) {
	if err := requireOpset(m, p.PerChannel); err != nil {
		return Result{}, err
	}
	warnQuantized(m, env)
	if err := m.Graph.Sort(); err != nil {
		return Result{}, err
	}
	var res Result
	var err error
	m.Graph.Walk(func(g *graph.Graph) bool {
		plan := p.planLayers(g)
		res.Notes = append(res.Notes, plan.notes...)
		var n int
		var notes []string
		n, notes, err = quantizeWeights(plan.layers, &p.quantOptions, env)
		res.Changes += n
		res.Notes = append(res.Notes, notes...)
		if err != nil {
			err = fmt.Errorf("graph %q: %w", g.Name, err)
			return false
		}
		return true
	})
	return res, err
}
