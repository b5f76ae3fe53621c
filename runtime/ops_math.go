package runtime

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"onnxopt/graph"
)

// mathOps are the linear-algebra operators beyond matrix products: Einsum
// and Det.
var mathOps = []opDef{
	{"", "Einsum", 12, compileEinsum},
	// Det-22 only adds bfloat16.
	{"", "Det", 11, compileDet},
}

// --- Einsum ---

// Einsum labels are the letters, numbered by their character code so that
// sorting the numbers sorts the letters as numpy does, and the dimensions
// an ellipsis stands for, numbered from ellipsisLabel on.
const ellipsisLabel = 128

// An einsumTerm is one operand's subscripts: its explicit labels and
// where an ellipsis stands among them (-1 for none).
type einsumTerm struct {
	labels   []int
	ellipsis int
}

type einsumSpec struct {
	inputs []einsumTerm
	// output is nil for an implicit output, which is the ellipsis
	// dimensions followed by the labels used once, in order.
	output *einsumTerm
}

func parseEinsumTerm(s string) (einsumTerm, error) {
	t := einsumTerm{ellipsis: -1}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			t.labels = append(t.labels, int(c))
		case c == '.' && strings.HasPrefix(s[i:], "..."):
			if t.ellipsis >= 0 {
				return t, fmt.Errorf("term %q has more than one ellipsis", s)
			}
			t.ellipsis = len(t.labels)
			i += 2
		default:
			return t, fmt.Errorf("term %q: %q is not a letter or an ellipsis", s, c)
		}
	}
	return t, nil
}

func parseEinsum(equation string) (einsumSpec, error) {
	var spec einsumSpec
	eq := strings.Join(strings.Fields(equation), "")
	lhs, rhs, explicit := strings.Cut(eq, "->")
	for _, s := range strings.Split(lhs, ",") {
		t, err := parseEinsumTerm(s)
		if err != nil {
			return spec, err
		}
		spec.inputs = append(spec.inputs, t)
	}
	if explicit {
		t, err := parseEinsumTerm(rhs)
		if err != nil {
			return spec, err
		}
		for i, l := range t.labels {
			if slices.Contains(t.labels[:i], l) {
				return spec, fmt.Errorf("output %q repeats label %c", rhs, l)
			}
			used := false
			for _, in := range spec.inputs {
				used = used || slices.Contains(in.labels, l)
			}
			if !used {
				return spec, fmt.Errorf("output label %c is in no input term", l)
			}
		}
		spec.output = &t
	}
	return spec, nil
}

func compileEinsum(n *graph.Node) (kernel, error) {
	a := n.Attr("equation")
	if a == nil {
		return nil, fmt.Errorf("the equation attribute is required")
	}
	spec, err := parseEinsum(string(a.Proto.GetS()))
	if err != nil {
		return nil, fmt.Errorf("equation %q: %w", a.Proto.GetS(), err)
	}
	k := &einsumKernel{spec: spec}
	return k.run, nil
}

type einsumKernel struct {
	spec einsumSpec
	// Scratch reused between runs.
	floats   [][]float64
	acc      []float64
	packedA  []float64
	packedB  []float64
	products []float64
}

// An einsumPlan is an equation resolved against its operands' shapes:
// every label with its size, output labels first, and each operand's
// stride along each label (0 where the operand lacks it or broadcasts).
type einsumPlan struct {
	labels  []int
	sizes   []int
	outputs int // labels[:outputs] are the output's dimensions, in order
	strides [][]int
	has     [][]bool // per operand, whether it has each label
}

func (s *einsumSpec) resolve(shapes [][]int) (*einsumPlan, error) {
	if len(shapes) != len(s.inputs) {
		return nil, fmt.Errorf("the equation has %d input terms for %d inputs", len(s.inputs), len(shapes))
	}
	// Each operand's label per dimension, with the ellipsis expanded and
	// aligned on the right across operands.
	ellipsisRank := 0
	dimLabels := make([][]int, len(shapes))
	for k, t := range s.inputs {
		extra := len(shapes[k]) - len(t.labels)
		if t.ellipsis < 0 && extra != 0 || extra < 0 {
			return nil, fmt.Errorf("input %d has shape %v for %d labels", k, shapes[k], len(t.labels))
		}
		ellipsisRank = max(ellipsisRank, extra)
	}
	size := map[int]int{}
	var order []int // labels in order of first appearance
	for k, t := range s.inputs {
		extra := len(shapes[k]) - len(t.labels)
		var ls []int
		for i, l := range t.labels {
			if i == t.ellipsis {
				for j := range extra {
					ls = append(ls, ellipsisLabel+ellipsisRank-extra+j)
				}
			}
			ls = append(ls, l)
		}
		if t.ellipsis == len(t.labels) {
			for j := range extra {
				ls = append(ls, ellipsisLabel+ellipsisRank-extra+j)
			}
		}
		dimLabels[k] = ls
		for i, l := range ls {
			d := shapes[k][i]
			if first := slices.Index(ls, l); first < i && shapes[k][first] != d {
				return nil, fmt.Errorf("input %d repeats label %s on dimensions of sizes %d and %d", k, labelName(l), shapes[k][first], d)
			}
			old, seen := size[l]
			switch {
			case !seen:
				order = append(order, l)
				size[l] = d
			case old == d || d == 1:
			case old == 1:
				size[l] = d
			default:
				return nil, fmt.Errorf("label %s has size %d in input %d and %d elsewhere", labelName(l), d, k, old)
			}
		}
	}

	var out []int
	if s.output != nil {
		for i, l := range s.output.labels {
			if i == s.output.ellipsis {
				out = appendEllipsis(out, ellipsisRank)
			}
			out = append(out, l)
		}
		if s.output.ellipsis == len(s.output.labels) {
			out = appendEllipsis(out, ellipsisRank)
		}
	} else {
		out = appendEllipsis(out, ellipsisRank)
		var once []int
		for _, l := range order {
			if l >= ellipsisLabel {
				continue
			}
			uses := 0
			for _, ls := range dimLabels {
				for _, m := range ls {
					if m == l {
						uses++
					}
				}
			}
			if uses == 1 {
				once = append(once, l)
			}
		}
		slices.Sort(once)
		out = append(out, once...)
	}
	for _, l := range out {
		if _, ok := size[l]; !ok {
			size[l] = 1 // an ellipsis no input fills
		}
	}
	p := &einsumPlan{labels: out, outputs: len(out)}
	for _, l := range order {
		if !slices.Contains(out, l) {
			p.labels = append(p.labels, l)
		}
	}
	p.sizes = make([]int, len(p.labels))
	for i, l := range p.labels {
		p.sizes[i] = size[l]
	}
	for k, ls := range dimLabels {
		st := make([]int, len(p.labels))
		has := make([]bool, len(p.labels))
		dims := stridesOf(shapes[k])
		for i, l := range ls {
			j := slices.Index(p.labels, l)
			d := shapes[k][i]
			has[j] = true
			if d == 1 && p.sizes[j] != 1 {
				continue // broadcast
			}
			// A repeated label walks the diagonal.
			st[j] += dims[i]
		}
		p.strides = append(p.strides, st)
		p.has = append(p.has, has)
	}
	return p, nil
}

func appendEllipsis(out []int, rank int) []int {
	for j := range rank {
		out = append(out, ellipsisLabel+j)
	}
	return out
}

func labelName(l int) string {
	if l >= ellipsisLabel {
		return fmt.Sprintf("...[%d]", l-ellipsisLabel)
	}
	return string(rune(l))
}

// run computes out[o] = sum over the contracted labels of the product of
// the operands, in float64 for floating-point types and in int64
// (wrapping as numpy does) for integers.
func (k *einsumKernel) run(e *env, in []*Tensor) ([]*Tensor, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("at least one input is required")
	}
	if err := inputs(in, len(in)); err != nil {
		return nil, err
	}
	if err := sameType(in); err != nil {
		return nil, err
	}
	shapes := make([][]int, len(in))
	for i, t := range in {
		shapes[i] = t.Shape
	}
	p, err := k.spec.resolve(shapes)
	if err != nil {
		return nil, err
	}
	dt := in[0].DType
	out, err := e.output(0, dt, p.sizes[:p.outputs]...)
	if err != nil {
		return nil, err
	}
	outStrides := append(stridesOf(p.sizes[:p.outputs]), make([]int, len(p.labels)-p.outputs)...)
	switch in[0].Data.(type) {
	case []float32, []float64:
		for len(k.floats) < len(in) {
			k.floats = append(k.floats, nil)
		}
		ops := make([][]float64, len(in))
		for i, t := range in {
			if ops[i], err = loadFloats(&k.floats[i], t); err != nil {
				return nil, err
			}
		}
		acc := scratchSlice(&k.acc, out.Len())
		clear(acc)
		if len(in) == 2 {
			k.contractPair(acc, outStrides, p, ops[0], ops[1])
		} else {
			contract(acc, outStrides, p.sizes, ops, p.strides)
		}
		storeFloats(out, acc)
	case []int64, []int32, []int16, []int8, []uint64, []uint32, []uint16, []uint8:
		ops := make([][]int64, len(in))
		for i, t := range in {
			ops[i] = numbersAs[int64](t)
		}
		acc := make([]int64, out.Len())
		contract(acc, outStrides, p.sizes, ops, p.strides)
		if err := narrowIntegers(out, acc); err != nil {
			return nil, err
		}
	default:
		return nil, unsupportedType(dt)
	}
	return []*Tensor{out}, nil
}

// narrowIntegers writes int64 results into an integer tensor, wrapping.
func narrowIntegers(t *Tensor, v []int64) error {
	switch d := t.Data.(type) {
	case []int64:
		copy(d, v)
	case []int32:
		convertInto(d, v)
	case []int16:
		convertInto(d, v)
	case []int8:
		convertInto(d, v)
	case []uint64:
		convertInto(d, v)
	case []uint32:
		convertInto(d, v)
	case []uint16:
		convertInto(d, v)
	case []uint8:
		convertInto(d, v)
	default:
		return unsupportedType(t.DType)
	}
	return nil
}

// contract adds to out, for every index over the dimensions sizes, the
// product of the operands at their strided offsets; outStrides places
// each index in out (0 along summed dimensions).
func contract[T int64 | float64](out []T, outStrides, sizes []int, ops [][]T, strides [][]int) {
	if mustElements(sizes) == 0 {
		return
	}
	all := append([][]int{outStrides}, strides...)
	if len(sizes) == 0 {
		var prod T = 1
		for _, op := range ops {
			prod *= op[0]
		}
		out[0] += prod
		return
	}
	last := len(sizes) - 1
	inner := sizes[last]
	odo := newOdometer(sizes[:last], stridesPrefix(all, last)...)
	for {
		for i := range inner {
			prod := T(1)
			for k, op := range ops {
				prod *= op[odo.offs[k+1]+i*strides[k][last]]
			}
			out[odo.offs[0]+i*outStrides[last]] += prod
		}
		if !odo.next() {
			return
		}
	}
}

// stridesPrefix cuts each stride list to its first n dimensions.
func stridesPrefix(strides [][]int, n int) [][]int {
	cut := make([][]int, len(strides))
	for i, s := range strides {
		cut[i] = s[:n]
	}
	return cut
}

// contractPair computes a two-operand contraction as batched matrix
// products: each operand is packed, summing the labels only it has, into
// [batch, rows, inner] and [batch, inner, cols], and BLAS multiplies them.
func (k *einsumKernel) contractPair(out []float64, outStrides []int, p *einsumPlan, a, b []float64) {
	// batch labels are in the output and in both operands (or in
	// neither: an ellipsis no input fills), rows in the output and a,
	// cols in the output and b, inner in both operands and summed.
	var batch, rows, cols, inner, aOnly, bOnly []int
	for i := range p.labels {
		inA, inB, inOut := p.has[0][i], p.has[1][i], i < p.outputs
		switch {
		case inOut && inA == inB:
			batch = append(batch, i)
		case inOut && inA:
			rows = append(rows, i)
		case inOut:
			cols = append(cols, i)
		case inA && inB:
			inner = append(inner, i)
		case inA:
			aOnly = append(aOnly, i)
		default:
			bOnly = append(bOnly, i)
		}
	}
	volume := func(ids []int) int {
		v := 1
		for _, i := range ids {
			v *= p.sizes[i]
		}
		return v
	}
	nb, m, n, kk := volume(batch), volume(rows), volume(cols), volume(inner)
	if nb*m*n == 0 {
		return
	}
	pa := scratchSlice(&k.packedA, nb*m*kk)
	pb := scratchSlice(&k.packedB, nb*kk*n)
	pack(pa, a, p, 0, slices.Concat(batch, rows, inner), aOnly)
	pack(pb, b, p, 1, slices.Concat(batch, inner, cols), bOnly)
	prod := scratchSlice(&k.products, nb*m*n)
	for i := range nb {
		gemmInto(false, false, m, n, kk, 1, pa[i*m*kk:], max(kk, 1), pb[i*kk*n:], n, 0, prod[i*m*n:], n)
	}
	// Scatter [batch, rows, cols] to the output's layout.
	ids := slices.Concat(batch, rows, cols)
	sizes := make([]int, len(ids))
	to := make([]int, len(ids))
	for j, i := range ids {
		sizes[j], to[j] = p.sizes[i], outStrides[i]
	}
	contract(out, to, sizes, [][]float64{prod}, [][]int{stridesOf(sizes)})
}

// pack writes operand k into dst laid out row-major over the labels
// kept, summing over the labels summed.
func pack(dst, src []float64, p *einsumPlan, k int, kept, summed []int) {
	clear(dst)
	ids := slices.Concat(kept, summed)
	sizes := make([]int, len(ids))
	from := make([]int, len(ids))
	for j, i := range ids {
		sizes[j], from[j] = p.sizes[i], p.strides[k][i]
	}
	to := append(stridesOf(sizes[:len(kept)]), make([]int, len(summed))...)
	contract(dst, to, sizes, [][]float64{src}, [][]int{from})
}

// --- Det ---

func compileDet(n *graph.Node) (kernel, error) {
	var buf, lu []float64
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		if err := inputs(in, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if err := checkFloat("X", x); err != nil {
			return nil, err
		}
		r := x.Rank()
		if r < 2 || x.Shape[r-1] != x.Shape[r-2] {
			return nil, fmt.Errorf("X has shape %v, want [..., M, M]", x.Shape)
		}
		out, err := e.output(0, x.DType, x.Shape[:r-2]...)
		if err != nil {
			return nil, err
		}
		src, err := loadFloats(&buf, x)
		if err != nil {
			return nil, err
		}
		m := x.Shape[r-1]
		dets := make([]float64, out.Len())
		lu = scratchSlice(&lu, m*m)
		for i := range dets {
			copy(lu, src[i*m*m:(i+1)*m*m])
			dets[i] = determinant(lu, m)
		}
		storeFloats(out, dets)
		return []*Tensor{out}, nil
	}, nil
}

// determinant computes the determinant of the m×m row-major matrix a by
// LU decomposition with partial pivoting, overwriting a.
func determinant(a []float64, m int) float64 {
	det := 1.0
	for c := range m {
		pivot := c
		for r := c + 1; r < m; r++ {
			if math.Abs(a[r*m+c]) > math.Abs(a[pivot*m+c]) {
				pivot = r
			}
		}
		if a[pivot*m+c] == 0 {
			return 0
		}
		if pivot != c {
			for j := range m {
				a[c*m+j], a[pivot*m+j] = a[pivot*m+j], a[c*m+j]
			}
			det = -det
		}
		d := a[c*m+c]
		det *= d
		for r := c + 1; r < m; r++ {
			f := a[r*m+c] / d
			if f == 0 {
				continue
			}
			for j := c + 1; j < m; j++ {
				a[r*m+j] -= f * a[c*m+j]
			}
		}
	}
	return det
}
