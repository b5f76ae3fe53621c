package passes

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"onnxopt/graph"
	"onnxopt/internal/suite"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// corpusTally is what the corpus test gathers for one suite folder.
type corpusTally struct {
	models                      int // cases the runtime compiles
	nodesBefore, nodesAfter     int
	layerBNBefore, layerBNAfter int            // Conv/ConvTranspose/Gemm+BatchNormalization pairs
	changes                     map[string]int // rewrites per pass
	failingBefore               []string       // cases that fail their data before any pass
}

// TestCorpus runs the default pipeline, with graph.Verify after every pass,
// on every conformance case (all four suite folders) whose model the
// runtime compiles, and checks that each case that passes its own test
// data before the passes still passes it after, with the suite's
// tolerances (rtol 1e-3, atol 1e-7). It logs the node counts and the
// Conv+BatchNormalization pairs of each folder before and after, and
// requires that no such pair is left.
func TestCorpus(t *testing.T) {
	suite.Dir(t)
	var mu sync.Mutex
	tallies := map[string]*corpusTally{}
	for _, folder := range suite.Folders {
		tallies[folder] = &corpusTally{changes: map[string]int{}}
		t.Run(folder, func(t *testing.T) {
			for _, dir := range suite.Cases(t, folder) {
				t.Run(filepath.Base(dir), func(t *testing.T) {
					t.Parallel()
					counts, ok := corpusCase(t, dir)
					if !ok {
						return
					}
					mu.Lock()
					defer mu.Unlock()
					tally := tallies[folder]
					tally.models++
					tally.nodesBefore += counts.nodesBefore
					tally.nodesAfter += counts.nodesAfter
					tally.layerBNBefore += counts.layerBNBefore
					tally.layerBNAfter += counts.layerBNAfter
					for name, n := range counts.changes {
						tally.changes[name] += n
					}
					tally.failingBefore = append(tally.failingBefore, counts.failingBefore...)
				})
			}
		})
	}
	for _, folder := range suite.Folders {
		tally := tallies[folder]
		if tally.models == 0 {
			continue
		}
		t.Logf("%s: %d models; nodes %d before, %d after; Conv/ConvTranspose/Gemm+BatchNormalization pairs %d before, %d after; rewrites %s",
			folder, tally.models, tally.nodesBefore, tally.nodesAfter, tally.layerBNBefore, tally.layerBNAfter, formatChanges(tally.changes))
		if len(tally.failingBefore) > 0 {
			slices.Sort(tally.failingBefore)
			t.Logf("%s: %d cases fail their data before any pass, so only the pipeline's verification is checked on them: %s",
				folder, len(tally.failingBefore), strings.Join(tally.failingBefore, " "))
		}
		if tally.layerBNAfter != 0 {
			t.Errorf("%s: %d Conv/ConvTranspose/Gemm+BatchNormalization pairs are left unfolded", folder, tally.layerBNAfter)
		}
		if tally.nodesAfter > tally.nodesBefore {
			t.Errorf("%s: the pipeline grew the models from %d to %d nodes", folder, tally.nodesBefore, tally.nodesAfter)
		}
	}
}

// corpusCase runs the default pipeline on the case in dir and checks the
// result against the case's data. It reports false when the runtime does
// not compile the original model.
func corpusCase(t *testing.T, dir string) (corpusTally, bool) {
	m, err := graph.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Skipf("load: %v", err)
	}
	if _, err := runtime.Compile(m.Graph); err != nil {
		t.Skipf("the runtime does not compile the model: %v", err)
	}
	counts := corpusTally{layerBNBefore: layerBNPairs(m.Graph), changes: map[string]int{}}
	before := runtime.RunModelCase(m, dir)
	reports, err := Run(m, Steps(Default()), nil, Options{})
	if err != nil {
		t.Fatalf("ops %s: %v", strings.Join(before.Ops, " "), err)
	}
	counts.nodesBefore, counts.nodesAfter = reports[0].Before.Nodes, reports[len(reports)-1].After.Nodes
	counts.layerBNAfter = layerBNPairs(m.Graph)
	for _, r := range reports {
		counts.changes[r.Name] += r.Changes
	}
	if before.Status != runtime.StatusPass {
		counts.failingBefore = []string{before.Name}
		return counts, true
	}
	after := runtime.RunModelCase(m, dir)
	if after.Status != runtime.StatusPass {
		var changed []string
		for _, r := range reports {
			if r.Changes > 0 {
				changed = append(changed, fmt.Sprintf("%s (%d)", r.Name, r.Changes))
			}
		}
		t.Errorf("%s after the passes %s (ops %s before, %s after): %s",
			after.Status, strings.Join(changed, ", "), strings.Join(before.Ops, " "), strings.Join(after.Ops, " "), after.Err)
	}
	return counts, true
}

// layerBNPairs counts the BatchNormalization nodes in g and its subgraphs
// reading the output of a Conv, ConvTranspose or Gemm that nothing else
// reads.
func layerBNPairs(g *graph.Graph) int {
	pairs := 0
	g.Walk(func(h *graph.Graph) bool {
		for _, n := range h.Nodes {
			if n.OpType != "BatchNormalization" || len(n.Inputs) == 0 || n.Inputs[0] == nil {
				continue
			}
			x := n.Inputs[0]
			if x.Producer != nil && slices.Contains([]string{"Conv", "ConvTranspose", "Gemm"}, x.Producer.OpType) && len(x.Uses) == 1 && !x.Graph.IsOutput(x) {
				pairs++
			}
		}
		return true
	})
	return pairs
}

func formatChanges(changes map[string]int) string {
	var parts []string
	for _, p := range Table() {
		if n := changes[p.Name]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", p.Name, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// TestCorpusBatchNormBehindLayer checks the folds against PyTorch's
// numbers. The suite has no Conv+BatchNormalization pair, so each of
// pytorch-converted's BatchNorm*_eval cases gets a layer in front of its
// BatchNormalization that passes X through exactly (a depthwise Conv or
// ConvTranspose of ones, size 1); the default pipeline must fold the pair
// and the result pass the case's data with the suite's tolerances.
func TestCorpusBatchNormBehindLayer(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join(suite.Dir(t), "pytorch-converted", "test_BatchNorm*_eval"))
	if err != nil || len(cases) == 0 {
		t.Fatalf("no BatchNorm*_eval cases: %v", err)
	}
	for _, dir := range cases {
		for _, layer := range []string{"Conv", "ConvTranspose"} {
			t.Run(filepath.Base(dir)+"/"+layer, func(t *testing.T) {
				m, err := graph.Load(filepath.Join(dir, "model.onnx"))
				if err != nil {
					t.Fatal(err)
				}
				if err := passThroughLayer(m.Graph, layer); err != nil {
					t.Fatal(err)
				}
				if got := layerBNPairs(m.Graph); got != 1 {
					t.Fatalf("%d pairs before the passes, want 1", got)
				}
				if res := runtime.RunModelCase(m, dir); res.Status != runtime.StatusPass {
					t.Fatalf("with the pass-through %s, before the passes: %s: %s", layer, res.Status, res.Err)
				}
				if _, err := Run(m, Steps(Default()), nil, Options{}); err != nil {
					t.Fatal(err)
				}
				if got := opTypes(m.Graph); got != layer {
					t.Errorf("nodes %q after the passes, want %s", got, layer)
				}
				if res := runtime.RunModelCase(m, dir); res.Status != runtime.StatusPass {
					t.Errorf("after the passes: %s: %s", res.Status, res.Err)
				} else {
					t.Logf("max abs err %.3g, max rel err %.3g", res.MaxAbsErr, res.MaxRelErr)
				}
			})
		}
	}
}

// passThroughLayer puts a Conv or ConvTranspose that computes its input
// exactly (one weight of 1 per channel, group = channels) in front of the
// graph's one BatchNormalization.
func passThroughLayer(g *graph.Graph, op string) error {
	i := slices.IndexFunc(g.Nodes, func(n *graph.Node) bool { return n.OpType == "BatchNormalization" })
	if i < 0 {
		return fmt.Errorf("no BatchNormalization in %s", opTypes(g))
	}
	bn := g.Nodes[i]
	shape, ok := bn.Inputs[0].Shape()
	dims, static := shape.Static()
	if !ok || !static || len(dims) < 3 {
		return fmt.Errorf("BatchNormalization input has shape %v", shape)
	}
	wDims := slices.Repeat([]int64{1}, len(dims))
	wDims[0] = dims[1]
	ones := slices.Repeat([]float32{1}, int(dims[1]))
	t, err := onnx.NewTensor("pass_through_W", onnx.TensorProto_FLOAT, wDims, ones)
	if err != nil {
		return err
	}
	y := g.NewValue("pass_through")
	_, err = g.NewNode(op, "pass_through", []*graph.Value{bn.Inputs[0], g.AddInitializer(t)}, []*graph.Value{y}, intAttr("group", dims[1]))
	if err != nil {
		return err
	}
	bn.SetInput(0, y)
	return g.Sort()
}

// TestDigitsAccuracy runs the default pipeline on the digits MLP and CNN
// and checks that their argmax accuracy on the 397 test samples still
// equals PyTorch's fp32 accuracy in torch_anchors.json exactly.
func TestDigitsAccuracy(t *testing.T) {
	dir := filepath.Join(suite.RepoRoot(), "testdata", "models")
	for _, tc := range []struct{ folder, anchor string }{{"digits_mlp", "mlp"}, {"digits_cnn", "cnn"}} {
		t.Run(tc.folder, func(t *testing.T) {
			fp32Acc := suite.TorchAnchor(t, dir, tc.anchor, "fp32_acc")
			modelDir := filepath.Join(dir, tc.folder)
			m, err := graph.Load(filepath.Join(modelDir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			x, err := runtime.ReadTensorFile(filepath.Join(modelDir, "test_data_set_0", "input_0.pb"))
			if err != nil {
				t.Fatal(err)
			}
			labels, err := runtime.ReadTensorFile(filepath.Join(modelDir, "labels.pb"))
			if err != nil {
				t.Fatal(err)
			}
			reports, err := Run(m, Steps(Default()), nil, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Graph.Inputs) != 1 || len(m.Graph.Outputs) != 1 {
				t.Fatalf("model has %d inputs and %d outputs, want 1 and 1", len(m.Graph.Inputs), len(m.Graph.Outputs))
			}
			out := run(t, m, map[string]*runtime.Tensor{m.Graph.Inputs[0].Name: x})[m.Graph.Outputs[0].Name]
			acc, err := argmaxAccuracy(out, labels)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("nodes %d before, %d after; accuracy %v", reports[0].Before.Nodes, reports[len(reports)-1].After.Nodes, acc)
			if acc != fp32Acc {
				t.Errorf("accuracy %v after the default pipeline, want torch's %v", acc, fp32Acc)
			}
		})
	}
}

// argmaxAccuracy is suite.ArgmaxAccuracy of runtime tensors: the share of
// rows of logits [N, C] whose largest entry (the first, on ties) is at the
// int64 label.
func argmaxAccuracy(logits, labels *runtime.Tensor) (float64, error) {
	l, ok := logits.Data.([]float32)
	y, ok2 := labels.Data.([]int64)
	if !ok || !ok2 {
		return 0, fmt.Errorf("logits %s and labels %s do not match", logits, labels)
	}
	return suite.ArgmaxAccuracy(l, logits.Shape, y)
}
