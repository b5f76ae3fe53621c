//go:build !purego

#include "textflag.h"

// func reluFloat32s(o, x *float32, n int)
//
// o[i] = max(0, x[i]) for n elements, n a positive multiple of 32. NaN
// stays NaN: VMAXPS returns its second source when either is NaN.
TEXT ·reluFloat32s(SB), NOSPLIT, $0-24
	MOVQ o+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0

reluLoop:
	VMAXPS (SI), Y0, Y1
	VMAXPS 32(SI), Y0, Y2
	VMAXPS 64(SI), Y0, Y3
	VMAXPS 96(SI), Y0, Y4
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	VMOVUPS Y3, 64(DI)
	VMOVUPS Y4, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JNZ reluLoop
	VZEROUPPER
	RET

// func maxFloat32s(o, a, b *float32, n int)
//
// o[i] = max(a[i], b[i]) for n elements, n a positive multiple of 8, NaN
// when either is, as Go's max: VMAXPS gives b when either is NaN, and a
// NaN in a is blended back.
TEXT ·maxFloat32s(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX

maxLoop:
	VMOVUPS (SI), Y1
	VMAXPS (DX), Y1, Y2
	VCMPPS $3, Y1, Y1, Y3
	VBLENDVPS Y3, Y1, Y2, Y4
	VMOVUPS Y4, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ maxLoop
	VZEROUPPER
	RET

// func transpose8x8(dst *float32, dstStride int, src *float32, srcStride int, add float32)
//
// dst[i*dstStride+j] = src[j*srcStride+i] + add for i, j in [0, 8), the
// strides in elements: the 8×8 transpose of unpacks, shuffles and lane
// permutations.
TEXT ·transpose8x8(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ dstStride+8(FP), R10
	SHLQ $2, R10
	MOVQ src+16(FP), SI
	MOVQ srcStride+24(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R9
	LEAQ (SI)(R8*4), DX

	VMOVUPS (SI), Y0
	VMOVUPS (SI)(R8*1), Y1
	VMOVUPS (SI)(R8*2), Y2
	VMOVUPS (SI)(R9*1), Y3
	VMOVUPS (DX), Y4
	VMOVUPS (DX)(R8*1), Y5
	VMOVUPS (DX)(R8*2), Y6
	VMOVUPS (DX)(R9*1), Y7

	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7

	VBROADCASTSS add+32(FP), Y15
	LEAQ (R10)(R10*2), R11
	LEAQ (DI)(R10*4), DX

	VPERM2F128 $0x20, Y4, Y0, Y8
	VADDPS Y15, Y8, Y8
	VMOVUPS Y8, (DI)
	VPERM2F128 $0x20, Y5, Y1, Y9
	VADDPS Y15, Y9, Y9
	VMOVUPS Y9, (DI)(R10*1)
	VPERM2F128 $0x20, Y6, Y2, Y10
	VADDPS Y15, Y10, Y10
	VMOVUPS Y10, (DI)(R10*2)
	VPERM2F128 $0x20, Y7, Y3, Y11
	VADDPS Y15, Y11, Y11
	VMOVUPS Y11, (DI)(R11*1)
	VPERM2F128 $0x31, Y4, Y0, Y8
	VADDPS Y15, Y8, Y8
	VMOVUPS Y8, (DX)
	VPERM2F128 $0x31, Y5, Y1, Y9
	VADDPS Y15, Y9, Y9
	VMOVUPS Y9, (DX)(R10*1)
	VPERM2F128 $0x31, Y6, Y2, Y10
	VADDPS Y15, Y10, Y10
	VMOVUPS Y10, (DX)(R10*2)
	VPERM2F128 $0x31, Y7, Y3, Y11
	VADDPS Y15, Y11, Y11
	VMOVUPS Y11, (DX)(R11*1)
	VZEROUPPER
	RET

// func maxRowPairs(o, x *float32, width, pairs int)
//
// o[r*width+j] = max(x[2r*width+j], x[(2r+1)*width+j]) for r < pairs and
// j < width, width a positive multiple of 8, NaN when either is.
TEXT ·maxRowPairs(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ width+16(FP), R8
	MOVQ pairs+24(FP), R9
	SHLQ $2, R8

pairLoop:
	MOVQ R8, CX
	LEAQ (SI)(R8*1), DX

rowLoop:
	VMOVUPS (SI), Y1
	VMAXPS (DX), Y1, Y2
	VCMPPS $3, Y1, Y1, Y3
	VBLENDVPS Y3, Y1, Y2, Y4
	VMOVUPS Y4, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $32, CX
	JNZ rowLoop

	MOVQ DX, SI
	DECQ R9
	JNZ pairLoop
	VZEROUPPER
	RET

// func maxAdjacent(o, x *float32, n int)
//
// o[i] = max(x[2i], x[2i+1]) for i < n, n a positive multiple of 8, NaN
// when either is: the even and odd elements of 16 are split by shuffles,
// compared, and put back in order by a permutation of 64-bit pairs.
TEXT ·maxAdjacent(SB), NOSPLIT, $0-24
	MOVQ o+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX

adjLoop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VSHUFPS $0x88, Y1, Y0, Y2
	VSHUFPS $0xDD, Y1, Y0, Y3
	VMAXPS Y3, Y2, Y4
	VCMPPS $3, Y2, Y2, Y5
	VBLENDVPS Y5, Y2, Y4, Y4
	VPERMPD $0xD8, Y4, Y4
	VMOVUPS Y4, (DI)
	ADDQ $64, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ adjLoop
	VZEROUPPER
	RET

// func addConstFloat32s(o, x *float32, v float32, n int)
//
// o[i] = x[i] + v for n elements, n a positive multiple of 8.
TEXT ·addConstFloat32s(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ x+8(FP), SI
	VBROADCASTSS v+16(FP), Y0
	MOVQ n+24(FP), CX

addLoop:
	VADDPS (SI), Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ addLoop
	VZEROUPPER
	RET
