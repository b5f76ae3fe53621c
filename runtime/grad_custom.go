package runtime

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// gradPool is a gorgonia op for ONNX MaxPool and AveragePool on NCHW
// input of a fixed shape, with the full ONNX geometry: uneven pads,
// ceil_mode (through out), dilations and count_include_pad.
type gradPool struct {
	max             bool
	countIncludePad bool
	kernel          [2]int
	strides         [2]int
	dilations       [2]int
	pads            [4]int // top, left, bottom, right
	in              [4]int // N, C, H, W
	out             [2]int // output H, W
}

var (
	_ gorgonia.SDOp = (*gradPool)(nil)
	_ gorgonia.Op   = gradPoolGrad{}
	_ gorgonia.SDOp = gradArgmaxOneHot{}
)

func (p *gradPool) Arity() int { return 1 }

func (p *gradPool) Type() hm.Type {
	t := gorgonia.TensorType{Dims: 4, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}

func (p *gradPool) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{p.in[0], p.in[1], p.out[0], p.out[1]}, nil
}

func (p *gradPool) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("%v: got %d inputs, want 1", p, len(inputs))
	}
	x, err := gradDense(inputs[0], p.in[:])
	if err != nil {
		return nil, fmt.Errorf("%v: %w", p, err)
	}
	y := tensor.New(tensor.Of(x.Dtype()), tensor.WithShape(p.in[0], p.in[1], p.out[0], p.out[1]))
	switch xd := x.Data().(type) {
	case []float32:
		gradPoolForward(p, xd, y.Data().([]float32))
	case []float64:
		gradPoolForward(p, xd, y.Data().([]float64))
	default:
		return nil, fmt.Errorf("%v: unsupported element type %v", p, x.Dtype())
	}
	return y, nil
}

func (p *gradPool) ReturnsPtr() bool     { return false }
func (p *gradPool) CallsExtern() bool    { return false }
func (p *gradPool) OverwritesInput() int { return -1 }
func (p *gradPool) WriteHash(h hash.Hash) {
	fmt.Fprint(h, p.String())
}
func (p *gradPool) Hashcode() uint32 { return gradHash(p) }

func (p *gradPool) String() string {
	kind := "AveragePool"
	if p.max {
		kind = "MaxPool"
	}
	return fmt.Sprintf("%s{in %v, out %v, kernel %v, strides %v, dilations %v, pads %v, includePad %v}",
		kind, p.in, p.out, p.kernel, p.strides, p.dilations, p.pads, p.countIncludePad)
}

func (p *gradPool) DiffWRT(int) []bool { return []bool{true} }

func (p *gradPool) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("%v: got %d inputs, want 1", p, len(inputs))
	}
	dx, err := gorgonia.ApplyOp(gradPoolGrad{p}, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	return gorgonia.Nodes{dx}, nil
}

// span returns the kernel offsets [k0, k1) of output position o along
// spatial axis a (0 for height, 1 for width) that fall inside the input,
// and how many fall inside the padded input, which is what
// count_include_pad divides by.
func (p *gradPool) span(a, o int) (k0, k1, padded int) {
	size, s, d, k := p.in[2+a], p.strides[a], p.dilations[a], p.kernel[a]
	start := o*s - p.pads[a] // input index of kernel offset 0
	k0 = max(0, gradCeilDiv(-start, d))
	k1 = min(k, gradCeilDiv(size-start, d))
	padded = min(k, gradCeilDiv(size+p.pads[2+a]-start, d))
	return k0, max(k0, k1), padded
}

// gradCeilDiv is ⌈a/b⌉ for b > 0.
func gradCeilDiv(a, b int) int {
	if a <= 0 {
		return -(-a / b)
	}
	return (a + b - 1) / b
}

// divisor returns what the average over a window divides by, from its
// spans along the height and width.
func (p *gradPool) divisor(h0, h1, hp, w0, w1, wp int) int {
	if p.countIncludePad {
		return hp * wp
	}
	return (h1 - h0) * (w1 - w0)
}

func gradPoolForward[T float32 | float64](p *gradPool, x, y []T) {
	h, w := p.in[2], p.in[3]
	plane, oplane := h*w, p.out[0]*p.out[1]
	for nc := range p.in[0] * p.in[1] {
		xs := x[nc*plane : (nc+1)*plane]
		ys := y[nc*oplane : (nc+1)*oplane]
		for oh := range p.out[0] {
			h0, h1, hp := p.span(0, oh)
			for ow := range p.out[1] {
				w0, w1, wp := p.span(1, ow)
				var acc T
				if h0 < h1 && w0 < w1 {
					if p.max {
						acc = T(math.Inf(-1))
					}
					for kh := h0; kh < h1; kh++ {
						row := xs[(oh*p.strides[0]-p.pads[0]+kh*p.dilations[0])*w:]
						for kw := w0; kw < w1; kw++ {
							v := row[ow*p.strides[1]-p.pads[1]+kw*p.dilations[1]]
							if !p.max {
								acc += v
							} else if v > acc {
								acc = v
							}
						}
					}
					if !p.max {
						acc /= T(p.divisor(h0, h1, hp, w0, w1, wp))
					}
				}
				ys[oh*p.out[1]+ow] = acc
			}
		}
	}
}

// gradPoolGrad computes the input gradient of a gradPool from its input
// and output gradient. MaxPool sends each output's gradient to the first
// maximum of its window, the element the forward pass picked.
type gradPoolGrad struct{ p *gradPool }

func (g gradPoolGrad) Arity() int { return 2 }

func (g gradPoolGrad) Type() hm.Type {
	t := gorgonia.TensorType{Dims: 4, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t, t)
}

func (g gradPoolGrad) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(g.p.in[:]).Clone(), nil
}

func (g gradPoolGrad) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	p := g.p
	if len(inputs) != 2 {
		return nil, fmt.Errorf("%v: got %d inputs, want 2", g, len(inputs))
	}
	x, err := gradDense(inputs[0], p.in[:])
	if err != nil {
		return nil, fmt.Errorf("%v: input: %w", g, err)
	}
	dy, err := gradDense(inputs[1], []int{p.in[0], p.in[1], p.out[0], p.out[1]})
	if err != nil {
		return nil, fmt.Errorf("%v: output gradient: %w", g, err)
	}
	dx := tensor.New(tensor.Of(x.Dtype()), tensor.WithShape(p.in[:]...))
	switch xd := x.Data().(type) {
	case []float32:
		dyd, ok := dy.Data().([]float32)
		if !ok {
			return nil, fmt.Errorf("%v: mixed element types", g)
		}
		gradPoolBackward(p, xd, dyd, dx.Data().([]float32))
	case []float64:
		dyd, ok := dy.Data().([]float64)
		if !ok {
			return nil, fmt.Errorf("%v: mixed element types", g)
		}
		gradPoolBackward(p, xd, dyd, dx.Data().([]float64))
	default:
		return nil, fmt.Errorf("%v: unsupported element type %v", g, x.Dtype())
	}
	return dx, nil
}

func (g gradPoolGrad) ReturnsPtr() bool      { return false }
func (g gradPoolGrad) CallsExtern() bool     { return false }
func (g gradPoolGrad) OverwritesInput() int  { return -1 }
func (g gradPoolGrad) WriteHash(h hash.Hash) { fmt.Fprint(h, g.String()) }
func (g gradPoolGrad) Hashcode() uint32      { return gradHash(g) }
func (g gradPoolGrad) String() string        { return "Grad" + g.p.String() }

func gradPoolBackward[T float32 | float64](p *gradPool, x, dy, dx []T) {
	h, w := p.in[2], p.in[3]
	plane, oplane := h*w, p.out[0]*p.out[1]
	for i := range dx {
		dx[i] = 0
	}
	for nc := range p.in[0] * p.in[1] {
		xs := x[nc*plane : (nc+1)*plane]
		dxs := dx[nc*plane : (nc+1)*plane]
		dys := dy[nc*oplane : (nc+1)*oplane]
		for oh := range p.out[0] {
			h0, h1, hp := p.span(0, oh)
			for ow := range p.out[1] {
				w0, w1, wp := p.span(1, ow)
				if h0 >= h1 || w0 >= w1 {
					continue
				}
				d := dys[oh*p.out[1]+ow]
				share := d
				if !p.max {
					share = d / T(p.divisor(h0, h1, hp, w0, w1, wp))
				}
				best, at := T(0), -1
				for kh := h0; kh < h1; kh++ {
					r := (oh*p.strides[0] - p.pads[0] + kh*p.dilations[0]) * w
					for kw := w0; kw < w1; kw++ {
						i := r + ow*p.strides[1] - p.pads[1] + kw*p.dilations[1]
						switch {
						case !p.max:
							dxs[i] += share
						case at < 0 || xs[i] > best:
							best, at = xs[i], i
						}
					}
				}
				if p.max {
					dxs[at] += d
				}
			}
		}
	}
}

// gradArgmaxOneHot maps logits (N, C) to the one-hot encoding of each
// row's first maximum: the labels of the self cross-entropy. It has no
// gradient; the loss treats the labels as given.
type gradArgmaxOneHot struct{}

func (gradArgmaxOneHot) Arity() int { return 1 }

func (gradArgmaxOneHot) Type() hm.Type {
	t := gorgonia.TensorType{Dims: 2, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}

func (gradArgmaxOneHot) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("argmax one-hot: got %d inputs, want 1", len(in))
	}
	s, ok := in[0].(tensor.Shape)
	if !ok || len(s) != 2 {
		return nil, fmt.Errorf("argmax one-hot: want a matrix, got %v", in[0])
	}
	return s.Clone(), nil
}

func (op gradArgmaxOneHot) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("argmax one-hot: got %d inputs, want 1", len(inputs))
	}
	s := inputs[0].Shape()
	if len(s) != 2 {
		return nil, fmt.Errorf("argmax one-hot: want a matrix, got %v", s)
	}
	z, err := gradDense(inputs[0], s)
	if err != nil {
		return nil, fmt.Errorf("argmax one-hot: %w", err)
	}
	y := tensor.New(tensor.Of(z.Dtype()), tensor.WithShape(s...))
	switch zd := z.Data().(type) {
	case []float32:
		gradOneHot(zd, y.Data().([]float32), s[1])
	case []float64:
		gradOneHot(zd, y.Data().([]float64), s[1])
	default:
		return nil, fmt.Errorf("argmax one-hot: unsupported element type %v", z.Dtype())
	}
	return y, nil
}

func gradOneHot[T float32 | float64](z, y []T, c int) {
	for r := 0; r+c <= len(z); r += c {
		best := r
		for i := r + 1; i < r+c; i++ {
			if z[i] > z[best] {
				best = i
			}
		}
		y[best] = 1
	}
}

func (gradArgmaxOneHot) ReturnsPtr() bool      { return false }
func (gradArgmaxOneHot) CallsExtern() bool     { return false }
func (gradArgmaxOneHot) OverwritesInput() int  { return -1 }
func (gradArgmaxOneHot) WriteHash(h hash.Hash) { fmt.Fprint(h, "ArgmaxOneHot") }
func (op gradArgmaxOneHot) Hashcode() uint32   { return gradHash(op) }
func (gradArgmaxOneHot) String() string        { return "ArgmaxOneHot" }
func (gradArgmaxOneHot) DiffWRT(int) []bool    { return []bool{false} }

func (gradArgmaxOneHot) SymDiff(gorgonia.Nodes, *gorgonia.Node, *gorgonia.Node) (gorgonia.Nodes, error) {
	return nil, fmt.Errorf("argmax one-hot has no gradient")
}

func gradHash(op gorgonia.Op) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

// gradDense returns a gorgonia value as a contiguous dense tensor of the
// given shape.
func gradDense(v gorgonia.Value, shape []int) (*tensor.Dense, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("want a dense tensor, got %T", v)
	}
	if d.IsMaterializable() {
		d = d.Materialize().(*tensor.Dense)
	}
	if got := []int(d.Shape()); len(got) != len(shape) || tensor.Shape(got).TotalSize() != tensor.Shape(shape).TotalSize() {
		return nil, fmt.Errorf("got shape %v, want %v", got, shape)
	}
	for i := range shape {
		if d.Shape()[i] != shape[i] {
			return nil, fmt.Errorf("got shape %v, want %v", d.Shape(), shape)
		}
	}
	return d, nil
}

// gradReshapeOp reshapes into a new tensor, or copies when the shapes
// are equal. Gorgonia's Reshape returns a
// view sharing its input's data, and its tape machine then lets a
// following elementwise op write in place into that view, which changes
// the input too: an initializer, or a value the backward pass reads
// later. Copying costs one pass over the data and rules that out.
type gradReshapeOp struct {
	from, to tensor.Shape
}

var _ gorgonia.SDOp = gradReshapeOp{}

func (op gradReshapeOp) Arity() int { return 1 }

func (op gradReshapeOp) Type() hm.Type {
	return hm.NewFnType(gradTensorType(len(op.from)), gradTensorType(len(op.to)))
}

func gradTensorType(dims int) hm.Type {
	if dims == 0 {
		return hm.TypeVariable('a')
	}
	return gorgonia.TensorType{Dims: dims, Of: hm.TypeVariable('a')}
}

func (op gradReshapeOp) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	return op.to.Clone(), nil
}

func (op gradReshapeOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("%v: got %d inputs, want 1", op, len(inputs))
	}
	x, err := gradDense(inputs[0], op.from)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	y := tensor.New(tensor.Of(x.Dtype()), tensor.WithShape(op.to...))
	switch d := x.Data().(type) {
	case []float32:
		copy(y.Data().([]float32), d)
	case []float64:
		copy(y.Data().([]float64), d)
	default:
		return nil, fmt.Errorf("%v: unsupported element type %v", op, x.Dtype())
	}
	return y, nil
}

func (op gradReshapeOp) ReturnsPtr() bool      { return false }
func (op gradReshapeOp) CallsExtern() bool     { return false }
func (op gradReshapeOp) OverwritesInput() int  { return -1 }
func (op gradReshapeOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op gradReshapeOp) Hashcode() uint32      { return gradHash(op) }
func (op gradReshapeOp) String() string        { return fmt.Sprintf("CopyReshape%v→%v", op.from, op.to) }
func (op gradReshapeOp) DiffWRT(int) []bool    { return []bool{true} }

func (op gradReshapeOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	dx, err := gorgonia.ApplyOp(gradReshapeOp{from: op.to.Clone(), to: op.from.Clone()}, grad)
	if err != nil {
		return nil, err
	}
	return gorgonia.Nodes{dx}, nil
}
