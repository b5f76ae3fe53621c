package runtime

import (
	"fmt"
	"math"
	"math/rand/v2"
	goruntime "runtime"
	"testing"
)

// sgemmCase is one product c = alpha*op(a)*op(b) + beta*c with leading
// dimensions ld* past the operands' widths by pad.
type sgemmCase struct {
	m, n, k        int
	transA, transB bool
	alpha, beta    float32
	pad            int
}

func (c sgemmCase) String() string {
	return fmt.Sprintf("m=%d,n=%d,k=%d,tA=%t,tB=%t,alpha=%g,beta=%g,pad=%d", c.m, c.n, c.k, c.transA, c.transB, c.alpha, c.beta, c.pad)
}

// sgemmImpl computes a sgemmCase's product in place on c.
type sgemmImpl func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

// sgemmImpls are the ways a float32 product runs: the dispatch, gonum, and
// the packed product with each micro-kernel that runs here (the assembly
// ones where the CPU has their instructions, the Go one under the purego
// tag), with A packed block by block or whole beforehand, and B from a
// matrix or an offsetB, packed or read in place.
func sgemmImpls(t *testing.T) map[string]sgemmImpl {
	impls := map[string]sgemmImpl{
		"gemmInto": gemmInto[float32],
		"gonum":    gemmGonum[float32],
	}
	kernels := sgemmTestKernels()
	if len(kernels) == 0 {
		t.Log("the CPU lacks AVX2 and FMA: no assembly micro-kernel is tested")
	}
	for name, kern := range kernels {
		var s sgemmScratch
		impls["packed "+name] = func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
			sgemmBlocked(&s, m, n, k, &sgemmA{kernel: kern, trans: transA, alpha: alpha, a: a, ld: lda}, &matrixB{trans: transB, b: b, ld: ldb}, beta, c, ldc)
		}
		var packed []float32
		impls["packed whole A "+name] = func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
			packed = packSgemmA(packed, kern.mr, transA, alpha, a, lda, m, k)
			sgemmBlocked(&s, m, n, k, &sgemmA{kernel: kern, packed: packed}, &matrixB{trans: transB, b: b, ld: ldb}, beta, c, ldc)
		}
		// op(b) copied with rows ld apart and a panel's width of slack,
		// as offsetB, packed and read in place.
		offsetImpl := func(inPlace bool) sgemmImpl {
			return func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
				ld := n + 3
				src := make([]float32, k*ld+sgemmNR)
				ob := offsetB{src: src, rowOff: make([]int, k), colOff: make([]int, (n+sgemmNR-1)/sgemmNR)}
				for l := range k {
					ob.rowOff[l] = l * ld
					for j := range n {
						if transB {
							src[l*ld+j] = b[j*ldb+l]
						} else {
							src[l*ld+j] = b[l*ldb+j]
						}
					}
				}
				for p := range ob.colOff {
					ob.colOff[p] = p * sgemmNR
				}
				if inPlace {
					ob.readInPlace()
				}
				sgemmBlocked(&s, m, n, k, &sgemmA{kernel: kern, trans: transA, alpha: alpha, a: a, ld: lda}, &ob, beta, c, ldc)
			}
		}
		impls["offsetB packed "+name] = offsetImpl(false)
		impls["offsetB in place "+name] = offsetImpl(true)
	}
	return impls
}

// sgemmSentinel fills the gaps between rows of a padded C: an
// implementation must not write there.
const sgemmSentinel = -12345

// checkSgemm runs each implementation on random operands of case c and
// compares with the product in float64. A float32 dot product of length k
// summed in any order is within k·u·Σ|a_l·b_l| of the exact one (u = 2^-24
// the unit roundoff); alpha, beta and the final addition add a few u, so
// the tolerance is 2(k+4)·u·(|alpha|·Σ|a_l·b_l| + |beta·c|). With beta 0,
// C starts as NaN, which BLAS requires not to reach the result.
func checkSgemm(t *testing.T, impls map[string]sgemmImpl, rng *rand.Rand, c sgemmCase) {
	t.Helper()
	rowsA, colsA := c.m, c.k
	if c.transA {
		rowsA, colsA = c.k, c.m
	}
	rowsB, colsB := c.k, c.n
	if c.transB {
		rowsB, colsB = c.n, c.k
	}
	lda, ldb, ldc := colsA+c.pad, colsB+c.pad, c.n+c.pad
	random := func(rows, ld, cols int) []float32 {
		x := make([]float32, max(0, (rows-1)*ld+cols))
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	a, b, c0 := random(rowsA, lda, colsA), random(rowsB, ldb, colsB), random(c.m, ldc, c.n)
	for i := range c.m {
		for j := c.n; j < ldc && i*ldc+j < len(c0); j++ {
			c0[i*ldc+j] = sgemmSentinel
		}
		if c.beta == 0 {
			for j := range c.n {
				c0[i*ldc+j] = float32(math.NaN())
			}
		}
	}
	at := func(x []float32, ld int, trans bool, i, j int) float64 {
		if trans {
			i, j = j, i
		}
		return float64(x[i*ld+j])
	}
	want, tol := make([]float64, c.m*c.n), make([]float64, c.m*c.n)
	const u = 0x1p-24
	for i := range c.m {
		for j := range c.n {
			var sum, mag float64
			for l := range c.k {
				p := at(a, lda, c.transA, i, l) * at(b, ldb, c.transB, l, j)
				sum += p
				mag += math.Abs(p)
			}
			want[i*c.n+j] = float64(c.alpha) * sum
			bound := math.Abs(float64(c.alpha)) * mag
			if c.beta != 0 {
				cv := float64(c.beta) * float64(c0[i*ldc+j])
				want[i*c.n+j] += cv
				bound += math.Abs(cv)
			}
			tol[i*c.n+j] = 2 * float64(c.k+4) * u * bound
		}
	}
	for name, impl := range impls {
		got := append([]float32(nil), c0...)
		impl(c.transA, c.transB, c.m, c.n, c.k, c.alpha, a, lda, b, ldb, c.beta, got, ldc)
		bad := 0
		for i := range c.m {
			for j := range c.n {
				g, w, tl := float64(got[i*ldc+j]), want[i*c.n+j], tol[i*c.n+j]
				if !(math.Abs(g-w) <= tl) {
					if bad < 3 {
						t.Errorf("%s %v: c[%d,%d] = %g, want %g ± %.3g", name, c, i, j, g, w, tl)
					}
					bad++
				}
			}
			for j := c.n; j < ldc && i*ldc+j < len(got); j++ {
				if got[i*ldc+j] != sgemmSentinel {
					t.Errorf("%s %v: wrote %g at column %d of row %d, past the %d columns of c", name, c, got[i*ldc+j], j, i, c.n)
				}
			}
		}
		if bad > 3 {
			t.Errorf("%s %v: %d elements out of tolerance", name, c, bad)
		}
	}
}

// TestSgemmEdges covers every combination of small sizes around the
// micro-tile (6×16), the transpositions, alpha and beta, with and without
// padded leading dimensions.
func TestSgemmEdges(t *testing.T) {
	impls := sgemmImpls(t)
	rng := rand.New(rand.NewPCG(3, 7))
	sizes := []int{1, 5, 6, 7, 12, 15, 16, 17, 33}
	scales := [][2]float32{{1, 0}, {1, 1}, {-0.5, 0}, {2.5, -1.5}, {1, 0.25}}
	i := 0
	for _, m := range sizes {
		for _, n := range sizes {
			for _, k := range []int{1, 2, 7, 16, 31} {
				for tr := range 4 {
					s := scales[i%len(scales)]
					i++
					checkSgemm(t, impls, rng, sgemmCase{m: m, n: n, k: k, transA: tr&1 != 0, transB: tr&2 != 0, alpha: s[0], beta: s[1], pad: i % 3 * 2})
				}
			}
		}
	}
}

// TestSgemmBlocks crosses the packed blocks' boundaries: rows past
// sgemmMC, depths past sgemmKC (odd ones included) and columns past
// sgemmNC.
func TestSgemmBlocks(t *testing.T) {
	impls := sgemmImpls(t)
	rng := rand.New(rand.NewPCG(5, 11))
	for _, c := range []sgemmCase{
		{m: 150, n: 40, k: 600, alpha: 1, beta: 0},
		{m: 73, n: 35, k: 257, transA: true, alpha: -1, beta: 1, pad: 5},
		{m: 64, n: 33, k: 513, transB: true, alpha: 0.5, beta: 0, pad: 1},
		{m: 8, n: 2100, k: 300, alpha: 1, beta: 0.5},
		{m: 13, n: 2049, k: 17, transA: true, transB: true, alpha: 1, beta: 0, pad: 3},
		{m: 145, n: 100, k: 255, transB: true, alpha: 2, beta: -1},
	} {
		checkSgemm(t, impls, rng, c)
	}
}

// TestSgemmReusesScratch runs products of shrinking and growing sizes on
// one scratch, as a kernel closure does across runs.
func TestSgemmReusesScratch(t *testing.T) {
	impls := sgemmImpls(t)
	rng := rand.New(rand.NewPCG(9, 1))
	for _, size := range []int{70, 3, 300, 17, 90} {
		checkSgemm(t, impls, rng, sgemmCase{m: size, n: size + 1, k: size + 2, alpha: 1, beta: 0})
	}
}

// TestConvSgemmLayouts runs Conv on shapes that reach each layout of
// convSgemm and the corners of each (several products of lane groups, a
// last partial group, phases of strides with dilations, 1-D and 3-D,
// depths past sgemmKC, grids past sgemmNC columns) and compares with Conv
// by its definition. Without the micro-kernel they run through im2col.
func TestConvSgemmLayouts(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 19))
	for _, c := range []struct {
		convCase
		lanes bool
	}{
		{convCase{name: "lanes, two products", x: []int{300, 2, 4, 4}, w: []int{5, 2, 3, 3}, pads: []int{1, 1, 1, 1}, bias: true}, true},
		{convCase{name: "lanes, groups strides dilations", x: []int{40, 4, 7, 6}, w: []int{6, 2, 3, 2}, group: 2,
			strides: []int{2, 1}, dilations: []int{1, 2}, pads: []int{1, 0, 2, 1}, bias: true}, true},
		{convCase{name: "lanes, 3-D", x: []int{20, 2, 3, 4, 3}, w: []int{3, 2, 2, 3, 2}, strides: []int{1, 2, 2}, pads: []int{1, 0, 1, 0, 1, 1}}, true},
		{convCase{name: "lanes, depth past a block", x: []int{32, 40, 3, 3}, w: []int{7, 40, 3, 3}, pads: []int{1, 1, 1, 1}, bias: true}, true},
		{convCase{name: "lanes, 1-D", x: []int{33, 3, 5}, w: []int{4, 3, 3}, pads: []int{1, 1}}, true},
		{convCase{name: "grid, X itself", x: []int{1, 3, 9, 20}, w: []int{4, 3, 3, 3}, bias: true}, false},
		{convCase{name: "grid, 1x1 stride 2 into Y", x: []int{1, 8, 6, 7}, w: []int{4, 8, 1, 1}, strides: []int{2, 2}, bias: true}, false},
		{convCase{name: "grid, strides dilations pads", x: []int{2, 3, 11, 10}, w: []int{5, 3, 3, 2}, strides: []int{3, 2},
			dilations: []int{2, 3}, pads: []int{2, 1, 0, 3}, bias: true}, false},
		{convCase{name: "grid, past the blocks", x: []int{1, 32, 50, 50}, w: []int{8, 32, 3, 3}, pads: []int{1, 1, 1, 1}, bias: true}, false},
		{convCase{name: "grid, groups 3-D", x: []int{1, 4, 5, 4, 6}, w: []int{6, 2, 2, 3, 3}, group: 2, strides: []int{2, 1, 2}, pads: []int{0, 1, 1, 1, 0, 1}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			win := windowAttrs{strides: c.attr(c.strides, 1), dilations: c.attr(c.dilations, 1), pads: c.pads, autoPad: "NOTSET"}
			g, err := win.forward(c.x[2:], c.w[2:])
			if err != nil {
				t.Fatal(err)
			}
			s := convShape{batch: c.x[0], inChannels: c.x[1], outChannels: c.w[0], group: max(c.group, 1), geometry: g}
			if lanes, _, _ := convLayout(&s); lanes != c.lanes {
				t.Fatalf("convLayout chose lanes=%t, the case is meant for lanes=%t", lanes, c.lanes)
			}
			in := c.inputs(rng, c.w[0])
			out, err := c.call("Conv").run(in...)
			if err != nil {
				t.Fatal(err)
			}
			var b []float64
			if c.bias {
				b = float64s(in[2])
			}
			want, shape := c.referenceConv(float64s(in[0]), float64s(in[1]), b)
			checkAgainst(t, out[0], shape, want)
		})
	}
}

// TestSgemmWorkers runs products large enough to be split between
// goroutines with three Ps (an uneven split, the last share narrower),
// and on one.
func TestSgemmWorkers(t *testing.T) {
	impls := sgemmImpls(t)
	rng := rand.New(rand.NewPCG(47, 53))
	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(0))
	for _, procs := range []int{3, 1} {
		goruntime.GOMAXPROCS(procs)
		for _, c := range []sgemmCase{
			{m: 64, n: 300, k: 300, alpha: 1, beta: 0},
			{m: 37, n: 2500, k: 70, transB: true, alpha: 1, beta: 0.5, pad: 2},
		} {
			if got := sgemmWorkers(c.m, c.n, c.k); got != procs {
				t.Errorf("%v with %d Ps: %d workers", c, procs, got)
			}
			checkSgemm(t, impls, rng, c)
		}
	}
}

// TestConvLayoutBoundsLanes checks that sixteen large images, which the
// lanes would compute in slightly fewer tiles than the grid, go to the
// grid, whose copy of X is sixteen times smaller.
func TestConvLayoutBoundsLanes(t *testing.T) {
	win := windowAttrs{pads: []int{1, 1, 1, 1}, autoPad: "NOTSET"}
	g, err := win.forward([]int{224, 224}, []int{3, 3})
	if err != nil {
		t.Fatal(err)
	}
	s := convShape{batch: 16, inChannels: 64, outChannels: 64, group: 1, geometry: g}
	if lanes, _, _ := convLayout(&s); lanes {
		t.Errorf("16×64×224×224 goes to the lanes, a copy of %d floats", 16*64*226*226)
	}
}
