package passes

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// foldConstants evaluates the nodes whose inputs are all constants on the
// runtime and replaces their outputs with initializers.
type foldConstants struct {
	limit int64 // bytes; a larger result is left to be computed at run time
}

func (p *foldConstants) Flags(fs *pflag.FlagSet) {
	fs.Int64Var(&p.limit, "fold-limit", 1<<20, "largest constant, in bytes, that fold-constants makes from a smaller one")
}

// A folder carries one run of fold-constants over a model.
type folder struct {
	limit  int64
	model  *graph.Model
	values map[*graph.Value]*runtime.Tensor // decoded constants, by value
	// made and consumed are initializers the pass created and the
	// constants folded nodes read: those left unread at the end go.
	made, consumed []*graph.Value
	lacking        map[string]bool // "Op (opset N)" the runtime lacks
	failed         []string
	overLimit      int
	constants      int // Constant nodes turned into initializers
	shapes         int // Shape and Size nodes answered from static shapes
	folded         int // nodes evaluated on the runtime
}

func (p *foldConstants) Run(m *graph.Model, env *Env) (Result, error) {
	f := &folder{limit: p.limit, model: m, values: map[*graph.Value]*runtime.Tensor{}, lacking: map[string]bool{}}
	var err error
	m.Graph.Walk(func(g *graph.Graph) bool {
		err = f.graph(g, env)
		return err == nil
	})
	if err != nil {
		return Result{}, err
	}
	f.dropUnread()
	res := Result{Changes: f.constants + f.shapes + f.folded}
	if res.Changes > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d Constant nodes became initializers, %d Shape/Size nodes read static shapes, %d nodes were evaluated", f.constants, f.shapes, f.folded))
	}
	if f.overLimit > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d constant results over --fold-limit=%d bytes were left to run time", f.overLimit, f.limit))
	}
	if len(f.lacking) > 0 {
		ops := make([]string, 0, len(f.lacking))
		for op := range f.lacking {
			ops = append(ops, op)
		}
		slices.Sort(ops)
		res.Notes = append(res.Notes, "not folded, the runtime lacks: "+strings.Join(ops, ", "))
	}
	res.Notes = append(res.Notes, f.failed...)
	return res, nil
}

func (f *folder) graph(g *graph.Graph, env *Env) error {
	if err := g.Sort(); err != nil {
		return err
	}
	// Shapes are trusted in the main graph only: a loop body's declared
	// input shapes may hold for the first iteration alone.
	var types inferred
	if g.Parent == nil {
		var err error
		if types, err = g.Infer(); err != nil {
			env.warnf("fold-constants: shape inference failed, Shape and Size fold from declared shapes only: %v", err)
			types = nil
		}
	}
	for _, n := range slices.Clone(g.Nodes) {
		if !isLive(g, n) || !isStandard(n) {
			continue
		}
		var err error
		switch {
		case n.OpType == "Constant":
			err = f.constant(g, n)
		case g.Parent == nil && (n.OpType == "Shape" || n.OpType == "Size") && !f.allConstant(n):
			err = f.staticShape(g, n, types)
		default:
			err = f.evaluate(g, n, types)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// isStandard reports whether n is an operator of the default ONNX domain.
func isStandard(n *graph.Node) bool {
	return n.Domain == "" || n.Domain == "ai.onnx"
}

// isRandom reports whether n draws random numbers, so that two runs, or
// two nodes alike, give different results.
func isRandom(n *graph.Node) bool {
	switch n.OpType {
	case "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli", "Multinomial":
		return true
	case "Dropout":
		if n.Opset() >= 12 {
			t := n.Input(2)
			return t != nil && !isConstFalse(t)
		}
		// Before opset 7, is_test picks the mode; exporters and runtimes
		// take its absence as inference, as identity does.
		return n.Opset() < 7 && n.AttrInt("is_test", 1) == 0
	}
	return false
}

// hasSubgraph reports whether n holds a graph attribute (If, Loop, Scan).
func hasSubgraph(n *graph.Node) bool {
	for _, a := range n.Attrs {
		if a.Graph != nil || len(a.Graphs) > 0 {
			return true
		}
	}
	return false
}

// isFoldable reports whether n computes the same outputs whenever its
// inputs are the same, so that it can run once, ahead of time.
func isFoldable(n *graph.Node) bool {
	// DequantizeLinear on constant weights is how a quantized model stores
	// them: folding it would undo the quantization.
	return isStandard(n) && !isRandom(n) && !hasSubgraph(n) && n.OpType != "DequantizeLinear"
}

// allConstant reports whether every input n reads is a constant.
func (f *folder) allConstant(n *graph.Node) bool {
	for _, v := range n.Inputs {
		if v != nil && (v.Init == nil || !v.IsConstant()) {
			return false
		}
	}
	return true
}

// constant turns a Constant node into an initializer holding its value.
func (f *folder) constant(g *graph.Graph, n *graph.Node) error {
	var t *onnx.TensorProto
	var err error
	switch {
	case n.AttrTensor("value") != nil:
		t = cloneTensor(n.AttrTensor("value"))
	case n.Attr("value_float") != nil:
		t, err = onnx.NewTensor("", onnx.TensorProto_FLOAT, nil, []float32{n.AttrFloat("value_float", 0)})
	case n.Attr("value_floats") != nil:
		fs := n.AttrFloats("value_floats", nil)
		t, err = onnx.NewTensor("", onnx.TensorProto_FLOAT, []int64{int64(len(fs))}, fs)
	case n.Attr("value_int") != nil:
		t, err = onnx.NewTensor("", onnx.TensorProto_INT64, nil, []int64{n.AttrInt("value_int", 0)})
	case n.Attr("value_ints") != nil:
		is := n.AttrInts("value_ints", nil)
		t, err = onnx.NewTensor("", onnx.TensorProto_INT64, []int64{int64(len(is))}, is)
	case n.Attr("value_string") != nil:
		t, err = onnx.NewTensor("", onnx.TensorProto_STRING, nil, []string{n.AttrString("value_string", "")})
	case n.Attr("value_strings") != nil:
		ss := stringsOf(n.Attr("value_strings").Proto.GetStrings())
		t, err = onnx.NewTensor("", onnx.TensorProto_STRING, []int64{int64(len(ss))}, ss)
	default:
		return nil // sparse_value: the runtime computes no sparse tensors
	}
	if err != nil {
		return fmt.Errorf("node %s: %w", n, err)
	}
	f.replace(g, n, []*onnx.TensorProto{t})
	f.constants++
	return nil
}

func stringsOf(bs [][]byte) []string {
	ss := make([]string, len(bs))
	for i, b := range bs {
		ss[i] = string(b)
	}
	return ss
}

// cloneTensor copies t without its name, which the initializer sets.
func cloneTensor(t *onnx.TensorProto) *onnx.TensorProto {
	c := proto.CloneOf(t)
	c.Name = nil
	return c
}

// staticShape answers a Shape or Size node from its input's static shape.
func (f *folder) staticShape(g *graph.Graph, n *graph.Node, types inferred) error {
	x := n.Input(0)
	if x == nil {
		return nil
	}
	shape, ok := types.shape(x)
	if !ok {
		return nil
	}
	var t *onnx.TensorProto
	var err error
	if n.OpType == "Size" {
		dims, ok := shape.Static()
		if !ok {
			return nil
		}
		size := int64(1)
		for _, d := range dims {
			size *= d
		}
		t, err = onnx.NewTensor("", onnx.TensorProto_INT64, nil, []int64{size})
	} else {
		// The same clamping as the operator's start and end (opset 15).
		rank := int64(len(shape))
		clamp := func(a int64) int64 {
			if a < 0 {
				a += rank
			}
			return min(max(a, 0), rank)
		}
		start, end := clamp(n.AttrInt("start", 0)), clamp(n.AttrInt("end", rank))
		dims, ok := shape[start:max(start, end)].Static()
		if !ok {
			return nil
		}
		t, err = onnx.NewTensor("", onnx.TensorProto_INT64, []int64{int64(len(dims))}, dims)
	}
	if err != nil {
		return fmt.Errorf("node %s: %w", n, err)
	}
	f.replace(g, n, []*onnx.TensorProto{t})
	f.shapes++
	return nil
}

// evaluate runs n on the runtime when its inputs are all constants and
// replaces it with its results, unless one is over the size limit.
func (f *folder) evaluate(g *graph.Graph, n *graph.Node, types inferred) error {
	if !isFoldable(n) || len(n.Inputs) == 0 || !f.allConstant(n) {
		return nil
	}
	allowed := max(f.limit, f.freed(n))
	for _, v := range n.Outputs {
		if v != nil && types.staticBytes(v) > allowed {
			f.overLimit++
			return nil // known too large before running it
		}
	}
	outs, err := f.run(n)
	var unsupported *runtime.UnsupportedError
	switch {
	case errors.As(err, &unsupported):
		f.lacking[fmt.Sprintf("%s (opset %d)", unsupported.Op, unsupported.Opset)] = true
		return nil
	case err != nil:
		// The model fails the same way when this node runs; where it is
		// in a branch that never runs, the model still works: leave it.
		f.failed = append(f.failed, fmt.Sprintf("node %s not folded: %v", n, err))
		return nil
	}
	tensors := make([]*onnx.TensorProto, len(n.Outputs))
	for i, v := range n.Outputs {
		if v == nil {
			continue
		}
		t := outs[i]
		if t == nil || t.Kind != runtime.KindTensor {
			return nil // sequences and optionals have no initializer form
		}
		if tensors[i], err = runtime.TensorToProto("", t); err != nil {
			f.failed = append(f.failed, fmt.Sprintf("node %s not folded: %v", n, err))
			return nil
		}
		if graph.TensorBytes(tensors[i]) > allowed {
			f.overLimit++
			return nil
		}
	}
	for i, v := range n.Outputs {
		if v != nil {
			f.values[v] = outs[i]
		}
	}
	for _, v := range n.Inputs {
		if v != nil {
			f.consumed = append(f.consumed, v)
		}
	}
	f.replace(g, n, tensors)
	f.folded++
	return nil
}

// freed is the size of the constants that only n reads: a result no
// larger than them may pass the limit, since folding cannot grow the
// model then (a transposed weight).
func (f *folder) freed(n *graph.Node) int64 {
	var bytes int64
	seen := map[*graph.Value]bool{}
	for _, v := range n.Inputs {
		if v == nil || seen[v] || v.Graph.IsOutput(v) {
			continue
		}
		seen[v] = true
		if !slices.ContainsFunc(v.Uses, func(u graph.Use) bool { return u.Node != n }) {
			bytes += graph.TensorBytes(v.Init)
		}
	}
	return bytes
}

// run computes n's outputs from its constant inputs with
// runtime.RunNode, so that the numbers are the runtime's own.
func (f *folder) run(n *graph.Node) ([]*runtime.Tensor, error) {
	inputs := make([]*runtime.Tensor, len(n.Inputs))
	for i, v := range n.Inputs {
		if v == nil {
			continue
		}
		t, err := f.tensor(v)
		if err != nil {
			return nil, err
		}
		inputs[i] = t
	}
	outputs := make([]bool, len(n.Outputs))
	for i, v := range n.Outputs {
		outputs[i] = v != nil
	}
	attrs := make([]*onnx.AttributeProto, len(n.Attrs))
	for i, a := range n.Attrs {
		attrs[i] = a.Proto
	}
	return runtime.RunNode(runtime.NodeCall{
		IRVersion: f.model.IRVersion, Opsets: f.model.Opsets,
		Domain: n.Domain, OpType: n.OpType, Name: n.Name, Attrs: attrs,
		Inputs: inputs, Outputs: outputs,
	})
}

// tensor returns constant v decoded, once.
func (f *folder) tensor(v *graph.Value) (*runtime.Tensor, error) {
	if t, ok := f.values[v]; ok {
		return t, nil
	}
	t, err := runtime.TensorFromProto(v.Init)
	if err != nil {
		return nil, fmt.Errorf("constant %q: %w", v.Name, err)
	}
	f.values[v] = t
	return t, nil
}

func int64s(xs []int) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = int64(x)
	}
	return out
}

// dropUnread removes the initializers the pass made or folded away that
// nothing reads any more.
func (f *folder) dropUnread() {
	touched := map[*graph.Graph]bool{}
	for _, v := range slices.Concat(f.made, f.consumed) {
		g := v.Graph
		if v.Init == nil || !v.IsConstant() || len(v.Uses) > 0 || g.IsOutput(v) {
			continue
		}
		g.RemoveInitializer(v)
		g.ValueInfo = slices.DeleteFunc(g.ValueInfo, func(w *graph.Value) bool { return w == v })
		touched[g] = true
	}
	for g := range touched {
		g.Prune()
	}
}

// replace removes n and makes each of its outputs an initializer holding
// the matching tensor. The values stay, with their names and readers.
func (f *folder) replace(g *graph.Graph, n *graph.Node, tensors []*onnx.TensorProto) {
	g.RemoveNode(n)
	for i, v := range n.Outputs {
		if v == nil {
			continue
		}
		v.SetInit(tensors[i])
		g.Initializers = append(g.Initializers, v)
		// The initializer declares the type now.
		g.ValueInfo = slices.DeleteFunc(g.ValueInfo, func(w *graph.Value) bool { return w == v })
		f.made = append(f.made, v)
	}
}

// inferred holds the types graph inference tells for a graph's values;
// values it says nothing of keep their declared types.
type inferred map[*graph.Value]*onnx.TypeProto

// inferTypes infers g's types; where inference fails, passes go by the
// declared types alone.
func inferTypes(g *graph.Graph) inferred {
	types, err := g.Infer()
	if err != nil {
		return nil
	}
	return types
}

func (types inferred) value(v *graph.Value) *graph.Value {
	if t, ok := types[v]; ok {
		return &graph.Value{Type: t}
	}
	return v
}

// shape returns v's shape, and false when its rank is unknown.
func (types inferred) shape(v *graph.Value) (graph.Shape, bool) {
	return types.value(v).Shape()
}

// elem returns v's element type, or UNDEFINED.
func (types inferred) elem(v *graph.Value) onnx.TensorProto_DataType {
	return types.value(v).ElemType()
}

// staticBytes is the size of v's data when its type and shape are known,
// and -1 otherwise.
func (types inferred) staticBytes(v *graph.Value) int64 {
	s, ok := types.shape(v)
	if !ok {
		return -1
	}
	dims, ok := s.Static()
	elem := types.elem(v)
	if !ok || elem == onnx.TensorProto_UNDEFINED || elem == onnx.TensorProto_STRING {
		return -1
	}
	n, err := onnx.NumElements(dims)
	if err != nil {
		return -1
	}
	size, err := elem.RawSize(n)
	if err != nil {
		return -1
	}
	return size
}
