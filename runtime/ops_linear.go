package runtime

import (
	"fmt"
	goruntime "runtime"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"onnxopt/graph"
	"onnxopt/onnx"
)

var linearOps = []opDef{
	// Gemm-1 and -6 take a broadcast attribute; from 7 C broadcasts
	// unidirectionally; from 11 C is optional. 9 and 13 add types only.
	{"", "Gemm", 1, compileGemm(1)},
	{"", "Gemm", 7, compileGemm(7)},
	{"", "Gemm", 11, compileGemm(11)},
	// MatMul-9 and -13 add types only.
	{"", "MatMul", 1, compileMatMul},
}

// blasFloat is an element type gonum's BLAS computes in.
type blasFloat interface{ float32 | float64 }

// gemmInto computes c = alpha*op(a)*op(b) + beta*c on row-major matrices,
// where op transposes when its flag is set, op(a) is m×k and op(b) is k×n.
// Unlike BLAS it accepts k == 0 (c is then scaled by beta) and leading
// dimensions of empty matrices. As in BLAS, beta == 0 overwrites c, NaNs
// included.
//
// Large float32 products go through the packed micro-kernel where it
// runs (sgemm.go), with working memory allocated for the call; kernels
// that run products on every run call sgemmInto with memory they keep.
// Other products go through gonum, whose Sgemm skips the products of a
// zero element of a, so that a NaN or infinity in b meeting a zero in a
// does not reach c there.
func gemmInto[T blasFloat](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		for i := range m {
			row := c[i*ldc : i*ldc+n]
			if beta == 0 {
				clear(row)
				continue
			}
			for j := range row {
				row[j] *= beta
			}
		}
		return
	}
	if c32, ok := any(c).([]float32); ok && sgemmKernelFast() && m >= ownScratchRows && 2*m*n*k >= ownScratchFlops {
		sgemmInto(new(sgemmScratch), transA, transB, m, n, k, float32(alpha), any(a).([]float32), lda, any(b).([]float32), ldb, float32(beta), c32, ldc)
		return
	}
	gemmGonum(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmInto packs a product with memory of its own when A has enough rows
// to reuse each packed panel of B and the product takes long enough that
// allocating its panels (up to 2 MB) costs little: an LSTM's products of
// a few rows at each step would otherwise allocate 60 times the memory
// for no gain in time (measured: 9 MB against 0.15 MB a run).
const (
	ownScratchRows  = 32
	ownScratchFlops = 1 << 24
)

// sgemmMinRows is the fewest rows that sgemmInto packs a product for
// (measured: 8 rows by 1000 by 512, 0.48 ms packed against 0.64 ms
// through gonum; 4 rows, 0.50 against 0.36).
const sgemmMinRows = 8

// sgemmInto is gemmInto for float32 with the working memory s of the
// packed product, which the caller keeps across calls. Products of fewer
// than sgemmMinRows rows go through gonum: packing B costs more than
// computing them (measured: ResNet-18's classifier, one row by 1000 by
// 512, 0.09 ms through gonum against 0.5 ms packed).
func sgemmInto(s *sgemmScratch, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m < sgemmMinRows || n == 0 || k == 0 || !sgemmKernelFast() {
		gemmInto(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	s.opA = sgemmA{kernel: sgemmKernelHere(), trans: transA, alpha: alpha, a: a, ld: lda}
	s.opMatrix = matrixB{trans: transB, b: b, ld: ldb}
	sgemmBlocked(s, m, n, k, &s.opA, &s.opMatrix, beta, c, ldc)
}

// gemm is sgemmInto on s, as a gemmFunc.
func (s *sgemmScratch) gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemmInto(s, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmGonum is gemmInto through gonum's Gemm, for positive m, n and k.
func gemmGonum[T blasFloat](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if goruntime.GOMAXPROCS(0) > 1 {
		blasGemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	// gonum runs each 64×64 block of c on a goroutine of its own once
	// there are four blocks or more, which allocates for each; with one P
	// nothing runs in parallel, so c goes in serialRows×serialCols blocks
	// (three of gonum's, so serial), accumulating over serialDepth slices of
	// the inner dimension, which keeps the slice of b in cache. Blocks 192
	// wide beat gonum's own 64 (measured: 15 against 12 GFLOP/s on the
	// models' shapes).
	for i := 0; i < m; i += serialRows {
		bm := min(serialRows, m-i)
		for j := 0; j < n; j += serialCols {
			bn := min(serialCols, n-j)
			cBlock := c[i*ldc+j:]
			blockBeta := beta
			for l := 0; l < k; l += serialDepth {
				bk := min(serialDepth, k-l)
				aAt, bAt := i*lda+l, l*ldb+j
				if transA {
					aAt = l*lda + i
				}
				if transB {
					bAt = j*ldb + l
				}
				aBlock, bBlock := a[aAt:], b[bAt:]
				blasGemm(transA, transB, bm, bn, bk, alpha, aBlock, lda, bBlock, ldb, blockBeta, cBlock, ldc)
				blockBeta = 1
			}
		}
	}
}

// The blocks of a product on one P; see gemmInto.
const (
	serialRows  = 64
	serialCols  = 192
	serialDepth = 64
)

// blasGemm calls gonum's Gemm.
func blasGemm[T blasFloat](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	tA, tB := blas.NoTrans, blas.NoTrans
	if transA {
		tA = blas.Trans
	}
	if transB {
		tB = blas.Trans
	}
	// The implementation is named directly, not through blas32.Use, so
	// that nothing global decides which code runs.
	var impl gonum.Implementation
	switch a := any(a).(type) {
	case []float32:
		impl.Sgemm(tA, tB, m, n, k, float32(alpha), a, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		impl.Dgemm(tA, tB, m, n, k, float64(alpha), a, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// gemmIntegers is gemmInto for integer types, with plain loops. alpha and
// beta are applied in T, as integer Gemm has no other meaningful type.
func gemmIntegers[T int32 | int64 | uint32 | uint64](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		for j := range row {
			var sum T
			for l := range k {
				ai, bi := i*lda+l, l*ldb+j
				if transA {
					ai = l*lda + i
				}
				if transB {
					bi = j*ldb + l
				}
				sum += a[ai] * b[bi]
			}
			if beta == 0 {
				row[j] = alpha * sum
			} else {
				row[j] = alpha*sum + beta*row[j]
			}
		}
	}
}

// narrowFloat32s rounds values computed in float32 to the float16 or
// bfloat16 type dt that holds them; for other types it does nothing.
func narrowFloat32s(dt onnx.TensorProto_DataType, data []float32) {
	switch dt {
	case onnx.TensorProto_FLOAT16:
		for i, v := range data {
			data[i] = onnx.Float16frombits(onnx.Float16bits(v))
		}
	case onnx.TensorProto_BFLOAT16:
		for i, v := range data {
			data[i] = onnx.BFloat16frombits(onnx.BFloat16bits(v))
		}
	}
}

// isFloat32Compute reports whether tensors of dt hold []float32.
func isFloat32Compute(dt onnx.TensorProto_DataType) bool {
	return dt == onnx.TensorProto_FLOAT || dt == onnx.TensorProto_FLOAT16 || dt == onnx.TensorProto_BFLOAT16
}

type gemmAttrs struct {
	alpha, beta    float32
	transA, transB bool
	// cRequired holds before opset 11, where C is a required input.
	cRequired bool
	// exactC holds for Gemm-1 and -6 without broadcast=1: C must then
	// have the output's shape.
	exactC bool
}

func compileGemm(since int64) func(n *graph.Node) (kernel, error) {
	return func(n *graph.Node) (kernel, error) {
		g := gemmAttrs{
			alpha:     n.AttrFloat("alpha", 1),
			beta:      n.AttrFloat("beta", 1),
			transA:    n.AttrInt("transA", 0) != 0,
			transB:    n.AttrInt("transB", 0) != 0,
			cRequired: since < 11,
			exactC:    since < 7 && n.AttrInt("broadcast", 0) == 0,
		}
		var scratch sgemmScratch
		return func(e *env, in []*Tensor) ([]*Tensor, error) {
			return g.run(e, in, &scratch)
		}, nil
	}
}

func (g gemmAttrs) run(e *env, in []*Tensor, scratch *sgemmScratch) ([]*Tensor, error) {
	if len(in) < 2 || in[0] == nil || in[1] == nil {
		return nil, fmt.Errorf("Gemm needs inputs A and B")
	}
	a, b := in[0], in[1]
	var c *Tensor
	if len(in) > 2 {
		c = in[2]
	}
	if c == nil && g.cRequired {
		return nil, fmt.Errorf("Gemm before opset 11 needs input C")
	}
	if a.Rank() != 2 || b.Rank() != 2 {
		return nil, fmt.Errorf("Gemm needs 2-D A and B, got A %s and B %s", a, b)
	}
	if a.DType != b.DType || (c != nil && c.DType != a.DType) {
		return nil, fmt.Errorf("Gemm inputs differ in type: A %s, B %s, C %s", a, b, c)
	}
	m, k := a.Shape[0], a.Shape[1]
	if g.transA {
		m, k = k, m
	}
	kb, n := b.Shape[0], b.Shape[1]
	if g.transB {
		kb, n = n, kb
	}
	if k != kb {
		return nil, fmt.Errorf("Gemm inner dimensions differ: op(A) is %dx%d, op(B) is %dx%d (A %s transA=%t, B %s transB=%t)",
			m, k, kb, n, a, g.transA, b, g.transB)
	}
	outShape := []int{m, n}
	if c != nil {
		if g.exactC && !sameShape(c.Shape, outShape) {
			return nil, fmt.Errorf("Gemm C %s must have the output shape %v without broadcast=1", c, outShape)
		}
		if err := unidirectional(c.Shape, outShape); err != nil {
			return nil, fmt.Errorf("Gemm C: %w", err)
		}
	}
	y, err := e.output(0, a.DType, m, n)
	if err != nil {
		return nil, err
	}
	// With C, it is first expanded into y and then accumulated on.
	useC := c != nil && g.beta != 0
	switch yd := y.Data.(type) {
	case []float32:
		gemmFloat(g, a.Data.([]float32), a.Shape[1], b.Data.([]float32), b.Shape[1], c, useC, yd, m, n, k, scratch.gemm)
		narrowFloat32s(y.DType, yd)
	case []float64:
		gemmFloat(g, a.Data.([]float64), a.Shape[1], b.Data.([]float64), b.Shape[1], c, useC, yd, m, n, k, gemmInto[float64])
	case []int32:
		gemmInteger(g, a.Data.([]int32), a.Shape[1], b.Data.([]int32), b.Shape[1], c, useC, yd, m, n, k)
	case []int64:
		gemmInteger(g, a.Data.([]int64), a.Shape[1], b.Data.([]int64), b.Shape[1], c, useC, yd, m, n, k)
	case []uint32:
		gemmInteger(g, a.Data.([]uint32), a.Shape[1], b.Data.([]uint32), b.Shape[1], c, useC, yd, m, n, k)
	case []uint64:
		gemmInteger(g, a.Data.([]uint64), a.Shape[1], b.Data.([]uint64), b.Shape[1], c, useC, yd, m, n, k)
	default:
		return nil, fmt.Errorf("Gemm does not compute in %s", dtypeName(a.DType))
	}
	return []*Tensor{y}, nil
}

func gemmFloat[T blasFloat](g gemmAttrs, a []T, lda int, b []T, ldb int, c *Tensor, useC bool, y []T, m, n, k int, gemm gemmFunc[T]) {
	beta := T(0)
	if useC {
		expandInto(y, []int{m, n}, c.Data.([]T), c.Shape)
		beta = T(g.beta)
	}
	gemm(g.transA, g.transB, m, n, k, T(g.alpha), a, lda, b, ldb, beta, y, n)
}

func gemmInteger[T int32 | int64 | uint32 | uint64](g gemmAttrs, a []T, lda int, b []T, ldb int, c *Tensor, useC bool, y []T, m, n, k int) {
	beta := T(0)
	if useC {
		expandInto(y, []int{m, n}, c.Data.([]T), c.Shape)
		beta = T(g.beta)
	}
	gemmIntegers(g.transA, g.transB, m, n, k, T(g.alpha), a, lda, b, ldb, beta, y, n)
}

// compileMatMul returns MatMul's kernel: numpy's matmul, where a 1-D A is
// a row and a 1-D B a column (the added dimension is dropped from the
// result) and the dimensions before the last two broadcast.
func compileMatMul(n *graph.Node) (kernel, error) {
	var scratch sgemmScratch
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		return runMatMul(e, in, &scratch)
	}, nil
}

func runMatMul(e *env, in []*Tensor, scratch *sgemmScratch) ([]*Tensor, error) {
	if len(in) < 2 || in[0] == nil || in[1] == nil {
		return nil, fmt.Errorf("MatMul needs inputs A and B")
	}
	a, b := in[0], in[1]
	if a.DType != b.DType {
		return nil, fmt.Errorf("MatMul inputs differ in type: A %s, B %s", a, b)
	}
	if a.Rank() == 0 || b.Rank() == 0 {
		return nil, fmt.Errorf("MatMul needs inputs of rank 1 or more, got A %s and B %s", a, b)
	}
	aShape, bShape := a.Shape, b.Shape
	if a.Rank() == 1 {
		aShape = []int{1, aShape[0]}
	}
	if b.Rank() == 1 {
		bShape = []int{bShape[0], 1}
	}
	m, k := aShape[len(aShape)-2], aShape[len(aShape)-1]
	kb, n := bShape[len(bShape)-2], bShape[len(bShape)-1]
	if k != kb {
		return nil, fmt.Errorf("MatMul inner dimensions differ: A %s has %d columns, B %s has %d rows", a, k, b, kb)
	}
	aBatch, bBatch := aShape[:len(aShape)-2], bShape[:len(bShape)-2]
	batch, err := broadcastShapes(aBatch, bBatch)
	if err != nil {
		return nil, fmt.Errorf("MatMul batch dimensions of A %s and B %s: %w", a, b, err)
	}
	outShape := append([]int(nil), batch...)
	if a.Rank() > 1 {
		outShape = append(outShape, m)
	}
	if b.Rank() > 1 {
		outShape = append(outShape, n)
	}
	y, err := e.output(0, a.DType, outShape...)
	if err != nil {
		return nil, err
	}
	mm := matmulShape{m: m, n: n, k: k, batch: batch, aBatch: aBatch, bBatch: bBatch}
	switch yd := y.Data.(type) {
	case []float32:
		matmulBatches(mm, a.Data.([]float32), b.Data.([]float32), yd, scratch.gemm)
		narrowFloat32s(y.DType, yd)
	case []float64:
		matmulBatches(mm, a.Data.([]float64), b.Data.([]float64), yd, gemmInto[float64])
	case []int32:
		matmulBatches(mm, a.Data.([]int32), b.Data.([]int32), yd, gemmIntegers[int32])
	case []int64:
		matmulBatches(mm, a.Data.([]int64), b.Data.([]int64), yd, gemmIntegers[int64])
	case []uint32:
		matmulBatches(mm, a.Data.([]uint32), b.Data.([]uint32), yd, gemmIntegers[uint32])
	case []uint64:
		matmulBatches(mm, a.Data.([]uint64), b.Data.([]uint64), yd, gemmIntegers[uint64])
	default:
		return nil, fmt.Errorf("MatMul does not compute in %s", dtypeName(a.DType))
	}
	return []*Tensor{y}, nil
}

// matmulShape is a MatMul's geometry: each batch element multiplies an
// m×k matrix by a k×n one.
type matmulShape struct {
	m, n, k               int
	batch, aBatch, bBatch []int
}

type gemmFunc[T any] func(transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int)

func matmulBatches[T int32 | int64 | uint32 | uint64 | float32 | float64](s matmulShape, a, b, y []T, gemm gemmFunc[T]) {
	m, n, k := s.m, s.n, s.k
	batches := 1
	for _, d := range s.batch {
		batches *= d
	}
	bCount := 1
	for _, d := range s.bBatch {
		bCount *= d
	}
	if batches == 0 || m == 0 || n == 0 {
		return
	}
	if bCount == 1 {
		// One B for every batch: A's batches are consecutive rows of a
		// single taller product.
		gemm(false, false, batches*m, n, k, 1, a, k, b, n, 0, y, n)
		return
	}
	// Each output batch element reads the A and B batch elements it
	// broadcasts from.
	it := newBroadcastIter(s.batch, s.aBatch, s.bBatch)
	for ; it.rows > 0; it.next() {
		for j := range it.inner {
			ai := it.offs[0] + j*it.steps[0]
			bi := it.offs[1] + j*it.steps[1]
			yi := it.out + j
			gemm(false, false, m, n, k, 1, a[ai*m*k:(ai+1)*m*k], k, b[bi*k*n:(bi+1)*k*n], n, 0, y[yi*m*n:(yi+1)*m*n], n)
		}
	}
}
