package testmodels_test

import (
	"math"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/internal/testmodels"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

var small = testmodels.GPTConfig{Layers: 2, DModel: 128, Vocab: 50, Seed: 7}

// TestGPTIsValid checks a small GPT with the IR's verifier and shape
// inference, runs it, and checks the parameter count.
func TestGPTIsValid(t *testing.T) {
	m, err := testmodels.GPT(small)
	if err != nil {
		t.Fatal(err)
	}
	var params int64
	for _, init := range m.Graph.Initializer {
		if onnx.DataType(init.GetDataType()) != onnx.TensorProto_FLOAT || len(init.Dims) == 0 {
			continue // the attention's shape and scale constants
		}
		if err := onnx.ValidateTensor(init); err != nil {
			t.Fatal(err)
		}
		n, _ := onnx.NumElements(init.Dims)
		params += n
	}
	if params != small.Params() {
		t.Errorf("initializers hold %d weights, Params says %d", params, small.Params())
	}

	model, err := graph.FromProto(proto.Clone(m).(*onnx.ModelProto))
	if err != nil {
		t.Fatal(err)
	}
	if err := model.Verify(); err != nil {
		t.Fatal(err)
	}
	if err := model.Graph.InferShapes(); err != nil {
		t.Fatal(err)
	}
	plan, err := runtime.Compile(model.Graph)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := runtime.FromSlice([]int64{3, 1, 4, 1, 5, 9, 2, 6}, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	out, err := plan.Run(map[string]*runtime.Tensor{"input_ids": ids})
	if err != nil {
		t.Fatal(err)
	}
	logits := out["logits"]
	if logits == nil || !reflect.DeepEqual(logits.Shape, []int{2, 4, small.Vocab}) {
		t.Fatalf("logits %v, want shape [2 4 %d]", logits, small.Vocab)
	}
	// Equal tokens at the same position of another sequence see different
	// contexts, so only finiteness and spread are checked here.
	var sum, sq float64
	for _, x := range logits.Data.([]float32) {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			t.Fatalf("logit %v", x)
		}
		sum += float64(x)
		sq += float64(x) * float64(x)
	}
	n := float64(logits.Len())
	if std := math.Sqrt(sq/n - (sum/n)*(sum/n)); std == 0 {
		t.Error("all logits equal")
	}
}

// TestGPTDeterministic checks that the seed alone decides the weights.
func TestGPTDeterministic(t *testing.T) {
	a, _ := testmodels.GPT(small)
	b, _ := testmodels.GPT(small)
	if !proto.Equal(a, b) {
		t.Error("same seed, different models")
	}
	other := small
	other.Seed++
	c, _ := testmodels.GPT(other)
	if proto.Equal(a, c) {
		t.Error("different seeds, same models")
	}
	if _, err := testmodels.GPT(testmodels.GPTConfig{Layers: 1, DModel: 0, Vocab: 10}); err == nil {
		t.Error("zero width accepted")
	}
	if got := testmodels.GPT400MB().Params() * 4; got < 380e6 || got > 420e6 {
		t.Errorf("GPT400MB holds %d bytes of weights", got)
	}
}

// TestWriteGPT writes a small model and reads it back.
func TestWriteGPT(t *testing.T) {
	path, size, err := testmodels.WriteGPT(t.TempDir(), small)
	if err != nil {
		t.Fatal(err)
	}
	if size < small.Params()*4 {
		t.Errorf("file of %d bytes for %d weights", size, small.Params())
	}
	m, err := onnx.ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := testmodels.GPT(small)
	if !proto.Equal(m, want) {
		t.Error("model read back differs")
	}
}
