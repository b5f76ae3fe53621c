package passes

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// Reconstruction refits a pruned layer so that it computes, on calibration
// data, what the layer of the original model computed. For each output
// channel it solves the least-squares problem
//
//	min ‖D_K·θ − y‖² + λ‖θ − θ₀‖²
//
// over the weights K the mask kept (and the bias), where the rows of D are
// the layer's inputs as the pruned model computes them (so each layer also
// makes up for the error of the layers before it), y the original model's
// output of the layer, and θ₀ the weights as pruning left them. The small
// ridge term λ = reconstructDamping·mean(diag(D_KᵀD_K)) keeps the system
// well-posed when a channel keeps more weights than the data pins down,
// and pulls such weights towards their old values rather than towards
// zero. The normal equations are accumulated over the calibration batches
// in float64 and solved by Cholesky factorization, one output channel at a
// time: the cost is O(rows·F²) to accumulate and O(Cout·k³) to solve, with
// F the features of a row and k the weights a channel keeps.
//
// Conv (any rank, groups, padding, strides, dilations), Gemm and MatMul by
// a constant 2-D B are refitted; ConvTranspose, LSTM, GRU and RNN layers,
// weights shared by several layers and layers inside subgraphs keep the
// pruned weights as they are, with a note.

// reconstructDamping scales the ridge term λ relative to the mean diagonal
// of the Gram matrix, as SparseGPT's dampening does.
const reconstructDamping = 0.01

// reconstructChunk bounds the samples run at once, and so the memory of the
// design matrices built from them.
const reconstructChunk = 64

// A linearLayer is a pruned layer seen as a linear map: for each group,
// design rows of features times the group's weights give the outputs of
// the group's channels.
type linearLayer struct {
	node   *graph.Node
	groups int
	// features is the number of columns of a group's design matrix,
	// without the bias column; outs the output channels of all groups.
	features, outs int
	// element is the index in the weight tensor of feature f of output
	// channel o.
	element func(o, f int) int
	// scale multiplies the design rows (Gemm's alpha).
	scale float64
	// bias is the constant refitted with the weights, one per output
	// channel, nil when the layer has none or it stays as it is;
	// biasScale multiplies it (Gemm's beta).
	bias      *graph.Value
	biasScale float64
	// fixed is a bias that stays as it is (another layer reads it too,
	// or a node computes it), nil when there is none; its numbers come
	// from a run of the pruned model.
	fixed *graph.Value
	// rows builds, from the layer's input x, its original output y and
	// the fixed bias (nil when there is none), the design matrix and the
	// targets (outputs less the fixed bias) of each group.
	rows func(x, y, fixed *runtime.Tensor) ([]groupRows, error)
}

// groupRows are one group's design matrix, rows×features, and targets,
// rows×(outs/groups), row-major.
type groupRows struct {
	design, target []float64
	rows           int
}

// reconstruct refits the targets' layers one after the other, in
// topological order, and writes their weights and biases into m. original
// is m before pruning; calib are the calibration batches.
func reconstruct(m, original *graph.Model, targets []*pruneTarget, keep [][]bool, calib []map[string]*runtime.Tensor) ([]string, error) {
	return reconstructReporting(m, original, targets, keep, calib, nil)
}

// reconstructReporting is reconstruct telling progress, when not nil, of
// each layer as it starts.
func reconstructReporting(m, original *graph.Model, targets []*pruneTarget, keep [][]bool, calib []map[string]*runtime.Tensor, progress func(done, total int)) ([]string, error) {
	ref, err := runtime.Compile(original.Graph)
	if err != nil {
		return nil, fmt.Errorf("reconstruction: the original model: %w", err)
	}
	var chunks []map[string]*runtime.Tensor
	for i, batch := range calib {
		cs, err := splitBatch(batch, reconstructChunk)
		if err != nil {
			return nil, fmt.Errorf("calibration batch %d: %w", i, err)
		}
		chunks = append(chunks, cs...)
	}
	var notes []string
	for ti, t := range targets {
		if progress != nil {
			progress(ti+1, len(targets))
		}
		layer, why := asLinearLayer(t.w)
		if why != "" {
			notes = append(notes, fmt.Sprintf("%s not refitted: %s", t.w.Layer(), why))
			continue
		}
		note, err := refit(m, ref, layer, t, keep[ti], chunks)
		if err != nil {
			return notes, fmt.Errorf("reconstructing %s: %w", t.w.Layer(), err)
		}
		notes = append(notes, note)
	}
	return notes, nil
}

// splitBatch splits a calibration batch into batches of at most n samples.
func splitBatch(batch map[string]*runtime.Tensor, n int) ([]map[string]*runtime.Tensor, error) {
	count := -1
	for name, t := range batch {
		if len(t.Shape) == 0 {
			return nil, fmt.Errorf("input %q is a scalar, not a batch of samples", name)
		}
		if count >= 0 && t.Shape[0] != count {
			return nil, fmt.Errorf("input %q has %d samples, others %d", name, t.Shape[0], count)
		}
		count = t.Shape[0]
	}
	var out []map[string]*runtime.Tensor
	for lo := 0; lo < count; lo += n {
		hi := min(lo+n, count)
		part := map[string]*runtime.Tensor{}
		for name, t := range batch {
			rows, err := t.Rows(lo, hi)
			if err != nil {
				return nil, fmt.Errorf("input %q: %w", name, err)
			}
			part[name] = rows
		}
		out = append(out, part)
	}
	return out, nil
}

// asLinearLayer describes w's layer for refitting, or says why it cannot.
func asLinearLayer(w *PrunableWeight) (*linearLayer, string) {
	n := w.Layer()
	switch {
	case len(w.Layers) > 1:
		return nil, fmt.Sprintf("its weight %q is shared by %d layers", w.Name(), len(w.Layers))
	case n.Graph.Parent != nil:
		return nil, "it is inside a subgraph"
	case len(n.Outputs) == 0 || n.Outputs[0] == nil || n.Input(0) == nil:
		return nil, "it has no output or no input"
	}
	switch {
	case n.OpType == "Conv":
		return convLayer(n, w)
	case n.OpType == "Gemm":
		return gemmLayer(n, w)
	case n.OpType == "MatMul" && w.Input == 1 && len(w.Dims()) == 2:
		return matMulLayer(n, w)
	}
	return nil, fmt.Sprintf("refitting %s weights of shape %v is not supported", n.OpType, w.Dims())
}

// refitBias returns the bias value of a layer when it can be refitted: a
// constant floating-point vector of one value per output channel that
// only this layer reads.
func refitBias(n *graph.Node, b *graph.Value, outs int) *graph.Value {
	t := constantTensor(b)
	if t == nil || !isFoldFloat(onnx.DataType(t.GetDataType())) || b.Graph.IsOutput(b) || len(b.Uses) != 1 || b.Uses[0].Node != n {
		return nil
	}
	if size, err := onnx.NumElements(t.GetDims()); err != nil || size != int64(outs) {
		return nil
	}
	if d := t.GetDims(); len(d) == 0 || len(d) > 2 || len(d) == 2 && d[0] != 1 {
		return nil
	}
	return b
}

func convLayer(n *graph.Node, w *PrunableWeight) (*linearLayer, string) {
	dims := w.Dims()
	group := int(n.AttrInt("group", 1))
	cout, cinG := int(dims[0]), int(dims[1])
	kernel := make([]int, len(dims)-2)
	kernelSize := 1
	for i, d := range dims[2:] {
		kernel[i] = int(d)
		kernelSize *= int(d)
	}
	if group < 1 || cout%group != 0 {
		return nil, fmt.Sprintf("group %d does not divide %d output channels", group, cout)
	}
	features := cinG * kernelSize
	l := &linearLayer{node: n, groups: group, features: features, outs: cout, scale: 1, biasScale: 1,
		element: func(o, f int) int { return o*features + f }}
	if b := n.Input(2); b != nil {
		if l.bias = refitBias(n, b, cout); l.bias == nil {
			l.fixed = b
		}
	}
	spatial := len(kernel)
	strides := n.AttrInts("strides", nil)
	dilations := n.AttrInts("dilations", nil)
	pads := n.AttrInts("pads", nil)
	autoPad := n.AttrString("auto_pad", "NOTSET")
	l.rows = func(x, y, fixed *runtime.Tensor) ([]groupRows, error) {
		if x.Rank() != spatial+2 || y.Rank() != spatial+2 || x.Shape[1] != group*cinG || y.Shape[1] != cout || x.Shape[0] != y.Shape[0] {
			return nil, fmt.Errorf("input %v and output %v do not fit weights %v", x.Shape, y.Shape, dims)
		}
		g := convGeometry{in: x.Shape[2:], out: y.Shape[2:], kernel: kernel}
		for d := range spatial {
			g.stride = append(g.stride, int(at(strides, d, 1)))
			g.dilation = append(g.dilation, int(at(dilations, d, 1)))
			total := max(0, (g.out[d]-1)*g.stride[d]+(kernel[d]-1)*g.dilation[d]+1-g.in[d])
			switch autoPad {
			case "SAME_UPPER":
				g.pad = append(g.pad, total/2)
			case "SAME_LOWER":
				g.pad = append(g.pad, total-total/2)
			case "VALID":
				g.pad = append(g.pad, 0)
			default:
				g.pad = append(g.pad, int(at(pads, d, 0)))
			}
		}
		xs, err := float64sOf(x)
		if err != nil {
			return nil, err
		}
		ys, err := float64sOf(y)
		if err != nil {
			return nil, err
		}
		if fixed != nil {
			bs, err := float64sOf(fixed)
			if err != nil || len(bs) != cout {
				return nil, fmt.Errorf("bias %s does not hold %d values", fixed, cout)
			}
			spatialSize := len(ys) / (y.Shape[0] * cout)
			for i := range ys {
				ys[i] -= bs[i/spatialSize%cout]
			}
		}
		return g.im2col(xs, ys, x.Shape[0], group, cinG, cout/group), nil
	}
	return l, ""
}

// at returns xs[i], or def when xs is too short.
func at(xs []int64, i int, def int64) int64 {
	if i < len(xs) {
		return xs[i]
	}
	return def
}

// convGeometry is the spatial layout of one convolution.
type convGeometry struct {
	in, out, kernel, stride, dilation, pad []int
}

// im2col lays out the convolution of x [N, group·cinG, in...] as a matrix
// product per group: a row per sample and output position, a column per
// input channel of the group and kernel position (the order of the
// weight's elements), and the targets y [N, group·coutG, out...] beside.
func (g convGeometry) im2col(x, y []float64, samples, group, cinG, coutG int) []groupRows {
	inSize, outSize, kSize := 1, 1, 1
	for d := range g.in {
		inSize *= g.in[d]
		outSize *= g.out[d]
		kSize *= g.kernel[d]
	}
	// offset[p·kSize+k] is where output position p reads kernel position
	// k in a channel of x, −1 in the padding.
	offset := make([]int, outSize*kSize)
	pos := make([]int, len(g.out))
	kpos := make([]int, len(g.kernel))
	for p := range outSize {
		rem := p
		for d := len(g.out) - 1; d >= 0; d-- {
			pos[d] = rem % g.out[d]
			rem /= g.out[d]
		}
		for k := range kSize {
			rem := k
			for d := len(g.kernel) - 1; d >= 0; d-- {
				kpos[d] = rem % g.kernel[d]
				rem /= g.kernel[d]
			}
			off := 0
			for d := range g.in {
				c := pos[d]*g.stride[d] - g.pad[d] + kpos[d]*g.dilation[d]
				if c < 0 || c >= g.in[d] {
					off = -1
					break
				}
				off = off*g.in[d] + c
			}
			offset[p*kSize+k] = off
		}
	}
	features := cinG * kSize
	rows := samples * outSize
	out := make([]groupRows, group)
	for gi := range group {
		design := make([]float64, rows*features)
		target := make([]float64, rows*coutG)
		for n := range samples {
			for p := range outSize {
				row := (n*outSize + p)
				dst := design[row*features : (row+1)*features]
				for ci := range cinG {
					channel := x[(n*group*cinG+gi*cinG+ci)*inSize:]
					for k := range kSize {
						if off := offset[p*kSize+k]; off >= 0 {
							dst[ci*kSize+k] = channel[off]
						}
					}
				}
				for co := range coutG {
					target[row*coutG+co] = y[(n*group*coutG+gi*coutG+co)*outSize+p]
				}
			}
		}
		out[gi] = groupRows{design: design, target: target, rows: rows}
	}
	return out
}

func gemmLayer(n *graph.Node, w *PrunableWeight) (*linearLayer, string) {
	dims := w.Dims()
	transA, transB := n.AttrInt("transA", 0) != 0, n.AttrInt("transB", 0) != 0
	k, outs := int(dims[0]), int(dims[1])
	element := func(o, f int) int { return f*outs + o }
	if transB {
		outs, k = k, outs
		element = func(o, f int) int { return o*k + f }
	}
	alpha, beta := float64(n.AttrFloat("alpha", 1)), float64(n.AttrFloat("beta", 1))
	if alpha == 0 {
		return nil, "alpha is 0"
	}
	l := &linearLayer{node: n, groups: 1, features: k, outs: outs, element: element, scale: alpha, biasScale: beta}
	if c := n.Input(2); c != nil && beta != 0 {
		if l.bias = refitBias(n, c, outs); l.bias == nil {
			l.fixed = c
		}
	}
	l.rows = func(x, y, fixed *runtime.Tensor) ([]groupRows, error) {
		if x.Rank() != 2 || y.Rank() != 2 || y.Shape[1] != outs {
			return nil, fmt.Errorf("input %v and output %v do not fit B %v", x.Shape, y.Shape, dims)
		}
		m := y.Shape[0]
		xs, err := float64sOf(x)
		if err != nil {
			return nil, err
		}
		ys, err := float64sOf(y)
		if err != nil {
			return nil, err
		}
		design := make([]float64, m*k)
		for r := range m {
			for f := range k {
				if transA {
					design[r*k+f] = xs[f*m+r]
				} else {
					design[r*k+f] = xs[r*k+f]
				}
			}
		}
		if fixed != nil {
			cs, err := float64sOf(fixed)
			if err != nil {
				return nil, fmt.Errorf("C: %w", err)
			}
			dims := make([]int64, len(fixed.Shape))
			for i, d := range fixed.Shape {
				dims[i] = int64(d)
			}
			if err := subtractBroadcast(ys, m, outs, cs, dims, beta); err != nil {
				return nil, fmt.Errorf("C: %w", err)
			}
		}
		return []groupRows{{design: design, target: ys, rows: m}}, nil
	}
	return l, ""
}

// subtractBroadcast subtracts scale·c, which broadcasts to [m, n], from the
// row-major y [m, n].
func subtractBroadcast(y []float64, m, n int, c []float64, dims []int64, scale float64) error {
	rows, cols := 1, 1
	switch len(dims) {
	case 0:
	case 1:
		cols = int(dims[0])
	case 2:
		rows, cols = int(dims[0]), int(dims[1])
	default:
		return fmt.Errorf("shape %v does not broadcast to [%d %d]", dims, m, n)
	}
	if rows != 1 && rows != m || cols != 1 && cols != n {
		return fmt.Errorf("shape %v does not broadcast to [%d %d]", dims, m, n)
	}
	for r := range m {
		for j := range n {
			y[r*n+j] -= scale * c[(r%rows)*cols+j%cols]
		}
	}
	return nil
}

func matMulLayer(n *graph.Node, w *PrunableWeight) (*linearLayer, string) {
	dims := w.Dims()
	k, outs := int(dims[0]), int(dims[1])
	l := &linearLayer{node: n, groups: 1, features: k, outs: outs, scale: 1,
		element: func(o, f int) int { return f*outs + o }}
	l.rows = func(x, y, _ *runtime.Tensor) ([]groupRows, error) {
		if x.Rank() < 2 || x.Shape[x.Rank()-1] != k || y.Shape[y.Rank()-1] != outs || x.Len()/k != y.Len()/outs {
			return nil, fmt.Errorf("input %v and output %v do not fit B %v", x.Shape, y.Shape, dims)
		}
		xs, err := float64sOf(x)
		if err != nil {
			return nil, err
		}
		ys, err := float64sOf(y)
		if err != nil {
			return nil, err
		}
		return []groupRows{{design: xs, target: ys, rows: x.Len() / k}}, nil
	}
	return l, ""
}

// float64sOf copies a float tensor's data as float64.
func float64sOf(t *runtime.Tensor) ([]float64, error) {
	switch d := t.Data.(type) {
	case []float32:
		out := make([]float64, len(d))
		for i, v := range d {
			out[i] = float64(v)
		}
		return out, nil
	case []float64:
		return append([]float64(nil), d...), nil
	}
	return nil, fmt.Errorf("want float values, got %s", t)
}

// normalEquations are one group's accumulated DᵀD (with the bias column
// last, when there is one), Dᵀy for each of its output channels, and yᵀy.
type normalEquations struct {
	gram  *mat.SymDense
	cross *mat.Dense
	yy    []float64
}

// refit solves the layer's least-squares problems and writes the result.
// It returns a note with the output error before and after.
func refit(m *graph.Model, ref *runtime.Plan, l *linearLayer, t *pruneTarget, keep []bool, chunks []map[string]*runtime.Tensor) (string, error) {
	plan, err := runtime.Compile(m.Graph)
	if err != nil {
		return "", err
	}
	in, out := l.node.Inputs[0].Name, l.node.Outputs[0].Name
	fetch := []string{in}
	if l.fixed != nil {
		fetch = append(fetch, l.fixed.Name)
	}
	cols := l.features
	if l.bias != nil {
		cols++
	}
	outsG := l.outs / l.groups
	eqs := make([]normalEquations, l.groups)
	for gi := range eqs {
		eqs[gi] = normalEquations{gram: mat.NewSymDense(cols, nil), cross: mat.NewDense(cols, outsG, nil), yy: make([]float64, outsG)}
	}
	var cross mat.Dense
	var energy float64 // Σy² of the original outputs, bias included
	for ci, chunk := range chunks {
		x, err := plan.Fetch(chunk, fetch)
		if err != nil {
			return "", fmt.Errorf("calibration chunk %d: the pruned model: %w", ci, err)
		}
		y, err := ref.Fetch(chunk, []string{out})
		if err != nil {
			return "", fmt.Errorf("calibration chunk %d: the original model: %w", ci, err)
		}
		ys, err := float64sOf(y[out])
		if err != nil {
			return "", err
		}
		for _, v := range ys {
			energy += v * v
		}
		var fixed *runtime.Tensor
		if l.fixed != nil {
			fixed = x[l.fixed.Name]
		}
		groups, err := l.rows(x[in], y[out], fixed)
		if err != nil {
			return "", err
		}
		for gi, g := range groups {
			design := g.design
			if l.bias != nil || l.scale != 1 {
				design = make([]float64, g.rows*cols)
				for r := range g.rows {
					row := design[r*cols : (r+1)*cols]
					for f := range l.features {
						row[f] = l.scale * g.design[r*l.features+f]
					}
					if l.bias != nil {
						row[l.features] = 1
					}
				}
			}
			d := mat.NewDense(g.rows, cols, design)
			y := mat.NewDense(g.rows, outsG, g.target)
			e := &eqs[gi]
			e.gram.SymRankK(e.gram, 1, d.T())
			cross.Reset()
			cross.Mul(d.T(), y)
			e.cross.Add(e.cross, &cross)
			for r := range g.rows {
				for o := range outsG {
					v := g.target[r*outsG+o]
					e.yy[o] += v * v
				}
			}
		}
	}

	var bias []float64
	if l.bias != nil {
		if bias, err = onnx.Float64s(constantTensor(l.bias)); err != nil {
			return "", err
		}
	}
	var before, after float64
	failed := 0
	for o := range l.outs {
		e := &eqs[o/outsG]
		local := o % outsG
		var kept []int // columns of the design matrix
		for f := range l.features {
			if keep[l.element(o, f)] {
				kept = append(kept, f)
			}
		}
		if l.bias != nil {
			kept = append(kept, l.features)
		}
		old := make([]float64, len(kept))
		for j, f := range kept {
			if f == l.features {
				old[j] = l.biasScale * bias[o]
			} else {
				old[j] = t.vals[l.element(o, f)]
			}
		}
		before += residual(e, kept, local, old)
		if len(kept) == 0 {
			continue
		}
		theta, err := solveRidge(e, kept, local, old)
		if err != nil {
			failed++
			after += residual(e, kept, local, old)
			continue
		}
		after += residual(e, kept, local, theta)
		for j, f := range kept {
			if f == l.features {
				if l.biasScale != 0 {
					bias[o] = theta[j] / l.biasScale
				}
			} else {
				t.vals[l.element(o, f)] = theta[j]
			}
		}
	}
	if err := t.w.SetFloat64s(t.vals); err != nil {
		return "", err
	}
	if l.bias != nil {
		if err := setConstantValues(l.bias, bias); err != nil {
			return "", err
		}
	}
	note := fmt.Sprintf("%s refitted on calibration data: output error %.3g → %.3g of the original's energy", l.node, before/energy, after/energy)
	if l.fixed != nil {
		note += fmt.Sprintf("; its bias %q, not a constant of its own, stays", l.fixed.Name)
	}
	if failed > 0 {
		note += fmt.Sprintf("; %d output channels kept their pruned weights (singular system)", failed)
	}
	return note, nil
}

// residual is ‖D_K·θ − y‖² for output channel o of a group, from the
// normal equations: θᵀGθ − 2θᵀc + yᵀy.
func residual(e *normalEquations, kept []int, o int, theta []float64) float64 {
	r := e.yy[o]
	for i, fi := range kept {
		r -= 2 * theta[i] * e.cross.At(fi, o)
		for j, fj := range kept {
			r += theta[i] * e.gram.At(fi, fj) * theta[j]
		}
	}
	return math.Max(r, 0)
}

// solveRidge solves (G_KK + λI)·θ = c_K + λ·θ₀ for output channel o.
func solveRidge(e *normalEquations, kept []int, o int, prior []float64) ([]float64, error) {
	k := len(kept)
	var trace float64
	for _, f := range kept {
		trace += e.gram.At(f, f)
	}
	lambda := reconstructDamping * trace / float64(k)
	if lambda == 0 || math.IsNaN(lambda) || math.IsInf(lambda, 0) {
		return nil, errors.New("no signal")
	}
	a := mat.NewSymDense(k, nil)
	b := mat.NewVecDense(k, nil)
	for i, fi := range kept {
		for j := i; j < k; j++ {
			a.SetSym(i, j, e.gram.At(fi, kept[j]))
		}
		a.SetSym(i, i, a.At(i, i)+lambda)
		b.SetVec(i, e.cross.At(fi, o)+lambda*prior[i])
	}
	var ch mat.Cholesky
	if !ch.Factorize(a) {
		return nil, errors.New("not positive definite")
	}
	var x mat.VecDense
	// A Condition error only warns that the system is ill-conditioned;
	// the damping keeps the solution bounded.
	if err := ch.SolveVecTo(&x, b); err != nil && !errors.As(err, new(mat.Condition)) {
		return nil, err
	}
	theta := make([]float64, k)
	for i := range theta {
		theta[i] = x.AtVec(i)
	}
	return theta, nil
}
