package passes

import (
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/internal/suite"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// tensor adds an initializer of any type.
func (b *builder) tensor(name string, dt onnx.DataType, dims []int64, vals any) *graph.Value {
	t, err := onnx.NewTensor(name, dt, dims, vals)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.g.AddInitializer(t)
}

// typedInput declares a graph input of any element type.
func (b *builder) typedInput(name string, dt onnx.DataType, shape graph.Shape) *graph.Value {
	v := b.g.Value(name)
	v.SetTensorType(dt, shape)
	b.g.Inputs = append(b.g.Inputs, v)
	return v
}

// constantNode adds a Constant node holding a float32 tensor.
func (b *builder) constantNode(out string, dims []int64, vals ...float32) *graph.Value {
	t, err := onnx.NewTensor("", onnx.TensorProto_FLOAT, dims, vals)
	if err != nil {
		b.t.Fatal(err)
	}
	v := b.node("Constant", out)
	v.Producer.SetAttr(&onnx.AttributeProto{Name: proto.String("value"), Type: onnx.AttributeProto_TENSOR.Enum(), T: t})
	return v
}

// ifModel makes a model that returns If(cond) over x [2, 3], both branches
// holding the given nodes, which compute "r" from x, the outer
// initializers and their own.
func ifModel(t *testing.T, opset int64, outer []*onnx.TensorProto, branch []*onnx.NodeProto, branchInits []*onnx.TensorProto) *graph.Model {
	t.Helper()
	info := func(name string, dt onnx.DataType, dims ...int64) *onnx.ValueInfoProto {
		return &onnx.ValueInfoProto{Name: proto.String(name), Type: graph.TensorType(dt, graph.Known(dims...))}
	}
	body := func(name string) *onnx.AttributeProto {
		return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_GRAPH.Enum(), G: &onnx.GraphProto{
			Name:        proto.String(name),
			Node:        branch,
			Initializer: branchInits,
			Output:      []*onnx.ValueInfoProto{info("r", onnx.TensorProto_FLOAT, 2, 3)},
		}}
	}
	m, err := graph.FromProto(&onnx.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnx.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}},
		Graph: &onnx.GraphProto{
			Name: proto.String("if"),
			Node: []*onnx.NodeProto{{OpType: proto.String("If"), Input: []string{"cond"}, Output: []string{"y"},
				Attribute: []*onnx.AttributeProto{body("then_branch"), body("else_branch")}}},
			Input:       []*onnx.ValueInfoProto{info("cond", onnx.TensorProto_BOOL), info("x", onnx.TensorProto_FLOAT, 2, 3)},
			Output:      []*onnx.ValueInfoProto{info("y", onnx.TensorProto_FLOAT, 2, 3)},
			Initializer: outer,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func nodeProto(op string, in []string, out ...string) *onnx.NodeProto {
	return &onnx.NodeProto{OpType: proto.String(op), Input: in, Output: out}
}

func tensorProto(t *testing.T, name string, dt onnx.DataType, dims []int64, vals any) *onnx.TensorProto {
	t.Helper()
	tp, err := onnx.NewTensor(name, dt, dims, vals)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// branches returns the op types of each subgraph of the first node.
func branches(m *graph.Model) []string {
	var ops []string
	for _, a := range m.Graph.Nodes[0].Attrs {
		if a.Graph != nil {
			ops = append(ops, opTypes(a.Graph))
		}
	}
	return ops
}

// A rewriteCase is a hand-built model, the op types a pass should leave,
// and the changes it should report.
type rewriteCase struct {
	name    string
	opset   int64
	build   func(b *builder)
	nodes   string
	changes int
}

// checkRewrites runs the pass on each case's model with checkPass, which
// compares the numbers, and checks the nodes left, the changes counted,
// and that the graph outputs kept their names. check, if not nil, looks
// further at each result.
func checkRewrites(t *testing.T, pass string, cases []rewriteCase, check func(t *testing.T, b *builder, tc rewriteCase)) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(t, tc.opset)
			tc.build(b)
			var outputs []string
			for _, v := range b.g.Outputs {
				outputs = append(outputs, v.Name)
			}
			res := checkPass(t, b.m, pass)
			if got := opTypes(b.g); got != tc.nodes || res.Changes != tc.changes {
				t.Errorf("nodes %q, %d changes; want %q, %d (notes %q)", got, res.Changes, tc.nodes, tc.changes, res.Notes)
			}
			for i, v := range b.g.Outputs {
				if v.Name != outputs[i] {
					t.Errorf("output %d is called %q, was %q", i, v.Name, outputs[i])
				}
			}
			if check != nil {
				check(t, b, tc)
			}
		})
	}
}

func TestFoldConstants(t *testing.T) {
	i64 := onnx.TensorProto_INT64
	checkRewrites(t, "fold-constants", []rewriteCase{
		{"Constant node", 13, func(b *builder) {
			x := b.input("x", 2, 3)
			b.output(b.node("Add", "y", x, b.constantNode("c", []int64{3}, 1, 2, 3)))
		}, "Add", 1},
		{"chain of constants", 13, func(b *builder) {
			s := b.node("Add", "s", b.init("a", []int64{3}, 1, 2, 3), b.init("b", []int64{3}, 0.5, 0.25, 3))
			p := b.node("Mul", "p", s, s)
			b.output(b.node("Div", "y", b.input("x", 2, 3), p))
		}, "Div", 2},
		{"PyTorch shape chain", 13, func(b *builder) {
			x := b.input("x", 2, 3, 4)
			d0 := b.node("Gather", "d0", b.node("Shape", "shape", x), b.tensor("zero", i64, nil, []int64{0}))
			u := b.node("Unsqueeze", "u", d0, b.tensor("axes", i64, []int64{1}, []int64{0}))
			cat := b.node("Concat", "cat", u, b.tensor("rest", i64, []int64{1}, []int64{-1}))
			cat.Producer.SetAttr(intAttr("axis", 0))
			b.output(b.node("Reshape", "y", x, cat))
		}, "Reshape", 4},
		{"Shape of the static part of a dynamic shape", 15, func(b *builder) {
			x := b.typedInput("x", onnx.TensorProto_FLOAT, graph.Shape{{Param: "N"}, {Value: 3, Known: true}, {Value: 4, Known: true}})
			s := b.node("Shape", "s", x)
			s.Producer.SetAttr(intAttr("start", 1))
			dims := b.node("Concat", "dims", b.tensor("batch", i64, []int64{1}, []int64{-1}), b.node("ReduceProd", "prod", s))
			dims.Producer.SetAttr(intAttr("axis", 0))
			b.output(b.node("Reshape", "y", x, dims))
		}, "Reshape", 3},
		{"dynamic Shape stays", 13, func(b *builder) {
			x := b.typedInput("x", onnx.TensorProto_FLOAT, graph.Shape{{Param: "N"}, {Value: 3, Known: true}})
			b.output(b.node("Reshape", "y", x, b.node("Shape", "s", x)))
		}, "Shape Reshape", 0},
		{"Size", 13, func(b *builder) {
			x := b.input("x", 2, 3)
			n := b.node("Cast", "n", b.node("Size", "size", x))
			n.Producer.SetAttr(intAttr("to", int64(onnx.TensorProto_FLOAT)))
			b.output(b.node("Mul", "y", x, n))
		}, "Mul", 2},
		{"graph output", 13, func(b *builder) {
			b.output(b.node("Relu", "r", b.input("x", 2)), b.node("Sub", "y", b.init("a", []int64{2}, 1, 2), b.init("b", []int64{2}, 4, 8)))
		}, "Relu", 1},
		{"overridable initializer stays", 13, func(b *builder) {
			a := b.init("a", []int64{2}, 1, 2)
			b.g.Inputs = append(b.g.Inputs, a)
			s := b.node("Add", "s", a, b.init("b", []int64{2}, 4, 8))
			b.output(b.node("Add", "y", b.input("x", 2), s))
		}, "Add Add", 0},
		{"inference Dropout", 13, func(b *builder) {
			d := b.node("Dropout", "d", b.init("a", []int64{2}, 1, 2), b.init("ratio", nil, 0.5))
			b.output(b.node("Add", "y", b.input("x", 2), d))
		}, "Add", 1},
		{"DequantizeLinear of weights stays", 13, func(b *builder) {
			w := b.node("DequantizeLinear", "w", b.tensor("q", onnx.TensorProto_INT8, []int64{2}, []int8{-3, 7}), b.init("scale", nil, 0.5))
			b.output(b.node("Mul", "y", b.input("x", 2), w))
		}, "DequantizeLinear Mul", 0},
		{"result over the limit stays", 13, func(b *builder) {
			e := b.node("Expand", "e", b.init("one", nil, 1), b.tensor("shape", i64, []int64{2}, []int64{1024, 1024}))
			b.output(b.node("Add", "y", b.input("x", 1, 1024), e))
		}, "Expand Add", 0},
		{"large result replacing its only input", 13, func(b *builder) {
			w := b.node("Transpose", "wt", b.weights("w", 3, -1, 1, 1024, 512))
			b.output(b.node("MatMul", "y", b.input("x", 2, 512), w))
		}, "MatMul", 1},
		{"dead nodes are left to deadcode", 13, func(b *builder) {
			b.node("Neg", "unused", b.init("a", []int64{2}, 1, 2))
			b.output(b.node("Relu", "y", b.input("x", 2)))
		}, "Neg Relu", 0},
	}, func(t *testing.T, b *builder, tc rewriteCase) {
		// Folded chains leave no initializer behind that nothing reads.
		for _, v := range b.g.Initializers {
			if len(v.Uses) == 0 && !b.g.IsOutput(v) && tc.changes > 0 {
				t.Errorf("initializer %q is left unread", v.Name)
			}
		}
	})
}

// TestFoldConstantsLeavesRandom checks the rewrite only: the runtime draws
// no random numbers, so there is nothing to compare.
func TestFoldConstantsLeavesRandom(t *testing.T) {
	b := newBuilder(t, 13)
	r := b.node("RandomUniform", "r")
	r.Producer.SetAttr(intsAttr("shape", 2))
	train := b.tensor("train", onnx.TensorProto_BOOL, nil, []bool{true})
	d := b.node("Dropout", "d", b.init("a", []int64{2}, 1, 2), b.init("ratio", nil, 0.5), train)
	b.output(b.node("Add", "y", r, d))
	res, err := (&foldConstants{limit: 1 << 20}).Run(b.m, &Env{})
	if err != nil {
		t.Fatal(err)
	}
	if got := opTypes(b.g); got != "RandomUniform Dropout Add" || res.Changes != 0 {
		t.Errorf("nodes %q, %d changes", got, res.Changes)
	}
}

func TestFoldConstantsInSubgraphs(t *testing.T) {
	outer := []*onnx.TensorProto{tensorProto(t, "a", onnx.TensorProto_FLOAT, []int64{3}, []float32{1, 2, 3})}
	inner := []*onnx.TensorProto{tensorProto(t, "b", onnx.TensorProto_FLOAT, []int64{3}, []float32{-4, 0.5, 8})}
	m := ifModel(t, 13, outer, []*onnx.NodeProto{
		nodeProto("Mul", []string{"a", "b"}, "ab"),
		nodeProto("Add", []string{"x", "ab"}, "r"),
	}, inner)
	res := checkPass(t, m, "fold-constants")
	if got := strings.Join(branches(m), ", "); got != "Add, Add" || res.Changes != 2 {
		t.Errorf("branches %q, %d changes; want Add, Add and 2", got, res.Changes)
	}
}

// TestFoldConstantsSuite folds every pytorch-converted and
// pytorch-operator case of the ONNX suite that the runtime passes, removes
// the dead nodes, and checks the result against the case's own test data
// (rtol 1e-3, atol 1e-7, the suite's tolerances).
func TestFoldConstantsSuite(t *testing.T) {
	cases := suite.Cases(t, "pytorch-converted", "pytorch-operator")
	var (
		mu            sync.Mutex
		folded, nodes int
		changed       []string
	)
	t.Cleanup(func() {
		slices.Sort(changed)
		t.Logf("%d of %d cases changed, %d nodes folded, %d nodes removed: %s",
			len(changed), len(cases), folded, nodes, strings.Join(changed, " "))
	})
	steps := func() []Step {
		var infos []Info
		for _, name := range []string{"fold-constants", "deadcode"} {
			info, _ := Lookup(name)
			infos = append(infos, info)
		}
		return Steps(infos)
	}
	for _, dir := range cases {
		name := filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if res := runtime.RunCase(dir); res.Status != runtime.StatusPass {
				t.Skipf("the case fails before folding: %s", res.Err)
			}
			m, err := graph.Load(filepath.Join(dir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			reports, err := Run(m, steps(), nil, Options{})
			if err != nil {
				t.Fatal(err)
			}
			// Saving and loading keeps the folded model.
			back, err := graph.FromProto(proto.CloneOf(m.ToProto()))
			if err != nil {
				t.Fatal(err)
			}
			if res := runtime.RunModelCase(back, dir); res.Status != runtime.StatusPass {
				t.Errorf("after folding: %s: %s", res.Status, res.Err)
			}
			mu.Lock()
			defer mu.Unlock()
			if reports[0].Changes > 0 {
				folded += reports[0].Changes
				nodes += reports[0].Before.Nodes - reports[1].After.Nodes
				changed = append(changed, name)
			}
		})
	}
}
