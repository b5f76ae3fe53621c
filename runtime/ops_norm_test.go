package runtime

import (
	"math"
	"slices"
	"strings"
	"testing"

	"onnxopt/onnx"
)

// TestNormSuiteCases runs every conformance case of the normalization
// operators (rtol 1e-3, atol 1e-7). The suite (ONNX 1.12) has no
// GroupNormalization or LpNormalization case; the tests below check those
// against hand-derived values.
func TestNormSuiteCases(t *testing.T) {
	const expanded = "function body without the operator: TestNormExpandedSuiteCases runs it"
	checkSuiteCases(t, []string{
		"node/test_batchnorm", "node/test_layer_normalization", "node/test_instancenorm",
		"node/test_lrn", "node/test_mvn", "pytorch-converted/test_BatchNorm",
	}, []suiteCase{
		{path: "node/test_batchnorm_epsilon"},
		{path: "node/test_batchnorm_epsilon_training_mode"},
		{path: "node/test_batchnorm_example"},
		{path: "node/test_batchnorm_example_training_mode"},
		{path: "node/test_instancenorm_epsilon"},
		{path: "node/test_instancenorm_example"},
		{path: "node/test_layer_normalization_2d_axis0"},
		{path: "node/test_layer_normalization_2d_axis0_expanded", skip: expanded},
		{path: "node/test_layer_normalization_2d_axis1"},
		{path: "node/test_layer_normalization_2d_axis1_expanded", skip: expanded},
		{path: "node/test_layer_normalization_2d_axis_negative_1"},
		{path: "node/test_layer_normalization_2d_axis_negative_1_expanded", skip: expanded},
		{path: "node/test_layer_normalization_2d_axis_negative_2"},
		{path: "node/test_layer_normalization_2d_axis_negative_2_expanded", skip: expanded},
		{path: "node/test_layer_normalization_3d_axis0_epsilon"},
		{path: "node/test_layer_normalization_3d_axis0_epsilon_expanded", skip: expanded},
		{path: "node/test_layer_normalization_3d_axis1_epsilon"},
		{path: "node/test_layer_normalization_3d_axis1_epsilon_expanded", skip: expanded},
		{path: "node/test_layer_normalization_3d_axis2_epsilon"},
		{path: "node/test_layer_normalization_3d_axis2_epsilon_expanded", skip: expanded},
		{path: "node/test_layer_normalization_3d_axis_negative_1_epsilon"},
		{path: "node/test_layer_normalization_3d_axis_negative_1_epsilon_expanded", skip: expanded},
		{path: "node/test_layer_normalization_3d_axis_negative_2_epsilon"},
		{path: "node/test_layer_normalization_3d_axis_negative_2_epsilon_expanded", skip: expanded},
		{path: "node/test_layer_normalization_3d_axis_negative_3_epsilon"},
		{path: "node/test_layer_normalization_3d_axis_negative_3_epsilon_expanded", skip: expanded},
		{path: "node/test_layer_normalization_4d_axis0"},
		{path: "node/test_layer_normalization_4d_axis0_expanded", skip: expanded},
		{path: "node/test_layer_normalization_4d_axis1"},
		{path: "node/test_layer_normalization_4d_axis1_expanded", skip: expanded},
		{path: "node/test_layer_normalization_4d_axis2"},
		{path: "node/test_layer_normalization_4d_axis2_expanded", skip: expanded},
		{path: "node/test_layer_normalization_4d_axis3"},
		{path: "node/test_layer_normalization_4d_axis3_expanded", skip: expanded},
		{path: "node/test_layer_normalization_4d_axis_negative_1"},
		{path: "node/test_layer_normalization_4d_axis_negative_1_expanded", skip: expanded},
		{path: "node/test_layer_normalization_4d_axis_negative_2"},
		{path: "node/test_layer_normalization_4d_axis_negative_2_expanded", skip: expanded},
		{path: "node/test_layer_normalization_4d_axis_negative_3"},
		{path: "node/test_layer_normalization_4d_axis_negative_3_expanded", skip: expanded},
		{path: "node/test_layer_normalization_4d_axis_negative_4"},
		{path: "node/test_layer_normalization_4d_axis_negative_4_expanded", skip: expanded},
		{path: "node/test_layer_normalization_default_axis"},
		{path: "node/test_layer_normalization_default_axis_expanded", skip: expanded},
		{path: "node/test_lrn"},
		{path: "node/test_lrn_default"},
		{path: "node/test_mvn"},
		{path: "node/test_mvn_expanded", skip: expanded},
		{path: "pytorch-converted/test_BatchNorm1d_3d_input_eval"},
		{path: "pytorch-converted/test_BatchNorm2d_eval"},
		{path: "pytorch-converted/test_BatchNorm2d_momentum_eval"},
		{path: "pytorch-converted/test_BatchNorm3d_eval"},
		{path: "pytorch-converted/test_BatchNorm3d_momentum_eval"},
	})
}

// TestNormExpandedSuiteCases runs the _expanded cases, which replace the
// operator by its ONNX function body (ReduceMean, Pow, Sqrt, ...). They
// check no kernel of this family, so they are skipped while the runtime
// lacks an op of another family, and must pass once it has them.
func TestNormExpandedSuiteCases(t *testing.T) {
	var cases []suiteCase
	for _, path := range []string{
		"node/test_layer_normalization_2d_axis0_expanded",
		"node/test_layer_normalization_2d_axis1_expanded",
		"node/test_layer_normalization_2d_axis_negative_1_expanded",
		"node/test_layer_normalization_2d_axis_negative_2_expanded",
		"node/test_layer_normalization_3d_axis0_epsilon_expanded",
		"node/test_layer_normalization_3d_axis1_epsilon_expanded",
		"node/test_layer_normalization_3d_axis2_epsilon_expanded",
		"node/test_layer_normalization_3d_axis_negative_1_epsilon_expanded",
		"node/test_layer_normalization_3d_axis_negative_2_epsilon_expanded",
		"node/test_layer_normalization_3d_axis_negative_3_epsilon_expanded",
		"node/test_layer_normalization_4d_axis0_expanded",
		"node/test_layer_normalization_4d_axis1_expanded",
		"node/test_layer_normalization_4d_axis2_expanded",
		"node/test_layer_normalization_4d_axis3_expanded",
		"node/test_layer_normalization_4d_axis_negative_1_expanded",
		"node/test_layer_normalization_4d_axis_negative_2_expanded",
		"node/test_layer_normalization_4d_axis_negative_3_expanded",
		"node/test_layer_normalization_4d_axis_negative_4_expanded",
		"node/test_layer_normalization_default_axis_expanded",
		"node/test_mvn_expanded",
	} {
		cases = append(cases, suiteCase{path: path, family: normOps})
	}
	checkSuiteCases(t, nil, cases)
}

// f32 builds a float32 tensor.
func f32(t *testing.T, shape []int, v ...float32) *Tensor {
	t.Helper()
	return mustTensor(t, v, shape...)
}

// i64 builds an int64 tensor.
func i64(t *testing.T, shape []int, v ...int64) *Tensor {
	t.Helper()
	return mustTensor(t, v, shape...)
}

// dims spells a shape.
func dims(d ...int) []int { return d }

// wantClose checks got against hand-derived values within the suite's
// tolerance (rtol 1e-3, atol 1e-7) and shape.
func wantClose(t *testing.T, got *Tensor, shape []int, want ...float64) {
	t.Helper()
	if got == nil {
		t.Fatal("no output")
	}
	if !slices.Equal(got.Shape, shape) {
		t.Fatalf("shape %v, want %v", got.Shape, shape)
	}
	g := float64s(got)
	if len(g) != len(want) {
		t.Fatalf("%d elements, want %d", len(g), len(want))
	}
	for i := range want {
		if d := math.Abs(g[i] - want[i]); !(d <= ConformanceATol+ConformanceRTol*math.Abs(want[i])) {
			t.Fatalf("element %d: got %.7g, want %.7g (all: %v)", i, g[i], want[i], g)
		}
	}
}

// wantError checks that err is not nil and mentions each of words.
func wantError(t *testing.T, err error, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", words)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not mention %q", err, w)
		}
	}
}

// Normalizing [1, 2, 3, 4] with epsilon 0: mean 2.5, variance 1.25.
var normalized1234 = []float64{-1.3416408, -0.4472136, 0.4472136, 1.3416408}

func TestBatchNormPerActivation(t *testing.T) {
	// BatchNormalization-7 with spatial=0 keeps statistics per (channel,
	// position): X [2, 2, 1] has two activations, each normalized with
	// its own mean and variance.
	x := f32(t, dims(2, 2, 1), 1, 2, 3, 4)
	scale := f32(t, dims(2, 1), 2, 1)
	bias := f32(t, dims(2, 1), 0, 1)
	mean := f32(t, dims(2, 1), 1, 1)
	variance := f32(t, dims(2, 1), 4, 1)
	out, err := newOpCall("BatchNormalization", 7).int("spatial", 0).float("epsilon", 0).run(x, scale, bias, mean, variance)
	if err != nil {
		t.Fatal(err)
	}
	// activation 0: 2*(x-1)/2 + 0; activation 1: (x-1)/1 + 1
	wantClose(t, out[0], dims(2, 2, 1), 0, 2, 2, 4)
}

func TestBatchNormTrainingBeforeOpset14(t *testing.T) {
	// BatchNormalization-7 trains when its statistics outputs are used:
	// the batch mean 2.5 and variance 1.25 normalize X and update the
	// running mean 0 and variance 1 with momentum 0.9.
	x := f32(t, dims(2, 1, 2), 1, 2, 3, 4)
	one := f32(t, dims(1), 1)
	zero := f32(t, dims(1), 0)
	call := newOpCall("BatchNormalization", 7).float("epsilon", 0)
	call.outputs = 4
	out, err := call.run(x, one, zero, zero, one)
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, out[0], dims(2, 1, 2), normalized1234...)
	wantClose(t, out[1], dims(1), 0.9*0+0.1*2.5)
	wantClose(t, out[2], dims(1), 0.9*1+0.1*1.25)
	wantClose(t, out[3], dims(1), 2.5)
}

func TestBatchNormRejects(t *testing.T) {
	x := f32(t, dims(1, 2, 2), 1, 2, 3, 4)
	two := f32(t, dims(2), 1, 1)
	three := f32(t, dims(3), 1, 1, 1)
	_, err := newOpCall("BatchNormalization", 15).run(x, three, two, two, two)
	wantError(t, err, "scale", "one per channel")
	_, err = newOpCall("BatchNormalization", 15).run(f32(t, dims(2), 1, 2), two, two, two, two)
	wantError(t, err, "at least [N, C]")
	_, err = newOpCall("BatchNormalization", 15).run(i64(t, dims(1, 2), 1, 2), two, two, two, two)
	wantError(t, err, "floating-point")
	_, err = newOpCall("BatchNormalization", 15).run(x, two, two, two)
	wantError(t, err, "needs inputs")

	call := newOpCall("BatchNormalization", 15)
	call.outputs = 3
	_, err = call.run(x, two, two, two, two)
	wantError(t, err, "training_mode=1")
	call = newOpCall("BatchNormalization", 6).int("is_test", 1)
	call.outputs = 3
	_, err = call.run(x, two, two, two, two)
	wantError(t, err, "is_test=1")
	call = newOpCall("BatchNormalization", 9)
	call.outputs = 5
	_, err = call.run(x, two, two, two, two)
	wantError(t, err, "saved_var")
}

func TestLayerNormBroadcastScale(t *testing.T) {
	// X [1, 2, 3] normalized over its last two axes: mean 3.5, variance
	// 35/12. Scale [3] broadcasts over them; B is omitted.
	x := f32(t, dims(1, 2, 3), 1, 2, 3, 4, 5, 6)
	scale := f32(t, dims(3), 1, 2, 3)
	call := newOpCall("LayerNormalization", 17).int("axis", 1).float("epsilon", 0)
	call.outputs = 3
	out, err := call.run(x, scale)
	if err != nil {
		t.Fatal(err)
	}
	inv := 1 / math.Sqrt(35.0/12)
	n := func(v float64) float64 { return (v - 3.5) * inv }
	wantClose(t, out[0], dims(1, 2, 3), n(1), 2*n(2), 3*n(3), n(4), 2*n(5), 3*n(6))
	wantClose(t, out[1], dims(1, 1, 1), 3.5)
	wantClose(t, out[2], dims(1, 1, 1), inv)

	_, err = newOpCall("LayerNormalization", 17).run(x, f32(t, dims(2), 1, 1))
	wantError(t, err, "Scale", "broadcast")
	_, err = newOpCall("LayerNormalization", 17).int("axis", 3).run(x, scale)
	wantError(t, err, "axis 3")
	_, err = newOpCall("LayerNormalization", 17).int("stash_type", int64(onnx.TensorProto_INT32)).run(x, scale)
	wantError(t, err, "stash_type")
}

func TestInstanceNormRejects(t *testing.T) {
	x := f32(t, dims(1, 2, 2), 1, 2, 3, 4)
	_, err := newOpCall("InstanceNormalization", 6).run(x, f32(t, dims(1), 1), f32(t, dims(2), 0, 0))
	wantError(t, err, "scale", "[2]")
}

func TestGroupNormOpsets(t *testing.T) {
	// X [1, 4, 2] in two groups: channels 0-1 hold 1, 2, 3, 4 and
	// channels 2-3 hold 0, 0, 2, 2 (mean 1, variance 1).
	x := f32(t, dims(1, 4, 2), 1, 2, 3, 4, 0, 0, 2, 2)
	g0, g1 := normalized1234, []float64{-1, -1, 1, 1}

	// GroupNormalization-18 scales and shifts per group.
	out, err := newOpCall("GroupNormalization", 18).int("num_groups", 2).float("epsilon", 0).
		run(x, f32(t, dims(2), 2, 3), f32(t, dims(2), 0.5, -1))
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, out[0], dims(1, 4, 2),
		2*g0[0]+0.5, 2*g0[1]+0.5, 2*g0[2]+0.5, 2*g0[3]+0.5,
		3*g1[0]-1, 3*g1[1]-1, 3*g1[2]-1, 3*g1[3]-1)

	// GroupNormalization-21 scales and shifts per channel.
	out, err = newOpCall("GroupNormalization", 21).int("num_groups", 2).float("epsilon", 0).
		run(x, f32(t, dims(4), 1, 2, 3, 4), f32(t, dims(4), 0, 0, 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, out[0], dims(1, 4, 2),
		g0[0], g0[1], 2*g0[2], 2*g0[3],
		3*g1[0]+1, 3*g1[1]+1, 4*g1[2]+1, 4*g1[3]+1)

	_, err = newOpCall("GroupNormalization", 21).int("num_groups", 2).run(x, f32(t, dims(2), 1, 1), f32(t, dims(2), 0, 0))
	wantError(t, err, "scale", "one per channel")
	_, err = newOpCall("GroupNormalization", 18).int("num_groups", 3).run(x, f32(t, dims(3), 1, 1, 1), f32(t, dims(3), 0, 0, 0))
	wantError(t, err, "num_groups=3")
	_, err = newOpCall("GroupNormalization", 18).run(x, f32(t, dims(2), 1, 1), f32(t, dims(2), 0, 0))
	wantError(t, err, "num_groups is required")
}

func TestLRNChannelWindow(t *testing.T) {
	// size 3 sums the squares of a channel and its two neighbours;
	// alpha = size makes the divisor (1 + sum)^1.
	x := f32(t, dims(1, 3, 1, 1), 1, 2, 3)
	out, err := newOpCall("LRN", 13).int("size", 3).float("alpha", 3).float("beta", 1).float("bias", 1).run(x)
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, out[0], dims(1, 3, 1, 1), 1.0/(1+1+4), 2.0/(1+1+4+9), 3.0/(1+4+9))
	_, err = newOpCall("LRN", 13).run(x)
	wantError(t, err, "size is required")
}

func TestMVNAxes(t *testing.T) {
	// Over axis 1 alone, row [1, 3] has mean 2 and deviation 1; the
	// constant row [2, 2] becomes 0/(0 + 1e-9) = 0.
	x := f32(t, dims(2, 2), 1, 3, 2, 2)
	out, err := newOpCall("MeanVarianceNormalization", 13).ints("axes", 1).run(x)
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, out[0], dims(2, 2), -1, 1, 0, 0)
	_, err = newOpCall("MeanVarianceNormalization", 13).ints("axes", 2).run(x)
	wantError(t, err, "axis 2")
}

func TestLpNormalization(t *testing.T) {
	x := f32(t, dims(2, 2), 3, 4, 1, -1)
	out, err := newOpCall("LpNormalization", 1).run(x)
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, out[0], dims(2, 2), 0.6, 0.8, 1/math.Sqrt2, -1/math.Sqrt2)
	out, err = newOpCall("LpNormalization", 1).int("p", 1).run(x)
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, out[0], dims(2, 2), 3.0/7, 4.0/7, 0.5, -0.5)
	out, err = newOpCall("LpNormalization", 1).int("axis", 0).run(x)
	if err != nil {
		t.Fatal(err)
	}
	wantClose(t, out[0], dims(2, 2), 3/math.Sqrt(10), 4/math.Sqrt(17), 1/math.Sqrt(10), -1/math.Sqrt(17))
	_, err = newOpCall("LpNormalization", 1).int("p", 3).run(x)
	wantError(t, err, "p is 3")
}

// TestNormReuseAcrossRuns runs one plan on two batch sizes and back: the
// kernels' kept buffers must not leak results between runs.
func TestNormReuseAcrossRuns(t *testing.T) {
	call := newOpCall("LayerNormalization", 17).float("epsilon", 0)
	call.outputs = 3
	p, inNames, outNames, err := call.compile([]bool{true, true})
	if err != nil {
		t.Fatal(err)
	}
	scale := f32(t, dims(4), 1, 1, 1, 1)
	small := f32(t, dims(1, 4), 1, 2, 3, 4)
	large := f32(t, dims(3, 4), 4, 3, 2, 1, 0, 0, 2, 2, 1, 2, 3, 4)
	for _, x := range []*Tensor{small, large, small} {
		got, err := p.Run(map[string]*Tensor{inNames[0]: x, inNames[1]: scale})
		if err != nil {
			t.Fatal(err)
		}
		if x == small {
			wantClose(t, got[outNames[0]], dims(1, 4), normalized1234...)
			wantClose(t, got[outNames[1]], dims(1, 1), 2.5)
			continue
		}
		r := normalized1234
		wantClose(t, got[outNames[0]], dims(3, 4), r[3], r[2], r[1], r[0], -1, -1, 1, 1, r[0], r[1], r[2], r[3])
		wantClose(t, got[outNames[1]], dims(3, 1), 2.5, 1, 2.5)
	}
}
