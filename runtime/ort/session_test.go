//go:build cgo

package ort

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"onnxopt/internal/suite"
	"onnxopt/onnx"
)

// needLibrary skips the test when the ONNX Runtime library is not
// installed, except under CI, where it fails.
func needLibrary(t testing.TB) {
	t.Helper()
	if _, err := LibraryPath(); err != nil {
		suite.Missing(t, "ONNX Runtime library: "+err.Error())
	}
}

// runSuiteCase runs one ONNX conformance case (a folder with model.onnx and
// test_data_set_N folders) and compares every output with the expected one.
func runSuiteCase(dir string) error {
	s, err := Open(filepath.Join(dir, "model.onnx"), Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	sets, err := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
	if err != nil {
		return err
	}
	if len(sets) == 0 {
		return fmt.Errorf("%s: no test_data_set_N folder", dir)
	}
	for _, set := range sets {
		inputs, err := readSuiteTensors(set, "input", s.Inputs())
		if err != nil {
			return err
		}
		want, err := readSuiteTensors(set, "output", s.Outputs())
		if err != nil {
			return err
		}
		got, err := s.Run(inputs)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(set), err)
		}
		for name, w := range want {
			if err := compareTensors(got[name], w, suiteRTol, suiteATol); err != nil {
				return fmt.Errorf("%s: output %q: %w", filepath.Base(set), name, err)
			}
		}
	}
	return nil
}

// readSuiteTensors reads prefix_K.pb files of a test data set, naming each
// by the name stored in it or else by the K-th entry of infos.
func readSuiteTensors(set, prefix string, infos []IOInfo) (map[string]*Tensor, error) {
	out := make(map[string]*Tensor)
	for k := 0; ; k++ {
		path := filepath.Join(set, fmt.Sprintf("%s_%d.pb", prefix, k))
		if _, err := os.Stat(path); os.IsNotExist(err) {
			return out, nil
		}
		p, err := readTensorProto(path)
		if err != nil {
			return nil, err
		}
		tensor, err := FromProto(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		name := p.GetName()
		if name == "" || !containsName(infos, name) {
			if k >= len(infos) {
				return nil, fmt.Errorf("%s: the model has only %d %ss", path, len(infos), prefix)
			}
			name = infos[k].Name
		}
		out[name] = tensor
	}
}

// knownFailure is a conformance case that does not pass through ONNX
// Runtime 1.30 and this package, with text its error must contain (any one
// of them) and the reason.
type knownFailure struct {
	errorHas []string
	reason   string
}

func suiteKnownFailures() map[string]knownFailure {
	// ONNX Runtime registers CPU kernels only from opset 7 on for these
	// operators (the versions with the legacy broadcast attribute are gone).
	legacy := func(op string) knownFailure {
		return knownFailure{
			errorHas: []string{"Could not find an implementation for " + op},
			reason:   "opset-6 model: ONNX Runtime has no kernel for " + op,
		}
	}
	training := knownFailure{
		errorHas: []string{"ai.onnx.preview.training:Gradient"},
		reason:   "Gradient is a training operator; ONNX Runtime's inference build does not register it",
	}
	stringTensors := knownFailure{
		errorHas: []string{"STRING is not supported"},
		reason:   "string tensors: Tensor holds numbers and booleans only",
	}
	// If the locale were installed these would fail like stringTensors.
	stringNormalizer := knownFailure{
		errorHas: []string{"en_US.UTF-8", "STRING is not supported"},
		reason:   "StringNormalizer needs the en_US.UTF-8 locale, missing on this machine; string tensors are unsupported anyway",
	}
	return map[string]knownFailure{
		"simple/test_gradient_of_add":                                  training,
		"simple/test_gradient_of_add_and_mul":                          training,
		"simple/test_strnorm_model_monday_casesensintive_lower":        stringNormalizer,
		"simple/test_strnorm_model_monday_casesensintive_nochangecase": stringTensors,
		"simple/test_strnorm_model_monday_casesensintive_upper":        stringNormalizer,
		"simple/test_strnorm_model_monday_empty_output":                stringNormalizer,
		"simple/test_strnorm_model_monday_insensintive_upper_twodim":   stringNormalizer,
		"simple/test_strnorm_model_nostopwords_nochangecase":           stringTensors,
		"pytorch-converted/test_AvgPool1d":                             legacy("AveragePool(1)"),
		"pytorch-converted/test_AvgPool1d_stride":                      legacy("AveragePool(1)"),
		"pytorch-converted/test_AvgPool2d":                             legacy("AveragePool(1)"),
		"pytorch-converted/test_AvgPool2d_stride":                      legacy("AveragePool(1)"),
		"pytorch-converted/test_AvgPool3d":                             legacy("AveragePool(1)"),
		"pytorch-converted/test_AvgPool3d_stride":                      legacy("AveragePool(1)"),
		"pytorch-converted/test_AvgPool3d_stride1_pad0_gpu_input":      legacy("AveragePool(1)"),
		"pytorch-converted/test_BatchNorm1d_3d_input_eval":             legacy("BatchNormalization(6)"),
		"pytorch-converted/test_BatchNorm2d_eval":                      legacy("BatchNormalization(6)"),
		"pytorch-converted/test_BatchNorm2d_momentum_eval":             legacy("BatchNormalization(6)"),
		"pytorch-converted/test_BatchNorm3d_eval":                      legacy("BatchNormalization(6)"),
		"pytorch-converted/test_BatchNorm3d_momentum_eval":             legacy("BatchNormalization(6)"),
		"pytorch-converted/test_GLU":                                   legacy("Mul(6)"),
		"pytorch-converted/test_GLU_dim":                               legacy("Mul(6)"),
		"pytorch-converted/test_Linear":                                legacy("Gemm(6)"),
		"pytorch-converted/test_PReLU_1d":                              legacy("PRelu(6)"),
		"pytorch-converted/test_PReLU_1d_multiparam":                   legacy("PRelu(6)"),
		"pytorch-converted/test_PReLU_2d":                              legacy("PRelu(6)"),
		"pytorch-converted/test_PReLU_2d_multiparam":                   legacy("PRelu(6)"),
		"pytorch-converted/test_PReLU_3d":                              legacy("PRelu(6)"),
		"pytorch-converted/test_PReLU_3d_multiparam":                   legacy("PRelu(6)"),
		"pytorch-converted/test_PoissonNLLLLoss_no_reduce":             legacy("Mul(6)"),
		"pytorch-converted/test_Softsign":                              legacy("Add(6)"),
		"pytorch-operator/test_operator_add_broadcast":                 legacy("Add(6)"),
		"pytorch-operator/test_operator_add_size1_broadcast":           legacy("Add(6)"),
		"pytorch-operator/test_operator_add_size1_right_broadcast":     legacy("Add(6)"),
		"pytorch-operator/test_operator_add_size1_singleton_broadcast": legacy("Add(6)"),
		"pytorch-operator/test_operator_addconstant":                   legacy("Add(6)"),
		"pytorch-operator/test_operator_addmm":                         legacy("Gemm(6)"),
		"pytorch-operator/test_operator_basic":                         legacy("Add(6)"),
		"pytorch-operator/test_operator_mm":                            legacy("Gemm(6)"),
		"pytorch-operator/test_operator_non_float_params":              legacy("Add(6)"),
		"pytorch-operator/test_operator_params":                        legacy("Add(6)"),
		"pytorch-operator/test_operator_pow":                           legacy("Pow(1)"),
	}
}

// TestONNXSuite runs the simple, pytorch-converted and pytorch-operator
// groups of the ONNX conformance suite through ONNX Runtime, comparing with
// the expected outputs within rtol 1e-3, atol 1e-7. Every case must pass
// except the known failures, which must fail for their stated reason.
func TestONNXSuite(t *testing.T) {
	needLibrary(t)
	root := suite.Dir(t)
	known := suiteKnownFailures()
	seen := make(map[string]bool)
	for _, group := range []string{"simple", "pytorch-converted", "pytorch-operator"} {
		dirs, err := filepath.Glob(filepath.Join(root, group, "test_*"))
		if err != nil {
			t.Fatal(err)
		}
		if len(dirs) == 0 {
			t.Fatalf("%s: no cases in %s", group, filepath.Join(root, group))
		}
		sort.Strings(dirs)
		passed := 0
		for _, dir := range dirs {
			name := group + "/" + filepath.Base(dir)
			seen[name] = true
			err := runSuiteCase(dir)
			failure, isKnown := known[name]
			switch {
			case err == nil && isKnown:
				t.Errorf("%s passes now; remove it from the known failures (%s)", name, failure.reason)
			case err == nil:
				passed++
			case !isKnown:
				t.Errorf("%s: %v", name, err)
			case !containsAny(err.Error(), failure.errorHas):
				t.Errorf("%s: known failure (%s) fails differently: %v", name, failure.reason, err)
			}
		}
		t.Logf("%s: %d of %d cases pass", group, passed, len(dirs))
	}
	for name := range known {
		if !seen[name] {
			t.Errorf("known failure %s is not in the suite", name)
		}
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

type digitsCase struct {
	dir, anchorKey string
}

var digitsCases = []digitsCase{{"digits_mlp", "mlp"}, {"digits_cnn", "cnn"}}

// TestDigitsModels runs the exported digits models on their 397 test
// samples and compares the logits with PyTorch's within atol 1e-4, then
// checks that the argmax accuracy equals PyTorch's fp32 accuracy exactly.
func TestDigitsModels(t *testing.T) {
	const atol = 1e-4
	needLibrary(t)
	models := suite.SharedModels(t)
	for _, c := range digitsCases {
		t.Run(c.dir, func(t *testing.T) {
			dir := filepath.Join(models, c.dir)
			s, err := Open(filepath.Join(dir, "model.onnx"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			input, want, labels := readDigitsData(t, dir)
			got, err := s.Run(map[string]*Tensor{s.Inputs()[0].Name: input})
			if err != nil {
				t.Fatal(err)
			}
			logits := got[s.Outputs()[0].Name]
			if err := compareTensors(logits, want, 0, atol); err != nil {
				t.Fatalf("logits against PyTorch: %v", err)
			}
			correct := 0
			classes := int(logits.Shape[1])
			predictions := logits.Data.([]float32)
			for i, label := range labels.Data.([]int64) {
				if argmax(predictions[i*classes:(i+1)*classes]) == int(label) {
					correct++
				}
			}
			accuracy := float64(correct) / float64(len(labels.Data.([]int64)))
			fp32Acc := suite.TorchAnchor(t, models, c.anchorKey, "fp32_acc")
			if accuracy != fp32Acc {
				t.Errorf("accuracy %v (%d correct), PyTorch fp32 accuracy %v", accuracy, correct, fp32Acc)
			}
			t.Logf("accuracy %d/%d = %v", correct, len(labels.Data.([]int64)), accuracy)
		})
	}
}

// readDigitsData reads a digits model's test input, PyTorch's logits for
// it and the true labels.
func readDigitsData(t testing.TB, dir string) (input, logits, labels *Tensor) {
	t.Helper()
	var err error
	if input, err = readTensor(filepath.Join(dir, "test_data_set_0", "input_0.pb")); err != nil {
		t.Fatal(err)
	}
	if logits, err = readTensor(filepath.Join(dir, "test_data_set_0", "output_0.pb")); err != nil {
		t.Fatal(err)
	}
	if labels, err = readTensor(filepath.Join(dir, "labels.pb")); err != nil {
		t.Fatal(err)
	}
	if labels.DType != int32(onnx.TensorProto_INT64) {
		t.Fatalf("labels are %s, want INT64", dataTypeName(labels.DType))
	}
	return input, logits, labels
}

func argmax(values []float32) int {
	best := 0
	for i, v := range values {
		if v > values[best] {
			best = i
		}
	}
	return best
}

// TestRepeatedRuns checks that runs on one session, one after another and
// concurrently, give bit-identical outputs and leave the input untouched.
func TestRepeatedRuns(t *testing.T) {
	needLibrary(t)
	dir := filepath.Join(suite.SharedModels(t), "digits_cnn")
	s, err := Open(filepath.Join(dir, "model.onnx"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	input, _, _ := readDigitsData(t, dir)
	inputCopy := append([]float32{}, input.Data.([]float32)...)
	inputs := map[string]*Tensor{"input": input}
	first, err := s.Run(inputs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		again, err := s.Run(inputs)
		if err != nil {
			t.Fatal(err)
		}
		if err := compareTensors(again["logits"], first["logits"], 0, 0); err != nil {
			t.Fatalf("run %d differs from the first: %v", i+2, err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			out, err := s.Run(inputs)
			if err == nil {
				err = compareTensors(out["logits"], first["logits"], 0, 0)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent run %d: %v", i, err)
		}
	}
	if err := compareExact(input.Data.([]float32), inputCopy); err != nil {
		t.Errorf("Run changed its input: %v", err)
	}
}

// TestDataTypes passes a tensor of every supported data type, of rank 2,
// rank 0, with a dynamic dimension and with no declared shape, through an
// Identity model.
func TestDataTypes(t *testing.T) {
	needLibrary(t)
	values := []*Tensor{
		{DType: int32(onnx.TensorProto_FLOAT), Data: []float32{1.5, -2, float32(math.Inf(1)), 0, 3e-39, 7}},
		{DType: int32(onnx.TensorProto_DOUBLE), Data: []float64{1.5, -2, math.Inf(-1), 0, 5e-324, 7}},
		{DType: int32(onnx.TensorProto_INT8), Data: []int8{-128, 127, 0, 1, -1, 5}},
		{DType: int32(onnx.TensorProto_INT16), Data: []int16{-32768, 32767, 0, 1, -1, 5}},
		{DType: int32(onnx.TensorProto_INT32), Data: []int32{math.MinInt32, math.MaxInt32, 0, 1, -1, 5}},
		{DType: int32(onnx.TensorProto_INT64), Data: []int64{math.MinInt64, math.MaxInt64, 0, 1, -1, 5}},
		{DType: int32(onnx.TensorProto_UINT8), Data: []uint8{0, 255, 1, 2, 3, 4}},
		{DType: int32(onnx.TensorProto_UINT16), Data: []uint16{0, 65535, 1, 2, 3, 4}},
		{DType: int32(onnx.TensorProto_UINT32), Data: []uint32{0, math.MaxUint32, 1, 2, 3, 4}},
		{DType: int32(onnx.TensorProto_UINT64), Data: []uint64{0, math.MaxUint64, 1, 2, 3, 4}},
		{DType: int32(onnx.TensorProto_BOOL), Data: []bool{true, false, false, true, true, false}},
	}
	for _, v := range values {
		matrix := &Tensor{DType: v.DType, Shape: []int64{2, 3}, Data: v.Data}
		scalar := &Tensor{DType: v.DType, Shape: []int64{}, Data: reflect.ValueOf(v.Data).Slice(1, 2).Interface()}
		for _, c := range []struct {
			declared []int64
			input    *Tensor
		}{
			{[]int64{2, 3}, matrix},
			{[]int64{-1, 3}, matrix},
			{[]int64{}, scalar},
			{nil, matrix},
			{nil, scalar},
		} {
			name := fmt.Sprintf("%s/declared%v/input%v", dataTypeName(v.DType), c.declared, c.input.Shape)
			t.Run(name, func(t *testing.T) {
				s, err := OpenBytes(identityModel(t, v.DType, c.declared), Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				wantInfo := []IOInfo{{Name: "x", DType: v.DType, Shape: append([]int64{}, c.declared...)}}
				if in := s.Inputs(); !reflect.DeepEqual(in, wantInfo) {
					t.Errorf("Inputs() = %+v, want %+v", in, wantInfo)
				}
				out, err := s.Run(map[string]*Tensor{"x": c.input})
				if err != nil {
					t.Fatal(err)
				}
				if err := compareTensors(out["y"], c.input, 0, 0); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

// TestRunRejectsBadInputs checks that malformed inputs are reported as
// errors naming the input, before they reach ONNX Runtime.
func TestRunRejectsBadInputs(t *testing.T) {
	needLibrary(t)
	s, err := OpenBytes(identityModel(t, int32(onnx.TensorProto_FLOAT), []int64{-1, 3}), Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	good := &Tensor{DType: int32(onnx.TensorProto_FLOAT), Shape: []int64{1, 3}, Data: []float32{1, 2, 3}}
	for _, c := range []struct {
		name   string
		inputs map[string]*Tensor
		errHas string
	}{
		{"missing", map[string]*Tensor{}, `missing input "x"`},
		{"unknown", map[string]*Tensor{"x": good, "z": good}, `unknown input "z"`},
		{"nil", map[string]*Tensor{"x": nil}, "nil tensor"},
		{"data type", map[string]*Tensor{"x": {DType: int32(onnx.TensorProto_DOUBLE), Shape: []int64{1, 3}, Data: []float64{1, 2, 3}}}, "model wants FLOAT"},
		{"data does not match type", map[string]*Tensor{"x": {DType: int32(onnx.TensorProto_FLOAT), Shape: []int64{1, 3}, Data: []int32{1, 2, 3}}}, "does not hold FLOAT"},
		{"length", map[string]*Tensor{"x": {DType: int32(onnx.TensorProto_FLOAT), Shape: []int64{2, 3}, Data: []float32{1, 2, 3}}}, "needs 6 elements"},
		{"negative dimension", map[string]*Tensor{"x": {DType: int32(onnx.TensorProto_FLOAT), Shape: []int64{-1, 3}, Data: []float32{1, 2, 3}}}, "negative"},
		{"unsupported data", map[string]*Tensor{"x": {DType: int32(onnx.TensorProto_FLOAT), Shape: []int64{1}, Data: []string{"a"}}}, "unsupported data"},
		{"wrong rank for ONNX Runtime", map[string]*Tensor{"x": {DType: int32(onnx.TensorProto_FLOAT), Shape: []int64{3}, Data: []float32{1, 2, 3}}}, "rank"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Run(c.inputs)
			if err == nil || !strings.Contains(err.Error(), c.errHas) {
				t.Errorf("error %v, want one containing %q", err, c.errHas)
			}
		})
	}
	if _, err := s.Run(map[string]*Tensor{"x": good}); err != nil {
		t.Errorf("good input after bad ones: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Run(map[string]*Tensor{"x": good}); err == nil {
		t.Error("Run on a closed session succeeded")
	}
}

func TestOpenErrors(t *testing.T) {
	needLibrary(t)
	if _, err := Open(filepath.Join(t.TempDir(), "missing.onnx"), Options{}); err == nil {
		t.Error("Open of a missing file succeeded")
	}
	if _, err := OpenBytes([]byte("not a model"), Options{}); err == nil {
		t.Error("OpenBytes of garbage succeeded")
	}
	if _, err := OpenBytes(nil, Options{}); err == nil {
		t.Error("OpenBytes of nothing succeeded")
	}
	if _, err := OpenBytes(identityModel(t, int32(onnx.TensorProto_FLOAT), nil), Options{Threads: -1}); err == nil {
		t.Error("negative Threads accepted")
	}
}

// BenchmarkORTDigitsCNN runs the digits CNN on its 397 test samples in one
// batch with one thread.
func BenchmarkORTDigitsCNN(b *testing.B) {
	needLibrary(b)
	dir := filepath.Join(suite.SharedModels(b), "digits_cnn")
	s, err := Open(filepath.Join(dir, "model.onnx"), Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	input, _, _ := readDigitsData(b, dir)
	benchmarkRun(b, s, map[string]*Tensor{"input": input})
}

// BenchmarkORTResNet18 runs ResNet-18 on one random 3x224x224 image with
// one thread.
func BenchmarkORTResNet18(b *testing.B) {
	needLibrary(b)
	path := filepath.Join(suite.SharedModels(b), "perf", "resnet18.onnx")
	s, err := Open(path, Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	random := rand.New(rand.NewPCG(1, 2))
	image := make([]float32, 3*224*224)
	for i := range image {
		image[i] = float32(random.NormFloat64())
	}
	benchmarkRun(b, s, map[string]*Tensor{
		s.Inputs()[0].Name: {DType: int32(onnx.TensorProto_FLOAT), Shape: []int64{1, 3, 224, 224}, Data: image},
	})
}

func benchmarkRun(b *testing.B, s *Session, inputs map[string]*Tensor) {
	if _, err := s.Run(inputs); err != nil { // warm up
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Run(inputs); err != nil {
			b.Fatal(err)
		}
	}
}
