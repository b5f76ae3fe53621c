package atomicfile

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// leftovers returns the names in dir other than keep.
func leftovers(t *testing.T, dir string, keep ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		found := false
		for _, k := range keep {
			found = found || name == k
		}
		if !found {
			names = append(names, name)
		}
	}
	return names
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, func(w *bufio.Writer) error {
		_, err := w.WriteString("new content")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "new content" {
		t.Errorf("file holds %q, want %q", b, "new content")
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o644 {
		t.Errorf("mode %v, want 0644", mode)
	}
	if extra := leftovers(t, dir, "out.txt"); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
}

func TestWriteFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	failure := errors.New("fill failed")
	err := Write(path, func(w *bufio.Writer) error {
		w.WriteString("partial")
		return failure
	})
	if !errors.Is(err, failure) {
		t.Fatalf("Write returned %v, want %v", err, failure)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "old" {
		t.Errorf("file holds %q after a failed write, want the old %q", b, "old")
	}
	if extra := leftovers(t, dir, "out.txt"); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
}

func TestWriteTempThenRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.onnx")
	temp, err := WriteTemp(path, func(w *bufio.Writer) error {
		_, err := w.WriteString("model")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(temp) != dir {
		t.Errorf("temporary file %s is not in %s", temp, dir)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists before Rename (err %v)", path, err)
	}
	if err := Rename(temp, path); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "model" {
		t.Errorf("after Rename: %q, %v; want %q", b, err, "model")
	}
	if extra := leftovers(t, dir, "model.onnx"); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
}

func TestRenameFailureRemovesTemp(t *testing.T) {
	dir := t.TempDir()
	temp, err := WriteTemp(filepath.Join(dir, "a"), func(w *bufio.Writer) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	// A destination in a missing folder makes the rename fail.
	if err := Rename(temp, filepath.Join(dir, "missing", "a")); err == nil {
		t.Fatal("Rename into a missing folder succeeded")
	}
	if extra := leftovers(t, dir); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
}
