package runtime

import (
	"math"
	"testing"

	"onnxopt/onnx"
)

// TestLossSuiteCases runs every conformance case of
// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (rtol 1e-3,
// atol 1e-7). The _expanded cases are the operators' function bodies; the
// SoftmaxCrossEntropyLoss ones call NegativeLogLikelihoodLoss.
func TestLossSuiteCases(t *testing.T) {
	checkSuiteCases(t, []string{"node/test_nllloss", "node/test_sce"}, []suiteCase{
		{path: "node/test_nllloss_NC"},
		{path: "node/test_nllloss_NC_expanded"},
		{path: "node/test_nllloss_NCd1"},
		{path: "node/test_nllloss_NCd1_expanded"},
		{path: "node/test_nllloss_NCd1_ii"},
		{path: "node/test_nllloss_NCd1_ii_expanded"},
		{path: "node/test_nllloss_NCd1_mean_weight_negative_ii"},
		{path: "node/test_nllloss_NCd1_mean_weight_negative_ii_expanded"},
		{path: "node/test_nllloss_NCd1_weight"},
		{path: "node/test_nllloss_NCd1_weight_expanded"},
		{path: "node/test_nllloss_NCd1_weight_ii"},
		{path: "node/test_nllloss_NCd1_weight_ii_expanded"},
		{path: "node/test_nllloss_NCd1d2"},
		{path: "node/test_nllloss_NCd1d2_expanded"},
		{path: "node/test_nllloss_NCd1d2_no_weight_reduction_mean_ii"},
		{path: "node/test_nllloss_NCd1d2_no_weight_reduction_mean_ii_expanded"},
		{path: "node/test_nllloss_NCd1d2_reduction_mean"},
		{path: "node/test_nllloss_NCd1d2_reduction_mean_expanded"},
		{path: "node/test_nllloss_NCd1d2_reduction_sum"},
		{path: "node/test_nllloss_NCd1d2_reduction_sum_expanded"},
		{path: "node/test_nllloss_NCd1d2_with_weight"},
		{path: "node/test_nllloss_NCd1d2_with_weight_expanded"},
		{path: "node/test_nllloss_NCd1d2_with_weight_reduction_mean"},
		{path: "node/test_nllloss_NCd1d2_with_weight_reduction_mean_expanded"},
		{path: "node/test_nllloss_NCd1d2_with_weight_reduction_sum"},
		{path: "node/test_nllloss_NCd1d2_with_weight_reduction_sum_expanded"},
		{path: "node/test_nllloss_NCd1d2_with_weight_reduction_sum_ii"},
		{path: "node/test_nllloss_NCd1d2_with_weight_reduction_sum_ii_expanded"},
		{path: "node/test_nllloss_NCd1d2d3_none_no_weight_negative_ii"},
		{path: "node/test_nllloss_NCd1d2d3_none_no_weight_negative_ii_expanded"},
		{path: "node/test_nllloss_NCd1d2d3_sum_weight_high_ii"},
		{path: "node/test_nllloss_NCd1d2d3_sum_weight_high_ii_expanded"},
		{path: "node/test_nllloss_NCd1d2d3d4d5_mean_weight"},
		{path: "node/test_nllloss_NCd1d2d3d4d5_mean_weight_expanded"},
		{path: "node/test_nllloss_NCd1d2d3d4d5_none_no_weight"},
		{path: "node/test_nllloss_NCd1d2d3d4d5_none_no_weight_expanded"},
		{path: "node/test_sce_NCd1_mean_weight_negative_ii"},
		{path: "node/test_sce_NCd1_mean_weight_negative_ii_expanded"},
		{path: "node/test_sce_NCd1_mean_weight_negative_ii_log_prob"},
		{path: "node/test_sce_NCd1_mean_weight_negative_ii_log_prob_expanded"},
		{path: "node/test_sce_NCd1d2d3_none_no_weight_negative_ii"},
		{path: "node/test_sce_NCd1d2d3_none_no_weight_negative_ii_expanded"},
		{path: "node/test_sce_NCd1d2d3_none_no_weight_negative_ii_log_prob"},
		{path: "node/test_sce_NCd1d2d3_none_no_weight_negative_ii_log_prob_expanded"},
		{path: "node/test_sce_NCd1d2d3_sum_weight_high_ii"},
		{path: "node/test_sce_NCd1d2d3_sum_weight_high_ii_expanded"},
		{path: "node/test_sce_NCd1d2d3_sum_weight_high_ii_log_prob"},
		{path: "node/test_sce_NCd1d2d3_sum_weight_high_ii_log_prob_expanded"},
		{path: "node/test_sce_NCd1d2d3d4d5_mean_weight"},
		{path: "node/test_sce_NCd1d2d3d4d5_mean_weight_expanded"},
		{path: "node/test_sce_NCd1d2d3d4d5_mean_weight_log_prob"},
		{path: "node/test_sce_NCd1d2d3d4d5_mean_weight_log_prob_expanded"},
		{path: "node/test_sce_NCd1d2d3d4d5_none_no_weight"},
		{path: "node/test_sce_NCd1d2d3d4d5_none_no_weight_expanded"},
		{path: "node/test_sce_NCd1d2d3d4d5_none_no_weight_log_prob"},
		{path: "node/test_sce_NCd1d2d3d4d5_none_no_weight_log_prob_expanded"},
		{path: "node/test_sce_mean"},
		{path: "node/test_sce_mean_3d"},
		{path: "node/test_sce_mean_3d_expanded"},
		{path: "node/test_sce_mean_3d_log_prob"},
		{path: "node/test_sce_mean_3d_log_prob_expanded"},
		{path: "node/test_sce_mean_expanded"},
		{path: "node/test_sce_mean_log_prob"},
		{path: "node/test_sce_mean_log_prob_expanded"},
		{path: "node/test_sce_mean_no_weight_ii"},
		{path: "node/test_sce_mean_no_weight_ii_3d"},
		{path: "node/test_sce_mean_no_weight_ii_3d_expanded"},
		{path: "node/test_sce_mean_no_weight_ii_3d_log_prob"},
		{path: "node/test_sce_mean_no_weight_ii_3d_log_prob_expanded"},
		{path: "node/test_sce_mean_no_weight_ii_4d"},
		{path: "node/test_sce_mean_no_weight_ii_4d_expanded"},
		{path: "node/test_sce_mean_no_weight_ii_4d_log_prob"},
		{path: "node/test_sce_mean_no_weight_ii_4d_log_prob_expanded"},
		{path: "node/test_sce_mean_no_weight_ii_expanded"},
		{path: "node/test_sce_mean_no_weight_ii_log_prob"},
		{path: "node/test_sce_mean_no_weight_ii_log_prob_expanded"},
		{path: "node/test_sce_mean_weight"},
		{path: "node/test_sce_mean_weight_expanded"},
		{path: "node/test_sce_mean_weight_ii"},
		{path: "node/test_sce_mean_weight_ii_3d"},
		{path: "node/test_sce_mean_weight_ii_3d_expanded"},
		{path: "node/test_sce_mean_weight_ii_3d_log_prob"},
		{path: "node/test_sce_mean_weight_ii_3d_log_prob_expanded"},
		{path: "node/test_sce_mean_weight_ii_4d"},
		{path: "node/test_sce_mean_weight_ii_4d_expanded"},
		{path: "node/test_sce_mean_weight_ii_4d_log_prob"},
		{path: "node/test_sce_mean_weight_ii_4d_log_prob_expanded"},
		{path: "node/test_sce_mean_weight_ii_expanded"},
		{path: "node/test_sce_mean_weight_ii_log_prob"},
		{path: "node/test_sce_mean_weight_ii_log_prob_expanded"},
		{path: "node/test_sce_mean_weight_log_prob"},
		{path: "node/test_sce_mean_weight_log_prob_expanded"},
		{path: "node/test_sce_none"},
		{path: "node/test_sce_none_expanded"},
		{path: "node/test_sce_none_log_prob"},
		{path: "node/test_sce_none_log_prob_expanded"},
		{path: "node/test_sce_none_weights"},
		{path: "node/test_sce_none_weights_expanded"},
		{path: "node/test_sce_none_weights_log_prob"},
		{path: "node/test_sce_none_weights_log_prob_expanded"},
		{path: "node/test_sce_sum"},
		{path: "node/test_sce_sum_expanded"},
		{path: "node/test_sce_sum_log_prob"},
		{path: "node/test_sce_sum_log_prob_expanded"},
	})
}

// nllInput is log probabilities for N=2, C=3.
func nllInput(t *testing.T) *Tensor {
	return f32(t, dims(2, 3), -1, -2, -3, -0.5, -1.5, -2.5)
}

func TestNLLLossReductions(t *testing.T) {
	target := mustTensor(t, []int32{2, 0}, 2) // int32 class indices
	weight := f32(t, dims(3), 1, 2, 3)
	// Losses: -(-3)*3 = 9 and -(-0.5)*1 = 0.5; the weights used sum to 4.
	for _, tt := range []struct {
		reduction string
		shape     []int
		want      []float64
	}{
		{"none", dims(2), []float64{9, 0.5}},
		{"sum", dims(), []float64{9.5}},
		{"mean", dims(), []float64{9.5 / 4}},
	} {
		t.Run(tt.reduction, func(t *testing.T) {
			got, err := newOpCall("NegativeLogLikelihoodLoss", 13).str("reduction", tt.reduction).run(nllInput(t), target, weight)
			if err != nil {
				t.Fatal(err)
			}
			wantClose(t, got[0], tt.shape, tt.want...)
		})
	}
	// ignore_index drops the second element, weight and all.
	got, err := newOpCall("NegativeLogLikelihoodLoss", 13).int("ignore_index", 0).run(nllInput(t), target, weight)
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, got[0], dims(), 9.0/3)
}

func TestNLLLossEveryTargetIgnored(t *testing.T) {
	// The mean over no elements is 0/0.
	got, err := newOpCall("NegativeLogLikelihoodLoss", 13).int("ignore_index", -1).
		run(nllInput(t), i64(t, dims(2), -1, -1))
	if err != nil {
		t.Fatal(err)
	}
	if v := got[0].Data.([]float32)[0]; !math.IsNaN(float64(v)) {
		t.Errorf("loss %g, want NaN", v)
	}
}

func TestSoftmaxCrossEntropyLogProb(t *testing.T) {
	// LogSoftmax of [0, 0, ln 2]: the exponentials sum to 4, so the log
	// probabilities are -ln 4, -ln 4 and -ln 2.
	scores := f32(t, dims(1, 3), 0, 0, float32(math.Ln2))
	call := newOpCall("SoftmaxCrossEntropyLoss", 13)
	call.outputs = 2
	got, err := call.run(scores, i64(t, dims(1), 2))
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, got[0], dims(), math.Ln2)
	wantClose(t, got[1], dims(1, 3), -2*math.Ln2, -2*math.Ln2, -math.Ln2)
}

func TestLossReuseAcrossRuns(t *testing.T) {
	// The kernel keeps scratch buffers between runs: a second run with
	// other inputs must not see the first's.
	call := newOpCall("SoftmaxCrossEntropyLoss", 13).str("reduction", "none")
	call.outputs = 2
	p, in, out, err := call.compile([]bool{true, true})
	if err != nil {
		t.Fatal(err)
	}
	runs := []struct {
		scores []float32
		labels []int64
		want   []float64
	}{
		{[]float32{0, 0, float32(math.Ln2)}, []int64{2}, []float64{math.Ln2}},
		{[]float32{float32(math.Ln2), 0, 0}, []int64{1}, []float64{2 * math.Ln2}},
	}
	for i, r := range runs {
		got, err := p.Run(map[string]*Tensor{in[0]: f32(t, dims(1, 3), r.scores...), in[1]: i64(t, dims(1), r.labels...)})
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		wantClose(t, got[out[0]], dims(1), r.want...)
	}
}

func TestLossRejects(t *testing.T) {
	if _, err := newOpCall("NegativeLogLikelihoodLoss", 13).str("reduction", "avg").run(nllInput(t), i64(t, dims(2), 0, 0)); err == nil {
		t.Fatal("reduction avg: no error")
	} else {
		wantError(t, err, "reduction", "avg")
	}
	for _, tt := range []struct {
		name   string
		inputs []*Tensor
		words  []string
	}{
		{"class out of range", []*Tensor{nllInput(t), i64(t, dims(2), 3, 0)}, []string{"target 3", "[0, 3)"}},
		{"negative class", []*Tensor{nllInput(t), i64(t, dims(2), -1, 0)}, []string{"target -1"}},
		{"target shape", []*Tensor{nllInput(t), i64(t, dims(3), 0, 0, 0)}, []string{"target has shape [3]", "[2]"}},
		{"float target", []*Tensor{nllInput(t), f32(t, dims(2), 0, 0)}, []string{"target must be int64 or int32"}},
		{"weight shape", []*Tensor{nllInput(t), i64(t, dims(2), 0, 0), f32(t, dims(2), 1, 1)}, []string{"weight"}},
		{"weight type", []*Tensor{nllInput(t), i64(t, dims(2), 0, 0),
			{DType: onnx.TensorProto_DOUBLE, Shape: dims(3), Data: []float64{1, 1, 1}}}, []string{"weight", "float"}},
		{"integer input", []*Tensor{i64(t, dims(2, 3), 1, 2, 3, 4, 5, 6), i64(t, dims(2), 0, 0)}, []string{"floating-point"}},
		{"rank 1 input", []*Tensor{f32(t, dims(3), 1, 2, 3), i64(t, dims(1), 0)}, []string{"[N, C, d1, ...]"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, op := range []string{"NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"} {
				_, err := newOpCall(op, 13).run(tt.inputs...)
				wantError(t, err, tt.words...)
			}
		})
	}
}
