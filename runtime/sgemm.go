package runtime

import (
	goruntime "runtime"
	"sync"
)

// The single-precision product behind Conv, Gemm and MatMul follows BLIS:
// op(B) is packed in blocks of sgemmKC rows by sgemmNC columns, cut into
// panels sgemmNR columns wide, and op(A) in blocks of sgemmMC rows by
// sgemmKC, cut into panels of the micro-kernel's height (mr), both laid
// out so that the micro-kernel reads them in order. The micro-kernel
// computes one mr×sgemmNR tile of C in registers over a block's depth.
// There are two, in assembly for amd64 (sgemm_amd64.s):
//
//   - AVX2 and FMA, 6×16: 12 accumulators of 8 lanes, each k step two
//     vector loads of B, six broadcasts of A and twelve multiply-adds;
//   - AVX-512, 16×16: a 16-lane accumulator per row, each k step one load
//     of B and sixteen multiply-adds broadcasting A from memory. It is 5%
//     faster on this project's machine (AMD Zen 4) and its tiles fit the
//     channel counts of networks, multiples of 16, where 6×16 computes
//     up to 12% in vain (measured: 107 against 100 GFLOP/s).
//
// sgemmKernelFast reports whether one runs here and sgemmKernelHere picks
// it. Where none does, gemmInto goes through gonum and Conv through
// im2col.
const (
	sgemmNR    = 16
	sgemmMaxMR = 16
	// An A block (96×256 floats, 96 KB, whole tiles of both kernels)
	// stays in L2 while the B panels stream through it; a B panel (256×16,
	// 16 KB) stays in L1 while the block's tiles run over it.
	sgemmMC = 96
	sgemmKC = 256
	sgemmNC = 2048
)

// A sgemmKernel is a micro-kernel: its tile height and its two forms,
// which read B from a packed panel (tile) or in place (rows, see
// offsetB).
type sgemmKernel struct {
	mr   int
	tile func(k int, a, b, c *float32, ldc int, accumulate bool)
	rows func(k int, a, b *float32, rowOff *int, c *float32, ldc int, accumulate bool)
}

// sgemmScratch is the working memory of packed products: the packed
// blocks and a tile for the edges of C. A kernel closure owns one and
// reuses it on every run.
type sgemmScratch struct {
	a, b []float32
	tile [sgemmMaxMR * sgemmNR]float32
	// helpers are the scratch of the goroutines that share a product
	// with this one's.
	helpers []sgemmScratch
	// The operands of the product in progress live here rather than on
	// the heap, where passing them as interfaces would put them on each
	// call.
	opA      sgemmA
	opMatrix matrixB
	opOffset offsetB
}

// sgemmB packs blocks of the right operand into panels: pack writes rows
// [pc, pc+kc) and columns [jc, jc+nc) of the operand into dst, panel q
// (columns jc+q*sgemmNR...) at dst[q*sgemmNR*kc:], row l of a panel at
// offset l*sgemmNR, with the columns past nc zero.
type sgemmB interface {
	pack(dst []float32, pc, kc, jc, nc int)
}

// matrixB is op(B) of a row-major matrix b.
type matrixB struct {
	trans bool
	b     []float32
	ld    int
}

func (m *matrixB) pack(dst []float32, pc, kc, jc, nc int) {
	for q := 0; q < nc; q += sgemmNR {
		panel := dst[q*kc:][:sgemmNR*kc]
		cols := min(sgemmNR, nc-q)
		if !m.trans {
			for l := range kc {
				out := panel[l*sgemmNR:][:sgemmNR]
				copy(out, m.b[(pc+l)*m.ld+jc+q:][:cols])
				clear(out[cols:])
			}
			continue
		}
		for j := range cols {
			src := m.b[(jc+q+j)*m.ld+pc:][:kc]
			for l, v := range src {
				panel[l*sgemmNR+j] = v
			}
		}
		for j := cols; j < sgemmNR; j++ {
			for l := range kc {
				panel[l*sgemmNR+j] = 0
			}
		}
	}
}

// offsetB is a matrix whose panels of sgemmNR columns have consecutive
// rows: row l of the panel of columns [16p, 16p+16) starts at
// src[rowOff[l]+colOff[p]]. A panel may run past src's end only where its
// columns do past the matrix's. Conv's im2col matrix is one, read from a
// copy of X.
type offsetB struct {
	src            []float32
	rowOff, colOff []int
	// span, when positive, lets the micro-kernel read the panels in place
	// instead of packing them: every row of panel p then lies within
	// src[colOff[p]:][:span].
	span int
}

func (b *offsetB) pack(dst []float32, pc, kc, jc, nc int) {
	rowOff := b.rowOff[pc:][:kc]
	// Panels within span of their first column go through the assembly
	// copy, with the bounds checked once (b.span is set by readInPlace,
	// or here).
	span := b.span
	if span <= 0 {
		for _, off := range rowOff {
			span = max(span, off+sgemmNR)
		}
	}
	for q := 0; q < nc; q += sgemmNR {
		panel := dst[q*kc:][:sgemmNR*kc]
		base := b.colOff[(jc+q)/sgemmNR]
		if base+span <= len(b.src) {
			sgemmPackRows(&panel[0], &b.src[base], &rowOff[0], kc)
			continue
		}
		for l, off := range rowOff {
			out := (*[sgemmNR]float32)(panel[l*sgemmNR:])
			at := base + off
			if at+sgemmNR <= len(b.src) {
				*out = *(*[sgemmNR]float32)(b.src[at:])
				continue
			}
			// Columns past the matrix's end may hold anything: no
			// column of C depends on another's.
			copy(out[:], b.src[at:])
		}
	}
}

// readInPlace sets b.span so that the micro-kernel reads b's panels in
// place, which saves packing them when its rows are whole cache lines.
// Every panel must lie within src.
func (b *offsetB) readInPlace() {
	b.span = 0
	for _, off := range b.rowOff {
		b.span = max(b.span, off+sgemmNR)
	}
}

// sgemmA is the left operand: alpha×op(a), either a row-major matrix
// packed block by block, or packed whole beforehand (packed non-nil), in
// panels of kernel's height.
type sgemmA struct {
	kernel sgemmKernel
	trans  bool
	alpha  float32
	a      []float32
	ld     int
	// packed holds, for each block of sgemmKC rows of op(A)'s columns
	// starting at pc, the panels of all m rows: the panel of rows i...
	// starts at packed[pc*roundUp(m, mr)+i*kc].
	packed []float32
}

// roundUp rounds n up to a multiple of unit.
func roundUp(n, unit int) int { return (n + unit - 1) / unit * unit }

// packSgemmA packs alpha×op(a), m×k, whole, in the layout of
// sgemmA.packed for panels of height mr, into dst (which it grows as
// needed) and returns it.
func packSgemmA(dst []float32, mr int, trans bool, alpha float32, a []float32, lda, m, k int) []float32 {
	mp := roundUp(m, mr)
	dst = scratchSlice(&dst, mp*k)
	for pc := 0; pc < k; pc += sgemmKC {
		kc := min(sgemmKC, k-pc)
		packABlock(dst[pc*mp:], mr, trans, alpha, a, lda, 0, m, pc, kc)
	}
	return dst
}

// block returns the panels of rows [ic, ic+mc) over columns [pc, pc+kc)
// of alpha×op(a), packing them into s.a unless a is packed whole.
func (a *sgemmA) block(s *sgemmScratch, m, ic, mc, pc, kc int) []float32 {
	mr := a.kernel.mr
	if a.packed != nil {
		return a.packed[pc*roundUp(m, mr)+ic*kc:]
	}
	dst := scratchSlice(&s.a, roundUp(mc, mr)*kc)
	packABlock(dst, mr, a.trans, a.alpha, a.a, a.ld, ic, mc, pc, kc)
	return dst
}

// packABlock writes alpha × the mc×kc block of op(a) at (ic, pc) into
// panels of mr rows: panel p holds, for each l, rows p*mr... of
// column l, zero past mc.
func packABlock(dst []float32, mr int, trans bool, alpha float32, a []float32, lda, ic, mc, pc, kc int) {
	for p := 0; p < mc; p += mr {
		panel := dst[p*kc:][:mr*kc]
		rows := min(mr, mc-p)
		if trans {
			for l := range kc {
				src := a[(pc+l)*lda+ic+p:][:rows]
				out := panel[l*mr:][:mr]
				for i, v := range src {
					out[i] = alpha * v
				}
				clear(out[rows:])
			}
			continue
		}
		for i := range rows {
			src := a[(ic+p+i)*lda+pc:][:kc]
			for l, v := range src {
				panel[l*mr+i] = alpha * v
			}
		}
		for i := rows; i < mr; i++ {
			for l := range kc {
				panel[l*mr+i] = 0
			}
		}
	}
}

// sgemmBlocked computes c = a×b + beta×c, a m×k and b k×n, with the
// micro-kernel, which must run here (sgemmKernelFast). k must be
// positive. With beta 0, c is only written, so NaNs in it do not reach the
// result. With more than one P, a large product's columns are split
// between goroutines (sgemmWorkers), each with scratch of its own.
func sgemmBlocked(s *sgemmScratch, m, n, k int, a *sgemmA, b sgemmB, beta float32, c []float32, ldc int) {
	if beta != 0 && beta != 1 {
		for i := range m {
			row := c[i*ldc:][:n]
			for j := range row {
				row[j] *= beta
			}
		}
	}
	workers := sgemmWorkers(m, n, k)
	if workers == 1 {
		sgemmColumns(s, m, 0, n, k, a, b, beta, c, ldc)
		return
	}
	if len(s.helpers) < workers-1 {
		s.helpers = make([]sgemmScratch, workers-1)
	}
	// Panel-aligned shares, so that each worker's panels are whole.
	share := roundUp((n+workers-1)/workers, sgemmNR)
	var wg sync.WaitGroup
	for w := 1; w < workers && w*share < n; w++ {
		wg.Go(func() {
			sgemmColumns(&s.helpers[w-1], m, w*share, min(n, (w+1)*share), k, a, b, beta, c, ldc)
		})
	}
	sgemmColumns(s, m, 0, min(n, share), k, a, b, beta, c, ldc)
	wg.Wait()
}

// sgemmParallelFlops is the size of product, in floating-point
// operations, from which sgemmBlocked splits it between goroutines: a
// few hundred microseconds of work, against a few for starting and
// waiting for one.
const sgemmParallelFlops = 1 << 23

// sgemmWorkers returns how many goroutines compute an m×n×k product: one
// per P for a large product with a panel of columns for each, else one.
func sgemmWorkers(m, n, k int) int {
	if 2*m*n*k < sgemmParallelFlops {
		return 1
	}
	return max(1, min(goruntime.GOMAXPROCS(0), n/sgemmNR))
}

// sgemmColumns is sgemmBlocked on columns [j0, j1) of b and c, j0 a
// multiple of sgemmNR, with beta already applied but for 0.
func sgemmColumns(s *sgemmScratch, m, j0, j1, k int, a *sgemmA, b sgemmB, beta float32, c []float32, ldc int) {
	inPlace, _ := b.(*offsetB)
	if inPlace != nil && inPlace.span <= 0 {
		inPlace = nil
	}
	var bp []float32
	if inPlace == nil {
		bp = scratchSlice(&s.b, roundUp(min(j1-j0, sgemmNC), sgemmNR)*min(k, sgemmKC))
	}
	for jc := j0; jc < j1; jc += sgemmNC {
		nc := min(sgemmNC, j1-jc)
		for pc := 0; pc < k; pc += sgemmKC {
			kc := min(sgemmKC, k-pc)
			if inPlace == nil {
				b.pack(bp, pc, kc, jc, nc)
			}
			// The first block of the depth overwrites c when beta is 0.
			accumulate := pc > 0 || beta != 0
			for ic := 0; ic < m; ic += sgemmMC {
				mc := min(sgemmMC, m-ic)
				ap := a.block(s, m, ic, mc, pc, kc)
				if inPlace != nil {
					sgemmMacroInPlace(s, a.kernel, mc, nc, kc, ap, inPlace, pc, jc, c[ic*ldc+jc:], ldc, accumulate)
					continue
				}
				sgemmMacro(s, a.kernel, mc, nc, kc, ap, bp, c[ic*ldc+jc:], ldc, accumulate)
			}
		}
	}
}

// sgemmMacro runs the micro-kernel over the mc×nc block of c from the
// packed blocks ap and bp of depth kc.
func sgemmMacro(s *sgemmScratch, kern sgemmKernel, mc, nc, kc int, ap, bp, c []float32, ldc int, accumulate bool) {
	// The slicing checks the bounds of what the kernel reads and writes.
	for jr := 0; jr < nc; jr += sgemmNR {
		nr := min(sgemmNR, nc-jr)
		bpanel := bp[jr*kc : (jr+sgemmNR)*kc]
		for ir := 0; ir < mc; ir += kern.mr {
			mr := min(kern.mr, mc-ir)
			apanel := ap[ir*kc : (ir+kern.mr)*kc]
			if mr == kern.mr && nr == sgemmNR {
				tile := c[ir*ldc+jr : (ir+kern.mr-1)*ldc+jr+sgemmNR]
				kern.tile(kc, &apanel[0], &bpanel[0], &tile[0], ldc, accumulate)
				continue
			}
			// An edge tile goes through s.tile, as the kernel writes
			// whole tiles.
			kern.tile(kc, &apanel[0], &bpanel[0], &s.tile[0], sgemmNR, false)
			s.addTile(c[ir*ldc+jr:], ldc, mr, nr, accumulate)
		}
	}
}

// sgemmMacroInPlace is sgemmMacro reading the block of b at rows
// [pc, pc+kc) and columns [jc, jc+nc) in place.
func sgemmMacroInPlace(s *sgemmScratch, kern sgemmKernel, mc, nc, kc int, ap []float32, b *offsetB, pc, jc int, c []float32, ldc int, accumulate bool) {
	rowOff := b.rowOff[pc:][:kc]
	for jr := 0; jr < nc; jr += sgemmNR {
		nr := min(sgemmNR, nc-jr)
		base := b.colOff[(jc+jr)/sgemmNR]
		src := b.src[base : base+b.span]
		for ir := 0; ir < mc; ir += kern.mr {
			mr := min(kern.mr, mc-ir)
			apanel := ap[ir*kc : (ir+kern.mr)*kc]
			if mr == kern.mr && nr == sgemmNR {
				tile := c[ir*ldc+jr : (ir+kern.mr-1)*ldc+jr+sgemmNR]
				kern.rows(kc, &apanel[0], &src[0], &rowOff[0], &tile[0], ldc, accumulate)
				continue
			}
			kern.rows(kc, &apanel[0], &src[0], &rowOff[0], &s.tile[0], sgemmNR, false)
			s.addTile(c[ir*ldc+jr:], ldc, mr, nr, accumulate)
		}
	}
}

// addTile writes, or with accumulate adds, the first mr×nr elements of
// s.tile to c.
func (s *sgemmScratch) addTile(c []float32, ldc, mr, nr int, accumulate bool) {
	for i := range mr {
		row := c[i*ldc:][:nr]
		t := s.tile[i*sgemmNR:][:nr]
		if !accumulate {
			copy(row, t)
			continue
		}
		for j, v := range t {
			row[j] += v
		}
	}
}
