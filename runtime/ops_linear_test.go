package runtime

import (
	"fmt"
	"math"
	"math/rand/v2"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
)

func TestLinearSuiteCases(t *testing.T) {
	checkSuiteCases(t, []string{
		"node/test_gemm", "node/test_matmul_", "pytorch-converted/test_Linear",
		"pytorch-operator/test_operator_addmm", "pytorch-operator/test_operator_mm",
	}, []suiteCase{
		{path: "node/test_gemm_all_attributes"},
		{path: "node/test_gemm_alpha"},
		{path: "node/test_gemm_beta"},
		{path: "node/test_gemm_default_matrix_bias"},
		{path: "node/test_gemm_default_no_bias"},
		{path: "node/test_gemm_default_scalar_bias"},
		{path: "node/test_gemm_default_single_elem_vector_bias"},
		{path: "node/test_gemm_default_vector_bias"},
		{path: "node/test_gemm_default_zero_bias"},
		{path: "node/test_gemm_transposeA"},
		{path: "node/test_gemm_transposeB"},
		{path: "node/test_matmul_2d"},
		{path: "node/test_matmul_3d"},
		{path: "node/test_matmul_4d"},
		{path: "pytorch-converted/test_Linear"},
		{path: "pytorch-converted/test_Linear_no_bias"},
		{path: "pytorch-operator/test_operator_addmm"},
		{path: "pytorch-operator/test_operator_mm"},
	})
}

// An opCall runs one operator through a one-node model, compiled and run
// as any other.
type opCall struct {
	op      string
	opset   int64
	attrs   []*onnx.AttributeProto
	outputs int
}

func newOpCall(op string, opset int64) *opCall {
	return &opCall{op: op, opset: opset, outputs: 1}
}

func (c *opCall) ints(name string, v ...int64) *opCall {
	c.attrs = append(c.attrs, &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_INTS.Enum(), Ints: v})
	return c
}

func (c *opCall) int(name string, v int64) *opCall {
	c.attrs = append(c.attrs, &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(v)})
	return c
}

func (c *opCall) float(name string, v float32) *opCall {
	c.attrs = append(c.attrs, &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)})
	return c
}

func (c *opCall) str(name, v string) *opCall {
	c.attrs = append(c.attrs, &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_STRING.Enum(), S: []byte(v)})
	return c
}

// compile builds the plan; a nil entry of present marks an omitted input.
func (c *opCall) compile(present []bool) (*Plan, []string, []string, error) {
	m := graph.NewModel(8, graph.Opset{Domain: "", Version: c.opset})
	g := m.Graph
	var ins, outs []*graph.Value
	var inNames, outNames []string
	for i, ok := range present {
		if !ok {
			ins = append(ins, nil)
			continue
		}
		v := g.Value(fmt.Sprintf("in%d", i))
		g.Inputs = append(g.Inputs, v)
		ins = append(ins, v)
		inNames = append(inNames, v.Name)
	}
	for i := range c.outputs {
		v := g.Value(fmt.Sprintf("out%d", i))
		g.Outputs = append(g.Outputs, v)
		outs = append(outs, v)
		outNames = append(outNames, v.Name)
	}
	if _, err := g.NewNode(c.op, "node", ins, outs, c.attrs...); err != nil {
		return nil, nil, nil, err
	}
	p, err := Compile(g)
	return p, inNames, outNames, err
}

// run runs the operator on inputs, where nil omits an optional input.
func (c *opCall) run(inputs ...*Tensor) ([]*Tensor, error) {
	present := make([]bool, len(inputs))
	for i, t := range inputs {
		present[i] = t != nil
	}
	p, inNames, outNames, err := c.compile(present)
	if err != nil {
		return nil, err
	}
	feeds := map[string]*Tensor{}
	k := 0
	for _, t := range inputs {
		if t != nil {
			feeds[inNames[k]] = t
			k++
		}
	}
	got, err := p.Run(feeds)
	if err != nil {
		return nil, err
	}
	outs := make([]*Tensor, len(outNames))
	for i, name := range outNames {
		outs[i] = got[name]
	}
	return outs, nil
}

// randomTensor returns a float32 or float64 tensor of shape with
// elements uniform in [-1, 1).
func randomTensor(rng *rand.Rand, dt onnx.TensorProto_DataType, shape ...int) *Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	switch dt {
	case onnx.TensorProto_DOUBLE:
		data := make([]float64, n)
		for i := range data {
			data[i] = 2*rng.Float64() - 1
		}
		return &Tensor{DType: dt, Shape: shape, Data: data}
	case onnx.TensorProto_INT64:
		data := make([]int64, n)
		for i := range data {
			data[i] = rng.Int64N(11) - 5
		}
		return &Tensor{DType: dt, Shape: shape, Data: data}
	case onnx.TensorProto_INT32:
		data := make([]int32, n)
		for i := range data {
			data[i] = rng.Int32N(11) - 5
		}
		return &Tensor{DType: dt, Shape: shape, Data: data}
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = 2*rng.Float32() - 1
	}
	return &Tensor{DType: onnx.TensorProto_FLOAT, Shape: shape, Data: data}
}

// float64s widens a tensor's elements for the reference computations.
func float64s(t *Tensor) []float64 {
	switch d := t.Data.(type) {
	case []float32:
		out := make([]float64, len(d))
		for i, v := range d {
			out[i] = float64(v)
		}
		return out
	case []float64:
		return slices.Clone(d)
	case []int64:
		out := make([]float64, len(d))
		for i, v := range d {
			out[i] = float64(v)
		}
		return out
	case []int32:
		out := make([]float64, len(d))
		for i, v := range d {
			out[i] = float64(v)
		}
		return out
	}
	panic(fmt.Sprintf("float64s: %T", t.Data))
}

// referenceTol is the tolerance against the float64 reference loops of
// these tests: float32 sums of up to a few hundred products of values in
// [-1, 1) differ from the exact sum by far less than 1e-4.
const referenceTol = 1e-4

// checkAgainst compares got with the reference values want and shape:
// exactly for integers, within referenceTol (absolute, plus relative to
// |want|) for floats.
func checkAgainst(t *testing.T, got *Tensor, wantShape []int, want []float64) {
	t.Helper()
	if !slices.Equal(got.Shape, wantShape) {
		t.Fatalf("shape %v, want %v", got.Shape, wantShape)
	}
	g := float64s(got)
	tol := referenceTol
	if got.DType == onnx.TensorProto_INT64 || got.DType == onnx.TensorProto_INT32 {
		tol = 0
	}
	for i := range want {
		if d := math.Abs(g[i] - want[i]); !(d <= tol*(1+math.Abs(want[i]))) {
			t.Fatalf("element %d: got %g, want %g", i, g[i], want[i])
		}
	}
}

// referenceMatMul is numpy's matmul by its definition.
func referenceMatMul(a []float64, aShape []int, b []float64, bShape []int) ([]float64, []int) {
	as, bs := slices.Clone(aShape), slices.Clone(bShape)
	if len(as) == 1 {
		as = []int{1, as[0]}
	}
	if len(bs) == 1 {
		bs = []int{bs[0], 1}
	}
	m, k, n := as[len(as)-2], as[len(as)-1], bs[len(bs)-1]
	rank := max(len(as), len(bs)) - 2
	pad := func(s []int) []int {
		batch := s[:len(s)-2]
		return append(slices.Repeat([]int{1}, rank-len(batch)), batch...)
	}
	ab, bb := pad(as), pad(bs)
	batch := make([]int, rank)
	for i := range batch {
		batch[i] = max(ab[i], bb[i])
	}
	count := 1
	for _, d := range batch {
		count *= d
	}
	out := make([]float64, count*m*n)
	idx := make([]int, rank)
	for o := range count {
		r := o
		for i := rank - 1; i >= 0; i-- {
			idx[i] = r % batch[i]
			r /= batch[i]
		}
		ai, bi := 0, 0
		for i := range rank {
			ai = ai*ab[i] + idx[i]%ab[i]
			bi = bi*bb[i] + idx[i]%bb[i]
		}
		for i := range m {
			for j := range n {
				var s float64
				for l := range k {
					s += a[ai*m*k+i*k+l] * b[bi*k*n+l*n+j]
				}
				out[o*m*n+i*n+j] = s
			}
		}
	}
	shape := slices.Clone(batch)
	if len(aShape) > 1 {
		shape = append(shape, m)
	}
	if len(bShape) > 1 {
		shape = append(shape, n)
	}
	return out, shape
}

func TestMatMulMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][2][]int{
		{{3, 4}, {4, 5}},
		{{4}, {4}},
		{{4}, {4, 3}},
		{{3, 4}, {4}},
		{{4}, {2, 4, 3}},
		{{2, 3, 4}, {4}},
		{{2, 3, 4}, {4, 5}}, // one B for every batch
		{{3, 4}, {2, 4, 5}}, // one A for every batch
		{{2, 1, 3, 4}, {5, 4, 2}},
		{{1, 3, 4}, {6, 1, 4, 2}},
		{{2, 0, 4}, {4, 3}},
		{{2, 3, 0}, {2, 0, 5}},
	}
	for _, dt := range []onnx.TensorProto_DataType{onnx.TensorProto_FLOAT, onnx.TensorProto_DOUBLE, onnx.TensorProto_INT64, onnx.TensorProto_INT32} {
		for _, s := range shapes {
			t.Run(fmt.Sprintf("%s/%v×%v", dtypeName(dt), s[0], s[1]), func(t *testing.T) {
				a, b := randomTensor(rng, dt, s[0]...), randomTensor(rng, dt, s[1]...)
				out, err := newOpCall("MatMul", 13).run(a, b)
				if err != nil {
					t.Fatal(err)
				}
				want, shape := referenceMatMul(float64s(a), a.Shape, float64s(b), b.Shape)
				checkAgainst(t, out[0], shape, want)
				if out[0].DType != dt {
					t.Errorf("dtype %s, want %s", dtypeName(out[0].DType), dtypeName(dt))
				}
			})
		}
	}
}

func TestMatMulErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		a, b []int
		want string
	}{
		{[]int{3, 4}, []int{5, 2}, "inner dimensions differ"},
		{[]int{2, 3, 4}, []int{3, 4, 2}, "batch dimensions"},
		{[]int{}, []int{3}, "rank 1 or more"},
	} {
		_, err := newOpCall("MatMul", 13).run(randomTensor(rng, onnx.TensorProto_FLOAT, c.a...), randomTensor(rng, onnx.TensorProto_FLOAT, c.b...))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v × %v: error %v, want one saying %q", c.a, c.b, err, c.want)
		}
	}
}

// referenceGemm is alpha*op(A)*op(B) + beta*C with C broadcast, by
// definition.
func referenceGemm(a []float64, aShape []int, b []float64, bShape []int, c []float64, cShape []int, alpha, beta float64, transA, transB bool) ([]float64, []int) {
	m, k := aShape[0], aShape[1]
	if transA {
		m, k = k, m
	}
	n := bShape[1]
	if transB {
		n = bShape[0]
	}
	out := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for l := range k {
				ai, bi := i*aShape[1]+l, l*bShape[1]+j
				if transA {
					ai = l*aShape[1] + i
				}
				if transB {
					bi = j*bShape[1] + l
				}
				av, bv := a[ai], b[bi]
				s += av * bv
			}
			out[i*n+j] = alpha * s
			if c != nil {
				// C aligns on the right: [N], [1, N], [M, 1], ...
				full := append(slices.Repeat([]int{1}, 2-len(cShape)), cShape...)
				ci := (i%full[0])*full[1] + j%full[1]
				out[i*n+j] += beta * c[ci]
			}
		}
	}
	return out, []int{m, n}
}

func TestGemmMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const m, k, n = 5, 7, 6
	for _, dt := range []onnx.TensorProto_DataType{onnx.TensorProto_FLOAT, onnx.TensorProto_DOUBLE, onnx.TensorProto_INT64} {
		for _, cShape := range [][]int{nil, {}, {1}, {n}, {1, n}, {m, 1}, {m, n}} {
			for _, trans := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
				name := fmt.Sprintf("%s/C%v/transA=%t/transB=%t", dtypeName(dt), cShape, trans[0], trans[1])
				t.Run(name, func(t *testing.T) {
					aShape, bShape := []int{m, k}, []int{k, n}
					if trans[0] {
						aShape = []int{k, m}
					}
					if trans[1] {
						bShape = []int{n, k}
					}
					a, b := randomTensor(rng, dt, aShape...), randomTensor(rng, dt, bShape...)
					var c *Tensor
					var cData []float64
					if cShape != nil {
						c = randomTensor(rng, dt, cShape...)
						cData = float64s(c)
					}
					alpha, beta := float32(0.5), float32(-2)
					if dt == onnx.TensorProto_INT64 {
						alpha, beta = 3, -2
					}
					call := newOpCall("Gemm", 13).float("alpha", alpha).float("beta", beta)
					if trans[0] {
						call.int("transA", 1)
					}
					if trans[1] {
						call.int("transB", 1)
					}
					out, err := call.run(a, b, c)
					if err != nil {
						t.Fatal(err)
					}
					want, shape := referenceGemm(float64s(a), aShape, float64s(b), bShape, cData, cShape, float64(alpha), float64(beta), trans[0], trans[1])
					checkAgainst(t, out[0], shape, want)
				})
			}
		}
	}
}

func TestGemmEmptyInnerDimension(t *testing.T) {
	a := &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{2, 0}, Data: []float32{}}
	b := &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{0, 3}, Data: []float32{}}
	c := &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{3}, Data: []float32{1, 2, 3}}
	out, err := newOpCall("Gemm", 13).float("beta", 2).run(a, b, c)
	if err != nil {
		t.Fatal(err)
	}
	// An empty sum is zero, which leaves beta*C.
	checkAgainst(t, out[0], []int{2, 3}, []float64{2, 4, 6, 2, 4, 6})
}

func TestGemmOpsetDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	a, b := randomTensor(rng, onnx.TensorProto_FLOAT, 2, 3), randomTensor(rng, onnx.TensorProto_FLOAT, 3, 4)
	row := randomTensor(rng, onnx.TensorProto_FLOAT, 4)
	for _, c := range []struct {
		name  string
		call  *opCall
		c     *Tensor
		error string // empty when the call must succeed
	}{
		{"opset 6 needs broadcast=1 for a row C", newOpCall("Gemm", 6), row, "without broadcast=1"},
		{"opset 6 broadcasts with broadcast=1", newOpCall("Gemm", 6).int("broadcast", 1), row, ""},
		{"opset 7 broadcasts", newOpCall("Gemm", 7), row, ""},
		{"opset 9 needs C", newOpCall("Gemm", 9), nil, "needs input C"},
		{"opset 11 takes no C", newOpCall("Gemm", 11), nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := c.call.run(a, b, c.c)
			if c.error != "" {
				if err == nil || !strings.Contains(err.Error(), c.error) {
					t.Fatalf("error %v, want one saying %q", err, c.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var cData []float64
			var cShape []int
			if c.c != nil {
				cData, cShape = float64s(c.c), c.c.Shape
			}
			want, shape := referenceGemm(float64s(a), a.Shape, float64s(b), b.Shape, cData, cShape, 1, 1, false, false)
			checkAgainst(t, out[0], shape, want)
		})
	}
}

// TestGemmBlocks checks products of several blocks in each dimension,
// which gemmInto splits itself when one P runs the plan and leaves to
// gonum's goroutines otherwise.
func TestGemmBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const m, k, n = 70, 130, 200
	for _, procs := range []int{1, 2} {
		for _, dt := range []onnx.TensorProto_DataType{onnx.TensorProto_FLOAT, onnx.TensorProto_DOUBLE} {
			for _, trans := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
				t.Run(fmt.Sprintf("procs=%d/%s/transA=%t/transB=%t", procs, dtypeName(dt), trans[0], trans[1]), func(t *testing.T) {
					defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(procs))
					aShape, bShape := []int{m, k}, []int{k, n}
					if trans[0] {
						aShape = []int{k, m}
					}
					if trans[1] {
						bShape = []int{n, k}
					}
					a, b, c := randomTensor(rng, dt, aShape...), randomTensor(rng, dt, bShape...), randomTensor(rng, dt, m, n)
					call := newOpCall("Gemm", 13).float("alpha", 0.5).float("beta", 2).int("transA", boolInt(trans[0])).int("transB", boolInt(trans[1]))
					out, err := call.run(a, b, c)
					if err != nil {
						t.Fatal(err)
					}
					want, shape := referenceGemm(float64s(a), aShape, float64s(b), bShape, float64s(c), c.Shape, 0.5, 2, trans[0], trans[1])
					checkAgainst(t, out[0], shape, want)
				})
			}
		}
	}
}

func TestGemmErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	f := func(shape ...int) *Tensor { return randomTensor(rng, onnx.TensorProto_FLOAT, shape...) }
	for _, c := range []struct {
		name    string
		a, b, c *Tensor
		want    string
	}{
		{"inner", f(2, 3), f(4, 5), nil, "inner dimensions differ: op(A) is 2x3, op(B) is 4x5"},
		{"rank", f(2, 3, 1), f(3, 5), nil, "needs 2-D A and B"},
		{"C", f(2, 3), f(3, 5), f(3), "Gemm C: shape [3] does not broadcast to [2 5]"},
		{"types", f(2, 3), randomTensor(rng, onnx.TensorProto_DOUBLE, 3, 5), nil, "differ in type"},
	} {
		_, err := newOpCall("Gemm", 13).run(c.a, c.b, c.c)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
}
