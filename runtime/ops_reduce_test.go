package runtime

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// reduceCases are the lowercase op names that conformance node cases of
// the reduction operators start with.
var reduceCases = []string{
	"reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_l1", "reduce_l2",
	"reduce_log_sum", "reduce_log_sum_exp", "reduce_sum_square",
	"argmax", "argmin", "softmax", "logsoftmax", "hardmax", "cumsum", "top_k",
}

func TestReduceConformance(t *testing.T) {
	runNodeCases(t, reduceCases, nil)
}

func BenchmarkSoftmax(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, shape := range [][]int{{397, 10}, {1, 1000}, {64, 512, 512}} {
		b.Run(fmt.Sprint(shape), func(b *testing.B) {
			benchKernel(b, newOpCall("Softmax", 13), randomTensor(rng, f32T, shape...))
		})
	}
}

// TestExpFloat32 checks the fast exp against math.Exp over float32's
// range, with a tolerance of 2 ulp.
func TestExpFloat32(t *testing.T) {
	worst := 0.0
	check := func(x float32) {
		got := float64(expFloat32(x))
		want := math.Exp(float64(x))
		if math.IsInf(want, 1) || want > math.MaxFloat32 {
			if !math.IsInf(got, 1) {
				t.Errorf("exp(%g) = %g, want +Inf", x, got)
			}
			return
		}
		ulp := float64(math.Nextafter32(float32(want), float32(math.Inf(1))) - float32(want))
		if err := math.Abs(got-want) / ulp; err > worst {
			worst = err
			if err > 2 {
				t.Errorf("exp(%g) = %g, want %g (%.2f ulp)", x, got, want, err)
			}
		}
	}
	for x := float32(-100); x < 90; x += 0.001 {
		check(x)
	}
	for _, x := range []float32{0, -0, 88.72283, 88.72284, 88.7229, -87, -87.0001, -103, -104, -200, 1e-8, -1e-8} {
		check(x)
	}
	if got := expFloat32(float32(math.NaN())); got == got {
		t.Errorf("exp(NaN) = %g", got)
	}
	t.Logf("worst error %.2f ulp", worst)
}
