package runtime

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/internal/suite"
	"onnxopt/onnx"
)

// Gradient checks compare the plan's gradients with central finite
// differences of the plan's own loss, (L(θ+ε) − L(θ−ε)) / 2ε, computed in
// float64 so that the differences are precise: with ε = 1e-6 the
// truncation error is O(ε²) and the rounding error about 1e-16·|L|/ε.
// A gradient passes when |fd − g| ≤ gradFDATol + gradFDRTol·|fd|.
const (
	gradFDEps  = 1e-6
	gradFDRTol = 1e-5
	gradFDATol = 1e-6
)

// gradF32RTol bounds the relative difference between float32 and float64
// gradients of the same graph, measured against the largest float64
// gradient of the parameter (float32 sums of a few dozen terms lose about
// 1e-6 relative; 1e-4 leaves margin and still catches a wrong kernel).
const gradF32RTol = 1e-4

// gradNet builds small test graphs.
type gradNet struct {
	t   testing.TB
	m   *graph.Model
	g   *graph.Graph
	rng *rand.Rand
	dt  onnx.TensorProto_DataType
}

func newGradNet(t testing.TB, opset int64, seed uint64) *gradNet {
	m := graph.NewModel(8, graph.Opset{Domain: "", Version: opset})
	return &gradNet{t: t, m: m, g: m.Graph, rng: rand.New(rand.NewPCG(seed, 7)), dt: onnx.TensorProto_DOUBLE}
}

func gradShape(shape []int) graph.Shape {
	dims := make([]int64, len(shape))
	for i, d := range shape {
		dims[i] = int64(d)
	}
	return graph.Known(dims...)
}

// input adds a graph input of the net's dtype.
func (n *gradNet) input(name string, shape ...int) *graph.Value {
	v := n.g.Value(name)
	v.SetTensorType(n.dt, gradShape(shape))
	n.g.Inputs = append(n.g.Inputs, v)
	return v
}

// init adds an initializer with the given float64 values.
func (n *gradNet) init(name string, values []float64, shape ...int) *graph.Value {
	n.t.Helper()
	t, err := FromSlice(values, shape...)
	if err != nil {
		n.t.Fatal(err)
	}
	tp, err := TensorToProto(name, t)
	if err != nil {
		n.t.Fatal(err)
	}
	return n.g.AddInitializer(tp)
}

// param adds an initializer of normal random values.
func (n *gradNet) param(name string, shape ...int) *graph.Value {
	return n.init(name, gradNormal(n.rng, mustElements(shape)), shape...)
}

// positive adds an initializer of random values in [0.5, 1.5).
func (n *gradNet) positive(name string, shape ...int) *graph.Value {
	v := make([]float64, mustElements(shape))
	for i := range v {
		v[i] = 0.5 + n.rng.Float64()
	}
	return n.init(name, v, shape...)
}

func (n *gradNet) int64s(name string, v ...int64) *graph.Value {
	n.t.Helper()
	tp, err := TensorToProto(name, &Tensor{DType: onnx.TensorProto_INT64, Shape: []int{len(v)}, Data: v})
	if err != nil {
		n.t.Fatal(err)
	}
	return n.g.AddInitializer(tp)
}

// op adds a node with one output and returns it.
func (n *gradNet) op(opType string, inputs []*graph.Value, attrs ...*onnx.AttributeProto) *graph.Value {
	n.t.Helper()
	out := n.g.NewValue(strings.ToLower(opType))
	if _, err := n.g.NewNode(opType, strings.ToLower(opType), inputs, []*graph.Value{out}, attrs...); err != nil {
		n.t.Fatal(err)
	}
	return out
}

func gradInt(name string, v int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func gradIntList(name string, v ...int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_INTS.Enum(), Ints: v}
}

func gradFloatAttr(name string, v float32) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func gradStringAttr(name, v string) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_STRING.Enum(), S: []byte(v)}
}

func gradNormal(rng *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return v
}

// gradToFloat32 converts every double initializer, Constant, input and
// output of g to float, for the float32 runs of the same graph.
func gradToFloat32(t testing.TB, g *graph.Graph) {
	t.Helper()
	gradConvert(t, g, onnx.TensorProto_DOUBLE, onnx.TensorProto_FLOAT)
}

// gradToFloat64 converts every float initializer, Constant, input and
// output of g to double, for finite differences on a float32 model.
func gradToFloat64(t testing.TB, g *graph.Graph) {
	t.Helper()
	gradConvert(t, g, onnx.TensorProto_FLOAT, onnx.TensorProto_DOUBLE)
}

func gradConvert(t testing.TB, g *graph.Graph, from, to onnx.TensorProto_DataType) {
	t.Helper()
	for _, v := range g.Initializers {
		if onnx.TensorProto_DataType(v.Init.GetDataType()) != from {
			continue
		}
		old, err := TensorFromProto(v.Init)
		if err != nil {
			t.Fatal(err)
		}
		c := gradCast(old, to)
		tp, err := TensorToProto(v.Name, c)
		if err != nil {
			t.Fatal(err)
		}
		v.SetInit(tp)
	}
	for _, n := range g.Nodes {
		tp := n.AttrTensor("value")
		if n.OpType != "Constant" || tp == nil || onnx.TensorProto_DataType(tp.GetDataType()) != from {
			continue
		}
		old, err := TensorFromProto(tp)
		if err != nil {
			t.Fatal(err)
		}
		c, err := TensorToProto(tp.GetName(), gradCast(old, to))
		if err != nil {
			t.Fatal(err)
		}
		n.SetAttr(&onnx.AttributeProto{Name: proto.String("value"), Type: onnx.AttributeProto_TENSOR.Enum(), T: c})
	}
	for _, list := range [][]*graph.Value{g.Inputs, g.Outputs, g.ValueInfo} {
		for _, v := range list {
			if v.Init == nil && v.ElemType() == from {
				s, _ := v.Shape()
				v.SetTensorType(to, s)
			}
		}
	}
}

// gradCast converts a float or double tensor to dt.
func gradCast(t *Tensor, dt onnx.TensorProto_DataType) *Tensor {
	c := &Tensor{DType: dt, Shape: slices.Clone(t.Shape)}
	src := gradFloats(t)
	if dt == onnx.TensorProto_FLOAT {
		d := make([]float32, len(src))
		for i, x := range src {
			d[i] = float32(x)
		}
		c.Data = d
	} else {
		c.Data = src
	}
	return c
}

// gradFloats returns a float or double tensor's elements as float64.
func gradFloats(t *Tensor) []float64 {
	switch d := t.Data.(type) {
	case []float32:
		out := make([]float64, len(d))
		for i, x := range d {
			out[i] = float64(x)
		}
		return out
	case []float64:
		return slices.Clone(d)
	}
	panic(fmt.Sprintf("not a float tensor: %s", t))
}

func gradRandomTensor(rng *rand.Rand, dt onnx.TensorProto_DataType, shape ...int) *Tensor {
	t := &Tensor{DType: onnx.TensorProto_DOUBLE, Shape: slices.Clone(shape), Data: gradNormal(rng, mustElements(shape))}
	return gradCast(t, dt)
}

// A gradLossAt evaluates the loss with initializer name set to value.
type gradLossAt func(name string, value *Tensor) float64

// gradPlanLoss evaluates the loss with the plan itself.
func gradPlanLoss(t *testing.T, p *GradPlan, inputs map[string]*Tensor, targets *Tensor) gradLossAt {
	return func(name string, value *Tensor) float64 {
		t.Helper()
		if err := p.SetValue(name, value); err != nil {
			t.Fatal(err)
		}
		r, err := p.Run(inputs, targets)
		if err != nil {
			t.Fatal(err)
		}
		return r.Loss
	}
}

// gradCheckFD compares the gradient of every element of every parameter
// (at most maxElems random elements of each) with central differences of
// the loss, and restores the parameters' values.
func gradCheckFD(t *testing.T, lossAt gradLossAt, values map[string]*Tensor, res *GradResult, maxElems int, rng *rand.Rand) {
	t.Helper()
	names := make([]string, 0, len(res.Grads))
	for name := range res.Grads {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		orig := values[name].Clone()
		g := gradFloats(res.Grads[name])
		idx := make([]int, len(g))
		for i := range idx {
			idx[i] = i
		}
		if len(idx) > maxElems {
			rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
			idx = idx[:maxElems]
		}
		worst := 0.0
		for _, i := range idx {
			var loss [2]float64
			for k, sign := range []float64{1, -1} {
				pert := orig.Clone()
				pert.Data.([]float64)[i] += sign * gradFDEps
				loss[k] = lossAt(name, pert)
			}
			fd := (loss[0] - loss[1]) / (2 * gradFDEps)
			diff := math.Abs(fd - g[i])
			if diff > gradFDATol+gradFDRTol*math.Abs(fd) {
				t.Errorf("d loss/d %s[%d]: gradient %.9g, finite difference %.9g", name, i, g[i], fd)
			}
			worst = max(worst, diff/(gradFDATol+gradFDRTol*math.Abs(fd)))
		}
		lossAt(name, orig)
		if testing.Verbose() {
			t.Logf("%s: %d elements checked, worst error %.3g of tolerance", name, len(idx), worst)
		}
	}
}

// gradEqual reports whether two gradient maps hold bitwise equal values.
func gradEqual(a, b map[string]*Tensor) bool {
	if len(a) != len(b) {
		return false
	}
	for name, x := range a {
		y, ok := b[name]
		if !ok {
			return false
		}
		if _, _, same := Compare(x, y, 0, 0); !same {
			return false
		}
	}
	return true
}

// A gradCase is a small graph around one operator.
type gradCase struct {
	name  string
	opset int64
	in    []int // the batch input's shape
	out   []int // the output's shape, which the test checks
	// build adds the operator to the net, reading h (the input plus a
	// parameter, so that the gradient of that parameter is the gradient
	// with respect to the operator's input) and returns its output.
	build func(n *gradNet, h *graph.Value) *graph.Value
}

func gradOpCases() []gradCase {
	conv := func(w []int, bias bool, a ...*onnx.AttributeProto) func(n *gradNet, h *graph.Value) *graph.Value {
		return func(n *gradNet, h *graph.Value) *graph.Value {
			in := []*graph.Value{h, n.param("w", w...)}
			if bias {
				in = append(in, n.param("b", w[0]))
			}
			return n.op("Conv", in, a...)
		}
	}
	unary := func(op string, a ...*onnx.AttributeProto) func(n *gradNet, h *graph.Value) *graph.Value {
		return func(n *gradNet, h *graph.Value) *graph.Value { return n.op(op, []*graph.Value{h}, a...) }
	}
	binary := func(op string, shape []int, positive, paramFirst bool) func(n *gradNet, h *graph.Value) *graph.Value {
		return func(n *gradNet, h *graph.Value) *graph.Value {
			p := n.param("p", shape...)
			if positive {
				p = n.positive("p", shape...)
			}
			if paramFirst {
				return n.op(op, []*graph.Value{p, h})
			}
			return n.op(op, []*graph.Value{h, p})
		}
	}
	gemm := func(b, c []int, a ...*onnx.AttributeProto) func(n *gradNet, h *graph.Value) *graph.Value {
		return func(n *gradNet, h *graph.Value) *graph.Value {
			in := []*graph.Value{h, n.param("b", b...)}
			if c != nil {
				in = append(in, n.param("c", c...))
			}
			return n.op("Gemm", in, a...)
		}
	}
	matmul := func(b ...int) func(n *gradNet, h *graph.Value) *graph.Value {
		return func(n *gradNet, h *graph.Value) *graph.Value {
			return n.op("MatMul", []*graph.Value{h, n.param("b", b...)})
		}
	}
	batchNorm := func(c int) func(n *gradNet, h *graph.Value) *graph.Value {
		return func(n *gradNet, h *graph.Value) *graph.Value {
			return n.op("BatchNormalization", []*graph.Value{h, n.param("scale", c), n.param("bias", c), n.param("mean", c), n.positive("var", c)},
				gradFloatAttr("epsilon", 1e-3))
		}
	}
	return []gradCase{
		{"Gemm/transB", 13, []int{4, 3}, []int{4, 5}, gemm([]int{5, 3}, []int{5}, gradInt("transB", 1))},
		{"Gemm/transA_alpha_beta", 13, []int{3, 4}, []int{4, 5}, gemm([]int{3, 5}, []int{4, 5}, gradInt("transA", 1), gradFloatAttr("alpha", 0.7), gradFloatAttr("beta", 1.3))},
		{"Gemm/transA_transB_C_column", 13, []int{3, 4}, []int{4, 5}, gemm([]int{5, 3}, []int{4, 1}, gradInt("transA", 1), gradInt("transB", 1))},
		{"Gemm/C_scalar", 13, []int{4, 3}, []int{4, 5}, gemm([]int{3, 5}, []int{}, gradFloatAttr("beta", 0.5))},
		{"Gemm/one_row_no_C", 13, []int{1, 3}, []int{1, 5}, gemm([]int{3, 5}, nil)},
		{"MatMul/2D", 13, []int{4, 3}, []int{4, 5}, matmul(3, 5)},
		{"MatMul/3Dx2D", 13, []int{2, 4, 3}, []int{2, 4, 5}, matmul(3, 5)},
		{"MatMul/3Dx3D", 13, []int{2, 4, 3}, []int{2, 4, 5}, matmul(2, 3, 5)},
		{"MatMul/vector_left", 13, []int{3}, []int{5}, matmul(3, 5)},
		{"MatMul/vector_right", 13, []int{4, 3}, []int{4}, matmul(3)},
		{"Conv/pads", 13, []int{2, 3, 5, 5}, []int{2, 4, 5, 5}, conv([]int{4, 3, 3, 3}, true, gradIntList("pads", 1, 1, 1, 1))},
		{"Conv/strides_dilations", 13, []int{1, 2, 7, 8}, []int{1, 3, 3, 10}, conv([]int{3, 2, 3, 2}, true,
			gradIntList("pads", 1, 2, 1, 2), gradIntList("strides", 2, 1), gradIntList("dilations", 2, 2))},
		{"Conv/uneven_pads_no_bias", 13, []int{1, 2, 5, 5}, []int{1, 2, 5, 4}, conv([]int{2, 2, 3, 3}, false, gradIntList("pads", 0, 1, 2, 0))},
		{"Conv/groups", 13, []int{2, 4, 5, 5}, []int{2, 6, 3, 3}, conv([]int{6, 2, 3, 3}, true, gradInt("group", 2))},
		{"Conv/depthwise", 13, []int{1, 3, 4, 4}, []int{1, 3, 4, 4}, conv([]int{3, 1, 3, 3}, true, gradInt("group", 3), gradIntList("pads", 1, 1, 1, 1))},
		{"Conv/1D", 13, []int{2, 3, 7}, []int{2, 4, 4}, conv([]int{4, 3, 3}, true, gradIntList("strides", 2), gradIntList("pads", 1, 1))},
		{"Conv/same_lower", 13, []int{1, 2, 5, 5}, []int{1, 2, 5, 5}, conv([]int{2, 2, 2, 2}, true, gradStringAttr("auto_pad", "SAME_LOWER"))},
		{"Add/same_shape", 13, []int{3, 4}, []int{3, 4}, binary("Add", []int{3, 4}, false, false)},
		{"Add/channel_bias", 13, []int{2, 3, 4, 5}, []int{2, 3, 4, 5}, binary("Add", []int{3, 1, 1}, false, false)},
		{"Sub/row_vector", 13, []int{4, 5}, []int{4, 5}, binary("Sub", []int{5}, false, false)},
		{"Sub/param_first", 13, []int{4, 5}, []int{4, 5}, binary("Sub", []int{4, 1}, false, true)},
		{"Mul/both_broadcast", 13, []int{4, 1}, []int{4, 5}, binary("Mul", []int{1, 5}, false, false)},
		{"Mul/scalar", 13, []int{4, 5}, []int{4, 5}, binary("Mul", []int{}, false, false)},
		{"Div/same_shape", 13, []int{3, 4}, []int{3, 4}, binary("Div", []int{3, 4}, true, false)},
		{"Div/broadcast", 13, []int{2, 3, 4}, []int{2, 3, 4}, binary("Div", []int{3, 1}, true, false)},
		{"Relu", 13, []int{3, 4}, []int{3, 4}, unary("Relu")},
		{"Sigmoid", 13, []int{3, 4}, []int{3, 4}, unary("Sigmoid")},
		{"Tanh", 13, []int{3, 4}, []int{3, 4}, unary("Tanh")},
		{"Identity", 13, []int{3, 4}, []int{3, 4}, unary("Identity")},
		{"Softmax/last_axis", 13, []int{3, 4}, []int{3, 4}, unary("Softmax")},
		{"Softmax/axis1", 13, []int{2, 3, 4}, []int{2, 3, 4}, unary("Softmax", gradInt("axis", 1))},
		{"Softmax/opset11_flattened", 11, []int{2, 3, 4}, []int{2, 3, 4}, unary("Softmax", gradInt("axis", 1))},
		{"LogSoftmax/last_axis", 13, []int{3, 4}, []int{3, 4}, unary("LogSoftmax")},
		{"LogSoftmax/axis1", 13, []int{2, 3, 4}, []int{2, 3, 4}, unary("LogSoftmax", gradInt("axis", 1))},
		{"LogSoftmax/opset11_flattened", 11, []int{2, 3, 4}, []int{2, 3, 4}, unary("LogSoftmax", gradInt("axis", 1))},
		{"Softmax_and_LogSoftmax_of_one_input", 13, []int{3, 4}, []int{3, 4}, func(n *gradNet, h *graph.Value) *graph.Value {
			return n.op("Add", []*graph.Value{n.op("Softmax", []*graph.Value{h}), n.op("LogSoftmax", []*graph.Value{h})})
		}},
		{"MaxPool/2x2_stride2", 13, []int{2, 3, 6, 6}, []int{2, 3, 3, 3}, unary("MaxPool", gradIntList("kernel_shape", 2, 2), gradIntList("strides", 2, 2))},
		{"MaxPool/3x3_pads", 13, []int{2, 3, 6, 6}, []int{2, 3, 6, 6}, unary("MaxPool", gradIntList("kernel_shape", 3, 3), gradIntList("pads", 1, 1, 1, 1))},
		{"MaxPool/ceil_mode", 13, []int{1, 2, 5, 5}, []int{1, 2, 3, 3}, unary("MaxPool", gradIntList("kernel_shape", 2, 2), gradIntList("strides", 2, 2), gradInt("ceil_mode", 1))},
		{"MaxPool/uneven_pads", 13, []int{1, 2, 5, 5}, []int{1, 2, 5, 5}, unary("MaxPool", gradIntList("kernel_shape", 2, 2), gradIntList("pads", 0, 1, 1, 0))},
		{"MaxPool/dilations", 13, []int{1, 2, 5, 5}, []int{1, 2, 3, 3}, unary("MaxPool", gradIntList("kernel_shape", 2, 2), gradIntList("dilations", 2, 2))},
		{"MaxPool/1D", 13, []int{2, 3, 7}, []int{2, 3, 3}, unary("MaxPool", gradIntList("kernel_shape", 3), gradIntList("strides", 2))},
		{"AveragePool/2x2_stride2", 13, []int{2, 3, 6, 6}, []int{2, 3, 3, 3}, unary("AveragePool", gradIntList("kernel_shape", 2, 2), gradIntList("strides", 2, 2))},
		{"AveragePool/pads_exclude", 13, []int{1, 2, 5, 5}, []int{1, 2, 5, 5}, unary("AveragePool", gradIntList("kernel_shape", 3, 3), gradIntList("pads", 1, 1, 1, 1))},
		{"AveragePool/pads_include", 13, []int{1, 2, 5, 5}, []int{1, 2, 5, 5}, unary("AveragePool", gradIntList("kernel_shape", 3, 3), gradIntList("pads", 1, 1, 1, 1), gradInt("count_include_pad", 1))},
		{"AveragePool/ceil_mode", 13, []int{1, 2, 5, 5}, []int{1, 2, 3, 3}, unary("AveragePool", gradIntList("kernel_shape", 2, 2), gradIntList("strides", 2, 2), gradInt("ceil_mode", 1))},
		{"AveragePool/1D", 13, []int{2, 3, 7}, []int{2, 3, 3}, unary("AveragePool", gradIntList("kernel_shape", 3), gradIntList("strides", 2))},
		{"GlobalAveragePool/2D", 13, []int{2, 3, 4, 5}, []int{2, 3, 1, 1}, unary("GlobalAveragePool")},
		{"GlobalAveragePool/1D", 13, []int{2, 3, 5}, []int{2, 3, 1}, unary("GlobalAveragePool")},
		{"Flatten/axis1", 13, []int{2, 3, 4}, []int{2, 12}, unary("Flatten")},
		{"Flatten/axis0", 13, []int{2, 3, 4}, []int{1, 24}, unary("Flatten", gradInt("axis", 0))},
		{"Flatten/axis_negative", 13, []int{2, 3, 4}, []int{6, 4}, unary("Flatten", gradInt("axis", -1))},
		{"Reshape/copy_and_infer", 13, []int{2, 3, 4}, []int{2, 12}, func(n *gradNet, h *graph.Value) *graph.Value {
			return n.op("Reshape", []*graph.Value{h, n.int64s("shape", 0, -1)})
		}},
		{"Reshape/constant_node", 13, []int{2, 3, 4}, []int{4, 6}, func(n *gradNet, h *graph.Value) *graph.Value {
			tp, err := TensorToProto("", &Tensor{DType: onnx.TensorProto_INT64, Shape: []int{2}, Data: []int64{4, 6}})
			if err != nil {
				n.t.Fatal(err)
			}
			shape := n.op("Constant", nil, &onnx.AttributeProto{Name: proto.String("value"), Type: onnx.AttributeProto_TENSOR.Enum(), T: tp})
			return n.op("Reshape", []*graph.Value{h, shape})
		}},
		{"Constant/float_operand", 13, []int{2, 3}, []int{2, 3}, func(n *gradNet, h *graph.Value) *graph.Value {
			tp, err := TensorToProto("", &Tensor{DType: onnx.TensorProto_DOUBLE, Shape: []int{3}, Data: []float64{0.5, -1, 2}})
			if err != nil {
				n.t.Fatal(err)
			}
			c := n.op("Constant", nil, &onnx.AttributeProto{Name: proto.String("value"), Type: onnx.AttributeProto_TENSOR.Enum(), T: tp})
			return n.op("Mul", []*graph.Value{h, c})
		}},
		{"Transpose/perm", 13, []int{2, 3, 4}, []int{3, 4, 2}, unary("Transpose", gradIntList("perm", 1, 2, 0))},
		{"Transpose/default", 13, []int{2, 3, 4}, []int{4, 3, 2}, unary("Transpose")},
		{"Squeeze/axes_input", 13, []int{2, 1, 4}, []int{2, 4}, func(n *gradNet, h *graph.Value) *graph.Value {
			return n.op("Squeeze", []*graph.Value{h, n.int64s("axes", 1)})
		}},
		{"Squeeze/opset11_all", 11, []int{2, 1, 4, 1}, []int{2, 4}, unary("Squeeze")},
		{"Unsqueeze/axes_input", 13, []int{2, 4}, []int{2, 1, 4, 1}, func(n *gradNet, h *graph.Value) *graph.Value {
			return n.op("Unsqueeze", []*graph.Value{h, n.int64s("axes", 1, -1)})
		}},
		{"Unsqueeze/opset11_attr", 11, []int{2, 4}, []int{1, 2, 4}, unary("Unsqueeze", gradIntList("axes", 0))},
		{"BatchNormalization/4D", 15, []int{2, 3, 4, 4}, []int{2, 3, 4, 4}, batchNorm(3)},
		{"BatchNormalization/2D", 9, []int{4, 3}, []int{4, 3}, batchNorm(3)},
		{"reshaped_value_read_later", 13, []int{2, 6}, []int{2, 6}, func(n *gradNet, h *graph.Value) *graph.Value {
			// An elementwise op on a reshape of h, with h read again
			// afterwards: the op must not write into h through the
			// reshape.
			r := n.op("Reshape", []*graph.Value{h, n.int64s("shape", 3, 4)})
			s := n.op("Reshape", []*graph.Value{n.op("Add", []*graph.Value{r, n.param("p", 3, 4)}), n.int64s("back", 2, 6)})
			return n.op("Mul", []*graph.Value{s, h})
		}},
		{"shared_parameter", 13, []int{4, 3}, []int{4, 3}, func(n *gradNet, h *graph.Value) *graph.Value {
			// One initializer read by two nodes, one of which reshapes it:
			// gorgonia must not reshape the shared value in place.
			w := n.param("w", 3, 3)
			y := n.op("Gemm", []*graph.Value{h, w})
			flat := n.op("Reshape", []*graph.Value{w, n.int64s("shape", 9)})
			back := n.op("Reshape", []*graph.Value{n.op("Add", []*graph.Value{flat, n.param("p", 9)}), n.int64s("shape3", 3, 3)})
			return n.op("Add", []*graph.Value{y, n.op("Gemm", []*graph.Value{h, n.op("Mul", []*graph.Value{w, back})})})
		}},
	}
}

// gradCaseNet builds the graph of c in float64: input x, h = x + shift,
// output = c.build(h).
func gradCaseNet(t *testing.T, c gradCase, seed uint64) *gradNet {
	n := newGradNet(t, c.opset, seed)
	x := n.input("x", c.in...)
	h := n.op("Add", []*graph.Value{x, n.param("shift", c.in...)})
	y := c.build(n, h)
	n.g.Outputs = append(n.g.Outputs, y)
	return n
}

// TestGradOps checks every supported operator's gradient with respect to
// its input and its initializers against central finite differences
// (float64, ε = gradFDEps, tolerance gradFDATol + gradFDRTol·|fd|) under
// the sum-of-squares loss against random targets; checks the output
// shape; runs the plan again after the perturbations and requires
// bitwise-equal gradients; and compares float32 gradients with the
// float64 ones (relative to the largest, gradF32RTol).
func TestGradOps(t *testing.T) {
	for i, c := range gradOpCases() {
		t.Run(c.name, func(t *testing.T) {
			seed := uint64(100 + i)
			n := gradCaseNet(t, c, seed)
			rng := rand.New(rand.NewPCG(seed, 1))
			x := gradRandomTensor(rng, onnx.TensorProto_DOUBLE, c.in...)
			targets := gradRandomTensor(rng, onnx.TensorProto_DOUBLE, c.out...)
			inputs := map[string]*Tensor{"x": x}

			p, err := CompileGrad(n.g, LossSpec{Kind: LossSumSquares}, nil)
			if err != nil {
				t.Fatal(err)
			}
			first, err := p.Run(inputs, targets)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(first.Output.Shape, c.out) {
				t.Fatalf("output shape %v, want %v", first.Output.Shape, c.out)
			}
			gradCheckFD(t, gradPlanLoss(t, p, inputs, targets), p.values, first, 16, rng)

			again, err := p.Run(inputs, targets)
			if err != nil {
				t.Fatal(err)
			}
			if again.Loss != first.Loss || !gradEqual(again.Grads, first.Grads) {
				t.Errorf("a later run of the plan gives different gradients")
			}

			gradToFloat32(t, n.g)
			p32, err := CompileGrad(n.g, LossSpec{Kind: LossSumSquares}, nil)
			if err != nil {
				t.Fatal(err)
			}
			r32, err := p32.Run(map[string]*Tensor{"x": gradCast(x, onnx.TensorProto_FLOAT)}, gradCast(targets, onnx.TensorProto_FLOAT))
			if err != nil {
				t.Fatal(err)
			}
			for name, g64 := range first.Grads {
				gradCompareScaled(t, name, r32.Grads[name], g64, gradF32RTol)
			}
		})
	}
}

// gradCompareScaled checks |got − want| ≤ rtol·max|want| elementwise.
func gradCompareScaled(t *testing.T, name string, got, want *Tensor, rtol float64) {
	t.Helper()
	if got == nil || !slices.Equal(got.Shape, want.Shape) {
		t.Errorf("%s: got %v, want shape %v", name, got, want.Shape)
		return
	}
	g, w := gradFloats(got), gradFloats(want)
	scale := 0.0
	for _, x := range w {
		scale = max(scale, math.Abs(x))
	}
	for i := range w {
		if math.Abs(g[i]-w[i]) > rtol*scale {
			t.Errorf("%s[%d]: got %g, want %g (scale %g, rtol %g)", name, i, g[i], w[i], scale, rtol)
			return
		}
	}
}

// gradDigits loads a digits model and its calibration set.
func gradDigits(tb testing.TB, name string) (*graph.Model, *Tensor) {
	tb.Helper()
	dir := filepath.Join(suite.SharedModels(tb), name)
	model, err := graph.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		tb.Fatal(err)
	}
	x, err := ReadTensorFile(filepath.Join(dir, "calibration.pb"))
	if err != nil {
		tb.Fatal(err)
	}
	return model, x
}

// BenchmarkGradDigitsCNN measures one forward and backward pass of the
// self cross-entropy over the 256 calibration samples of the digits CNN.
func BenchmarkGradDigitsCNN(b *testing.B) {
	model, x := gradDigits(b, "digits_cnn")
	p, err := CompileGrad(model.Graph, LossSpec{Kind: LossSelfCrossEntropy}, nil)
	if err != nil {
		b.Fatal(err)
	}
	inputs := map[string]*Tensor{model.Graph.Inputs[0].Name: x}
	if _, err := p.Run(inputs, nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.Run(inputs, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestGradForwardMatchesRuntime compares the output of each op case's
// gorgonia graph with the runtime's own kernels (runtime.Compile/Run), in
// float64 with |got − want| ≤ 1e-9 + 1e-9·|want| (the two differ only in
// summation order).
func TestGradForwardMatchesRuntime(t *testing.T) {
	for i, c := range gradOpCases() {
		t.Run(c.name, func(t *testing.T) {
			seed := uint64(100 + i)
			n := gradCaseNet(t, c, seed)
			rng := rand.New(rand.NewPCG(seed, 1))
			x := gradRandomTensor(rng, onnx.TensorProto_DOUBLE, c.in...)
			inputs := map[string]*Tensor{"x": x}
			plan, err := Compile(n.g)
			if err != nil {
				t.Fatal(err)
			}
			outs, err := plan.Run(inputs)
			if err != nil {
				t.Fatal(err)
			}
			want := outs[n.g.Outputs[0].Name]
			p, err := CompileGrad(n.g, LossSpec{Kind: LossSumSquares}, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Run(inputs, want)
			if err != nil {
				t.Fatal(err)
			}
			if maxAbs, maxRel, ok := Compare(res.Output, want, 1e-9, 1e-9); !ok {
				t.Errorf("gorgonia output differs from the runtime's: max abs %g, max rel %g", maxAbs, maxRel)
			}
			if res.Loss > 1e-15 {
				t.Errorf("loss against the runtime's output is %g, want 0", res.Loss)
			}
		})
	}
}

// gradSmallCNN builds a float64 classifier exercising most operators:
// Conv, BatchNormalization, Relu, MaxPool, Conv, GlobalAveragePool,
// Flatten and Gemm, from x [N, 1, 6, 6] to logits [N, 3].
func gradSmallCNN(t *testing.T) *gradNet {
	n := newGradNet(t, 13, 42)
	x := n.input("x", 5, 1, 6, 6)
	x.SetTensorType(n.dt, append(graph.Shape{{Param: "N"}}, graph.Known(1, 6, 6)...))
	h := n.op("Conv", []*graph.Value{x, n.param("w1", 4, 1, 3, 3), n.param("b1", 4)}, gradIntList("pads", 1, 1, 1, 1))
	h = n.op("BatchNormalization", []*graph.Value{h, n.param("scale", 4), n.param("bias", 4), n.param("mean", 4), n.positive("var", 4)})
	h = n.op("Relu", []*graph.Value{h})
	h = n.op("MaxPool", []*graph.Value{h}, gradIntList("kernel_shape", 2, 2), gradIntList("strides", 2, 2))
	h = n.op("Conv", []*graph.Value{h, n.param("w2", 6, 4, 3, 3), n.param("b2", 6)}, gradIntList("pads", 1, 1, 1, 1))
	h = n.op("GlobalAveragePool", []*graph.Value{h})
	h = n.op("Flatten", []*graph.Value{h})
	y := n.op("Gemm", []*graph.Value{h, n.param("w3", 3, 6), n.param("b3", 3)}, gradInt("transB", 1))
	n.g.Outputs = append(n.g.Outputs, y)
	return n
}

// gradCrossEntropy computes −Σ_i log softmax(z_i)[labels_i] directly.
func gradCrossEntropy(z *Tensor, labels []int64) float64 {
	d := gradFloats(z)
	c := z.Shape[1]
	loss := 0.0
	for i, y := range labels {
		row := d[i*c : (i+1)*c]
		m := slices.Max(row)
		sum := 0.0
		for _, v := range row {
			sum += math.Exp(v - m)
		}
		loss -= row[y] - m - math.Log(sum)
	}
	return loss
}

func gradArgmax(z *Tensor) []int64 {
	d := gradFloats(z)
	c := z.Shape[1]
	labels := make([]int64, z.Shape[0])
	for i := range labels {
		row := d[i*c : (i+1)*c]
		labels[i] = int64(slices.Index(row, slices.Max(row)))
	}
	return labels
}

// TestGradLosses checks the three losses on gradSmallCNN: their values
// against a direct computation from the returned logits (relative 1e-12),
// their gradients against finite differences, and that the self
// cross-entropy equals the cross-entropy with the argmax labels.
func TestGradLosses(t *testing.T) {
	n := gradSmallCNN(t)
	rng := rand.New(rand.NewPCG(3, 3))
	x := gradRandomTensor(rng, onnx.TensorProto_DOUBLE, 5, 1, 6, 6)
	inputs := map[string]*Tensor{"x": x}
	labels := &Tensor{DType: onnx.TensorProto_INT64, Shape: []int{5}, Data: []int64{2, 0, 1, 1, 0}}
	targets := gradRandomTensor(rng, onnx.TensorProto_DOUBLE, 5, 3)
	results := map[Loss]*GradResult{}
	for _, c := range []struct {
		loss    Loss
		targets *Tensor
	}{{LossSelfCrossEntropy, nil}, {LossCrossEntropy, labels}, {LossSumSquares, targets}} {
		t.Run(c.loss.String(), func(t *testing.T) {
			p, err := CompileGrad(n.g, LossSpec{Kind: c.loss}, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Run(inputs, c.targets)
			if err != nil {
				t.Fatal(err)
			}
			results[c.loss] = res
			var want float64
			switch c.loss {
			case LossSelfCrossEntropy:
				want = gradCrossEntropy(res.Output, gradArgmax(res.Output))
			case LossCrossEntropy:
				want = gradCrossEntropy(res.Output, labels.Data.([]int64))
			case LossSumSquares:
				z, y := gradFloats(res.Output), gradFloats(targets)
				for i := range z {
					want += (z[i] - y[i]) * (z[i] - y[i]) / 2
				}
			}
			if math.Abs(res.Loss-want) > 1e-12*math.Abs(want) {
				t.Errorf("loss %.15g, computed from the logits %.15g", res.Loss, want)
			}
			gradCheckFD(t, gradPlanLoss(t, p, inputs, c.targets), p.values, res, 8, rng)
		})
	}
	self := results[LossSelfCrossEntropy]
	if self == nil {
		return
	}
	p, err := CompileGrad(n.g, LossSpec{Kind: LossCrossEntropy}, nil)
	if err != nil {
		t.Fatal(err)
	}
	argmax := gradArgmax(self.Output)
	res, err := p.Run(inputs, &Tensor{DType: onnx.TensorProto_INT64, Shape: []int{5}, Data: argmax})
	if err != nil {
		t.Fatal(err)
	}
	for name, g := range self.Grads {
		gradCompareScaled(t, name+" (self vs argmax labels)", res.Grads[name], g, 1e-12)
	}
}

// TestGradUnsupportedOp checks that an operator without gradient support
// on the way to the loss fails CompileGrad with an error naming the node
// and op, and that one off that way does not matter.
func TestGradUnsupportedOp(t *testing.T) {
	n := newGradNet(t, 13, 1)
	x := n.input("x", 2, 3)
	out := n.g.NewValue("y")
	if _, err := n.g.NewNode("Erf", "the_erf", []*graph.Value{n.op("Add", []*graph.Value{x, n.param("p", 2, 3)})}, []*graph.Value{out}); err != nil {
		t.Fatal(err)
	}
	n.g.Outputs = append(n.g.Outputs, out)
	_, err := CompileGrad(n.g, LossSpec{Kind: LossSumSquares}, nil)
	var unsupported *UnsupportedError
	if !errors.As(err, &unsupported) || !strings.Contains(err.Error(), `"the_erf"`) || !strings.Contains(err.Error(), "Erf") {
		t.Fatalf("got error %v, want one naming node \"the_erf\" and op Erf", err)
	}

	// With a second output the loss reads, the Erf output is not needed.
	second := n.op("Tanh", []*graph.Value{x})
	n.g.Outputs = append(n.g.Outputs, second)
	p, err := CompileGrad(n.g, LossSpec{Kind: LossSumSquares, Output: second.Name}, []string{"p"})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	res, err := p.Run(map[string]*Tensor{"x": gradRandomTensor(rng, onnx.TensorProto_DOUBLE, 2, 3)}, gradRandomTensor(rng, onnx.TensorProto_DOUBLE, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	// p feeds only the Erf branch: its gradient is zero.
	for i, g := range gradFloats(res.Grads["p"]) {
		if g != 0 {
			t.Fatalf("gradient of a parameter the loss does not read: [%d] = %g, want 0", i, g)
		}
	}
}

// TestGradRunState checks what must not carry over between runs: the
// caller's inputs and the initializers are not written; a run on other
// data, or with another batch size, does not change a later run on the
// first data (bitwise); SetValue changes the result and restoring the
// value restores it exactly; and the gradients of two half batches add up
// to the gradient of the whole batch (relative 1e-12).
func TestGradRunState(t *testing.T) {
	n := gradSmallCNN(t)
	rng := rand.New(rand.NewPCG(5, 5))
	x := gradRandomTensor(rng, onnx.TensorProto_DOUBLE, 5, 1, 6, 6)
	x2 := gradRandomTensor(rng, onnx.TensorProto_DOUBLE, 5, 1, 6, 6)
	small := gradRandomTensor(rng, onnx.TensorProto_DOUBLE, 2, 1, 6, 6)
	xCopy := x.Clone()
	p, err := CompileGrad(n.g, LossSpec{Kind: LossSelfCrossEntropy}, nil)
	if err != nil {
		t.Fatal(err)
	}
	run := func(x *Tensor) *GradResult {
		t.Helper()
		res, err := p.Run(map[string]*Tensor{"x": x}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := run(x)
	other := run(x2)
	run(small)
	again := run(x)
	if _, _, same := Compare(x, xCopy, 0, 0); !same {
		t.Errorf("Run wrote to the caller's input")
	}
	for _, v := range n.g.Initializers {
		want, err := TensorFromProto(v.Init)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, same := Compare(p.values[v.Name], want, 0, 0); !same {
			t.Errorf("initializer %q changed", v.Name)
		}
	}
	if again.Loss != first.Loss || !gradEqual(again.Grads, first.Grads) {
		t.Errorf("runs on other data changed a later run's result")
	}
	if other.Loss == first.Loss || gradEqual(other.Grads, first.Grads) {
		t.Errorf("runs on different data give the same result")
	}

	w := p.values["w3"].Clone()
	scaled := gradCast(w, onnx.TensorProto_DOUBLE)
	for i := range scaled.Data.([]float64) {
		scaled.Data.([]float64)[i] *= 2
	}
	if err := p.SetValue("w3", scaled); err != nil {
		t.Fatal(err)
	}
	if changed := run(x); changed.Loss == first.Loss {
		t.Errorf("SetValue did not change the loss")
	}
	if err := p.SetValue("w3", w); err != nil {
		t.Fatal(err)
	}
	if restored := run(x); restored.Loss != first.Loss || !gradEqual(restored.Grads, first.Grads) {
		t.Errorf("restoring a value with SetValue does not restore the result")
	}

	// Labels are per sample, so the self cross-entropy of a split batch
	// is the sum of its halves.
	d := x.Data.([]float64)
	half := 2 * 36
	a := &Tensor{DType: x.DType, Shape: []int{2, 1, 6, 6}, Data: d[:half]}
	b := &Tensor{DType: x.DType, Shape: []int{3, 1, 6, 6}, Data: d[half:]}
	ra, rb := run(a), run(b)
	if math.Abs(ra.Loss+rb.Loss-first.Loss) > 1e-12*math.Abs(first.Loss) {
		t.Errorf("losses of the halves %g + %g, whole batch %g", ra.Loss, rb.Loss, first.Loss)
	}
	for name, g := range first.Grads {
		sum := gradFloats(ra.Grads[name])
		for i, v := range gradFloats(rb.Grads[name]) {
			sum[i] += v
		}
		gradCompareScaled(t, name+" (sum of halves)", &Tensor{DType: onnx.TensorProto_DOUBLE, Shape: g.Shape, Data: sum}, g, 1e-12)
	}
}

// TestGradErrors checks that bad arguments give errors, not panics or
// wrong results.
func TestGradErrors(t *testing.T) {
	n := gradSmallCNN(t)
	n.int64s("ints", 1, 2)
	rng := rand.New(rand.NewPCG(9, 9))
	x := gradRandomTensor(rng, onnx.TensorProto_DOUBLE, 5, 1, 6, 6)
	for _, c := range []struct {
		name   string
		loss   LossSpec
		params []string
	}{
		{"unknown loss", LossSpec{Kind: 99}, nil},
		{"unknown output", LossSpec{Kind: LossSelfCrossEntropy, Output: "nope"}, nil},
		{"param not an initializer", LossSpec{Kind: LossSelfCrossEntropy}, []string{"x"}},
		{"integer param", LossSpec{Kind: LossSelfCrossEntropy}, []string{"ints"}},
		{"repeated param", LossSpec{Kind: LossSelfCrossEntropy}, []string{"w1", "w1"}},
	} {
		if _, err := CompileGrad(n.g, c.loss, c.params); err == nil {
			t.Errorf("%s: CompileGrad succeeded", c.name)
		}
	}

	self, err := CompileGrad(n.g, LossSpec{Kind: LossSelfCrossEntropy}, []string{"w1"})
	if err != nil {
		t.Fatal(err)
	}
	labelled, err := CompileGrad(n.g, LossSpec{Kind: LossCrossEntropy}, nil)
	if err != nil {
		t.Fatal(err)
	}
	squares, err := CompileGrad(n.g, LossSpec{Kind: LossSumSquares}, nil)
	if err != nil {
		t.Fatal(err)
	}
	labels := func(v ...int64) *Tensor { return &Tensor{DType: onnx.TensorProto_INT64, Shape: []int{len(v)}, Data: v} }
	for _, c := range []struct {
		name    string
		p       *GradPlan
		inputs  map[string]*Tensor
		targets *Tensor
	}{
		{"missing input", self, map[string]*Tensor{}, nil},
		{"unknown input", self, map[string]*Tensor{"x": x, "z": x}, nil},
		{"float input for a double model", self, map[string]*Tensor{"x": gradCast(x, onnx.TensorProto_FLOAT)}, nil},
		{"wrong input shape", self, map[string]*Tensor{"x": gradRandomTensor(rng, onnx.TensorProto_DOUBLE, 5, 1, 6, 7)}, nil},
		{"targets for the self cross-entropy", self, map[string]*Tensor{"x": x}, labels(0, 0, 0, 0, 0)},
		{"no labels", labelled, map[string]*Tensor{"x": x}, nil},
		{"too few labels", labelled, map[string]*Tensor{"x": x}, labels(0, 1)},
		{"label out of range", labelled, map[string]*Tensor{"x": x}, labels(0, 1, 2, 3, 0)},
		{"negative label", labelled, map[string]*Tensor{"x": x}, labels(0, 1, 2, -1, 0)},
		{"no targets", squares, map[string]*Tensor{"x": x}, nil},
		{"targets of the wrong shape", squares, map[string]*Tensor{"x": x}, gradRandomTensor(rng, onnx.TensorProto_DOUBLE, 3, 5)},
		{"targets of the wrong dtype", squares, map[string]*Tensor{"x": x}, gradRandomTensor(rng, onnx.TensorProto_FLOAT, 5, 3)},
	} {
		if _, err := c.p.Run(c.inputs, c.targets); err == nil {
			t.Errorf("%s: Run succeeded", c.name)
		}
	}
	if err := self.SetValue("w1", gradRandomTensor(rng, onnx.TensorProto_DOUBLE, 4, 1, 3, 2)); err == nil {
		t.Errorf("SetValue with the wrong shape succeeded")
	}
	if err := self.SetValue("w1", gradRandomTensor(rng, onnx.TensorProto_FLOAT, 4, 1, 3, 3)); err == nil {
		t.Errorf("SetValue with the wrong dtype succeeded")
	}
	if err := self.SetValue("w1", &Tensor{DType: onnx.TensorProto_DOUBLE, Shape: []int{4, 1, 3, 3}, Data: make([]float32, 36)}); err == nil {
		t.Errorf("SetValue with data of the wrong type succeeded")
	}
	if err := self.SetValue("nope", x); err == nil {
		t.Errorf("SetValue of an unknown initializer succeeded")
	}
	// The plans still work after the failed calls.
	if _, err := self.Run(map[string]*Tensor{"x": x}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := labelled.Run(map[string]*Tensor{"x": x}, labels(0, 1, 2, 2, 0)); err != nil {
		t.Fatal(err)
	}
}

// gradDigitsF32RTol bounds the difference between the float32 gradients
// of a digits model and the float64 gradients of the same model converted
// to double, relative to each parameter's largest float64 gradient: the
// float32 forward pass sums up to 288 products per output and the
// gradients sum over 256 samples.
const gradDigitsF32RTol = 1e-3

// gradTorchATol is the absolute tolerance of the float32 logits against
// torch's: they are O(10), so 1e-4 allows summation-order differences
// and nothing more (the runtime's model test uses the same bound).
const gradTorchATol = 1e-4

// gradRuntimeSelfCE evaluates the self cross-entropy with the runtime's
// own kernels (runtime.Compile/Run), an implementation independent of
// gorgonia: the initializer is replaced in the graph and the plan
// compiled again.
func gradRuntimeSelfCE(t *testing.T, g *graph.Graph, inputs map[string]*Tensor) gradLossAt {
	return func(name string, value *Tensor) float64 {
		t.Helper()
		tp, err := TensorToProto(name, value)
		if err != nil {
			t.Fatal(err)
		}
		g.Lookup(name).SetInit(tp)
		plan, err := Compile(g)
		if err != nil {
			t.Fatal(err)
		}
		outs, err := plan.Run(inputs)
		if err != nil {
			t.Fatal(err)
		}
		z := outs[g.Outputs[0].Name]
		return gradCrossEntropy(z, gradArgmax(z))
	}
}

// TestGradDigits computes the self cross-entropy gradients of the digits
// MLP and CNN over the 256 calibration samples: a second run gives
// bitwise-identical gradients; the plan's logits on test_data_set_0 match
// torch's (atol gradTorchATol); the float32 gradients match those of the
// model converted to float64 (gradDigitsF32RTol); and three random
// weights of every parameter of the float64 model pass the
// finite-difference check, the differences taken with the runtime's own
// forward kernels.
func TestGradDigits(t *testing.T) {
	for _, name := range []string{"digits_mlp", "digits_cnn"} {
		t.Run(name, func(t *testing.T) {
			model, x := gradDigits(t, name)
			g := model.Graph
			input := g.Inputs[0].Name
			p, err := CompileGrad(g, LossSpec{Kind: LossSelfCrossEntropy}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Params()) != len(g.Initializers) {
				t.Errorf("parameters %v, want all %d initializers", p.Params(), len(g.Initializers))
			}
			first, err := p.Run(map[string]*Tensor{input: x}, nil)
			if err != nil {
				t.Fatal(err)
			}
			second, err := p.Run(map[string]*Tensor{input: x}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if second.Loss != first.Loss || !gradEqual(second.Grads, first.Grads) {
				t.Errorf("a second run gives different gradients")
			}
			t.Logf("self cross-entropy over %d samples: %g", x.Shape[0], first.Loss)

			dir := filepath.Join(suite.SharedModels(t), name, "test_data_set_0")
			test, err := ReadTensorFile(filepath.Join(dir, "input_0.pb"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := ReadTensorFile(filepath.Join(dir, "output_0.pb"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Run(map[string]*Tensor{input: test}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if maxAbs, _, ok := Compare(res.Output, want, 0, gradTorchATol); !ok {
				t.Errorf("logits on test_data_set_0 differ from torch's by %g > %g", maxAbs, gradTorchATol)
			}

			gradToFloat64(t, g)
			p64, err := CompileGrad(g, LossSpec{Kind: LossSelfCrossEntropy}, nil)
			if err != nil {
				t.Fatal(err)
			}
			inputs := map[string]*Tensor{input: gradCast(x, onnx.TensorProto_DOUBLE)}
			r64, err := p64.Run(inputs, nil)
			if err != nil {
				t.Fatal(err)
			}
			for name, g64 := range r64.Grads {
				gradCompareScaled(t, name+" (float32 vs float64)", first.Grads[name], g64, gradDigitsF32RTol)
			}
			gradCheckFD(t, gradRuntimeSelfCE(t, g, inputs), p64.values, r64, 3, rand.New(rand.NewPCG(11, 11)))
		})
	}
}
