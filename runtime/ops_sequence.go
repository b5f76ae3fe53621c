package runtime

import (
	"errors"
	"fmt"
	"slices"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// Sequences and optionals are Tensors of KindSequence and KindOptional
// (see tensor.go). Their elements are other values of the run, held by
// reference rather than copied: no kernel writes to its inputs, a node's
// outputs stay valid until it runs again, which within one run of a plan
// happens only in a loop, and the loops copy what they keep from one
// iteration to the next (keep in ops_control.go, the outputs of
// SequenceMap's body here).
var sequenceOps = []opDef{
	// Later versions of the sequence operators widen the element types
	// only.
	{"", "SequenceEmpty", 11, compileSequenceEmpty},
	{"", "SequenceConstruct", 11, compileSequenceConstruct},
	{"", "SequenceInsert", 11, compileSequenceInsert},
	{"", "SequenceAt", 11, compileSequenceAt},
	{"", "SequenceErase", 11, compileSequenceErase},
	{"", "SequenceLength", 11, compileSequenceLength},
	{"", "SplitToSequence", 11, compileSplitToSequence},
	{"", "ConcatFromSequence", 11, compileConcatFromSequence},
	{"", "SequenceMap", 17, compileSequenceMap},
	{"", "Optional", 15, compileOptional},
	// Opset 18 lets OptionalHasElement and OptionalGetElement take
	// tensors and sequences, as present values, and OptionalHasElement an
	// omitted input. The runtime takes tensors and sequences before 18
	// too: a Loop that carries an optional gets back from its body what
	// the body returns, which may be the sequence itself (the suite's
	// test_loop16_seq_none does so).
	{"", "OptionalHasElement", 15, compileOptionalHasElement},
	{"", "OptionalGetElement", 15, compileOptionalGetElement},
}

// takesNonTensors reports whether n's operator accepts sequences and
// optionals among its inputs: the operators of this file's table in the
// default domain, Identity, and Loop for its loop-carried values. The
// plan refuses those values as inputs of every other operator, so that
// kernels written for tensors never see one.
func takesNonTensors(n *graph.Node) bool {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return false
	}
	if n.OpType == "Identity" || n.OpType == "Loop" {
		return true
	}
	return slices.ContainsFunc(sequenceOps, func(d opDef) bool { return d.domain == "" && d.opType == n.OpType })
}

// kindOf returns the kind of value a type declares; a missing type counts
// as a tensor. ok is false when the type is or holds a map, a sparse
// tensor or an opaque value, which the runtime does not compute.
func kindOf(t *onnx.TypeProto) (kind Kind, ok bool) {
	switch {
	case t.GetSequenceType() != nil:
		_, ok := kindOf(t.GetSequenceType().GetElemType())
		return KindSequence, ok
	case t.GetOptionalType() != nil:
		_, ok := kindOf(t.GetOptionalType().GetElemType())
		return KindOptional, ok
	case t.GetMapType() != nil, t.GetSparseTensorType() != nil, t.GetOpaqueType() != nil:
		return KindTensor, false
	}
	return KindTensor, true
}

// innerElemType returns the element type of the tensors a type declares,
// inside any sequences and optionals; UNDEFINED when it is not declared.
func innerElemType(t *onnx.TypeProto) onnx.TensorProto_DataType {
	for t != nil {
		switch {
		case t.GetTensorType() != nil:
			return onnx.TensorProto_DataType(t.GetTensorType().GetElemType())
		case t.GetSequenceType() != nil:
			t = t.GetSequenceType().GetElemType()
		case t.GetOptionalType() != nil:
			t = t.GetOptionalType().GetElemType()
		default:
			return onnx.TensorProto_UNDEFINED
		}
	}
	return onnx.TensorProto_UNDEFINED
}

// checkValue checks v, given for the graph input name, against its
// declared type tp (nil when undeclared): the kinds and element types at
// every level, and that every tensor's data fills its shape, which the
// kernels rely on.
func checkValue(name string, tp *onnx.TypeProto, v *Tensor) error {
	kind, ok := kindOf(tp)
	if !ok {
		return fmt.Errorf("input %q: the runtime computes no maps, sparse tensors or opaque values", name)
	}
	if tp != nil && kind != v.Kind {
		return fmt.Errorf("input %q: got a %s, want a %s", name, v, kindName(kind))
	}
	if want := innerElemType(tp); want != onnx.TensorProto_UNDEFINED && want != v.DType {
		return fmt.Errorf("input %q: got %s, want elements of %s", name, v, dtypeName(want))
	}
	var inner *onnx.TypeProto
	switch v.Kind {
	case KindTensor:
		if err := v.checkData(); err != nil {
			return fmt.Errorf("input %q: %w", name, err)
		}
		return nil
	case KindSequence:
		inner = tp.GetSequenceType().GetElemType()
	case KindOptional:
		if len(v.Elems) > 1 {
			return fmt.Errorf("input %q: an optional holds %d values", name, len(v.Elems))
		}
		inner = tp.GetOptionalType().GetElemType()
	default:
		return fmt.Errorf("input %q: unknown kind of value %d", name, v.Kind)
	}
	for i, e := range v.Elems {
		if e == nil {
			return fmt.Errorf("input %q: element %d is nil", name, i)
		}
		if e.DType != v.DType {
			return fmt.Errorf("input %q: element %d is %s in a %s", name, i, e, v)
		}
		if err := checkValue(fmt.Sprintf("%s[%d]", name, i), inner, e); err != nil {
			return err
		}
	}
	return nil
}

func kindName(k Kind) string {
	switch k {
	case KindSequence:
		return "sequence"
	case KindOptional:
		return "optional"
	}
	return "tensor"
}

// sequenceInput returns input i, which must be a sequence.
func sequenceInput(in []*Tensor, i int) (*Tensor, error) {
	s := optionalInput(in, i)
	if s == nil {
		return nil, fmt.Errorf("input %d (a sequence) is required", i)
	}
	if s.Kind != KindSequence {
		return nil, fmt.Errorf("input %d must be a sequence, got %s", i, s)
	}
	return s, nil
}

// tensorInput returns input i, which must be a tensor.
func tensorInput(in []*Tensor, i int) (*Tensor, error) {
	t := optionalInput(in, i)
	if t == nil {
		return nil, fmt.Errorf("input %d (a tensor) is required", i)
	}
	if t.Kind != KindTensor {
		return nil, fmt.Errorf("input %d must be a tensor, got %s", i, t)
	}
	return t, nil
}

// position reads the optional position input i of a sequence of length n:
// one integer in [-n, n-1], or [-n, n] when end (one past the last) is
// allowed, negative counting from the back. An omitted position is the
// default def.
func position(in []*Tensor, i, n int, end bool, def int) (int, error) {
	t := optionalInput(in, i)
	if t == nil {
		return def, nil
	}
	if t.Kind != KindTensor {
		return 0, fmt.Errorf("position must be a tensor, got %s", t)
	}
	p, err := scalarInt(t, "position")
	if err != nil {
		return 0, err
	}
	hi := int64(n) - 1
	if end {
		hi++
	}
	if p < -int64(n) || p > hi {
		return 0, fmt.Errorf("position %d is out of range [%d, %d] for a sequence of length %d", p, -n, hi, n)
	}
	if p < 0 {
		p += int64(n)
	}
	return int(p), nil
}

// dtypeAttr reads an element-type attribute the runtime must compute in.
func dtypeAttr(n *graph.Node, name string, def onnx.TensorProto_DataType) (onnx.TensorProto_DataType, error) {
	dt := onnx.TensorProto_DataType(n.AttrInt(name, int64(def)))
	if _, err := makeSlice(dt, 0); err != nil {
		return 0, fmt.Errorf("attribute %s: %w", name, err)
	}
	return dt, nil
}

func compileSequenceEmpty(n *graph.Node) (kernel, error) {
	dt, err := dtypeAttr(n, "dtype", onnx.TensorProto_FLOAT)
	if err != nil {
		return nil, err
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		return []*Tensor{NewSequence(dt)}, nil
	}, nil
}

func compileSequenceConstruct(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if len(in) == 0 {
			return nil, errors.New("SequenceConstruct takes at least one tensor")
		}
		// in is the plan's scratch slice, reused by the next node.
		elems := make([]*Tensor, len(in))
		for i := range in {
			t, err := tensorInput(in, i)
			if err != nil {
				return nil, err
			}
			if t.DType != in[0].DType {
				return nil, fmt.Errorf("input %d is %s, input 0 %s: a sequence holds one element type", i, t, in[0])
			}
			elems[i] = t
		}
		return []*Tensor{NewSequence(in[0].DType, elems...)}, nil
	}, nil
}

func compileSequenceInsert(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		s, err := sequenceInput(in, 0)
		if err != nil {
			return nil, err
		}
		t, err := tensorInput(in, 1)
		if err != nil {
			return nil, err
		}
		if t.DType != s.DType {
			return nil, fmt.Errorf("cannot insert %s into a sequence of %s", t, dtypeName(s.DType))
		}
		p, err := position(in, 2, len(s.Elems), true, len(s.Elems))
		if err != nil {
			return nil, err
		}
		return []*Tensor{NewSequence(s.DType, slices.Insert(slices.Clone(s.Elems), p, t)...)}, nil
	}, nil
}

func compileSequenceAt(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		s, err := sequenceInput(in, 0)
		if err != nil {
			return nil, err
		}
		if optionalInput(in, 1) == nil {
			return nil, errors.New("input 1 (position) is required")
		}
		p, err := position(in, 1, len(s.Elems), false, 0)
		if err != nil {
			return nil, err
		}
		return []*Tensor{s.Elems[p]}, nil
	}, nil
}

func compileSequenceErase(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		s, err := sequenceInput(in, 0)
		if err != nil {
			return nil, err
		}
		if len(s.Elems) == 0 {
			return nil, errors.New("cannot erase from an empty sequence")
		}
		p, err := position(in, 1, len(s.Elems), false, len(s.Elems)-1)
		if err != nil {
			return nil, err
		}
		return []*Tensor{NewSequence(s.DType, slices.Delete(slices.Clone(s.Elems), p, p+1)...)}, nil
	}, nil
}

func compileSequenceLength(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		s, err := sequenceInput(in, 0)
		if err != nil {
			return nil, err
		}
		out, err := e.output(0, onnx.TensorProto_INT64)
		if err != nil {
			return nil, err
		}
		out.Data.([]int64)[0] = int64(len(s.Elems))
		return []*Tensor{out}, nil
	}, nil
}

// compileSplitToSequence splits along axis into parts of the lengths a
// 1-D split gives, into parts of a scalar split's length (the last one
// shorter when the dimension is not a multiple), or, without split, into
// parts of length one, whose axis keepdims=0 drops.
func compileSplitToSequence(n *graph.Node) (kernel, error) {
	axis := n.AttrInt("axis", 0)
	keepdims := n.AttrInt("keepdims", 1) != 0
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x, err := tensorInput(in, 0)
		if err != nil {
			return nil, err
		}
		a, err := normAxis(axis, x.Rank())
		if err != nil {
			return nil, err
		}
		dim := x.Shape[a]
		var sizes []int64
		squeeze := false
		switch s := optionalInput(in, 1); {
		case s == nil:
			sizes = slices.Repeat([]int64{1}, dim)
			squeeze = !keepdims
		case s.Kind != KindTensor:
			return nil, fmt.Errorf("split must be a tensor, got %s", s)
		case s.Rank() == 0:
			chunk, err := scalarInt(s, "split")
			if err != nil {
				return nil, err
			}
			if chunk <= 0 {
				return nil, fmt.Errorf("split %d must be positive", chunk)
			}
			for left := int64(dim); left > 0; left -= chunk {
				sizes = append(sizes, min(chunk, left))
			}
		case s.Rank() == 1:
			if sizes, err = intsInput(s, "split"); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("split must be a scalar or 1-D, got %s", s)
		}
		if len(sizes) == 0 {
			if dim != 0 {
				return nil, fmt.Errorf("an empty split cannot cover dimension %d of size %d", a, dim)
			}
			return []*Tensor{NewSequence(x.DType)}, nil
		}
		parts, err := split(e, x, int64(a), sizes, len(sizes), false)
		if err != nil {
			return nil, err
		}
		if squeeze {
			for i, p := range parts {
				parts[i] = &Tensor{DType: p.DType, Shape: slices.Delete(p.Shape, a, a+1), Data: p.Data}
			}
		}
		return []*Tensor{NewSequence(x.DType, parts...)}, nil
	}, nil
}

// compileConcatFromSequence concatenates a sequence's tensors along axis
// or, with new_axis=1, stacks them along a new axis.
func compileConcatFromSequence(n *graph.Node) (kernel, error) {
	if n.Attr("axis") == nil {
		return nil, errors.New("attribute axis is required")
	}
	axis := n.AttrInt("axis", 0)
	newAxis := n.AttrInt("new_axis", 0)
	if newAxis != 0 && newAxis != 1 {
		return nil, fmt.Errorf("new_axis %d is not 0 or 1", newAxis)
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		s, err := sequenceInput(in, 0)
		if err != nil {
			return nil, err
		}
		if len(s.Elems) == 0 {
			return nil, errors.New("cannot concatenate an empty sequence: the output shape is unknown")
		}
		first := s.Elems[0]
		if first.Kind != KindTensor {
			return nil, fmt.Errorf("cannot concatenate a sequence of %s", first)
		}
		a, err := normAxis(axis, first.Rank()+int(newAxis))
		if err != nil {
			return nil, err
		}
		// Stacking is concatenation of the elements with a dimension of
		// one inserted at the axis.
		shapeOf := func(t *Tensor) []int {
			if newAxis == 1 {
				return slices.Insert(slices.Clone(t.Shape), a, 1)
			}
			return t.Shape
		}
		shape := slices.Clone(shapeOf(first))
		shape[a] = 0
		for i, t := range s.Elems {
			if t.Kind != KindTensor || t.DType != first.DType || t.Rank() != first.Rank() {
				return nil, fmt.Errorf("element %d is %s, element 0 %s", i, t, first)
			}
			ts := shapeOf(t)
			for k, d := range ts {
				if k != a && d != shape[k] {
					return nil, fmt.Errorf("element %d has shape %v, element 0 %v: they differ outside axis %d", i, t.Shape, first.Shape, axis)
				}
			}
			shape[a] += ts[a]
		}
		out, err := e.output(0, first.DType, shape...)
		if err != nil {
			return nil, err
		}
		outer, inner := mustElements(shape[:a]), mustElements(shape[a+1:])
		row := shape[a] * inner
		for o := range outer {
			d := o * row
			for _, t := range s.Elems {
				chunk := shapeOf(t)[a] * inner
				if err := copyStrided(out.Data, t.Data, d, o*chunk, chunk, 1); err != nil {
					return nil, err
				}
				d += chunk
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

// compileSequenceMap runs the body once per element of the first input
// sequence. Each further input is a sequence of the same length, whose
// element at the same position the body gets, or a tensor the body gets
// whole every time. Each body output makes one output sequence.
func compileSequenceMap(n *graph.Node) (kernel, error) {
	body, err := subgraph(n, "body")
	if err != nil {
		return nil, err
	}
	if len(body.Inputs) != len(n.Inputs) {
		return nil, fmt.Errorf("body takes %d inputs, the node has %d", len(body.Inputs), len(n.Inputs))
	}
	if len(n.Outputs) > len(body.Outputs) {
		return nil, fmt.Errorf("the node has %d outputs, the body returns %d", len(n.Outputs), len(body.Outputs))
	}
	// The element types of the outputs, for an empty input sequence.
	types := make([]onnx.TensorProto_DataType, len(body.Outputs))
	for k, v := range body.Outputs {
		types[k] = innerElemType(v.Type)
		if o := n.Outputs; k < len(o) && o[k] != nil && types[k] == onnx.TensorProto_UNDEFINED {
			types[k] = innerElemType(o[k].Type)
		}
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		s, err := sequenceInput(in, 0)
		if err != nil {
			return nil, err
		}
		for i, t := range in[1:] {
			if t == nil {
				return nil, fmt.Errorf("input %d is omitted", i+1)
			}
			if t.Kind == KindSequence && len(t.Elems) != len(s.Elems) {
				return nil, fmt.Errorf("input %d is a sequence of length %d, input 0 of length %d", i+1, len(t.Elems), len(s.Elems))
			}
		}
		outs := make([]*Tensor, len(body.Outputs))
		for k := range outs {
			outs[k] = NewSequence(types[k])
		}
		values := make([]*Tensor, len(in))
		for i := range s.Elems {
			for j, t := range in {
				values[j] = t
				if t.Kind == KindSequence {
					values[j] = t.Elems[i]
				}
			}
			res, err := e.runGraph(body, values)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			for k, r := range res {
				if i == 0 {
					outs[k].DType = r.DType
				} else if r.DType != outs[k].DType {
					return nil, fmt.Errorf("element %d: body output %d is %s, earlier %s", i, k, r, dtypeName(outs[k].DType))
				}
				// The body's buffers serve the next element.
				outs[k].Elems = append(outs[k].Elems, r.Clone())
			}
		}
		return outs, nil
	}, nil
}

// compileOptional wraps its input in an optional, or makes an empty one
// of the type attribute's element type when the input is omitted.
func compileOptional(n *graph.Node) (kernel, error) {
	empty := onnx.TensorProto_UNDEFINED
	if a := n.Attr("type"); a != nil {
		if _, ok := kindOf(a.Proto.GetTp()); !ok {
			return nil, errors.New("attribute type: the runtime computes no maps, sparse tensors or opaque values")
		}
		empty = innerElemType(a.Proto.GetTp())
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		v := optionalInput(in, 0)
		if v == nil && empty == onnx.TensorProto_UNDEFINED {
			return nil, errors.New("an empty Optional needs the type attribute")
		}
		if v != nil && v.Kind == KindOptional {
			return nil, errors.New("the input is an optional already")
		}
		return []*Tensor{NewOptional(empty, v)}, nil
	}, nil
}

// compileOptionalHasElement tells whether the input holds a value: an
// optional that is not empty, a tensor or a sequence.
func compileOptionalHasElement(n *graph.Node) (kernel, error) {
	omittable := n.Opset() >= 18
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		v := optionalInput(in, 0)
		has := false
		switch {
		case v == nil && !omittable:
			return nil, errors.New("input 0 is required before opset 18")
		case v == nil:
		case v.Kind == KindOptional:
			has = len(v.Elems) > 0
		default:
			has = true
		}
		out, err := e.output(0, onnx.TensorProto_BOOL)
		if err != nil {
			return nil, err
		}
		out.Data.([]bool)[0] = has
		return []*Tensor{out}, nil
	}, nil
}

// compileOptionalGetElement returns the value an optional holds, and a
// tensor or a sequence as it is.
func compileOptionalGetElement(n *graph.Node) (kernel, error) {
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		v := optionalInput(in, 0)
		switch {
		case v == nil:
			return nil, errors.New("input 0 is required")
		case v.Kind == KindOptional && len(v.Elems) == 0:
			return nil, fmt.Errorf("the input is an %s", v)
		case v.Kind == KindOptional:
			return []*Tensor{v.Elems[0]}, nil
		}
		return []*Tensor{v}, nil
	}, nil
}
