package graph

import (
	"onnxopt/onnx"
)

// FLOPs estimates the floating-point operations of one run of g, counting
// a multiply-add as two. Symbolic dimensions of the graph inputs (a
// dynamic batch) are taken as 1, so the figure is per sample. Matrix
// products and convolutions are counted exactly; elementwise ops,
// normalization and pooling by their output (or window) sizes; ops whose
// shapes stay unknown count nothing. Subgraphs are not entered.
func (g *Graph) FLOPs() int64 {
	saved := map[*Value]*onnx.TypeProto{}
	for _, v := range g.Inputs {
		s, ok := v.Shape()
		if !ok || v.Init != nil {
			continue
		}
		bound := make(Shape, len(s))
		for i, d := range s {
			bound[i] = d
			if !d.Known {
				bound[i] = Dim{Value: 1, Known: true}
			}
		}
		saved[v] = v.Type
		v.Type = TensorType(v.ElemType(), bound)
	}
	types, err := g.Infer()
	for v, t := range saved {
		v.Type = t
	}
	if err != nil {
		return 0
	}
	size := func(v *Value) int64 {
		if v == nil {
			return 0
		}
		if t, ok := types[v]; ok {
			v = &Value{Type: t}
		}
		s, ok := v.Shape()
		if !ok {
			return 0
		}
		st, ok := s.Static()
		if !ok {
			return 0
		}
		return product(st)
	}
	shapeOf := func(v *Value) []int64 {
		if v == nil {
			return nil
		}
		if t, ok := types[v]; ok {
			v = &Value{Type: t}
		}
		s, _ := v.Shape()
		st, _ := s.Static()
		return st
	}
	var total int64
	for _, n := range g.Nodes {
		out := size(out0(n))
		switch n.OpType {
		case "Conv", "ConvTranspose", "ConvInteger", "QLinearConv":
			w := n.Input(1)
			if n.OpType == "QLinearConv" {
				w = n.Input(3)
			}
			ws := shapeOf(w)
			if len(ws) < 3 {
				continue
			}
			// Each output element of Conv takes (Cin/group)·k MACs; for
			// ConvTranspose each input element scatters Cout/group·k.
			macs := out * product(ws[1:])
			if n.OpType == "ConvTranspose" {
				macs = size(n.Input(0)) * product(ws[1:])
			}
			total += 2 * macs
			if n.Input(2) != nil && n.OpType != "QLinearConv" {
				total += out
			}
		case "Gemm", "MatMul", "MatMulInteger", "QLinearMatMul":
			a := shapeOf(n.Input(0))
			if len(a) == 0 {
				continue
			}
			k := a[len(a)-1]
			if n.OpType == "Gemm" && n.AttrInt("transA", 0) != 0 {
				k = a[0]
			}
			total += 2 * out * k
			if n.OpType == "Gemm" && n.Input(2) != nil {
				total += out
			}
		case "MaxPool", "AveragePool", "LpPool":
			total += out * product(n.AttrInts("kernel_shape", nil))
		case "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin":
			total += size(n.Input(0))
		case "BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization":
			total += 2 * out
		case "Softmax", "LogSoftmax":
			total += 3 * out
		case "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Pow",
			"Erf", "Gelu", "LeakyRelu", "PRelu", "Clip", "HardSigmoid", "HardSwish", "Elu", "Neg",
			"Abs", "Max", "Min", "Sum", "Mean", "Reciprocal", "Softplus", "Where":
			total += out
		}
	}
	return total
}
