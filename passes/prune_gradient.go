package passes

import (
	"fmt"
	"math"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/runtime"
)

// pruneGradient zeroes the weights whose removal the loss feels least,
// estimated from gradients on calibration data. The loss needs no labels:
// it is the cross-entropy of the model's logits against its own
// predictions (runtime.LossSelfCrossEntropy), summed over the samples.
type pruneGradient struct {
	pruneOptions
	Saliency string
}

// Saliency criteria of prune-gradient.
const (
	// saliencyTaylor is the first-order Taylor estimate of the change of
	// the loss when w becomes 0: |w·∂L/∂w|, with L summed over the
	// calibration set.
	saliencyTaylor = "taylor"
	// saliencyFisher is the second-order estimate with the empirical
	// Fisher information as the Hessian's diagonal: w²·E[g²], g the
	// gradient of one sample's loss.
	saliencyFisher = "fisher"
)

func newPruneGradient() Pass {
	return &pruneGradient{pruneOptions: pruneOptions{Sparsity: 0.5}, Saliency: saliencyTaylor}
}

func (p *pruneGradient) Flags(fs *pflag.FlagSet) {
	p.flags(fs, true)
	fs.StringVar(&p.Saliency, "saliency", p.Saliency, "taylor: |w·∂L/∂w|; fisher: w²·E[(∂L/∂w)²] over single samples")
}

// ProgressStages adds to the stages of the options the calibration
// batches whose gradients have been taken, reported as each is done.
func (p *pruneGradient) ProgressStages() []string {
	return append([]string{"saliency"}, p.pruneOptions.ProgressStages()...)
}

func (p *pruneGradient) Run(m *graph.Model, env *Env) (Result, error) {
	if p.Saliency != saliencyTaylor && p.Saliency != saliencyFisher {
		return Result{}, fmt.Errorf("--saliency %q: want %s or %s", p.Saliency, saliencyTaylor, saliencyFisher)
	}
	if len(env.Calibration) == 0 {
		return Result{}, fmt.Errorf("gradient saliency needs calibration data")
	}
	if err := checkCalibration(m.Graph, env.Calibration); err != nil {
		return Result{}, err
	}
	return runPrune(m, env, &p.pruneOptions, func(targets []*pruneTarget) ([][]bool, error) {
		scores, err := p.scores(m, targets, env.Calibration)
		if err != nil {
			return nil, err
		}
		return lowestScores(targets, scores, p.Sparsity), nil
	})
}

// scores computes the saliency of every element of the targets on the
// calibration batches.
func (p *pruneGradient) scores(m *graph.Model, targets []*pruneTarget, calib []map[string]*runtime.Tensor) ([][]float64, error) {
	// Gradients are taken with respect to initializers of the main graph:
	// on a copy, the weights that Constant nodes hold become initializers
	// of the same name.
	work, err := graph.FromProto(proto.CloneOf(m.ToProto()))
	if err != nil {
		return nil, fmt.Errorf("copying the model for gradients: %w", err)
	}
	g := work.Graph
	params := make([]string, len(targets))
	for i, t := range targets {
		if t.w.Value.Graph.Parent != nil {
			return nil, fmt.Errorf("weight %q is inside a subgraph, which gradients do not reach", t.w.Name())
		}
		params[i] = t.w.Name()
		v := g.Lookup(t.w.Name())
		if v.Init == nil {
			c := v.Producer
			g.RemoveNode(c)
			v.Init = cloneTensor(c.AttrTensor("value"))
			v.Init.Name = proto.String(v.Name)
			g.Initializers = append(g.Initializers, v)
		}
	}
	plan, err := runtime.CompileGrad(g, runtime.LossSpec{Kind: runtime.LossSelfCrossEntropy}, params)
	if err != nil {
		return nil, err
	}
	acc := make([][]float64, len(targets)) // Σg for Taylor, Σg² for Fisher
	for i, t := range targets {
		acc[i] = make([]float64, len(t.vals))
	}
	samples := 0
	add := func(batch map[string]*runtime.Tensor, square bool) error {
		res, err := plan.Run(batch, nil)
		if err != nil {
			return err
		}
		for i, name := range params {
			grad, err := float64sOf(res.Grads[name])
			if err != nil {
				return fmt.Errorf("gradient of %q: %w", name, err)
			}
			for j, v := range grad {
				if square {
					v *= v
				}
				acc[i][j] += v
			}
		}
		return nil
	}
	for bi, batch := range calib {
		if p.Saliency == saliencyTaylor {
			if err := add(batch, false); err != nil {
				return nil, fmt.Errorf("calibration batch %d: %w", bi, err)
			}
		} else {
			singles, err := splitBatch(batch, 1)
			if err != nil {
				return nil, fmt.Errorf("calibration batch %d: %w", bi, err)
			}
			for si, single := range singles {
				if err := add(single, true); err != nil {
					return nil, fmt.Errorf("calibration batch %d, sample %d: %w", bi, si, err)
				}
			}
			samples += len(singles)
		}
		if p.progress != nil {
			p.progress(bi+1, len(calib))
		}
	}
	scores := make([][]float64, len(targets))
	for i, t := range targets {
		scores[i] = make([]float64, len(t.vals))
		for j, w := range t.vals {
			if p.Saliency == saliencyTaylor {
				scores[i][j] = math.Abs(w * acc[i][j])
			} else {
				scores[i][j] = w * w * acc[i][j] / float64(samples)
			}
		}
	}
	return scores, nil
}
