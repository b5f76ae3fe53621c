package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMalformedModels runs every command that reads a model on each file
// of testdata/malformed: each must exit 2 with one line on stderr that names
// the file and the problem, and leave no output behind.
func TestMalformedModels(t *testing.T) {
	const dir = "../../testdata/malformed"
	problems := map[string]string{
		"truncated.onnx":             "parsing model",
		"random.onnx":                "parsing model",
		"wrong_wire_type.onnx":       "wire type",
		"negative_dims.onnx":         "dimension 1 is negative",
		"dims_overflow.onnx":         "more than",
		"dims_too_large.onnx":        "more than the limit",
		"raw_data_length.onnx":       "raw_data has 20 bytes, want 24",
		"attribute_tensor.onnx":      "int64_data has 2 entries, want 3",
		"external_absolute.onnx":     "is an absolute path",
		"external_dotdot.onnx":       `has a ".." component`,
		"external_symlink.onnx":      "outside the model's folder",
		"external_offset.onnx":       "past the end",
		"external_length.onnx":       "run past the end",
		"external_negative.onnx":     "is negative",
		"external_missing.onnx":      "no such file",
		"external_short.onnx":        "8 bytes",
		"graph_cycle.onnx":           "cycle",
		"graph_duplicate_value.onnx": `value "y" is produced by node "add" (Add) and by node "neg" (Neg)`,
		"graph_undefined_input.onnx": `input "nowhere" of node "add" (Add) is never produced`,
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		if strings.Contains(name, "valid") {
			continue
		}
		want, ok := problems[name]
		if !ok {
			t.Errorf("%s: no expected error listed; add it to this table", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			// The model sits in its own folder beside a file outside it,
			// which its symlink points to, so an escape is refused for
			// where it points and not because the target is missing.
			root := t.TempDir()
			modelDir := filepath.Join(root, "model")
			outDir := filepath.Join(root, "out")
			for _, d := range []string{modelDir, outDir} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(modelDir, name)
			copyTo(t, f, path)
			copyTo(t, filepath.Join(dir, "weights.data"), filepath.Join(modelDir, "weights.data"))
			outside := filepath.Join(root, "outside.data")
			if err := os.WriteFile(outside, make([]byte, 16), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(modelDir, "link.data")); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(outDir, "out.onnx")
			for _, args := range [][]string{
				{"inspect", path},
				{"convert", path, "-o", out},
				{"optimize", path, "-o", out},
				{"run", path, "--input", "x=" + path},
			} {
				code, _, stderr := onnxopt(args...)
				if code != 2 {
					t.Errorf("%s: exit %d, want 2", args[0], code)
				}
				if !strings.Contains(stderr, path) && !strings.Contains(stderr, name) {
					t.Errorf("%s: error does not name the file: %q", args[0], stderr)
				}
				if !strings.Contains(stderr, want) {
					t.Errorf("%s: error %q does not say %q", args[0], stderr, want)
				}
				if n := strings.Count(strings.TrimSpace(stderr), "\n"); n > 0 {
					t.Errorf("%s: error takes %d lines: %q", args[0], n+1, stderr)
				}
			}
			if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
				t.Errorf("failed commands left %v in the output folder", entries)
			}
		})
	}
}

func copyTo(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
