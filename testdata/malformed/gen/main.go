// Command gen writes the malformed models of testdata/malformed, which the
// onnx package's tests load to check that each is refused with the right
// error. Run it from the repository root:
//
//	go run ./testdata/malformed/gen
//
// Each model is small and built from a valid base, so that exactly one
// thing is wrong with it.
package main

import (
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"onnxopt/onnx"
)

func main() {
	dir := filepath.Join("testdata", "malformed")
	if _, err := os.Stat(dir); err != nil {
		log.Fatalf("run from the repository root: %v", err)
	}
	for name, b := range files() {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// base is a valid model: y = x + w, w a 2×3 float initializer.
func base(w *onnx.TensorProto) *onnx.ModelProto {
	info := func(name string) *onnx.ValueInfoProto {
		return &onnx.ValueInfoProto{Name: proto.String(name), Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
			TensorType: &onnx.TypeProto_Tensor{ElemType: proto.Int32(int32(onnx.TensorProto_FLOAT))},
		}}}
	}
	return &onnx.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnx.OperatorSetIdProto{{Version: proto.Int64(17)}},
		Graph: &onnx.GraphProto{
			Name:        proto.String("g"),
			Node:        []*onnx.NodeProto{{Name: proto.String("add"), OpType: proto.String("Add"), Input: []string{"x", "w"}, Output: []string{"y"}}},
			Initializer: []*onnx.TensorProto{w},
			Input:       []*onnx.ValueInfoProto{info("x")},
			Output:      []*onnx.ValueInfoProto{info("y")},
		},
	}
}

func weight(dims []int64, raw []byte) *onnx.TensorProto {
	return &onnx.TensorProto{Name: proto.String("w"), DataType: proto.Int32(int32(onnx.TensorProto_FLOAT)), Dims: dims, RawData: raw}
}

func external(location string, kv ...string) *onnx.TensorProto {
	t := &onnx.TensorProto{Name: proto.String("w"), DataType: proto.Int32(int32(onnx.TensorProto_FLOAT)), Dims: []int64{2, 2},
		DataLocation: onnx.TensorProto_EXTERNAL.Enum(),
		ExternalData: []*onnx.StringStringEntryProto{{Key: proto.String("location"), Value: proto.String(location)}}}
	for i := 0; i < len(kv); i += 2 {
		t.ExternalData = append(t.ExternalData, &onnx.StringStringEntryProto{Key: proto.String(kv[i]), Value: proto.String(kv[i+1])})
	}
	return t
}

func marshal(m *onnx.ModelProto) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		log.Fatal(err)
	}
	return b
}

func files() map[string][]byte {
	valid := marshal(base(weight([]int64{2, 3}, make([]byte, 24))))
	random := make([]byte, 512)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	if proto.Unmarshal(random, &onnx.ModelProto{}) == nil {
		log.Fatal("the random bytes parse as a model; pick another seed")
	}

	// The graph (field 7) sent as a varint instead of a message.
	wrongWire := protowire.AppendTag(nil, 1, protowire.VarintType)
	wrongWire = protowire.AppendVarint(wrongWire, 8)
	wrongWire = protowire.AppendTag(wrongWire, 7, protowire.VarintType)
	wrongWire = protowire.AppendVarint(wrongWire, 5)

	// A Constant node whose value attribute has too little data.
	constant := base(weight([]int64{2, 3}, make([]byte, 24)))
	constant.Graph.Node = append([]*onnx.NodeProto{{
		Name: proto.String("c"), OpType: proto.String("Constant"), Output: []string{"k"},
		Attribute: []*onnx.AttributeProto{{Name: proto.String("value"), Type: onnx.AttributeProto_TENSOR.Enum(),
			T: &onnx.TensorProto{Name: proto.String("k"), DataType: proto.Int32(int32(onnx.TensorProto_INT64)), Dims: []int64{3}, Int64Data: []int64{1, 2}}}},
	}}, constant.Graph.Node...)

	// Graphs whose tensors are fine but whose structure is not, refused
	// by graph.FromProto or graph.Verify.
	graphOf := func(nodes ...*onnx.NodeProto) []byte {
		m := base(weight([]int64{2, 3}, make([]byte, 24)))
		m.Graph.Node = nodes
		return marshal(m)
	}
	node := func(name, op string, in []string, out ...string) *onnx.NodeProto {
		return &onnx.NodeProto{Name: proto.String(name), OpType: proto.String(op), Input: in, Output: out}
	}
	cyclic := graphOf(node("a", "Add", []string{"x", "b"}, "a"), node("b", "Relu", []string{"a"}, "b"), node("y", "Relu", []string{"a"}, "y"))
	duplicate := graphOf(node("add", "Add", []string{"x", "w"}, "y"), node("neg", "Neg", []string{"x"}, "y"))
	undefined := graphOf(node("add", "Add", []string{"x", "nowhere"}, "y"))

	return map[string][]byte{
		"graph_cycle.onnx":           cyclic,
		"graph_duplicate_value.onnx": duplicate,
		"graph_undefined_input.onnx": undefined,
		"valid.onnx":                 valid,
		"truncated.onnx":             valid[:len(valid)/2],
		"random.onnx":                random,
		"wrong_wire_type.onnx":       wrongWire,
		"negative_dims.onnx":         marshal(base(weight([]int64{2, -3}, make([]byte, 24)))),
		"dims_overflow.onnx":         marshal(base(weight([]int64{1 << 40, 1 << 40, 1 << 40}, make([]byte, 24)))),
		"dims_too_large.onnx":        marshal(base(weight([]int64{1 << 33}, make([]byte, 24)))),
		"raw_data_length.onnx":       marshal(base(weight([]int64{2, 3}, make([]byte, 20)))),
		"attribute_tensor.onnx":      marshal(constant),
		"external_absolute.onnx":     marshal(base(external("/etc/passwd"))),
		"external_dotdot.onnx":       marshal(base(external("../outside.data"))),
		"external_symlink.onnx":      marshal(base(external("link.data"))),
		"external_offset.onnx":       marshal(base(external("weights.data", "offset", "4096"))),
		"external_length.onnx":       marshal(base(external("weights.data", "offset", "8", "length", "16"))),
		"external_negative.onnx":     marshal(base(external("weights.data", "offset", "-4"))),
		"external_missing.onnx":      marshal(base(external("missing.data"))),
		"external_short.onnx":        marshal(base(external("weights.data", "offset", "0", "length", "8"))),
		"external_valid.onnx":        marshal(base(external("weights.data", "offset", "0", "length", "16"))),
		"weights.data":               []byte("0123456789abcdef"),
	}
}
