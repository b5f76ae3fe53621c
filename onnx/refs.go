package onnx

import (
	"fmt"
	"os"
	"path/filepath"
)

// An ExternalRef says where one tensor's data lives outside the model file.
type ExternalRef struct {
	Tensor   string // the tensor's name
	Location string // the data file, relative to the model's folder
	Offset   int64
	Length   int64
}

// ReadModelRefs reads the model at path without reading its external data:
// external tensors keep their references, which are checked as ReadModel
// checks them (the file stays inside the model's folder, the range inside
// the file, the length matches the tensor's shape) but not loaded. It
// returns the references in the order the model holds them. A model of any
// size is read this way in about the memory of its protobuf part.
func ReadModelRefs(path string) (*ModelProto, []ExternalRef, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	m, err := parseWire(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Dir(path)
	sizes := map[string]int64{}
	var refs []ExternalRef
	err = walkTensors(m, func(t *TensorProto, where *site) error {
		if t.GetDataLocation() != TensorProto_EXTERNAL {
			if err := ValidateTensor(t); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			return nil
		}
		ref, err := checkExternalRef(t, dir, sizes)
		if err != nil {
			return fmt.Errorf("%s: tensor %q: external data: %w", where, t.GetName(), err)
		}
		refs = append(refs, ref)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, refs, nil
}

// checkExternalRef checks an external tensor's reference without reading
// its data; sizes caches the sizes of files already seen.
func checkExternalRef(t *TensorProto, dir string, sizes map[string]int64) (ExternalRef, error) {
	ref, err := parseExternalRef(t.ExternalData)
	if err != nil {
		return ExternalRef{}, err
	}
	path, err := resolveExternalPath(dir, ref.location)
	if err != nil {
		return ExternalRef{}, err
	}
	size, ok := sizes[path]
	if !ok {
		f, n, err := openRegular(path)
		if err != nil {
			return ExternalRef{}, fmt.Errorf("location %q: %w", ref.location, err)
		}
		f.Close()
		size = n
		sizes[path] = size
	}
	if err := ref.fit(size); err != nil {
		return ExternalRef{}, err
	}
	dt := DataType(t.GetDataType())
	n, err := NumElements(t.GetDims())
	if err != nil {
		return ExternalRef{}, err
	}
	if want, err := dt.RawSize(n); err != nil {
		return ExternalRef{}, err
	} else if want != ref.length {
		return ExternalRef{}, fmt.Errorf("location %q: %d bytes, shape %v of %v needs %d", ref.location, ref.length, t.GetDims(), dt, want)
	}
	return ExternalRef{Tensor: t.GetName(), Location: ref.location, Offset: ref.offset, Length: ref.length}, nil
}
