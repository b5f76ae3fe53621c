package runtime

import (
	"fmt"
	"slices"
	"strings"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// A Loss says which scalar a GradPlan differentiates. Every loss is a sum
// over the samples of the batch, not a mean, so that the gradients of the
// batches of a set add up to the gradient over the whole set however it
// is split.
type Loss int

const (
	// LossSelfCrossEntropy is the cross-entropy of the output logits
	// (N, C) against the model's own predictions, the argmax of each row:
	// -Σ_i log softmax(z_i)[argmax z_i]. It needs no labels, which makes
	// it the loss for saliency on an unlabelled calibration set.
	LossSelfCrossEntropy Loss = iota + 1
	// LossCrossEntropy is -Σ_i log softmax(z_i)[y_i] for output logits
	// (N, C) and int64 labels y of shape (N).
	LossCrossEntropy
	// LossSumSquares is ½ Σ (y - t)² over every element of the output y
	// and a float target t of the same shape.
	LossSumSquares
)

func (l Loss) String() string {
	switch l {
	case LossSelfCrossEntropy:
		return "self-cross-entropy"
	case LossCrossEntropy:
		return "cross-entropy"
	case LossSumSquares:
		return "sum-squares"
	}
	return fmt.Sprintf("Loss(%d)", int(l))
}

// A LossSpec chooses the loss and the graph output it reads.
type LossSpec struct {
	Kind Loss
	// Output names the graph output the loss is computed on; empty means
	// the first output. Cross-entropy reads it as logits, not
	// probabilities.
	Output string
}

// A GradPlan computes the gradient of a loss on a model's output with
// respect to some of its initializers, for saliency-based pruning.
//
// The computation runs on gorgonia: the model becomes a gorgonia graph,
// gorgonia differentiates it symbolically and a tape machine runs the
// forward and backward passes together. Gorgonia graphs have static
// shapes, so a plan builds one machine for each distinct set of input
// shapes it is run with and keeps it for later batches.
//
// A GradPlan is not safe for concurrent use. Gorgonia shares its
// constant nodes (one, zero) between graphs and renumbers them in each
// graph it adds them to, so no two plans may build machines (a first run
// with new input shapes) at the same time either.
type GradPlan struct {
	loss   LossSpec
	output *graph.Value
	// nodes are the graph's nodes the loss output depends on, in
	// topological order.
	nodes []*graph.Node
	// inputs are the graph inputs those nodes read, excluding inputs
	// that have an initializer as default.
	inputs []*graph.Value
	params []string
	// values holds every initializer the loss depends on, decoded, by
	// name. SetValue replaces entries.
	values   map[string]*Tensor
	isParam  map[string]bool
	machines map[string]*gradMachine
}

// GradResult is the outcome of one run of a GradPlan. The tensors belong
// to the caller.
type GradResult struct {
	Loss float64
	// Grads holds d(Loss)/d(param) for each parameter, with the
	// parameter's shape and dtype. A parameter the loss does not depend on
	// has a zero gradient.
	Grads map[string]*Tensor
	// Output is the value of the graph output the loss was computed on.
	Output *Tensor
}

// CompileGrad prepares the gradient of loss with respect to the
// initializers named in params; nil params means every floating-point
// initializer the loss depends on. It fails, naming the node and op, when
// an operator on the way from the inputs to the loss has no gradient
// here.
//
// The plan decodes the initializers once and reads the graph's nodes
// again when it meets new input shapes, so g must not change while the
// plan is in use; SetValue changes an initializer's value for the plan.
func CompileGrad(g *graph.Graph, loss LossSpec, params []string) (*GradPlan, error) {
	switch loss.Kind {
	case LossSelfCrossEntropy, LossCrossEntropy, LossSumSquares:
	default:
		return nil, fmt.Errorf("gradients: unknown loss %v", loss.Kind)
	}
	if err := g.Sort(); err != nil {
		return nil, fmt.Errorf("gradients: %w", err)
	}
	p := &GradPlan{loss: loss, values: map[string]*Tensor{}, isParam: map[string]bool{}, machines: map[string]*gradMachine{}}
	if loss.Output == "" {
		if len(g.Outputs) == 0 {
			return nil, fmt.Errorf("gradients: the graph has no outputs")
		}
		p.output = g.Outputs[0]
	} else {
		for _, v := range g.Outputs {
			if v.Name == loss.Output {
				p.output = v
			}
		}
		if p.output == nil {
			return nil, fmt.Errorf("gradients: the graph has no output %q", loss.Output)
		}
	}

	needed := gradAncestors(p.output)
	for _, n := range g.Nodes {
		if !needed[n] {
			continue
		}
		if !gradSupported(n) {
			return nil, fmt.Errorf("gradients: %w", &UnsupportedError{Op: n.OpType, Domain: n.Domain, Node: n.Name, Opset: n.Opset()})
		}
		p.nodes = append(p.nodes, n)
	}

	reads := map[*graph.Value]bool{p.output: true}
	for _, n := range p.nodes {
		for _, v := range n.Inputs {
			if v != nil {
				reads[v] = true
			}
		}
	}
	for _, v := range g.Initializers {
		if !reads[v] {
			continue
		}
		t, err := TensorFromProto(v.Init)
		if err != nil {
			return nil, fmt.Errorf("gradients: initializer %q: %w", v.Name, err)
		}
		p.values[v.Name] = t
	}
	for _, v := range g.Inputs {
		if reads[v] && v.Init == nil {
			p.inputs = append(p.inputs, v)
		}
	}

	if params == nil {
		for _, v := range g.Initializers {
			if t, ok := p.values[v.Name]; ok && gradFloat(t.DType) {
				params = append(params, v.Name)
			}
		}
	}
	for _, name := range params {
		v := g.Lookup(name)
		if v == nil || v.Init == nil || v.Graph != g {
			return nil, fmt.Errorf("gradients: %q is not an initializer of the graph", name)
		}
		if dt := onnx.TensorProto_DataType(v.Init.GetDataType()); !gradFloat(dt) {
			return nil, fmt.Errorf("gradients: parameter %q is %s; gradients need float or double", name, dtypeName(dt))
		}
		if p.isParam[name] {
			return nil, fmt.Errorf("gradients: parameter %q is listed twice", name)
		}
		p.isParam[name] = true
		p.params = append(p.params, name)
		if _, ok := p.values[name]; !ok {
			// The loss does not read it: its gradient is zero, but the
			// shape and dtype come from the initializer.
			t, err := TensorFromProto(v.Init)
			if err != nil {
				return nil, fmt.Errorf("gradients: initializer %q: %w", name, err)
			}
			p.values[name] = t
		}
	}
	return p, nil
}

// Params returns the names of the parameters whose gradients Run returns.
func (p *GradPlan) Params() []string { return slices.Clone(p.params) }

// SetValue replaces the value of a float initializer the loss depends on, for
// the runs that follow; t must have the initializer's dtype and shape.
// Iterative pruning uses it to recompute gradients with pruned weights
// without compiling again. The plan keeps a copy of t.
func (p *GradPlan) SetValue(name string, t *Tensor) error {
	old, ok := p.values[name]
	if !ok || !gradFloat(old.DType) {
		return fmt.Errorf("gradients: %q is not a float initializer the loss depends on", name)
	}
	if t.DType != old.DType || !slices.Equal(t.Shape, old.Shape) {
		return fmt.Errorf("gradients: value for %q is %s, want %s", name, t, old)
	}
	if dt, n, ok := sliceInfo(t.Data); !ok || dt != t.DType || n != old.Len() {
		return fmt.Errorf("gradients: value for %q holds %T, not %d elements of %s", name, t.Data, old.Len(), dtypeName(t.DType))
	}
	c := t.Clone()
	p.values[name] = c
	for _, m := range p.machines {
		n, ok := m.leaves[name]
		if !ok {
			continue
		}
		if err := gorgonia.Let(n, gradValue(c)); err != nil {
			return fmt.Errorf("gradients: set %q: %w", name, err)
		}
	}
	return nil
}

// Run computes the loss on a batch and its gradients. inputs binds the
// graph inputs by name. targets is nil for LossSelfCrossEntropy, int64
// labels of shape (N) for LossCrossEntropy, and a tensor of the output's
// dtype and shape for LossSumSquares.
func (p *GradPlan) Run(inputs map[string]*Tensor, targets *Tensor) (*GradResult, error) {
	for name := range inputs {
		if !slices.ContainsFunc(p.inputs, func(v *graph.Value) bool { return v.Name == name }) {
			return nil, fmt.Errorf("gradients: the loss reads no input %q", name)
		}
	}
	var key strings.Builder
	for _, v := range p.inputs {
		t, ok := inputs[v.Name]
		if !ok {
			return nil, fmt.Errorf("gradients: input %q is not given", v.Name)
		}
		if err := checkInput(v, t); err != nil {
			return nil, fmt.Errorf("gradients: %w", err)
		}
		if !gradFloat(t.DType) {
			return nil, fmt.Errorf("gradients: input %q is %s; gradients need float or double", v.Name, dtypeName(t.DType))
		}
		fmt.Fprintf(&key, "%s%v;", dtypeName(t.DType), t.Shape)
	}
	m, ok := p.machines[key.String()]
	if !ok {
		var err error
		if m, err = p.build(inputs); err != nil {
			return nil, err
		}
		p.machines[key.String()] = m
	}
	return m.run(p, inputs, targets)
}

// gradFloat reports whether gradients can be computed in dt.
func gradFloat(dt onnx.TensorProto_DataType) bool {
	return dt == onnx.TensorProto_FLOAT || dt == onnx.TensorProto_DOUBLE
}

// gradAncestors returns the nodes whose outputs v depends on.
func gradAncestors(v *graph.Value) map[*graph.Node]bool {
	seen := map[*graph.Node]bool{}
	stack := []*graph.Value{v}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := v.Producer
		if n == nil || seen[n] {
			continue
		}
		seen[n] = true
		for _, in := range n.Inputs {
			if in != nil {
				stack = append(stack, in)
			}
		}
	}
	return seen
}

// gradValue wraps a float tensor as a gorgonia value: a scalar for rank
// 0, a dense tensor sharing t's data otherwise.
func gradValue(t *Tensor) gorgonia.Value {
	if len(t.Shape) == 0 {
		switch d := t.Data.(type) {
		case []float32:
			return gorgonia.NewF32(d[0])
		case []float64:
			return gorgonia.NewF64(d[0])
		}
	}
	return tensor.New(tensor.WithShape(t.Shape...), tensor.WithBacking(t.Data))
}

// A gradMachine is the gorgonia graph and tape machine for one set of
// input shapes.
type gradMachine struct {
	vm gorgonia.VM
	// inputs are the buffers bound to the graph inputs' nodes, by name;
	// Run copies the caller's data in, so that nothing gorgonia does can
	// touch the caller's tensors.
	inputs map[string]*Tensor
	// targetBuf is bound to the one-hot labels or the regression target,
	// when the loss takes one.
	targetBuf *Tensor
	// leaves are the initializers' nodes by name, for SetValue.
	leaves map[string]*gorgonia.Node
	// params are the parameters the loss reads, in plan order, with the
	// values the Read nodes fill.
	params    []string
	grads     []gorgonia.Value
	loss      gorgonia.Value
	output    gorgonia.Value
	outputDT  onnx.TensorProto_DataType
	outputDim []int
}

// build makes the gorgonia graph for the shapes of inputs.
func (p *GradPlan) build(inputs map[string]*Tensor) (m *gradMachine, err error) {
	// Gorgonia reports some malformed graphs by panicking while the graph
	// is built; the model is user input, so those become errors.
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("gradients: gorgonia: %v", r)
		}
	}()
	b := &gradBuilder{
		eg:     gorgonia.NewGraph(),
		plan:   p,
		nodes:  map[*graph.Value]*gorgonia.Node{},
		static: map[*graph.Value]*Tensor{},
		leaves: map[string]*gorgonia.Node{},
	}
	m = &gradMachine{inputs: map[string]*Tensor{}, leaves: b.leaves}
	for _, v := range p.inputs {
		t := inputs[v.Name]
		buf, err := NewTensor(t.DType, t.Shape...)
		if err != nil {
			return nil, fmt.Errorf("gradients: input %q: %w", v.Name, err)
		}
		n, err := b.leaf("input "+v.Name, buf)
		if err != nil {
			return nil, fmt.Errorf("gradients: input %q: %w", v.Name, err)
		}
		b.nodes[v] = n
		m.inputs[v.Name] = buf
	}
	for _, n := range p.nodes {
		if err := b.build(n); err != nil {
			return nil, fmt.Errorf("gradients: node %s opset %d: %w", n, n.Opset(), err)
		}
	}
	out, err := b.value(p.output)
	if err != nil {
		return nil, fmt.Errorf("gradients: output %q: %w", p.output.Name, err)
	}
	m.outputDT, err = gradDType(out)
	if err != nil {
		return nil, fmt.Errorf("gradients: output %q: %w", p.output.Name, err)
	}
	m.outputDim = slices.Clone([]int(out.Shape()))
	cost, err := m.lossNode(b, out, p.loss.Kind)
	if err != nil {
		return nil, fmt.Errorf("gradients: %v loss on output %q: %w", p.loss.Kind, p.output.Name, err)
	}

	var wrt gorgonia.Nodes
	for _, name := range p.params {
		if n, ok := b.leaves[name]; ok {
			wrt = append(wrt, n)
			m.params = append(m.params, name)
		}
	}
	if len(wrt) > 0 {
		grads, err := gorgonia.Grad(cost, wrt...)
		if err != nil {
			return nil, fmt.Errorf("gradients: differentiate: %w", err)
		}
		m.grads = make([]gorgonia.Value, len(grads))
		for i, gn := range grads {
			gorgonia.Read(gn, &m.grads[i])
		}
	}
	gorgonia.Read(cost, &m.loss)
	gorgonia.Read(out, &m.output)
	m.vm = gorgonia.NewTapeMachine(b.eg)
	return m, nil
}

// lossNode appends the loss on out to the graph.
func (m *gradMachine) lossNode(b *gradBuilder, out *gorgonia.Node, kind Loss) (*gorgonia.Node, error) {
	dt := m.outputDT
	var err error
	switch kind {
	case LossSelfCrossEntropy, LossCrossEntropy:
		if out.Dims() != 2 {
			return nil, fmt.Errorf("want logits of shape (N, C), got %v", out.Shape())
		}
		var onehot *gorgonia.Node
		if kind == LossSelfCrossEntropy {
			onehot, err = gorgonia.ApplyOp(gradArgmaxOneHot{}, out)
		} else {
			m.targetBuf, err = NewTensor(dt, m.outputDim...)
			if err == nil {
				onehot, err = b.leaf("helper loss target", m.targetBuf)
			}
		}
		if err != nil {
			return nil, err
		}
		logp, err := gradLogSoftmax(out, 1)
		if err != nil {
			return nil, err
		}
		picked, err := gorgonia.HadamardProd(onehot, logp)
		if err != nil {
			return nil, err
		}
		sum, err := gorgonia.Sum(picked)
		if err != nil {
			return nil, err
		}
		return gorgonia.Neg(sum)
	case LossSumSquares:
		if m.targetBuf, err = NewTensor(dt, m.outputDim...); err != nil {
			return nil, err
		}
		target, err := b.leaf("helper loss target", m.targetBuf)
		if err != nil {
			return nil, err
		}
		diff, err := gorgonia.Sub(out, target)
		if err != nil {
			return nil, err
		}
		sq, err := gorgonia.Square(diff)
		if err != nil {
			return nil, err
		}
		sum, err := gorgonia.Sum(sq)
		if err != nil {
			return nil, err
		}
		return gorgonia.HadamardProd(sum, b.scalar(dt, 0.5))
	}
	return nil, fmt.Errorf("unknown loss")
}

// run binds the batch and targets, runs the tape once and collects the
// results.
func (m *gradMachine) run(p *GradPlan, inputs map[string]*Tensor, targets *Tensor) (*GradResult, error) {
	for name, buf := range m.inputs {
		if !gradCopy(buf.Data, inputs[name].Data) {
			return nil, fmt.Errorf("gradients: input %q: data %T does not match %s", name, inputs[name].Data, buf)
		}
	}
	if err := m.setTargets(p.loss.Kind, targets); err != nil {
		return nil, fmt.Errorf("gradients: targets: %w", err)
	}
	m.vm.Reset()
	err := m.vm.RunAll()
	m.vm.Reset()
	if err != nil {
		return nil, fmt.Errorf("gradients: run: %w", err)
	}

	res := &GradResult{Grads: make(map[string]*Tensor, len(p.params))}
	if res.Loss, err = gradScalar(m.loss); err != nil {
		return nil, fmt.Errorf("gradients: loss: %w", err)
	}
	if res.Output, err = gradTensor(m.output, m.outputDT, m.outputDim); err != nil {
		return nil, fmt.Errorf("gradients: output %q: %w", p.output.Name, err)
	}
	for i, name := range m.params {
		v := p.values[name]
		if res.Grads[name], err = gradTensor(m.grads[i], v.DType, v.Shape); err != nil {
			return nil, fmt.Errorf("gradients: gradient of %q: %w", name, err)
		}
	}
	for _, name := range p.params {
		if _, ok := res.Grads[name]; !ok {
			v := p.values[name]
			z, err := NewTensor(v.DType, v.Shape...)
			if err != nil {
				return nil, err
			}
			res.Grads[name] = z
		}
	}
	return res, nil
}

func (m *gradMachine) setTargets(kind Loss, targets *Tensor) error {
	switch kind {
	case LossSelfCrossEntropy:
		if targets != nil {
			return fmt.Errorf("the self cross-entropy takes no targets")
		}
		return nil
	case LossCrossEntropy:
		if targets == nil {
			return fmt.Errorf("the cross-entropy needs int64 labels")
		}
		labels, ok := targets.Data.([]int64)
		n, c := m.outputDim[0], m.outputDim[1]
		if !ok || len(targets.Shape) != 1 || targets.Shape[0] != n || len(labels) != n {
			return fmt.Errorf("got %s, want int64 labels of shape [%d]", targets, n)
		}
		zero(m.targetBuf.Data)
		for i, y := range labels {
			if y < 0 || y >= int64(c) {
				return fmt.Errorf("label %d of sample %d is outside [0, %d)", y, i, c)
			}
			switch d := m.targetBuf.Data.(type) {
			case []float32:
				d[i*c+int(y)] = 1
			case []float64:
				d[i*c+int(y)] = 1
			}
		}
		return nil
	case LossSumSquares:
		if targets == nil {
			return fmt.Errorf("the sum of squares needs targets")
		}
		if targets.DType != m.outputDT || !slices.Equal(targets.Shape, m.outputDim) || targets.Len() != m.targetBuf.Len() {
			return fmt.Errorf("got %s, want %s[%v]", targets, dtypeName(m.outputDT), m.outputDim)
		}
		if !gradCopy(m.targetBuf.Data, targets.Data) {
			return fmt.Errorf("data %T does not match %s", targets.Data, targets)
		}
		return nil
	}
	return fmt.Errorf("unknown loss")
}

// gradCopy copies src into dst, float slices of the same length, and
// reports whether their types matched.
func gradCopy(dst, src any) bool {
	switch d := dst.(type) {
	case []float32:
		s, ok := src.([]float32)
		return ok && copy(d, s) == len(d)
	case []float64:
		s, ok := src.([]float64)
		return ok && copy(d, s) == len(d)
	}
	return false
}

func gradScalar(v gorgonia.Value) (float64, error) {
	switch x := v.(type) {
	case *gorgonia.F32:
		return float64(*x), nil
	case *gorgonia.F64:
		return float64(*x), nil
	case tensor.Tensor:
		if x.Shape().TotalSize() == 1 {
			switch d := x.Data().(type) {
			case []float32:
				return float64(d[0]), nil
			case []float64:
				return d[0], nil
			case float32:
				return float64(d), nil
			case float64:
				return d, nil
			}
		}
	}
	return 0, fmt.Errorf("want a float scalar, got %T %v", v, v)
}

// gradTensor copies a gorgonia value into a new tensor of the given dtype
// and shape, which must have as many elements.
func gradTensor(v gorgonia.Value, dt onnx.TensorProto_DataType, shape []int) (*Tensor, error) {
	out, err := NewTensor(dt, shape...)
	if err != nil {
		return nil, err
	}
	d, ok := v.(*tensor.Dense)
	if !ok {
		// Gorgonia holds scalars as *F32 and *F64.
		x, err := gradScalar(v)
		if err != nil {
			return nil, err
		}
		if out.Len() != 1 {
			return nil, fmt.Errorf("got a scalar, want shape %v", shape)
		}
		switch o := out.Data.(type) {
		case []float32:
			o[0] = float32(x)
		case []float64:
			o[0] = x
		}
		return out, nil
	}
	if d.IsMaterializable() {
		d = d.Materialize().(*tensor.Dense)
	}
	if d.Shape().TotalSize() != out.Len() {
		return nil, fmt.Errorf("got shape %v, want %v", d.Shape(), shape)
	}
	if !gradCopy(out.Data, d.Data()) {
		return nil, fmt.Errorf("got %v elements, want %s", d.Dtype(), dtypeName(dt))
	}
	return out, nil
}

// gradDType returns the ONNX dtype of a gorgonia node.
func gradDType(n *gorgonia.Node) (onnx.TensorProto_DataType, error) {
	switch n.Dtype() {
	case tensor.Float32:
		return onnx.TensorProto_FLOAT, nil
	case tensor.Float64:
		return onnx.TensorProto_DOUBLE, nil
	}
	return 0, fmt.Errorf("gradients need float or double, got %v", n.Dtype())
}
