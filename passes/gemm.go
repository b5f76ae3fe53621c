package passes

import (
	"slices"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// fuseGemm turns MatMul followed by Add of a constant bias into Gemm.
type fuseGemm struct{}

func (*fuseGemm) Flags(*pflag.FlagSet) {}

func (*fuseGemm) Run(m *graph.Model, env *Env) (Result, error) {
	var res Result
	var err error
	m.Graph.Walk(func(g *graph.Graph) bool {
		types := inferTypes(g)
		for _, n := range slices.Clone(g.Nodes) {
			var fused bool
			if fused, err = fuseMatMulAdd(g, n, types); err != nil {
				return false
			}
			if fused {
				res.Changes++
			}
		}
		g.Prune()
		return true
	})
	return res, err
}

// fuseMatMulAdd replaces mm, a MatMul of a 2-D A by a constant 2-D B whose
// output only an Add of a constant bias reads, with one Gemm, and reports
// whether it did. The bias must broadcast to MatMul's [M, N] output in the
// one direction Gemm's C does.
func fuseMatMulAdd(g *graph.Graph, mm *graph.Node, types inferred) (bool, error) {
	if !isStandard(mm) || mm.OpType != "MatMul" || len(mm.Inputs) != 2 || len(mm.Outputs) != 1 {
		return false, nil
	}
	a, b, y := mm.Inputs[0], mm.Inputs[1], mm.Outputs[0]
	if a == nil || b == nil || y == nil || len(y.Uses) != 1 || g.IsOutput(y) {
		return false, nil
	}
	add := y.Uses[0].Node
	if !isStandard(add) || add.OpType != "Add" || add.Graph != g || len(add.Inputs) != 2 || len(add.Outputs) != 1 || add.Outputs[0] == nil {
		return false, nil
	}
	if add.Opset() < 7 && add.Attr("axis") != nil {
		return false, nil // the bias may line up with the rows, not the columns
	}
	c := add.Inputs[1-y.Uses[0].Index]
	if c == nil || c == y || !c.IsConstant() || c.Init == nil || !b.IsConstant() || b.Init == nil {
		return false, nil
	}
	dt, opset := b.ElemType(), mm.Opset()
	if !gemmType(dt, opset) || c.ElemType() != dt {
		return false, nil
	}
	aShape, ok := types.shape(a)
	bDims := b.Init.GetDims()
	if !ok || len(aShape) != 2 || len(bDims) != 2 {
		return false, nil
	}
	rows, n := aShape[0], bDims[1]
	if !broadcastsToRows(c.Init.GetDims(), rows, n) {
		return false, nil
	}

	out := add.Outputs[0]
	name := mm.Name
	// Gemm goes where Add was, so that the file keeps its order.
	var next *graph.Node
	if i := slices.Index(g.Nodes, add); i+1 < len(g.Nodes) {
		next = g.Nodes[i+1]
	}
	g.RemoveNode(add)
	g.RemoveNode(mm)
	g.ValueInfo = slices.DeleteFunc(g.ValueInfo, func(v *graph.Value) bool { return v == y })
	var attrs []*onnx.AttributeProto
	if opset < 7 && !slices.Equal(c.Init.GetDims(), []int64{rows.Value, n}) {
		// Before opset 7, C broadcasts only when asked to.
		attrs = append(attrs, &onnx.AttributeProto{Name: proto.String("broadcast"), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(1)})
	}
	gemm, err := g.NewNode("Gemm", name, []*graph.Value{a, b, c}, []*graph.Value{out}, attrs...)
	if err != nil {
		return false, err
	}
	gemm.Domain = mm.Domain
	if next != nil && next != mm {
		g.InsertBefore(next, gemm)
	}
	return true, nil
}

// gemmType reports whether Gemm at opset computes the floating-point type
// dt.
func gemmType(dt onnx.DataType, opset int64) bool {
	switch dt {
	case onnx.TensorProto_FLOAT, onnx.TensorProto_DOUBLE, onnx.TensorProto_FLOAT16:
		return true
	case onnx.TensorProto_BFLOAT16:
		return opset >= 13
	}
	return false
}

// broadcastsToRows reports whether a tensor of shape dims broadcasts in one
// direction to [rows, n]: its shape, right-aligned, has 1 or the size in
// each place, and at most rank 2. rows may be unknown, which only a 1
// there allows.
func broadcastsToRows(dims []int64, rows graph.Dim, n int64) bool {
	switch len(dims) {
	case 0:
		return true
	case 1:
		return dims[0] == 1 || dims[0] == n
	case 2:
		return (dims[0] == 1 || rows.Known && dims[0] == rows.Value) && (dims[1] == 1 || dims[1] == n)
	}
	return false
}
