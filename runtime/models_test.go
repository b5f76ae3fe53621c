package runtime

import (
	"path/filepath"
	"testing"

	"onnxopt/graph"
	"onnxopt/internal/suite"
)

// modelsATol is the absolute tolerance against the logits PyTorch's ONNX
// export recorded for the digits models. The logits are O(10), so 1e-4
// allows float32 summation-order differences and nothing more.
const modelsATol = 1e-4

// TestSharedModels runs the digits MLP and CNN on their 397 test samples
// and checks the logits against output_0.pb within modelsATol, the argmax
// accuracy against the labels (it must equal torch's fp32 accuracy in
// torch_anchors.json exactly), and that a second run of the same plan
// gives identical outputs.
func TestSharedModels(t *testing.T) {
	dir := suite.SharedModels(t)
	for _, m := range []struct{ folder, anchor string }{{"digits_mlp", "mlp"}, {"digits_cnn", "cnn"}} {
		t.Run(m.folder, func(t *testing.T) {
			fp32Acc := suite.TorchAnchor(t, dir, m.anchor, "fp32_acc")
			modelDir := filepath.Join(dir, m.folder)
			model, err := graph.Load(filepath.Join(modelDir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			plan, err := Compile(model.Graph)
			if err != nil {
				t.Fatal(err)
			}
			x, err := ReadTensorFile(filepath.Join(modelDir, "test_data_set_0", "input_0.pb"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := ReadTensorFile(filepath.Join(modelDir, "test_data_set_0", "output_0.pb"))
			if err != nil {
				t.Fatal(err)
			}
			labels, err := ReadTensorFile(filepath.Join(modelDir, "labels.pb"))
			if err != nil {
				t.Fatal(err)
			}
			inputs := plan.Inputs()
			if len(inputs) != 1 || len(model.Graph.Outputs) != 1 {
				t.Fatalf("model has %d inputs and %d outputs, want 1 and 1", len(inputs), len(model.Graph.Outputs))
			}
			feeds := map[string]*Tensor{inputs[0].Name: x}
			outName := model.Graph.Outputs[0].Name

			first, err := plan.Run(feeds)
			if err != nil {
				t.Fatal(err)
			}
			got := first[outName]
			maxAbs, _, ok := Compare(got, want, 0, modelsATol)
			if !ok {
				t.Errorf("logits %s differ from output_0.pb %s: max abs err %g > %g", got, want, maxAbs, modelsATol)
			}
			t.Logf("max abs err vs torch logits: %g", maxAbs)

			acc, err := suite.ArgmaxAccuracy(got.Data.([]float32), got.Shape, labels.Data.([]int64))
			if err != nil {
				t.Fatal(err)
			}
			if acc != fp32Acc {
				t.Errorf("accuracy %v, want torch's %v", acc, fp32Acc)
			}

			second, err := plan.Run(feeds)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, same := Compare(second[outName], got, 0, 0); !same {
				t.Errorf("a second run of the plan gives different logits")
			}
		})
	}
}
