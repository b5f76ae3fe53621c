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

func TestVectorAddConst(t *testing.T) {
	rng := rand.New(rand.NewPCG(67, 71))
	for _, x := range vectorInputs(rng) {
		o := make([]float32, len(x))
		v := float32(rng.NormFloat64())
		if !addConstFloat32(o, x, v) {
			t.Skip("no vector loop here")
		}
		for i, xv := range x {
			if want := xv + v; !sameFloat32(o[i], want) {
				t.Fatalf("length %d: %g + %g = %g, want %g", len(x), xv, v, o[i], want)
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

// TestMaxPoolVector compares the vector MaxPool, in both its ways, with
// the scalar one on windows with and without padding, strides,
// dilations, ceil_mode, and 1-D to 3-D, on data with NaN and infinities.
func TestMaxPoolVector(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 43))
	for _, c := range []struct {
		in, kernel, strides, dilations, pads []int
		ceil                                 bool
		shifted                              bool // maxPoolShifted, else maxPoolRows
	}{
		{in: []int{8, 8}, kernel: []int{2, 2}, strides: []int{2, 2}, shifted: true},
		{in: []int{6, 24}, kernel: []int{2, 2}, strides: []int{2, 2}, shifted: true},
		{in: []int{4, 10}, kernel: []int{2, 2}, strides: []int{2, 2}, shifted: true},
		{in: []int{5, 8}, kernel: []int{2, 2}, strides: []int{2, 2}, shifted: true},
		{in: []int{2, 3, 8}, kernel: []int{1, 2, 2}, strides: []int{1, 2, 2}, shifted: true},
		{in: []int{9, 13}, kernel: []int{3, 2}, strides: []int{2, 3}, dilations: []int{2, 1}, shifted: true},
		{in: []int{4, 5, 6}, kernel: []int{2, 3, 2}, strides: []int{1, 2, 2}, shifted: true},
		{in: []int{20}, kernel: []int{4}, strides: []int{3}, dilations: []int{2}, shifted: true},
		{in: []int{112, 112}, kernel: []int{3, 3}, strides: []int{2, 2}, pads: []int{1, 1, 1, 1}},
		{in: []int{7, 10}, kernel: []int{3, 3}, strides: []int{2, 2}, ceil: true},
		{in: []int{6, 7}, kernel: []int{2, 3}, strides: []int{1, 2}, dilations: []int{2, 2}, pads: []int{0, 2, 1, 1}},
		{in: []int{3, 4, 5}, kernel: []int{2, 2, 3}, strides: []int{2, 1, 2}, pads: []int{1, 0, 1, 0, 1, 2}},
		{in: []int{2, 3}, kernel: []int{3, 3}, pads: []int{2, 2, 2, 2}},
	} {
		win := windowAttrs{strides: c.strides, dilations: c.dilations, pads: c.pads, autoPad: "NOTSET", ceilMode: c.ceil}
		g, err := win.forward(c.in, c.kernel)
		if err != nil {
			t.Fatal(err)
		}
		if windowsInside(&g) != c.shifted {
			t.Errorf("%+v: windowsInside = %t", c, !c.shifted)
		}
		const planes = 5
		rows := vectorInputs(rng)
		var x []float32
		for len(x) < planes*g.inVolume() {
			x = append(x, rows[rng.IntN(len(rows))]...)
		}
		x = x[:planes*g.inVolume()]
		want, got := make([]float32, planes*g.outVolume()), make([]float32, planes*g.outVolume())
		var taps []int
		maxPool(&g, planes, x, want, nil, false, &taps)
		var buf []float32
		if !maxPoolVector(&g, planes, x, got, &buf) {
			t.Skip("no vector loop here")
		}
		for i := range want {
			if !sameFloat32(got[i], want[i]) {
				t.Fatalf("%+v: output %d is %g, want %g", c, i, got[i], want[i])
			}
		}
	}
}

func TestTranspose8(t *testing.T) {
	rng := rand.New(rand.NewPCG(59, 61))
	for _, strides := range [][2]int{{8, 8}, {16, 9}, {1000, 16}, {11, 300}} {
		ds, ss := strides[0], strides[1]
		src := make([]float32, 7*ss+8)
		for i := range src {
			src[i] = float32(rng.NormFloat64())
		}
		dst := make([]float32, 7*ds+8)
		const sentinel = -99
		for i := range dst {
			dst[i] = sentinel
		}
		add := float32(rng.NormFloat64())
		transpose8(dst, ds, src, ss, add)
		for i := range dst {
			r, c := i/ds, i%ds
			want := float32(sentinel)
			if c < 8 {
				want = src[c*ss+r] + add
			}
			if dst[i] != want {
				t.Fatalf("strides %d, %d: dst[%d] (row %d, column %d) = %g, want %g", ds, ss, i, r, c, dst[i], want)
			}
		}
	}
}
