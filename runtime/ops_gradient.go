package runtime

import (
	"errors"
	"fmt"
	"slices"

	"onnxopt/graph"
)

// Gradient (ai.onnx.preview.training, opset 1) computes the gradient of
// the value named by attribute y with respect to those named by xs, at
// the values the node's inputs give for xs and then zs. The function
// differentiated is the graph's own computation of y cut at xs and zs:
// the nodes y depends on through other values. A y with more than one
// element is differentiated as the sum of its elements, which is what a
// backward pass seeded with ones computes.
//
// The op differentiates by itself, in reverse mode over float64, rather
// than through GradPlan's gorgonia translation: gorgonia shares its
// constant nodes between graphs, so two graphs must not be built at once,
// while a kernel runs in whichever plan, on whichever goroutine, holds it.
// The forward pass computes in float64 too; gradientRules lists the
// operators it goes through, besides Constant.

// A gradientRule is an elementwise operator with numpy broadcasting: its
// value at one element and its partial derivatives there. Unary
// operators ignore b and return 0 for db.
type gradientRule struct {
	arity int
	f     func(a, b float64) float64
	d     func(a, b float64) (da, db float64)
}

var gradientRules = map[string]gradientRule{
	"Identity": {1, func(a, b float64) float64 { return a }, func(a, b float64) (float64, float64) { return 1, 0 }},
	"Neg":      {1, func(a, b float64) float64 { return -a }, func(a, b float64) (float64, float64) { return -1, 0 }},
	"Add":      {2, func(a, b float64) float64 { return a + b }, func(a, b float64) (float64, float64) { return 1, 1 }},
	"Sub":      {2, func(a, b float64) float64 { return a - b }, func(a, b float64) (float64, float64) { return 1, -1 }},
	"Mul":      {2, func(a, b float64) float64 { return a * b }, func(a, b float64) (float64, float64) { return b, a }},
	"Div":      {2, func(a, b float64) float64 { return a / b }, func(a, b float64) (float64, float64) { return 1 / b, -a / (b * b) }},
}

// A gradientValue is a value of the forward pass.
type gradientValue struct {
	shape []int
	v     []float64
}

// A gradientStep is one node of the forward pass: an operator of
// gradientRules, or a Constant with its value.
type gradientStep struct {
	node  *graph.Node
	rule  gradientRule
	value *gradientValue
}

func compileGradient(n *graph.Node) (kernel, error) {
	xs := attrStrings(n, "xs")
	zs := attrStrings(n, "zs")
	if len(xs) == 0 {
		return nil, errors.New("attribute xs is required")
	}
	if len(n.Inputs) != len(xs)+len(zs) {
		return nil, fmt.Errorf("the node has %d inputs for %d xs and %d zs", len(n.Inputs), len(xs), len(zs))
	}
	if len(n.Outputs) > len(xs) {
		return nil, fmt.Errorf("the node has %d outputs for %d xs", len(n.Outputs), len(xs))
	}
	yName := n.AttrString("y", "")
	y := n.Graph.Lookup(yName)
	if y == nil {
		return nil, fmt.Errorf("attribute y names %q, which the graph lacks", yName)
	}
	// leaves maps xs and zs to the node's input that gives their value.
	leaves := map[*graph.Value]int{}
	xvals := make([]*graph.Value, len(xs))
	for i, name := range append(append([]string(nil), xs...), zs...) {
		v := n.Graph.Lookup(name)
		if v == nil {
			return nil, fmt.Errorf("attribute xs or zs names %q, which the graph lacks", name)
		}
		if _, dup := leaves[v]; dup {
			return nil, fmt.Errorf("%q is named twice in xs and zs", name)
		}
		leaves[v] = i
		if i < len(xs) {
			xvals[i] = v
		}
	}

	// The forward nodes are those y depends on, stopping at xs and zs;
	// every other value they read must be an initializer.
	forward := map[*graph.Node]bool{}
	consts := map[*graph.Value]*gradientValue{}
	used := map[*graph.Value]int{} // the leaves y depends on
	seen := map[*graph.Value]bool{}
	stack := []*graph.Value{y}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[v] {
			continue
		}
		seen[v] = true
		i, leaf := leaves[v]
		switch {
		case leaf:
			used[v] = i
		case v.Producer == n:
			return nil, fmt.Errorf("y %q depends on the node's own outputs", yName)
		case v.Producer != nil:
			forward[v.Producer] = true
			for _, in := range v.Producer.Inputs {
				if in != nil {
					stack = append(stack, in)
				}
			}
		case v.Init != nil && !v.Graph.IsInput(v):
			t, err := TensorFromProto(v.Init)
			if err != nil {
				return nil, fmt.Errorf("initializer %q: %w", v.Name, err)
			}
			if consts[v], err = newGradientValue(t); err != nil {
				return nil, fmt.Errorf("initializer %q: %w", v.Name, err)
			}
		default:
			return nil, fmt.Errorf("y %q depends on %q, which is in neither xs nor zs", yName, v.Name)
		}
	}
	// The plan sorted the graph: its order is a topological one.
	var steps []gradientStep
	for _, fn := range n.Graph.Nodes {
		if !forward[fn] {
			continue
		}
		s, err := newGradientStep(fn)
		if err != nil {
			return nil, fmt.Errorf("y %q is computed through node %s: %w", yName, fn, err)
		}
		steps = append(steps, s)
	}
	if len(steps) != len(forward) {
		return nil, fmt.Errorf("y %q is computed by nodes of another graph", yName)
	}

	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		vals := make(map[*graph.Value]*gradientValue, len(used)+len(consts)+len(steps))
		for v, c := range consts {
			vals[v] = c
		}
		for v, i := range used {
			t := optionalInput(in, i)
			if t == nil || t.Kind != KindTensor {
				return nil, fmt.Errorf("input %d (%q) must be a tensor", i, v.Name)
			}
			var err error
			if vals[v], err = newGradientValue(t); err != nil {
				return nil, fmt.Errorf("input %d (%q): %w", i, v.Name, err)
			}
		}
		if err := gradientForward(steps, vals); err != nil {
			return nil, err
		}
		grads := gradientBackward(steps, vals, y)
		outs := make([]*Tensor, len(n.Outputs))
		for i := range outs {
			x := optionalInput(in, i)
			if x == nil || x.Kind != KindTensor {
				return nil, fmt.Errorf("input %d (x %q) must be a tensor", i, xs[i])
			}
			var err error
			if outs[i], err = e.zeroed(i, x.DType, x.Shape...); err != nil {
				return nil, err
			}
			g := grads[xvals[i]]
			switch d := outs[i].Data.(type) {
			case []float64:
				copy(d, g)
			case []float32:
				round := roundTo(x.DType)
				for k, v := range g {
					d[k] = float32(v)
					if round != nil {
						d[k] = round(d[k])
					}
				}
			default:
				return nil, fmt.Errorf("x %q is %s: gradients are floating-point", xs[i], x)
			}
		}
		return outs, nil
	}, nil
}

// newGradientStep prepares the forward computation of fn.
func newGradientStep(fn *graph.Node) (gradientStep, error) {
	if fn.Domain != "" && fn.Domain != "ai.onnx" {
		return gradientStep{}, errors.New("Gradient differentiates default-domain operators only")
	}
	if fn.OpType == "Constant" {
		run, err := compileConstant(fn)
		if err != nil {
			return gradientStep{}, err
		}
		outs, err := run(&env{node: fn}, nil)
		if err != nil {
			return gradientStep{}, err
		}
		v, err := newGradientValue(outs[0])
		return gradientStep{node: fn, value: v}, err
	}
	rule, ok := gradientRules[fn.OpType]
	if !ok {
		return gradientStep{}, errors.New("Gradient does not differentiate the operator")
	}
	if len(fn.Inputs) != rule.arity || slices.Contains(fn.Inputs, nil) || len(fn.Outputs) != 1 {
		return gradientStep{}, fmt.Errorf("want %d inputs and one output", rule.arity)
	}
	return gradientStep{node: fn, rule: rule}, nil
}

// newGradientValue reads a floating-point tensor.
func newGradientValue(t *Tensor) (*gradientValue, error) {
	v := &gradientValue{shape: t.Shape}
	switch d := t.Data.(type) {
	case []float64:
		v.v = d
	case []float32:
		v.v = make([]float64, len(d))
		for i, x := range d {
			v.v[i] = float64(x)
		}
	default:
		return nil, fmt.Errorf("gradients need floating-point values, got %s", t)
	}
	return v, nil
}

// operands returns the values of a rule step's operands; a unary
// operator's second is its first.
func (s *gradientStep) operands(vals map[*graph.Value]*gradientValue) (a, b *gradientValue) {
	a = vals[s.node.Inputs[0]]
	b = a
	if s.rule.arity == 2 {
		b = vals[s.node.Inputs[1]]
	}
	return a, b
}

// gradientForward computes the forward nodes, adding their outputs to
// vals.
func gradientForward(steps []gradientStep, vals map[*graph.Value]*gradientValue) error {
	for i := range steps {
		s := &steps[i]
		if s.value != nil {
			vals[s.node.Outputs[0]] = s.value
			continue
		}
		a, b := s.operands(vals)
		shape, err := broadcastShapes(a.shape, b.shape)
		if err != nil {
			return fmt.Errorf("forward node %s: %w", s.node, err)
		}
		out := &gradientValue{shape: shape, v: make([]float64, mustElements(shape))}
		it := newBroadcastIter(shape, a.shape, b.shape)
		for ; it.rows > 0; it.next() {
			oa, ob := it.offs[0], it.offs[1]
			sa, sb := it.steps[0], it.steps[1]
			for k := range it.inner {
				out.v[it.out+k] = s.rule.f(a.v[oa+k*sa], b.v[ob+k*sb])
			}
		}
		vals[s.node.Outputs[0]] = out
	}
	return nil
}

// gradientBackward propagates the gradient of the sum of y's elements
// back through the forward nodes and returns the gradient of each value
// on the way; a value missing from the map has a zero gradient.
func gradientBackward(steps []gradientStep, vals map[*graph.Value]*gradientValue, y *graph.Value) map[*graph.Value][]float64 {
	seed := make([]float64, len(vals[y].v))
	for i := range seed {
		seed[i] = 1
	}
	grads := map[*graph.Value][]float64{y: seed}
	grad := func(v *graph.Value) []float64 {
		g, ok := grads[v]
		if !ok {
			g = make([]float64, len(vals[v].v))
			grads[v] = g
		}
		return g
	}
	for i := len(steps) - 1; i >= 0; i-- {
		s := &steps[i]
		g, ok := grads[s.node.Outputs[0]]
		if s.value != nil || !ok {
			continue
		}
		a, b := s.operands(vals)
		da := grad(s.node.Inputs[0])
		var db []float64
		if s.rule.arity == 2 {
			db = grad(s.node.Inputs[1])
		}
		it := newBroadcastIter(vals[s.node.Outputs[0]].shape, a.shape, b.shape)
		for ; it.rows > 0; it.next() {
			oa, ob := it.offs[0], it.offs[1]
			sa, sb := it.steps[0], it.steps[1]
			for k := range it.inner {
				ia, ib := oa+k*sa, ob+k*sb
				pa, pb := s.rule.d(a.v[ia], b.v[ib])
				ga := g[it.out+k]
				da[ia] += ga * pa
				if db != nil {
					db[ib] += ga * pb
				}
			}
		}
	}
	return grads
}

// attrStrings returns the string-list attribute name, nil when absent.
func attrStrings(n *graph.Node, name string) []string {
	a := n.Attr(name)
	if a == nil {
		return nil
	}
	out := make([]string, len(a.Proto.GetStrings()))
	for i, s := range a.Proto.GetStrings() {
		out[i] = string(s)
	}
	return out
}
