package passes

import (
	"cmp"
	"math"
	"slices"
	"testing"

	"onnxopt/graph"
	"onnxopt/runtime"
)

// nmGroups checks that orig pruned to got keeps, in every run of m
// consecutive elements along axis (the other indices fixed), the n
// largest magnitudes (all of a shorter last run up to n), and zeroes the
// rest.
func nmGroups(t *testing.T, orig, got []float32, dims []int64, axis, n, m int) {
	t.Helper()
	inner := 1
	for _, d := range dims[axis+1:] {
		inner *= int(d)
	}
	length := int(dims[axis])
	for o := range len(orig) / (length * inner) {
		for in := range inner {
			for start := 0; start < length; start += m {
				var idx []int
				for c := start; c < min(start+m, length); c++ {
					idx = append(idx, o*length*inner+c*inner+in)
				}
				// Rank by magnitude, largest first.
				slices.SortStableFunc(idx, func(a, b int) int {
					return -cmp.Compare(math.Abs(float64(orig[a])), math.Abs(float64(orig[b])))
				})
				for r, i := range idx {
					want := orig[i]
					if r >= n {
						want = 0
					}
					if got[i] != want {
						t.Fatalf("element %d (rank %d in its group of %d): %g, want %g", i, r, len(idx), got[i], want)
					}
				}
			}
		}
	}
}

func TestPruneNM(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nm    string
		n, m  int
		build func(b *builder) *graph.Value // returns the weight
		axis  int
	}{
		{"conv 2:4", "2:4", 2, 4, func(b *builder) *graph.Value {
			w := b.weights("W", 1, -1, 1, 3, 8, 2, 2)
			b.output(b.nodeWith("Conv", "y", []*graph.Value{b.input("x", 1, 8, 4, 4), w, b.weights("B", 2, -1, 1, 3)}))
			return w
		}, 1},
		{"conv, channels not a multiple of M", "2:4", 2, 4, func(b *builder) *graph.Value {
			w := b.weights("W", 1, -1, 1, 2, 6, 3, 3)
			b.output(b.nodeWith("Conv", "y", []*graph.Value{b.input("x", 1, 6, 5, 5), w}, intsAttr("pads", 1, 1, 1, 1)))
			return w
		}, 1},
		{"grouped conv 1:3", "1:3", 1, 3, func(b *builder) *graph.Value {
			w := b.weights("W", 1, -1, 1, 4, 6, 1, 3)
			b.output(b.nodeWith("Conv", "y", []*graph.Value{b.input("x", 1, 12, 3, 7), w}, intAttr("group", 2)))
			return w
		}, 1},
		{"gemm along K", "2:4", 2, 4, func(b *builder) *graph.Value {
			w := b.weights("W", 1, -1, 1, 8, 5)
			b.output(b.node("Gemm", "y", b.input("x", 2, 8), w))
			return w
		}, 0},
		{"gemm transB along K", "3:8", 3, 8, func(b *builder) *graph.Value {
			w := b.weights("W", 1, -1, 1, 5, 16)
			b.output(b.nodeWith("Gemm", "y", []*graph.Value{b.input("x", 2, 16), w}, intAttr("transB", 1)))
			return w
		}, 1},
		{"LSTM input weights along the input", "2:4", 2, 4, func(b *builder) *graph.Value {
			w := b.weights("W", 1, -1, 1, 1, 8, 8)
			// R, [1, 8, 2], has groups of 2 channels: it keeps all.
			y := b.g.Value("y")
			if _, err := b.g.NewNode("LSTM", "lstm", []*graph.Value{b.input("x", 3, 1, 8), w, b.weights("R", 2, -1, 1, 1, 8, 2)}, []*graph.Value{y}, intAttr("hidden_size", 2)); err != nil {
				b.t.Fatal(err)
			}
			b.output(y)
			return w
		}, 2},
		{"batched matmul along K", "2:4", 2, 4, func(b *builder) *graph.Value {
			w := b.weights("W", 1, -1, 1, 2, 8, 3)
			b.output(b.node("MatMul", "y", b.input("x", 2, 5, 8), w))
			return w
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(t, 13)
			w := tc.build(b)
			dims := w.Init.GetDims()
			orig := weightOf(t, b.m, "W")
			p := applyPrune(t, b.m, "prune-nm", nil, "--nm", tc.nm)
			got := weightOf(t, p.back, "W")
			nmGroups(t, orig, got, dims, tc.axis, tc.n, tc.m)
			if p.res.Changes != len(zeros(got)) {
				t.Errorf("%d changes for %d zeros", p.res.Changes, len(zeros(got)))
			}
			want := newBuilder(t, 13)
			tc.build(want)
			want.g.Lookup("W").Init = p.back.Graph.Lookup("W").Init
			inputs := map[string]*runtime.Tensor{}
			for _, in := range b.g.Inputs {
				shape, _ := in.Shape()
				dims, _ := shape.Static()
				inputs[in.Name] = randomTensor(t, 3, dims)
			}
			sameOutputs(t, p.back, want.m, inputs)
		})
	}
}

func TestParseNM(t *testing.T) {
	for _, s := range []string{"2:4", " 1 : 8 "} {
		if _, _, err := parseNM(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"4:2", "0:4", "2:2", "2-4", "a:b", "2:", ""} {
		if _, _, err := parseNM(s); err == nil {
			t.Errorf("%q parses", s)
		}
	}
}
