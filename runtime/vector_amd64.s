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
