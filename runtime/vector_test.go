package runtime

import (
	"math"
	"math/rand/v2"
	"testing"
)

// vectorInputs returns rows of every length up to 70 (the vector loops'
// widths and their tails) holding NaN, infinities, signed zeros and
// random values.
func vectorInputs(rng *rand.Rand) [][]float32 {
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1))}
	var rows [][]float32
	for n := range 71 {
		row := make([]float32, n)
		for i := range row {
			if rng.IntN(4) == 0 {
				row[i] = specials[rng.IntN(len(specials))]
			} else {
				row[i] = float32(rng.NormFloat64())
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// sameFloat32 compares as Go's max defines its results: NaN matches NaN,
// and zeros match whatever their signs.
func sameFloat32(a, b float32) bool { return a == b || a != a && b != b }

func TestVectorRelu(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 29))
	for _, x := range vectorInputs(rng) {
		o := make([]float32, len(x))
		if !reluFloat32(o, x) {
			t.Skip("no vector loop here")
		}
		for i, v := range x {
			if want := max(v, 0); !sameFloat32(o[i], want) {
				t.Fatalf("length %d: relu(%g) = %g, want %g", len(x), v, o[i], want)
			}
		}
	}
}

func TestVectorMax(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 37))
	rows := vectorInputs(rng)
	for _, a := range rows {
		b := rows[rng.IntN(len(rows))]
		b = append(b[:min(len(b), len(a))], make([]float32, max(0, len(a)-len(b)))...)
		o := make([]float32, len(a))
		if !maxFloat32(o, a, b) {
			t.Skip("no vector loop here")
		}
		for i := range a {
			if want := max(a[i], b[i]); !sameFloat32(o[i], want) {
				t.Fatalf("length %d: max(%g, %g) = %g, want %g", len(a), a[i], b[i], o[i], want)
			}
		}
	}
}
