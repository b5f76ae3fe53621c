package onnx

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ReadModel reads the model at path, loads its external data from files in
// the model's folder (see ParseModel) and validates every tensor.
func ReadModel(path string) (*ModelProto, error) {
	return ReadOptions{}.ReadModel(path)
}

// ReadOptions says how ReadModel reads.
type ReadOptions struct {
	// Progress, when not nil, is told as reading goes the bytes of the
	// model file read and its size: first with done = 0, at least every
	// 8 MiB, and last with done = total. External data is mapped, not
	// read (see ParseModel), so it takes no time here: its pages are read
	// when the tensors are first used.
	Progress func(done, total int64)
}

// ReadModel is the ReadModel function with options.
func (o ReadOptions) ReadModel(path string) (*ModelProto, error) {
	b, err := readFile(path, o.Progress)
	if err != nil {
		return nil, err
	}
	m, err := ParseModel(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// ParseModel decodes a serialized model. Tensors stored as external data are
// read from files under dir, the folder of the model, and moved into
// raw_data; their external_data and data_location fields are cleared.
// Locations that are absolute, contain "..", or resolve through symbolic
// links to a file outside dir are refused, as are ranges outside the file.
// Every tensor is then checked with ValidateTensor.
//
// Large raw_data fields of the result share memory with b, which must not be
// changed afterwards; external files are memory-mapped copy-on-write and
// stay mapped for the life of the process.
func ParseModel(b []byte, dir string) (*ModelProto, error) {
	m, err := parseWire(b)
	if err != nil {
		return nil, err
	}
	if err := loadExternalData(m, dir); err != nil {
		return nil, err
	}
	err = walkTensors(m, func(t *TensorProto, where *site) error {
		if err := ValidateTensor(t); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// parseWire decodes the protobuf of a model, refusing known fields sent
// with the wrong wire type, without loading external data or checking
// tensors.
func parseWire(b []byte) (*ModelProto, error) {
	m, err := unmarshalModel(b)
	if err == nil {
		err = checkWireTypes(m.ProtoReflect(), 0)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing model: %w", err)
	}
	return m, nil
}

// aliasThreshold is the raw_data length from which a parsed tensor shares
// the input buffer instead of getting a copy.
const aliasThreshold = 1024

// maxNesting bounds the message nesting the pre-scan follows, as
// proto.Unmarshal bounds its recursion.
const maxNesting = 10000

// unmarshalModel is proto.Unmarshal without copying large raw_data fields.
// proto.Unmarshal copies every bytes field, which for a model of weights
// doubles its memory. So the input is first rewritten with each raw_data of
// at least aliasThreshold bytes replaced by a short token, the rewritten
// (small) message is unmarshalled, and each token is then swapped for a
// slice of the input.
//
// Tokens start with a random nonce, so input bytes cannot pass for one, and
// the protobuf rules for repeated or merged fields play out on the tokens as
// they would on the data. Any trouble in the pre-scan falls back to plain
// proto.Unmarshal, which reports malformed input.
func unmarshalModel(b []byte) (*ModelProto, error) {
	s := stripper{}
	if _, err := rand.Read(s.nonce[:]); err != nil {
		return nil, err
	}
	m := &ModelProto{}
	stripped, changed, err := s.message(b, m.ProtoReflect().Descriptor(), 0)
	if err != nil || !changed {
		if err := proto.Unmarshal(b, m); err != nil {
			return nil, err
		}
		return m, nil
	}
	if err := proto.Unmarshal(stripped, m); err != nil {
		return nil, err
	}
	err = walkTensors(m, func(t *TensorProto, _ *site) error {
		if i, ok := s.cutIndex(t.RawData); ok {
			t.RawData = s.cuts[i]
		}
		return nil
	})
	return m, err
}

type stripper struct {
	nonce [16]byte
	cuts  [][]byte
}

func (s *stripper) token(i int) []byte {
	return binary.LittleEndian.AppendUint32(s.nonce[:len(s.nonce):len(s.nonce)], uint32(i))
}

func (s *stripper) cutIndex(raw []byte) (int, bool) {
	if len(raw) != len(s.nonce)+4 || !bytes.Equal(raw[:len(s.nonce)], s.nonce[:]) {
		return 0, false
	}
	i := int(binary.LittleEndian.Uint32(raw[len(s.nonce):]))
	return i, i < len(s.cuts)
}

// holdsTensors reports whether messages of type md can contain a
// TensorProto, so that the pre-scan skips the others.
func holdsTensors(md protoreflect.MessageDescriptor) bool {
	switch md.Name() {
	case "ModelProto", "GraphProto", "NodeProto", "AttributeProto", "SparseTensorProto",
		"TrainingInfoProto", "FunctionProto", "TensorProto":
		return true
	}
	return false
}

const rawDataField = 9 // TensorProto.raw_data

// message rewrites the encoded message b of type md with its large raw_data
// fields, and those of the messages inside it, replaced by tokens. It
// returns b itself when nothing changed.
func (s *stripper) message(b []byte, md protoreflect.MessageDescriptor, depth int) ([]byte, bool, error) {
	if depth > maxNesting {
		return nil, false, errors.New("messages nested too deep")
	}
	isTensor := md.Name() == "TensorProto"
	var out []byte // nil until the first change
	for pos := 0; pos < len(b); {
		num, typ, n := protowire.ConsumeTag(b[pos:])
		if n < 0 {
			return nil, false, protowire.ParseError(n)
		}
		vn := protowire.ConsumeFieldValue(num, typ, b[pos+n:])
		if vn < 0 {
			return nil, false, protowire.ParseError(vn)
		}
		field := b[pos : pos+n+vn]
		start := pos
		pos += n + vn
		var replacement []byte
		if typ == protowire.BytesType {
			value, _ := protowire.ConsumeBytes(b[start+n:])
			switch fd := md.Fields().ByNumber(num); {
			case fd == nil:
			case isTensor && num == rawDataField && len(value) >= aliasThreshold:
				s.cuts = append(s.cuts, value[:len(value):len(value)])
				replacement = protowire.AppendTag(nil, num, protowire.BytesType)
				replacement = protowire.AppendBytes(replacement, s.token(len(s.cuts)-1))
			case fd.Kind() == protoreflect.MessageKind && holdsTensors(fd.Message()):
				inner, changed, err := s.message(value, fd.Message(), depth+1)
				if err != nil {
					return nil, false, err
				}
				if changed {
					replacement = protowire.AppendTag(make([]byte, 0, len(inner)+16), num, protowire.BytesType)
					replacement = protowire.AppendBytes(replacement, inner)
				}
			}
		}
		switch {
		case replacement != nil && out == nil:
			out = append(make([]byte, 0, start+len(replacement)), b[:start]...)
			out = append(out, replacement...)
		case replacement != nil:
			out = append(out, replacement...)
		case out != nil:
			out = append(out, field...)
		}
	}
	if out == nil {
		return b, false, nil
	}
	return out, true, nil
}

// checkWireTypes refuses messages holding a known field with the wrong wire
// type. Protobuf parsers keep such a field as an unknown field, so a model
// whose graph was written as an integer parses as a model without a graph;
// for a model file that is corruption, not an extension.
func checkWireTypes(m protoreflect.Message, depth int) error {
	if depth > maxNesting {
		return errors.New("messages nested too deep")
	}
	md := m.Descriptor()
	for unknown := m.GetUnknown(); len(unknown) > 0; {
		num, typ, n := protowire.ConsumeTag(unknown)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if fd := md.Fields().ByNumber(num); fd != nil {
			return fmt.Errorf("%s field %d (%s) has wire type %d, which does not fit its type %v", md.Name(), num, fd.Name(), typ, fd.Kind())
		}
		vn := protowire.ConsumeFieldValue(num, typ, unknown[n:])
		if vn < 0 {
			return protowire.ParseError(vn)
		}
		unknown = unknown[n+vn:]
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := range l.Len() {
				if err = checkWireTypes(l.Get(i).Message(), depth+1); err != nil {
					return false
				}
			}
			return true
		}
		err = checkWireTypes(v.Message(), depth+1)
		return err == nil
	})
	return err
}
