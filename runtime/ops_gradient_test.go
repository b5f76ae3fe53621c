package runtime

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// gradientModel compiles a graph of the default domain (opset 13) and
// ai.onnx.preview.training.
func gradientModel(g *onnx.GraphProto) (*Plan, error) {
	m, err := graph.FromProto(&onnx.ModelProto{
		IrVersion: proto.Int64(8),
		OpsetImport: []*onnx.OperatorSetIdProto{
			{Domain: proto.String(""), Version: proto.Int64(13)},
			{Domain: proto.String("ai.onnx.preview.training"), Version: proto.Int64(1)},
		},
		Graph: g,
	})
	if err != nil {
		return nil, err
	}
	return Compile(m.Graph)
}

func gradientNode(y string, xs, zs, outs []string) *onnx.NodeProto {
	strs := func(v []string) [][]byte {
		out := make([][]byte, len(v))
		for i, s := range v {
			out[i] = []byte(s)
		}
		return out
	}
	n := nodeProto("Gradient", append(append([]string(nil), xs...), zs...), outs,
		&onnx.AttributeProto{Name: proto.String("xs"), Type: onnx.AttributeProto_STRINGS.Enum(), Strings: strs(xs)},
		&onnx.AttributeProto{Name: proto.String("y"), Type: onnx.AttributeProto_STRING.Enum(), S: []byte(y)})
	if zs != nil {
		n.Attribute = append(n.Attribute, &onnx.AttributeProto{Name: proto.String("zs"), Type: onnx.AttributeProto_STRINGS.Enum(), Strings: strs(zs)})
	}
	n.Domain = proto.String("ai.onnx.preview.training")
	return n
}

// The gradients of y = sum((a*b - a/c) + 2), with a (2x3), b (3) and c
// (2x1) broadcast, are the closed forms dy/da = b - 1/c, dy/db = column
// sums of a, dy/dc = row sums of a/c².
func TestGradientBroadcast(t *testing.T) {
	two := constantNode("two", mustTensor(t, []float64{2}, []int{}...))
	p, err := gradientModel(&onnx.GraphProto{
		Name: proto.String("g"),
		Node: []*onnx.NodeProto{
			two,
			nodeProto("Mul", []string{"a", "b"}, []string{"ab"}),
			nodeProto("Div", []string{"a", "c"}, []string{"a_c"}),
			nodeProto("Sub", []string{"ab", "a_c"}, []string{"d"}),
			nodeProto("Add", []string{"d", "two"}, []string{"y"}),
			gradientNode("y", []string{"a", "b", "c"}, nil, []string{"da", "db", "dc"}),
		},
		Input: []*onnx.ValueInfoProto{
			valueInfo("a", onnx.TensorProto_DOUBLE, 2, 3), valueInfo("b", onnx.TensorProto_DOUBLE, 3), valueInfo("c", onnx.TensorProto_DOUBLE, 2, 1),
		},
		Output: []*onnx.ValueInfoProto{
			valueInfo("y", onnx.TensorProto_DOUBLE, 2, 3),
			valueInfo("da", onnx.TensorProto_DOUBLE, 2, 3), valueInfo("db", onnx.TensorProto_DOUBLE, 3), valueInfo("dc", onnx.TensorProto_DOUBLE, 2, 1),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	a := []float64{1, 2, 3, 4, 5, 6}
	b := []float64{0.5, -1, 2}
	c := []float64{2, -4}
	var da, db, dc []float64
	for i := range 2 {
		for j := range 3 {
			da = append(da, b[j]-1/c[i])
		}
	}
	for j := range 3 {
		db = append(db, a[j]+a[3+j])
	}
	for i := range 2 {
		dc = append(dc, (a[3*i]+a[3*i+1]+a[3*i+2])/(c[i]*c[i]))
	}
	for range 2 {
		got, err := p.Run(map[string]*Tensor{"a": mustTensor(t, a, 2, 3), "b": mustTensor(t, b, 3), "c": mustTensor(t, c, 2, 1)})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []struct {
			name  string
			shape []int
			want  []float64
		}{{"da", []int{2, 3}, da}, {"db", []int{3}, db}, {"dc", []int{2, 1}, dc}} {
			if _, _, ok := Compare(got[w.name], mustTensor(t, w.want, w.shape...), 1e-12, 1e-12); !ok {
				t.Errorf("%s = %s %v, want %v", w.name, got[w.name], got[w.name].Data, w.want)
			}
		}
	}
}

// Gradient with respect to an intermediate value h = -x, cut there, at
// the value the node's input gives h rather than the graph's: for
// y = h*h*z, dy/dh = 2hz at h = [5 6], z = [3 -5]. y does not depend on w.
func TestGradientIntermediate(t *testing.T) {
	g := gradientNode("y", []string{"h", "w"}, []string{"z"}, []string{"dh", "dw"})
	g.Input[0] = "h_at"
	p, err := gradientModel(&onnx.GraphProto{
		Name: proto.String("g"),
		Node: []*onnx.NodeProto{
			nodeProto("Neg", []string{"x"}, []string{"h"}),
			nodeProto("Mul", []string{"h", "h"}, []string{"hh"}),
			nodeProto("Mul", []string{"hh", "z"}, []string{"y"}),
			g,
		},
		Input: []*onnx.ValueInfoProto{
			valueInfo("x", onnx.TensorProto_FLOAT, 2), valueInfo("h_at", onnx.TensorProto_FLOAT, 2),
			valueInfo("z", onnx.TensorProto_FLOAT, 2), valueInfo("w", onnx.TensorProto_FLOAT, 1),
		},
		Output: []*onnx.ValueInfoProto{valueInfo("dh", onnx.TensorProto_FLOAT, 2), valueInfo("dw", onnx.TensorProto_FLOAT, 1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Run(map[string]*Tensor{"x": f32s(t, 1, 2), "h_at": f32s(t, 5, 6), "z": f32s(t, 3, -5), "w": f32s(t, 7)})
	if err != nil {
		t.Fatal(err)
	}
	wantFloats(t, "dh", got["dh"], []int{2}, 30, -60)
	wantFloats(t, "dw", got["dw"], []int{1}, 0)
}

func TestGradientRefused(t *testing.T) {
	in := []*onnx.ValueInfoProto{valueInfo("a", onnx.TensorProto_FLOAT, 2), valueInfo("b", onnx.TensorProto_FLOAT, 2)}
	out := []*onnx.ValueInfoProto{valueInfo("da", onnx.TensorProto_FLOAT, 2)}
	tests := []struct {
		name  string
		nodes []*onnx.NodeProto
		err   string
	}{
		{"operator without a rule", []*onnx.NodeProto{
			nodeProto("Relu", []string{"a"}, []string{"y"}), gradientNode("y", []string{"a"}, nil, []string{"da"}),
		}, "does not differentiate"},
		{"input outside xs and zs", []*onnx.NodeProto{
			nodeProto("Add", []string{"a", "b"}, []string{"y"}), gradientNode("y", []string{"a"}, nil, []string{"da"}),
		}, `"b", which is in neither xs nor zs`},
		{"unknown y", []*onnx.NodeProto{
			gradientNode("nowhere", []string{"a"}, nil, []string{"da"}),
		}, "the graph lacks"},
		{"x named twice", []*onnx.NodeProto{
			nodeProto("Add", []string{"a", "b"}, []string{"y"}), gradientNode("y", []string{"a", "a"}, nil, []string{"da"}),
		}, "named twice"},
	}
	for _, tt := range tests {
		_, err := gradientModel(&onnx.GraphProto{Name: proto.String("g"), Node: tt.nodes, Input: in, Output: out})
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.err)
		}
	}

	// Integer xs have no gradient.
	p, err := gradientModel(&onnx.GraphProto{
		Name:   proto.String("g"),
		Node:   []*onnx.NodeProto{nodeProto("Mul", []string{"i", "i"}, []string{"y"}), gradientNode("y", []string{"i"}, nil, []string{"di"})},
		Input:  []*onnx.ValueInfoProto{valueInfo("i", onnx.TensorProto_INT64, 2)},
		Output: []*onnx.ValueInfoProto{valueInfo("di", onnx.TensorProto_INT64, 2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Run(map[string]*Tensor{"i": mustTensor(t, ints(1, 2), 2)}); err == nil || !strings.Contains(err.Error(), "floating-point") {
		t.Errorf("integer x: error %v", err)
	}
}

// A float16 x gets its gradient rounded to float16: d(x/c)/dx = 1/c, and
// the float16 nearest 1/3 is 0x3555 = 0.333251953125.
func TestGradientFloat16(t *testing.T) {
	p, err := gradientModel(&onnx.GraphProto{
		Name:   proto.String("g"),
		Node:   []*onnx.NodeProto{nodeProto("Div", []string{"x", "c"}, []string{"y"}), gradientNode("y", []string{"x"}, []string{"c"}, []string{"dx"})},
		Input:  []*onnx.ValueInfoProto{valueInfo("x", onnx.TensorProto_FLOAT16, 1), valueInfo("c", onnx.TensorProto_FLOAT16, 1)},
		Output: []*onnx.ValueInfoProto{valueInfo("dx", onnx.TensorProto_FLOAT16, 1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	half := func(v float32) *Tensor {
		return &Tensor{DType: onnx.TensorProto_FLOAT16, Shape: []int{1}, Data: []float32{v}}
	}
	got, err := p.Run(map[string]*Tensor{"x": half(5), "c": half(3)})
	if err != nil {
		t.Fatal(err)
	}
	if d := got["dx"]; d.DType != onnx.TensorProto_FLOAT16 || d.Data.([]float32)[0] != 0.333251953125 {
		t.Errorf("dx = %s %v, want float16 0.333251953125", d, d.Data)
	}
}
