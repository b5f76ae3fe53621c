package runtime

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// Control flow: If, Loop and Scan run their subgraphs through e.runGraph.
// A subplan reuses its buffers on every call, so a value kept from one
// iteration to the next is first copied into a buffer of the node's own:
// loop-carried values alternate between two per value, so that an
// iteration never writes the buffer its inputs live in.
//
// Loop-carried sequences and optionals are copied whole (keep).
var controlOps = []opDef{
	// Later versions of If and Loop widen the types only (sequences from
	// 13, optionals from 16).
	{"", "If", 1, compileIf},
	{"", "Loop", 1, compileLoop},
	// Scan-8 has a batch dimension and sequence_lens; Scan-9 drops both
	// and adds axes; 11 allows negative axes.
	{"", "Scan", 8, compileScan8},
	{"", "Scan", 9, compileScan},
}

// subgraph returns the graph attribute name of n.
func subgraph(n *graph.Node, name string) (*graph.Graph, error) {
	a := n.Attr(name)
	if a == nil || a.Graph == nil {
		return nil, fmt.Errorf("graph attribute %q is missing", name)
	}
	return a.Graph, nil
}

// scalarBool reads a one-element bool tensor.
func scalarBool(t *Tensor, what string) (bool, error) {
	d, ok := t.Data.([]bool)
	if !ok || len(d) != 1 {
		return false, fmt.Errorf("%s must be one bool, got %s", what, t)
	}
	return d[0], nil
}

// keep copies t into the node's buffer slot, so that it outlives the
// subplan run that produced it. A sequence or an optional is copied
// whole, since its elements may live in the subplan's buffers.
func keep(e *env, slot int, t *Tensor) (*Tensor, error) {
	if t.Kind != KindTensor {
		return t.Clone(), nil
	}
	out, err := e.output(slot, t.DType, t.Shape...)
	if err != nil {
		return nil, err
	}
	return out, copyStrided(out.Data, t.Data, 0, 0, t.Len(), 1)
}

// emptyOutput is a scan output of a loop that ran no iteration: zero
// elements of the type the body declares, with its declared dimensions
// where known inserted around a zero at axis.
func emptyOutput(e *env, slot int, v *graph.Value, axis int) (*Tensor, error) {
	dt := v.ElemType()
	if dt == onnx.TensorProto_UNDEFINED {
		return nil, fmt.Errorf("body output %q has no declared element type for an empty scan output", v.Name)
	}
	var dims []int
	if shape, ok := v.Shape(); ok {
		for _, d := range shape {
			n := 0
			if d.Known {
				n = int(d.Value)
			}
			dims = append(dims, n)
		}
	}
	if axis > len(dims) {
		return nil, fmt.Errorf("body output %q: scan axis %d beyond its declared rank %d", v.Name, axis, len(dims))
	}
	return e.output(slot, dt, slices.Insert(dims, axis, 0)...)
}

func compileIf(n *graph.Node) (kernel, error) {
	then, err := subgraph(n, "then_branch")
	if err != nil {
		return nil, err
	}
	els, err := subgraph(n, "else_branch")
	if err != nil {
		return nil, err
	}
	for _, g := range []*graph.Graph{then, els} {
		if len(g.Inputs) != 0 {
			return nil, fmt.Errorf("branch %q takes %d inputs, want none", g.Name, len(g.Inputs))
		}
		if len(g.Outputs) < len(n.Outputs) {
			return nil, fmt.Errorf("branch %q has %d outputs, the node %d", g.Name, len(g.Outputs), len(n.Outputs))
		}
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		cond, err := scalarBool(in[0], "cond")
		if err != nil {
			return nil, err
		}
		branch := els
		if cond {
			branch = then
		}
		// The branch's outputs stay valid until the node runs again, as
		// any kernel's outputs do.
		return e.runGraph(branch, nil)
	}, nil
}

// compileLoop compiles Loop: inputs M (trip count), cond and N
// loop-carried values; the body takes the iteration number, cond and the
// N values, and returns cond, the N values and K scan outputs, which the
// node concatenates along a new first axis.
func compileLoop(n *graph.Node) (kernel, error) {
	body, err := subgraph(n, "body")
	if err != nil {
		return nil, err
	}
	if len(n.Inputs) < 2 {
		return nil, fmt.Errorf("Loop takes M, cond and loop-carried values, got %d inputs", len(n.Inputs))
	}
	carried := len(n.Inputs) - 2
	if len(body.Inputs) != 2+carried {
		return nil, fmt.Errorf("body takes %d inputs, want 2 + %d loop-carried values", len(body.Inputs), carried)
	}
	if len(body.Outputs) < 1+carried {
		return nil, fmt.Errorf("body returns %d outputs, want at least 1 + %d loop-carried values", len(body.Outputs), carried)
	}
	scans := len(body.Outputs) - 1 - carried
	if len(n.Outputs) > carried+scans {
		return nil, fmt.Errorf("Loop has %d outputs, the body gives %d values and %d scan outputs", len(n.Outputs), carried, scans)
	}
	// Buffer slots: outputs 0..carried+scans-1, then two per carried value.
	double := carried + scans
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		trips := int64(math.MaxInt64)
		if m := optionalInput(in, 0); m != nil {
			var err error
			if trips, err = scalarInt(m, "M"); err != nil {
				return nil, err
			}
		}
		cond := true
		if c := optionalInput(in, 1); c != nil {
			var err error
			if cond, err = scalarBool(c, "cond"); err != nil {
				return nil, err
			}
		}
		values := make([]*Tensor, 2+carried)
		copy(values[2:], in[2:])
		for j, v := range values[2:] {
			if v == nil {
				return nil, fmt.Errorf("loop-carried value %d is omitted", j)
			}
		}
		iter := &Tensor{DType: onnx.TensorProto_INT64, Shape: []int{}, Data: []int64{0}}
		condIn := &Tensor{DType: onnx.TensorProto_BOOL, Shape: []int{}, Data: []bool{cond}}
		// The scan outputs of each iteration, copied.
		stacks := make([][]*Tensor, scans)
		var i int64
		for ; i < trips && cond; i++ {
			iter.Data.([]int64)[0] = i
			condIn.Data.([]bool)[0] = cond
			values[0], values[1] = iter, condIn
			outs, err := e.runGraph(body, values)
			if err != nil {
				return nil, fmt.Errorf("iteration %d: %w", i, err)
			}
			if cond, err = scalarBool(outs[0], "the body's cond output"); err != nil {
				return nil, fmt.Errorf("iteration %d: %w", i, err)
			}
			for j := range carried {
				if values[2+j], err = keep(e, double+2*j+int(i%2), outs[1+j]); err != nil {
					return nil, err
				}
			}
			for k := range scans {
				t := outs[1+carried+k]
				if t.Kind != KindTensor {
					return nil, fmt.Errorf("iteration %d: scan output %d is a %s, not a tensor", i, k, t)
				}
				if len(stacks[k]) > 0 && !sameShape(stacks[k][0].Shape, t.Shape) {
					return nil, fmt.Errorf("iteration %d: scan output %d has shape %v, earlier %v", i, k, t.Shape, stacks[k][0].Shape)
				}
				stacks[k] = append(stacks[k], t.Clone())
			}
		}
		outs := make([]*Tensor, carried+scans)
		copy(outs, values[2:])
		for k, stack := range stacks {
			slot := carried + k
			if len(stack) == 0 {
				t, err := emptyOutput(e, slot, body.Outputs[1+carried+k], 0)
				if err != nil {
					return nil, err
				}
				outs[slot] = t
				continue
			}
			t, err := e.output(slot, stack[0].DType, append([]int{len(stack)}, stack[0].Shape...)...)
			if err != nil {
				return nil, err
			}
			size := stack[0].Len()
			for i, s := range stack {
				if err := copyStrided(t.Data, s.Data, i*size, 0, size, 1); err != nil {
					return nil, err
				}
			}
			outs[slot] = t
		}
		return outs, nil
	}, nil
}

// A scanBody is a Scan's body and attributes, in the form of Scan-9: N
// state variables and M scan inputs sliced along their axes, K scan
// outputs stacked along theirs.
type scanBody struct {
	body                   *graph.Graph
	states, inputs, scans  int
	inReverse, outReverse  []bool
	inAxes, outAxes        []int64
	firstSlot, outputSlots int // buffer slots for states and slices, and the first of the scan outputs
}

func readScanBody(n *graph.Node, inputCount int, axes bool) (*scanBody, error) {
	body, err := subgraph(n, "body")
	if err != nil {
		return nil, err
	}
	m := n.AttrInt("num_scan_inputs", -1)
	if m < 1 || m > int64(inputCount) {
		return nil, fmt.Errorf("num_scan_inputs %d is out of range for %d inputs", m, inputCount)
	}
	s := &scanBody{body: body, inputs: int(m), states: inputCount - int(m)}
	if len(body.Inputs) != s.states+s.inputs {
		return nil, fmt.Errorf("body takes %d inputs, want %d states and %d scan inputs", len(body.Inputs), s.states, s.inputs)
	}
	s.scans = len(body.Outputs) - s.states
	if s.scans < 0 {
		return nil, fmt.Errorf("body returns %d outputs, fewer than the %d states", len(body.Outputs), s.states)
	}
	directions := func(name string, count int) ([]bool, error) {
		v := n.AttrInts(name, nil)
		out := make([]bool, count)
		if v == nil {
			return out, nil
		}
		if len(v) != count {
			return nil, fmt.Errorf("%s has %d values, want %d", name, len(v), count)
		}
		for i, d := range v {
			if d != 0 && d != 1 {
				return nil, fmt.Errorf("%s[%d] = %d is not 0 or 1", name, i, d)
			}
			out[i] = d == 1
		}
		return out, nil
	}
	if axes {
		if s.inReverse, err = directions("scan_input_directions", s.inputs); err != nil {
			return nil, err
		}
		if s.outReverse, err = directions("scan_output_directions", s.scans); err != nil {
			return nil, err
		}
		s.inAxes = n.AttrInts("scan_input_axes", make([]int64, s.inputs))
		s.outAxes = n.AttrInts("scan_output_axes", make([]int64, s.scans))
		if len(s.inAxes) != s.inputs || len(s.outAxes) != s.scans {
			return nil, fmt.Errorf("scan_input_axes %v and scan_output_axes %v want %d and %d values", s.inAxes, s.outAxes, s.inputs, s.scans)
		}
	} else {
		if s.inReverse, err = directions("directions", s.inputs); err != nil {
			return nil, err
		}
		s.outReverse = make([]bool, s.scans)
		s.inAxes = make([]int64, s.inputs)
		s.outAxes = make([]int64, s.scans)
	}
	return s, nil
}

// sliceAt copies x's slice at index i along axis into the node's buffer
// slot; the slice drops the axis.
func sliceAt(e *env, slot int, x *Tensor, axis, i int) (*Tensor, error) {
	shape := slices.Delete(slices.Clone(x.Shape), axis, axis+1)
	out, err := e.output(slot, x.DType, shape...)
	if err != nil {
		return nil, err
	}
	outer, length, inner := mustElements(x.Shape[:axis]), x.Shape[axis], mustElements(x.Shape[axis+1:])
	for o := range outer {
		if err := copyStrided(out.Data, x.Data, o*inner, (o*length+i)*inner, inner, 1); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// placeAt copies elem into out at index i along axis, where out has elem's
// shape with the axis inserted.
func placeAt(out, elem *Tensor, axis, i int) error {
	outer, length, inner := mustElements(out.Shape[:axis]), out.Shape[axis], mustElements(out.Shape[axis+1:])
	for o := range outer {
		if err := copyStrided(out.Data, elem.Data, (o*length+i)*inner, o*inner, inner, 1); err != nil {
			return err
		}
	}
	return nil
}

// run scans once: it returns the final states and the scan outputs, in
// buffer slots of e from s.firstSlot and s.outputSlots on.
func (s *scanBody) run(e *env, states, xs []*Tensor) ([]*Tensor, []*Tensor, error) {
	length := -1
	axes := make([]int, s.inputs)
	for j, x := range xs {
		if x == nil {
			return nil, nil, fmt.Errorf("scan input %d is omitted", j)
		}
		a, err := normAxis(s.inAxes[j], x.Rank())
		if err != nil {
			return nil, nil, fmt.Errorf("scan input %d: %w", j, err)
		}
		axes[j] = a
		if length >= 0 && x.Shape[a] != length {
			return nil, nil, fmt.Errorf("scan input %d has %d steps along axis %d, earlier inputs %d", j, x.Shape[a], a, length)
		}
		length = x.Shape[a]
	}
	values := make([]*Tensor, s.states+s.inputs)
	copy(values, states)
	outs := make([]*Tensor, s.scans)
	// Buffer slots: two per state, then one per scan input.
	sliceSlot := s.firstSlot + 2*s.states
	for t := range length {
		for j, x := range xs {
			i := t
			if s.inReverse[j] {
				i = length - 1 - t
			}
			var err error
			if values[s.states+j], err = sliceAt(e, sliceSlot+j, x, axes[j], i); err != nil {
				return nil, nil, err
			}
		}
		res, err := e.runGraph(s.body, values)
		if err != nil {
			return nil, nil, fmt.Errorf("step %d: %w", t, err)
		}
		for j := range s.states {
			if values[j], err = keep(e, s.firstSlot+2*j+t%2, res[j]); err != nil {
				return nil, nil, err
			}
		}
		for k := range s.scans {
			elem := res[s.states+k]
			a, err := normAxis(s.outAxes[k], elem.Rank()+1)
			if err != nil {
				return nil, nil, fmt.Errorf("scan output %d: %w", k, err)
			}
			shape := slices.Insert(slices.Clone(elem.Shape), a, length)
			if t == 0 {
				if outs[k], err = e.output(s.outputSlots+k, elem.DType, shape...); err != nil {
					return nil, nil, err
				}
			} else if outs[k].DType != elem.DType || !sameShape(outs[k].Shape, shape) {
				return nil, nil, fmt.Errorf("step %d: scan output %d is %s, earlier steps gave %s", t, k, elem, outs[k])
			}
			i := t
			if s.outReverse[k] {
				i = length - 1 - t
			}
			if err := placeAt(outs[k], elem, a, i); err != nil {
				return nil, nil, err
			}
		}
	}
	if length == 0 {
		for k := range s.scans {
			v := s.body.Outputs[s.states+k]
			rank := 0
			if shape, ok := v.Shape(); ok {
				rank = len(shape)
			}
			a, err := normAxis(s.outAxes[k], rank+1)
			if err != nil {
				return nil, nil, fmt.Errorf("scan output %d: %w", k, err)
			}
			if outs[k], err = emptyOutput(e, s.outputSlots+k, v, a); err != nil {
				return nil, nil, err
			}
		}
	}
	return values[:s.states], outs, nil
}

// compileScan compiles Scan-9 and later.
func compileScan(n *graph.Node) (kernel, error) {
	s, err := readScanBody(n, len(n.Inputs), true)
	if err != nil {
		return nil, err
	}
	// Buffer slots: scan outputs after the states' outputs, then the
	// scan's working buffers.
	s.outputSlots = s.states
	s.firstSlot = s.states + s.scans
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if len(in) != s.states+s.inputs {
			return nil, fmt.Errorf("Scan takes %d inputs, got %d", s.states+s.inputs, len(in))
		}
		for j, v := range in[:s.states] {
			if v == nil {
				return nil, fmt.Errorf("state %d is omitted", j)
			}
		}
		states, scans, err := s.run(e, in[:s.states], in[s.states:])
		if err != nil {
			return nil, err
		}
		return append(states, scans...), nil
	}, nil
}

// compileScan8 compiles Scan-8, whose inputs are sequence_lens (optional)
// and then states and scan inputs with a leading batch dimension. Each
// batch entry is scanned on its own along axis 1. Sequences shorter than
// the scan inputs are not supported.
func compileScan8(n *graph.Node) (kernel, error) {
	if len(n.Inputs) < 1 {
		return nil, errors.New("Scan-8 needs sequence_lens (may be empty) before its inputs")
	}
	s, err := readScanBody(n, len(n.Inputs)-1, false)
	if err != nil {
		return nil, err
	}
	// Buffer slots: the node's outputs, per-entry scan outputs, per-entry
	// states and scan inputs, then the scan's working buffers.
	total := s.states + s.scans
	s.outputSlots = total
	entrySlots := s.outputSlots + s.scans
	s.firstSlot = entrySlots + s.states + s.inputs
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if len(in) != 1+s.states+s.inputs {
			return nil, fmt.Errorf("Scan takes %d inputs, got %d", 1+s.states+s.inputs, len(in))
		}
		xs := in[1+s.states:]
		batch := -1
		for j, v := range in[1:] {
			if v == nil || v.Rank() < 1 {
				return nil, fmt.Errorf("input %d must have a batch dimension, got %v", j+1, v)
			}
			if batch >= 0 && v.Shape[0] != batch {
				return nil, fmt.Errorf("input %d has batch size %d, earlier inputs %d", j+1, v.Shape[0], batch)
			}
			batch = v.Shape[0]
		}
		for j, x := range xs {
			if x.Rank() < 2 {
				return nil, fmt.Errorf("scan input %d %s has no sequence axis", j, x)
			}
		}
		if lens := in[0]; lens != nil {
			l, err := intsInput(lens, "sequence_lens")
			if err != nil {
				return nil, err
			}
			for b, v := range l {
				if len(xs) > 0 && v != int64(xs[0].Shape[1]) {
					return nil, fmt.Errorf("sequence_lens[%d] = %d: sequences shorter than the scan inputs' %d steps are not supported", b, v, xs[0].Shape[1])
				}
			}
		}
		outs := make([]*Tensor, total)
		entry := make([]*Tensor, s.states+s.inputs)
		for b := range batch {
			for j, v := range in[1:] {
				var err error
				if entry[j], err = sliceAt(e, entrySlots+j, v, 0, b); err != nil {
					return nil, err
				}
			}
			final, scans, err := s.run(e, entry[:s.states], entry[s.states:])
			if err != nil {
				return nil, fmt.Errorf("batch entry %d: %w", b, err)
			}
			for k, t := range append(final, scans...) {
				shape := append([]int{batch}, t.Shape...)
				if b == 0 {
					if outs[k], err = e.output(k, t.DType, shape...); err != nil {
						return nil, err
					}
				} else if outs[k].DType != t.DType || !sameShape(outs[k].Shape, shape) {
					return nil, fmt.Errorf("batch entry %d: output %d is %s, earlier entries gave %s", b, k, t, outs[k])
				}
				if err := placeAt(outs[k], t, 0, b); err != nil {
					return nil, err
				}
			}
		}
		if batch == 0 {
			return nil, errors.New("Scan-8 over an empty batch: output shapes are unknown")
		}
		return outs, nil
	}, nil
}
