package runtime

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
)

func TestSequenceSuiteCases(t *testing.T) {
	checkSuiteCases(t, []string{"simple/test_sequence_model", "simple/test_gradient_of", "node/test_sequence_", "node/test_optional_"}, []suiteCase{
		{path: "node/test_optional_get_element"},
		{path: "node/test_optional_get_element_sequence"},
		{path: "node/test_optional_has_element"},
		{path: "node/test_optional_has_element_empty"},
		{path: "node/test_sequence_insert_at_back"},
		{path: "node/test_sequence_insert_at_front"},
		{path: "node/test_sequence_map_add_1_sequence_1_tensor"},
		{path: "node/test_sequence_map_add_1_sequence_1_tensor_expanded"},
		{path: "node/test_sequence_map_add_2_sequences"},
		{path: "node/test_sequence_map_add_2_sequences_expanded"},
		{path: "node/test_sequence_map_extract_shapes"},
		{path: "node/test_sequence_map_extract_shapes_expanded"},
		{path: "node/test_sequence_map_identity_1_sequence"},
		{path: "node/test_sequence_map_identity_1_sequence_1_tensor"},
		{path: "node/test_sequence_map_identity_1_sequence_1_tensor_expanded"},
		{path: "node/test_sequence_map_identity_1_sequence_expanded"},
		{path: "node/test_sequence_map_identity_2_sequences"},
		{path: "node/test_sequence_map_identity_2_sequences_expanded"},
		{path: "simple/test_gradient_of_add"},
		{path: "simple/test_gradient_of_add_and_mul"},
		{path: "simple/test_sequence_model1"},
		{path: "simple/test_sequence_model2"},
		{path: "simple/test_sequence_model3"},
		{path: "simple/test_sequence_model4"},
		{path: "simple/test_sequence_model5"},
		{path: "simple/test_sequence_model6"},
		{path: "simple/test_sequence_model7"},
		{path: "simple/test_sequence_model8"},
	})
}

func f32s(t *testing.T, v ...float32) *Tensor {
	return mustTensor(t, v, len(v))
}

func seqOf(elems ...*Tensor) *Tensor {
	return NewSequence(elems[0].DType, elems...)
}

// wantSequence checks that got is a sequence of float tensors with the
// given shapes and values.
func wantSequence(t *testing.T, got *Tensor, dt onnx.TensorProto_DataType, want ...*Tensor) {
	t.Helper()
	if got == nil || got.Kind != KindSequence || got.DType != dt {
		t.Fatalf("got %v, want a sequence of %s", got, dtypeName(dt))
	}
	if len(got.Elems) != len(want) {
		t.Fatalf("got %d elements, want %d", len(got.Elems), len(want))
	}
	for i, w := range want {
		if _, _, ok := Compare(got.Elems[i], w, 0, 0); !ok {
			t.Errorf("element %d: got %s %v, want %s %v", i, got.Elems[i], got.Elems[i].Data, w, w.Data)
		}
	}
}

func TestSequenceOps(t *testing.T) {
	a, b, c := f32s(t, 1), f32s(t, 2, 3), f32s(t, 4, 5, 6)
	abc := seqOf(a, b, c)
	empty := NewSequence(onnx.TensorProto_FLOAT)
	pos := func(p int64) *Tensor { return scalarI64(p) }
	tests := []struct {
		name string
		call *opCall
		in   []*Tensor
		want []*Tensor // the output sequence's elements
		err  string    // a part of the error, when the call must fail
	}{
		{name: "empty", call: newOpCall("SequenceEmpty", 11), want: []*Tensor{}},
		{name: "construct", call: newOpCall("SequenceConstruct", 11), in: []*Tensor{a, b}, want: []*Tensor{a, b}},
		{name: "construct mixed types", call: newOpCall("SequenceConstruct", 11), in: []*Tensor{a, scalarI64(1)}, err: "one element type"},
		{name: "insert at end", call: newOpCall("SequenceInsert", 11), in: []*Tensor{seqOf(a, b), c}, want: []*Tensor{a, b, c}},
		{name: "insert into empty", call: newOpCall("SequenceInsert", 11), in: []*Tensor{empty, c}, want: []*Tensor{c}},
		{name: "insert at front", call: newOpCall("SequenceInsert", 11), in: []*Tensor{seqOf(a, b), c, pos(0)}, want: []*Tensor{c, a, b}},
		{name: "insert at n", call: newOpCall("SequenceInsert", 11), in: []*Tensor{seqOf(a, b), c, pos(2)}, want: []*Tensor{a, b, c}},
		{name: "insert at -1", call: newOpCall("SequenceInsert", 11), in: []*Tensor{seqOf(a, b), c, pos(-1)}, want: []*Tensor{a, c, b}},
		{name: "insert at -n", call: newOpCall("SequenceInsert", 11), in: []*Tensor{seqOf(a, b), c, pos(-2)}, want: []*Tensor{c, a, b}},
		{name: "insert past the end", call: newOpCall("SequenceInsert", 11), in: []*Tensor{seqOf(a, b), c, pos(3)}, err: "out of range"},
		{name: "insert before the front", call: newOpCall("SequenceInsert", 11), in: []*Tensor{seqOf(a, b), c, pos(-3)}, err: "out of range"},
		{name: "insert another type", call: newOpCall("SequenceInsert", 11), in: []*Tensor{seqOf(a, b), scalarI64(7)}, err: "cannot insert"},
		{name: "insert into a tensor", call: newOpCall("SequenceInsert", 11), in: []*Tensor{a, c}, err: "must be a sequence"},
		{name: "insert a sequence", call: newOpCall("SequenceInsert", 11), in: []*Tensor{abc, abc}, err: "must be a tensor"},
		{name: "erase last", call: newOpCall("SequenceErase", 11), in: []*Tensor{abc}, want: []*Tensor{a, b}},
		{name: "erase first", call: newOpCall("SequenceErase", 11), in: []*Tensor{abc, pos(-3)}, want: []*Tensor{b, c}},
		{name: "erase middle", call: newOpCall("SequenceErase", 11), in: []*Tensor{abc, pos(1)}, want: []*Tensor{a, c}},
		{name: "erase at n", call: newOpCall("SequenceErase", 11), in: []*Tensor{abc, pos(3)}, err: "out of range"},
		{name: "erase from empty", call: newOpCall("SequenceErase", 11), in: []*Tensor{empty}, err: "empty sequence"},
		{name: "position of two elements", call: newOpCall("SequenceErase", 11), in: []*Tensor{abc, mustTensor(t, ints(0, 1), 2)}, err: "one element"},
		{name: "position float", call: newOpCall("SequenceErase", 11), in: []*Tensor{abc, a}, err: "int64 or int32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.call.run(tt.in...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantSequence(t, got[0], onnx.TensorProto_FLOAT, tt.want...)
		})
	}
}

func TestSequenceAtAndLength(t *testing.T) {
	a, b, c := f32s(t, 1), f32s(t, 2, 3), f32s(t, 4, 5, 6)
	abc := seqOf(a, b, c)
	at := newOpCall("SequenceAt", 11)
	for p, want := range map[int64]*Tensor{0: a, 2: c, -1: c, -3: a} {
		got, err := at.run(abc, scalarI64(p))
		if err != nil {
			t.Fatalf("position %d: %v", p, err)
		}
		if _, _, ok := Compare(got[0], want, 0, 0); !ok {
			t.Errorf("position %d: got %v, want %v", p, got[0].Data, want.Data)
		}
	}
	for _, p := range []int64{3, -4} {
		if _, err := at.run(abc, scalarI64(p)); err == nil || !strings.Contains(err.Error(), "out of range [-3, 2]") {
			t.Errorf("position %d: error %v, want out of range", p, err)
		}
	}
	if _, err := at.run(NewSequence(onnx.TensorProto_FLOAT), scalarI64(0)); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("empty sequence: error %v, want out of range", err)
	}
	length := newOpCall("SequenceLength", 11)
	for _, s := range []*Tensor{abc, NewSequence(onnx.TensorProto_INT64)} {
		got, err := length.run(s)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := got[0].Data.([]int64); !ok || len(got[0].Shape) != 0 || d[0] != int64(len(s.Elems)) {
			t.Errorf("length of %s = %s %v", s, got[0], got[0].Data)
		}
	}
}

func TestSequenceEmptyType(t *testing.T) {
	got, err := newOpCall("SequenceEmpty", 11).run()
	if err != nil {
		t.Fatal(err)
	}
	wantSequence(t, got[0], onnx.TensorProto_FLOAT)
	if got, err = newOpCall("SequenceEmpty", 11).int("dtype", int64(onnx.TensorProto_INT32)).run(); err != nil {
		t.Fatal(err)
	}
	wantSequence(t, got[0], onnx.TensorProto_INT32)
	if _, err := newOpCall("SequenceEmpty", 11).int("dtype", int64(onnx.TensorProto_COMPLEX64)).run(); err == nil || !strings.Contains(err.Error(), "complex64") {
		t.Errorf("complex64 sequence: error %v", err)
	}
}

func TestSplitToSequence(t *testing.T) {
	// x is 2x5: [[0 1 2 3 4] [5 6 7 8 9]].
	x := mustTensor(t, []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 2, 5)
	col := func(v ...float32) *Tensor { return mustTensor(t, v, 2, len(v)/2) }
	tests := []struct {
		name     string
		keepdims int64
		split    *Tensor
		want     []*Tensor
		err      string
	}{
		{name: "ones", keepdims: 1, want: []*Tensor{col(0, 5), col(1, 6), col(2, 7), col(3, 8), col(4, 9)}},
		{name: "ones without the axis", keepdims: 0, want: []*Tensor{f32s(t, 0, 5), f32s(t, 1, 6), f32s(t, 2, 7), f32s(t, 3, 8), f32s(t, 4, 9)}},
		{name: "scalar with a short last part", split: scalarI64(2), keepdims: 0, want: []*Tensor{col(0, 1, 5, 6), col(2, 3, 7, 8), col(4, 9)}},
		{name: "scalar larger than the axis", split: scalarI64(7), want: []*Tensor{x}},
		{name: "lengths", split: mustTensor(t, ints(3, 0, 2), 3), want: []*Tensor{col(0, 1, 2, 5, 6, 7), mustTensor(t, []float32{}, 2, 0), col(3, 4, 8, 9)}},
		{name: "lengths that do not add up", split: mustTensor(t, ints(3, 1), 2), err: "does not add up"},
		{name: "negative length", split: mustTensor(t, ints(6, -1), 2), err: "invalid size"},
		{name: "zero scalar", split: scalarI64(0), err: "must be positive"},
		{name: "2-D split", split: mustTensor(t, ints(2, 3), 1, 2), err: "scalar or 1-D"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newOpCall("SplitToSequence", 11).int("axis", -1).int("keepdims", tt.keepdims)
			got, err := c.run(x, tt.split)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantSequence(t, got[0], onnx.TensorProto_FLOAT, tt.want...)
		})
	}
	// An axis of length zero splits into no parts.
	got, err := newOpCall("SplitToSequence", 11).run(mustTensor(t, []int64{}, 0, 3))
	if err != nil {
		t.Fatal(err)
	}
	wantSequence(t, got[0], onnx.TensorProto_INT64)
	if _, err := newOpCall("SplitToSequence", 11).int("axis", 2).run(x); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("axis 2 of a matrix: error %v", err)
	}
}

func TestConcatFromSequence(t *testing.T) {
	a := mustTensor(t, []float32{1, 2, 3, 4}, 2, 2)
	b := mustTensor(t, []float32{5, 6}, 2, 1)
	c := mustTensor(t, []float32{7, 8, 9, 10}, 2, 2)
	tests := []struct {
		name          string
		axis, newAxis int64
		seq           *Tensor
		want          *Tensor
		err           string
	}{
		{name: "columns", axis: 1, seq: seqOf(a, b, c), want: mustTensor(t, []float32{1, 2, 5, 7, 8, 3, 4, 6, 9, 10}, 2, 5)},
		{name: "rows", axis: -2, seq: seqOf(a, c), want: mustTensor(t, []float32{1, 2, 3, 4, 7, 8, 9, 10}, 4, 2)},
		{name: "stacked first", axis: 0, newAxis: 1, seq: seqOf(a, c), want: mustTensor(t, []float32{1, 2, 3, 4, 7, 8, 9, 10}, 2, 2, 2)},
		{name: "stacked last", axis: -1, newAxis: 1, seq: seqOf(a, c), want: mustTensor(t, []float32{1, 7, 2, 8, 3, 9, 4, 10}, 2, 2, 2)},
		{name: "stacked at the new last axis", axis: 2, newAxis: 1, seq: seqOf(a, c), want: mustTensor(t, []float32{1, 7, 2, 8, 3, 9, 4, 10}, 2, 2, 2)},
		{name: "one element", axis: 0, seq: seqOf(b), want: b},
		{name: "shapes differ", axis: 0, seq: seqOf(a, b), err: "differ outside axis"},
		{name: "stack shapes differ", axis: 0, newAxis: 1, seq: seqOf(a, b), err: "differ outside axis"},
		{name: "axis out of range", axis: 2, seq: seqOf(a, c), err: "out of range"},
		{name: "empty", axis: 0, seq: NewSequence(onnx.TensorProto_FLOAT), err: "empty sequence"},
		{name: "a tensor", axis: 0, seq: a, err: "must be a sequence"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newOpCall("ConcatFromSequence", 11).int("axis", tt.axis).int("new_axis", tt.newAxis).run(tt.seq)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, _, ok := Compare(got[0], tt.want, 0, 0); !ok {
				t.Errorf("got %s %v, want %s %v", got[0], got[0].Data, tt.want, tt.want.Data)
			}
		})
	}
	if _, err := newOpCall("ConcatFromSequence", 11).run(seqOf(a)); err == nil || !strings.Contains(err.Error(), "axis is required") {
		t.Errorf("no axis: error %v", err)
	}
}

func TestOptionalOps(t *testing.T) {
	x := f32s(t, 1, 2)
	full, none := NewOptional(onnx.TensorProto_FLOAT, x), NewOptional(onnx.TensorProto_FLOAT, nil)
	has := func(opset int64, v *Tensor) (bool, error) {
		got, err := newOpCall("OptionalHasElement", opset).run(v)
		if err != nil {
			return false, err
		}
		return got[0].Data.([]bool)[0], nil
	}
	for _, tt := range []struct {
		opset int64
		v     *Tensor
		want  bool
	}{
		{15, full, true}, {15, none, false}, {18, x, true}, {18, seqOf(x), true}, {18, nil, false},
		{18, NewOptional(onnx.TensorProto_FLOAT, NewSequence(onnx.TensorProto_FLOAT)), true},
	} {
		got, err := has(tt.opset, tt.v)
		if err != nil || got != tt.want {
			t.Errorf("OptionalHasElement-%d(%v) = %v, %v; want %v", tt.opset, tt.v, got, err, tt.want)
		}
	}
	if _, err := has(15, nil); err == nil || !strings.Contains(err.Error(), "required before opset 18") {
		t.Errorf("OptionalHasElement-15 without input: error %v", err)
	}

	get := newOpCall("OptionalGetElement", 18)
	for _, v := range []*Tensor{full, x} {
		got, err := get.run(v)
		if err != nil {
			t.Fatal(err)
		}
		wantFloats(t, "element", got[0], []int{2}, 1, 2)
	}
	if _, err := get.run(none); err == nil || !strings.Contains(err.Error(), "empty optional") {
		t.Errorf("OptionalGetElement of an empty optional: error %v", err)
	}

	got, err := newOpCall("Optional", 15).run(x)
	if err != nil {
		t.Fatal(err)
	}
	if o := got[0]; o.Kind != KindOptional || len(o.Elems) != 1 {
		t.Fatalf("Optional(x) = %v", o)
	}
	wantFloats(t, "Optional(x)", got[0].Elems[0], []int{2}, 1, 2)
	typed := newOpCall("Optional", 15)
	typed.attrs = append(typed.attrs, &onnx.AttributeProto{Name: proto.String("type"), Type: onnx.AttributeProto_TYPE_PROTO.Enum(),
		Tp: &onnx.TypeProto{Value: &onnx.TypeProto_SequenceType{SequenceType: &onnx.TypeProto_Sequence{ElemType: graph.TensorType(onnx.TensorProto_INT32, nil)}}}})
	if got, err = typed.run(); err != nil {
		t.Fatal(err)
	}
	if o := got[0]; o.Kind != KindOptional || len(o.Elems) != 0 || o.DType != onnx.TensorProto_INT32 {
		t.Errorf("Optional with type seq(int32) = %v", o)
	}
	if _, err := newOpCall("Optional", 15).run(); err == nil || !strings.Contains(err.Error(), "type attribute") {
		t.Errorf("Optional with neither input nor type: error %v", err)
	}
	if _, err := newOpCall("Optional", 15).run(full); err == nil || !strings.Contains(err.Error(), "optional already") {
		t.Errorf("Optional of an optional: error %v", err)
	}
}

// Operators that take tensors refuse sequences and optionals before their
// kernels run, and graph inputs refuse a value of the wrong kind.
func TestNonTensorsRefused(t *testing.T) {
	x := f32s(t, 1, -2)
	for _, v := range []*Tensor{seqOf(x), NewSequence(onnx.TensorProto_FLOAT), NewOptional(onnx.TensorProto_FLOAT, x), NewOptional(onnx.TensorProto_FLOAT, nil)} {
		for _, op := range []string{"Relu", "Shape", "Concat", "Reshape"} {
			c := newOpCall(op, 13)
			in := []*Tensor{v}
			switch op {
			case "Concat":
				c.int("axis", 0)
				in = append(in, x)
			case "Reshape":
				in = append(in, mustTensor(t, ints(-1), 1))
			}
			if _, err := c.run(in...); err == nil || !strings.Contains(err.Error(), "input 0 is not a tensor") {
				t.Errorf("%s(%s): error %v", op, v, err)
			}
		}
	}

	p := compileProto(t, 11, &onnx.GraphProto{
		Name: proto.String("g"),
		Node: []*onnx.NodeProto{nodeProto("SequenceLength", []string{"s"}, []string{"n"})},
		Input: []*onnx.ValueInfoProto{{Name: proto.String("s"), Type: &onnx.TypeProto{Value: &onnx.TypeProto_SequenceType{
			SequenceType: &onnx.TypeProto_Sequence{ElemType: graph.TensorType(onnx.TensorProto_FLOAT, nil)}}}}},
		Output: []*onnx.ValueInfoProto{valueInfo("n", onnx.TensorProto_INT64)},
	})
	for _, tt := range []struct {
		v    *Tensor
		want string
	}{
		{x, "want a sequence"},
		{seqOf(scalarI64(1)), "want elements of float"},
		{NewSequence(onnx.TensorProto_FLOAT, x, scalarI64(1)), "element 1 is int64"},
		{NewSequence(onnx.TensorProto_FLOAT, &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{3}, Data: []float32{1}}), "do not fill shape"},
		{NewSequence(onnx.TensorProto_FLOAT, &Tensor{DType: onnx.TensorProto_FLOAT, Shape: []int{1}, Data: []int32{1}}), "does not hold float"},
	} {
		if _, err := p.Run(map[string]*Tensor{"s": tt.v}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("input %s: error %v, want one saying %q", tt.v, err, tt.want)
		}
	}
	got, err := p.Run(map[string]*Tensor{"s": seqOf(x, x)})
	if err != nil || got["n"].Data.([]int64)[0] != 2 {
		t.Errorf("SequenceLength of two: %v, %v", got["n"], err)
	}
}

// SequenceMap with an empty input sequence gives empty sequences of the
// element types the body declares, and a body that keeps each element's
// shape (in the body's reused buffers) gives independent outputs.
func TestSequenceMap(t *testing.T) {
	body := &onnx.GraphProto{
		Name:   proto.String("body"),
		Node:   []*onnx.NodeProto{nodeProto("Shape", []string{"x"}, []string{"shape"}), nodeProto("Mul", []string{"x", "k"}, []string{"y"})},
		Input:  []*onnx.ValueInfoProto{{Name: proto.String("x"), Type: graph.TensorType(onnx.TensorProto_FLOAT, nil)}, {Name: proto.String("k"), Type: graph.TensorType(onnx.TensorProto_FLOAT, nil)}},
		Output: []*onnx.ValueInfoProto{valueInfo("shape", onnx.TensorProto_INT64, 1), {Name: proto.String("y"), Type: graph.TensorType(onnx.TensorProto_FLOAT, nil)}},
	}
	seqType := func(dt onnx.TensorProto_DataType) *onnx.TypeProto {
		return &onnx.TypeProto{Value: &onnx.TypeProto_SequenceType{SequenceType: &onnx.TypeProto_Sequence{ElemType: graph.TensorType(dt, nil)}}}
	}
	p := compileProto(t, 17, &onnx.GraphProto{
		Name:   proto.String("g"),
		Node:   []*onnx.NodeProto{nodeProto("SequenceMap", []string{"s", "k"}, []string{"shapes", "ys"}, graphAttr("body", body))},
		Input:  []*onnx.ValueInfoProto{{Name: proto.String("s"), Type: seqType(onnx.TensorProto_FLOAT)}, valueInfo("k", onnx.TensorProto_FLOAT)},
		Output: []*onnx.ValueInfoProto{{Name: proto.String("shapes"), Type: seqType(onnx.TensorProto_INT64)}, {Name: proto.String("ys"), Type: seqType(onnx.TensorProto_FLOAT)}},
	})
	k := mustTensor(t, []float32{10}, []int{}...)
	got, err := p.Run(map[string]*Tensor{"s": NewSequence(onnx.TensorProto_FLOAT), "k": k})
	if err != nil {
		t.Fatal(err)
	}
	wantSequence(t, got["shapes"], onnx.TensorProto_INT64)
	wantSequence(t, got["ys"], onnx.TensorProto_FLOAT)
	for range 2 {
		got, err = p.Run(map[string]*Tensor{"s": seqOf(f32s(t, 1), f32s(t, 2, 3)), "k": k})
		if err != nil {
			t.Fatal(err)
		}
		wantSequence(t, got["shapes"], onnx.TensorProto_INT64, mustTensor(t, ints(1), 1), mustTensor(t, ints(2), 1))
		wantSequence(t, got["ys"], onnx.TensorProto_FLOAT, f32s(t, 10), f32s(t, 20, 30))
	}
	if _, err := p.Run(map[string]*Tensor{"s": seqOf(f32s(t, 1)), "k": seqOf(k, k)}); err == nil {
		t.Error("a tensor input given a sequence: no error")
	}
}

func TestValueClone(t *testing.T) {
	x := f32s(t, 1, 2)
	s := NewOptional(onnx.TensorProto_FLOAT, seqOf(x, f32s(t, 3)))
	c := s.Clone()
	if _, _, ok := Compare(c, s, 0, 0); !ok {
		t.Fatalf("clone %v differs from %v", c, s)
	}
	c.Elems[0].Elems[0].Data.([]float32)[0] = 9
	c.Elems[0].Elems = c.Elems[0].Elems[:1]
	if x.Data.([]float32)[0] != 1 || len(s.Elems[0].Elems) != 2 {
		t.Errorf("changing the clone changed the original: %v", s)
	}
	if _, _, ok := Compare(c, s, 0, 0); ok {
		t.Error("Compare misses a shorter sequence")
	}
	if _, _, ok := Compare(NewOptional(onnx.TensorProto_FLOAT, nil), NewOptional(onnx.TensorProto_FLOAT, x), 0, 0); ok {
		t.Error("Compare matches an empty optional with a full one")
	}
	if _, _, ok := Compare(NewSequence(onnx.TensorProto_FLOAT), NewSequence(onnx.TensorProto_INT64), 0, 0); ok {
		t.Error("Compare matches empty sequences of different types")
	}
	if _, _, ok := Compare(seqOf(x), x, 0, 0); ok {
		t.Error("Compare matches a sequence with a tensor")
	}
}
