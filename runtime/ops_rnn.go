package runtime

import (
	"fmt"
	"math"
	"strings"

	"onnxopt/graph"
)

// The recurrent operators. Version 14 of each adds only the layout
// attribute, which older models lack and which defaults to the old layout,
// so one definition from version 7 serves both.
var rnnOps = []opDef{
	{"", "RNN", 7, compileRecurrent(cellRNN)},
	{"", "GRU", 7, compileRecurrent(cellGRU)},
	{"", "LSTM", 7, compileRecurrent(cellLSTM)},
}

// A cellKind is one of the three recurrent cells.
type cellKind int

const (
	cellRNN cellKind = iota
	cellGRU
	cellLSTM
)

func (k cellKind) String() string { return [...]string{"RNN", "GRU", "LSTM"}[k] }

// gates is the number of weight blocks stacked in W and R.
func (k cellKind) gates() int { return [...]int{1, 3, 4}[k] }

// defaultActivations are the spec's defaults for one direction.
func (k cellKind) defaultActivations() []string {
	return [...][]string{{"Tanh"}, {"Sigmoid", "Tanh"}, {"Sigmoid", "Tanh", "Tanh"}}[k]
}

// An activation is one of the functions the recurrent operators take by
// name, with its alpha and beta.
type activation struct {
	name        string // lower case
	alpha, beta float64
}

// activationParams lists the functions the recurrent operators accept and
// which of alpha and beta each takes, with the defaults of the ONNX
// operators of the same names.
var activationParams = map[string]struct {
	alpha, beta       bool
	defAlpha, defBeta float64
}{
	"relu": {}, "tanh": {}, "sigmoid": {}, "softsign": {}, "softplus": {},
	"affine":          {alpha: true, beta: true, defAlpha: 1, defBeta: 0},
	"leakyrelu":       {alpha: true, defAlpha: 0.01},
	"thresholdedrelu": {alpha: true, defAlpha: 1},
	"scaledtanh":      {alpha: true, beta: true, defAlpha: 1, defBeta: 1},
	"hardsigmoid":     {alpha: true, beta: true, defAlpha: 0.2, defBeta: 0.5},
	"elu":             {alpha: true, defAlpha: 1},
}

// parseActivations reads the activations of all directions. Alphas and
// betas are consumed in order by the functions that take them.
func parseActivations(names []string, alphas, betas []float32) ([]activation, error) {
	acts := make([]activation, len(names))
	for i, name := range names {
		lower := strings.ToLower(name)
		p, ok := activationParams[lower]
		if !ok {
			return nil, fmt.Errorf("unknown activation %q", name)
		}
		a := activation{name: lower, alpha: p.defAlpha, beta: p.defBeta}
		if p.alpha && len(alphas) > 0 {
			a.alpha, alphas = float64(alphas[0]), alphas[1:]
		}
		if p.beta && len(betas) > 0 {
			a.beta, betas = float64(betas[0]), betas[1:]
		}
		acts[i] = a
	}
	return acts, nil
}

// activate applies a to every element of x in place, after clipping to
// [-clip, clip] when clip is positive.
func activate[T blasFloat](a activation, x []T, clip T) {
	if clip > 0 {
		for i, v := range x {
			x[i] = min(max(v, -clip), clip)
		}
	}
	alpha, beta := T(a.alpha), T(a.beta)
	switch a.name {
	case "relu":
		for i, v := range x {
			x[i] = max(v, 0)
		}
	case "tanh":
		for i, v := range x {
			x[i] = T(math.Tanh(float64(v)))
		}
	case "sigmoid":
		for i, v := range x {
			x[i] = T(1 / (1 + math.Exp(-float64(v))))
		}
	case "affine":
		for i, v := range x {
			x[i] = alpha*v + beta
		}
	case "leakyrelu":
		for i, v := range x {
			if v < 0 {
				x[i] = alpha * v
			}
		}
	case "thresholdedrelu":
		for i, v := range x {
			if v <= alpha {
				x[i] = 0
			}
		}
	case "scaledtanh":
		for i, v := range x {
			x[i] = alpha * T(math.Tanh(float64(beta*v)))
		}
	case "hardsigmoid":
		for i, v := range x {
			x[i] = min(max(alpha*v+beta, 0), 1)
		}
	case "elu":
		for i, v := range x {
			if v < 0 {
				x[i] = alpha * T(math.Expm1(float64(v)))
			}
		}
	case "softsign":
		for i, v := range x {
			x[i] = v / (1 + T(math.Abs(float64(v))))
		}
	case "softplus":
		for i, v := range x {
			x[i] = T(softplus(float64(v)))
		}
	}
}

// rnnAttrs are a recurrent node's attributes, checked.
type rnnAttrs struct {
	cell   cellKind
	hidden int // 0 when the attribute is absent: R gives it
	dirs   int
	// reverse is set for direction "reverse"; for "bidirectional" the
	// second direction runs in reverse.
	reverse bool
	// acts holds the activations of each direction in turn.
	acts              []activation
	clip              float64 // 0: no clipping
	batchFirst        bool    // layout 1
	inputForget       bool    // LSTM: couple the input and forget gates
	linearBeforeReset bool    // GRU: apply R_h before the reset gate
}

func compileRecurrent(cell cellKind) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		a, err := readRNNAttrs(n, cell)
		if err != nil {
			return nil, err
		}
		var scratch rnnScratch
		return func(e *env, in []*Tensor) ([]*Tensor, error) {
			return a.run(e, in, &scratch)
		}, nil
	}
}

func readRNNAttrs(n *graph.Node, cell cellKind) (*rnnAttrs, error) {
	a := &rnnAttrs{cell: cell, dirs: 1}
	h := n.AttrInt("hidden_size", 0)
	if h < 0 || h > maxElements {
		return nil, fmt.Errorf("hidden_size %d is out of range", h)
	}
	a.hidden = int(h)
	switch d := n.AttrString("direction", "forward"); d {
	case "forward":
	case "reverse":
		a.reverse = true
	case "bidirectional":
		a.dirs = 2
	default:
		return nil, fmt.Errorf("direction %q is not forward, reverse or bidirectional", d)
	}
	switch l := n.AttrInt("layout", 0); l {
	case 0:
	case 1:
		a.batchFirst = true
	default:
		return nil, fmt.Errorf("layout %d is not 0 or 1", l)
	}
	if c := n.Attr("clip"); c != nil {
		a.clip = float64(c.Proto.GetF())
		if !(a.clip > 0) {
			return nil, fmt.Errorf("clip %g is not positive", a.clip)
		}
	}
	a.inputForget = cell == cellLSTM && n.AttrInt("input_forget", 0) != 0
	a.linearBeforeReset = cell == cellGRU && n.AttrInt("linear_before_reset", 0) != 0

	perDir := cell.defaultActivations()
	var names []string
	if at := n.Attr("activations"); at != nil {
		for _, s := range at.Proto.GetStrings() {
			names = append(names, string(s))
		}
	}
	switch {
	case names == nil:
		for range a.dirs {
			names = append(names, perDir...)
		}
	case len(names) == len(perDir) && a.dirs == 2:
		// One set given for both directions.
		names = append(names, names...)
	case len(names) != len(perDir)*a.dirs:
		return nil, fmt.Errorf("%d activations given, %s with %d directions takes %d", len(names), cell, a.dirs, len(perDir)*a.dirs)
	}
	var err error
	a.acts, err = parseActivations(names, n.AttrFloats("activation_alpha", nil), n.AttrFloats("activation_beta", nil))
	if err != nil {
		return nil, err
	}
	return a, nil
}

// rnnScratch is a node's working memory, kept across runs.
type rnnScratch struct {
	f32 []float32
	f64 []float64
}

// rnnDims are the sizes of one run.
type rnnDims struct {
	seq, batch, input, hidden, dirs, gates int
	batchFirst                             bool
}

// xRow is the row of X (and of X·Wᵀ) that holds time t of batch entry b.
func (d *rnnDims) xRow(t, b int) int {
	if d.batchFirst {
		return b*d.seq + t
	}
	return t*d.batch + b
}

// yAt is where Y holds time t, direction dir, batch entry b.
func (d *rnnDims) yAt(t, dir, b int) int {
	if d.batchFirst {
		return ((b*d.seq+t)*d.dirs + dir) * d.hidden
	}
	return ((t*d.dirs+dir)*d.batch + b) * d.hidden
}

// stateAt is where Y_h, Y_c, initial_h and initial_c hold direction dir of
// batch entry b.
func (d *rnnDims) stateAt(dir, b int) int {
	if d.batchFirst {
		return (b*d.dirs + dir) * d.hidden
	}
	return (dir*d.batch + b) * d.hidden
}

func (d *rnnDims) stateShape() []int {
	if d.batchFirst {
		return []int{d.batch, d.dirs, d.hidden}
	}
	return []int{d.dirs, d.batch, d.hidden}
}

func (a *rnnAttrs) run(e *env, in []*Tensor, scratch *rnnScratch) ([]*Tensor, error) {
	op := a.cell.String()
	if len(in) < 3 || in[0] == nil || in[1] == nil || in[2] == nil {
		return nil, fmt.Errorf("%s needs inputs X, W and R", op)
	}
	x, w, r := in[0], in[1], in[2]
	b, lens, h0 := optionalInput(in, 3), optionalInput(in, 4), optionalInput(in, 5)
	var c0, p *Tensor
	if a.cell == cellLSTM {
		c0, p = optionalInput(in, 6), optionalInput(in, 7)
	}
	if x.Rank() != 3 || w.Rank() != 3 || r.Rank() != 3 {
		return nil, fmt.Errorf("%s needs X, W and R of rank 3, got %s, %s, %s", op, x, w, r)
	}
	d := rnnDims{dirs: a.dirs, gates: a.cell.gates(), batchFirst: a.batchFirst,
		seq: x.Shape[0], batch: x.Shape[1], input: x.Shape[2], hidden: r.Shape[2]}
	if a.batchFirst {
		d.seq, d.batch = d.batch, d.seq
	}
	if a.hidden != 0 && a.hidden != d.hidden {
		return nil, fmt.Errorf("hidden_size %d differs from R %s", a.hidden, r)
	}
	gh := d.gates * d.hidden
	if !sameShape(w.Shape, []int{d.dirs, gh, d.input}) {
		return nil, fmt.Errorf("W %s must have shape [%d %d %d]", w, d.dirs, gh, d.input)
	}
	if !sameShape(r.Shape, []int{d.dirs, gh, d.hidden}) {
		return nil, fmt.Errorf("R %s must have shape [%d %d %d]", r, d.dirs, gh, d.hidden)
	}
	if b != nil && !sameShape(b.Shape, []int{d.dirs, 2 * gh}) {
		return nil, fmt.Errorf("B %s must have shape [%d %d]", b, d.dirs, 2*gh)
	}
	for _, s := range []struct {
		name string
		t    *Tensor
	}{{"initial_h", h0}, {"initial_c", c0}} {
		if s.t != nil && !sameShape(s.t.Shape, d.stateShape()) {
			return nil, fmt.Errorf("%s %s must have shape %v", s.name, s.t, d.stateShape())
		}
	}
	if p != nil && !sameShape(p.Shape, []int{d.dirs, 3 * d.hidden}) {
		return nil, fmt.Errorf("P %s must have shape [%d %d]", p, d.dirs, 3*d.hidden)
	}
	for _, t := range []*Tensor{w, r, b, h0, c0, p} {
		if t != nil && t.DType != x.DType {
			return nil, fmt.Errorf("%s inputs differ in type: X %s, got %s", op, x, t)
		}
	}
	steps := make([]int, d.batch)
	for i := range steps {
		steps[i] = d.seq
	}
	if lens != nil {
		l, err := intsInput(lens, "sequence_lens")
		if err != nil {
			return nil, err
		}
		if len(l) != d.batch {
			return nil, fmt.Errorf("sequence_lens %s must hold %d lengths", lens, d.batch)
		}
		for i, v := range l {
			if v < 0 || v > int64(d.seq) {
				return nil, fmt.Errorf("sequence_lens[%d] = %d is outside [0, %d]", i, v, d.seq)
			}
			steps[i] = int(v)
		}
	}

	yShape := []int{d.seq, d.dirs, d.batch, d.hidden}
	if a.batchFirst {
		yShape = []int{d.batch, d.seq, d.dirs, d.hidden}
	}
	// Y is zero past each sequence's end.
	y, err := e.zeroed(0, x.DType, yShape...)
	if err != nil {
		return nil, err
	}
	yh, err := e.output(1, x.DType, d.stateShape()...)
	if err != nil {
		return nil, err
	}
	outs := []*Tensor{y, yh}
	var yc *Tensor
	if a.cell == cellLSTM {
		if yc, err = e.output(2, x.DType, d.stateShape()...); err != nil {
			return nil, err
		}
		outs = append(outs, yc)
	}
	switch x.Data.(type) {
	case []float32:
		err = recurrent(a, &d, steps, x, w, r, b, h0, c0, p, y, yh, yc, &scratch.f32)
		if err == nil {
			for _, t := range outs {
				narrowFloat32s(t.DType, t.Data.([]float32))
			}
		}
	case []float64:
		err = recurrent(a, &d, steps, x, w, r, b, h0, c0, p, y, yh, yc, &scratch.f64)
	default:
		err = fmt.Errorf("%s does not compute in %s", op, dtypeName(x.DType))
	}
	if err != nil {
		return nil, err
	}
	return outs, nil
}

// recurrent runs every direction of the cell over the sequence. For each
// direction, X·Wᵀ (plus the biases) is one product over all time steps;
// each step then multiplies the hidden state by Rᵀ and applies the cell's
// gates row by row.
func recurrent[T blasFloat](a *rnnAttrs, d *rnnDims, steps []int, xt, wt, rt, bt, h0t, c0t, pt, yt, yht, yct *Tensor, buf *[]T) error {
	var data [10][]T
	for i, t := range []*Tensor{xt, wt, rt, bt, h0t, c0t, pt, yt, yht, yct} {
		if t == nil {
			continue
		}
		var err error
		if data[i], err = dataOf[T](t); err != nil {
			return err
		}
	}
	x, w, r, b, h0, c0, p, y, yh, yc := data[0], data[1], data[2], data[3], data[4], data[5], data[6], data[7], data[8], data[9]
	H, G := d.hidden, d.gates
	GH := G * H
	rows := d.seq * d.batch
	// X·Wᵀ, R·hᵀ per batch row, h, c, and for the GRU r⊙h.
	mem := scratchSlice(buf, rows*GH+d.batch*GH+3*d.batch*H)
	xw, mem := mem[:rows*GH], mem[rows*GH:]
	hr, mem := mem[:d.batch*GH], mem[d.batch*GH:]
	h, mem := mem[:d.batch*H], mem[d.batch*H:]
	c, rh := mem[:d.batch*H], mem[d.batch*H:]
	var clip T = T(a.clip)
	nacts := len(a.acts) / d.dirs

	for dir := range d.dirs {
		acts := a.acts[dir*nacts : (dir+1)*nacts]
		wd := w[dir*GH*d.input : (dir+1)*GH*d.input]
		rd := r[dir*GH*H : (dir+1)*GH*H]
		gemmInto(false, true, rows, GH, d.input, 1, x, d.input, wd, d.input, 0, xw, GH)
		var rbh []T // the GRU's R_h bias, applied before the reset gate
		if b != nil {
			wb := b[dir*2*GH : dir*2*GH+GH]
			rb := b[dir*2*GH+GH : (dir+1)*2*GH]
			bias := make([]T, GH)
			for j := range bias {
				bias[j] = wb[j] + rb[j]
			}
			if a.linearBeforeReset {
				rbh = rb[2*H : 3*H]
				copy(bias[2*H:], wb[2*H:3*H])
			}
			for i := range rows {
				row := xw[i*GH : (i+1)*GH]
				for j, v := range bias {
					row[j] += v
				}
			}
		}
		for bi := range d.batch {
			at := d.stateAt(dir, bi)
			if h0 != nil {
				copy(h[bi*H:(bi+1)*H], h0[at:at+H])
			} else {
				clear(h[bi*H : (bi+1)*H])
			}
			if c0 != nil {
				copy(c[bi*H:(bi+1)*H], c0[at:at+H])
			} else {
				clear(c[bi*H : (bi+1)*H])
			}
		}
		var pi, po, pf []T
		if p != nil {
			pd := p[dir*3*H : (dir+1)*3*H]
			pi, po, pf = pd[:H], pd[H:2*H], pd[2*H:]
		}
		reverse := a.reverse || dir == 1

		for s := range d.seq {
			// The GRU without linear_before_reset multiplies R_h by r⊙h
			// below, once r is known.
			n := GH
			if a.cell == cellGRU && !a.linearBeforeReset {
				n = 2 * H
			}
			gemmInto(false, true, d.batch, n, H, 1, h, H, rd, H, 0, hr, GH)
			active := func(bi int) (t int, ok bool) {
				if s >= steps[bi] {
					return 0, false
				}
				if reverse {
					return steps[bi] - 1 - s, true
				}
				return s, true
			}
			for bi := range d.batch {
				t, ok := active(bi)
				if !ok {
					continue
				}
				gx := xw[d.xRow(t, bi)*GH:][:GH]
				gr := hr[bi*GH:][:GH]
				hb := h[bi*H:][:H]
				switch a.cell {
				case cellRNN:
					for j := range hb {
						hb[j] = gx[j] + gr[j]
					}
					activate(acts[0], hb, clip)
				case cellLSTM:
					cb := c[bi*H:][:H]
					ig, og, fg, cg := gr[:H], gr[H:2*H], gr[2*H:3*H], gr[3*H:]
					for j := range ig {
						ig[j] += gx[j]
						og[j] += gx[H+j]
						fg[j] += gx[2*H+j]
						cg[j] += gx[3*H+j]
					}
					if pi != nil {
						for j, cv := range cb {
							ig[j] += pi[j] * cv
							fg[j] += pf[j] * cv
						}
					}
					activate(acts[0], ig, clip)
					if a.inputForget {
						for j, v := range ig {
							fg[j] = 1 - v
						}
					} else {
						activate(acts[0], fg, clip)
					}
					activate(acts[1], cg, clip)
					for j, cv := range cb {
						cb[j] = fg[j]*cv + ig[j]*cg[j]
					}
					if po != nil {
						for j, cv := range cb {
							og[j] += po[j] * cv
						}
					}
					activate(acts[0], og, clip)
					copy(hb, cb)
					activate(acts[2], hb, 0)
					for j, v := range og {
						hb[j] *= v
					}
				case cellGRU:
					zg, rg := gr[:H], gr[H:2*H]
					for j := range zg {
						zg[j] += gx[j]
						rg[j] += gx[H+j]
					}
					activate(acts[0], zg, clip)
					activate(acts[0], rg, clip)
					if !a.linearBeforeReset {
						rb := rh[bi*H:][:H]
						for j, v := range rg {
							rb[j] = v * hb[j]
						}
					}
				}
				if a.cell != cellGRU {
					copy(y[d.yAt(t, dir, bi):][:H], hb)
				}
			}
			if a.cell != cellGRU {
				continue
			}
			if !a.linearBeforeReset {
				// (r⊙h)·R_hᵀ into the h block of each row.
				gemmInto(false, true, d.batch, H, H, 1, rh, H, rd[2*H*H:], H, 0, hr[2*H:], GH)
			}
			for bi := range d.batch {
				t, ok := active(bi)
				if !ok {
					continue
				}
				gx := xw[d.xRow(t, bi)*GH:][:GH]
				gr := hr[bi*GH:][:GH]
				hb := h[bi*H:][:H]
				zg, rg, hg := gr[:H], gr[H:2*H], gr[2*H:]
				if a.linearBeforeReset {
					for j := range hg {
						rbv := T(0)
						if rbh != nil {
							rbv = rbh[j]
						}
						hg[j] = gx[2*H+j] + rg[j]*(hg[j]+rbv)
					}
				} else {
					for j := range hg {
						hg[j] += gx[2*H+j]
					}
				}
				activate(acts[1], hg, clip)
				for j, z := range zg {
					hb[j] = (1-z)*hg[j] + z*hb[j]
				}
				copy(y[d.yAt(t, dir, bi):][:H], hb)
			}
		}
		for bi := range d.batch {
			at := d.stateAt(dir, bi)
			copy(yh[at:at+H], h[bi*H:(bi+1)*H])
			if yc != nil {
				copy(yc[at:at+H], c[bi*H:(bi+1)*H])
			}
		}
	}
	return nil
}
