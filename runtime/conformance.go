package runtime

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// The tolerances of the ONNX backend test runner, which the conformance
// suite's expected outputs are meant to be checked with.
const (
	ConformanceRTol = 1e-3
	ConformanceATol = 1e-7
)

// Case statuses.
const (
	StatusPass        = "pass"
	StatusFail        = "fail"        // ran, but an output differs from the expected one
	StatusUnsupported = "unsupported" // an op or a value type the runtime lacks
	StatusError       = "error"       // the model failed to load, compile or run
)

// A CaseResult is the outcome of one conformance case: a folder holding
// model.onnx and test_data_set_N/{input,output}_K.pb.
type CaseResult struct {
	Name   string // the case folder's base name, e.g. test_add
	Dir    string
	Status string // StatusPass, StatusFail, StatusUnsupported or StatusError
	Op     string // the unsupported op, when Status is StatusUnsupported because of one
	// MaxAbsErr and MaxRelErr are the largest differences seen over every
	// output of every data set.
	MaxAbsErr, MaxRelErr float64
	Err                  string   // why the case did not pass
	Ops                  []string // the op types in the model and its subgraphs, sorted
}

// RunCase runs the conformance case in dir and compares every output of
// every data set with ConformanceRTol and ConformanceATol. It never
// panics: a panic in the runtime is reported as StatusError with its
// message.
func RunCase(dir string) CaseResult {
	return runCase(dir, func() (*graph.Model, error) { return graph.Load(filepath.Join(dir, "model.onnx")) })
}

// RunModelCase is RunCase with m, a model made from the case's (by
// optimization passes, say), run in place of dir/model.onnx on the case's
// data sets.
func RunModelCase(m *graph.Model, dir string) CaseResult {
	return runCase(dir, func() (*graph.Model, error) { return m, nil })
}

func runCase(dir string, load func() (*graph.Model, error)) (res CaseResult) {
	res = CaseResult{Name: filepath.Base(dir), Dir: dir}
	defer func() {
		if r := recover(); r != nil {
			buf := make([]byte, 4096)
			buf = buf[:goruntime.Stack(buf, false)]
			res.Status = StatusError
			res.Err = fmt.Sprintf("panic: %v\n%s", r, buf)
		}
	}()
	fail := func(status, format string, args ...any) CaseResult {
		res.Status = status
		res.Err = fmt.Sprintf(format, args...)
		return res
	}

	m, err := load()
	if err != nil {
		return fail(StatusError, "load: %v", err)
	}
	g := m.Graph
	res.Ops = modelOps(g)

	var inputs []*graph.Value
	for _, v := range g.Inputs {
		if v.Init == nil {
			inputs = append(inputs, v)
		}
	}
	// The runtime computes tensors, sequences and optionals.
	nonTensor := ""
	for _, v := range append(slices.Clone(inputs), g.Outputs...) {
		if _, ok := kindOf(v.Type); !ok {
			nonTensor = fmt.Sprintf("value %q is or holds a %s: the runtime computes no maps, sparse tensors or opaque values", v.Name, unsupportedKind(v.Type))
			break
		}
	}

	plan, err := Compile(g)
	var unsupported *UnsupportedError
	switch {
	case errors.As(err, &unsupported):
		res.Op = unsupported.Op
		return fail(StatusUnsupported, "%v", err)
	case nonTensor != "":
		return fail(StatusUnsupported, "%s", nonTensor)
	case err != nil:
		return fail(StatusError, "compile: %v", err)
	}

	sets, err := DataSets(dir)
	if err != nil {
		return fail(StatusError, "%v", err)
	}
	if len(sets) == 0 {
		return fail(StatusError, "no test_data_set_N folders")
	}
	inTypes := make([]*onnx.TypeProto, len(inputs))
	for k, v := range inputs {
		inTypes[k] = v.Type
	}
	outTypes := make([]*onnx.TypeProto, len(g.Outputs))
	for k, v := range g.Outputs {
		outTypes[k] = v.Type
	}
	for _, set := range sets {
		in, want, err := ReadDataSet(set, inTypes, outTypes)
		if err != nil {
			return fail(StatusError, "%v", err)
		}
		if len(in) > len(inputs) {
			return fail(StatusError, "%s: %d input files for %d graph inputs", filepath.Base(set), len(in), len(inputs))
		}
		if len(want) != len(g.Outputs) {
			return fail(StatusError, "%s: %d output files for %d graph outputs", filepath.Base(set), len(want), len(g.Outputs))
		}
		feeds := make(map[string]*Tensor, len(in))
		for k, t := range in {
			feeds[inputs[k].Name] = declaredAs(t, inputs[k].ElemType())
		}
		got, err := plan.Run(feeds)
		if err != nil {
			var unsupported *UnsupportedError
			if errors.As(err, &unsupported) {
				res.Op = unsupported.Op
				return fail(StatusUnsupported, "%s: %v", filepath.Base(set), err)
			}
			return fail(StatusError, "%s: run: %v", filepath.Base(set), err)
		}
		for k, v := range g.Outputs {
			maxAbs, maxRel, ok := Compare(got[v.Name], declaredAs(want[k], v.ElemType()), ConformanceRTol, ConformanceATol)
			res.MaxAbsErr = math.Max(res.MaxAbsErr, maxAbs)
			res.MaxRelErr = math.Max(res.MaxRelErr, maxRel)
			if !ok && res.Status == "" {
				res.Status = StatusFail
				res.Err = fmt.Sprintf("%s: output %d %q: got %s, want %s, max abs err %g, max rel err %g",
					filepath.Base(set), k, v.Name, got[v.Name], want[k], maxAbs, maxRel)
			}
		}
	}
	if res.Status == "" {
		res.Status = StatusPass
	}
	return res
}

// RunSuite runs every case folder (one holding model.onnx) directly under
// each of dirs, in parallel, and returns the results sorted by folder.
// progress, if not nil, is called after each case from one goroutine.
func RunSuite(dirs []string, progress func(done, total int)) []CaseResult {
	var cases []string
	for _, d := range dirs {
		matches, _ := filepath.Glob(filepath.Join(d, "*", "model.onnx"))
		for _, m := range matches {
			cases = append(cases, filepath.Dir(m))
		}
	}
	sort.Strings(cases)
	results := make([]CaseResult, len(cases))
	jobs := make(chan int)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range max(1, goruntime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				results[i] = RunCase(cases[i])
				done <- struct{}{}
			}
		}()
	}
	go func() {
		for i := range cases {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		close(done)
	}()
	n := 0
	for range done {
		n++
		if progress != nil {
			progress(n, len(cases))
		}
	}
	return results
}

// Compare checks got against want elementwise: |got-want| <= atol +
// rtol*|want| for floating-point types, with NaN matching NaN and
// infinities matching exactly, and equality for integers, booleans and
// strings. It fails when the dtypes or shapes differ. maxAbs and maxRel
// are the largest absolute and relative differences (relative to |want|,
// over elements where want is not zero). Sequences and optionals match
// when their kinds, element types and lengths do and their elements
// match in order.
func Compare(got, want *Tensor, rtol, atol float64) (maxAbs, maxRel float64, ok bool) {
	if got != nil && want != nil && (got.Kind != KindTensor || want.Kind != KindTensor) {
		if got.Kind != want.Kind || got.DType != want.DType || len(got.Elems) != len(want.Elems) {
			return math.Inf(1), math.Inf(1), false
		}
		ok = true
		for i := range want.Elems {
			a, r, same := Compare(got.Elems[i], want.Elems[i], rtol, atol)
			maxAbs, maxRel, ok = math.Max(maxAbs, a), math.Max(maxRel, r), ok && same
		}
		return maxAbs, maxRel, ok
	}
	if got == nil || want == nil || got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) {
		return math.Inf(1), math.Inf(1), false
	}
	// A kernel bug could leave Data of another type than DType says, or
	// short; that must fail the comparison, not panic it.
	gotType, gotLen, _ := sliceInfo(got.Data)
	wantType, wantLen, _ := sliceInfo(want.Data)
	if gotType != wantType || gotLen != wantLen {
		return math.Inf(1), math.Inf(1), false
	}
	ok = true
	switch w := want.Data.(type) {
	case []float32:
		maxAbs, maxRel, ok = compareFloats(got.Data.([]float32), w, rtol, atol)
	case []float64:
		maxAbs, maxRel, ok = compareFloats(got.Data.([]float64), w, rtol, atol)
	case []int64:
		maxAbs, maxRel, ok = compareExact(got.Data.([]int64), w)
	case []int32:
		maxAbs, maxRel, ok = compareExact(got.Data.([]int32), w)
	case []int16:
		maxAbs, maxRel, ok = compareExact(got.Data.([]int16), w)
	case []int8:
		maxAbs, maxRel, ok = compareExact(got.Data.([]int8), w)
	case []uint64:
		maxAbs, maxRel, ok = compareExact(got.Data.([]uint64), w)
	case []uint32:
		maxAbs, maxRel, ok = compareExact(got.Data.([]uint32), w)
	case []uint16:
		maxAbs, maxRel, ok = compareExact(got.Data.([]uint16), w)
	case []uint8:
		maxAbs, maxRel, ok = compareExact(got.Data.([]uint8), w)
	case []bool:
		g := got.Data.([]bool)
		for i := range w {
			if g[i] != w[i] {
				maxAbs, maxRel, ok = 1, 1, false
			}
		}
	case []string:
		g := got.Data.([]string)
		for i := range w {
			if g[i] != w[i] {
				maxAbs, maxRel, ok = math.Inf(1), math.Inf(1), false
			}
		}
	default:
		return math.Inf(1), math.Inf(1), false
	}
	return maxAbs, maxRel, ok
}

func compareFloats[T float32 | float64](got, want []T, rtol, atol float64) (maxAbs, maxRel float64, ok bool) {
	ok = true
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsNaN(w) || math.IsInf(g, 0) || math.IsInf(w, 0) {
			if g != w && !(math.IsNaN(g) && math.IsNaN(w)) {
				maxAbs, maxRel, ok = math.Inf(1), math.Inf(1), false
			}
			continue
		}
		d := math.Abs(g - w)
		maxAbs = math.Max(maxAbs, d)
		if w != 0 {
			maxRel = math.Max(maxRel, d/math.Abs(w))
		}
		if d > atol+rtol*math.Abs(w) {
			ok = false
		}
	}
	return maxAbs, maxRel, ok
}

// compareExact compares integers exactly; the differences it reports are
// as close as float64 holds them.
func compareExact[T int64 | int32 | int16 | int8 | uint64 | uint32 | uint16 | uint8](got, want []T) (maxAbs, maxRel float64, ok bool) {
	ok = true
	for i := range want {
		if got[i] == want[i] {
			continue
		}
		ok = false
		g, w := float64(got[i]), float64(want[i])
		d := math.Abs(g - w)
		maxAbs = math.Max(maxAbs, d)
		if w != 0 {
			maxRel = math.Max(maxRel, d/math.Abs(w))
		}
	}
	return maxAbs, maxRel, ok
}

// declaredAs reads a test tensor as the type the graph declares for it. The
// suite's generator stores bfloat16 data, which numpy lacks, as uint16
// tensors holding the bfloat16 bit patterns.
func declaredAs(t *Tensor, declared onnx.TensorProto_DataType) *Tensor {
	bits, ok := t.Data.([]uint16)
	if declared != onnx.TensorProto_BFLOAT16 || t.DType != onnx.TensorProto_UINT16 || !ok {
		return t
	}
	vals := make([]float32, len(bits))
	for i, b := range bits {
		vals[i] = onnx.BFloat16frombits(b)
	}
	return &Tensor{DType: onnx.TensorProto_BFLOAT16, Shape: t.Shape, Data: vals}
}

// modelOps lists the op types in g and its subgraphs, prefixed with the
// domain outside the default one.
func modelOps(g *graph.Graph) []string {
	seen := map[string]bool{}
	g.Walk(func(h *graph.Graph) bool {
		for _, n := range h.Nodes {
			op := n.OpType
			if n.Domain != "" && n.Domain != "ai.onnx" {
				op = n.Domain + ":" + op
			}
			seen[op] = true
		}
		return true
	})
	ops := make([]string, 0, len(seen))
	for op := range seen {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return ops
}

// unsupportedKind names the kind of value in t, or inside its sequences
// and optionals, that the runtime does not compute.
func unsupportedKind(t *onnx.TypeProto) string {
	switch {
	case t.GetSequenceType() != nil:
		return unsupportedKind(t.GetSequenceType().GetElemType())
	case t.GetOptionalType() != nil:
		return unsupportedKind(t.GetOptionalType().GetElemType())
	case t.GetMapType() != nil:
		return "map"
	case t.GetSparseTensorType() != nil:
		return "sparse tensor"
	case t.GetOpaqueType() != nil:
		return "opaque value"
	}
	return "tensor"
}

// DataSets returns the data set folders of a case in the layout of the
// ONNX test suite, dir/test_data_set_N for N = 0, 1, ..., in order.
func DataSets(dir string) ([]string, error) {
	return numbered(dir, "test_data_set_", "")
}

// ReadDataSet reads a data set folder in the layout of the ONNX test
// suite: set/input_K.pb holds the K-th graph input that has no
// initializer, set/output_K.pb the K-th graph output. Each file is read as
// the value its type in inputs or outputs declares: a TensorProto for a
// tensor (or a file beyond the types given), a SequenceProto for a
// sequence, an OptionalProto for an optional. A set may hold fewer files
// than types; the caller says whether that is an error.
func ReadDataSet(set string, inputs, outputs []*onnx.TypeProto) (in, out []*Tensor, err error) {
	if in, err = readValues(set, "input_", inputs); err != nil {
		return nil, nil, err
	}
	if out, err = readValues(set, "output_", outputs); err != nil {
		return nil, nil, err
	}
	return in, out, nil
}

// numbered returns the entries of dir named prefix+N+suffix, ordered by N,
// which must run from 0 without a gap.
func numbered(dir, prefix, suffix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	byNumber := map[int]string{}
	for _, e := range entries {
		digits, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		if digits, ok = strings.CutSuffix(digits, suffix); !ok {
			continue
		}
		if n, err := strconv.Atoi(digits); err == nil && n >= 0 {
			byNumber[n] = filepath.Join(dir, e.Name())
		}
	}
	paths := make([]string, 0, len(byNumber))
	for n := range len(byNumber) {
		path, ok := byNumber[n]
		if !ok {
			return nil, fmt.Errorf("%s: %s%d%s is missing", dir, prefix, n, suffix)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// readValues reads set/prefixK.pb for K = 0, 1, ... as the values types[K]
// declares.
func readValues(set, prefix string, types []*onnx.TypeProto) ([]*Tensor, error) {
	paths, err := numbered(set, prefix, ".pb")
	if err != nil {
		return nil, err
	}
	ts := make([]*Tensor, len(paths))
	for i, p := range paths {
		var tp *onnx.TypeProto
		if i < len(types) {
			tp = types[i]
		}
		if ts[i], err = readValueFile(p, tp); err != nil {
			return nil, err
		}
	}
	return ts, nil
}

// readValueFile reads a serialized value of type tp.
func readValueFile(path string, tp *onnx.TypeProto) (*Tensor, error) {
	kind, _ := kindOf(tp)
	if kind == KindTensor {
		return ReadTensorFile(path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v *Tensor
	if kind == KindSequence {
		sp := &onnx.SequenceProto{}
		if err = proto.Unmarshal(b, sp); err == nil {
			v, err = sequenceFromProto(sp, tp)
		}
	} else {
		op := &onnx.OptionalProto{}
		if err = proto.Unmarshal(b, op); err == nil {
			v, err = optionalFromProto(op, tp)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// sequenceFromProto decodes a sequence of the declared type tp, whose
// element type stands for an empty sequence's.
func sequenceFromProto(sp *onnx.SequenceProto, tp *onnx.TypeProto) (*Tensor, error) {
	inner := tp.GetSequenceType().GetElemType()
	var elems []*Tensor
	switch onnx.SequenceProto_DataType(sp.GetElemType()) {
	case onnx.SequenceProto_TENSOR:
		for _, t := range sp.GetTensorValues() {
			e, err := TensorFromProto(t)
			if err != nil {
				return nil, err
			}
			elems = append(elems, e)
		}
	case onnx.SequenceProto_SEQUENCE:
		for _, s := range sp.GetSequenceValues() {
			e, err := sequenceFromProto(s, inner)
			if err != nil {
				return nil, err
			}
			elems = append(elems, e)
		}
	case onnx.SequenceProto_OPTIONAL:
		for _, o := range sp.GetOptionalValues() {
			e, err := optionalFromProto(o, inner)
			if err != nil {
				return nil, err
			}
			elems = append(elems, e)
		}
	case onnx.SequenceProto_UNDEFINED:
		if len(sp.GetTensorValues())+len(sp.GetSequenceValues())+len(sp.GetOptionalValues()) > 0 {
			return nil, errors.New("a sequence with values has no element type")
		}
	default:
		return nil, fmt.Errorf("sequence of element kind %d: the runtime computes no maps or sparse tensors", sp.GetElemType())
	}
	dt := innerElemType(tp)
	if dt == onnx.TensorProto_UNDEFINED && len(elems) > 0 {
		dt = elems[0].DType
	}
	return NewSequence(dt, elems...), nil
}

// optionalFromProto decodes an optional of the declared type tp.
func optionalFromProto(op *onnx.OptionalProto, tp *onnx.TypeProto) (*Tensor, error) {
	inner := tp.GetOptionalType().GetElemType()
	var v *Tensor
	var err error
	switch onnx.OptionalProto_DataType(op.GetElemType()) {
	case onnx.OptionalProto_UNDEFINED:
	case onnx.OptionalProto_TENSOR:
		if op.TensorValue != nil {
			v, err = TensorFromProto(op.TensorValue)
		}
	case onnx.OptionalProto_SEQUENCE:
		if op.SequenceValue != nil {
			v, err = sequenceFromProto(op.SequenceValue, inner)
		}
	default:
		return nil, fmt.Errorf("optional of element kind %d: the runtime computes no maps, sparse tensors or nested optionals", op.GetElemType())
	}
	if err != nil {
		return nil, err
	}
	return NewOptional(innerElemType(tp), v), nil
}
