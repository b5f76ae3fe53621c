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
	if err := p.check(env); err != nil {
		return Result{}, err
	}
	warnQuantized(m, env)
	if err := m.Graph.Sort(); err != nil {
		return Result{}, err
	}
	return p.quantizeWithin(m, p.planLayers(m.Graph), env, p.quantizeLayers)
}

// quantizeLayers quantizes the weights of the given layers of m's root
// graph and of every layer of its subgraphs, which the budget leaves
// alone.
func (p *weightQuantization) quantizeLayers(m *graph.Model, layers []*graph.Node, env *Env) (Result, error) {
	return quantizeGraphs(m, layers, &p.quantOptions, p.int8Weights, env)
}

// quantizeGraphs quantizes with quantize the weights of the given layers
// of m's root graph and of every layer its options pick in its subgraphs.
func quantizeGraphs(m *graph.Model, layers []*graph.Node, o *quantOptions, quantize weightQuantizer, env *Env) (Result, error) {
	var res Result
	var err error
	m.Graph.Walk(func(g *graph.Graph) bool {
		if g != m.Graph {
			plan := o.planLayers(g)
			res.Notes = append(res.Notes, plan.notes...)
			layers = plan.layers
		}
		var n int
		var notes []string
		n, notes, err = quantizeWeights(layers, quantize, env)
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
