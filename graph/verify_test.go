package graph_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
)

func node(op string, in, out []string) *onnx.NodeProto {
	return &onnx.NodeProto{OpType: proto.String(op), Name: proto.String(op + "_" + out[0]), Input: in, Output: out}
}

func info(name string) *onnx.ValueInfoProto {
	return &onnx.ValueInfoProto{Name: proto.String(name), Type: graph.TensorType(onnx.TensorProto_FLOAT, graph.Known(2))}
}

func model(nodes ...*onnx.NodeProto) *onnx.ModelProto {
	return &onnx.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnx.OperatorSetIdProto{{Version: proto.Int64(13)}},
		Graph: &onnx.GraphProto{
			Name:   proto.String("g"),
			Node:   nodes,
			Input:  []*onnx.ValueInfoProto{info("x")},
			Output: []*onnx.ValueInfoProto{info("y")},
		},
	}
}

// TestVerifyRejects builds broken graphs and checks that FromProto or
// Verify names the problem.
func TestVerifyRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		model *onnx.ModelProto
		want  string
	}{
		{"cycle", model(node("Relu", []string{"b"}, []string{"a"}), node("Relu", []string{"a"}, []string{"b"}), node("Relu", []string{"x"}, []string{"y"})), "cycle"},
		{"out of order", model(node("Relu", []string{"a"}, []string{"y"}), node("Relu", []string{"x"}, []string{"a"})), "before node"},
		{"undefined input", model(node("Add", []string{"x", "nowhere"}, []string{"y"})), `input "nowhere" of node "Add_y" (Add) is never produced`},
		{"duplicate producer", model(node("Relu", []string{"x"}, []string{"y"}), node("Neg", []string{"x"}, []string{"y"})), `value "y" is produced by node "Relu_y" (Relu) and by node "Neg_y" (Neg)`},
		{"output never produced", model(node("Relu", []string{"x"}, []string{"z"})), `output "y" is never produced`},
		{"input produced", model(node("Relu", []string{"y"}, []string{"x"}), node("Relu", []string{"x"}, []string{"y"})), "also produced"},
		{"missing opset", func() *onnx.ModelProto {
			m := model(node("Relu", []string{"x"}, []string{"y"}))
			m.Graph.Node[0].Domain = proto.String("com.example")
			return m
		}(), `uses domain "com.example"`},
		{"duplicate initializer", func() *onnx.ModelProto {
			m := model(node("Add", []string{"x", "w"}, []string{"y"}))
			w := &onnx.TensorProto{Name: proto.String("w"), DataType: proto.Int32(1), Dims: []int64{2}, FloatData: []float32{1, 2}}
			m.Graph.Initializer = []*onnx.TensorProto{w, proto.CloneOf(w)}
			return m
		}(), `initializer "w" is defined twice`},
		{"duplicate node name", func() *onnx.ModelProto {
			a, b := node("Relu", []string{"x"}, []string{"a"}), node("Relu", []string{"a"}, []string{"y"})
			b.Name = a.Name
			return model(a, b)
		}(), `node name "Relu_a" is used by`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := graph.FromProto(tc.model)
			if err == nil {
				err = m.Verify()
			}
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// TestMutation edits a graph with the mutation API and checks that the
// result verifies and reads as intended.
func TestMutation(t *testing.T) {
	m, err := graph.FromProto(model(node("Identity", []string{"x"}, []string{"a"}), node("Relu", []string{"a"}, []string{"y"})))
	if err != nil {
		t.Fatal(err)
	}
	g := m.Graph
	id, relu := g.Nodes[0], g.Nodes[1]
	a := id.Outputs[0]

	// Remove the Identity: its readers read x instead.
	a.ReplaceAllUses(id.Inputs[0])
	g.RemoveNode(id)
	g.Prune()
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	if g.Lookup("a") != nil {
		t.Errorf("value a survived Prune")
	}
	if relu.Inputs[0].Name != "x" || len(g.Lookup("x").Uses) != 1 {
		t.Errorf("Relu reads %q; x has %d uses", relu.Inputs[0].Name, len(g.Lookup("x").Uses))
	}

	// Add a bias before the Relu: x + b -> Relu.
	b := g.AddInitializer(&onnx.TensorProto{Name: proto.String("x"), DataType: proto.Int32(1), Dims: []int64{2}, FloatData: []float32{1, 2}})
	if b.Name == "x" {
		t.Fatalf("AddInitializer reused the taken name x")
	}
	sum := g.NewValue("sum")
	add, err := g.NewNode("Add", "Relu_y", []*graph.Value{g.Lookup("x"), b}, []*graph.Value{sum})
	if err != nil {
		t.Fatal(err)
	}
	if add.Name == "Relu_y" {
		t.Errorf("NewNode reused the taken node name")
	}
	relu.SetInput(0, sum)
	if err := m.Verify(); err == nil {
		t.Errorf("Verify passed with Add after its reader")
	}
	if err := g.Sort(); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	if g.Nodes[0] != add || g.Nodes[1] != relu {
		t.Errorf("Sort gave %v", g.Nodes)
	}

	// The edit survives a proto round trip.
	back, err := graph.FromProto(m.ToProto())
	if err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(); err != nil {
		t.Fatal(err)
	}
	if got := len(back.Graph.Nodes); got != 2 || back.Graph.Nodes[0].OpType != "Add" {
		t.Errorf("round trip gave %d nodes", got)
	}
}
