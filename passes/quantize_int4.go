package passes

import (
	"fmt"
	"math"
	"slices"

	"github.com/spf13/pflag"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// int4Quantization stores the weights of MatMul and Gemm as int4 in blocks
// of BlockSize along the reduction axis, each block with its own float32
// scale, read through DequantizeLinear-21 with block_size: the layout of
// 4-bit weight-only quantization for language models. Activations stay
// float.
type int4Quantization struct {
	OpTypes       []string
	Exclude       []string
	KeepFirstLast bool
	BlockSize     int
	accuracyBudget
}

func newQuantizeInt4() Pass {
	return &int4Quantization{OpTypes: []string{"MatMul", "Gemm"}, BlockSize: 32}
}

func (p *int4Quantization) Flags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&p.OpTypes, "op-types", p.OpTypes, "op types whose constant B is quantized (MatMul, Gemm)")
	fs.StringSliceVar(&p.Exclude, "exclude", nil, "node names or op types to keep in float")
	fs.BoolVar(&p.KeepFirstLast, "keep-first-last", false, "keep the first and the last layer with weights in float")
	fs.IntVar(&p.BlockSize, "block-size", p.BlockSize, "weights along the reduction axis that share a scale (at least 16, as DequantizeLinear requires)")
	p.accuracyBudget.flags(fs)
}

// int4Range is symmetric int4: [-7, 7] keeps zero exact with a zero point
// of 0, as int8's [-127, 127] does.
var int4Range = intRange{dt: onnx.TensorProto_INT4, min: -8, max: 7, lo: -7, hi: 7}

func (p *int4Quantization) Run(m *graph.Model, env *Env) (Result, error) {
	if p.BlockSize < 16 {
		return Result{}, fmt.Errorf("--block-size %d: DequantizeLinear needs blocks of at least 16", p.BlockSize)
	}
	for _, op := range p.OpTypes {
		if op != "MatMul" && op != "Gemm" {
			return Result{}, fmt.Errorf("--op-types: %s: int4 blocks are for MatMul and Gemm", op)
		}
	}
	if err := p.check(env); err != nil {
		return Result{}, err
	}
	warnQuantized(m, env)
	if err := m.Graph.Sort(); err != nil {
		return Result{}, err
	}
	upgrade, err := opset21(m)
	if err != nil {
		return Result{}, err
	}
	o := quantOptions{OpTypes: p.OpTypes, Exclude: p.Exclude, KeepFirstLast: p.KeepFirstLast}
	quantize := func(m *graph.Model, layers []*graph.Node, env *Env) (Result, error) {
		setOpset(m, 21)
		return quantizeGraphs(m, layers, &o, p.int4Weights, env)
	}
	res, err := p.quantizeWithin(m, o.planLayers(m.Graph), env, quantize)
	if err == nil && upgrade != "" {
		res.Notes = append([]string{upgrade}, res.Notes...)
	}
	return res, err
}

// int4Weights quantizes weight w to int4 blocks along the reduction axis
// of the layers that read it as B.
func (p *int4Quantization) int4Weights(w *graph.Value, uses []weightUse) (dequantization, error) {
	dims := w.Init.GetDims()
	axis := -1
	for _, u := range uses {
		a := -1
		switch {
		case u.slot.index != 1:
			return dequantization{}, fmt.Errorf("%s reads it as A; int4 blocks are for B", u.node)
		case u.node.OpType == "Gemm" && u.node.AttrInt("transB", 0) != 0:
			a = 1
		case u.node.OpType == "Gemm":
			a = 0
		case len(dims) >= 2:
			a = len(dims) - 2
		default:
			return dequantization{}, fmt.Errorf("%s multiplies by a vector, which has no blocks", u.node)
		}
		if axis >= 0 && a != axis {
			return dequantization{}, fmt.Errorf("its readers reduce it along different axes")
		}
		axis = a
	}
	q, err := quantizeBlocks(w.Init, axis, p.BlockSize, int4Range)
	if err != nil {
		return dequantization{}, err
	}
	data, err := onnx.NewTensor(w.Name+"_quantized", onnx.TensorProto_INT4, dims, q.data)
	if err != nil {
		return dequantization{}, err
	}
	scale, err := onnx.NewTensor(w.Name+"_scale", onnx.TensorProto_FLOAT, q.scaleDims, q.scales)
	if err != nil {
		return dequantization{}, err
	}
	// No zero point: DequantizeLinear's default is 0.
	return dequantization{
		inputs: []*onnx.TensorProto{data, scale},
		attrs:  []*onnx.AttributeProto{intAttribute("axis", int64(axis)), intAttribute("block_size", int64(p.BlockSize))},
	}, nil
}

// blockQuantized is a float32 tensor quantized symmetrically in blocks of
// elements along an axis, each block with its own scale.
type blockQuantized struct {
	data      []int8
	scales    []float32
	scaleDims []int64 // the tensor's dims with ceil(d/block) along the axis
}

// quantizeBlocks quantizes the float32 tensor t in blocks of block
// elements along axis (the last block may be shorter), each with the
// symmetric scale of its largest magnitude, element by element as
// quantizeValue does. It refuses tensors holding NaN or infinities.
func quantizeBlocks(t *onnx.TensorProto, axis, block int, r intRange) (blockQuantized, error) {
	dims := t.GetDims()
	w, err := newFloatReader(t)
	if err != nil {
		return blockQuantized{}, err
	}
	inner := 1
	for _, d := range dims[axis+1:] {
		inner *= int(d)
	}
	dim := int(dims[axis])
	blocks := (dim + block - 1) / block
	q := blockQuantized{data: make([]int8, w.len()), scaleDims: slices.Clone(dims)}
	q.scaleDims[axis] = int64(blocks)
	n := 1
	for _, d := range q.scaleDims {
		n *= int(d)
	}
	q.scales = make([]float32, n)
	maxBits := make([]uint32, n)
	err = w.chunks(func(offset int, xs []float32) error {
		at := blockAt(offset, inner, dim, block)
		for i, x := range xs {
			b := math.Float32bits(x) &^ (1 << 31)
			if b >= 0x7f800000 {
				return fmt.Errorf("element %d is %v", offset+i, x)
			}
			k := at.scale()
			maxBits[k] = max(maxBits[k], b)
			at.next()
		}
		return nil
	})
	if err != nil {
		return blockQuantized{}, err
	}
	for k := range q.scales {
		q.scales[k] = symmetricParams(float64(math.Float32frombits(maxBits[k])), r)
	}
	lo, hi := float32(r.min), float32(r.max)
	err = w.chunks(func(offset int, xs []float32) error {
		at, out := blockAt(offset, inner, dim, block), q.data[offset:offset+len(xs)]
		for i, x := range xs {
			v := x / q.scales[at.scale()]
			if v < lo {
				v = lo
			} else if v > hi {
				v = hi
			}
			out[i] = int8(roundHalfEven(v))
			at.next()
		}
		return nil
	})
	return q, err
}

// A blockCursor follows the block scale of consecutive elements of a
// tensor seen as [outer, dim, inner], blocked along dim, without a
// division per element.
type blockCursor struct {
	k, i  int // the element's position along dim and inner
	left  int // elements of dim left in the element's block
	base  int // the scale index of the element's block at inner position 0
	inner int
	dim   int
	block int
}

func blockAt(offset, inner, dim, block int) blockCursor {
	blocks := (dim + block - 1) / block
	o, k, i := offset/inner/dim, offset/inner%dim, offset%inner
	return blockCursor{k: k, i: i, left: block - k%block, base: (o*blocks + k/block) * inner,
		inner: inner, dim: dim, block: block}
}

// scale is the index of the element's scale in the [outer, blocks, inner]
// scales.
func (at *blockCursor) scale() int { return at.base + at.i }

func (at *blockCursor) next() {
	if at.i++; at.i < at.inner {
		return
	}
	at.i = 0
	at.k++
	switch at.left--; {
	case at.k == at.dim:
		// The next outer slice starts with a new block.
		at.k, at.left = 0, at.block
		at.base += at.inner
	case at.left == 0:
		at.left = at.block
		at.base += at.inner
	}
}

// opset21 checks that m's default domain can be imported at opset 21,
// where DequantizeLinear has block_size and INT4, and when it imports an
// earlier one, that every operator of the model means the same at 21, so
// that raising the import changes nothing else. It returns a note on the
// raise, or "".
func opset21(m *graph.Model) (string, error) {
	v, _ := m.Opset("")
	switch {
	case v >= 21:
		return "", nil
	case v < 13:
		return "", fmt.Errorf("int4 blocks need opset 21, and the model imports opset %d: operators changed at 13 (Split, Squeeze, ReduceSum...); convert it to 13 or later first", v)
	}
	var bad error
	m.Graph.Walk(func(g *graph.Graph) bool {
		for _, n := range g.Nodes {
			if !isStandard(n) {
				continue
			}
			if why := changedBy21(n, v); why != "" {
				bad = fmt.Errorf("int4 blocks need opset 21, and the model imports opset %d, where %s %s: convert the model to opset 21 first", v, n, why)
				return false
			}
		}
		return true
	})
	if bad != nil {
		return "", bad
	}
	return fmt.Sprintf("default opset import raised from %d to 21, which DequantizeLinear's int4 blocks need; every operator of the model means the same there", v), nil
}

// setOpset sets the version m imports for the default domain.
func setOpset(m *graph.Model, version int64) {
	for i, o := range m.Opsets {
		if o.Domain == "" || o.Domain == "ai.onnx" {
			m.Opsets[i].Version = version
			return
		}
	}
	m.Opsets = append(m.Opsets, graph.Opset{Version: version})
}

// sameFrom13To21 are the operators whose definitions from opset 13 to 21
// only added input types, or attributes and optional inputs whose defaults
// keep the earlier meaning.
var sameFrom13To21 = []string{
	"Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh", "AveragePool",
	"BitShift", "Cast", "CastLike", "Ceil", "Celu", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv",
	"ConvInteger", "ConvTranspose", "Cos", "Cosh", "CumSum", "DepthToSpace", "DequantizeLinear", "Det", "Div",
	"Dropout", "DynamicQuantizeLinear", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand", "EyeLike", "Flatten",
	"Floor", "GRU", "Gather", "GatherElements", "GatherND", "Gemm", "GlobalAveragePool", "GlobalLpPool",
	"GlobalMaxPool", "Greater", "GreaterOrEqual", "HardSigmoid", "HardSwish", "Hardmax", "Identity", "If",
	"InstanceNormalization", "IsInf", "IsNaN", "LRN", "LSTM", "LayerNormalization", "LeakyRelu", "Less",
	"LessOrEqual", "Log", "LogSoftmax", "Loop", "LpNormalization", "LpPool", "MatMul", "MatMulInteger", "Max",
	"MaxPool", "MaxRoiPool", "MaxUnpool", "Mean", "MeanVarianceNormalization", "Min", "Mish", "Mod", "Mul",
	"Neg", "NonMaxSuppression", "NonZero", "Not", "OneHot", "Or", "PRelu", "Pad", "Pow", "QLinearConv",
	"QLinearMatMul", "QuantizeLinear", "RNN", "Range", "Reciprocal", "ReduceSum", "Relu", "Reshape", "Resize",
	"ReverseSequence", "Round", "Scan", "ScatterElements", "ScatterND", "Selu", "Shape", "Shrink", "Sigmoid",
	"Sign", "Sin", "Sinh", "Size", "Slice", "Softmax", "Softplus", "Softsign", "SpaceToDepth",
	"Sqrt", "Squeeze", "Sub", "Sum", "Tan", "Tanh", "ThresholdedRelu", "Tile", "TopK", "Transpose", "Trilu",
	"Unique", "Unsqueeze", "Where", "Xor",
}

// changedBy21 says how n, of a model importing opset v ≥ 13, would mean
// something else at opset 21, or "".
func changedBy21(n *graph.Node, v int64) string {
	switch {
	case n.OpType == "BatchNormalization":
		// Opset 14 changed only the training mode's outputs.
		if len(n.Outputs) > 1 || n.AttrInt("training_mode", 0) != 0 {
			return "runs in training mode, whose outputs changed at 14"
		}
		return ""
	case len(n.OpType) > 6 && n.OpType[:6] == "Reduce" && n.OpType != "ReduceSum":
		// Opset 18 moved axes from an attribute to an input.
		if v < 18 && n.Attr("axes") != nil {
			return "has the axes attribute, an input from opset 18"
		}
		return ""
	case n.OpType == "Split":
		// Opset 18 wants the sizes as an input or num_outputs.
		if v < 18 && n.Input(1) == nil {
			return "splits into equal parts without num_outputs, which opset 18 requires"
		}
		return ""
	case slices.Contains(sameFrom13To21, n.OpType):
		return ""
	}
	return "is not known to mean the same at opset 21"
}
