package passes

import (
	"bytes"
	"math"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
)

// randomPruned prunes twoGemms with random weights at sparsity s and seed,
// and returns the model's bytes and the pruned model.
func randomPruned(t *testing.T, s float64, seed uint64) ([]byte, *graph.Model) {
	t.Helper()
	b := twoGemms(t, randomFloats(1, 12), randomFloats(2, 6))
	p := applyPrune(t, b.m, "prune-random", nil, "--sparsity", strconv.FormatFloat(s, 'g', -1, 64), "--seed", strconv.FormatUint(seed, 10))
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(b.m.ToProto())
	if err != nil {
		t.Fatal(err)
	}
	return raw, p.back
}

// TestPruneRandomSeed: the same seed gives the same bytes, another seed
// another choice, and each layer loses exactly round(S·n) weights.
func TestPruneRandomSeed(t *testing.T) {
	a, ma := randomPruned(t, 0.5, 7)
	b, _ := randomPruned(t, 0.5, 7)
	c, _ := randomPruned(t, 0.5, 8)
	if !bytes.Equal(a, b) {
		t.Error("the same seed gives different bytes")
	}
	if bytes.Equal(a, c) {
		t.Error("seeds 7 and 8 give the same bytes")
	}
	if n1, n2 := len(zeros(weightOf(t, ma, "W1"))), len(zeros(weightOf(t, ma, "W2"))); n1 != 6 || n2 != 3 {
		t.Errorf("zeros %d and %d, want 6 of 12 and 3 of 6", n1, n2)
	}
}

// TestPruneRandomUniform checks over many seeds that every weight is
// zeroed with probability S: its count of zeros is binomial(seeds, S),
// and must lie within 5 standard deviations of the mean (a false alarm
// once in about 10⁵ runs of this test for one of its 18 weights).
func TestPruneRandomUniform(t *testing.T) {
	const seeds, s = 400, 0.5 // S·n is whole for both layers, so the probability is S exactly
	counts := make([]int, 18)
	for seed := range uint64(seeds) {
		_, m := randomPruned(t, s, seed)
		for _, i := range zeros(weightOf(t, m, "W1")) {
			counts[i]++
		}
		for _, i := range zeros(weightOf(t, m, "W2")) {
			counts[12+i]++
		}
	}
	mean, sd := seeds*s, math.Sqrt(seeds*s*(1-s))
	for i, n := range counts {
		if math.Abs(float64(n)-mean) > 5*sd {
			t.Errorf("weight %d zeroed %d times in %d seeds, want %.0f ± %.0f", i, n, seeds, mean, 5*sd)
		}
	}
}
