package passes

import (
	"fmt"
	"math"
	"slices"

	"github.com/spf13/pflag"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// foldBatchNorm folds inference BatchNormalization into the Conv,
// ConvTranspose or Gemm that feeds it.
type foldBatchNorm struct{}

func (*foldBatchNorm) Flags(*pflag.FlagSet) {}

func (*foldBatchNorm) Run(m *graph.Model, env *Env) (Result, error) {
	var res Result
	var err error
	m.Graph.Walk(func(g *graph.Graph) bool {
		for _, n := range slices.Clone(g.Nodes) {
			var folded bool
			var why string
			if folded, why, err = foldBatchNormInto(g, n); err != nil {
				return false
			}
			switch {
			case folded:
				res.Changes++
			case why != "":
				res.Notes = append(res.Notes, fmt.Sprintf("BatchNormalization %q not folded: %s", n.Name, why))
			}
		}
		g.Prune()
		return true
	})
	return res, err
}

// affineBN is an inference BatchNormalization per channel c:
// y = (x − mean[c])·scale[c] + bias[c], where scale is γ/√(σ²+ε).
type affineBN struct {
	mean, scale, bias []float64
}

// foldBatchNormInto folds bn into the node producing its input when bn is a
// BatchNormalization that can be folded. It says why not when the producer
// is a layer it could fold into but something stands in the way.
func foldBatchNormInto(g *graph.Graph, bn *graph.Node) (folded bool, why string, err error) {
	if !isStandard(bn) || bn.OpType != "BatchNormalization" || len(bn.Inputs) < 5 || len(bn.Outputs) == 0 || bn.Outputs[0] == nil {
		return false, "", nil
	}
	x, out := bn.Inputs[0], bn.Outputs[0]
	if x == nil || x.Producer == nil || x.Graph != g || x.Producer.Graph != g {
		return false, "", nil
	}
	layer := x.Producer
	switch {
	case !isStandard(layer) || layer.OpType != "Conv" && layer.OpType != "ConvTranspose" && layer.OpType != "Gemm":
		return false, "", nil
	case len(layer.Outputs) != 1 || len(x.Uses) != 1 || g.IsOutput(x):
		return false, "", nil // the layer's output is read elsewhere too
	}
	if why := batchNormInference(bn); why != "" {
		return false, why, nil
	}
	w := layer.Input(1)
	if w == nil || !isFloatConstant(w) {
		return false, fmt.Sprintf("the weights of %s: %s", layer, notConstant(w)), nil
	}
	fold, why := weightFold(layer, w)
	if why != "" {
		return false, why, nil
	}
	bnParams, why := batchNormParams(bn, fold.channels)
	if why != "" {
		return false, why, nil
	}
	b := layer.Input(2)
	if b != nil && !isFloatConstant(b) {
		return false, fmt.Sprintf("the bias of %s: %s", layer, notConstant(b)), nil
	}

	weights, err := onnx.Float64s(w.Init)
	if err != nil {
		return false, fmt.Sprintf("the weights of %s: %v", layer, err), nil
	}
	scaled := make([]float64, len(weights))
	for i, v := range weights {
		scaled[i] = v * bnParams.scale[fold.channel(i)]
	}
	var bias []float64
	var biasDims []int64
	if layer.OpType == "Gemm" {
		bias, biasDims, why = gemmBiasFold(layer, b, bnParams)
	} else {
		bias, biasDims, why = convBiasFold(b, bnParams)
	}
	if why != "" {
		return false, why, nil
	}

	if err := setWeight(g, layer, 1, w, w.Name, w.Init.GetDims(), scaled); err != nil {
		return false, "", err
	}
	biasName := w.Name + "_bias"
	if b != nil {
		biasName = b.Name
	}
	if err := setWeight(g, layer, 2, b, biasName, biasDims, bias); err != nil {
		return false, "", err
	}
	if layer.OpType == "Gemm" {
		layer.RemoveAttr("beta") // the default, 1: beta is in the new C
	}
	return true, "", takeOver(g, x, out)
}

// batchNormInference says why bn does not normalize with its running
// statistics, per channel, or returns "".
func batchNormInference(bn *graph.Node) string {
	for _, v := range bn.Outputs[1:] {
		if v != nil {
			return "it computes batch statistics (training mode)"
		}
	}
	opset := bn.Opset()
	switch {
	case opset >= 14 && bn.AttrInt("training_mode", 0) != 0:
		return "training_mode is set"
	case opset < 7 && bn.AttrInt("is_test", 0) == 0:
		return "is_test is not set"
	case opset < 9 && bn.AttrInt("spatial", 1) == 0:
		return "spatial=0 keeps statistics per activation, not per channel"
	}
	return ""
}

// batchNormParams reads bn's constant scale, bias, mean and variance, which
// must hold one value per channel.
func batchNormParams(bn *graph.Node, channels int) (affineBN, string) {
	var p [4][]float64 // γ, β, μ, σ²
	for i := range p {
		v := bn.Inputs[i+1]
		if v == nil || !isFloatConstant(v) {
			return affineBN{}, fmt.Sprintf("input %d: %s", i+1, notConstant(v))
		}
		var err error
		if p[i], err = onnx.Float64s(v.Init); err != nil {
			return affineBN{}, fmt.Sprintf("input %q: %v", v.Name, err)
		}
		if len(p[i]) != channels {
			return affineBN{}, fmt.Sprintf("input %q has %d values for %d channels", v.Name, len(p[i]), channels)
		}
	}
	epsilon := float64(bn.AttrFloat("epsilon", 1e-5))
	a := affineBN{mean: p[2], scale: make([]float64, channels), bias: p[1]}
	for c := range a.scale {
		a.scale[c] = p[0][c] / math.Sqrt(p[3][c]+epsilon)
	}
	return a, ""
}

// A channelMap tells which output channel each element of a layer's weight
// tensor (in row-major order) contributes to.
type channelMap struct {
	channels int
	channel  func(i int) int
}

// weightFold maps the weights w of layer to its output channels.
func weightFold(layer *graph.Node, w *graph.Value) (channelMap, string) {
	dims := w.Init.GetDims()
	size, err := onnx.NumElements(dims)
	if err != nil || size == 0 {
		return channelMap{}, fmt.Sprintf("the weights of %s have shape %v", layer, dims)
	}
	switch layer.OpType {
	case "Conv":
		// W is [Cout, Cin/group, k...]: groups split Cin only.
		if len(dims) < 3 {
			return channelMap{}, fmt.Sprintf("the weights of %s have shape %v", layer, dims)
		}
		inner := int(size / dims[0])
		return channelMap{int(dims[0]), func(i int) int { return i / inner }}, ""
	case "ConvTranspose":
		// W is [Cin, Cout/group, k...]: the channels of group g are
		// g·Cout/group ... (g+1)·Cout/group−1, and input channel ci
		// belongs to group ci / (Cin/group).
		group := layer.AttrInt("group", 1)
		if len(dims) < 3 || group <= 0 || dims[0]%group != 0 {
			return channelMap{}, fmt.Sprintf("the weights of %s have shape %v for group %d", layer, dims, group)
		}
		perGroup, kernel := int(dims[1]), int(size/(dims[0]*dims[1]))
		inPerGroup := int(dims[0] / group)
		return channelMap{int(group) * perGroup, func(i int) int {
			ci, co := i/(perGroup*kernel), i/kernel%perGroup
			return ci/inPerGroup*perGroup + co
		}}, ""
	case "Gemm":
		// The output's columns are B's columns, or its rows with transB.
		if len(dims) != 2 {
			return channelMap{}, fmt.Sprintf("B of %s has shape %v", layer, dims)
		}
		if layer.AttrInt("transB", 0) != 0 {
			k := int(dims[1])
			return channelMap{int(dims[0]), func(i int) int { return i / k }}, ""
		}
		n := int(dims[1])
		return channelMap{n, func(i int) int { return i % n }}, ""
	}
	return channelMap{}, "unreachable"
}

// convBiasFold returns the convolution bias b' = (b−μ)·scale + β, with b
// zero when the layer has none.
func convBiasFold(b *graph.Value, bn affineBN) ([]float64, []int64, string) {
	old := make([]float64, len(bn.scale))
	if b != nil {
		var err error
		if old, err = onnx.Float64s(b.Init); err != nil {
			return nil, nil, fmt.Sprintf("bias %q: %v", b.Name, err)
		}
		if len(old) != len(bn.scale) {
			return nil, nil, fmt.Sprintf("bias %q has %d values for %d channels", b.Name, len(old), len(bn.scale))
		}
	}
	bias := make([]float64, len(old))
	for c, v := range old {
		bias[c] = (v-bn.mean[c])*bn.scale[c] + bn.bias[c]
	}
	return bias, []int64{int64(len(bias))}, ""
}

// gemmBiasFold returns Gemm's new C = (beta·C − μ)·scale + β, to be used
// with beta 1. C broadcasts to [M, N] along rows, columns or both; the new
// C keeps C's rows and has N columns: [N] for a C of rank below 2, else
// [rows, N].
func gemmBiasFold(gemm *graph.Node, c *graph.Value, bn affineBN) ([]float64, []int64, string) {
	n := len(bn.scale)
	if c == nil {
		bias := make([]float64, n)
		for j := range bias {
			bias[j] = -bn.mean[j]*bn.scale[j] + bn.bias[j]
		}
		return bias, []int64{int64(n)}, ""
	}
	old, err := onnx.Float64s(c.Init)
	if err != nil {
		return nil, nil, fmt.Sprintf("C %q: %v", c.Name, err)
	}
	dims := c.Init.GetDims()
	rows, cols := 1, 1
	switch len(dims) {
	case 0:
	case 1:
		cols = int(dims[0])
	case 2:
		rows, cols = int(dims[0]), int(dims[1])
	default:
		return nil, nil, fmt.Sprintf("C %q has shape %v", c.Name, dims)
	}
	if cols != 1 && cols != n || rows < 1 {
		return nil, nil, fmt.Sprintf("C %q has shape %v for %d columns", c.Name, dims, n)
	}
	beta := float64(gemm.AttrFloat("beta", 1))
	bias := make([]float64, rows*n)
	for r := range rows {
		for j := range n {
			v := old[r*cols]
			if cols == n {
				v = old[r*cols+j]
			}
			bias[r*n+j] = (beta*v-bn.mean[j])*bn.scale[j] + bn.bias[j]
		}
	}
	if len(dims) < 2 {
		return bias, []int64{int64(n)}, ""
	}
	return bias, []int64{int64(rows), int64(n)}, ""
}

// setWeight makes input i of layer hold vals, of the element type of the
// layer's weights (input 1). The initializer old (nil when the input is
// absent) is changed in place when it is read only there; otherwise a new
// initializer named after name takes its place, so that other readers keep
// their numbers.
func setWeight(g *graph.Graph, layer *graph.Node, i int, old *graph.Value, name string, dims []int64, vals []float64) error {
	t, err := floatTensor(name, layer.Inputs[1].ElemType(), dims, vals)
	if err != nil {
		return fmt.Errorf("node %s: %w", layer, err)
	}
	if old != nil && old.Graph == g && !g.IsOutput(old) && len(old.Uses) == 1 && old.Uses[0].Node == layer {
		old.SetInit(t)
		return nil
	}
	v := g.AddInitializer(t)
	for len(layer.Inputs) <= i {
		layer.AddInput(nil)
	}
	layer.SetInput(i, v)
	return nil
}

// takeOver removes node, whose output out now equals its input in, and
// gives in out's place: out's readers read in, and in takes out's name, so
// that a graph output keeps its name and out's numbers stay under it.
func takeOver(g *graph.Graph, in, out *graph.Value) error {
	node := out.Producer
	out.ReplaceAllUses(in)
	g.RemoveNode(node)
	g.ReplaceOutput(out, in)
	if out.Type != nil {
		in.Type = out.Type
	}
	if in.DocString == "" {
		in.DocString = out.DocString
	}
	g.ValueInfo = slices.DeleteFunc(g.ValueInfo, func(v *graph.Value) bool { return v == out })
	g.Prune()
	// Nothing refers to out any more, so Prune has freed its name.
	return in.Rename(out.Name)
}

// isFloatConstant reports whether v is an initializer no input overrides,
// of a floating-point type the folds compute in.
func isFloatConstant(v *graph.Value) bool {
	return v.IsConstant() && v.Init != nil && isFoldFloat(v.ElemType())
}

// notConstant says why v is not a constant the folds can use.
func notConstant(v *graph.Value) string {
	switch {
	case v == nil:
		return "missing"
	case v.Init != nil && !v.IsConstant():
		return fmt.Sprintf("%q is an initializer a graph input can override", v.Name)
	case v.Init != nil:
		return fmt.Sprintf("%q is of type %v", v.Name, v.ElemType())
	case v.Producer == nil:
		return fmt.Sprintf("%q is a graph input", v.Name)
	}
	return fmt.Sprintf("%q is computed by %s", v.Name, v.Producer)
}

func isFoldFloat(dt onnx.DataType) bool {
	switch dt {
	case onnx.TensorProto_FLOAT, onnx.TensorProto_DOUBLE, onnx.TensorProto_FLOAT16, onnx.TensorProto_BFLOAT16:
		return true
	}
	return false
}

// floatTensor stores vals, computed in float64, as a tensor of the
// floating-point type dt: exactly for DOUBLE, rounded for the others.
func floatTensor(name string, dt onnx.DataType, dims []int64, vals []float64) (*onnx.TensorProto, error) {
	if dt == onnx.TensorProto_DOUBLE {
		return onnx.NewTensor(name, dt, dims, vals)
	}
	f := make([]float32, len(vals))
	for i, v := range vals {
		f[i] = float32(v)
	}
	return onnx.NewTensor(name, dt, dims, f)
}
