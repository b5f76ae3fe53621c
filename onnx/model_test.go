package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// plainUnmarshal is the reference decoding: proto.Unmarshal of the file.
func plainUnmarshal(t *testing.T, path string) *ModelProto {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// rawForm is m with the data of every non-STRING tensor of at least
// threshold bytes moved from typed fields to raw_data, as WriteModel does
// for external data.
func rawForm(t *testing.T, m *ModelProto, threshold int64) *ModelProto {
	t.Helper()
	m = proto.Clone(m).(*ModelProto)
	err := walkTensors(m, func(tp *TensorProto, where *site) error {
		dt := DataType(tp.GetDataType())
		if dt == TensorProto_STRING {
			return nil
		}
		raw, err := RawData(tp)
		if err != nil {
			return err
		}
		if int64(len(raw)) >= threshold {
			clearData(tp)
			tp.RawData = raw
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRoundTripModels reads every model of the conformance suite and the
// shared models, checks that ParseModel's aliasing parse gives the message
// proto.Unmarshal gives, and that WriteModel's output, inline and with
// external data, parses back to the same message.
func TestRoundTripModels(t *testing.T) {
	paths := suiteModels(t)
	out := t.TempDir()
	aliased, eligible := 0, 0
	for _, path := range paths {
		want := plainUnmarshal(t, path)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseModel(b, filepath.Dir(path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if !proto.Equal(got, want) {
			t.Errorf("%s: ParseModel differs from proto.Unmarshal", path)
			continue
		}
		walkTensors(want, func(tp *TensorProto, _ *site) error {
			if len(tp.RawData) >= aliasThreshold {
				eligible++
			}
			return nil
		})
		walkTensors(got, func(tp *TensorProto, _ *site) error {
			if len(tp.RawData) >= aliasThreshold && sharesMemory(tp.RawData, b) {
				aliased++
			}
			return nil
		})

		inline := filepath.Join(out, "inline.onnx")
		if err := WriteModel(inline, got, WriteOptions{}); err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if back := plainUnmarshal(t, inline); !proto.Equal(back, want) {
			t.Errorf("%s: written inline, reads back different", path)
		}

		// A threshold of 1 byte sends every non-empty tensor to the data
		// file, which exercises the conversion of every typed field.
		external := filepath.Join(out, "external.onnx")
		if err := WriteModel(external, got, WriteOptions{ExternalData: true, Threshold: 1}); err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		back, err := ReadModel(external)
		if err != nil {
			t.Errorf("%s: reading back external: %v", path, err)
			continue
		}
		if !proto.Equal(back, rawForm(t, want, 1)) {
			t.Errorf("%s: written with external data, reads back different", path)
		}
		os.Remove(external + ".data")
	}
	if aliased != eligible || aliased == 0 {
		t.Errorf("%d of %d large raw_data fields share the file buffer, want all", aliased, eligible)
	}
	t.Logf("%d models, %d tensors read without a copy", len(paths), aliased)
}

func sharesMemory(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	start, end := &b[0], &b[len(b)-1]
	p := &a[0]
	return uintptrOf(p) >= uintptrOf(start) && uintptrOf(p) <= uintptrOf(end)
}

// TestExternalDataLayout checks the data file WriteModel makes: aligned
// offsets, the location given, and the bytes of each tensor.
func TestExternalDataLayout(t *testing.T) {
	dir := t.TempDir()
	big, err := NewTensor("big", TensorProto_FLOAT, []int64{3, 1000}, make([]float32, 3000))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		big.RawData[4*i] = byte(i)
	}
	small, _ := NewTensor("small", TensorProto_INT64, []int64{2}, []int64{7, -7})
	typed := &TensorProto{Name: proto.String("typed"), DataType: proto.Int32(int32(TensorProto_INT64)), Dims: []int64{300}, Int64Data: make([]int64, 300)}
	for i := range typed.Int64Data {
		typed.Int64Data[i] = int64(i) - 150
	}
	m := &ModelProto{IrVersion: proto.Int64(8), Graph: &GraphProto{Name: proto.String("g"), Initializer: []*TensorProto{big, small, typed}}}
	before := proto.Clone(m)

	path := filepath.Join(dir, "m.onnx")
	if err := WriteModel(path, m, WriteOptions{ExternalData: true, Location: "weights.bin"}); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m, before) {
		t.Fatal("WriteModel changed its input")
	}
	written := plainUnmarshal(t, path)
	data, err := os.ReadFile(filepath.Join(dir, "weights.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		name     string
		external bool
		offset   string
	}{{"big", true, "0"}, {"small", false, ""}, {"typed", true, "12288"}} {
		tp := written.Graph.Initializer[i]
		if tp.GetName() != want.name || (tp.GetDataLocation() == TensorProto_EXTERNAL) != want.external {
			t.Errorf("tensor %d: %q external=%v, want %q external=%v", i, tp.GetName(), tp.GetDataLocation() == TensorProto_EXTERNAL, want.name, want.external)
			continue
		}
		if !want.external {
			continue
		}
		ref, err := parseExternalRef(tp.ExternalData)
		if err != nil {
			t.Fatal(err)
		}
		if ref.location != "weights.bin" || ref.offset%externalAlign != 0 || ref.offset != atoi(t, want.offset) {
			t.Errorf("%s: location %q offset %d, want weights.bin at %s", want.name, ref.location, ref.offset, want.offset)
		}
		raw, _ := RawData(before.(*ModelProto).Graph.Initializer[i])
		if !bytes.Equal(data[ref.offset:ref.offset+ref.length], raw) {
			t.Errorf("%s: data file bytes differ from the tensor's", want.name)
		}
	}
	back, err := ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(back, rawForm(t, before.(*ModelProto), DefaultExternalThreshold)) {
		t.Error("model read back differs")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestWriteModelFailureLeavesNothing checks that a failed write leaves
// neither a partial model nor a partial data file, nor changes an existing
// model.
func TestWriteModelFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	good, _ := NewTensor("good", TensorProto_FLOAT, []int64{1024}, make([]float32, 1024))
	bad := &TensorProto{Name: proto.String("bad"), DataType: proto.Int32(int32(TensorProto_FLOAT)), Dims: []int64{4}, RawData: make([]byte, 15)}
	m := &ModelProto{Graph: &GraphProto{Initializer: []*TensorProto{good, bad}}}
	err := WriteModel(path, m, WriteOptions{ExternalData: true})
	if err == nil || !strings.Contains(err.Error(), `tensor "bad"`) {
		t.Fatalf("WriteModel error %v, want one naming tensor \"bad\"", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries after a failed write, want the old model only", len(entries))
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("existing model changed to %q", b)
	}
}

// TestWriteModelRefusesUnloadedExternal checks that a tensor still pointing
// at external data is not written as if it were empty.
func TestWriteModelRefusesUnloadedExternal(t *testing.T) {
	tp := &TensorProto{
		Name: proto.String("w"), DataType: proto.Int32(int32(TensorProto_FLOAT)), Dims: []int64{1},
		DataLocation: TensorProto_EXTERNAL.Enum(),
		ExternalData: []*StringStringEntryProto{{Key: proto.String("location"), Value: proto.String("x.data")}},
	}
	m := &ModelProto{Graph: &GraphProto{Initializer: []*TensorProto{tp}}}
	err := WriteModel(filepath.Join(t.TempDir(), "m.onnx"), m, WriteOptions{})
	if err == nil || !strings.Contains(err.Error(), "not loaded") {
		t.Fatalf("error %v, want one about unloaded external data", err)
	}
}

// TestWriteModelSizeLimit checks that a model over the protobuf limit is
// written with external data whatever the options say, and that one still
// over it without its large tensors is refused. The limit is lowered so
// that small models reach it.
func TestWriteModelSizeLimit(t *testing.T) {
	dir := t.TempDir()
	w, _ := NewTensor("w", TensorProto_FLOAT, []int64{1000}, make([]float32, 1000))
	b, _ := NewTensor("b", TensorProto_FLOAT, []int64{10}, make([]float32, 10))
	m := &ModelProto{Graph: &GraphProto{Name: proto.String("g"), Initializer: []*TensorProto{w, b}}}
	path := filepath.Join(dir, "m.onnx")
	if err := writeModel(path, m, WriteOptions{}, 2000); err != nil {
		t.Fatal(err)
	}
	written := plainUnmarshal(t, path)
	if written.Graph.Initializer[0].GetDataLocation() != TensorProto_EXTERNAL || written.Graph.Initializer[1].GetDataLocation() == TensorProto_EXTERNAL {
		t.Errorf("over the limit: want w external and b inline, got %v", written.Graph.Initializer)
	}
	back, err := ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(back, m) {
		t.Error("model read back differs")
	}
	os.Remove(path + ".data")

	m.DocString = proto.String(strings.Repeat("x", 3000))
	err = writeModel(path, m, WriteOptions{}, 2000)
	if err == nil || !strings.Contains(err.Error(), "without its external data") {
		t.Fatalf("error %v, want the model refused as too large", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("folder holds %d entries after a refused write, want the earlier model only", len(entries))
	}
}
