package onnx

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
)

var narrowTypes = []DataType{
	TensorProto_FLOAT16, TensorProto_BFLOAT16, TensorProto_FLOAT8E4M3FN, TensorProto_FLOAT8E4M3FNUZ,
	TensorProto_FLOAT8E5M2, TensorProto_FLOAT8E5M2FNUZ, TensorProto_FLOAT4E2M1,
}

// fromBits and toBits go through the exported conversions for dt.
func fromBits(dt DataType, code uint16) float32 {
	switch dt {
	case TensorProto_FLOAT16:
		return Float16frombits(code)
	case TensorProto_BFLOAT16:
		return BFloat16frombits(code)
	case TensorProto_FLOAT4E2M1:
		return Float4frombits(uint8(code))
	}
	return Float8frombits(dt, uint8(code))
}

func toBits(dt DataType, f float32, saturate bool) uint16 {
	switch dt {
	case TensorProto_FLOAT16:
		return Float16bits(f)
	case TensorProto_BFLOAT16:
		return BFloat16bits(f)
	case TensorProto_FLOAT4E2M1:
		return uint16(Float4bits(f))
	}
	return uint16(Float8bits(dt, f, saturate))
}

func codeCount(dt DataType) int { return 1 << dt.Bits() }

// TestNarrowFloatSpecValues checks values stated in the ONNX documents
// (docs/technical/float8.md, float4.md) and IEEE 754 binary16 and bfloat16.
func TestNarrowFloatSpecValues(t *testing.T) {
	for _, c := range []struct {
		dt   DataType
		code uint16
		want float64
	}{
		{TensorProto_FLOAT16, 0x3c00, 1},
		{TensorProto_FLOAT16, 0x7bff, 65504},
		{TensorProto_FLOAT16, 0x0001, 0x1p-24},
		{TensorProto_FLOAT16, 0x03ff, 1023 * 0x1p-24},
		{TensorProto_FLOAT16, 0x0400, 0x1p-14},
		{TensorProto_FLOAT16, 0xc000, -2},
		{TensorProto_FLOAT16, 0x7c00, math.Inf(1)},
		{TensorProto_FLOAT16, 0xfc00, math.Inf(-1)},
		{TensorProto_BFLOAT16, 0x3f80, 1},
		{TensorProto_BFLOAT16, 0x7f7f, 0x1.fep127},
		{TensorProto_BFLOAT16, 0x0001, 0x1p-133},
		{TensorProto_BFLOAT16, 0xff80, math.Inf(-1)},
		// E4M3FN: bias 7, max S.1111.110 = 448, min 2^-9, no infinity.
		{TensorProto_FLOAT8E4M3FN, 0x38, 1},
		{TensorProto_FLOAT8E4M3FN, 0x7e, 448},
		{TensorProto_FLOAT8E4M3FN, 0xfe, -448},
		{TensorProto_FLOAT8E4M3FN, 0x01, 0x1p-9},
		{TensorProto_FLOAT8E4M3FN, 0x08, 0x1p-6},
		// E4M3FNUZ: bias 8, max S.1111.111 = 240, min 2^-10.
		{TensorProto_FLOAT8E4M3FNUZ, 0x40, 1},
		{TensorProto_FLOAT8E4M3FNUZ, 0x7f, 240},
		{TensorProto_FLOAT8E4M3FNUZ, 0x01, 0x1p-10},
		{TensorProto_FLOAT8E4M3FNUZ, 0xff, -240},
		// E5M2: bias 15, max 1.75 × 2^15 = 57344, min 2^-16, infinities.
		{TensorProto_FLOAT8E5M2, 0x3c, 1},
		{TensorProto_FLOAT8E5M2, 0x7b, 57344},
		{TensorProto_FLOAT8E5M2, 0x01, 0x1p-16},
		{TensorProto_FLOAT8E5M2, 0x7c, math.Inf(1)},
		{TensorProto_FLOAT8E5M2, 0xfc, math.Inf(-1)},
		// E5M2FNUZ: bias 16, max S.11111.11 = 57344, min 2^-17.
		{TensorProto_FLOAT8E5M2FNUZ, 0x40, 1},
		{TensorProto_FLOAT8E5M2FNUZ, 0x7f, 57344},
		{TensorProto_FLOAT8E5M2FNUZ, 0x01, 0x1p-17},
		// E2M1: the table of float4.md.
		{TensorProto_FLOAT4E2M1, 0, 0}, {TensorProto_FLOAT4E2M1, 1, 0.5}, {TensorProto_FLOAT4E2M1, 2, 1},
		{TensorProto_FLOAT4E2M1, 3, 1.5}, {TensorProto_FLOAT4E2M1, 4, 2}, {TensorProto_FLOAT4E2M1, 5, 3},
		{TensorProto_FLOAT4E2M1, 6, 4}, {TensorProto_FLOAT4E2M1, 7, 6}, {TensorProto_FLOAT4E2M1, 0xf, -6},
		{TensorProto_FLOAT4E2M1, 0x9, -0.5},
		// E8M0: 2^(code-127).
		{TensorProto_FLOAT8E8M0, 0x7f, 1},
		{TensorProto_FLOAT8E8M0, 0x00, 0x1p-127},
		{TensorProto_FLOAT8E8M0, 0xfe, 0x1p127},
		{TensorProto_FLOAT8E8M0, 0x82, 8},
	} {
		if got := fromBits(c.dt, c.code); float64(got) != c.want {
			t.Errorf("%v code %#x = %g, want %g", c.dt, c.code, got, c.want)
		}
		if got := toBits(c.dt, float32(c.want), false); got != c.code {
			t.Errorf("%v of %g = %#x, want %#x", c.dt, c.want, got, c.code)
		}
	}
	nanCodes := map[DataType][]uint16{
		TensorProto_FLOAT16:        {0x7c01, 0x7e00, 0xfe00, 0x7fff},
		TensorProto_BFLOAT16:       {0x7fc0, 0xffc0, 0x7f81},
		TensorProto_FLOAT8E4M3FN:   {0x7f, 0xff},
		TensorProto_FLOAT8E4M3FNUZ: {0x80},
		TensorProto_FLOAT8E5M2:     {0x7d, 0x7e, 0x7f, 0xfd, 0xfe, 0xff},
		TensorProto_FLOAT8E5M2FNUZ: {0x80},
		TensorProto_FLOAT8E8M0:     {0xff},
	}
	for dt, codes := range nanCodes {
		for _, c := range codes {
			if f := fromBits(dt, c); !math.IsNaN(float64(f)) {
				t.Errorf("%v code %#x = %g, want NaN", dt, c, f)
			}
		}
	}
}

// TestNarrowFloatCastTable checks the conversion tables of float8.md for
// Cast with and without saturation, and the float4.md table.
func TestNarrowFloatCastTable(t *testing.T) {
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	const nanFNUZ = 0x80
	for _, c := range []struct {
		dt       DataType
		saturate bool
		x        float32
		want     uint16
	}{
		{TensorProto_FLOAT8E4M3FN, true, 0, 0x00},
		{TensorProto_FLOAT8E4M3FN, true, float32(math.Copysign(0, -1)), 0x80},
		{TensorProto_FLOAT8E4M3FN, true, nan, 0x7f},
		{TensorProto_FLOAT8E4M3FN, true, -nan, 0xff},
		{TensorProto_FLOAT8E4M3FN, true, inf, 0x7e},
		{TensorProto_FLOAT8E4M3FN, true, -inf, 0xfe},
		{TensorProto_FLOAT8E4M3FN, true, 1e6, 0x7e},
		{TensorProto_FLOAT8E4M3FN, true, -1e6, 0xfe},
		{TensorProto_FLOAT8E4M3FN, false, inf, 0x7f},
		{TensorProto_FLOAT8E4M3FN, false, -inf, 0xff},
		{TensorProto_FLOAT8E4M3FN, false, 1e6, 0x7f},
		{TensorProto_FLOAT8E4M3FN, false, -1e6, 0xff},
		// 464 lies halfway between 448 (mantissa 110, even) and 480, which
		// does not exist; it rounds to 448. Above it, [x] > FLT_MAX.
		{TensorProto_FLOAT8E4M3FN, false, 464, 0x7e},
		{TensorProto_FLOAT8E4M3FN, false, 465, 0x7f},
		{TensorProto_FLOAT8E4M3FN, true, 465, 0x7e},

		{TensorProto_FLOAT8E4M3FNUZ, true, float32(math.Copysign(0, -1)), 0x00},
		{TensorProto_FLOAT8E4M3FNUZ, true, nan, nanFNUZ},
		{TensorProto_FLOAT8E4M3FNUZ, true, inf, nanFNUZ},
		{TensorProto_FLOAT8E4M3FNUZ, true, -inf, nanFNUZ},
		{TensorProto_FLOAT8E4M3FNUZ, true, 1e6, 0x7f},
		{TensorProto_FLOAT8E4M3FNUZ, true, -1e6, 0xff},
		{TensorProto_FLOAT8E4M3FNUZ, false, 1e6, nanFNUZ},
		{TensorProto_FLOAT8E4M3FNUZ, false, -1e6, nanFNUZ},
		{TensorProto_FLOAT8E4M3FNUZ, false, -nan, nanFNUZ},
		{TensorProto_FLOAT8E4M3FNUZ, true, -0x1p-12, 0x00}, // rounds to -0, which does not exist

		{TensorProto_FLOAT8E5M2, true, float32(math.Copysign(0, -1)), 0x80},
		{TensorProto_FLOAT8E5M2, true, inf, 0x7b},
		{TensorProto_FLOAT8E5M2, true, -inf, 0xfb},
		{TensorProto_FLOAT8E5M2, true, 1e6, 0x7b},
		{TensorProto_FLOAT8E5M2, false, inf, 0x7c},
		{TensorProto_FLOAT8E5M2, false, -inf, 0xfc},
		{TensorProto_FLOAT8E5M2, false, 1e6, 0x7c},
		{TensorProto_FLOAT8E5M2, false, -1e6, 0xfc},
		// 61440 is halfway between 57344 (mantissa 11, odd) and 65536:
		// ties to even go up, past the largest finite value.
		{TensorProto_FLOAT8E5M2, false, 61440, 0x7c},
		{TensorProto_FLOAT8E5M2, true, 61440, 0x7b},
		{TensorProto_FLOAT8E5M2, false, 61439, 0x7b},

		{TensorProto_FLOAT8E5M2FNUZ, true, inf, nanFNUZ},
		{TensorProto_FLOAT8E5M2FNUZ, true, 1e6, 0x7f},
		{TensorProto_FLOAT8E5M2FNUZ, false, 1e6, nanFNUZ},
		{TensorProto_FLOAT8E5M2FNUZ, false, -1e6, nanFNUZ},
		{TensorProto_FLOAT8E5M2FNUZ, true, float32(math.Copysign(0, -1)), 0x00},

		{TensorProto_FLOAT4E2M1, true, 7, 0x7},
		{TensorProto_FLOAT4E2M1, true, -7, 0xf},
		{TensorProto_FLOAT4E2M1, true, inf, 0x7},
		{TensorProto_FLOAT4E2M1, true, -inf, 0xf},
		{TensorProto_FLOAT4E2M1, true, nan, 0x7},
		{TensorProto_FLOAT4E2M1, true, float32(math.Copysign(0, -1)), 0x8},
		{TensorProto_FLOAT4E2M1, true, 0.25, 0x0}, // ties to even
		{TensorProto_FLOAT4E2M1, true, 0.75, 0x2},
		{TensorProto_FLOAT4E2M1, true, 2.5, 0x4},
		{TensorProto_FLOAT4E2M1, true, 5, 0x6},
		{TensorProto_FLOAT4E2M1, true, 5.01, 0x7},

		{TensorProto_FLOAT16, false, 65519, 0x7bff},
		{TensorProto_FLOAT16, false, 65520, 0x7c00},
		{TensorProto_FLOAT16, false, -65520, 0xfc00},
		{TensorProto_FLOAT16, false, 0x1p-25, 0x0000},
		{TensorProto_FLOAT16, false, 0x1.000002p-25, 0x0001},
		{TensorProto_FLOAT16, false, 3 * 0x1p-25, 0x0002},
		{TensorProto_FLOAT16, false, float32(math.Copysign(0, -1)), 0x8000},
		{TensorProto_FLOAT16, false, 1 + 0x1p-11, 0x3c00},
		{TensorProto_FLOAT16, false, 1 + 3*0x1p-11, 0x3c02},
		{TensorProto_BFLOAT16, false, 1 + 0x1p-8, 0x3f80},
		{TensorProto_BFLOAT16, false, 1 + 3*0x1p-8, 0x3f82},
		{TensorProto_BFLOAT16, false, math.MaxFloat32, 0x7f80},
		{TensorProto_BFLOAT16, false, 0x1p-149, 0x0000},

		{TensorProto_FLOAT8E8M0, true, 3, 0x81},
		{TensorProto_FLOAT8E8M0, true, 0.75, 0x7f},
		{TensorProto_FLOAT8E8M0, true, -2, 0x80},
		{TensorProto_FLOAT8E8M0, true, 0, 0x00},
		{TensorProto_FLOAT8E8M0, true, nan, 0xff},
		{TensorProto_FLOAT8E8M0, true, inf, 0xff},
		{TensorProto_FLOAT8E8M0, true, 0x1.8p127, 0xfe},
		{TensorProto_FLOAT8E8M0, false, 0x1.8p127, 0xff},
	} {
		if got := toBits(c.dt, c.x, c.saturate); got != c.want {
			t.Errorf("%v saturate=%v of %g = %#x, want %#x", c.dt, c.saturate, c.x, got, c.want)
		}
	}
}

// TestNarrowFloatRoundTrip checks every code of every narrow type: decoding
// then encoding gives the code back (NaN codes give a NaN, and in FLOAT16,
// BFLOAT16 and E5M2 keep their sign and payload).
func TestNarrowFloatRoundTrip(t *testing.T) {
	for _, dt := range append(narrowTypes, TensorProto_FLOAT8E8M0) {
		for code := range codeCount(dt) {
			f := fromBits(dt, uint16(code))
			got := toBits(dt, f, false)
			if math.IsNaN(float64(f)) {
				if g := fromBits(dt, got); !math.IsNaN(float64(g)) {
					t.Errorf("%v: NaN code %#x encodes to %#x (%g)", dt, code, got, g)
				}
				continue
			}
			if got != uint16(code) {
				t.Errorf("%v: code %#x = %g encodes to %#x", dt, code, f, got)
			}
		}
	}
	for _, c := range []uint16{0x7c01, 0xfe01, 0x7e00, 0x7d55} {
		// Widening a signalling NaN may set its quiet bit, so either form
		// of the payload may come back.
		if got := Float16bits(Float16frombits(c)); got != c && got != c|0x0200 {
			t.Errorf("FLOAT16 NaN %#x comes back as %#x, want its sign and payload", c, got)
		}
	}
}

// TestNarrowFloatRoundingProperty checks round-to-nearest-even over every
// pair of neighbouring finite codes: the midpoint goes to the code with an
// even mantissa, anything nearer to one side goes to that side. Midpoints
// and their neighbours are computed in float64, where they are exact.
func TestNarrowFloatRoundingProperty(t *testing.T) {
	for _, dt := range narrowTypes {
		format, _ := narrowFormat(dt)
		for code := uint16(0); code < format.maxCode; code++ {
			lo, hi := float64(fromBits(dt, code)), float64(fromBits(dt, code+1))
			mid := (lo + hi) / 2
			even := code
			if code&1 == 1 {
				even = code + 1
			}
			nudge := (hi - lo) / 1024
			for _, c := range []struct {
				x    float64
				want uint16
			}{{mid, even}, {mid - nudge, code}, {mid + nudge, code + 1}} {
				if got := format.encode(c.x, false); got != c.want {
					t.Errorf("%v: %g (between codes %#x and %#x) = %#x, want %#x", dt, c.x, code, code+1, got, c.want)
				}
				neg := format.encode(-c.x, false)
				wantNeg := c.want | format.signBit()
				if format.unsignedZero && c.want == 0 {
					wantNeg = 0
				}
				if neg != wantNeg {
					t.Errorf("%v: %g = %#x, want %#x", dt, -c.x, neg, wantNeg)
				}
			}
		}
	}
}

// readTensor reads a TensorProto file of the conformance suite.
func readTensor(t *testing.T, path string) *TensorProto {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tp := &TensorProto{}
	if err := proto.Unmarshal(b, tp); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return tp
}

// suiteCast returns the input and expected output tensors of a Cast case.
func suiteCast(t *testing.T, name string) (in, out *TensorProto) {
	t.Helper()
	dir := filepath.Join(suiteDir(t), "node", name, "test_data_set_0")
	return readTensor(t, filepath.Join(dir, "input_0.pb")), readTensor(t, filepath.Join(dir, "output_0.pb"))
}

func decodeAs[T any](t *testing.T, tp *TensorProto) []T {
	t.Helper()
	v, err := Decode(tp)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := v.([]T)
	if !ok {
		t.Fatalf("tensor %q decodes to %T", tp.GetName(), v)
	}
	return s
}

func sameFloat(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

// TestCastSuiteFloat16 converts the inputs of the suite's Cast cases to
// FLOAT16 and back, and compares with the expected outputs bit for bit.
func TestCastSuiteFloat16(t *testing.T) {
	in, out := suiteCast(t, "test_cast_FLOAT_to_FLOAT16")
	want, _ := RawData(out)
	got := &TensorProto{Name: proto.String("y"), Dims: in.Dims}
	if err := SetFloat32s(got, TensorProto_FLOAT16, decodeAs[float32](t, in)); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.RawData) != fmt.Sprint(want) {
		t.Errorf("FLOAT to FLOAT16: got %v, want %v", got.RawData, want)
	}

	in, out = suiteCast(t, "test_cast_DOUBLE_to_FLOAT16")
	format, _ := narrowFormat(TensorProto_FLOAT16)
	wantBits := decodeAs[float32](t, out)
	for i, x := range decodeAs[float64](t, in) {
		if got := Float16frombits(format.encode(x, false)); !sameFloat(float64(got), float64(wantBits[i])) {
			t.Errorf("DOUBLE to FLOAT16 of %v = %v, want %v", x, got, wantBits[i])
		}
	}

	for _, c := range []string{"test_cast_FLOAT16_to_FLOAT", "test_cast_FLOAT16_to_DOUBLE"} {
		in, out := suiteCast(t, c)
		got := decodeAs[float32](t, in)
		want, err := Float64s(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || len(got) == 0 {
			t.Fatalf("%s: %d values, want %d", c, len(got), len(want))
		}
		for i := range got {
			if !sameFloat(float64(got[i]), want[i]) {
				t.Errorf("%s: element %d = %v, want %v", c, i, got[i], want[i])
			}
		}
	}
}

// TestCastSuiteBFloat16 checks bfloat16 against the suite. ONNX 1.12, the
// suite's version, stored bfloat16 tensors as UINT16 and made the expected
// FLOAT-to-BFLOAT16 output by truncating, where the Cast specification
// (and ONNX from 1.14 on) rounds to nearest even. Decoding is checked
// exactly; for encoding, each of our codes must be the suite's truncated
// code, or the next one exactly when the dropped half was above or at the
// even-rounding midpoint.
func TestCastSuiteBFloat16(t *testing.T) {
	in, out := suiteCast(t, "test_cast_BFLOAT16_to_FLOAT")
	bits := decodeAs[uint16](t, in)
	want := decodeAs[float32](t, out)
	for i, b := range bits {
		if got := BFloat16frombits(b); !sameFloat(float64(got), float64(want[i])) {
			t.Errorf("BFLOAT16 %#x = %v, want %v", b, got, want[i])
		}
	}

	in, out = suiteCast(t, "test_cast_FLOAT_to_BFLOAT16")
	truncated := decodeAs[uint16](t, out)
	rounded := 0
	for i, x := range decodeAs[float32](t, in) {
		got := BFloat16bits(x)
		b := math.Float32bits(x)
		if math.IsNaN(float64(x)) {
			if !math.IsNaN(float64(BFloat16frombits(got))) || !math.IsNaN(float64(BFloat16frombits(truncated[i]))) {
				t.Errorf("NaN converts to %#x, suite %#x", got, truncated[i])
			}
			continue
		}
		dropped, kept := b&0xffff, uint16(b>>16)
		if kept != truncated[i] {
			t.Fatalf("element %d: suite code %#x is not the truncation %#x of %v", i, truncated[i], kept, x)
		}
		roundUp := dropped > 0x8000 || dropped == 0x8000 && kept&1 == 1
		wantCode := truncated[i]
		if roundUp {
			wantCode++
			rounded++
		}
		if got != wantCode {
			t.Errorf("FLOAT to BFLOAT16 of %v = %#x, want %#x (suite's truncation %#x)", x, got, wantCode, truncated[i])
		}
	}
	t.Logf("%d of %d values round up from the suite's truncated code", rounded, len(truncated))
}
