package runtime

import (
	"fmt"

	"onnxopt/graph"
)

// Loss operators. Both compute in float64 whatever the element type, and
// store the results rounded to it.
var lossOps = []opDef{
	// Versions 13 only add element types.
	{"", "NegativeLogLikelihoodLoss", 12, compileNLLLoss},
	{"", "SoftmaxCrossEntropyLoss", 12, compileSoftmaxCrossEntropy},
}

// lossAttrs are the attributes both losses share.
type lossAttrs struct {
	reduction   string // none, sum or mean
	ignoreIndex int64
	hasIgnore   bool // ignore_index is set: targets equal to it count for nothing
}

func readLossAttrs(n *graph.Node) (lossAttrs, error) {
	a := lossAttrs{reduction: n.AttrString("reduction", "mean")}
	switch a.reduction {
	case "none", "sum", "mean":
	default:
		return a, fmt.Errorf("reduction %q is not none, sum or mean", a.reduction)
	}
	if n.Attr("ignore_index") != nil {
		a.ignoreIndex, a.hasIgnore = n.AttrInt("ignore_index", 0), true
	}
	return a, nil
}

// A lossKernel holds a loss node's attributes and the scratch buffers its
// kernel reuses between runs.
type lossKernel struct {
	lossAttrs
	softmax               bool // SoftmaxCrossEntropyLoss: the scores go through LogSoftmax first
	wantLogProb           bool
	input, weight, losses []float64
	logProb               []float64
}

func compileNLLLoss(n *graph.Node) (kernel, error) {
	a, err := readLossAttrs(n)
	if err != nil {
		return nil, err
	}
	k := &lossKernel{lossAttrs: a}
	return k.run, nil
}

func compileSoftmaxCrossEntropy(n *graph.Node) (kernel, error) {
	a, err := readLossAttrs(n)
	if err != nil {
		return nil, err
	}
	k := &lossKernel{lossAttrs: a, softmax: true, wantLogProb: len(n.Outputs) > 1 && n.Outputs[1] != nil}
	return k.run, nil
}

// run computes the loss of in[0] (NegativeLogLikelihoodLoss: log
// probabilities; SoftmaxCrossEntropyLoss: scores) of shape [N, C, d1...]
// against the class indices in[1] of shape [N, d1...], weighted per class
// by the optional in[2] of shape [C].
func (k *lossKernel) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if err := inputs(in, 2); err != nil {
		return nil, err
	}
	x, target := in[0], in[1]
	if err := checkFloat("input", x); err != nil {
		return nil, err
	}
	if x.Rank() < 2 {
		return nil, fmt.Errorf("input has shape %v, want [N, C, d1, ...]", x.Shape)
	}
	tshape := append([]int{x.Shape[0]}, x.Shape[2:]...)
	if !sameShape(target.Shape, tshape) {
		return nil, fmt.Errorf("target has shape %v, want %v for input %v", target.Shape, tshape, x.Shape)
	}
	labels, err := intsInput(target, "target")
	if err != nil {
		return nil, err
	}
	classes := x.Shape[1]
	var weight []float64
	if len(in) > 2 && in[2] != nil {
		w := in[2]
		if w.DType != x.DType || !sameShape(w.Shape, []int{classes}) {
			return nil, fmt.Errorf("weight is %s, want %s[%d]", w, dtypeName(x.DType), classes)
		}
		if weight, err = loadFloats(&k.weight, w); err != nil {
			return nil, fmt.Errorf("weight: %w", err)
		}
	}
	logp, err := loadFloats(&k.input, x)
	if err != nil {
		return nil, err
	}
	_, _, inner := axisSplit(x.Shape, 1)
	var logProb *Tensor
	if k.softmax {
		scores := logp
		logp = scratchSlice(&k.logProb, len(scores))
		softmaxAlong(logSoftmax, logp, scores, x.Shape[0], classes, inner)
		if k.wantLogProb {
			if logProb, err = e.output(1, x.DType, x.Shape...); err != nil {
				return nil, err
			}
			storeFloats(logProb, logp)
		}
	}

	losses := scratchSlice(&k.losses, len(labels))
	total, weightSum := 0.0, 0.0
	for i, t := range labels {
		if k.hasIgnore && t == k.ignoreIndex {
			losses[i] = 0
			continue
		}
		if t < 0 || t >= int64(classes) {
			return nil, fmt.Errorf("target %d at element %d is not a class in [0, %d)", t, i, classes)
		}
		w := 1.0
		if weight != nil {
			w = weight[t]
		}
		b, j := i/inner, i%inner
		losses[i] = -w * logp[(b*classes+int(t))*inner+j]
		total += losses[i]
		weightSum += w
	}

	var loss *Tensor
	switch k.reduction {
	case "none":
		if loss, err = e.output(0, x.DType, tshape...); err != nil {
			return nil, err
		}
		storeFloats(loss, losses)
	default:
		if k.reduction == "mean" {
			// With every target ignored this is 0/0, NaN, as in the
			// reference.
			total /= weightSum
		}
		if loss, err = e.output(0, x.DType); err != nil {
			return nil, err
		}
		storeFloats(loss, []float64{total})
	}
	if logProb != nil {
		return []*Tensor{loss, logProb}, nil
	}
	return []*Tensor{loss}, nil
}
