package passes

import (
	"strings"
	"testing"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// cast adds a Cast of x to type to.
func (b *builder) cast(out string, x *graph.Value, to onnx.DataType) *graph.Value {
	y := b.node("Cast", out, x)
	y.Producer.SetAttr(intAttr("to", int64(to)))
	return y
}

func TestCast(t *testing.T) {
	const (
		f16 = onnx.TensorProto_FLOAT16
		f32 = onnx.TensorProto_FLOAT
		f64 = onnx.TensorProto_DOUBLE
		i8  = onnx.TensorProto_INT8
		i32 = onnx.TensorProto_INT32
		i64 = onnx.TensorProto_INT64
	)
	// integers makes x·scale, whose random inputs in [-1, 1) give
	// integers across the range once cast.
	integers := func(b *builder, scale float32) *graph.Value {
		return b.node("Mul", "scaled", b.input("x", 2, 3), b.init("scale", nil, scale))
	}
	checkRewrites(t, "cast", []rewriteCase{
		{"to the input's type", 13, func(b *builder) {
			b.output(b.node("Relu", "y", b.cast("c", b.input("x", 2, 3), f32)))
		}, "Relu", 1},
		{"CastLike to the input's type", 15, func(b *builder) {
			b.output(b.node("Relu", "y", b.node("CastLike", "c", b.input("x", 2, 3), b.init("like", nil, 0))))
		}, "Relu", 1},
		{"float32 through float64", 13, func(b *builder) {
			b.output(b.node("Relu", "y", b.cast("back", b.cast("wide", b.input("x", 2, 3), f64), f32)))
		}, "Relu", 2},
		{"float32 through float16 rounds, and stays", 13, func(b *builder) {
			b.output(b.node("Relu", "y", b.cast("back", b.cast("half", b.input("x", 2, 3), f16), f32)))
		}, "Cast Cast Relu", 0},
		{"int32 through int64", 13, func(b *builder) {
			n := b.cast("n", integers(b, 2e9), i32)
			b.output(b.cast("y", b.cast("back", b.cast("wide", n, i64), i32), f32))
		}, "Mul Cast Cast", 2},
		{"int64 through int32 wraps, and stays", 13, func(b *builder) {
			n := b.cast("n", integers(b, 3e9), i64)
			b.output(b.cast("y", b.cast("back", b.cast("narrow", n, i32), i64), f32))
		}, "Mul Cast Cast Cast Cast", 0},
		{"int8 through int32 to int64", 13, func(b *builder) {
			n := b.cast("n", integers(b, 100), i8)
			b.output(b.cast("y", b.cast("wider", b.cast("wide", n, i32), i64), f32))
		}, "Mul Cast Cast Cast", 2},
		{"intermediate read elsewhere stays", 13, func(b *builder) {
			wide := b.cast("wide", b.input("x", 2, 3), f64)
			b.output(b.node("Relu", "y", b.cast("back", wide, f32)), b.node("Neg", "z", wide))
		}, "Cast Relu Neg", 1},
		{"graph output keeps its name", 13, func(b *builder) {
			b.output(b.cast("y", b.node("Relu", "r", b.input("x", 2, 3)), f32))
		}, "Relu", 1},
	}, nil)
}

func TestCastInSubgraphs(t *testing.T) {
	outer := []*onnx.TensorProto{tensorProto(t, "a", onnx.TensorProto_FLOAT, []int64{3}, []float32{1, 2, 3})}
	cast := func(in, out string, to onnx.DataType) *onnx.NodeProto {
		n := nodeProto("Cast", []string{in}, out)
		n.Attribute = append(n.Attribute, intAttr("to", int64(to)))
		return n
	}
	m := ifModel(t, 13, outer, []*onnx.NodeProto{
		cast("x", "wide", onnx.TensorProto_DOUBLE),
		cast("wide", "back", onnx.TensorProto_FLOAT),
		nodeProto("Add", []string{"back", "a"}, "r"),
	}, nil)
	res := checkPass(t, m, "cast")
	if got := strings.Join(branches(m), ", "); got != "Add, Add" || res.Changes != 4 {
		t.Errorf("branches %q, %d changes; want Add, Add and 4", got, res.Changes)
	}
}

func TestExactCasts(t *testing.T) {
	for _, tc := range []struct {
		from, to onnx.DataType
		exact    bool
	}{
		{onnx.TensorProto_FLOAT, onnx.TensorProto_DOUBLE, true},
		{onnx.TensorProto_FLOAT16, onnx.TensorProto_FLOAT, true},
		{onnx.TensorProto_BFLOAT16, onnx.TensorProto_DOUBLE, true},
		{onnx.TensorProto_FLOAT16, onnx.TensorProto_BFLOAT16, false}, // range and precision differ
		{onnx.TensorProto_DOUBLE, onnx.TensorProto_FLOAT, false},
		{onnx.TensorProto_INT32, onnx.TensorProto_INT64, true},
		{onnx.TensorProto_UINT32, onnx.TensorProto_INT64, true},
		{onnx.TensorProto_INT32, onnx.TensorProto_UINT64, false}, // negatives
		{onnx.TensorProto_UINT32, onnx.TensorProto_INT32, false},
		{onnx.TensorProto_INT8, onnx.TensorProto_BFLOAT16, true},       // |x| ≤ 128 in 8 bits
		{onnx.TensorProto_UINT8, onnx.TensorProto_BFLOAT16, true},      // 255 in 8 bits
		{onnx.TensorProto_INT16, onnx.TensorProto_FLOAT16, false},      // 2049 needs 12 bits
		{onnx.TensorProto_UINT16, onnx.TensorProto_FLOAT, true},        // 16 bits in 24
		{onnx.TensorProto_INT32, onnx.TensorProto_FLOAT, false},        // 2^24+1
		{onnx.TensorProto_INT32, onnx.TensorProto_DOUBLE, true},        // 31 bits in 53
		{onnx.TensorProto_INT64, onnx.TensorProto_DOUBLE, false},       // 2^53+1
		{onnx.TensorProto_BOOL, onnx.TensorProto_FLOAT16, true},        // 0 and 1
		{onnx.TensorProto_BOOL, onnx.TensorProto_UINT8, true},          // 0 and 1
		{onnx.TensorProto_FLOAT, onnx.TensorProto_INT64, false},        // fractions
		{onnx.TensorProto_UINT8, onnx.TensorProto_BOOL, false},         // 2 comes back as 1
		{onnx.TensorProto_FLOAT8E4M3FN, onnx.TensorProto_FLOAT, false}, // not considered
	} {
		if got := exact(tc.from, tc.to); got != tc.exact {
			t.Errorf("exact(%v, %v) = %v, want %v", tc.from, tc.to, got, tc.exact)
		}
	}
}
