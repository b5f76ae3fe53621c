package runtime

import (
	"math/rand/v2"
	"slices"
	"testing"

	"onnxopt/onnx"
)

// TestMathSuiteCases runs every conformance case of Einsum and Det (rtol
// 1e-3, atol 1e-7).
func TestMathSuiteCases(t *testing.T) {
	checkSuiteCases(t, []string{"node/test_einsum", "node/test_det"}, []suiteCase{
		{path: "node/test_einsum_batch_diagonal"},
		{path: "node/test_einsum_batch_matmul"},
		{path: "node/test_einsum_inner_prod"},
		{path: "node/test_einsum_sum"},
		{path: "node/test_einsum_transpose"},
		{path: "node/test_det_2d"},
		{path: "node/test_det_nd"},
	})
}

// naiveEinsum evaluates an equation of letters only, with an explicit
// output, by the definition: it visits every assignment of the labels and
// adds the product of the operands to the output. A dimension of size 1
// broadcasts.
func naiveEinsum(terms []string, output string, shapes [][]int, data [][]float64) ([]int, []float64) {
	size := map[rune]int{}
	for k, term := range terms {
		for i, l := range term {
			size[l] = max(size[l], shapes[k][i])
		}
	}
	labels := []rune(output)
	for _, term := range terms {
		for _, l := range term {
			if !slices.Contains(labels, l) {
				labels = append(labels, l)
			}
		}
	}
	outShape := make([]int, len(output))
	for i, l := range output {
		outShape[i] = size[l]
	}
	out := make([]float64, mustElements(outShape))
	value := map[rune]int{}
	var visit func(d int)
	visit = func(d int) {
		if d < len(labels) {
			for v := range size[labels[d]] {
				value[labels[d]] = v
				visit(d + 1)
			}
			return
		}
		prod := 1.0
		for k, term := range terms {
			at := 0
			for i, l := range term {
				at *= shapes[k][i]
				if shapes[k][i] > 1 {
					at += value[l]
				}
			}
			prod *= data[k][at]
		}
		at := 0
		for i, l := range output {
			at = at*outShape[i] + value[l]
		}
		out[at] += prod
	}
	visit(0)
	return outShape, out
}

func TestEinsumMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, tt := range []struct {
		equation string
		shapes   [][]int
		// The same contraction in letters only with an explicit output,
		// for naiveEinsum.
		terms  []string
		output string
	}{
		{"ij,jk->ik", [][]int{{3, 4}, {4, 5}}, []string{"ij", "jk"}, "ik"},
		{"bij,bjk->bik", [][]int{{2, 3, 4}, {2, 4, 5}}, []string{"bij", "bjk"}, "bik"},
		{"ii->i", [][]int{{4, 4}}, []string{"ii"}, "i"},
		{"ii", [][]int{{4, 4}}, []string{"ii"}, ""},
		{"ij,ij->ij", [][]int{{3, 4}, {3, 4}}, []string{"ij", "ij"}, "ij"},
		{"i,j", [][]int{{3}, {4}}, []string{"i", "j"}, "ij"},
		{"ba", [][]int{{2, 3}}, []string{"ba"}, "ab"},
		{"ijk->", [][]int{{2, 3, 4}}, []string{"ijk"}, ""},
		{"ij,jk,kl->il", [][]int{{2, 3}, {3, 4}, {4, 2}}, []string{"ij", "jk", "kl"}, "il"},
		{"...ij,...jk->...ik", [][]int{{2, 1, 3, 4}, {5, 4, 2}}, []string{"abij", "bjk"}, "abik"},
		{"i...,i...->...", [][]int{{3, 2}, {3, 1}}, []string{"ia", "ia"}, "a"},
		{"iij,jk", [][]int{{3, 3, 4}, {4, 2}}, []string{"iij", "jk"}, "k"},
		{"bhqd, bhkd -> bhqk", [][]int{{2, 2, 3, 4}, {2, 2, 5, 4}}, []string{"bhqd", "bhkd"}, "bhqk"},
		{"ij,kj->", [][]int{{2, 3}, {4, 3}}, []string{"ij", "kj"}, ""},
		{"ij,jk->ik", [][]int{{2, 0}, {0, 3}}, []string{"ij", "jk"}, "ik"},
	} {
		t.Run(tt.equation, func(t *testing.T) {
			var ins []*Tensor
			var data [][]float64
			for _, shape := range tt.shapes {
				x := randomTensor(rng, onnx.TensorProto_DOUBLE, shape...)
				ins = append(ins, x)
				data = append(data, float64s(x))
			}
			got, err := newOpCall("Einsum", 12).str("equation", tt.equation).run(ins...)
			if err != nil {
				t.Fatal(err)
			}
			shape, want := naiveEinsum(tt.terms, tt.output, tt.shapes, data)
			wantClose(t, got[0], shape, want...)
		})
	}
}

func TestEinsumIntegers(t *testing.T) {
	a := mustTensor(t, []int32{1, 2, 3, 4}, 2, 2)
	b := mustTensor(t, []int32{5, 6, 7, 8}, 2, 2)
	got, err := newOpCall("Einsum", 12).str("equation", "ij,jk->ik").run(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].DType != onnx.TensorProto_INT32 {
		t.Fatalf("output %s, want int32", got[0])
	}
	wantClose(t, got[0], dims(2, 2), 19, 22, 43, 50)
}

func TestEinsumReuseAcrossRuns(t *testing.T) {
	p, in, out, err := newOpCall("Einsum", 12).str("equation", "ij,jk->ik").compile([]bool{true, true})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{3, 1, 2} {
		a := make([]float32, 2*n)
		b := make([]float32, n*2)
		for i := range a {
			a[i], b[i] = 1, 1
		}
		got, err := p.Run(map[string]*Tensor{in[0]: f32(t, dims(2, n), a...), in[1]: f32(t, dims(n, 2), b...)})
		if err != nil {
			t.Fatal(err)
		}
		v := float64(n)
		wantClose(t, got[out[0]], dims(2, 2), v, v, v, v)
	}
}

func TestEinsumRejects(t *testing.T) {
	m23 := f32(t, dims(2, 3), 1, 2, 3, 4, 5, 6)
	m45 := f32(t, dims(4, 5), make([]float32, 20)...)
	for _, tt := range []struct {
		equation string
		inputs   []*Tensor
		words    []string
	}{
		{"ij,jk->ik", []*Tensor{m23}, []string{"2 input terms for 1 inputs"}},
		{"ij,jk", []*Tensor{m23, m45}, []string{"label j has size 4"}},
		{"i.j", []*Tensor{m23}, []string{"'.' is not a letter"}},
		{"......", []*Tensor{m23}, []string{"more than one ellipsis"}},
		{"ij->k", []*Tensor{m23}, []string{"output label k is in no input"}},
		{"ij->ii", []*Tensor{m23}, []string{"repeats label i"}},
		{"ij", []*Tensor{f32(t, dims(1, 2, 3), 1, 2, 3, 4, 5, 6)}, []string{"for 2 labels"}},
		{"ii", []*Tensor{m23}, []string{"repeats label i on dimensions of sizes 2 and 3"}},
		{"ij,ij", []*Tensor{m23, {DType: onnx.TensorProto_DOUBLE, Shape: dims(2, 3), Data: make([]float64, 6)}}, []string{"same type"}},
		{"i", []*Tensor{mustTensor(t, []string{"a"}, 1)}, []string{"string"}},
	} {
		t.Run(tt.equation, func(t *testing.T) {
			_, err := newOpCall("Einsum", 12).str("equation", tt.equation).run(tt.inputs...)
			wantError(t, err, tt.words...)
		})
	}
	_, err := newOpCall("Einsum", 12).run(m23)
	wantError(t, err, "equation attribute is required")
}

func TestDet(t *testing.T) {
	for _, tt := range []struct {
		name  string
		x     *Tensor
		shape []int
		want  []float64
	}{
		// 2(3·2 - 2·1) - 0 + 1(1·1 - 3·1) = 8 - 2.
		{"3x3", f32(t, dims(3, 3), 2, 0, 1, 1, 3, 2, 1, 1, 2), dims(), []float64{6}},
		// The first pivot is zero: the rows swap.
		{"pivot", f32(t, dims(2, 2), 0, 1, 1, 0), dims(), []float64{-1}},
		{"singular", f32(t, dims(2, 2), 1, 2, 2, 4), dims(), []float64{0}},
		{"batch", &Tensor{DType: onnx.TensorProto_DOUBLE, Shape: dims(2, 1, 2, 2), Data: []float64{1, 2, 3, 4, 2, 0, 0, 3}},
			dims(2, 1), []float64{-2, 6}},
		{"empty batch", f32(t, dims(0, 2, 2)), dims(0), nil},
		// The determinant of a 0×0 matrix is the empty product.
		{"0x0", f32(t, dims(0, 0)), dims(), []float64{1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newOpCall("Det", 11).run(tt.x)
			if err != nil {
				t.Fatal(err)
			}
			if got[0].DType != tt.x.DType {
				t.Errorf("output %s, want %s", got[0], dtypeName(tt.x.DType))
			}
			wantClose(t, got[0], tt.shape, tt.want...)
		})
	}
	for _, tt := range []struct {
		x     *Tensor
		words []string
	}{
		{f32(t, dims(2, 3), 1, 2, 3, 4, 5, 6), []string{"[..., M, M]"}},
		{f32(t, dims(2), 1, 2), []string{"[..., M, M]"}},
		{i64(t, dims(1, 1), 1), []string{"floating-point"}},
	} {
		_, err := newOpCall("Det", 11).run(tt.x)
		wantError(t, err, tt.words...)
	}
}

// FuzzParseEinsum checks that parsing and resolving any equation returns
// an error or a consistent plan, never a panic.
func FuzzParseEinsum(f *testing.F) {
	for _, s := range []string{"ij,jk->ik", "...ii->...i", "i,i", "->", "a...b...", ",,->"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, eq string) {
		spec, err := parseEinsum(eq)
		if err != nil {
			return
		}
		// Every label of size 2, each ellipsis standing for one or two
		// dimensions of size 1 or 2.
		shapes := make([][]int, len(spec.inputs))
		for i, in := range spec.inputs {
			shapes[i] = slices.Repeat([]int{2}, len(in.labels))
			if in.ellipsis >= 0 {
				shapes[i] = slices.Insert(shapes[i], in.ellipsis, slices.Repeat([]int{1 + i%2}, 1+i%2)...)
			}
		}
		if p, err := spec.resolve(shapes); err == nil && len(p.labels) != len(p.sizes) {
			t.Fatalf("%q: %d labels with %d sizes", eq, len(p.labels), len(p.sizes))
		}
	})
}
