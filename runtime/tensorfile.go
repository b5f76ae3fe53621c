package runtime

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"codeberg.org/sbinet/npyio/npy"
	"google.golang.org/protobuf/proto"

	"onnxopt/internal/atomicfile"
	"onnxopt/onnx"
)

// ReadTensorFile reads a tensor from a serialized TensorProto (.pb) or a
// NumPy array (.npy), chosen by the file's extension. The element count
// must match the shape.
func ReadTensorFile(path string) (*Tensor, error) {
	var t *Tensor
	var err error
	switch strings.ToLower(filepath.Ext(path)) {
	case ".npy":
		t, err = readNpy(path)
	default:
		t, err = readProtoTensor(path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

func readProtoTensor(path string) (*Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tp := &onnx.TensorProto{}
	if err := proto.Unmarshal(b, tp); err != nil {
		return nil, fmt.Errorf("not a TensorProto: %w", err)
	}
	return TensorFromProto(tp)
}

func readNpy(path string) (*Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := npy.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, err
	}
	if r.Header.Descr.Fortran {
		return nil, errors.New("Fortran-ordered arrays are not supported")
	}
	shape := r.Header.Descr.Shape
	n, err := elements(shape)
	if err != nil {
		return nil, err
	}
	elem := npy.TypeFrom(r.Header.Descr.Type)
	if elem == nil {
		return nil, fmt.Errorf("unsupported NumPy dtype %q", r.Header.Descr.Type)
	}
	ptr := reflect.New(reflect.SliceOf(elem))
	ptr.Elem().Set(reflect.MakeSlice(reflect.SliceOf(elem), 0, n))
	if err := r.Read(ptr.Interface()); err != nil {
		return nil, err
	}
	data := ptr.Elem().Interface()
	t, err := FromSlice(data, shape...)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// WriteTensorFile writes t to path as a TensorProto called name (.pb) or a
// NumPy array (.npy), through a temporary file renamed into place
// (atomicfile.Write).
func WriteTensorFile(path, name string, t *Tensor) error {
	var body func(w *bufio.Writer) error
	switch strings.ToLower(filepath.Ext(path)) {
	case ".npy":
		descr, ok := npyDescr(t.DType)
		if dt, _, _ := sliceInfo(t.Data); !ok || dt != t.DType {
			return fmt.Errorf("%s: NumPy files cannot hold %s", path, dtypeName(t.DType))
		}
		body = func(w *bufio.Writer) error { return writeNpy(w, descr, t) }
	default:
		tp, err := TensorToProto(name, t)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		b, err := proto.Marshal(tp)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		body = func(w *bufio.Writer) error { _, err := w.Write(b); return err }
	}
	return atomicfile.Write(path, func(w *bufio.Writer) error {
		if err := body(w); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
}

func npyDescr(dt onnx.TensorProto_DataType) (string, bool) {
	d, ok := map[onnx.TensorProto_DataType]string{
		onnx.TensorProto_FLOAT: "<f4", onnx.TensorProto_DOUBLE: "<f8",
		onnx.TensorProto_INT8: "|i1", onnx.TensorProto_UINT8: "|u1",
		onnx.TensorProto_INT16: "<i2", onnx.TensorProto_UINT16: "<u2",
		onnx.TensorProto_INT32: "<i4", onnx.TensorProto_UINT32: "<u4",
		onnx.TensorProto_INT64: "<i8", onnx.TensorProto_UINT64: "<u8",
		onnx.TensorProto_BOOL: "|b1",
	}[dt]
	return d, ok
}

// writeNpy writes a version 1.0 .npy file: the magic, a header dict padded
// so the data starts on a 64-byte boundary, then the elements in
// little-endian order. npyio writes only 1-D and 2-D arrays, so the header
// is written here.
func writeNpy(w *bufio.Writer, descr string, t *Tensor) error {
	dims := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = fmt.Sprint(d)
	}
	shape := strings.Join(dims, ", ")
	if len(dims) == 1 {
		shape += ","
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape)
	const prefix = 10 // magic (6), version (2), header length (2)
	pad := 64 - (prefix+len(header)+1)%64
	if pad == 64 {
		pad = 0
	}
	header += strings.Repeat(" ", pad) + "\n"
	if len(header) > 65535 {
		return errors.New("npy header too long")
	}
	w.WriteString("\x93NUMPY\x01\x00")
	binary.Write(w, binary.LittleEndian, uint16(len(header)))
	w.WriteString(header)
	return binary.Write(w, binary.LittleEndian, t.Data)
}
