package onnx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

const malformedDir = "../testdata/malformed"

// copyFile copies testdata file name into dir.
func copyFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(malformedDir, name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMalformedModels loads each file of testdata/malformed (written by
// testdata/malformed/gen) and checks the error. The external-data escapes
// are laid out in a temporary folder so that the file they reach for exists:
// each is refused for where it is, not because it is missing.
func TestMalformedModels(t *testing.T) {
	for _, c := range []struct {
		file string
		want []string // substrings of the error
	}{
		{"truncated.onnx", []string{"parsing model"}},
		{"random.onnx", []string{"parsing model"}},
		{"wrong_wire_type.onnx", []string{"parsing model", "ModelProto field 7 (graph) has wire type 0"}},
		{"negative_dims.onnx", []string{`graph "g" initializer`, `tensor "w"`, "dimension 1 is negative"}},
		{"dims_overflow.onnx", []string{`tensor "w"`, "more than"}},
		{"dims_too_large.onnx", []string{`tensor "w"`, "more than the limit"}},
		{"raw_data_length.onnx", []string{`tensor "w"`, "raw_data has 20 bytes, want 24"}},
		{"attribute_tensor.onnx", []string{`node "c" (Constant) attribute "value"`, `tensor "k"`, "int64_data has 2 entries, want 3"}},
		{"external_absolute.onnx", []string{`tensor "w"`, `"/etc/passwd" is an absolute path`}},
		{"external_dotdot.onnx", []string{`tensor "w"`, `"../outside.data" has a ".." component`}},
		{"external_symlink.onnx", []string{`tensor "w"`, `"link.data" resolves to`, "outside the model's folder"}},
		{"external_offset.onnx", []string{`tensor "w"`, "offset 4096 is past the end of the 16-byte file"}},
		{"external_length.onnx", []string{`tensor "w"`, "16 bytes at offset 8 run past the end"}},
		{"external_negative.onnx", []string{`tensor "w"`, "offset -4 is negative"}},
		{"external_missing.onnx", []string{`tensor "w"`, "missing.data", "no such file"}},
		{"external_short.onnx", []string{`tensor "w"`, "raw_data has 8 bytes, want 16"}},
	} {
		t.Run(c.file, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "model")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := copyFile(t, dir, c.file)
			copyFile(t, dir, "weights.data")
			outside := filepath.Join(root, "outside.data")
			if err := os.WriteFile(outside, make([]byte, 16), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(dir, "link.data")); err != nil {
				t.Fatal(err)
			}
			m, err := ReadModel(path)
			if err == nil {
				t.Fatalf("loaded: %v", m)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestExternalDataLoads checks the committed model with valid external
// data, and a symbolic link that stays inside the model's folder.
func TestExternalDataLoads(t *testing.T) {
	dir := t.TempDir()
	path := copyFile(t, dir, "external_valid.onnx")
	copyFile(t, dir, "weights.data")
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	// The model is reached through a linked folder and the data through a
	// link to a file in the model's folder: both resolve inside it.
	if err := os.Rename(filepath.Join(dir, "weights.data"), filepath.Join(sub, "real.data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("sub", "real.data"), filepath.Join(dir, "weights.data")); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(t.TempDir(), "linked")
	if err := os.Symlink(dir, linked); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, filepath.Join(linked, "external_valid.onnx")} {
		m, err := ReadModel(p)
		if err != nil {
			t.Fatal(err)
		}
		w := m.Graph.Initializer[0]
		if string(w.RawData) != "0123456789abcdef" || w.ExternalData != nil || w.DataLocation != nil {
			t.Errorf("%s: loaded tensor %v", p, w)
		}
	}
	b, _ := os.ReadFile(path)
	if _, err := ParseModel(b, ""); err == nil || !strings.Contains(err.Error(), "folder is not known") {
		t.Errorf("ParseModel without a folder: %v", err)
	}
}

// TestExternalRoundTripSharesFile checks that a model saved with external
// data loads the same as saved inline, and that data is mapped rather than
// copied (it is writable: the mapping is private).
func TestExternalRoundTripSharesFile(t *testing.T) {
	m, err := ReadModel(filepath.Join(malformedDir, "valid.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	big, _ := NewTensor("big", TensorProto_FLOAT, []int64{4096}, make([]float32, 4096))
	m.Graph.Initializer = append(m.Graph.Initializer, big)
	dir := t.TempDir()
	inline, external := filepath.Join(dir, "inline.onnx"), filepath.Join(dir, "external.onnx")
	if err := WriteModel(inline, m, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteModel(external, m, WriteOptions{ExternalData: true}); err != nil {
		t.Fatal(err)
	}
	a, err := ReadModel(inline)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReadModel(external)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(a, b) || !proto.Equal(a, m) {
		t.Error("inline and external saves load differently")
	}
	raw := b.Graph.Initializer[1].RawData
	raw[0] = 1 // private mapping: writable, and the file keeps its bytes
	again, err := ReadModel(external)
	if err != nil {
		t.Fatal(err)
	}
	if again.Graph.Initializer[1].RawData[0] != 0 {
		t.Error("writing to loaded data changed the data file")
	}
}

// FuzzParseModel checks that no input makes ParseModel panic, and that any
// model it accepts is written and read back unchanged.
func FuzzParseModel(f *testing.F) {
	shared := sharedModelsDir(f)
	suite := suiteDir(f)
	for _, p := range []string{
		filepath.Join(shared, "digits_mlp", "model.onnx"),
		filepath.Join(shared, "digits_cnn", "model.onnx"),
		filepath.Join(suite, "node", "test_add", "model.onnx"),
		filepath.Join(suite, "node", "test_constant", "model.onnx"),
		filepath.Join(suite, "node", "test_if", "model.onnx"),
		filepath.Join(suite, "node", "test_loop11", "model.onnx"),
		filepath.Join(suite, "simple", "test_sign_model", "model.onnx"),
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	entries, err := os.ReadDir(malformedDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".onnx") {
			b, _ := os.ReadFile(filepath.Join(malformedDir, e.Name()))
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		m, err := ParseModel(b, dir)
		if err != nil {
			return
		}
		path := filepath.Join(dir, "m.onnx")
		if err := WriteModel(path, m, WriteOptions{}); err != nil {
			t.Fatalf("accepted model not written: %v", err)
		}
		back, err := ReadModel(path)
		if err != nil {
			t.Fatalf("written model not read: %v", err)
		}
		if !proto.Equal(back, m) {
			t.Fatal("model changed on a write and read")
		}
	})
}
