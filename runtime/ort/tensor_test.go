package ort

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/onnx"
)

func TestProtoRoundTrip(t *testing.T) {
	for _, want := range []*Tensor{
		{DType: int32(onnx.TensorProto_FLOAT), Shape: []int64{2, 2}, Data: []float32{1.5, float32(math.Inf(-1)), float32(math.Copysign(0, -1)), 3e-39}},
		{DType: int32(onnx.TensorProto_DOUBLE), Shape: []int64{3}, Data: []float64{1e300, -2, 5e-324}},
		{DType: int32(onnx.TensorProto_INT8), Shape: []int64{3}, Data: []int8{-128, 127, 0}},
		{DType: int32(onnx.TensorProto_INT16), Shape: []int64{2}, Data: []int16{-32768, 32767}},
		{DType: int32(onnx.TensorProto_INT32), Shape: []int64{2}, Data: []int32{math.MinInt32, 7}},
		{DType: int32(onnx.TensorProto_INT64), Shape: []int64{}, Data: []int64{math.MinInt64}},
		{DType: int32(onnx.TensorProto_UINT8), Shape: []int64{1, 2}, Data: []uint8{0, 255}},
		{DType: int32(onnx.TensorProto_UINT16), Shape: []int64{2}, Data: []uint16{1, 65535}},
		{DType: int32(onnx.TensorProto_UINT32), Shape: []int64{2}, Data: []uint32{1, math.MaxUint32}},
		{DType: int32(onnx.TensorProto_UINT64), Shape: []int64{2}, Data: []uint64{1, math.MaxUint64}},
		{DType: int32(onnx.TensorProto_BOOL), Shape: []int64{3}, Data: []bool{true, false, true}},
		{DType: int32(onnx.TensorProto_FLOAT), Shape: []int64{0, 4}, Data: []float32{}},
	} {
		p, err := want.Proto()
		if err != nil {
			t.Fatalf("%s: %v", dataTypeName(want.DType), err)
		}
		// Through the wire format too, as test data files are.
		b, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		decoded := &onnx.TensorProto{}
		if err := proto.Unmarshal(b, decoded); err != nil {
			t.Fatal(err)
		}
		got, err := FromProto(decoded)
		if err != nil {
			t.Fatalf("%s: %v", dataTypeName(want.DType), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip of %+v gave %+v", want, got)
		}
	}
}

func TestProtoRawDataIsLittleEndian(t *testing.T) {
	p, err := (&Tensor{DType: int32(onnx.TensorProto_INT32), Shape: []int64{2}, Data: []int32{1, -2}}).Proto()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff}
	if !reflect.DeepEqual(p.RawData, want) {
		t.Errorf("raw_data %x, want %x", p.RawData, want)
	}
}

// TestFromProtoTypedFields decodes values stored in the typed fields that
// the ONNX spec assigns to each data type instead of raw_data.
func TestFromProtoTypedFields(t *testing.T) {
	dims := []int64{2}
	for _, c := range []struct {
		proto *onnx.TensorProto
		want  any
	}{
		{&onnx.TensorProto{Dims: dims, DataType: dtype(onnx.TensorProto_FLOAT), FloatData: []float32{1, 2}}, []float32{1, 2}},
		{&onnx.TensorProto{Dims: dims, DataType: dtype(onnx.TensorProto_DOUBLE), DoubleData: []float64{1, 2}}, []float64{1, 2}},
		{&onnx.TensorProto{Dims: dims, DataType: dtype(onnx.TensorProto_INT8), Int32Data: []int32{-1, 2}}, []int8{-1, 2}},
		{&onnx.TensorProto{Dims: dims, DataType: dtype(onnx.TensorProto_INT16), Int32Data: []int32{-1, 2}}, []int16{-1, 2}},
		{&onnx.TensorProto{Dims: dims, DataType: dtype(onnx.TensorProto_INT32), Int32Data: []int32{-1, 2}}, []int32{-1, 2}},
		{&onnx.TensorProto{Dims: dims, DataType: dtype(onnx.TensorProto_INT64), Int64Data: []int64{-1, 2}}, []int64{-1, 2}},
		{&onnx.TensorProto{Dims: dims, DataType: dtype(onnx.TensorProto_UINT8), Int32Data: []int32{255, 2}}, []uint8{255, 2}},
		{&onnx.TensorProto{Dims: dims, DataType: dtype(onnx.TensorProto_UINT16), Int32Data: []int32{65535, 2}}, []uint16{65535, 2}},
		{&onnx.TensorProto{Dims: dims, DataType: dtype(onnx.TensorProto_UINT32), Uint64Data: []uint64{math.MaxUint32, 2}}, []uint32{math.MaxUint32, 2}},
		{&onnx.TensorProto{Dims: dims, DataType: dtype(onnx.TensorProto_UINT64), Uint64Data: []uint64{math.MaxUint64, 2}}, []uint64{math.MaxUint64, 2}},
		{&onnx.TensorProto{Dims: dims, DataType: dtype(onnx.TensorProto_BOOL), Int32Data: []int32{1, 0}}, []bool{true, false}},
	} {
		got, err := FromProto(c.proto)
		if err != nil {
			t.Errorf("%s: %v", dataTypeName(c.proto.GetDataType()), err)
			continue
		}
		if !reflect.DeepEqual(got.Data, c.want) || !reflect.DeepEqual(got.Shape, dims) {
			t.Errorf("%s: got %v %v, want %v %v", dataTypeName(c.proto.GetDataType()), got.Shape, got.Data, dims, c.want)
		}
	}
}

func dtype(d onnx.TensorProto_DataType) *int32 {
	v := int32(d)
	return &v
}

func TestFromProtoErrors(t *testing.T) {
	external := onnx.TensorProto_EXTERNAL
	for _, c := range []struct {
		proto  *onnx.TensorProto
		errHas string
	}{
		{&onnx.TensorProto{Dims: []int64{3}, DataType: dtype(onnx.TensorProto_FLOAT), RawData: make([]byte, 8)}, "raw_data has 8 bytes, want 12"},
		{&onnx.TensorProto{Dims: []int64{3}, DataType: dtype(onnx.TensorProto_FLOAT), FloatData: []float32{1}}, "1 values stored, want 3"},
		{&onnx.TensorProto{Dims: []int64{-1}, DataType: dtype(onnx.TensorProto_FLOAT)}, "negative"},
		{&onnx.TensorProto{Dims: []int64{1 << 40, 1 << 40}, DataType: dtype(onnx.TensorProto_FLOAT)}, "too many elements"},
		{&onnx.TensorProto{Dims: []int64{1}, DataType: dtype(onnx.TensorProto_STRING), StringData: [][]byte{[]byte("a")}}, "STRING is not supported"},
		{&onnx.TensorProto{Dims: []int64{1}, DataType: dtype(onnx.TensorProto_FLOAT16), Int32Data: []int32{0}}, "FLOAT16 is not supported"},
		{&onnx.TensorProto{Dims: []int64{1}, DataType: dtype(onnx.TensorProto_FLOAT), DataLocation: &external}, "external data"},
	} {
		_, err := FromProto(c.proto)
		if err == nil || !strings.Contains(err.Error(), c.errHas) {
			t.Errorf("FromProto(%v): error %v, want one containing %q", c.proto, err, c.errHas)
		}
	}
}

func TestProtoRejectsInconsistentTensor(t *testing.T) {
	for _, c := range []struct {
		tensor *Tensor
		errHas string
	}{
		{&Tensor{DType: int32(onnx.TensorProto_FLOAT), Shape: []int64{2}, Data: []float32{1}}, "needs 2 elements"},
		{&Tensor{DType: int32(onnx.TensorProto_INT64), Shape: []int64{1}, Data: []float32{1}}, "does not hold INT64"},
		{&Tensor{DType: int32(onnx.TensorProto_FLOAT), Shape: []int64{1}, Data: []complex64{1}}, "unsupported data"},
	} {
		if _, err := c.tensor.Proto(); err == nil || !strings.Contains(err.Error(), c.errHas) {
			t.Errorf("Proto of %+v: error %v, want one containing %q", c.tensor, err, c.errHas)
		}
	}
}

func TestLibraryPath(t *testing.T) {
	dir := t.TempDir()

	t.Setenv("ORT_LIB", filepath.Join(dir, "missing.so"))
	if _, err := LibraryPath(); err == nil || !strings.Contains(err.Error(), "ORT_LIB") {
		t.Errorf("ORT_LIB naming a missing file: error %v, want one naming ORT_LIB", err)
	}

	t.Setenv("ORT_LIB", "")
	t.Setenv("ONNXOPT_ORT_DIR", dir)
	if _, err := LibraryPath(); err == nil || !strings.Contains(err.Error(), "scripts/install-ort.sh") {
		t.Errorf("empty install folder: error %v, want one telling to run scripts/install-ort.sh", err)
	}

	installed := filepath.Join(dir, libraryInInstallDir)
	if err := os.MkdirAll(filepath.Dir(installed), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(installed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := LibraryPath(); err != nil || got != installed {
		t.Errorf("LibraryPath() = %q, %v; want %q", got, err, installed)
	}

	explicit := filepath.Join(dir, "libonnxruntime.so")
	if err := os.WriteFile(explicit, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ORT_LIB", explicit)
	if got, err := LibraryPath(); err != nil || got != explicit {
		t.Errorf("with ORT_LIB: LibraryPath() = %q, %v; want %q", got, err, explicit)
	}
}
