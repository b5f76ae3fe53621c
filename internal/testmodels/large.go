package testmodels

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"onnxopt/internal/atomicfile"
	"onnxopt/onnx"
)

// GPT3GB is a GPT shaped like GPT-2 large but narrower, 781 million
// parameters or 3.12 GB of float32 weights: past protobuf's 2 GiB limit,
// so that it exists only with external data. Its largest tensors, the
// token embedding and the output projection, are 201 MB each.
func GPT3GB() GPTConfig { return GPTConfig{Layers: 24, DModel: 1536, Vocab: 32768, Seed: 3} }

// externalAlign is the alignment of tensors in the data file, the one
// onnx.WriteModel uses, so that a tensor can be mapped and used in place.
const externalAlign = 4096

// chunkElements is how many weights WriteGPTExternal generates and writes
// at a time.
const chunkElements = 1 << 18

// WriteGPTExternal writes GPT(c) to dir/model.onnx with the data of every
// float tensor of at least onnx.DefaultExternalThreshold bytes in
// dir/model.onnx.data, each at an offset that is a multiple of 4096, as
// onnx.WriteModel lays out external data. The weights are generated and
// written a chunk at a time, in the order of the model's initializers, so
// that a model of any size is written in a few megabytes of memory; the
// data file is written sequentially. Read back with its external data, the
// model equals GPT(c). Both files are written to temporary files and
// renamed into place. It returns the model's path.
func WriteGPTExternal(dir string, c GPTConfig) (string, error) {
	path := filepath.Join(dir, "model.onnx")
	location := filepath.Base(path) + ".data"
	dataPath := filepath.Join(dir, location)
	var m *onnx.ModelProto
	dataTemp, err := atomicfile.WriteTemp(dataPath, func(w *bufio.Writer) error {
		s := &externalSink{w: w, location: location}
		var err error
		m, err = buildGPT(c, s.tensor)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", dataPath, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			os.Remove(dataTemp)
		}
	}()
	b, err := proto.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	modelTemp, err := atomicfile.WriteTemp(path, func(w *bufio.Writer) error {
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err := atomicfile.Rename(dataTemp, dataPath); err != nil {
		os.Remove(modelTemp)
		return "", err
	}
	renamed = true
	if err := atomicfile.Rename(modelTemp, path); err != nil {
		return "", err
	}
	return path, nil
}

// externalSink is a floatSink that appends each tensor's data to a data
// file and returns a tensor that refers to it.
type externalSink struct {
	w        *bufio.Writer
	location string
	offset   int64
	values   []float32
	bytes    []byte
	err      error // the first write error; later tensors are not written
}

func (s *externalSink) tensor(name string, dims []int64, fill func([]float32)) (*onnx.TensorProto, error) {
	if s.err != nil {
		return nil, s.err
	}
	n, err := onnx.NumElements(dims)
	if err != nil {
		return nil, err
	}
	size := 4 * n
	if size < onnx.DefaultExternalThreshold {
		v := make([]float32, n)
		fill(v)
		return onnx.NewTensor(name, onnx.TensorProto_FLOAT, dims, v)
	}
	pad := (externalAlign - s.offset%externalAlign) % externalAlign
	if _, s.err = s.w.Write(make([]byte, pad)); s.err != nil {
		return nil, s.err
	}
	s.offset += pad
	start := s.offset
	if s.values == nil {
		s.values = make([]float32, chunkElements)
		s.bytes = make([]byte, 4*chunkElements)
	}
	for left := n; left > 0; {
		k := min(left, chunkElements)
		v, b := s.values[:k], s.bytes[:4*k]
		fill(v)
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		if _, s.err = s.w.Write(b); s.err != nil {
			return nil, s.err
		}
		left -= k
	}
	s.offset += size
	return &onnx.TensorProto{
		Name:         proto.String(name),
		DataType:     proto.Int32(int32(onnx.TensorProto_FLOAT)),
		Dims:         append([]int64(nil), dims...),
		DataLocation: onnx.TensorProto_EXTERNAL.Enum(),
		ExternalData: []*onnx.StringStringEntryProto{
			{Key: proto.String("location"), Value: proto.String(s.location)},
			{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(start, 10))},
			{Key: proto.String("length"), Value: proto.String(strconv.FormatInt(size, 10))},
		},
	}, nil
}
