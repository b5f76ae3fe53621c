package onnx

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"onnxopt/internal/atomicfile"
)

// WriteOptions says where WriteModel puts tensor data.
type WriteOptions struct {
	// ExternalData moves the data of every tensor with at least Threshold
	// bytes of it to one data file next to the model, each tensor at an
	// offset that is a multiple of 4096. Data in typed fields (float_data,
	// int64_data, ...) is converted to raw bytes on the way. STRING
	// tensors stay in the model.
	ExternalData bool
	// Threshold is the smallest data size, in bytes, that goes to the data
	// file; zero or less means DefaultExternalThreshold.
	Threshold int64
	// Location is the data file's path relative to the model's folder; ""
	// means the model's file name followed by ".data".
	Location string
	// Progress, when not nil, is told as writing goes the bytes written
	// and the bytes of the model and data file together, known before
	// the first is written: first with done = 0, at least every 8 MiB,
	// and last with done = total.
	Progress func(done, total int64)
}

// DefaultExternalThreshold is the threshold of WriteOptions when none is
// given, the one the ONNX Python tools use.
const DefaultExternalThreshold = 1024

// MaxProtoSize is the largest message protobuf implementations parse:
// WriteModel writes a larger model with external data.
const MaxProtoSize = math.MaxInt32

// externalAlign is the alignment of tensors in external data files, so that
// they can be memory-mapped and used in place.
const externalAlign = 4096

// streamThreshold is the raw_data length from which WriteModel copies a
// tensor's bytes straight from its slice instead of marshalling them.
const streamThreshold = 64 << 10

// WriteModel writes m to path. The model and its data file, if any, are
// written to temporary files in their folders and renamed into place, so an
// error leaves no partial file behind. A model that would exceed the 2 GiB
// limit of protobuf is written with external data whatever opt says. m is
// not modified. Tensors that still refer to external data (not loaded by
// ReadModel) are refused.
func WriteModel(path string, m *ModelProto, opt WriteOptions) error {
	if err := writeModel(path, m, opt, MaxProtoSize); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// writeModel is WriteModel with the protobuf size limit as a parameter, so
// that tests can reach it with small models.
func writeModel(path string, m *ModelProto, opt WriteOptions, limit int) error {
	if m == nil {
		return errors.New("nil model")
	}
	err := walkTensors(m, func(t *TensorProto, where *site) error {
		if t.GetDataLocation() == TensorProto_EXTERNAL {
			return fmt.Errorf("%s: tensor %q refers to external data that was not loaded", where, t.GetName())
		}
		return nil
	})
	if err != nil {
		return err
	}
	dir, base := filepath.Dir(path), filepath.Base(path)
	e := &encoder{replace: map[*TensorProto]*TensorProto{}, heavyMemo: map[proto.Message]bool{}}
	var external []externalTensor
	var dataSize int64
	var dataPath string
	if opt.ExternalData || proto.Size(m) > limit {
		location := opt.Location
		if location == "" {
			location = base + ".data"
		}
		if err := checkLocation(location); err != nil {
			return err
		}
		dataPath = filepath.Join(dir, location)
		if filepath.Clean(dataPath) == filepath.Clean(path) {
			return fmt.Errorf("data file %q is the model file", location)
		}
		threshold := opt.Threshold
		if threshold <= 0 {
			threshold = DefaultExternalThreshold
		}
		if external, dataSize, err = e.planExternal(m, location, threshold); err != nil {
			return err
		}
	}
	modelSize := e.size(m.ProtoReflect())
	if modelSize > limit {
		return fmt.Errorf("the model is %d bytes without its external data, more than protobuf's limit of %d", modelSize, limit)
	}
	through := func(w io.Writer) io.Writer { return w }
	if opt.Progress != nil {
		p := newProgressWriter(dataSize+int64(modelSize), opt.Progress)
		through = p.to
	}
	var dataTemp string
	if len(external) > 0 {
		dataTemp, err = atomicfile.WriteTemp(dataPath, func(w *bufio.Writer) error {
			return writeExternal(through(w), external)
		})
		if err != nil {
			return err
		}
	}
	modelTemp, err := atomicfile.WriteTemp(path, func(w *bufio.Writer) error {
		return e.write(through(w), m.ProtoReflect())
	})
	if err != nil {
		if dataTemp != "" {
			os.Remove(dataTemp)
		}
		return err
	}
	if dataTemp != "" {
		if err := atomicfile.Rename(dataTemp, dataPath); err != nil {
			os.Remove(modelTemp)
			return err
		}
	}
	return atomicfile.Rename(modelTemp, path)
}

// encoder streams a model to a writer. proto.Marshal would build the whole
// encoding in memory, doubling the memory of a model of weights; the
// encoder marshals only the small parts and copies large raw_data from the
// tensors' own slices. Lengths come from proto.Size, which does not
// marshal.
type encoder struct {
	// replace maps tensors moved to the external data file to the tensors
	// written in their place.
	replace   map[*TensorProto]*TensorProto
	heavyMemo map[proto.Message]bool
	scratch   []byte
}

// An externalTensor is a tensor whose data goes to the data file, at
// offset.
type externalTensor struct {
	t      *TensorProto
	offset int64
}

// planExternal lays out the data file: it picks m's tensors with at
// least threshold bytes of data, places each at an aligned offset, and
// records in e.replace the tensor that refers to it in the model. It
// returns them in file order, and the file's size.
func (e *encoder) planExternal(m *ModelProto, location string, threshold int64) ([]externalTensor, int64, error) {
	var plan []externalTensor
	var offset int64
	err := walkTensors(m, func(t *TensorProto, where *site) error {
		dt := DataType(t.GetDataType())
		if _, done := e.replace[t]; done || dt == TensorProto_STRING {
			return nil
		}
		if err := ValidateTensor(t); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		n, _ := NumElements(t.Dims)
		size, _ := dt.RawSize(n)
		if size < threshold {
			return nil
		}
		offset += (externalAlign - offset%externalAlign) % externalAlign
		r := withoutFields(t.ProtoReflect(), func(fd protoreflect.FieldDescriptor) bool {
			return isDataField(fd.Number())
		}).Interface().(*TensorProto)
		r.DataLocation = TensorProto_EXTERNAL.Enum()
		r.ExternalData = []*StringStringEntryProto{
			{Key: proto.String("location"), Value: proto.String(location)},
			{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(offset, 10))},
			{Key: proto.String("length"), Value: proto.String(strconv.FormatInt(size, 10))},
		}
		e.replace[t] = r
		plan = append(plan, externalTensor{t, offset})
		offset += size
		return nil
	})
	return plan, offset, err
}

// writeExternal writes the data file planExternal laid out.
func writeExternal(w io.Writer, plan []externalTensor) error {
	var offset int64
	var zeros [externalAlign]byte
	for _, x := range plan {
		if _, err := w.Write(zeros[:x.offset-offset]); err != nil {
			return err
		}
		data := rawData(x.t)
		if _, err := w.Write(data); err != nil {
			return err
		}
		offset = x.offset + int64(len(data))
	}
	return nil
}

// isDataField reports whether TensorProto field num holds or locates the
// tensor's elements.
func isDataField(num protowire.Number) bool {
	switch num {
	case 3, 4, 5, 6, 7, 9, 10, 11, 13, 14: // segment, *_data, raw_data, external_data, data_location
		return true
	}
	return false
}

// withoutFields is a shallow copy of m without the fields skip selects: the
// other fields share m's values.
func withoutFields(m protoreflect.Message, skip func(protoreflect.FieldDescriptor) bool) protoreflect.Message {
	c := m.Type().New()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !skip(fd) {
			c.Set(fd, v)
		}
		return true
	})
	c.SetUnknown(m.GetUnknown())
	return c
}

// heavy reports whether m holds, at any depth, a tensor the encoder writes
// itself: one replaced by an external reference or one with streamed
// raw_data.
func (e *encoder) heavy(m protoreflect.Message) bool {
	key := m.Interface()
	if h, ok := e.heavyMemo[key]; ok {
		return h
	}
	h := false
	if t, ok := key.(*TensorProto); ok {
		_, replaced := e.replace[t]
		h = replaced || len(t.RawData) >= streamThreshold
	} else if holdsTensors(m.Descriptor()) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			h = e.heavyField(fd, v)
			return !h
		})
	}
	e.heavyMemo[key] = h
	return h
}

func (e *encoder) heavyField(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
	if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
		return false
	}
	if fd.IsList() {
		l := v.List()
		for i := range l.Len() {
			if e.heavy(l.Get(i).Message()) {
				return true
			}
		}
		return false
	}
	return e.heavy(v.Message())
}

type fieldValue struct {
	fd protoreflect.FieldDescriptor
	v  protoreflect.Value
}

// split separates a heavy message into a light shallow copy, marshalled
// normally, and the fields the encoder writes itself: the raw_data of a
// tensor, or the message fields that hold heavy messages.
func (e *encoder) split(m protoreflect.Message) (protoreflect.Message, []fieldValue) {
	_, isTensor := m.Interface().(*TensorProto)
	var heavy []fieldValue
	light := withoutFields(m, func(fd protoreflect.FieldDescriptor) bool {
		v := m.Get(fd)
		if isTensor && fd.Number() == rawDataField || !isTensor && e.heavyField(fd, v) {
			heavy = append(heavy, fieldValue{fd, v})
			return true
		}
		return false
	})
	return light, heavy
}

// size is the length of what write writes for m.
func (e *encoder) size(m protoreflect.Message) int {
	if t, ok := m.Interface().(*TensorProto); ok {
		if r, ok := e.replace[t]; ok {
			return proto.Size(r)
		}
	}
	if !e.heavy(m) {
		return proto.Size(m.Interface())
	}
	light, heavy := e.split(m)
	n := proto.Size(light.Interface())
	for _, f := range heavy {
		tag := protowire.SizeTag(f.fd.Number())
		switch {
		case f.fd.Kind() == protoreflect.BytesKind:
			n += tag + protowire.SizeBytes(len(f.v.Bytes()))
		case f.fd.IsList():
			l := f.v.List()
			for i := range l.Len() {
				n += tag + protowire.SizeBytes(e.size(l.Get(i).Message()))
			}
		default:
			n += tag + protowire.SizeBytes(e.size(f.v.Message()))
		}
	}
	return n
}

// write writes the encoding of m, with tensors in e.replace swapped for
// their replacements.
func (e *encoder) write(w io.Writer, m protoreflect.Message) error {
	if t, ok := m.Interface().(*TensorProto); ok {
		if r, ok := e.replace[t]; ok {
			return e.marshal(w, r)
		}
	}
	if !e.heavy(m) {
		return e.marshal(w, m.Interface())
	}
	light, heavy := e.split(m)
	if err := e.marshal(w, light.Interface()); err != nil {
		return err
	}
	for _, f := range heavy {
		if f.fd.Kind() == protoreflect.BytesKind {
			if err := e.writeBytesField(w, f.fd.Number(), f.v.Bytes()); err != nil {
				return err
			}
			continue
		}
		if !f.fd.IsList() {
			if err := e.writeMessageField(w, f.fd.Number(), f.v.Message()); err != nil {
				return err
			}
			continue
		}
		l := f.v.List()
		for i := range l.Len() {
			if err := e.writeMessageField(w, f.fd.Number(), l.Get(i).Message()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *encoder) writeBytesField(w io.Writer, num protowire.Number, b []byte) error {
	e.scratch = protowire.AppendTag(e.scratch[:0], num, protowire.BytesType)
	e.scratch = protowire.AppendVarint(e.scratch, uint64(len(b)))
	if _, err := w.Write(e.scratch); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

func (e *encoder) writeMessageField(w io.Writer, num protowire.Number, m protoreflect.Message) error {
	e.scratch = protowire.AppendTag(e.scratch[:0], num, protowire.BytesType)
	e.scratch = protowire.AppendVarint(e.scratch, uint64(e.size(m)))
	if _, err := w.Write(e.scratch); err != nil {
		return err
	}
	return e.write(w, m)
}

func (e *encoder) marshal(w io.Writer, m proto.Message) error {
	var err error
	e.scratch, err = proto.MarshalOptions{}.MarshalAppend(e.scratch[:0], m)
	if err != nil {
		return err
	}
	_, err = w.Write(e.scratch)
	return err
}
