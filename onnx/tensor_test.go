package onnx

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// codecCase is one tensor in both encodings: raw is its raw_data written
// out by hand from the ONNX rules (little-endian, low bits first for packed
// types), typed fills the typed field onnx.proto assigns to the type.
type codecCase struct {
	dt     DataType
	values any
	raw    []byte
	typed  func(*TensorProto)
}

func codecCases() []codecCase {
	i32 := func(v ...int32) func(*TensorProto) { return func(t *TensorProto) { t.Int32Data = v } }
	return []codecCase{
		{TensorProto_FLOAT, []float32{1, -2.5, 0}, []byte{0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0, 0, 0, 0, 0},
			func(t *TensorProto) { t.FloatData = []float32{1, -2.5, 0} }},
		{TensorProto_DOUBLE, []float64{1, -0.5}, []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0xe0, 0xbf},
			func(t *TensorProto) { t.DoubleData = []float64{1, -0.5} }},
		{TensorProto_UINT8, []uint8{0, 255, 7}, []byte{0, 255, 7}, i32(0, 255, 7)},
		{TensorProto_INT8, []int8{-128, 127, -1}, []byte{0x80, 0x7f, 0xff}, i32(-128, 127, -1)},
		{TensorProto_UINT16, []uint16{65535, 1}, []byte{0xff, 0xff, 1, 0}, i32(65535, 1)},
		{TensorProto_INT16, []int16{-2, 300}, []byte{0xfe, 0xff, 0x2c, 0x01}, i32(-2, 300)},
		{TensorProto_INT32, []int32{-1, 1 << 30}, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x40}, i32(-1, 1<<30)},
		{TensorProto_INT64, []int64{-1, 1 << 40}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1, 0, 0},
			func(t *TensorProto) { t.Int64Data = []int64{-1, 1 << 40} }},
		{TensorProto_UINT32, []uint32{0xffffffff, 2}, []byte{0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0},
			func(t *TensorProto) { t.Uint64Data = []uint64{0xffffffff, 2} }},
		{TensorProto_UINT64, []uint64{1 << 63, 3}, []byte{0, 0, 0, 0, 0, 0, 0, 0x80, 3, 0, 0, 0, 0, 0, 0, 0},
			func(t *TensorProto) { t.Uint64Data = []uint64{1 << 63, 3} }},
		{TensorProto_BOOL, []bool{true, false, true}, []byte{1, 0, 1}, i32(1, 0, 1)},
		{TensorProto_STRING, []string{"a", "", "héllo"}, nil,
			func(t *TensorProto) { t.StringData = [][]byte{[]byte("a"), {}, []byte("héllo")} }},
		{TensorProto_COMPLEX64, []complex64{1 + 2i}, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40},
			func(t *TensorProto) { t.FloatData = []float32{1, 2} }},
		{TensorProto_COMPLEX128, []complex128{-1 - 0.5i}, []byte{0, 0, 0, 0, 0, 0, 0xf0, 0xbf, 0, 0, 0, 0, 0, 0, 0xe0, 0xbf},
			func(t *TensorProto) { t.DoubleData = []float64{-1, -0.5} }},
		{TensorProto_FLOAT16, []float32{1, -2, 65504}, []byte{0, 0x3c, 0, 0xc0, 0xff, 0x7b}, i32(0x3c00, 0xc000, 0x7bff)},
		{TensorProto_BFLOAT16, []float32{1, -2}, []byte{0x80, 0x3f, 0, 0xc0}, i32(0x3f80, 0xc000)},
		{TensorProto_FLOAT8E4M3FN, []float32{1, -448}, []byte{0x38, 0xfe}, i32(0x38, 0xfe)},
		{TensorProto_FLOAT8E4M3FNUZ, []float32{1, 240}, []byte{0x40, 0x7f}, i32(0x40, 0x7f)},
		{TensorProto_FLOAT8E5M2, []float32{1, -57344}, []byte{0x3c, 0xfb}, i32(0x3c, 0xfb)},
		{TensorProto_FLOAT8E5M2FNUZ, []float32{1, 0x1p-17}, []byte{0x40, 0x01}, i32(0x40, 0x01)},
		{TensorProto_FLOAT8E8M0, []float32{1, 0.5}, []byte{0x7f, 0x7e}, i32(0x7f, 0x7e)},
		// Packed types: an odd count leaves the high bits of the last byte
		// zero; each int32_data entry holds one packed byte.
		{TensorProto_UINT4, []uint8{1, 15, 7}, []byte{0xf1, 0x07}, i32(0xf1, 0x07)},
		{TensorProto_INT4, []int8{-8, 7, -1}, []byte{0x78, 0x0f}, i32(0x78, 0x0f)},
		{TensorProto_FLOAT4E2M1, []float32{0.5, -6, 3}, []byte{0xf1, 0x05}, i32(0xf1, 0x05)},
		{TensorProto_UINT2, []uint8{3, 0, 1, 2, 3}, []byte{0x93, 0x03}, i32(0x93, 0x03)},
		{TensorProto_INT2, []int8{-2, 1, -1, 0, 1}, []byte{0x36, 0x01}, i32(0x36, 0x01)},
	}
}

func lengthOf(v any) int64 { return int64(reflect.ValueOf(v).Len()) }

// TestCodecBothEncodings decodes each case from raw_data and from its typed
// field, and encodes it back, for every data type.
func TestCodecBothEncodings(t *testing.T) {
	covered := map[DataType]bool{}
	for _, c := range codecCases() {
		covered[c.dt] = true
		dims := []int64{lengthOf(c.values)}
		typed := &TensorProto{Name: proto.String("typed"), DataType: proto.Int32(int32(c.dt)), Dims: dims}
		c.typed(typed)
		got, err := Decode(typed)
		if err != nil {
			t.Errorf("%v typed: %v", c.dt, err)
		} else if !reflect.DeepEqual(got, c.values) {
			t.Errorf("%v typed: decoded %v, want %v", c.dt, got, c.values)
		}

		encoded, err := NewTensor("enc", c.dt, dims, c.values)
		if err != nil {
			t.Errorf("%v: %v", c.dt, err)
			continue
		}
		if c.dt == TensorProto_STRING {
			if !proto.Equal(encoded.ProtoReflect().Interface(), withName(typed, "enc")) {
				t.Errorf("STRING: encoded %v, want %v", encoded, typed)
			}
			continue
		}
		if !bytes.Equal(encoded.RawData, c.raw) {
			t.Errorf("%v: encoded raw_data % x, want % x", c.dt, encoded.RawData, c.raw)
		}
		raw := &TensorProto{Name: proto.String("raw"), DataType: proto.Int32(int32(c.dt)), Dims: dims, RawData: c.raw}
		if got, err := Decode(raw); err != nil || !reflect.DeepEqual(got, c.values) {
			t.Errorf("%v raw: decoded %v, %v, want %v", c.dt, got, err, c.values)
		}
		if conv, err := RawData(typed); err != nil || !bytes.Equal(conv, c.raw) {
			t.Errorf("%v: typed field as raw % x, %v, want % x", c.dt, conv, err, c.raw)
		}
	}
	for dt := TensorProto_FLOAT; dt.Valid(); dt++ {
		if !covered[dt] {
			t.Errorf("no codec case for %v", dt)
		}
	}
}

func withName(t *TensorProto, name string) *TensorProto {
	c := proto.Clone(t).(*TensorProto)
	c.Name = proto.String(name)
	return c
}

// TestConversions checks Float32s, Float64s and Int64s across types.
func TestConversions(t *testing.T) {
	for _, c := range []struct {
		dt     DataType
		values any
		f32    []float32
		i64    []int64
	}{
		{TensorProto_INT8, []int8{-3, 4}, []float32{-3, 4}, []int64{-3, 4}},
		{TensorProto_UINT16, []uint16{65535}, []float32{65535}, []int64{65535}},
		{TensorProto_INT64, []int64{1<<24 + 1}, []float32{1 << 24}, []int64{1<<24 + 1}},
		{TensorProto_BOOL, []bool{true, false}, []float32{1, 0}, []int64{1, 0}},
		{TensorProto_INT4, []int8{-8, 7, 1}, []float32{-8, 7, 1}, []int64{-8, 7, 1}},
		{TensorProto_UINT2, []uint8{3}, []float32{3}, []int64{3}},
		{TensorProto_DOUBLE, []float64{0.1}, []float32{0.1}, nil},
		{TensorProto_FLOAT16, []float32{0.5}, []float32{0.5}, nil},
		{TensorProto_FLOAT8E4M3FN, []float32{-2}, []float32{-2}, nil},
	} {
		tp, err := NewTensor("x", c.dt, []int64{lengthOf(c.values)}, c.values)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := Float32s(tp); err != nil || !reflect.DeepEqual(got, c.f32) {
			t.Errorf("%v: Float32s = %v, %v, want %v", c.dt, got, err, c.f32)
		}
		f64, err := Float64s(tp)
		if err != nil || len(f64) != len(c.f32) {
			t.Errorf("%v: Float64s = %v, %v", c.dt, f64, err)
		}
		got, err := Int64s(tp)
		switch {
		case c.i64 == nil && err == nil:
			t.Errorf("%v: Int64s = %v, want an error", c.dt, got)
		case c.i64 != nil && (err != nil || !reflect.DeepEqual(got, c.i64)):
			t.Errorf("%v: Int64s = %v, %v, want %v", c.dt, got, err, c.i64)
		}
	}
	big, _ := NewTensor("big", TensorProto_UINT64, []int64{1}, []uint64{1 << 63})
	if _, err := Int64s(big); err == nil || !strings.Contains(err.Error(), "overflows") {
		t.Errorf("Int64s of 2^63: error %v, want overflow", err)
	}
	for _, v := range []struct {
		dt DataType
		v  any
	}{{TensorProto_STRING, []string{"x"}}, {TensorProto_COMPLEX64, []complex64{1}}} {
		tp, _ := NewTensor("s", v.dt, []int64{1}, v.v)
		if _, err := Float32s(tp); err == nil {
			t.Errorf("Float32s of %v succeeded", v.dt)
		}
	}
}

// TestSetFloat32s covers conversion into each floating type and the
// refusal of others.
func TestSetFloat32s(t *testing.T) {
	in := []float32{1, -0.3, 1000, float32(math.Inf(1))}
	for _, dt := range []DataType{TensorProto_FLOAT, TensorProto_DOUBLE, TensorProto_FLOAT16, TensorProto_BFLOAT16,
		TensorProto_FLOAT8E4M3FN, TensorProto_FLOAT8E5M2, TensorProto_FLOAT8E4M3FNUZ, TensorProto_FLOAT8E5M2FNUZ,
		TensorProto_FLOAT8E8M0, TensorProto_FLOAT4E2M1} {
		tp := &TensorProto{Name: proto.String("w"), Dims: []int64{2, 2}, Int64Data: []int64{9}, DataLocation: TensorProto_DEFAULT.Enum()}
		if err := SetFloat32s(tp, dt, in); err != nil {
			t.Errorf("%v: %v", dt, err)
			continue
		}
		if tp.Int64Data != nil || tp.DataLocation != nil || DataType(tp.GetDataType()) != dt {
			t.Errorf("%v: other data fields not cleared: %v", dt, tp)
		}
		got, err := Float32s(tp)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range in {
			var want float32
			switch {
			case dt == TensorProto_FLOAT || dt == TensorProto_DOUBLE:
				want = x
			case dt == TensorProto_FLOAT4E2M1:
				want = Float4frombits(Float4bits(x))
			case dt.IsFloat8():
				want = Float8frombits(dt, Float8bits(dt, x, true))
			default:
				want = fromBits(dt, toBits(dt, x, false))
			}
			if !sameFloat(float64(got[i]), float64(want)) {
				t.Errorf("%v: element %d = %v, want %v", dt, i, got[i], want)
			}
		}
	}
	if err := SetFloat32s(&TensorProto{Dims: []int64{1}}, TensorProto_INT8, []float32{1}); err == nil {
		t.Error("SetFloat32s to INT8 succeeded")
	}
	if err := SetFloat32s(&TensorProto{Dims: []int64{3}}, TensorProto_FLOAT, []float32{1}); err == nil {
		t.Error("SetFloat32s with 1 value for 3 elements succeeded")
	}
}

// TestFloat32sZeroCopy checks that aligned FLOAT raw_data is used in place
// and misaligned raw_data is copied correctly.
func TestFloat32sZeroCopy(t *testing.T) {
	tp, _ := NewTensor("w", TensorProto_FLOAT, []int64{2}, []float32{1.5, -2})
	got, _ := Float32s(tp)
	if hostLittleEndian() && uintptrOf(&tp.RawData[0])%4 == 0 && uintptrOf(&tp.RawData[0]) != uintptr(unsafePointer(got)) {
		t.Error("aligned raw_data was copied")
	}
	buf := make([]byte, 9)
	copy(buf[1:], tp.RawData)
	tp.RawData = buf[1:9]
	got, err := Float32s(tp)
	if err != nil || !reflect.DeepEqual(got, []float32{1.5, -2}) {
		t.Errorf("misaligned: %v, %v", got, err)
	}
}

// TestTensorErrors checks that malformed tensors are refused with a message
// naming the tensor and the problem.
func TestTensorErrors(t *testing.T) {
	f32 := proto.Int32(int32(TensorProto_FLOAT))
	for _, c := range []struct {
		tensor *TensorProto
		want   string
	}{
		{&TensorProto{Name: proto.String("short"), DataType: f32, Dims: []int64{2, 3}, RawData: make([]byte, 20)}, "raw_data has 20 bytes, want 24"},
		{&TensorProto{Name: proto.String("count"), DataType: f32, Dims: []int64{2}, FloatData: []float32{1}}, "float_data has 1 entries, want 2"},
		{&TensorProto{Name: proto.String("field"), DataType: f32, Dims: []int64{1}, Int64Data: []int64{1}}, "FLOAT data in int64_data"},
		{&TensorProto{Name: proto.String("two"), DataType: f32, Dims: []int64{1}, FloatData: []float32{1}, RawData: make([]byte, 4)}, "several fields"},
		{&TensorProto{Name: proto.String("neg"), DataType: f32, Dims: []int64{2, -1}}, "dimension 1 is negative"},
		{&TensorProto{Name: proto.String("overflow"), DataType: f32, Dims: []int64{1 << 40, 1 << 40}}, "more than"},
		{&TensorProto{Name: proto.String("huge"), DataType: f32, Dims: []int64{1 << 33}, RawData: []byte{}}, "more than the limit"},
		{&TensorProto{Name: proto.String("empty"), DataType: f32, Dims: []int64{3}}, "has no data"},
		{&TensorProto{Name: proto.String("type"), DataType: proto.Int32(99), Dims: []int64{1}}, "invalid data type 99"},
		{&TensorProto{Name: proto.String("undef"), Dims: []int64{1}}, "invalid data type 0"},
		{&TensorProto{Name: proto.String("seg"), DataType: f32, Segment: &TensorProto_Segment{}}, "segmented"},
		{&TensorProto{Name: proto.String("ext"), DataType: f32, DataLocation: TensorProto_EXTERNAL.Enum()}, "external"},
		{&TensorProto{Name: proto.String("str"), DataType: proto.Int32(int32(TensorProto_STRING)), Dims: []int64{1}, RawData: []byte("x")}, "belongs in string_data"},
		{&TensorProto{Name: proto.String("int4"), DataType: proto.Int32(int32(TensorProto_INT4)), Dims: []int64{3}, Int32Data: []int32{1}}, "int32_data has 1 entries, want 2"},
		{&TensorProto{Name: proto.String("f16raw"), DataType: proto.Int32(int32(TensorProto_FLOAT16)), Dims: []int64{3}, RawData: make([]byte, 3)}, "want 6"},
	} {
		_, err := Decode(c.tensor)
		if err == nil {
			t.Errorf("%s: decoded without error", c.tensor.GetName())
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `tensor "`+c.tensor.GetName()+`"`) {
			t.Errorf("%s: error %q, want it to name the tensor and contain %q", c.tensor.GetName(), err, c.want)
		}
	}
	for _, c := range []struct {
		dt DataType
		v  any
	}{
		{TensorProto_INT4, []int8{8}}, {TensorProto_INT2, []int8{-3}}, {TensorProto_UINT4, []uint8{16}},
		{TensorProto_FLOAT, []float64{1}}, {TensorProto_INT8, []uint8{1}}, {TensorProto_STRING, []int32{1}},
	} {
		if _, err := NewTensor("bad", c.dt, []int64{1}, c.v); err == nil {
			t.Errorf("encoding %T as %v succeeded", c.v, c.dt)
		}
	}
}

// TestNumElements covers scalars, zero dimensions and the limits.
func TestNumElements(t *testing.T) {
	for _, c := range []struct {
		dims []int64
		n    int64
		ok   bool
	}{
		{nil, 1, true}, {[]int64{0, 5}, 0, true}, {[]int64{2, 3, 4}, 24, true},
		{[]int64{-1}, 0, false}, {[]int64{1 << 62, 4}, 0, false}, {[]int64{maxElements, 2}, 0, false},
		{[]int64{maxElements}, maxElements, true},
	} {
		n, err := NumElements(c.dims)
		if (err == nil) != c.ok || c.ok && n != c.n {
			t.Errorf("NumElements(%v) = %d, %v; want %d, ok=%v", c.dims, n, err, c.n, c.ok)
		}
	}
	if _, err := TensorProto_FLOAT.RawSize(maxElements); err == nil {
		t.Error("RawSize accepted more than MaxTensorBytes")
	}
	if n, err := TensorProto_INT4.RawSize(5); err != nil || n != 3 {
		t.Errorf("INT4 RawSize(5) = %d, %v; want 3", n, err)
	}
	if n, err := TensorProto_UINT2.RawSize(5); err != nil || n != 2 {
		t.Errorf("UINT2 RawSize(5) = %d, %v; want 2", n, err)
	}
}

// TestDataTypes checks the properties of every data type.
func TestDataTypes(t *testing.T) {
	bits := map[DataType]int{
		TensorProto_FLOAT: 32, TensorProto_UINT8: 8, TensorProto_INT8: 8, TensorProto_UINT16: 16,
		TensorProto_INT16: 16, TensorProto_INT32: 32, TensorProto_INT64: 64, TensorProto_STRING: 0,
		TensorProto_BOOL: 8, TensorProto_FLOAT16: 16, TensorProto_DOUBLE: 64, TensorProto_UINT32: 32,
		TensorProto_UINT64: 64, TensorProto_COMPLEX64: 64, TensorProto_COMPLEX128: 128, TensorProto_BFLOAT16: 16,
		TensorProto_FLOAT8E4M3FN: 8, TensorProto_FLOAT8E4M3FNUZ: 8, TensorProto_FLOAT8E5M2: 8,
		TensorProto_FLOAT8E5M2FNUZ: 8, TensorProto_UINT4: 4, TensorProto_INT4: 4, TensorProto_FLOAT4E2M1: 4,
		TensorProto_FLOAT8E8M0: 8, TensorProto_UINT2: 2, TensorProto_INT2: 2,
	}
	for dt := TensorProto_DataType(0); dt <= 30; dt++ {
		want, known := bits[dt]
		if dt.Valid() != known {
			t.Errorf("%v: Valid() = %v", dt, dt.Valid())
		}
		if dt.Bits() != want {
			t.Errorf("%v: Bits() = %d, want %d", dt, dt.Bits(), want)
		}
		kinds := 0
		for _, k := range []bool{dt.IsFloat(), dt.IsInteger(), dt.IsComplex(), dt == TensorProto_BOOL, dt == TensorProto_STRING} {
			if k {
				kinds++
			}
		}
		if known && kinds != 1 {
			t.Errorf("%v belongs to %d kinds, want 1", dt, kinds)
		}
	}
	if TensorProto_FLOAT8E8M0.IsSigned() || !TensorProto_FLOAT4E2M1.IsSigned() || TensorProto_UINT4.IsSigned() || !TensorProto_INT2.IsSigned() {
		t.Error("IsSigned wrong for the narrow types")
	}
	if TensorProto_FLOAT16.String() != "FLOAT16" {
		t.Errorf("name %q", TensorProto_FLOAT16.String())
	}
}

// TestSuiteTensors decodes every input and output of the suite's node
// cases whose graph declares a tensor there, and checks the declared element
// type and the fixed dimensions.
func TestSuiteTensors(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join(suiteDir(t), "*", "*", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	decoded := 0
	for _, modelPath := range cases {
		m := plainUnmarshal(t, modelPath)
		initializers := map[string]bool{}
		for _, init := range m.Graph.GetInitializer() {
			initializers[init.GetName()] = true
		}
		var inputs []*ValueInfoProto
		for _, in := range m.Graph.GetInput() {
			if !initializers[in.GetName()] {
				inputs = append(inputs, in)
			}
		}
		sets, _ := filepath.Glob(filepath.Join(filepath.Dir(modelPath), "test_data_set_*"))
		for _, set := range sets {
			for _, side := range []struct {
				prefix string
				infos  []*ValueInfoProto
			}{{"input", inputs}, {"output", m.Graph.GetOutput()}} {
				for i, info := range side.infos {
					tt := info.GetType().GetTensorType()
					path := filepath.Join(set, side.prefix+"_"+itoa(i)+".pb")
					if tt == nil {
						continue
					}
					if _, err := os.Stat(path); err != nil {
						continue
					}
					tp := readTensor(t, path)
					if _, err := Decode(tp); err != nil {
						t.Errorf("%s: %v", path, err)
						continue
					}
					decoded++
					// ONNX 1.12 wrote bfloat16 test tensors with data type
					// UINT16 and the same bits.
					bf16AsUint16 := tt.GetElemType() == int32(TensorProto_BFLOAT16) && tp.GetDataType() == int32(TensorProto_UINT16)
					if tp.GetDataType() != tt.GetElemType() && !bf16AsUint16 {
						t.Errorf("%s: data type %v, graph declares %v", path, DataType(tp.GetDataType()), DataType(tt.GetElemType()))
					}
					if dims := tt.GetShape().GetDim(); tt.GetShape() != nil && len(dims) == len(tp.Dims) {
						for k, d := range dims {
							if v, ok := d.GetValue().(*TensorShapeProto_Dimension_DimValue); ok && v.DimValue != tp.Dims[k] {
								t.Errorf("%s: dims %v, graph declares %v", path, tp.Dims, dims)
								break
							}
						}
					}
				}
			}
		}
	}
	if decoded < 2000 {
		t.Errorf("decoded only %d suite tensors", decoded)
	}
	t.Logf("decoded %d suite tensors", decoded)
}
