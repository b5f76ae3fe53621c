package passes

import (
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/onnx"
)

// gradientNet is x [N, 4] → MatMul(C) → Relu → Gemm(W, b) → logits [N, 3],
// with C [4, 5] held by a Constant node and W [5, 3] an initializer.
func gradientNet(t *testing.T) *builder {
	b := newBuilder(t, 13)
	x := b.batchInput("x", 4)
	ct, err := onnx.NewTensor("", onnx.TensorProto_FLOAT, []int64{4, 5}, randomFloats(11, 20))
	if err != nil {
		t.Fatal(err)
	}
	c := b.nodeWith("Constant", "C", nil, &onnx.AttributeProto{Name: proto.String("value"), Type: onnx.AttributeProto_TENSOR.Enum(), T: ct})
	a := b.node("Relu", "a", b.node("MatMul", "h", x, c))
	b.output(b.node("Gemm", "logits", a, b.weights("W", 12, -2, 2, 5, 3), b.weights("b", 13, -0.5, 0.5, 3)))
	return b
}

// selfCEGrads computes by hand, in float64, the gradients of each sample's
// cross-entropy against its own argmax for gradientNet: with h = xC,
// a = relu(h), z = aW + b, p = softmax(z), e = onehot(argmax z):
// ∂L/∂z = p − e, ∂L/∂W = aᵀ(p − e), ∂L/∂C = xᵀ((p − e)Wᵀ ⊙ [h > 0]).
// It returns one gradient per sample of C and of W.
func selfCEGrads(x, c, w, bias []float64, n int) (gc, gw [][]float64) {
	const in, hid, out = 4, 5, 3
	for s := range n {
		xs := x[s*in : (s+1)*in]
		h := make([]float64, hid)
		for j := range hid {
			for i := range in {
				h[j] += xs[i] * c[i*hid+j]
			}
		}
		a := make([]float64, hid)
		for j := range hid {
			a[j] = max(h[j], 0)
		}
		z := slices.Clone(bias)
		for k := range out {
			for j := range hid {
				z[k] += a[j] * w[j*out+k]
			}
		}
		top := 0
		for k := range z {
			if z[k] > z[top] {
				top = k
			}
		}
		var sum float64
		for k := range z {
			sum += math.Exp(z[k] - z[top])
		}
		dz := make([]float64, out)
		for k := range z {
			dz[k] = math.Exp(z[k]-z[top]) / sum
		}
		dz[top]--
		dw := make([]float64, hid*out)
		for j := range hid {
			for k := range out {
				dw[j*out+k] = a[j] * dz[k]
			}
		}
		dc := make([]float64, in*hid)
		for j := range hid {
			if h[j] <= 0 {
				continue
			}
			var da float64
			for k := range out {
				da += dz[k] * w[j*out+k]
			}
			for i := range in {
				dc[i*hid+j] = xs[i] * da
			}
		}
		gc, gw = append(gc, dc), append(gw, dw)
	}
	return gc, gw
}

func float64s(xs []float32) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}

// saliencyOf is |w·Σg| (taylor) or w²·mean(g²) (fisher).
func saliencyOf(w []float64, grads [][]float64, fisher bool) []float64 {
	s := make([]float64, len(w))
	for i := range w {
		var acc float64
		for _, g := range grads {
			if fisher {
				acc += g[i] * g[i] / float64(len(grads))
			} else {
				acc += g[i]
			}
		}
		if fisher {
			s[i] = w[i] * w[i] * acc
		} else {
			s[i] = math.Abs(w[i] * acc)
		}
	}
	return s
}

// lowest returns the indices of the k lowest scores, sorted, and fails
// when the k-th and the next are too close for float32 gradients to
// rank them surely.
func lowest(t *testing.T, scores []float64, k int) []int {
	t.Helper()
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return scores[order[a]] < scores[order[b]] })
	if k > 0 && k < len(order) {
		lo, hi := scores[order[k-1]], scores[order[k]]
		if hi-lo <= 1e-4*hi {
			t.Fatalf("scores %g and %g nearly tie: the test data cannot check the ranking", lo, hi)
		}
	}
	out := slices.Clone(order[:k])
	slices.Sort(out)
	return out
}

// TestPruneGradient checks the saliencies against gradients worked out by
// hand: the weights pruned must be those of lowest saliency, per layer and
// across both layers, for a weight held by a Constant node as well.
func TestPruneGradient(t *testing.T) {
	const samples = 16
	for _, fisher := range []bool{false, true} {
		for _, global := range []bool{false, true} {
			name := map[bool]string{false: "taylor", true: "fisher"}[fisher]
			args := []string{"--saliency", name, "--sparsity", "0.6"}
			if global {
				name += " global"
				args = append(args, "--global")
			}
			t.Run(name, func(t *testing.T) {
				b := gradientNet(t)
				calib := calibrationFor(t, b.g, 5, samples)
				c, w := float64s(weightOf(t, b.m, "C")), float64s(weightOf(t, b.m, "W"))
				x := float64s(calib[0]["x"].Data.([]float32))
				gc, gw := selfCEGrads(x, c, w, float64s(weightOf(t, b.m, "b")), samples)
				sc, sw := saliencyOf(c, gc, fisher), saliencyOf(w, gw, fisher)
				var wantC, wantW []int
				if global {
					all := lowest(t, append(slices.Clone(sc), sw...), 21) // 0.6 of 35
					for _, i := range all {
						if i < len(sc) {
							wantC = append(wantC, i)
						} else {
							wantW = append(wantW, i-len(sc))
						}
					}
				} else {
					wantC, wantW = lowest(t, sc, 12), lowest(t, sw, 9) // 0.6 of 20 and of 15
				}
				p := applyPrune(t, b.m, "prune-gradient", calib, args...)
				if got := zeros(weightOf(t, p.back, "C")); !slices.Equal(got, wantC) {
					t.Errorf("C zeros %v, want %v", got, wantC)
				}
				if got := zeros(weightOf(t, p.back, "W")); !slices.Equal(got, wantW) {
					t.Errorf("W zeros %v, want %v", got, wantW)
				}
				if p.back.Graph.Lookup("C").Producer == nil {
					t.Error("C is no longer a Constant node's output")
				}
			})
		}
	}
}

// TestPruneGradientUnsupported: a layer the runtime cannot differentiate
// is named in the error.
func TestPruneGradientUnsupported(t *testing.T) {
	b := newBuilder(t, 13)
	x := b.batchInput("x", 4)
	h := b.node("Gemm", "h", x, b.weights("W", 1, -1, 1, 4, 3))
	b.output(b.node("Erf", "y", h))
	calib := calibrationFor(t, b.g, 1, 4)
	_, err := prunePass(b.m, "prune-gradient", calib)
	if err == nil || !strings.Contains(err.Error(), "Erf") {
		t.Errorf("error %v, want one naming Erf", err)
	}
}
