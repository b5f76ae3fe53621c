package runtime

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// The ONNX suite checks these operators' numbers (TestConformance); the
// tests here check what it does not: views, rejected inputs, empty tensors
// and buffer reuse across runs.

func intAttr(name string, v int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func intsAttr(name string, v ...int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(name), Type: onnx.AttributeProto_INTS.Enum(), Ints: v}
}

// shapeKernel compiles a single op node with the given number of outputs.
func shapeKernel(op string, opset int64, outputs int, attrs ...*onnx.AttributeProto) (kernel, error) {
	m := graph.NewModel(8, graph.Opset{Version: opset})
	g := m.Graph
	outs := make([]*graph.Value, outputs)
	for i := range outs {
		outs[i] = g.NewValue("y")
	}
	n, err := g.NewNode(op, op, nil, outs, attrs...)
	if err != nil {
		return nil, err
	}
	def, ok := lookupOp("", op, opset)
	if !ok {
		return nil, fmt.Errorf("no %s at opset %d", op, opset)
	}
	return def.compile(n)
}

func mustTensor(t *testing.T, data any, shape ...int) *Tensor {
	t.Helper()
	x, err := FromSlice(data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func ints(v ...int64) []int64 { return v }

func TestShapeOpsReturnViews(t *testing.T) {
	x := mustTensor(t, make([]float32, 24), 2, 1, 3, 4)
	tests := []struct {
		op    string
		opset int64
		attrs []*onnx.AttributeProto
		in    []*Tensor
		want  []int
	}{
		{"Reshape", 14, nil, []*Tensor{x, mustTensor(t, ints(0, -1), 2)}, []int{2, 12}},
		{"Reshape", 1, []*onnx.AttributeProto{intsAttr("shape", 6, 4)}, []*Tensor{x}, []int{6, 4}},
		{"Flatten", 13, []*onnx.AttributeProto{intAttr("axis", -1)}, []*Tensor{x}, []int{6, 4}},
		{"Squeeze", 13, nil, []*Tensor{x}, []int{2, 3, 4}},
		{"Squeeze", 11, []*onnx.AttributeProto{intsAttr("axes", -3)}, []*Tensor{x}, []int{2, 3, 4}},
		{"Unsqueeze", 13, nil, []*Tensor{x, mustTensor(t, ints(0, -1), 2)}, []int{1, 2, 1, 3, 4, 1}},
		{"Unsqueeze", 11, []*onnx.AttributeProto{intsAttr("axes", 1)}, []*Tensor{x}, []int{2, 1, 1, 3, 4}},
	}
	for _, tt := range tests {
		k, err := shapeKernel(tt.op, tt.opset, 1, tt.attrs...)
		if err != nil {
			t.Fatalf("%s: %v", tt.op, err)
		}
		out, err := k(&env{}, tt.in)
		if err != nil {
			t.Fatalf("%s-%d: %v", tt.op, tt.opset, err)
		}
		y := out[0]
		if !slices.Equal(y.Shape, tt.want) {
			t.Errorf("%s-%d: shape %v, want %v", tt.op, tt.opset, y.Shape, tt.want)
		}
		if &y.Data.([]float32)[0] != &x.Data.([]float32)[0] {
			t.Errorf("%s-%d copied its input instead of returning a view", tt.op, tt.opset)
		}
	}
}

func TestReshapeTo(t *testing.T) {
	tests := []struct {
		in        []int
		spec      []int64
		allowZero bool
		want      []int // nil: an error
	}{
		{[]int{2, 3, 4}, ints(0, -1), false, []int{2, 12}},
		{[]int{2, 3, 4}, ints(-1), false, []int{24}},
		{[]int{2, 3, 4}, ints(4, 0, 2), false, []int{4, 3, 2}},
		{[]int{2, 3, 4}, ints(-1, -1), false, nil},
		{[]int{2, 3, 4}, ints(5, -1), false, nil},
		{[]int{2, 3, 4}, ints(2, 3, 5), false, nil},
		{[]int{2, 3, 4}, ints(-2, 12), false, nil},
		{[]int{2, 3}, ints(0, 0, 0), false, nil}, // copies a dimension the input lacks
		{[]int{0, 3}, ints(0, 3), true, []int{0, 3}},
		{[]int{0, 3}, ints(3, 0), true, []int{3, 0}},
		{[]int{0, 3}, ints(0, -1), true, nil}, // 0 and -1 together with allowzero
		{[]int{}, ints(1, 1), false, []int{1, 1}},
		{[]int{1, 1}, ints(), false, []int{}},
	}
	for _, tt := range tests {
		got, err := reshapeTo(tt.in, tt.spec, tt.allowZero)
		switch {
		case tt.want == nil && err == nil:
			t.Errorf("reshapeTo(%v, %v, %v) = %v, want an error", tt.in, tt.spec, tt.allowZero, got)
		case tt.want != nil && err != nil:
			t.Errorf("reshapeTo(%v, %v, %v): %v", tt.in, tt.spec, tt.allowZero, err)
		case tt.want != nil && !slices.Equal(got, tt.want):
			t.Errorf("reshapeTo(%v, %v, %v) = %v, want %v", tt.in, tt.spec, tt.allowZero, got, tt.want)
		}
	}
}

// TestShapeOpsRejectBadInputs checks that malformed inputs give errors
// naming the problem rather than panics or out-of-range writes.
func TestShapeOpsRejectBadInputs(t *testing.T) {
	f := func(shape ...int) *Tensor { return mustTensor(t, make([]float32, mustElements(shape)), shape...) }
	i64 := func(v ...int64) *Tensor { return mustTensor(t, v, len(v)) }
	tests := []struct {
		op      string
		opset   int64
		attrs   []*onnx.AttributeProto
		in      []*Tensor
		outputs int
		want    string // a fragment of the error
	}{
		{"Reshape", 14, nil, []*Tensor{f(2, 3), i64(4, 2)}, 1, "cannot reshape"},
		{"Reshape", 14, nil, []*Tensor{f(2, 3), f(2)}, 1, "must be int64 or int32"},
		{"Reshape", 14, nil, []*Tensor{f(2, 3), nil}, 1, "shape is required"},
		{"Transpose", 13, []*onnx.AttributeProto{intsAttr("perm", 0, 0)}, []*Tensor{f(2, 3)}, 1, "not a permutation"},
		{"Transpose", 13, []*onnx.AttributeProto{intsAttr("perm", 0, 1, 2)}, []*Tensor{f(2, 3)}, 1, "does not match rank"},
		{"Squeeze", 13, nil, []*Tensor{f(2, 3), i64(0)}, 1, "cannot squeeze"},
		{"Squeeze", 13, nil, []*Tensor{f(2, 3), i64(2)}, 1, "out of range"},
		{"Unsqueeze", 13, nil, []*Tensor{f(2, 3), i64(1, 1)}, 1, "repeat"},
		{"Unsqueeze", 13, nil, []*Tensor{f(2, 3), i64(3)}, 1, "out of range"},
		{"Flatten", 13, []*onnx.AttributeProto{intAttr("axis", 3)}, []*Tensor{f(2, 3)}, 1, "out of range"},
		{"Concat", 13, []*onnx.AttributeProto{intAttr("axis", 0)}, []*Tensor{f(2, 3), f(2, 4)}, 1, "differ outside axis"},
		{"Concat", 13, []*onnx.AttributeProto{intAttr("axis", 0)}, []*Tensor{f(2, 3), f(3)}, 1, "rank"},
		{"Concat", 13, []*onnx.AttributeProto{intAttr("axis", 2)}, []*Tensor{f(2, 3), f(2, 3)}, 1, "out of range"},
		{"Split", 13, nil, []*Tensor{f(4, 3), i64(1, 2)}, 2, "does not add up"},
		{"Split", 13, nil, []*Tensor{f(4, 3), i64(5, -1)}, 2, "invalid size"},
		{"Split", 13, nil, []*Tensor{f(5, 3)}, 2, "equal parts"},
		{"Slice", 13, nil, []*Tensor{f(4), i64(0), i64(4), i64(0), i64(0)}, 1, "step is zero"},
		{"Slice", 13, nil, []*Tensor{f(4), i64(0, 1), i64(4), nil, nil}, 1, "differ in length"},
		{"Slice", 13, nil, []*Tensor{f(4, 4), i64(0, 0), i64(4, 4), i64(1, -1), nil}, 1, "repeat axis"},
		{"Gather", 13, nil, []*Tensor{f(3, 2), i64(3)}, 1, "out of range"},
		{"Gather", 13, nil, []*Tensor{f(3, 2), i64(-4)}, 1, "out of range"},
		{"Gather", 13, nil, []*Tensor{f(3, 2), f(1)}, 1, "must be int64 or int32"},
		{"GatherElements", 13, nil, []*Tensor{f(3, 2), mustTensor(t, ints(3), 1, 1)}, 1, "out of range"},
		{"GatherElements", 13, nil, []*Tensor{f(3, 2), mustTensor(t, ints(0, 0, 0), 1, 3)}, 1, "exceed"},
		{"GatherElements", 13, nil, []*Tensor{f(3, 2), i64(0)}, 1, "rank"},
		{"GatherND", 13, nil, []*Tensor{f(3, 2), mustTensor(t, ints(0, 2), 1, 2)}, 1, "out of range"},
		{"GatherND", 13, nil, []*Tensor{f(3, 2), mustTensor(t, ints(0, 0, 0), 1, 3)}, 1, "do not fit"},
		{"ScatterND", 13, nil, []*Tensor{f(3, 2), mustTensor(t, ints(3), 1, 1), f(1, 2)}, 1, "out of range"},
		{"ScatterND", 13, nil, []*Tensor{f(3, 2), mustTensor(t, ints(1), 1, 1), f(1, 3)}, 1, "updates"},
		{"ScatterElements", 13, nil, []*Tensor{f(3, 2), mustTensor(t, ints(5), 1, 1), f(1, 1)}, 1, "out of range"},
		{"ScatterElements", 13, nil, []*Tensor{f(3, 2), mustTensor(t, ints(0), 1, 1), f(1, 2)}, 1, "updates"},
		{"Expand", 13, nil, []*Tensor{f(2, 3), i64(4, 3)}, 1, "cannot broadcast"},
		{"Expand", 13, nil, []*Tensor{f(2, 3), i64(-1, 3)}, 1, "invalid dimension"},
		{"Tile", 13, nil, []*Tensor{f(2, 3), i64(2)}, 1, "do not match rank"},
		{"Tile", 13, nil, []*Tensor{f(2, 3), i64(2, -1)}, 1, "invalid count"},
		{"ConstantOfShape", 13, nil, []*Tensor{i64(2, -3)}, 1, "invalid dimension"},
		{"Range", 13, nil, []*Tensor{i64(0), i64(5), i64(0)}, 1, "delta is zero"},
		{"Range", 13, nil, []*Tensor{i64(0), f(1), i64(1)}, 1, "scalars of one type"},
		{"OneHot", 13, nil, []*Tensor{i64(1), i64(0), f(2)}, 1, "depth"},
		{"OneHot", 13, nil, []*Tensor{i64(1), i64(3), f(3)}, 1, "[off, on]"},
		{"Trilu", 14, nil, []*Tensor{f(3)}, 1, "rank at least 2"},
		{"EyeLike", 13, nil, []*Tensor{f(2, 2, 2)}, 1, "rank 2"},
		{"ReverseSequence", 13, nil, []*Tensor{f(3, 2), i64(4, 1)}, 1, "out of range"},
		{"ReverseSequence", 13, nil, []*Tensor{f(3, 2), i64(1)}, 1, "entries"},
		{"Compress", 13, nil, []*Tensor{f(2), mustTensor(t, []bool{false, false, true}, 3)}, 1, "beyond"},
		{"Compress", 13, nil, []*Tensor{f(2), f(2)}, 1, "bool"},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s%v", tt.op, tt.in)
		k, err := shapeKernel(tt.op, tt.opset, tt.outputs, tt.attrs...)
		if err != nil {
			t.Errorf("%s: compile: %v", name, err)
			continue
		}
		_, err = k(&env{}, tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tt.want)
		}
	}
}

func TestConstantRejectsSparseValue(t *testing.T) {
	a := &onnx.AttributeProto{Name: proto.String("sparse_value"), Type: onnx.AttributeProto_SPARSE_TENSOR.Enum(),
		SparseTensor: &onnx.SparseTensorProto{}}
	if _, err := shapeKernel("Constant", 13, 1, a); err == nil || !strings.Contains(err.Error(), "sparse") {
		t.Errorf("Constant with sparse_value: error %v, want one about sparse tensors", err)
	}
}

// TestShapeOpsEmpty runs the data-moving ops on tensors with a zero
// dimension, which the suite barely covers and gorgonia cannot hold.
func TestShapeOpsEmpty(t *testing.T) {
	f := func(shape ...int) *Tensor {
		d := make([]float32, mustElements(shape))
		for i := range d {
			d[i] = float32(i + 1)
		}
		return mustTensor(t, d, shape...)
	}
	i64 := func(v ...int64) *Tensor { return mustTensor(t, v, len(v)) }
	tests := []struct {
		op    string
		attrs []*onnx.AttributeProto
		in    []*Tensor
		want  *Tensor
	}{
		{"Concat", []*onnx.AttributeProto{intAttr("axis", 1)}, []*Tensor{f(2, 0), f(2, 3)}, f(2, 3)},
		{"Concat", []*onnx.AttributeProto{intAttr("axis", 0)}, []*Tensor{f(0, 3), f(0, 3)}, f(0, 3)},
		{"Transpose", nil, []*Tensor{f(0, 3)}, f(3, 0)},
		{"Slice", nil, []*Tensor{f(4, 2), i64(3), i64(1), nil, nil}, f(0, 2)},
		{"Slice", nil, []*Tensor{f(0, 2), i64(0), i64(5), nil, nil}, f(0, 2)},
		{"Gather", nil, []*Tensor{f(3, 2), mustTensor(t, []int64{}, 0)}, f(0, 2)},
		{"Gather", nil, []*Tensor{f(0, 2), mustTensor(t, ints(1), 1)}, nil},
		{"Tile", nil, []*Tensor{f(2, 3), i64(0, 2)}, f(0, 6)},
		{"Expand", nil, []*Tensor{f(1, 3), i64(0, 1)}, f(0, 3)},
		{"Compress", []*onnx.AttributeProto{intAttr("axis", 0)}, []*Tensor{f(2, 3), mustTensor(t, []bool{false, false}, 2)}, f(0, 3)},
		{"NonZero", nil, []*Tensor{f(0, 2)}, mustTensor(t, []int64{}, 2, 0)},
		{"ConstantOfShape", nil, []*Tensor{i64(2, 0)}, f(2, 0)},
		{"Range", nil, []*Tensor{mustTensor(t, []float32{5}), mustTensor(t, []float32{1}), mustTensor(t, []float32{1})}, f(0)},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s%v", tt.op, tt.in)
		k, err := shapeKernel(tt.op, 13, 1, tt.attrs...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out, err := k(&env{}, tt.in)
		if tt.want == nil {
			if err == nil {
				t.Errorf("%s = %v, want an error", name, out[0])
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, _, ok := Compare(out[0], tt.want, 0, 0); !ok {
			t.Errorf("%s = %s %v, want %s %v", name, out[0], out[0].Data, tt.want, tt.want.Data)
		}
	}
}

// TestShapeOpsReuseBuffers runs one plan of Transpose, Concat, Gather and
// Trilu on inputs that grow and shrink. Every run must match the ops'
// definitions written out as loops, so kernels write every element of the
// buffers they reuse.
func TestShapeOpsReuseBuffers(t *testing.T) {
	m := graph.NewModel(8, graph.Opset{Version: 17})
	g := m.Graph
	x, idx := g.Value("x"), g.Value("idx")
	g.Inputs = []*graph.Value{x, idx}
	tr, cat, gat, tri := g.Value("tr"), g.Value("cat"), g.Value("gat"), g.Value("tri")
	steps := []struct {
		op    string
		in    []*graph.Value
		out   *graph.Value
		attrs []*onnx.AttributeProto
	}{
		{"Transpose", []*graph.Value{x}, tr, nil},
		{"Concat", []*graph.Value{tr, tr}, cat, []*onnx.AttributeProto{intAttr("axis", 1)}},
		{"Gather", []*graph.Value{cat, idx}, gat, []*onnx.AttributeProto{intAttr("axis", 1)}},
		{"Trilu", []*graph.Value{gat}, tri, nil},
	}
	for _, s := range steps {
		if _, err := g.NewNode(s.op, s.op, s.in, []*graph.Value{s.out}, s.attrs...); err != nil {
			t.Fatal(err)
		}
	}
	g.Outputs = []*graph.Value{tri}
	plan, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	for _, sizes := range [][2]int{{2, 3}, {5, 4}, {1, 2}, {4, 6}} {
		r, c := sizes[0], sizes[1]
		data := make([]float32, r*c)
		for i := range data {
			data[i] = float32(i*7%11) + 1
		}
		index := []int64{int64(2*r - 1), 0, -1, int64(r)}
		// tr[j][i] = x[i][j]; cat[j] = tr[j] twice; gat[j][k] =
		// cat[j][index[k]]; tri keeps gat[j][k] where k >= j.
		want := make([]float32, c*len(index))
		for j := 0; j < c; j++ {
			for k, ix := range index {
				if ix < 0 {
					ix += int64(2 * r)
				}
				if k >= j {
					want[j*len(index)+k] = data[int(ix)%r*c+j]
				}
			}
		}
		got, err := plan.Run(map[string]*Tensor{"x": mustTensor(t, data, r, c), "idx": mustTensor(t, index, len(index))})
		if err != nil {
			t.Fatalf("%v: %v", sizes, err)
		}
		if _, _, ok := Compare(got["tri"], mustTensor(t, want, c, len(index)), 0, 0); !ok {
			t.Errorf("%v: got %s %v, want %v", sizes, got["tri"], got["tri"].Data, want)
		}
	}
}
