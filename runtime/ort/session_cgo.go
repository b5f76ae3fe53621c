//go:build cgo

package ort

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"
)

// ONNX Runtime allows one environment per process and onnxruntime_go keeps
// it in its own package state, so the environment is created once, on the
// first Open, and lives until the process exits. This is the package's only
// mutable state; it is written once under environmentOnce.
var (
	environmentOnce sync.Once
	environmentErr  error
)

func initEnvironment() error {
	environmentOnce.Do(func() {
		path, err := LibraryPath()
		if err != nil {
			environmentErr = err
			return
		}
		ortgo.SetSharedLibraryPath(path)
		if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelFatal()); err != nil {
			environmentErr = fmt.Errorf("ONNX Runtime from %s: %w", path, err)
		}
	})
	return environmentErr
}

// Session is a model loaded into ONNX Runtime. Run may be called from
// several goroutines at once; Close must not overlap any other call.
type Session struct {
	session *ortgo.DynamicAdvancedSession
	inputs  []IOInfo
	outputs []IOInfo
}

// Open loads the ONNX model file at modelPath. Tensors the model stores in
// external files are read relative to the model's folder.
func Open(modelPath string, opts Options) (*Session, error) {
	return open(opts, modelPath, func(options *ortgo.SessionOptions) (*Session, error) {
		inputs, outputs, err := ortgo.GetInputOutputInfoWithOptions(modelPath, options)
		if err != nil {
			return nil, err
		}
		s, err := newSession(inputs, outputs)
		if err != nil {
			return nil, err
		}
		s.session, err = ortgo.NewDynamicAdvancedSession(modelPath, names(s.inputs), names(s.outputs), options)
		return s, err
	})
}

// OpenBytes loads an ONNX model from its serialized form.
func OpenBytes(model []byte, opts Options) (*Session, error) {
	what := fmt.Sprintf("model of %d bytes", len(model))
	return open(opts, what, func(options *ortgo.SessionOptions) (*Session, error) {
		inputs, outputs, err := ortgo.GetInputOutputInfoWithONNXData(model)
		if err != nil {
			return nil, err
		}
		s, err := newSession(inputs, outputs)
		if err != nil {
			return nil, err
		}
		s.session, err = ortgo.NewDynamicAdvancedSessionWithONNXData(model, names(s.inputs), names(s.outputs), options)
		return s, err
	})
}

// open creates the environment and session options and calls load with
// them to open the model that what names in errors. load learns the inputs and outputs from a first, temporary ONNX
// Runtime session, because the session that runs must be told their names
// when it is created.
func open(opts Options, what string, load func(*ortgo.SessionOptions) (*Session, error)) (*Session, error) {
	if opts.Threads < 0 {
		return nil, fmt.Errorf("ort: Threads is %d, want 0 or more", opts.Threads)
	}
	if err := initEnvironment(); err != nil {
		return nil, err
	}
	options, err := ortgo.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("ort: session options: %w", err)
	}
	defer options.Destroy()
	threads := max(opts.Threads, 1)
	if err := options.SetIntraOpNumThreads(threads); err != nil {
		return nil, fmt.Errorf("ort: %d intra-op threads: %w", threads, err)
	}
	s, err := load(options)
	if err != nil {
		return nil, fmt.Errorf("ort: open %s: %w", what, err)
	}
	return s, nil
}

func newSession(inputs, outputs []ortgo.InputOutputInfo) (*Session, error) {
	s := &Session{}
	for _, in := range inputs {
		info, err := ioInfo(in)
		if err != nil {
			return nil, fmt.Errorf("input %w", err)
		}
		s.inputs = append(s.inputs, info)
	}
	for _, out := range outputs {
		info, err := ioInfo(out)
		if err != nil {
			return nil, fmt.Errorf("output %w", err)
		}
		s.outputs = append(s.outputs, info)
	}
	return s, nil
}

func ioInfo(info ortgo.InputOutputInfo) (IOInfo, error) {
	if info.OrtValueType != ortgo.ONNXTypeTensor {
		return IOInfo{}, fmt.Errorf("%q is a %s; only tensors are supported", info.Name, info.OrtValueType)
	}
	return IOInfo{
		Name:  info.Name,
		DType: int32(info.DataType),
		Shape: append([]int64{}, info.Dimensions...),
	}, nil
}

func names(infos []IOInfo) []string {
	out := make([]string, len(infos))
	for i, info := range infos {
		out[i] = info.Name
	}
	return out
}

// Inputs describes the inputs that Run needs, in the model's order.
func (s *Session) Inputs() []IOInfo { return cloneInfos(s.inputs) }

// Outputs describes the outputs that Run returns, in the model's order.
func (s *Session) Outputs() []IOInfo { return cloneInfos(s.outputs) }

func cloneInfos(infos []IOInfo) []IOInfo {
	out := make([]IOInfo, len(infos))
	for i, info := range infos {
		out[i] = IOInfo{Name: info.Name, DType: info.DType, Shape: append([]int64{}, info.Shape...)}
	}
	return out
}

// Run evaluates the model on inputs, which must hold exactly the tensors
// that Inputs names, and returns every output by name. ONNX Runtime reads
// the inputs' Data in place during the call; the outputs are fresh slices
// that the caller owns.
func (s *Session) Run(inputs map[string]*Tensor) (map[string]*Tensor, error) {
	if s.session == nil {
		return nil, errors.New("ort: run on a closed session")
	}
	if len(s.inputs) == 0 {
		// onnxruntime_go indexes the first input unconditionally.
		return nil, errors.New("ort: models without inputs cannot be run through onnxruntime_go")
	}
	if err := s.checkInputNames(inputs); err != nil {
		return nil, err
	}
	inputValues := make([]ortgo.Value, 0, len(s.inputs))
	defer func() { destroyValues(inputValues) }()
	for _, info := range s.inputs {
		t := inputs[info.Name]
		if err := t.check(); err != nil {
			return nil, fmt.Errorf("ort: input %q: %w", info.Name, err)
		}
		if t.DType != info.DType {
			return nil, fmt.Errorf("ort: input %q is %s, the model wants %s", info.Name, dataTypeName(t.DType), dataTypeName(info.DType))
		}
		v, err := newValue(t)
		if err != nil {
			return nil, fmt.Errorf("ort: input %q: %w", info.Name, err)
		}
		inputValues = append(inputValues, v)
	}
	// onnxruntime_go cannot return a rank-0 tensor that ONNX Runtime
	// allocated (its Go tensors need a dimension), so outputs that ONNX
	// Runtime reports as rank 0 are given a scalar buffer. It reports an
	// unknown shape as rank 0 too; if such an output turns out larger, the
	// run fails on the scalar buffer and is repeated with ONNX Runtime
	// allocating every output.
	outputs, err := s.run(inputValues, true)
	if err == nil || !s.hasRankZeroOutput() {
		return outputs, err
	}
	outputs, retryErr := s.run(inputValues, false)
	if retryErr != nil {
		return nil, fmt.Errorf("%w (with ONNX Runtime allocating every output: %v)", err, retryErr)
	}
	return outputs, nil
}

func (s *Session) hasRankZeroOutput() bool {
	for _, info := range s.outputs {
		if len(info.Shape) == 0 {
			return true
		}
	}
	return false
}

// run runs the session once. Outputs are allocated by ONNX Runtime, which
// alone knows their dynamic shapes, except that with scalarBuffers those
// reported as rank 0 get a scalar buffer.
func (s *Session) run(inputValues []ortgo.Value, scalarBuffers bool) (map[string]*Tensor, error) {
	outputValues := make([]ortgo.Value, len(s.outputs))
	defer destroyValues(outputValues)
	for i, info := range s.outputs {
		if scalarBuffers && len(info.Shape) == 0 {
			v, err := newScalar(info.DType)
			if err != nil {
				return nil, fmt.Errorf("ort: output %q: %w", info.Name, err)
			}
			outputValues[i] = v
		}
	}
	if err := s.session.Run(inputValues, outputValues); err != nil {
		return nil, fmt.Errorf("ort: run: %w", err)
	}
	outputs := make(map[string]*Tensor, len(s.outputs))
	for i, info := range s.outputs {
		t, err := tensorOf(outputValues[i])
		if err != nil {
			return nil, fmt.Errorf("ort: output %q: %w", info.Name, err)
		}
		outputs[info.Name] = t
	}
	return outputs, nil
}

// destroyValues releases the ONNX Runtime side of values.
func destroyValues(values []ortgo.Value) {
	for _, v := range values {
		// A failed run can leave a typed nil pointer in an output slot.
		if v != nil && !reflect.ValueOf(v).IsNil() {
			v.Destroy()
		}
	}
}

func (s *Session) checkInputNames(inputs map[string]*Tensor) error {
	var missing, unknown []string
	for _, info := range s.inputs {
		if _, ok := inputs[info.Name]; !ok {
			missing = append(missing, fmt.Sprintf("%q", info.Name))
		}
	}
	for name := range inputs {
		if !containsName(s.inputs, name) {
			unknown = append(unknown, fmt.Sprintf("%q", name))
		}
	}
	if len(missing) == 0 && len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, "missing input "+strings.Join(missing, ", "))
	}
	if len(unknown) > 0 {
		problems = append(problems, "unknown input "+strings.Join(unknown, ", "))
	}
	return fmt.Errorf("ort: %s", strings.Join(problems, "; "))
}

func containsName(infos []IOInfo, name string) bool {
	for _, info := range infos {
		if info.Name == name {
			return true
		}
	}
	return false
}

// Close releases the session. Closing a closed session does nothing.
func (s *Session) Close() error {
	if s.session == nil {
		return nil
	}
	err := s.session.Destroy()
	s.session = nil
	if err != nil {
		return fmt.Errorf("ort: close: %w", err)
	}
	return nil
}

// newValue wraps t's data, which has been checked, as an ONNX Runtime value
// without copying it.
func newValue(t *Tensor) (ortgo.Value, error) {
	switch d := t.Data.(type) {
	case []float32:
		return newTypedValue(t.Shape, d)
	case []float64:
		return newTypedValue(t.Shape, d)
	case []int8:
		return newTypedValue(t.Shape, d)
	case []int16:
		return newTypedValue(t.Shape, d)
	case []int32:
		return newTypedValue(t.Shape, d)
	case []int64:
		return newTypedValue(t.Shape, d)
	case []uint8:
		return newTypedValue(t.Shape, d)
	case []uint16:
		return newTypedValue(t.Shape, d)
	case []uint32:
		return newTypedValue(t.Shape, d)
	case []uint64:
		return newTypedValue(t.Shape, d)
	case []bool:
		return newTypedValue(t.Shape, d)
	}
	return nil, fmt.Errorf("unsupported data %T", t.Data)
}

func newTypedValue[T ortgo.TensorData](shape []int64, data []T) (ortgo.Value, error) {
	if len(shape) == 0 {
		return ortgo.NewScalar(data[0])
	}
	return ortgo.NewTensor(ortgo.Shape(shape), data)
}

// newScalar allocates a rank-0 output value of the given ONNX data type.
func newScalar(dtype int32) (ortgo.Value, error) {
	switch dtype {
	case int32(ortgo.TensorElementDataTypeFloat):
		return ortgo.NewEmptyScalar[float32]()
	case int32(ortgo.TensorElementDataTypeDouble):
		return ortgo.NewEmptyScalar[float64]()
	case int32(ortgo.TensorElementDataTypeInt8):
		return ortgo.NewEmptyScalar[int8]()
	case int32(ortgo.TensorElementDataTypeInt16):
		return ortgo.NewEmptyScalar[int16]()
	case int32(ortgo.TensorElementDataTypeInt32):
		return ortgo.NewEmptyScalar[int32]()
	case int32(ortgo.TensorElementDataTypeInt64):
		return ortgo.NewEmptyScalar[int64]()
	case int32(ortgo.TensorElementDataTypeUint8):
		return ortgo.NewEmptyScalar[uint8]()
	case int32(ortgo.TensorElementDataTypeUint16):
		return ortgo.NewEmptyScalar[uint16]()
	case int32(ortgo.TensorElementDataTypeUint32):
		return ortgo.NewEmptyScalar[uint32]()
	case int32(ortgo.TensorElementDataTypeUint64):
		return ortgo.NewEmptyScalar[uint64]()
	case int32(ortgo.TensorElementDataTypeBool):
		return ortgo.NewEmptyScalar[bool]()
	}
	return nil, fmt.Errorf("%s is not supported", dataTypeName(dtype))
}

// tensorOf copies nothing: the Go slice behind an output value stays valid
// after the value is destroyed, since Go memory outlives the ONNX Runtime
// value that pointed at it.
func tensorOf(v ortgo.Value) (*Tensor, error) {
	switch v := v.(type) {
	case *ortgo.Tensor[float32]:
		return typedTensor(v)
	case *ortgo.Tensor[float64]:
		return typedTensor(v)
	case *ortgo.Tensor[int8]:
		return typedTensor(v)
	case *ortgo.Tensor[int16]:
		return typedTensor(v)
	case *ortgo.Tensor[int32]:
		return typedTensor(v)
	case *ortgo.Tensor[int64]:
		return typedTensor(v)
	case *ortgo.Tensor[uint8]:
		return typedTensor(v)
	case *ortgo.Tensor[uint16]:
		return typedTensor(v)
	case *ortgo.Tensor[uint32]:
		return typedTensor(v)
	case *ortgo.Tensor[uint64]:
		return typedTensor(v)
	case *ortgo.Tensor[bool]:
		return typedTensor(v)
	case *ortgo.Scalar[float32]:
		return scalarTensor(v)
	case *ortgo.Scalar[float64]:
		return scalarTensor(v)
	case *ortgo.Scalar[int8]:
		return scalarTensor(v)
	case *ortgo.Scalar[int16]:
		return scalarTensor(v)
	case *ortgo.Scalar[int32]:
		return scalarTensor(v)
	case *ortgo.Scalar[int64]:
		return scalarTensor(v)
	case *ortgo.Scalar[uint8]:
		return scalarTensor(v)
	case *ortgo.Scalar[uint16]:
		return scalarTensor(v)
	case *ortgo.Scalar[uint32]:
		return scalarTensor(v)
	case *ortgo.Scalar[uint64]:
		return scalarTensor(v)
	case *ortgo.Scalar[bool]:
		return scalarTensor(v)
	case nil:
		return nil, errors.New("no value")
	}
	return nil, fmt.Errorf("%s value of %s is not supported", v.GetONNXType(), dataTypeName(int32(v.DataType())))
}

func typedTensor[T ortgo.TensorData](v *ortgo.Tensor[T]) (*Tensor, error) {
	return &Tensor{DType: int32(v.DataType()), Shape: v.GetShape(), Data: v.GetData()}, nil
}

func scalarTensor[T ortgo.TensorData](v *ortgo.Scalar[T]) (*Tensor, error) {
	return &Tensor{DType: int32(v.DataType()), Shape: []int64{}, Data: []T{v.GetData()}}, nil
}
