// Package atomicfile writes files so that no reader ever sees a partial
// one: the content goes to a temporary file in the destination's folder,
// which is renamed into place only once it is complete. A rename within
// one folder replaces the old file in one step, and on error the
// temporary file is removed, so a failed write leaves the old file, or
// none, and nothing else.
package atomicfile

import (
	"bufio"
	"os"
	"path/filepath"
)

// bufferSize is the write buffer: large, so that big models go to disk in
// long sequential writes.
const bufferSize = 1 << 20

// Write writes the file at path, with mode 0644, through fill, which
// writes its content to w. The file appears at path only once fill and
// every write succeeded.
func Write(path string, fill func(w *bufio.Writer) error) error {
	temp, err := WriteTemp(path, fill)
	if err != nil {
		return err
	}
	return Rename(temp, path)
}

// WriteTemp writes a temporary file, with mode 0644, in the folder of path
// through fill and returns its name, for a caller that renames several
// files into place (with Rename) only once all are written: a model and
// its external data file. On error the temporary file is removed; after
// success removing it is the caller's job if it is not renamed.
func WriteTemp(path string, fill func(w *bufio.Writer) error) (name string, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, bufferSize)
	if err := fill(w); err != nil {
		return "", err
	}
	if err := w.Flush(); err != nil {
		return "", err
	}
	// CreateTemp makes the file readable by its owner only; written files
	// get the mode os.WriteFile would give them.
	if err := f.Chmod(0o644); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// Rename moves the temporary file temp, from WriteTemp, to path. If it
// cannot, temp is removed.
func Rename(temp, path string) error {
	if err := os.Rename(temp, path); err != nil {
		os.Remove(temp)
		return err
	}
	return nil
}
