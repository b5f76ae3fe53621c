package passes

import (
	"math"

	"github.com/spf13/pflag"

	"onnxopt/graph"
)

// pruneMagnitude zeroes the weights of least absolute value (L1
// unstructured pruning).
type pruneMagnitude struct {
	pruneOptions
}

func newPruneMagnitude() Pass {
	return &pruneMagnitude{pruneOptions{Sparsity: 0.5}}
}

func (p *pruneMagnitude) Flags(fs *pflag.FlagSet) { p.flags(fs, true) }

func (p *pruneMagnitude) Run(m *graph.Model, env *Env) (Result, error) {
	return runPrune(m, env, &p.pruneOptions, func(targets []*pruneTarget) ([][]bool, error) {
		return lowestScores(targets, magnitudes(targets), p.Sparsity), nil
	})
}

// magnitudes scores each weight by its absolute value.
func magnitudes(targets []*pruneTarget) [][]float64 {
	scores := make([][]float64, len(targets))
	for i, t := range targets {
		scores[i] = make([]float64, len(t.vals))
		for j, v := range t.vals {
			scores[i][j] = math.Abs(v)
		}
	}
	return scores
}
