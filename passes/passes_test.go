package passes

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// builder makes small float32 models for pass tests.
type builder struct {
	m *graph.Model
	g *graph.Graph
	t *testing.T
}

func newBuilder(t *testing.T, opset int64) *builder {
	m := graph.NewModel(8, graph.Opset{Version: opset})
	return &builder{m: m, g: m.Graph, t: t}
}

// input declares a float32 graph input of the given shape.
func (b *builder) input(name string, dims ...int64) *graph.Value {
	v := b.g.Value(name)
	v.SetTensorType(onnx.TensorProto_FLOAT, graph.Known(dims...))
	b.g.Inputs = append(b.g.Inputs, v)
	return v
}

// init adds a float32 initializer.
func (b *builder) init(name string, dims []int64, vals ...float32) *graph.Value {
	t, err := onnx.NewTensor(name, onnx.TensorProto_FLOAT, dims, vals)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.g.AddInitializer(t)
}

// node adds a node with one output named out.
func (b *builder) node(op, out string, inputs ...*graph.Value) *graph.Value {
	v := b.g.Value(out)
	if _, err := b.g.NewNode(op, op+"_"+out, inputs, []*graph.Value{v}); err != nil {
		b.t.Fatal(err)
	}
	return v
}

func (b *builder) output(vs ...*graph.Value) {
	b.g.Outputs = append(b.g.Outputs, vs...)
}

// run runs the model on seeded inputs.
func run(t *testing.T, m *graph.Model, inputs map[string]*runtime.Tensor) map[string]*runtime.Tensor {
	t.Helper()
	plan, err := runtime.Compile(m.Graph)
	if err != nil {
		t.Fatal(err)
	}
	out, err := plan.Run(inputs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkPass runs one pass on m and checks that the model verifies, that
// it survives a save and load, and that the outputs match the original's
// exactly.
func checkPass(t *testing.T, m *graph.Model, name string) Result {
	t.Helper()
	return checkPassClose(t, m, name, 0, 0)
}

// checkPassClose is checkPass for passes that reassociate float math: the
// outputs must match the original's within rtol and atol.
func checkPassClose(t *testing.T, m *graph.Model, name string, rtol, atol float64) Result {
	t.Helper()
	info, ok := Lookup(name)
	if !ok {
		t.Fatalf("no pass %q", name)
	}
	inputs, err := runtime.RandomInputs(m.Graph, 1, -1, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := run(t, m, inputs)
	res, err := info.New().Run(m, &Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Graph.Sort(); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	back, err := graph.FromProto(proto.CloneOf(m.ToProto()))
	if err != nil {
		t.Fatal(err)
	}
	got := run(t, back, inputs)
	for name, w := range want {
		if maxAbs, maxRel, ok := runtime.Compare(got[name], w, rtol, atol); !ok {
			t.Errorf("output %q changed by up to %g (relative %g; rtol %g, atol %g)", name, maxAbs, maxRel, rtol, atol)
		}
	}
	return res
}

func opTypes(g *graph.Graph) string {
	var ops []string
	for _, n := range g.Nodes {
		ops = append(ops, n.OpType)
	}
	return strings.Join(ops, " ")
}

func TestDeadCode(t *testing.T) {
	b := newBuilder(t, 13)
	x := b.input("x", 2, 3)
	y := b.node("Relu", "y", x)
	dead := b.node("Neg", "dead", x)
	b.node("Exp", "dead2", dead)
	b.output(y)
	res := checkPass(t, b.m, "deadcode")
	if res.Changes != 2 || opTypes(b.g) != "Relu" {
		t.Errorf("%d changes, nodes %q; want 2 and Relu", res.Changes, opTypes(b.g))
	}
	if b.g.Lookup("dead") != nil || b.g.Lookup("dead2") != nil {
		t.Errorf("dead values are still in scope")
	}
}

func TestIdentity(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(b *builder)
		nodes string
		out   string // the graph output's name after the pass
	}{
		{"inner", func(b *builder) {
			x := b.input("x", 4)
			a := b.node("Identity", "a", x)
			b.output(b.node("Relu", "y", a))
		}, "Relu", "y"},
		{"graph output keeps its name", func(b *builder) {
			x := b.input("x", 4)
			r := b.node("Relu", "r", x)
			b.output(b.node("Identity", "y", r))
		}, "Relu", "y"},
		{"input to output stays", func(b *builder) {
			x := b.input("x", 4)
			b.output(b.node("Identity", "y", x))
		}, "Identity", "y"},
		{"dropout", func(b *builder) {
			x := b.input("x", 4)
			d := b.node("Dropout", "d", x)
			b.output(b.node("Sigmoid", "y", d))
		}, "Sigmoid", "y"},
		{"two outputs of one value", func(b *builder) {
			x := b.input("x", 4)
			r := b.node("Relu", "r", x)
			b.output(r, b.node("Identity", "y", r))
		}, "Relu Identity", "r"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(t, 13)
			tc.build(b)
			checkPass(t, b.m, "identity")
			if got := opTypes(b.g); got != tc.nodes {
				t.Errorf("nodes %q, want %q", got, tc.nodes)
			}
			if got := b.g.Outputs[0].Name; got != tc.out {
				t.Errorf("output %q, want %q", got, tc.out)
			}
		})
	}
}

func TestUnusedInitializers(t *testing.T) {
	b := newBuilder(t, 13)
	x := b.input("x", 2)
	bias := b.init("bias", []int64{2}, 1, 2)
	b.g.Inputs = append(b.g.Inputs, bias) // an IR 3 style default
	b.init("unused", []int64{3}, 1, 2, 3)
	b.output(b.node("Add", "y", x, bias))
	res := checkPass(t, b.m, "unused-initializers")
	if res.Changes != 2 || len(b.g.Inputs) != 1 || len(b.g.Initializers) != 1 || b.g.Lookup("unused") != nil {
		t.Errorf("%d changes; inputs %d, initializers %d", res.Changes, len(b.g.Inputs), len(b.g.Initializers))
	}
}

// breaker is a pass that leaves a node reading a value nothing makes.
type breaker struct{}

func (breaker) Flags(*pflag.FlagSet) {}
func (breaker) Run(m *graph.Model, env *Env) (Result, error) {
	m.Graph.Nodes[0].SetInput(0, m.Graph.Value("nowhere"))
	return Result{}, nil
}

// negator swaps Relu for Neg: the model verifies but computes otherwise.
type negator struct{}

func (negator) Flags(*pflag.FlagSet) {}
func (negator) Run(m *graph.Model, env *Env) (Result, error) {
	m.Graph.Nodes[0].OpType = "Neg"
	return Result{Changes: 1}, nil
}

// TestManager checks that the manager names a pass that breaks the graph
// or changes the numbers, and records counts before and after.
func TestManager(t *testing.T) {
	model := func() *graph.Model {
		b := newBuilder(t, 13)
		x := b.input("x", 2, 3)
		y := b.node("Relu", "y", x)
		b.node("Neg", "dead", x)
		b.output(y)
		return b.m
	}
	m := model()
	inputs, _ := runtime.RandomInputs(m.Graph, 7, -1, 1, nil)
	opt := Options{Check: true, CheckInputs: inputs, ATol: 1e-6}

	reports, err := Run(m, Steps(Default()), nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	var dead *PassReport
	for i := range reports {
		if reports[i].Name == "deadcode" {
			dead = &reports[i]
		}
	}
	if dead == nil || dead.Before.Nodes != 2 || dead.After.Nodes != 1 || dead.Changes != 1 || dead.MaxAbsError == nil || *dead.MaxAbsError != 0 {
		t.Errorf("deadcode report %+v", dead)
	}

	_, err = Run(model(), []Step{{Info{Name: "breaker"}, breaker{}}}, nil, opt)
	if err == nil || !strings.Contains(err.Error(), "pass breaker left the graph broken") || !strings.Contains(err.Error(), `"nowhere"`) {
		t.Errorf("breaker: %v", err)
	}
	_, err = Run(model(), []Step{{Info{Name: "negator"}, negator{}}}, nil, opt)
	if err == nil || !strings.Contains(err.Error(), "pass negator changed the model's outputs") {
		t.Errorf("negator: %v", err)
	}
	reports, err = Run(model(), []Step{{Info{Name: "negator", Lossy: true}, negator{}}}, nil, opt)
	if err != nil || len(reports) != 1 || *reports[0].MaxAbsError == 0 {
		t.Errorf("lossy negator: %v %+v", err, reports)
	}
}

// TestTable checks every pass's doc and that Parse finds them.
func TestTable(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Table() {
		if seen[p.Name] {
			t.Errorf("pass %q listed twice", p.Name)
		}
		seen[p.Name] = true
		if title := p.Title(); title == "" || len(title) > 64 || !strings.Contains(p.Doc, "\n\n") {
			t.Errorf("pass %q: doc %q needs a short title line, a blank line and details", p.Name, p.Doc)
		}
		if p.New() == nil {
			t.Errorf("pass %q: New returns nil", p.Name)
		}
	}
	for _, name := range defaultPipeline() {
		if !seen[name] {
			t.Errorf("default pipeline names unknown pass %q", name)
		}
	}
	if _, err := Parse("deadcode,nope"); err == nil || !strings.Contains(err.Error(), `unknown pass "nope"`) {
		t.Errorf("Parse: %v", err)
	}
}
