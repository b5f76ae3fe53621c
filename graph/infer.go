package graph

import (
	"fmt"
	"slices"

	"onnxopt/onnx"
)

// InferShapes fills in the element type and shape of values whose types the
// model does not declare, for the operators of exported CNNs, MLPs, RNNs and
// transformers. What it cannot tell stays unknown: an inferred type is never
// a guess. Small integer tensors (shapes, axes, indices) are propagated as
// constants, so that PyTorch's Shape→Gather→Concat→Reshape chains resolve.
//
// Declared types are kept. Where an inferred shape contradicts a declared or
// earlier-inferred one, InferShapes returns an error naming the node.
// Subgraphs are not entered.
func (g *Graph) InferShapes() error {
	types, err := g.Infer()
	if err != nil {
		return err
	}
	for v, t := range types {
		v.Type = t
	}
	return nil
}

// Infer computes what InferShapes would set, without changing the graph:
// the type it infers for each value whose type it can tell.
func (g *Graph) Infer() (map[*Value]*onnx.TypeProto, error) {
	order, err := g.topoOrder()
	if err != nil {
		return nil, err
	}
	in := &inferrer{consts: map[*Value][]int64{}, types: map[*Value]*onnx.TypeProto{}}
	for _, n := range order {
		if err := in.node(n); err != nil {
			return nil, fmt.Errorf("node %s opset %d: %w", n, n.Opset(), err)
		}
	}
	return in.types, nil
}

// An inferrer carries the types inferred and the constant integer values
// known so far.
type inferrer struct {
	consts map[*Value][]int64
	types  map[*Value]*onnx.TypeProto
}

// maxConstElems bounds the integer tensors propagated as constants.
const maxConstElems = 64

// maxRank bounds the rank inference will build from a shape tensor's
// length; a longer shape is left unknown rather than allocated.
const maxRank = 64

// typeInfo is what inference knows of a value: its element type (0 when
// unknown) and shape (ok false when the rank is unknown).
type typeInfo struct {
	elem  onnx.TensorProto_DataType
	shape Shape
	ok    bool
}

func (in *inferrer) info(v *Value) typeInfo {
	if v == nil {
		return typeInfo{}
	}
	if t, ok := in.types[v]; ok {
		// A value read through its inferred type, without touching it.
		v = &Value{Type: t}
	}
	s, ok := v.Shape()
	return typeInfo{elem: v.ElemType(), shape: s, ok: ok}
}

// constant returns v's value when it is a small known integer tensor.
func (in *inferrer) constant(v *Value) ([]int64, bool) {
	if v == nil {
		return nil, false
	}
	if c, ok := in.consts[v]; ok {
		return c, true
	}
	if v.Init != nil && v.IsConstant() {
		if c, ok := int64Values(v.Init); ok {
			in.consts[v] = c
			return c, true
		}
	}
	return nil, false
}

// set records an output's inferred type, merging it with what the value
// already declares.
func (in *inferrer) set(v *Value, elem onnx.TensorProto_DataType, shape Shape, rankKnown bool) error {
	if v == nil {
		return nil
	}
	old := in.info(v)
	if old.elem != onnx.TensorProto_UNDEFINED && elem != onnx.TensorProto_UNDEFINED && old.elem != elem {
		return fmt.Errorf("output %q: inferred type %s, declared %s", v.Name, elem, old.elem)
	}
	if elem == onnx.TensorProto_UNDEFINED {
		elem = old.elem
	}
	switch {
	case old.ok && rankKnown:
		if len(old.shape) != len(shape) {
			return fmt.Errorf("output %q: inferred shape %v, declared %v", v.Name, shape, old.shape)
		}
		merged := slices.Clone(old.shape)
		for i, d := range shape {
			switch {
			case d.Known && merged[i].Known && d.Value != merged[i].Value:
				return fmt.Errorf("output %q: inferred shape %v, declared %v", v.Name, shape, old.shape)
			case d.Known && !merged[i].Known:
				merged[i] = d
			}
		}
		shape = merged
	case old.ok:
		shape, rankKnown = old.shape, true
	}
	if elem == onnx.TensorProto_UNDEFINED && !rankKnown {
		return nil
	}
	if v.Init != nil {
		return nil
	}
	if rankKnown {
		in.types[v] = TensorType(elem, shape)
	} else {
		in.types[v] = TensorType(elem, nil)
	}
	return nil
}

func (in *inferrer) same(n *Node, from int) error {
	x := in.info(n.Input(from))
	return in.set(out0(n), x.elem, x.shape, x.ok)
}

func out0(n *Node) *Value {
	if len(n.Outputs) == 0 {
		return nil
	}
	return n.Outputs[0]
}

func (in *inferrer) node(n *Node) error {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return nil
	}
	switch n.OpType {
	case "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs", "Erf", "Gelu", "LeakyRelu",
		"Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Clip", "Identity",
		"Softmax", "LogSoftmax", "Hardmax", "Floor", "Ceil", "Reciprocal", "Round", "Sign", "Sin", "Cos",
		"Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Mish", "Not", "LRN", "InstanceNormalization",
		"MeanVarianceNormalization", "LpNormalization", "CumSum", "Shrink", "ThresholdedRelu", "Trilu":
		if err := in.same(n, 0); err != nil {
			return err
		}
		if n.OpType == "Identity" {
			if c, ok := in.constant(n.Input(0)); ok {
				in.consts[out0(n)] = c
			}
		}
		return nil
	case "Dropout", "BatchNormalization", "LayerNormalization", "GroupNormalization":
		// Only the first output is certain; the optional others depend on
		// mode and opset.
		return in.same(n, 0)
	case "Cast":
		x := in.info(n.Input(0))
		to := onnx.TensorProto_DataType(n.AttrInt("to", 0))
		if err := in.set(out0(n), to, x.shape, x.ok); err != nil {
			return err
		}
		if c, ok := in.constant(n.Input(0)); ok && (to == onnx.TensorProto_INT64 || to == onnx.TensorProto_INT32) {
			in.consts[out0(n)] = c
		}
		return nil
	case "CastLike":
		x, t := in.info(n.Input(0)), in.info(n.Input(1))
		return in.set(out0(n), t.elem, x.shape, x.ok)
	case "PRelu":
		// The slope broadcasts to X, unidirectionally.
		return in.same(n, 0)
	case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Mod", "BitShift":
		elem := in.info(n.Input(0)).elem
		if n.Opset() < 7 && len(n.Inputs) == 2 {
			// Before opset 7, B broadcast to A's shape (attribute
			// broadcast and axis).
			return in.same(n, 0)
		}
		if err := in.broadcast(n, elem); err != nil {
			return err
		}
		return in.foldArith(n)
	case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor":
		return in.broadcast(n, onnx.TensorProto_BOOL)
	case "Where":
		return in.broadcastFrom(n, 0, in.info(n.Input(1)).elem)
	case "MatMul":
		return in.matmul(n)
	case "Gemm":
		return in.gemm(n)
	case "Conv", "MaxPool", "AveragePool", "LpPool":
		return in.window(n)
	case "ConvTranspose":
		return in.convTranspose(n)
	case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool":
		x := in.info(n.Input(0))
		if !x.ok || len(x.shape) < 2 {
			return in.set(out0(n), x.elem, nil, false)
		}
		s := slices.Clone(x.shape[:2])
		for range x.shape[2:] {
			s = append(s, Dim{Value: 1, Known: true})
		}
		return in.set(out0(n), x.elem, s, true)
	case "Flatten":
		return in.flatten(n)
	case "Reshape":
		return in.reshape(n)
	case "Transpose":
		return in.transpose(n)
	case "Squeeze", "Unsqueeze":
		return in.squeeze(n)
	case "Concat":
		return in.concat(n)
	case "Gather":
		return in.gather(n)
	case "Shape":
		return in.shapeOp(n)
	case "Size":
		x := in.info(n.Input(0))
		if err := in.set(out0(n), onnx.TensorProto_INT64, Shape{}, true); err != nil {
			return err
		}
		if s, ok := x.shape.Static(); ok && x.ok {
			in.consts[out0(n)] = []int64{product(s)}
		}
		return nil
	case "Constant":
		return in.constantOp(n)
	case "ConstantOfShape":
		elem := onnx.TensorProto_FLOAT
		if t := n.AttrTensor("value"); t != nil {
			elem = onnx.TensorProto_DataType(t.GetDataType())
		}
		if c, ok := in.constant(n.Input(0)); ok {
			return in.set(out0(n), elem, Known(c...), true)
		}
		if s := in.info(n.Input(0)); s.ok && len(s.shape) == 1 && s.shape[0].Known && s.shape[0].Value <= maxRank {
			return in.set(out0(n), elem, make(Shape, s.shape[0].Value), true)
		}
		return in.set(out0(n), elem, nil, false)
	case "Slice":
		return in.slice(n)
	case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
		"ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin":
		return in.reduce(n)
	case "QuantizeLinear":
		x := in.info(n.Input(0))
		elem := onnx.TensorProto_UINT8
		if zp := n.Input(2); zp != nil {
			elem = in.info(zp).elem
		}
		return in.set(out0(n), elem, x.shape, x.ok)
	case "DequantizeLinear":
		x := in.info(n.Input(0))
		elem := onnx.TensorProto_FLOAT
		if s := in.info(n.Input(1)); s.elem != onnx.TensorProto_UNDEFINED {
			elem = s.elem
		}
		return in.set(out0(n), elem, x.shape, x.ok)
	case "Expand":
		return in.expand(n)
	case "LSTM", "GRU", "RNN":
		return in.recurrent(n)
	}
	return nil
}

// broadcast infers a multidirectionally broadcast output from all inputs.
func (in *inferrer) broadcast(n *Node, elem onnx.TensorProto_DataType) error {
	return in.broadcastFrom(n, 0, elem)
}

func (in *inferrer) broadcastFrom(n *Node, from int, elem onnx.TensorProto_DataType) error {
	var shapes []Shape
	for _, v := range n.Inputs[from:] {
		x := in.info(v)
		if v == nil || !x.ok {
			return in.set(out0(n), elem, nil, false)
		}
		shapes = append(shapes, x.shape)
	}
	s, err := broadcastShapes(shapes...)
	if err != nil {
		return err
	}
	return in.set(out0(n), elem, s, true)
}

// broadcastShapes applies numpy broadcasting; dims it cannot decide are
// unknown.
func broadcastShapes(shapes ...Shape) (Shape, error) {
	rank := 0
	for _, s := range shapes {
		rank = max(rank, len(s))
	}
	out := make(Shape, rank)
	for i := range out {
		var d Dim
		decided := true
		first := true
		for _, s := range shapes {
			k := i - (rank - len(s))
			if k < 0 {
				continue
			}
			e := s[k]
			switch {
			case e.Known && e.Value == 1:
				if first {
					d = e
				}
			case e.Known:
				if d.Known && d.Value != 1 && d.Value != e.Value {
					return nil, fmt.Errorf("cannot broadcast shapes %v", shapes)
				}
				d = e
			default:
				// An unknown dim could be 1 or anything else.
				if !(d.Known && d.Value != 1) {
					decided = false
				}
			}
			first = false
		}
		if !decided && !(d.Known && d.Value != 1) {
			d = Dim{}
		}
		out[i] = d
	}
	return out, nil
}

func (in *inferrer) matmul(n *Node) error {
	a, b := in.info(n.Input(0)), in.info(n.Input(1))
	if !a.ok || !b.ok || len(a.shape) == 0 || len(b.shape) == 0 {
		return in.set(out0(n), a.elem, nil, false)
	}
	as, bs := a.shape, b.shape
	if len(as) == 1 {
		as = append(Shape{{Value: 1, Known: true}}, as...)
	}
	if len(bs) == 1 {
		bs = append(slices.Clone(bs), Dim{Value: 1, Known: true})
	}
	k1, k2 := as[len(as)-1], bs[len(bs)-2]
	if k1.Known && k2.Known && k1.Value != k2.Value {
		return fmt.Errorf("MatMul inner dimensions differ: %v and %v", a.shape, b.shape)
	}
	batch, err := broadcastShapes(as[:len(as)-2], bs[:len(bs)-2])
	if err != nil {
		return err
	}
	out := slices.Clone(batch)
	if len(a.shape) > 1 {
		out = append(out, as[len(as)-2])
	}
	if len(b.shape) > 1 {
		out = append(out, bs[len(bs)-1])
	}
	return in.set(out0(n), a.elem, out, true)
}

func (in *inferrer) gemm(n *Node) error {
	a, b := in.info(n.Input(0)), in.info(n.Input(1))
	if !a.ok || !b.ok || len(a.shape) != 2 || len(b.shape) != 2 {
		return in.set(out0(n), a.elem, nil, false)
	}
	m, k1 := a.shape[0], a.shape[1]
	if n.AttrInt("transA", 0) != 0 {
		m, k1 = k1, m
	}
	k2, nn := b.shape[0], b.shape[1]
	if n.AttrInt("transB", 0) != 0 {
		k2, nn = nn, k2
	}
	if k1.Known && k2.Known && k1.Value != k2.Value {
		return fmt.Errorf("Gemm inner dimensions differ: A %v, B %v", a.shape, b.shape)
	}
	return in.set(out0(n), a.elem, Shape{m, nn}, true)
}

// window infers Conv and pooling outputs: N, channels, then one spatial
// dim per kernel dim.
func (in *inferrer) window(n *Node) error {
	x := in.info(n.Input(0))
	if !x.ok || len(x.shape) < 3 {
		return in.set(out0(n), x.elem, nil, false)
	}
	spatial := len(x.shape) - 2
	kernel := n.AttrInts("kernel_shape", nil)
	channels := x.shape[1]
	if n.OpType == "Conv" {
		w := in.info(n.Input(1))
		if !w.ok || len(w.shape) != len(x.shape) {
			return in.set(out0(n), x.elem, nil, false)
		}
		channels = w.shape[0]
		if kernel == nil {
			for _, d := range w.shape[2:] {
				if !d.Known {
					return in.set(out0(n), x.elem, nil, false)
				}
				kernel = append(kernel, d.Value)
			}
		}
		group := n.AttrInt("group", 1)
		if x.shape[1].Known && w.shape[1].Known && x.shape[1].Value != w.shape[1].Value*group {
			return fmt.Errorf("Conv input has %d channels, weight expects %d×%d groups", x.shape[1].Value, w.shape[1].Value, group)
		}
	}
	if len(kernel) != spatial {
		return in.set(out0(n), x.elem, nil, false)
	}
	strides := n.AttrInts("strides", nil)
	dilations := n.AttrInts("dilations", nil)
	pads := n.AttrInts("pads", nil)
	autoPad := n.AttrString("auto_pad", "NOTSET")
	ceil := n.AttrInt("ceil_mode", 0) != 0
	out := Shape{x.shape[0], channels}
	for i := 0; i < spatial; i++ {
		d := x.shape[2+i]
		if !d.Known {
			out = append(out, Dim{})
			continue
		}
		stride, dil := at(strides, i, 1), at(dilations, i, 1)
		eff := dil*(kernel[i]-1) + 1
		var size int64
		switch autoPad {
		case "SAME_UPPER", "SAME_LOWER":
			size = (d.Value + stride - 1) / stride
		case "VALID":
			size = (d.Value-eff)/stride + 1
			if ceil {
				size = (d.Value-eff+stride-1)/stride + 1
			}
		default:
			total := d.Value + at(pads, i, 0) + at(pads, i+spatial, 0) - eff
			if ceil {
				size = (total+stride-1)/stride + 1
				// The last window must start inside the input or left pad.
				if (size-1)*stride >= d.Value+at(pads, i, 0) {
					size--
				}
			} else {
				size = total/stride + 1
			}
		}
		if size < 1 {
			return fmt.Errorf("%s window %d does not fit input dimension %d", n.OpType, eff, d.Value)
		}
		out = append(out, Dim{Value: size, Known: true})
	}
	if err := in.set(out0(n), x.elem, out, true); err != nil {
		return err
	}
	if n.OpType == "MaxPool" && len(n.Outputs) > 1 {
		return in.set(n.Outputs[1], onnx.TensorProto_INT64, out, true)
	}
	return nil
}

func (in *inferrer) convTranspose(n *Node) error {
	x, w := in.info(n.Input(0)), in.info(n.Input(1))
	if !x.ok || !w.ok || len(x.shape) < 3 || len(w.shape) != len(x.shape) || n.Attr("output_shape") != nil || n.Attr("auto_pad") != nil {
		return in.set(out0(n), x.elem, nil, false)
	}
	spatial := len(x.shape) - 2
	group := n.AttrInt("group", 1)
	var channels Dim
	if w.shape[1].Known {
		channels = Dim{Value: w.shape[1].Value * group, Known: true}
	}
	out := Shape{x.shape[0], channels}
	strides, dilations, pads := n.AttrInts("strides", nil), n.AttrInts("dilations", nil), n.AttrInts("pads", nil)
	outPad := n.AttrInts("output_padding", nil)
	for i := 0; i < spatial; i++ {
		d, k := x.shape[2+i], w.shape[2+i]
		if !d.Known || !k.Known {
			out = append(out, Dim{})
			continue
		}
		size := at(strides, i, 1)*(d.Value-1) + at(outPad, i, 0) + (k.Value-1)*at(dilations, i, 1) + 1 - at(pads, i, 0) - at(pads, i+spatial, 0)
		out = append(out, Dim{Value: size, Known: true})
	}
	return in.set(out0(n), x.elem, out, true)
}

func at(xs []int64, i int, def int64) int64 {
	if i < len(xs) {
		return xs[i]
	}
	return def
}

func (in *inferrer) flatten(n *Node) error {
	x := in.info(n.Input(0))
	if !x.ok {
		return in.set(out0(n), x.elem, nil, false)
	}
	axis := n.AttrInt("axis", 1)
	if axis < 0 {
		axis += int64(len(x.shape))
	}
	if axis < 0 || axis > int64(len(x.shape)) {
		return fmt.Errorf("Flatten axis %d out of range for rank %d", n.AttrInt("axis", 1), len(x.shape))
	}
	return in.set(out0(n), x.elem, Shape{dimProduct(x.shape[:axis]), dimProduct(x.shape[axis:])}, true)
}

func dimProduct(s Shape) Dim {
	p := int64(1)
	for _, d := range s {
		if !d.Known {
			return Dim{}
		}
		p *= d.Value
	}
	return Dim{Value: p, Known: true}
}

func product(s []int64) int64 {
	p := int64(1)
	for _, d := range s {
		p *= d
	}
	return p
}

func (in *inferrer) reshape(n *Node) error {
	x := in.info(n.Input(0))
	target, ok := in.constant(n.Input(1))
	if n.Opset() < 5 {
		target, ok = n.AttrInts("shape", nil), n.Attr("shape") != nil
	}
	if !ok {
		if s := in.info(n.Input(1)); s.ok && len(s.shape) == 1 && s.shape[0].Known && s.shape[0].Value <= maxRank {
			return in.set(out0(n), x.elem, make(Shape, s.shape[0].Value), true)
		}
		return in.set(out0(n), x.elem, nil, false)
	}
	allowZero := n.AttrInt("allowzero", 0) != 0
	out := make(Shape, len(target))
	infer := -1
	for i, t := range target {
		switch {
		case t == -1:
			if infer >= 0 {
				return fmt.Errorf("Reshape target %v has two -1 dims", target)
			}
			infer = i
		case t == 0 && !allowZero:
			if !x.ok || i >= len(x.shape) {
				if !x.ok {
					continue
				}
				return fmt.Errorf("Reshape target %v copies dim %d of a rank-%d input", target, i, len(x.shape))
			}
			out[i] = x.shape[i]
		case t < 0:
			return fmt.Errorf("Reshape target %v has a negative dim", target)
		default:
			out[i] = Dim{Value: t, Known: true}
		}
	}
	if infer >= 0 && x.ok {
		total := dimProduct(x.shape)
		rest := int64(1)
		known := total.Known
		for i, d := range out {
			if i == infer {
				continue
			}
			if !d.Known {
				known = false
				break
			}
			rest *= d.Value
		}
		if known && rest != 0 {
			if total.Value%rest != 0 {
				return fmt.Errorf("cannot reshape %v to %v", x.shape, target)
			}
			out[infer] = Dim{Value: total.Value / rest, Known: true}
		}
	}
	if x.ok && infer < 0 {
		a, b := dimProduct(x.shape), dimProduct(out)
		if a.Known && b.Known && a.Value != b.Value {
			return fmt.Errorf("cannot reshape %v (%d elements) to %v", x.shape, a.Value, target)
		}
	}
	if err := in.set(out0(n), x.elem, out, true); err != nil {
		return err
	}
	if c, ok := in.constant(n.Input(0)); ok {
		in.consts[out0(n)] = c
	}
	return nil
}

func (in *inferrer) transpose(n *Node) error {
	x := in.info(n.Input(0))
	if !x.ok {
		return in.set(out0(n), x.elem, nil, false)
	}
	perm := n.AttrInts("perm", nil)
	if perm == nil {
		for i := len(x.shape) - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	if len(perm) != len(x.shape) {
		return fmt.Errorf("Transpose perm %v does not match rank %d", perm, len(x.shape))
	}
	out := make(Shape, len(perm))
	for i, p := range perm {
		if p < 0 || p >= int64(len(x.shape)) {
			return fmt.Errorf("Transpose perm %v out of range", perm)
		}
		out[i] = x.shape[p]
	}
	return in.set(out0(n), x.elem, out, true)
}

// axesOf reads the axes of Squeeze, Unsqueeze, ReduceX and friends: an
// attribute in early opsets, an input (index 1) later.
func (in *inferrer) axesOf(n *Node, inputFrom int64) ([]int64, bool, bool) {
	if n.Opset() < inputFrom {
		a := n.Attr("axes")
		return n.AttrInts("axes", nil), a != nil, true
	}
	if n.Input(1) == nil {
		return nil, false, true
	}
	c, ok := in.constant(n.Input(1))
	return c, true, ok
}

func normAxes(axes []int64, rank int) ([]int64, error) {
	out := make([]int64, len(axes))
	for i, a := range axes {
		if a < 0 {
			a += int64(rank)
		}
		if a < 0 || a >= int64(rank) {
			return nil, fmt.Errorf("axis %d out of range for rank %d", axes[i], rank)
		}
		out[i] = a
	}
	return out, nil
}

func (in *inferrer) squeeze(n *Node) error {
	x := in.info(n.Input(0))
	axes, given, known := in.axesOf(n, 13)
	if !x.ok || !known {
		return in.set(out0(n), x.elem, nil, false)
	}
	var out Shape
	if n.OpType == "Unsqueeze" {
		rank := len(x.shape) + len(axes)
		norm, err := normAxes(axes, rank)
		if err != nil {
			return err
		}
		rest := slices.Clone(x.shape)
		for i := 0; i < rank; i++ {
			if slices.Contains(norm, int64(i)) {
				out = append(out, Dim{Value: 1, Known: true})
			} else if len(rest) > 0 {
				out = append(out, rest[0])
				rest = rest[1:]
			}
		}
	} else {
		norm, err := normAxes(axes, len(x.shape))
		if err != nil {
			return err
		}
		for i, d := range x.shape {
			drop := slices.Contains(norm, int64(i))
			if !given {
				if !d.Known {
					return in.set(out0(n), x.elem, nil, false)
				}
				drop = d.Value == 1
			}
			if drop && d.Known && d.Value != 1 {
				return fmt.Errorf("Squeeze axis %d has size %d", i, d.Value)
			}
			if !drop {
				out = append(out, d)
			}
		}
	}
	if err := in.set(out0(n), x.elem, out, true); err != nil {
		return err
	}
	if c, ok := in.constant(n.Input(0)); ok {
		in.consts[out0(n)] = c
	}
	return nil
}

func (in *inferrer) concat(n *Node) error {
	axis := n.AttrInt("axis", 0)
	var out Shape
	elem := onnx.TensorProto_UNDEFINED
	var vals []int64
	allConst := true
	for i, v := range n.Inputs {
		x := in.info(v)
		if elem == onnx.TensorProto_UNDEFINED {
			elem = x.elem
		}
		if !x.ok {
			return in.set(out0(n), elem, nil, false)
		}
		a := axis
		if a < 0 {
			a += int64(len(x.shape))
		}
		if a < 0 || a >= int64(len(x.shape)) {
			return fmt.Errorf("Concat axis %d out of range for rank %d", axis, len(x.shape))
		}
		if i == 0 {
			out = slices.Clone(x.shape)
		} else {
			if len(x.shape) != len(out) {
				return fmt.Errorf("Concat inputs have ranks %d and %d", len(out), len(x.shape))
			}
			for k := range out {
				switch {
				case int64(k) == a:
					if out[k].Known && x.shape[k].Known {
						out[k].Value += x.shape[k].Value
					} else {
						out[k] = Dim{}
					}
				case out[k].Known && x.shape[k].Known && out[k].Value != x.shape[k].Value:
					return fmt.Errorf("Concat inputs differ in dim %d: %v and %v", k, out, x.shape)
				case !out[k].Known:
					out[k] = x.shape[k]
				}
			}
		}
		if c, ok := in.constant(v); ok && allConst {
			vals = append(vals, c...)
		} else {
			allConst = false
		}
	}
	if err := in.set(out0(n), elem, out, true); err != nil {
		return err
	}
	if allConst && len(out) == 1 {
		in.consts[out0(n)] = vals
	}
	return nil
}

func (in *inferrer) gather(n *Node) error {
	x, idx := in.info(n.Input(0)), in.info(n.Input(1))
	if !x.ok || !idx.ok {
		return in.set(out0(n), x.elem, nil, false)
	}
	axis := n.AttrInt("axis", 0)
	if axis < 0 {
		axis += int64(len(x.shape))
	}
	if axis < 0 || axis >= int64(len(x.shape)) {
		return fmt.Errorf("Gather axis %d out of range for rank %d", n.AttrInt("axis", 0), len(x.shape))
	}
	out := slices.Concat(x.shape[:axis], idx.shape, x.shape[axis+1:])
	if err := in.set(out0(n), x.elem, out, true); err != nil {
		return err
	}
	data, ok1 := in.constant(n.Input(0))
	indices, ok2 := in.constant(n.Input(1))
	if ok1 && ok2 && len(x.shape) == 1 {
		vals := make([]int64, len(indices))
		for i, k := range indices {
			if k < 0 {
				k += int64(len(data))
			}
			if k < 0 || k >= int64(len(data)) {
				return fmt.Errorf("Gather index %d out of range for %d elements", indices[i], len(data))
			}
			vals[i] = data[k]
		}
		in.consts[out0(n)] = vals
	}
	return nil
}

func (in *inferrer) shapeOp(n *Node) error {
	x := in.info(n.Input(0))
	if !x.ok {
		return in.set(out0(n), onnx.TensorProto_INT64, Shape{{}}, true)
	}
	rank := int64(len(x.shape))
	start, end := n.AttrInt("start", 0), n.AttrInt("end", rank)
	clampAxis := func(a int64) int64 {
		if a < 0 {
			a += rank
		}
		return min(max(a, 0), rank)
	}
	start, end = clampAxis(start), clampAxis(end)
	end = max(end, start)
	if err := in.set(out0(n), onnx.TensorProto_INT64, Known(end-start), true); err != nil {
		return err
	}
	if s, ok := x.shape[start:end].Static(); ok {
		in.consts[out0(n)] = s
	}
	return nil
}

func (in *inferrer) constantOp(n *Node) error {
	if t := n.AttrTensor("value"); t != nil {
		if err := in.set(out0(n), onnx.TensorProto_DataType(t.GetDataType()), Known(t.GetDims()...), true); err != nil {
			return err
		}
		if c, ok := int64Values(t); ok {
			in.consts[out0(n)] = c
		}
		return nil
	}
	switch {
	case n.Attr("value_int") != nil:
		in.consts[out0(n)] = []int64{n.AttrInt("value_int", 0)}
		return in.set(out0(n), onnx.TensorProto_INT64, Shape{}, true)
	case n.Attr("value_ints") != nil:
		c := n.AttrInts("value_ints", nil)
		in.consts[out0(n)] = c
		return in.set(out0(n), onnx.TensorProto_INT64, Known(int64(len(c))), true)
	case n.Attr("value_float") != nil:
		return in.set(out0(n), onnx.TensorProto_FLOAT, Shape{}, true)
	case n.Attr("value_floats") != nil:
		return in.set(out0(n), onnx.TensorProto_FLOAT, Known(int64(len(n.AttrFloats("value_floats", nil)))), true)
	}
	return nil
}

func (in *inferrer) slice(n *Node) error {
	x := in.info(n.Input(0))
	if !x.ok {
		return in.set(out0(n), x.elem, nil, false)
	}
	var starts, ends, axes, steps []int64
	if n.Opset() < 10 {
		starts, ends, axes = n.AttrInts("starts", nil), n.AttrInts("ends", nil), n.AttrInts("axes", nil)
	} else {
		var ok1, ok2 bool
		starts, ok1 = in.constant(n.Input(1))
		ends, ok2 = in.constant(n.Input(2))
		if !ok1 || !ok2 {
			return in.set(out0(n), x.elem, make(Shape, len(x.shape)), true)
		}
		if v := n.Input(3); v != nil {
			var ok bool
			if axes, ok = in.constant(v); !ok {
				return in.set(out0(n), x.elem, make(Shape, len(x.shape)), true)
			}
		}
		if v := n.Input(4); v != nil {
			var ok bool
			if steps, ok = in.constant(v); !ok {
				return in.set(out0(n), x.elem, make(Shape, len(x.shape)), true)
			}
		}
	}
	if len(starts) != len(ends) {
		return fmt.Errorf("Slice has %d starts and %d ends", len(starts), len(ends))
	}
	if axes == nil {
		for i := range starts {
			axes = append(axes, int64(i))
		}
	}
	norm, err := normAxes(axes, len(x.shape))
	if err != nil || len(norm) != len(starts) {
		return fmt.Errorf("Slice axes %v do not fit rank %d", axes, len(x.shape))
	}
	out := slices.Clone(x.shape)
	for i, a := range norm {
		d := x.shape[a]
		step := at(steps, i, 1)
		if step == 0 {
			return fmt.Errorf("Slice step is zero")
		}
		if !d.Known {
			out[a] = Dim{}
			continue
		}
		size := sliceLen(starts[i], ends[i], step, d.Value)
		out[a] = Dim{Value: size, Known: true}
	}
	if err := in.set(out0(n), x.elem, out, true); err != nil {
		return err
	}
	if c, ok := in.constant(n.Input(0)); ok && len(x.shape) == 1 && len(norm) == 1 {
		step := at(steps, 0, 1)
		size := int64(len(c))
		start, _ := sliceBounds(starts[0], ends[0], step, size)
		var vals []int64
		for k, i := int64(0), start; k < sliceLen(starts[0], ends[0], step, size); k, i = k+1, i+step {
			vals = append(vals, c[i])
		}
		in.consts[out0(n)] = vals
	}
	return nil
}

// sliceBounds clamps start and end as the Slice spec says.
func sliceBounds(start, end, step, dim int64) (int64, int64) {
	if start < 0 {
		start += dim
	}
	if end < 0 {
		end += dim
	}
	if step > 0 {
		start = min(max(start, 0), dim)
		end = min(max(end, 0), dim)
	} else {
		start = min(max(start, 0), dim-1)
		end = min(max(end, -1), dim-1)
	}
	return start, end
}

func sliceLen(start, end, step, dim int64) int64 {
	start, end = sliceBounds(start, end, step, dim)
	var n int64
	if step > 0 {
		n = (end - start + step - 1) / step
	} else {
		n = (start - end - step - 1) / -step
	}
	return max(n, 0)
}

func (in *inferrer) reduce(n *Node) error {
	x := in.info(n.Input(0))
	elem := x.elem
	if n.OpType == "ArgMax" || n.OpType == "ArgMin" {
		elem = onnx.TensorProto_INT64
	}
	if !x.ok {
		return in.set(out0(n), elem, nil, false)
	}
	keep := n.AttrInt("keepdims", 1) != 0
	var axes []int64
	if n.OpType == "ArgMax" || n.OpType == "ArgMin" {
		axes = []int64{n.AttrInt("axis", 0)}
	} else {
		from := int64(18)
		if n.OpType == "ReduceSum" {
			from = 13
		}
		var given, known bool
		axes, given, known = in.axesOf(n, from)
		if !known {
			if keep {
				return in.set(out0(n), elem, make(Shape, len(x.shape)), true)
			}
			return in.set(out0(n), elem, nil, false)
		}
		if !given || len(axes) == 0 {
			if n.AttrInt("noop_with_empty_axes", 0) != 0 {
				return in.set(out0(n), elem, x.shape, true)
			}
			axes = nil
			for i := range x.shape {
				axes = append(axes, int64(i))
			}
		}
	}
	norm, err := normAxes(axes, len(x.shape))
	if err != nil {
		return err
	}
	var out Shape
	for i, d := range x.shape {
		switch {
		case !slices.Contains(norm, int64(i)):
			out = append(out, d)
		case keep:
			out = append(out, Dim{Value: 1, Known: true})
		}
	}
	return in.set(out0(n), elem, out, true)
}

func (in *inferrer) expand(n *Node) error {
	x := in.info(n.Input(0))
	target, ok := in.constant(n.Input(1))
	if !x.ok || !ok {
		return in.set(out0(n), x.elem, nil, false)
	}
	s, err := broadcastShapes(x.shape, Known(target...))
	if err != nil {
		return err
	}
	return in.set(out0(n), x.elem, s, true)
}

func (in *inferrer) recurrent(n *Node) error {
	x, w := in.info(n.Input(0)), in.info(n.Input(1))
	if !x.ok || !w.ok || len(x.shape) != 3 || len(w.shape) != 3 {
		return nil
	}
	hidden := Dim{}
	if h := n.AttrInt("hidden_size", 0); h > 0 {
		hidden = Dim{Value: h, Known: true}
	}
	dirs := w.shape[0]
	seq, batch := x.shape[0], x.shape[1]
	layout := n.AttrInt("layout", 0)
	if layout != 0 {
		seq, batch = batch, seq
	}
	y := Shape{seq, dirs, batch, hidden}
	yh := Shape{dirs, batch, hidden}
	if layout != 0 {
		y = Shape{batch, seq, dirs, hidden}
		yh = Shape{batch, dirs, hidden}
	}
	for i, v := range n.Outputs {
		s := yh
		if i == 0 {
			s = y
		}
		if err := in.set(v, x.elem, s, true); err != nil {
			return err
		}
	}
	return nil
}

// foldArith propagates small integer constants through the arithmetic
// that shape computations use.
func (in *inferrer) foldArith(n *Node) error {
	if len(n.Inputs) != 2 {
		return nil
	}
	a, ok1 := in.constant(n.Input(0))
	b, ok2 := in.constant(n.Input(1))
	if !ok1 || !ok2 || (len(a) != len(b) && len(a) != 1 && len(b) != 1) {
		return nil
	}
	size := max(len(a), len(b))
	out := make([]int64, size)
	for i := range out {
		x, y := a[min(i, len(a)-1)], b[min(i, len(b)-1)]
		switch n.OpType {
		case "Add":
			out[i] = x + y
		case "Sub":
			out[i] = x - y
		case "Mul":
			out[i] = x * y
		case "Div":
			if y == 0 {
				return nil
			}
			out[i] = x / y
		default:
			return nil
		}
	}
	in.consts[out0(n)] = out
	return nil
}

// int64Values decodes a small int64 or int32 tensor.
func int64Values(t *onnx.TensorProto) ([]int64, bool) {
	dt := onnx.TensorProto_DataType(t.GetDataType())
	n, err := onnx.NumElements(t.GetDims())
	if err != nil || n > maxConstElems || t.GetDataLocation() == onnx.TensorProto_EXTERNAL {
		return nil, false
	}
	switch dt {
	case onnx.TensorProto_INT64:
		if raw := t.GetRawData(); t.RawData != nil {
			if int64(len(raw)) != 8*n {
				return nil, false
			}
			out := make([]int64, n)
			for i := range out {
				for k := 0; k < 8; k++ {
					out[i] |= int64(raw[8*i+k]) << (8 * k)
				}
			}
			return out, true
		}
		if int64(len(t.GetInt64Data())) != n {
			return nil, false
		}
		return slices.Clone(t.GetInt64Data()), true
	case onnx.TensorProto_INT32:
		if raw := t.GetRawData(); t.RawData != nil {
			if int64(len(raw)) != 4*n {
				return nil, false
			}
			out := make([]int64, n)
			for i := range out {
				var u uint32
				for k := 0; k < 4; k++ {
					u |= uint32(raw[4*i+k]) << (8 * k)
				}
				out[i] = int64(int32(u))
			}
			return out, true
		}
		if int64(len(t.GetInt32Data())) != n {
			return nil, false
		}
		out := make([]int64, n)
		for i, v := range t.GetInt32Data() {
			out[i] = int64(v)
		}
		return out, true
	}
	return nil, false
}
