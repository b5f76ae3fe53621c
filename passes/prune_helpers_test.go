package passes

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// pruned is the outcome of one pruning pass in a test.
type pruned struct {
	res      Result
	warnings []string
	// back is the pruned model after a save and load.
	back *graph.Model
}

// applyPrune runs the pass called name on m with the command-line args
// (its flags) and calibration batches, checks that the model sorts and
// verifies, and returns the result with the model saved and loaded again.
func applyPrune(t *testing.T, m *graph.Model, name string, calib []map[string]*runtime.Tensor, args ...string) pruned {
	t.Helper()
	p, err := prunePass(m, name, calib, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// prunePass is applyPrune returning the error of the pass.
func prunePass(m *graph.Model, name string, calib []map[string]*runtime.Tensor, args ...string) (pruned, error) {
	info, ok := Lookup(name)
	if !ok {
		return pruned{}, fmt.Errorf("no pass %q", name)
	}
	p := info.New()
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	p.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return pruned{}, err
	}
	var out pruned
	env := &Env{Calibration: calib, Warnf: func(format string, args ...any) {
		out.warnings = append(out.warnings, fmt.Sprintf(format, args...))
	}}
	res, err := p.Run(m, env)
	if err != nil {
		return out, err
	}
	out.res = res
	if err := m.Graph.Sort(); err != nil {
		return out, err
	}
	if err := m.Verify(); err != nil {
		return out, err
	}
	out.back, err = graph.FromProto(proto.CloneOf(m.ToProto()))
	return out, err
}

// randomFloats returns n values uniform in [-1, 1) from a seeded source.
func randomFloats(seed uint64, n int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	xs := make([]float32, n)
	for i := range xs {
		xs[i] = float32(2*rng.Float64() - 1)
	}
	return xs
}

// nodeWith adds a node with attributes and one output named out.
func (b *builder) nodeWith(op, out string, inputs []*graph.Value, attrs ...*onnx.AttributeProto) *graph.Value {
	v := b.g.Value(out)
	if _, err := b.g.NewNode(op, op+"_"+out, inputs, []*graph.Value{v}, attrs...); err != nil {
		b.t.Fatal(err)
	}
	return v
}

func stringAttr(name, v string) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_STRING.Enum(), S: []byte(v)}
}

// weightOf returns the numbers of the constant called name in m, held by
// an initializer or a Constant node.
func weightOf(t *testing.T, m *graph.Model, name string) []float32 {
	t.Helper()
	tp := constantTensor(m.Graph.Lookup(name))
	if tp == nil {
		t.Fatalf("%q is not a constant of the model", name)
	}
	f, err := onnx.Float32s(tp)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(f)
}

// zeros returns the indices of the zeros of xs.
func zeros(xs []float32) []int {
	var idx []int
	for i, x := range xs {
		if x == 0 {
			idx = append(idx, i)
		}
	}
	return idx
}

// calibrationFor returns one batch of n seeded random samples in [-1, 1)
// for the single input of g, whose shape past the batch axis is static.
func calibrationFor(t *testing.T, g *graph.Graph, seed uint64, n int) []map[string]*runtime.Tensor {
	t.Helper()
	in := g.Inputs[0]
	shape, _ := in.Shape()
	dims := []int{n}
	size := n
	for _, d := range shape[1:] {
		dims = append(dims, int(d.Value))
		size *= int(d.Value)
	}
	x, err := runtime.FromSlice(randomFloats(seed, size), dims...)
	if err != nil {
		t.Fatal(err)
	}
	return []map[string]*runtime.Tensor{{in.Name: x}}
}

// sameOutputs checks that two models compute exactly the same outputs on
// the inputs.
func sameOutputs(t *testing.T, got, want *graph.Model, inputs map[string]*runtime.Tensor) {
	t.Helper()
	g, w := run(t, got, inputs), run(t, want, inputs)
	for name, wt := range w {
		if maxAbs, _, ok := runtime.Compare(g[name], wt, 0, 0); !ok {
			t.Errorf("output %q differs by %g from the model built with the expected weights", name, maxAbs)
		}
	}
}

// batchInput declares a float32 input of shape [N, dims...] with a
// symbolic batch size.
func (b *builder) batchInput(name string, dims ...int64) *graph.Value {
	v := b.g.Value(name)
	v.SetTensorType(onnx.TensorProto_FLOAT, append(graph.Shape{{Param: "N"}}, graph.Known(dims...)...))
	b.g.Inputs = append(b.g.Inputs, v)
	return v
}

// randomTensor returns a float32 tensor of seeded values in [-1, 1).
func randomTensor(t *testing.T, seed uint64, dims []int64) *runtime.Tensor {
	t.Helper()
	shape := make([]int, len(dims))
	n := 1
	for i, d := range dims {
		shape[i] = int(d)
		n *= int(d)
	}
	x, err := runtime.FromSlice(randomFloats(seed, n), shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}
