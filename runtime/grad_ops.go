package runtime

import (
	"fmt"
	"slices"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// A gradBuilder translates the ONNX nodes a loss depends on into a
// gorgonia graph, for one set of input shapes.
type gradBuilder struct {
	eg   *gorgonia.ExprGraph
	plan *GradPlan
	// nodes maps computed ONNX values (and graph inputs) to their
	// gorgonia nodes.
	nodes map[*graph.Value]*gorgonia.Node
	// static holds the values of Constant nodes, for operands read at
	// build time such as Reshape's shape.
	static map[*graph.Value]*Tensor
	// leaves are the initializers turned into gorgonia nodes, by name.
	leaves map[string]*gorgonia.Node
	// names counts helper leaves. Every leaf's gorgonia name is unique,
	// made of its kind and its ONNX name or this count: gorgonia merges
	// input nodes of the same name, type and shape.
	names int
}

// A gradOpBuilder appends the gorgonia nodes computing n and returns its
// outputs in order; it may return fewer than n has, for optional outputs
// it does not compute.
type gradOpBuilder func(b *gradBuilder, n *graph.Node) ([]*gorgonia.Node, error)

// gradOps lists the operators of the default domain that gradients go
// through.
var gradOps = map[string]gradOpBuilder{
	"Add":                gradElementwise(gradAdd),
	"Sub":                gradElementwise(gradSub),
	"Mul":                gradElementwise(gradMul),
	"Div":                gradElementwise(gradDiv),
	"Relu":               gradUnary(gorgonia.Rectify),
	"Sigmoid":            gradUnary(gorgonia.Sigmoid),
	"Tanh":               gradUnary(gorgonia.Tanh),
	"Identity":           gradUnary(func(x *gorgonia.Node) (*gorgonia.Node, error) { return x, nil }),
	"Softmax":            gradSoftmax(gorgonia.SoftMax),
	"LogSoftmax":         gradSoftmax(gradLogSoftmax),
	"Gemm":               (*gradBuilder).gemm,
	"MatMul":             (*gradBuilder).matMul,
	"Conv":               (*gradBuilder).conv,
	"MaxPool":            (*gradBuilder).maxPool,
	"AveragePool":        (*gradBuilder).averagePool,
	"GlobalAveragePool":  (*gradBuilder).globalAveragePool,
	"BatchNormalization": (*gradBuilder).batchNorm,
	"Flatten":            (*gradBuilder).flatten,
	"Reshape":            (*gradBuilder).reshape,
	"Squeeze":            (*gradBuilder).squeeze,
	"Unsqueeze":          (*gradBuilder).unsqueeze,
	"Transpose":          (*gradBuilder).transpose,
	"Constant":           (*gradBuilder).constant,
}

func gradSupported(n *graph.Node) bool {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return false
	}
	_, ok := gradOps[n.OpType]
	return ok
}

// build appends n to the gorgonia graph.
func (b *gradBuilder) build(n *graph.Node) error {
	outs, err := gradOps[n.OpType](b, n)
	if err != nil {
		return err
	}
	for i, v := range n.Outputs {
		if v == nil || b.static[v] != nil {
			continue
		}
		if i >= len(outs) {
			if gradRead(b.plan, v) {
				return fmt.Errorf("output %d (%q) has no gradient support", i, v.Name)
			}
			continue
		}
		b.nodes[v] = outs[i]
	}
	return nil
}

// gradRead reports whether the loss reads v.
func gradRead(p *GradPlan, v *graph.Value) bool {
	if v == p.output {
		return true
	}
	for _, n := range p.nodes {
		if slices.Contains(n.Inputs, v) {
			return true
		}
	}
	return false
}

// leaf makes an input node holding t; t's data is shared.
func (b *gradBuilder) leaf(name string, t *Tensor) (*gorgonia.Node, error) {
	var dt tensor.Dtype
	switch t.DType {
	case onnx.TensorProto_FLOAT:
		dt = tensor.Float32
	case onnx.TensorProto_DOUBLE:
		dt = tensor.Float64
	default:
		return nil, fmt.Errorf("%q is %s; gradients need float or double", name, dtypeName(t.DType))
	}
	if len(t.Shape) == 0 {
		return gorgonia.NewScalar(b.eg, dt, gorgonia.WithName(name), gorgonia.WithValue(gradValue(t))), nil
	}
	d, err := t.Dense()
	if err != nil {
		return nil, fmt.Errorf("%q: %w", name, err)
	}
	return gorgonia.NewTensor(b.eg, dt, len(t.Shape), gorgonia.WithShape(t.Shape...), gorgonia.WithName(name), gorgonia.WithValue(d)), nil
}

// zeros makes a constant input node of zeros.
func (b *gradBuilder) zeros(dt tensor.Dtype, shape ...int) (*gorgonia.Node, error) {
	odt := onnx.TensorProto_FLOAT
	if dt == tensor.Float64 {
		odt = onnx.TensorProto_DOUBLE
	}
	t, err := NewTensor(odt, shape...)
	if err != nil {
		return nil, err
	}
	b.names++
	return b.leaf(fmt.Sprintf("helper %d zeros", b.names), t)
}

// scalar makes a constant of the given dtype.
func (b *gradBuilder) scalar(dt onnx.TensorProto_DataType, v float64) *gorgonia.Node {
	if dt == onnx.TensorProto_DOUBLE {
		return gorgonia.NewConstant(v)
	}
	return gorgonia.NewConstant(float32(v))
}

// scalarLike makes a constant of x's dtype.
func (b *gradBuilder) scalarLike(x *gorgonia.Node, v float64) *gorgonia.Node {
	if x.Dtype() == tensor.Float64 {
		return gorgonia.NewConstant(v)
	}
	return gorgonia.NewConstant(float32(v))
}

// value returns the gorgonia node of v, making a leaf for an initializer
// the first time it is read.
func (b *gradBuilder) value(v *graph.Value) (*gorgonia.Node, error) {
	if gn, ok := b.nodes[v]; ok {
		return gn, nil
	}
	if t, ok := b.static[v]; ok {
		b.names++
		gn, err := b.leaf(fmt.Sprintf("helper %d constant %s", b.names, v.Name), t)
		if err != nil {
			return nil, err
		}
		b.nodes[v] = gn
		return gn, nil
	}
	t, ok := b.plan.values[v.Name]
	if !ok || v.Init == nil {
		return nil, fmt.Errorf("value %q is not computed", v.Name)
	}
	gn, err := b.leaf("initializer "+v.Name, t)
	if err != nil {
		return nil, err
	}
	b.nodes[v] = gn
	b.leaves[v.Name] = gn
	return gn, nil
}

// input returns the node of input i of n, which must be present.
func (b *gradBuilder) input(n *graph.Node, i int) (*gorgonia.Node, error) {
	v := n.Input(i)
	if v == nil {
		return nil, fmt.Errorf("input %d is missing", i)
	}
	return b.value(v)
}

// inputs returns the nodes of n's first k inputs, which must be present.
func (b *gradBuilder) inputs(n *graph.Node, k int) ([]*gorgonia.Node, error) {
	out := make([]*gorgonia.Node, k)
	for i := range out {
		var err error
		if out[i], err = b.input(n, i); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// constInput returns input i of n as a value known when the graph is
// built: a Constant node's output or an initializer that is not a
// parameter.
func (b *gradBuilder) constInput(n *graph.Node, i int) (*Tensor, error) {
	v := n.Input(i)
	if v == nil {
		return nil, fmt.Errorf("input %d is missing", i)
	}
	if t, ok := b.static[v]; ok {
		return t, nil
	}
	if t, ok := b.plan.values[v.Name]; ok && v.Init != nil && !b.plan.isParam[v.Name] {
		return t, nil
	}
	return nil, fmt.Errorf("input %d (%q) must be a constant for gradients", i, v.Name)
}

func (b *gradBuilder) constant(n *graph.Node) ([]*gorgonia.Node, error) {
	tp := n.AttrTensor("value")
	if tp == nil {
		return nil, fmt.Errorf("only the value attribute is supported")
	}
	t, err := TensorFromProto(tp)
	if err != nil {
		return nil, err
	}
	if len(n.Outputs) > 0 && n.Outputs[0] != nil {
		b.static[n.Outputs[0]] = t
	}
	return nil, nil
}

func gradUnary(f func(*gorgonia.Node) (*gorgonia.Node, error)) gradOpBuilder {
	return func(b *gradBuilder, n *graph.Node) ([]*gorgonia.Node, error) {
		x, err := b.input(n, 0)
		if err != nil {
			return nil, err
		}
		y, err := f(x)
		return []*gorgonia.Node{y}, err
	}
}

type gradBinaryOp int

const (
	gradAdd gradBinaryOp = iota
	gradSub
	gradMul
	gradDiv
)

func gradElementwise(op gradBinaryOp) gradOpBuilder {
	return func(b *gradBuilder, n *graph.Node) ([]*gorgonia.Node, error) {
		in, err := b.inputs(n, 2)
		if err != nil {
			return nil, err
		}
		y, err := b.broadcast(op, in[0], in[1])
		return []*gorgonia.Node{y}, err
	}
}

// broadcast applies op with numpy (multidirectional) broadcasting.
// Gorgonia broadcasts operands of equal rank along axes where one has
// size 1, on at most four dimensions; the lower-rank operand gets leading
// ones first.
func (b *gradBuilder) broadcast(op gradBinaryOp, x, y *gorgonia.Node) (*gorgonia.Node, error) {
	plain := [...]func(a, b *gorgonia.Node) (*gorgonia.Node, error){gorgonia.Add, gorgonia.Sub, gorgonia.HadamardProd, gorgonia.HadamardDiv}[op]
	spread := [...]func(a, b *gorgonia.Node, l, r []byte) (*gorgonia.Node, error){gorgonia.BroadcastAdd, gorgonia.BroadcastSub, gorgonia.BroadcastHadamardProd, gorgonia.BroadcastHadamardDiv}[op]
	sx, sy := []int(x.Shape()), []int(y.Shape())
	if x.IsScalar() || y.IsScalar() || slices.Equal(sx, sy) {
		return plain(x, y)
	}
	rank := max(len(sx), len(sy))
	var err error
	if x, err = gradExpandRank(x, rank); err != nil {
		return nil, err
	}
	if y, err = gradExpandRank(y, rank); err != nil {
		return nil, err
	}
	sx, sy = x.Shape(), y.Shape()
	var left, right []byte
	for i := range rank {
		switch {
		case sx[i] == sy[i]:
		case sx[i] == 1:
			left = append(left, byte(i))
		case sy[i] == 1:
			right = append(right, byte(i))
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", sx, sy)
		}
	}
	if len(left) == 0 && len(right) == 0 {
		return plain(x, y)
	}
	if rank > 4 {
		return nil, fmt.Errorf("gorgonia broadcasts at most 4 dimensions, shapes are %v and %v", sx, sy)
	}
	return spread(x, y, left, right)
}

// gradExpandRank reshapes x to rank dimensions by adding leading ones.
func gradExpandRank(x *gorgonia.Node, rank int) (*gorgonia.Node, error) {
	s := x.Shape()
	if len(s) == rank {
		return x, nil
	}
	to := gradFill(rank, 1)
	copy(to[rank-len(s):], s)
	return gradReshape(x, to...)
}

// gradReshape reshapes x (into a copy, see gradReshapeOp), or returns x
// when it has that shape already.
func gradReshape(x *gorgonia.Node, shape ...int) (*gorgonia.Node, error) {
	from := x.Shape()
	if slices.Equal([]int(from), shape) {
		return x, nil
	}
	if from.TotalSize() != tensor.Shape(shape).TotalSize() {
		return nil, fmt.Errorf("cannot reshape %v to %v", from, shape)
	}
	return gorgonia.ApplyOp(gradReshapeOp{from: from.Clone(), to: tensor.Shape(slices.Clone(shape))}, x)
}

// matmul2 multiplies two matrices, either transposed. It goes through
// gorgonia's batched product with a batch of one: its plain Mul treats a
// (1, n) or (n, 1) matrix as a vector and changes the result's rank.
func (b *gradBuilder) matmul2(x, y *gorgonia.Node, tx, ty bool) (*gorgonia.Node, error) {
	sx, sy := x.Shape(), y.Shape()
	if len(sx) != 2 || len(sy) != 2 {
		return nil, fmt.Errorf("want matrices, got %v and %v", sx, sy)
	}
	m, k := sx[0], sx[1]
	if tx {
		m, k = k, m
	}
	k2, n := sy[0], sy[1]
	if ty {
		k2, n = n, k2
	}
	if k != k2 {
		return nil, fmt.Errorf("inner dimensions differ: %v and %v (transA %v, transB %v)", sx, sy, tx, ty)
	}
	x3, err := gradReshape(x, 1, sx[0], sx[1])
	if err != nil {
		return nil, err
	}
	y3, err := gradReshape(y, 1, sy[0], sy[1])
	if err != nil {
		return nil, err
	}
	z, err := gorgonia.BatchedMatMul(x3, y3, tx, ty)
	if err != nil {
		return nil, err
	}
	return gradReshape(z, m, n)
}

func (b *gradBuilder) gemm(n *graph.Node) ([]*gorgonia.Node, error) {
	in, err := b.inputs(n, 2)
	if err != nil {
		return nil, err
	}
	y, err := b.matmul2(in[0], in[1], n.AttrInt("transA", 0) != 0, n.AttrInt("transB", 0) != 0)
	if err != nil {
		return nil, err
	}
	if alpha := float64(n.AttrFloat("alpha", 1)); alpha != 1 {
		if y, err = gorgonia.HadamardProd(y, b.scalarLike(y, alpha)); err != nil {
			return nil, err
		}
	}
	if n.Input(2) == nil {
		return []*gorgonia.Node{y}, nil
	}
	c, err := b.input(n, 2)
	if err != nil {
		return nil, err
	}
	if beta := float64(n.AttrFloat("beta", 1)); beta != 1 {
		if c, err = gorgonia.HadamardProd(c, b.scalarLike(c, beta)); err != nil {
			return nil, err
		}
	}
	want := slices.Clone([]int(y.Shape()))
	if y, err = b.broadcast(gradAdd, y, c); err != nil {
		return nil, err
	}
	if !slices.Equal([]int(y.Shape()), want) {
		return nil, fmt.Errorf("C of shape %v does not broadcast to %v", c.Shape(), want)
	}
	return []*gorgonia.Node{y}, nil
}

// matMul follows numpy: vectors are promoted to matrices and back, and
// leading dimensions are batch dimensions. Batch dimensions must be equal
// or absent from the second operand.
func (b *gradBuilder) matMul(n *graph.Node) ([]*gorgonia.Node, error) {
	in, err := b.inputs(n, 2)
	if err != nil {
		return nil, err
	}
	x, y := in[0], in[1]
	sx, sy := slices.Clone([]int(x.Shape())), slices.Clone([]int(y.Shape()))
	if len(sx) == 0 || len(sy) == 0 {
		return nil, fmt.Errorf("MatMul needs operands of rank 1 or more, got %v and %v", sx, sy)
	}
	vecX, vecY := len(sx) == 1, len(sy) == 1
	if vecX {
		sx = []int{1, sx[0]}
	}
	if vecY {
		sy = []int{sy[0], 1}
	}
	m, k, k2, cols := sx[len(sx)-2], sx[len(sx)-1], sy[len(sy)-2], sy[len(sy)-1]
	if k != k2 {
		return nil, fmt.Errorf("inner dimensions differ: %v and %v", x.Shape(), y.Shape())
	}
	batch := sx[:len(sx)-2]
	var z *gorgonia.Node
	switch {
	case len(sy) == 2:
		// Fold the batch into the rows: one matrix product.
		rows := m
		for _, d := range batch {
			rows *= d
		}
		x2, err := gradReshape(x, rows, k)
		if err != nil {
			return nil, err
		}
		y2, err := gradReshape(y, k, cols)
		if err != nil {
			return nil, err
		}
		if z, err = b.matmul2(x2, y2, false, false); err != nil {
			return nil, err
		}
	case slices.Equal(batch, sy[:len(sy)-2]):
		x3, err := gradReshape(x, append([]int{mustElements(batch)}, m, k)...)
		if err != nil {
			return nil, err
		}
		y3, err := gradReshape(y, append([]int{mustElements(batch)}, k, cols)...)
		if err != nil {
			return nil, err
		}
		if z, err = gorgonia.BatchedMatMul(x3, y3); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("broadcasting batch dimensions %v and %v is not supported", x.Shape(), y.Shape())
	}
	out := slices.Clone(batch)
	if !vecX {
		out = append(out, m)
	}
	if !vecY {
		out = append(out, cols)
	}
	z, err = gradReshape(z, out...)
	return []*gorgonia.Node{z}, err
}

// gradWindow holds a convolution's or pool's geometry for each spatial
// dimension: kernel, strides, dilations and pads (begins, then ends, as
// ONNX orders them).
type gradWindow struct {
	kernel, strides, dilations, pads []int
}

// gradWindowAttrs reads kernel_shape (or takes kernel), strides,
// dilations, pads and auto_pad for spatial input sizes in.
func gradWindowAttrs(n *graph.Node, in, kernel []int) (gradWindow, error) {
	r := len(in)
	w := gradWindow{kernel: kernel}
	if ks := n.AttrInts("kernel_shape", nil); ks != nil {
		ki := gradInts(ks)
		if kernel != nil && !slices.Equal(ki, kernel) {
			return w, fmt.Errorf("kernel_shape %v differs from the weights' %v", ki, kernel)
		}
		w.kernel = ki
	}
	if len(w.kernel) != r {
		return w, fmt.Errorf("kernel_shape %v for %d spatial dimensions", w.kernel, r)
	}
	w.strides = gradInts(n.AttrInts("strides", nil))
	if w.strides == nil {
		w.strides = gradFill(r, 1)
	}
	w.dilations = gradInts(n.AttrInts("dilations", nil))
	if w.dilations == nil {
		w.dilations = gradFill(r, 1)
	}
	w.pads = gradInts(n.AttrInts("pads", nil))
	if w.pads == nil {
		w.pads = gradFill(2*r, 0)
	}
	if len(w.strides) != r || len(w.dilations) != r || len(w.pads) != 2*r {
		return w, fmt.Errorf("strides %v, dilations %v, pads %v for %d spatial dimensions", w.strides, w.dilations, w.pads, r)
	}
	for i := range r {
		if w.kernel[i] < 1 || w.strides[i] < 1 || w.dilations[i] < 1 || w.pads[i] < 0 || w.pads[r+i] < 0 {
			return w, fmt.Errorf("bad window: kernel %v, strides %v, dilations %v, pads %v", w.kernel, w.strides, w.dilations, w.pads)
		}
	}
	switch autoPad := n.AttrString("auto_pad", "NOTSET"); autoPad {
	case "NOTSET":
	case "VALID":
		w.pads = gradFill(2*r, 0)
	case "SAME_UPPER", "SAME_LOWER":
		for i := range r {
			out := (in[i] + w.strides[i] - 1) / w.strides[i]
			total := max(0, (out-1)*w.strides[i]+(w.kernel[i]-1)*w.dilations[i]+1-in[i])
			small := total / 2
			if autoPad == "SAME_UPPER" {
				w.pads[i], w.pads[r+i] = small, total-small
			} else {
				w.pads[i], w.pads[r+i] = total-small, small
			}
		}
	default:
		return w, fmt.Errorf("unknown auto_pad %q", autoPad)
	}
	return w, nil
}

// outSize returns the output size of spatial dimension i for input size
// in, rounding down or, with ceil, up (with PyTorch's rule that the last
// window starts inside the input or its leading pad).
func (w gradWindow) outSize(i, in int, ceil bool) (int, error) {
	r := len(w.kernel)
	span := in + w.pads[i] + w.pads[r+i] - ((w.kernel[i]-1)*w.dilations[i] + 1)
	if span < 0 {
		return 0, fmt.Errorf("the window (kernel %v, dilations %v, pads %v) is larger than the input", w.kernel, w.dilations, w.pads)
	}
	out := span/w.strides[i] + 1
	if ceil {
		out = (span+w.strides[i]-1)/w.strides[i] + 1
		if (out-1)*w.strides[i] >= in+w.pads[i] {
			out--
		}
	}
	return out, nil
}

func gradInts(v []int64) []int {
	if v == nil {
		return nil
	}
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

func gradFill(n, v int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// conv covers 1-D and 2-D convolutions on gorgonia's im2col Conv2d.
// Gorgonia pads symmetrically, so uneven pads are made by concatenating
// zeros; it has no groups, so groups slice the channels and concatenate
// the results.
func (b *gradBuilder) conv(n *graph.Node) ([]*gorgonia.Node, error) {
	in, err := b.inputs(n, 2)
	if err != nil {
		return nil, err
	}
	x, w := in[0], in[1]
	sx, sw := slices.Clone([]int(x.Shape())), slices.Clone([]int(w.Shape()))
	if len(sx) != 3 && len(sx) != 4 || len(sw) != len(sx) {
		return nil, fmt.Errorf("want 1-D or 2-D convolution, got input %v and weights %v", sx, sw)
	}
	oneD := len(sx) == 3
	win, err := gradWindowAttrs(n, sx[2:], sw[2:])
	if err != nil {
		return nil, err
	}
	if oneD {
		// Lift to 2-D with a height of one.
		sx = []int{sx[0], sx[1], 1, sx[2]}
		sw = []int{sw[0], sw[1], 1, sw[2]}
		win = gradWindow{
			kernel:    []int{1, win.kernel[0]},
			strides:   []int{1, win.strides[0]},
			dilations: []int{1, win.dilations[0]},
			pads:      []int{0, win.pads[0], 0, win.pads[1]},
		}
		if x, err = gradReshape(x, sx...); err != nil {
			return nil, err
		}
		if w, err = gradReshape(w, sw...); err != nil {
			return nil, err
		}
	}
	group := int(n.AttrInt("group", 1))
	if group < 1 || sx[1]%group != 0 || sw[0]%group != 0 || sw[1]*group != sx[1] {
		return nil, fmt.Errorf("group %d does not divide input channels %d into weights %v", group, sx[1], sw)
	}
	for i := range 2 {
		if _, err := win.outSize(i, sx[2+i], false); err != nil {
			return nil, err
		}
	}
	pad := []int{win.pads[0], win.pads[1]}
	if win.pads[0] != win.pads[2] || win.pads[1] != win.pads[3] {
		if x, err = b.padZeros(x, win.pads); err != nil {
			return nil, err
		}
		pad = []int{0, 0}
	}
	var y *gorgonia.Node
	if group == 1 {
		y, err = gorgonia.Conv2d(x, w, tensor.Shape(win.kernel), pad, win.strides, win.dilations)
	} else {
		cg, mg := sw[1], sw[0]/group
		outs := make([]*gorgonia.Node, group)
		for gi := range group {
			xs, err := gradSliceChannels(x, 1, gi*cg, cg)
			if err != nil {
				return nil, err
			}
			ws, err := gradSliceChannels(w, 0, gi*mg, mg)
			if err != nil {
				return nil, err
			}
			if outs[gi], err = gorgonia.Conv2d(xs, ws, tensor.Shape(win.kernel), pad, win.strides, win.dilations); err != nil {
				return nil, err
			}
		}
		y, err = gorgonia.Concat(1, outs...)
	}
	if err != nil {
		return nil, err
	}
	if n.Input(2) != nil {
		bias, err := b.input(n, 2)
		if err != nil {
			return nil, err
		}
		if s := bias.Shape(); len(s) != 1 || s[0] != sw[0] {
			return nil, fmt.Errorf("bias has shape %v, want [%d]", s, sw[0])
		}
		if bias, err = gradReshape(bias, 1, sw[0], 1, 1); err != nil {
			return nil, err
		}
		if y, err = b.broadcast(gradAdd, y, bias); err != nil {
			return nil, err
		}
	}
	if oneD {
		s := y.Shape()
		if y, err = gradReshape(y, s[0], s[1], s[3]); err != nil {
			return nil, err
		}
	}
	return []*gorgonia.Node{y}, nil
}

// gradSliceChannels takes count entries from start along axis (0 or 1) of
// a 4-D node, keeping the axis when count is one (gorgonia drops it).
func gradSliceChannels(x *gorgonia.Node, axis, start, count int) (*gorgonia.Node, error) {
	s := slices.Clone([]int(x.Shape()))
	if count == s[axis] {
		return x, nil
	}
	ss := make([]tensor.Slice, axis+1)
	ss[axis] = gorgonia.S(start, start+count)
	y, err := gorgonia.Slice(x, ss...)
	if err != nil {
		return nil, err
	}
	s[axis] = count
	return gradReshape(y, s...)
}

// padZeros pads the two spatial dimensions of a 4-D node with zeros;
// pads is (top, left, bottom, right).
func (b *gradBuilder) padZeros(x *gorgonia.Node, pads []int) (*gorgonia.Node, error) {
	for i, axis := range []int{2, 3} {
		before, after := pads[i], pads[2+i]
		if before == 0 && after == 0 {
			continue
		}
		parts := []*gorgonia.Node{}
		for _, p := range []int{before, -1, after} {
			if p == -1 {
				parts = append(parts, x)
				continue
			}
			if p == 0 {
				continue
			}
			s := slices.Clone([]int(x.Shape()))
			s[axis] = p
			z, err := b.zeros(x.Dtype(), s...)
			if err != nil {
				return nil, err
			}
			parts = append(parts, z)
		}
		var err error
		if x, err = gorgonia.Concat(axis, parts...); err != nil {
			return nil, err
		}
	}
	return x, nil
}

func (b *gradBuilder) maxPool(n *graph.Node) ([]*gorgonia.Node, error) {
	if n.AttrInt("storage_order", 0) != 0 {
		return nil, fmt.Errorf("storage_order 1 is not supported")
	}
	return b.pool(n, true)
}

func (b *gradBuilder) averagePool(n *graph.Node) ([]*gorgonia.Node, error) {
	return b.pool(n, false)
}

// pool covers 1-D and 2-D MaxPool and AveragePool with gradPool, since
// gorgonia's AveragePool2D divides by the input width instead of the
// window size, and its MaxPool2D has no ceil_mode or dilations and
// misplaces uneven pads.
func (b *gradBuilder) pool(n *graph.Node, isMax bool) ([]*gorgonia.Node, error) {
	x, err := b.input(n, 0)
	if err != nil {
		return nil, err
	}
	sx := slices.Clone([]int(x.Shape()))
	if len(sx) != 3 && len(sx) != 4 {
		return nil, fmt.Errorf("want 1-D or 2-D pooling, got input %v", sx)
	}
	ceil := n.AttrInt("ceil_mode", 0) != 0
	win, err := gradWindowAttrs(n, sx[2:], nil)
	if err != nil {
		return nil, err
	}
	oneD := len(sx) == 3
	if oneD {
		sx = []int{sx[0], sx[1], 1, sx[2]}
		win = gradWindow{
			kernel:    []int{1, win.kernel[0]},
			strides:   []int{1, win.strides[0]},
			dilations: []int{1, win.dilations[0]},
			pads:      []int{0, win.pads[0], 0, win.pads[1]},
		}
		if x, err = gradReshape(x, sx...); err != nil {
			return nil, err
		}
	}
	p := &gradPool{
		max:             isMax,
		countIncludePad: n.AttrInt("count_include_pad", 0) != 0,
		in:              [4]int(sx),
	}
	copy(p.kernel[:], win.kernel)
	copy(p.strides[:], win.strides)
	copy(p.dilations[:], win.dilations)
	copy(p.pads[:], win.pads)
	for i := range 2 {
		if p.out[i], err = win.outSize(i, sx[2+i], ceil); err != nil {
			return nil, err
		}
	}
	y, err := gorgonia.ApplyOp(p, x)
	if err != nil {
		return nil, err
	}
	if oneD {
		if y, err = gradReshape(y, sx[0], sx[1], p.out[1]); err != nil {
			return nil, err
		}
	}
	return []*gorgonia.Node{y}, nil
}

// globalAveragePool is a mean over the flattened spatial axes;
// gorgonia's GlobalAveragePool2D has no gradient.
func (b *gradBuilder) globalAveragePool(n *graph.Node) ([]*gorgonia.Node, error) {
	x, err := b.input(n, 0)
	if err != nil {
		return nil, err
	}
	s := slices.Clone([]int(x.Shape()))
	if len(s) < 3 {
		return nil, fmt.Errorf("want an input of rank 3 or more, got %v", s)
	}
	// One axis: gorgonia's gradient of a sum over several axes is wrong.
	flat, err := gradReshape(x, s[0], s[1], mustElements(s[2:]))
	if err != nil {
		return nil, err
	}
	m, err := gorgonia.Mean(flat, 2)
	if err != nil {
		return nil, err
	}
	out := gradFill(len(s), 1)
	out[0], out[1] = s[0], s[1]
	y, err := gradReshape(m, out...)
	return []*gorgonia.Node{y}, err
}

// batchNorm is the inference form, y = scale·(x − mean)/√(var + ε) + B,
// built from gorgonia's elementwise ops so that every operand has a
// gradient.
func (b *gradBuilder) batchNorm(n *graph.Node) ([]*gorgonia.Node, error) {
	if n.AttrInt("training_mode", 0) != 0 {
		return nil, fmt.Errorf("training_mode is not supported")
	}
	if n.Opset() < 9 && n.AttrInt("spatial", 1) != 1 {
		return nil, fmt.Errorf("spatial=0 is not supported")
	}
	in, err := b.inputs(n, 5)
	if err != nil {
		return nil, err
	}
	x := in[0]
	s := x.Shape()
	if len(s) < 2 {
		return nil, fmt.Errorf("want an input of rank 2 or more, got %v", s)
	}
	c := s[1]
	bshape := gradFill(len(s), 1)
	bshape[1] = c
	var ps [4]*gorgonia.Node
	for i := range ps {
		p := in[1+i]
		if sp := p.Shape(); len(sp) != 1 || sp[0] != c {
			return nil, fmt.Errorf("input %d has shape %v, want [%d]", 1+i, sp, c)
		}
		if ps[i], err = gradReshape(p, bshape...); err != nil {
			return nil, err
		}
	}
	scale, bias, mean, variance := ps[0], ps[1], ps[2], ps[3]
	eps := float64(n.AttrFloat("epsilon", 1e-5))
	shifted, err := gorgonia.Add(variance, b.scalarLike(variance, eps))
	if err != nil {
		return nil, err
	}
	// Not InverseSqrt: gorgonia differentiates it as −g/(2y³), not −g·y³/2.
	std, err := gorgonia.Sqrt(shifted)
	if err != nil {
		return nil, err
	}
	k, err := gorgonia.HadamardDiv(scale, std)
	if err != nil {
		return nil, err
	}
	y, err := b.broadcast(gradSub, x, mean)
	if err != nil {
		return nil, err
	}
	if y, err = b.broadcast(gradMul, y, k); err != nil {
		return nil, err
	}
	if y, err = b.broadcast(gradAdd, y, bias); err != nil {
		return nil, err
	}
	return []*gorgonia.Node{y}, nil
}

// gradSoftmax covers Softmax and LogSoftmax: from opset 13 along one
// axis, before that over the input flattened to 2-D at the axis.
func gradSoftmax(f func(*gorgonia.Node, ...int) (*gorgonia.Node, error)) gradOpBuilder {
	return func(b *gradBuilder, n *graph.Node) ([]*gorgonia.Node, error) {
		x, err := b.input(n, 0)
		if err != nil {
			return nil, err
		}
		s := slices.Clone([]int(x.Shape()))
		if len(s) == 0 {
			return nil, fmt.Errorf("want a tensor, got a scalar")
		}
		modern := n.Opset() >= 13
		def := int64(1)
		if modern {
			def = -1
		}
		axis, err := gradAxis(n.AttrInt("axis", def), len(s))
		if err != nil {
			return nil, err
		}
		if modern {
			y, err := f(x, axis)
			return []*gorgonia.Node{y}, err
		}
		flat, err := gradReshape(x, mustElements(s[:axis]), mustElements(s[axis:]))
		if err != nil {
			return nil, err
		}
		y, err := f(flat, 1)
		if err != nil {
			return nil, err
		}
		y, err = gradReshape(y, s...)
		return []*gorgonia.Node{y}, err
	}
}

// gradLogSoftmax is gorgonia's LogSoftMax applied to a copy of x. The
// hash of gorgonia's softmax op leaves out whether it takes the log, so
// LogSoftMax(x) and SoftMax(x) along one axis would otherwise be merged
// into one node.
func gradLogSoftmax(x *gorgonia.Node, axes ...int) (*gorgonia.Node, error) {
	c, err := gorgonia.ApplyOp(gradReshapeOp{from: x.Shape().Clone(), to: x.Shape().Clone()}, x)
	if err != nil {
		return nil, err
	}
	return gorgonia.LogSoftMax(c, axes...)
}

// gradAxis normalizes a possibly negative axis for the given rank.
func gradAxis(axis int64, rank int) (int, error) {
	if axis < -int64(rank) || axis >= int64(rank) {
		return 0, fmt.Errorf("axis %d is out of range for rank %d", axis, rank)
	}
	if axis < 0 {
		axis += int64(rank)
	}
	return int(axis), nil
}

func (b *gradBuilder) flatten(n *graph.Node) ([]*gorgonia.Node, error) {
	x, err := b.input(n, 0)
	if err != nil {
		return nil, err
	}
	s := []int(x.Shape())
	axis := n.AttrInt("axis", 1)
	if axis == int64(len(s)) {
		y, err := gradReshape(x, mustElements(s), 1)
		return []*gorgonia.Node{y}, err
	}
	a, err := gradAxis(axis, len(s))
	if err != nil {
		return nil, err
	}
	y, err := gradReshape(x, mustElements(s[:a]), mustElements(s[a:]))
	return []*gorgonia.Node{y}, err
}

func (b *gradBuilder) reshape(n *graph.Node) ([]*gorgonia.Node, error) {
	x, err := b.input(n, 0)
	if err != nil {
		return nil, err
	}
	var target []int64
	if n.Opset() < 5 {
		target = n.AttrInts("shape", nil)
	} else {
		t, err := b.constInput(n, 1)
		if err != nil {
			return nil, err
		}
		d, ok := t.Data.([]int64)
		if !ok || len(t.Shape) != 1 {
			return nil, fmt.Errorf("shape is %s, want a 1-D int64 tensor", t)
		}
		target = d
	}
	s := []int(x.Shape())
	allowZero := n.AttrInt("allowzero", 0) != 0
	out := make([]int, len(target))
	infer := -1
	known := 1
	for i, d := range target {
		switch {
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has more than one -1", target)
			}
			infer = i
			continue
		case d == 0 && !allowZero:
			if i >= len(s) {
				return nil, fmt.Errorf("shape %v copies dimension %d of a rank-%d input", target, i, len(s))
			}
			out[i] = s[i]
		case d < 0:
			return nil, fmt.Errorf("bad dimension %d in shape %v", d, target)
		default:
			out[i] = int(d)
		}
		known *= out[i]
	}
	total := mustElements(s)
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", s, target)
		}
		out[infer] = total / known
	}
	if mustElements(out) != total {
		return nil, fmt.Errorf("cannot reshape %v to %v", s, target)
	}
	y, err := gradReshape(x, out...)
	return []*gorgonia.Node{y}, err
}

// axesArg reads the axes of Squeeze and Unsqueeze: an attribute before
// opset 13, an optional constant input from it.
func (b *gradBuilder) axesArg(n *graph.Node) ([]int64, error) {
	if n.Opset() < 13 {
		return n.AttrInts("axes", nil), nil
	}
	if n.Input(1) == nil {
		return nil, nil
	}
	t, err := b.constInput(n, 1)
	if err != nil {
		return nil, err
	}
	d, ok := t.Data.([]int64)
	if !ok {
		return nil, fmt.Errorf("axes is %s, want int64", t)
	}
	return d, nil
}

func (b *gradBuilder) squeeze(n *graph.Node) ([]*gorgonia.Node, error) {
	x, err := b.input(n, 0)
	if err != nil {
		return nil, err
	}
	axes, err := b.axesArg(n)
	if err != nil {
		return nil, err
	}
	s := []int(x.Shape())
	drop := make([]bool, len(s))
	for _, a := range axes {
		i, err := gradAxis(a, len(s))
		if err != nil {
			return nil, err
		}
		if s[i] != 1 {
			return nil, fmt.Errorf("cannot squeeze axis %d of shape %v", a, s)
		}
		drop[i] = true
	}
	var out []int
	for i, d := range s {
		if !(drop[i] || axes == nil && d == 1) {
			out = append(out, d)
		}
	}
	y, err := gradReshape(x, out...)
	return []*gorgonia.Node{y}, err
}

func (b *gradBuilder) unsqueeze(n *graph.Node) ([]*gorgonia.Node, error) {
	x, err := b.input(n, 0)
	if err != nil {
		return nil, err
	}
	axes, err := b.axesArg(n)
	if err != nil {
		return nil, err
	}
	s := []int(x.Shape())
	rank := len(s) + len(axes)
	insert := make([]bool, rank)
	for _, a := range axes {
		i, err := gradAxis(a, rank)
		if err != nil {
			return nil, err
		}
		if insert[i] {
			return nil, fmt.Errorf("axis %d is repeated", a)
		}
		insert[i] = true
	}
	out := make([]int, 0, rank)
	k := 0
	for i := range rank {
		if insert[i] {
			out = append(out, 1)
		} else {
			out = append(out, s[k])
			k++
		}
	}
	y, err := gradReshape(x, out...)
	return []*gorgonia.Node{y}, err
}

func (b *gradBuilder) transpose(n *graph.Node) ([]*gorgonia.Node, error) {
	x, err := b.input(n, 0)
	if err != nil {
		return nil, err
	}
	r := len(x.Shape())
	perm := gradInts(n.AttrInts("perm", nil))
	if perm == nil {
		for i := range r {
			perm = append(perm, r-1-i)
		}
	}
	if len(perm) != r {
		return nil, fmt.Errorf("perm %v for rank %d", perm, r)
	}
	seen := make([]bool, r)
	for _, p := range perm {
		if p < 0 || p >= r || seen[p] {
			return nil, fmt.Errorf("perm %v is not a permutation", perm)
		}
		seen[p] = true
	}
	if r < 2 {
		return []*gorgonia.Node{x}, nil
	}
	y, err := gorgonia.Transpose(x, perm...)
	return []*gorgonia.Node{y}, err
}
