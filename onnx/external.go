package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// loadExternalData moves the data of every external tensor of m into
// raw_data, reading it from files under dir. Each file is mapped once.
func loadExternalData(m *ModelProto, dir string) error {
	files := map[string][]byte{}
	return walkTensors(m, func(t *TensorProto, where *site) error {
		if t.GetDataLocation() != TensorProto_EXTERNAL {
			return nil
		}
		if err := loadExternalTensor(t, dir, files); err != nil {
			return fmt.Errorf("%s: tensor %q: external data: %w", where, t.GetName(), err)
		}
		return nil
	})
}

// externalRef is a parsed external_data field.
type externalRef struct {
	location       string
	offset, length int64
	hasLength      bool
}

func parseExternalRef(entries []*StringStringEntryProto) (externalRef, error) {
	var ref externalRef
	for _, e := range entries {
		switch e.GetKey() {
		case "location":
			ref.location = e.GetValue()
		case "offset", "length":
			v, err := strconv.ParseInt(e.GetValue(), 10, 64)
			if err != nil {
				return ref, fmt.Errorf("%s %q is not an integer", e.GetKey(), e.GetValue())
			}
			if v < 0 {
				return ref, fmt.Errorf("%s %d is negative", e.GetKey(), v)
			}
			if e.GetKey() == "offset" {
				ref.offset = v
			} else {
				ref.length, ref.hasLength = v, true
			}
		}
		// "checksum" and keys of later IR versions do not change where the
		// data is.
	}
	if ref.location == "" {
		return ref, errors.New("no location")
	}
	return ref, nil
}

// fit checks that the reference's range lies inside a file of size bytes,
// taking the rest of the file as its length when it gives none.
func (ref *externalRef) fit(size int64) error {
	if ref.offset > size {
		return fmt.Errorf("location %q: offset %d is past the end of the %d-byte file", ref.location, ref.offset, size)
	}
	if !ref.hasLength {
		ref.length = size - ref.offset
	}
	if ref.length > size-ref.offset {
		return fmt.Errorf("location %q: %d bytes at offset %d run past the end of the %d-byte file", ref.location, ref.length, ref.offset, size)
	}
	return nil
}

func loadExternalTensor(t *TensorProto, dir string, files map[string][]byte) error {
	ref, err := parseExternalRef(t.ExternalData)
	if err != nil {
		return err
	}
	if dir == "" {
		return fmt.Errorf("location %q: the model's folder is not known", ref.location)
	}
	path, err := resolveExternalPath(dir, ref.location)
	if err != nil {
		return err
	}
	data, ok := files[path]
	if !ok {
		data, err = mapFile(path)
		if err != nil {
			return fmt.Errorf("location %q: %w", ref.location, err)
		}
		files[path] = data
	}
	if err := ref.fit(int64(len(data))); err != nil {
		return err
	}
	end := ref.offset + ref.length
	t.RawData = data[ref.offset:end:end]
	t.ExternalData = nil
	t.DataLocation = nil
	return nil
}

// resolveExternalPath is the file that location names relative to the model
// folder dir, with symbolic links resolved. It refuses locations that could
// reach outside dir (CVE-2022-25882, CVE-2024-27318): absolute paths, ".."
// components, and links that resolve outside dir.
func resolveExternalPath(dir, location string) (string, error) {
	if err := checkLocation(location); err != nil {
		return "", err
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	root, err := filepath.EvalSymlinks(absDir)
	if err != nil {
		return "", fmt.Errorf("model folder: %w", err)
	}
	path, err := filepath.EvalSymlinks(filepath.Join(absDir, location))
	if err != nil {
		return "", fmt.Errorf("location %q: %w", location, err)
	}
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("location %q resolves to %s, outside the model's folder %s", location, path, root)
	}
	return path, nil
}

// checkLocation refuses external-data locations that are not plain relative
// paths inside the model folder.
func checkLocation(location string) error {
	if location == "" {
		return errors.New("empty location")
	}
	if filepath.IsAbs(location) || strings.HasPrefix(location, "/") || strings.HasPrefix(location, `\`) || filepath.VolumeName(location) != "" {
		return fmt.Errorf("location %q is an absolute path", location)
	}
	for _, part := range strings.FieldsFunc(location, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return fmt.Errorf("location %q has a \"..\" component", location)
		}
	}
	if strings.ContainsRune(location, 0) {
		return fmt.Errorf("location %q contains a NUL byte", location)
	}
	return nil
}

// openRegular opens path for reading and checks that it is a regular file.
func openRegular(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is not a regular file", path)
	}
	return f, fi.Size(), nil
}
