package runtime

import (
	"errors"
	"fmt"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// A Plan is a graph compiled for execution: its nodes in topological order,
// each with a kernel, its constants decoded, and a slot for every value.
//
// A Plan keeps each node's output buffers between runs and reuses them
// when the shapes repeat, so it is not safe for concurrent use: compile one
// plan per goroutine.
type Plan struct {
	graph  *graph.Graph
	parent *Plan
	steps  []step
	slots  map[*graph.Value]int // every value this plan's scope defines
	consts []constSlot
	inputs []inputSlot
	// outputs are the graph outputs, resolved like node inputs since a
	// subgraph may return a value of an enclosing scope.
	outputs []ref
	nslots  int
}

type step struct {
	node *graph.Node
	run  kernel
	in   []ref // -1 slot for an omitted input
	out  []int // -1 slot for an omitted output
	env  env
	// tensorsOnly refuses sequences and optionals as inputs, for the
	// operators whose kernels take tensors only.
	tensorsOnly bool
}

// A ref locates a value: up scopes above the plan that reads it, in slot.
type ref struct {
	up, slot int
}

type constSlot struct {
	slot int
	t    *Tensor
}

type inputSlot struct {
	slot  int
	value *graph.Value
}

// env is what a kernel sees of its node and run.
type env struct {
	node    *graph.Node
	buffers []*Tensor
	// subplans holds a compiled plan for each subgraph of the node.
	subplans map[*graph.Graph]*Plan
	frame    *frame // the running frame, for subgraphs to read outer values
}

// A frame holds the values of one run of a plan.
type frame struct {
	plan   *Plan
	vals   []*Tensor
	parent *frame
}

// Compile builds a plan for g. It fails, naming the node, op type and
// opset, on an operator the runtime lacks or attributes it cannot take.
func Compile(g *graph.Graph) (*Plan, error) {
	return compile(g, nil)
}

func compile(g *graph.Graph, parent *Plan) (*Plan, error) {
	if err := g.Sort(); err != nil {
		return nil, err
	}
	// Shapes and types that disagree are caught here, once, naming the
	// node; what inference cannot tell is checked by the kernels.
	if _, err := g.Infer(); err != nil {
		return nil, err
	}
	p := &Plan{graph: g, parent: parent, slots: map[*graph.Value]int{}}
	slot := func(v *graph.Value) int {
		if s, ok := p.slots[v]; ok {
			return s
		}
		p.slots[v] = p.nslots
		p.nslots++
		return p.nslots - 1
	}
	for _, v := range g.Inputs {
		p.inputs = append(p.inputs, inputSlot{slot(v), v})
	}
	for _, v := range g.Initializers {
		if g.IsInput(v) {
			// An initializer listed as an input is a default the caller
			// may override; Run falls back to it.
			continue
		}
		t, err := TensorFromProto(v.Init)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", v.Name, err)
		}
		p.consts = append(p.consts, constSlot{slot(v), t})
	}
	if len(g.Sparse) > 0 {
		return nil, fmt.Errorf("sparse initializer %q: the runtime does not compute sparse tensors", g.Sparse[0].Name)
	}
	for _, n := range g.Nodes {
		opset := n.Opset()
		def, ok := lookupOp(n.Domain, n.OpType, opset)
		if !ok {
			return nil, &UnsupportedError{Op: n.OpType, Domain: n.Domain, Node: n.Name, Opset: opset}
		}
		run, err := def.compile(n)
		if err != nil {
			return nil, nodeError(n, err)
		}
		s := step{node: n, run: run, env: env{node: n}, tensorsOnly: !takesNonTensors(n)}
		for _, v := range n.Inputs {
			if v == nil {
				s.in = append(s.in, ref{0, -1})
				continue
			}
			r, err := p.resolve(v)
			if err != nil {
				return nil, nodeError(n, err)
			}
			s.in = append(s.in, r)
		}
		for _, v := range n.Outputs {
			if v == nil {
				s.out = append(s.out, -1)
				continue
			}
			s.out = append(s.out, slot(v))
		}
		for _, a := range n.Attrs {
			subs := a.Graphs
			if a.Graph != nil {
				subs = append([]*graph.Graph{a.Graph}, subs...)
			}
			for _, sg := range subs {
				sp, err := compile(sg, p)
				if err != nil {
					return nil, nodeError(n, fmt.Errorf("attribute %q: %w", a.Name(), err))
				}
				if s.env.subplans == nil {
					s.env.subplans = map[*graph.Graph]*Plan{}
				}
				s.env.subplans[sg] = sp
			}
		}
		p.steps = append(p.steps, s)
	}
	for _, v := range g.Outputs {
		r, err := p.resolve(v)
		if err != nil {
			return nil, fmt.Errorf("graph output %q: %w", v.Name, err)
		}
		p.outputs = append(p.outputs, r)
	}
	return p, nil
}

// resolve finds the slot of v in this plan or an enclosing one.
func (p *Plan) resolve(v *graph.Value) (ref, error) {
	up := 0
	for q := p; q != nil; q = q.parent {
		if s, ok := q.slots[v]; ok {
			return ref{up, s}, nil
		}
		up++
	}
	return ref{}, fmt.Errorf("value %q is never produced", v.Name)
}

func nodeError(n *graph.Node, err error) error {
	return fmt.Errorf("node %s opset %d: %w", n, n.Opset(), err)
}

// Inputs returns the graph inputs the caller must or may bind.
func (p *Plan) Inputs() []*graph.Value {
	vs := make([]*graph.Value, len(p.inputs))
	for i, in := range p.inputs {
		vs[i] = in.value
	}
	return vs
}

// Run computes the graph's outputs, by name, from inputs given by name.
// The returned tensors belong to the caller.
func (p *Plan) Run(inputs map[string]*Tensor) (map[string]*Tensor, error) {
	names := make([]string, len(p.graph.Outputs))
	for i, v := range p.graph.Outputs {
		names[i] = v.Name
	}
	return p.Fetch(inputs, names)
}

// Fetch runs the graph and returns the named values, which may be any
// values of the graph's own scope, not only its outputs.
func (p *Plan) Fetch(inputs map[string]*Tensor, names []string) (map[string]*Tensor, error) {
	for name := range inputs {
		if !p.hasInput(name) {
			return nil, fmt.Errorf("the model has no input %q", name)
		}
	}
	f := &frame{plan: p, vals: make([]*Tensor, p.nslots)}
	for _, in := range p.inputs {
		t, ok := inputs[in.value.Name]
		if !ok {
			if in.value.Init == nil {
				return nil, fmt.Errorf("input %q is not given", in.value.Name)
			}
			var err error
			if t, err = TensorFromProto(in.value.Init); err != nil {
				return nil, fmt.Errorf("input %q default: %w", in.value.Name, err)
			}
		} else if err := checkInput(in.value, t); err != nil {
			return nil, err
		}
		f.vals[in.slot] = t
	}
	if err := f.run(); err != nil {
		return nil, err
	}
	out := make(map[string]*Tensor, len(names))
	for _, name := range names {
		v := p.graph.Lookup(name)
		if v == nil {
			return nil, fmt.Errorf("the graph has no value %q", name)
		}
		r, err := p.resolve(v)
		if err != nil {
			return nil, err
		}
		t := f.get(r)
		if t == nil {
			return nil, fmt.Errorf("value %q was not computed", name)
		}
		out[name] = t.Clone()
	}
	return out, nil
}

func (p *Plan) hasInput(name string) bool {
	for _, in := range p.inputs {
		if in.value.Name == name {
			return true
		}
	}
	return false
}

// checkInput checks a caller's tensor against the input's declared type.
func checkInput(v *graph.Value, t *Tensor) error {
	if kind, ok := kindOf(v.Type); !ok || kind != KindTensor || t.Kind != KindTensor {
		return checkValue(v.Name, v.Type, t)
	}
	want := v.ElemType()
	if want != onnx.TensorProto_UNDEFINED && want != t.DType {
		return fmt.Errorf("input %q: got %s, want %s", v.Name, dtypeName(t.DType), dtypeName(want))
	}
	if err := t.checkData(); err != nil {
		return fmt.Errorf("input %q: %w", v.Name, err)
	}
	shape, ok := v.Shape()
	if !ok {
		return nil
	}
	if len(shape) != len(t.Shape) {
		return fmt.Errorf("input %q: got rank %d %v, want rank %d %v", v.Name, len(t.Shape), t.Shape, len(shape), shape)
	}
	for i, d := range shape {
		if d.Known && d.Value != int64(t.Shape[i]) {
			return fmt.Errorf("input %q: got shape %v, want %v", v.Name, t.Shape, shape)
		}
	}
	return nil
}

// mustElements is the element count of a shape known to be valid (a
// tensor's): elements without the error, -1 for a shape it refuses.
func mustElements(shape []int) int {
	n, err := elements(shape)
	if err != nil {
		return -1
	}
	return n
}

func (f *frame) get(r ref) *Tensor {
	g := f
	for i := 0; i < r.up; i++ {
		g = g.parent
	}
	return g.vals[r.slot]
}

func (f *frame) run() error {
	p := f.plan
	for _, c := range p.consts {
		f.vals[c.slot] = c.t
	}
	in := make([]*Tensor, 0, 8)
	for i := range p.steps {
		s := &p.steps[i]
		in = in[:0]
		for _, r := range s.in {
			if r.slot < 0 {
				in = append(in, nil)
				continue
			}
			t := f.get(r)
			if t == nil {
				return nodeError(s.node, errors.New("an input was not computed"))
			}
			if s.tensorsOnly && t.Kind != KindTensor {
				return nodeError(s.node, fmt.Errorf("input %d is not a tensor but the %s; the operator takes tensors only", len(in), t))
			}
			in = append(in, t)
		}
		s.env.frame = f
		outs, err := s.run(&s.env, in)
		s.env.frame = nil
		if err != nil {
			return nodeError(s.node, err)
		}
		if len(outs) < countUsed(s.out) {
			return nodeError(s.node, fmt.Errorf("kernel returned %d outputs, the node has %d", len(outs), len(s.out)))
		}
		for k, slot := range s.out {
			if slot >= 0 && k < len(outs) {
				f.vals[slot] = outs[k]
			}
		}
	}
	return nil
}

func countUsed(slots []int) int {
	n := 0
	for i, s := range slots {
		if s >= 0 {
			n = i + 1
		}
	}
	return n
}

// output returns a tensor for output i of the node, reusing the buffer of
// an earlier run when it is large enough. Its contents are unspecified:
// the kernel must write every element.
func (e *env) output(i int, dt onnx.TensorProto_DataType, shape ...int) (*Tensor, error) {
	n, err := elements(shape)
	if err != nil {
		return nil, err
	}
	for len(e.buffers) <= i {
		e.buffers = append(e.buffers, nil)
	}
	if b := e.buffers[i]; b != nil && b.DType == dt {
		if data, ok := reslice(b.Data, n); ok {
			return &Tensor{DType: dt, Shape: append([]int(nil), shape...), Data: data}, nil
		}
	}
	t, err := NewTensor(dt, shape...)
	if err != nil {
		return nil, err
	}
	e.buffers[i] = t
	return t, nil
}

// zeroed is output with every element set to zero.
func (e *env) zeroed(i int, dt onnx.TensorProto_DataType, shape ...int) (*Tensor, error) {
	t, err := e.output(i, dt, shape...)
	if err != nil {
		return nil, err
	}
	zero(t.Data)
	return t, nil
}

// runGraph runs one of the node's subgraphs with the given inputs bound to
// its graph inputs in order, and returns its outputs in order.
func (e *env) runGraph(g *graph.Graph, inputs []*Tensor) ([]*Tensor, error) {
	p := e.subplans[g]
	if p == nil {
		return nil, fmt.Errorf("subgraph %q was not compiled", g.Name)
	}
	if len(inputs) != len(p.inputs) {
		return nil, fmt.Errorf("subgraph %q takes %d inputs, got %d", g.Name, len(p.inputs), len(inputs))
	}
	f := &frame{plan: p, vals: make([]*Tensor, p.nslots), parent: e.frame}
	for i, in := range p.inputs {
		f.vals[in.slot] = inputs[i]
	}
	if err := f.run(); err != nil {
		return nil, fmt.Errorf("subgraph %q: %w", g.Name, err)
	}
	outs := make([]*Tensor, len(p.outputs))
	for i, r := range p.outputs {
		if outs[i] = f.get(r); outs[i] == nil {
			return nil, fmt.Errorf("subgraph %q: output %d was not computed", g.Name, i)
		}
	}
	return outs, nil
}

func reslice(data any, n int) (any, bool) {
	switch d := data.(type) {
	case []float32:
		return resliceOf(d, n)
	case []float64:
		return resliceOf(d, n)
	case []int64:
		return resliceOf(d, n)
	case []int32:
		return resliceOf(d, n)
	case []int16:
		return resliceOf(d, n)
	case []int8:
		return resliceOf(d, n)
	case []uint64:
		return resliceOf(d, n)
	case []uint32:
		return resliceOf(d, n)
	case []uint16:
		return resliceOf(d, n)
	case []uint8:
		return resliceOf(d, n)
	case []bool:
		return resliceOf(d, n)
	case []string:
		return resliceOf(d, n)
	}
	return nil, false
}

func resliceOf[T any](d []T, n int) (any, bool) {
	if cap(d) < n {
		return nil, false
	}
	return d[:n:n], true
}

// zero sets every element of a tensor's data to its zero value.
func zero(data any) {
	switch d := data.(type) {
	case []float32:
		clear(d)
	case []float64:
		clear(d)
	case []int64:
		clear(d)
	case []int32:
		clear(d)
	case []int16:
		clear(d)
	case []int8:
		clear(d)
	case []uint64:
		clear(d)
	case []uint32:
		clear(d)
	case []uint16:
		clear(d)
	case []uint8:
		clear(d)
	case []bool:
		clear(d)
	case []string:
		clear(d)
	}
}
