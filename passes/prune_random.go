package passes

import (
	"math/rand/v2"

	"github.com/spf13/pflag"

	"onnxopt/graph"
)

// pruneRandom zeroes weights chosen at random: the baseline every other
// criterion must beat.
type pruneRandom struct {
	pruneOptions
	Seed uint64
}

func newPruneRandom() Pass {
	return &pruneRandom{pruneOptions: pruneOptions{Sparsity: 0.5}, Seed: 1}
}

func (p *pruneRandom) Flags(fs *pflag.FlagSet) {
	p.flags(fs, true)
	fs.Uint64Var(&p.Seed, "seed", p.Seed, "seed of the random choice: the same seed and model give the same bytes")
}

func (p *pruneRandom) Run(m *graph.Model, env *Env) (Result, error) {
	return runPrune(m, env, &p.pruneOptions, func(targets []*pruneTarget) ([][]bool, error) {
		// Uniform scores make the lowest round(S·n) a uniformly random
		// subset: every weight is zeroed with probability S, and the
		// layer loses exactly its share. The stream is drawn in the
		// targets' topological order, which a model's bytes fix.
		rng := rand.New(rand.NewPCG(p.Seed, 0x9e3779b97f4a7c15))
		scores := make([][]float64, len(targets))
		for i, t := range targets {
			scores[i] = make([]float64, len(t.vals))
			for j := range scores[i] {
				scores[i][j] = rng.Float64()
			}
		}
		return lowestScores(targets, scores, p.Sparsity), nil
	})
}
