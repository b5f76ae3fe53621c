package onnx

import "math"

// smallFloat describes a binary floating-point format narrower than float32
// by its field widths and its special values. Codes are unsigned integers
// whose top bit is the sign.
type smallFloat struct {
	expBits, mantBits int
	bias              int
	maxCode           uint16 // largest finite magnitude, without the sign
	hasInf            bool   // the code after maxCode is infinity (IEEE layout)
	unsignedZero      bool   // FNUZ: one zero; the negative-zero code is the only NaN
	nanCode           uint16 // NaN magnitude for formats without infinity (FN): sign kept
	hasNaN            bool   // false for FLOAT4E2M1, whose NaN input saturates
}

func (f smallFloat) signBit() uint16 { return 1 << (f.expBits + f.mantBits) }

// narrowFormat gives the layout of the narrow float types other than
// FLOAT8E8M0, with parameters from docs/technical/float8.md and float4.md of
// the ONNX repository and IEEE 754 for binary16; bfloat16 is the top half of
// a float32.
func narrowFormat(dt DataType) (smallFloat, bool) {
	switch dt {
	case TensorProto_FLOAT16:
		return smallFloat{expBits: 5, mantBits: 10, bias: 15, maxCode: 0x7bff, hasInf: true, hasNaN: true}, true
	case TensorProto_BFLOAT16:
		return smallFloat{expBits: 8, mantBits: 7, bias: 127, maxCode: 0x7f7f, hasInf: true, hasNaN: true}, true
	case TensorProto_FLOAT8E4M3FN:
		return smallFloat{expBits: 4, mantBits: 3, bias: 7, maxCode: 0x7e, nanCode: 0x7f, hasNaN: true}, true
	case TensorProto_FLOAT8E4M3FNUZ:
		return smallFloat{expBits: 4, mantBits: 3, bias: 8, maxCode: 0x7f, unsignedZero: true, hasNaN: true}, true
	case TensorProto_FLOAT8E5M2:
		return smallFloat{expBits: 5, mantBits: 2, bias: 15, maxCode: 0x7b, hasInf: true, hasNaN: true}, true
	case TensorProto_FLOAT8E5M2FNUZ:
		return smallFloat{expBits: 5, mantBits: 2, bias: 16, maxCode: 0x7f, unsignedZero: true, hasNaN: true}, true
	case TensorProto_FLOAT4E2M1:
		return smallFloat{expBits: 2, mantBits: 1, bias: 1, maxCode: 0x7}, true
	}
	return smallFloat{}, false
}

// encode rounds x to the nearest code of f, ties to even. When the rounded
// magnitude is beyond the largest finite value, saturate picks ±max over
// infinity or NaN; the Cast operator's table in float8.md gives the rest:
// infinities saturate in E4M3FN and E5M2 (when saturating) and become NaN in
// the FNUZ types, and negative zero becomes zero where there is none.
func (f smallFloat) encode(x float64, saturate bool) uint16 {
	bits := math.Float64bits(x)
	var sign uint16
	if bits>>63 != 0 {
		sign = f.signBit()
	}
	expField := int(bits>>52) & 0x7ff
	frac := bits & (1<<52 - 1)
	if expField == 0x7ff {
		if frac != 0 { // NaN
			return f.nan(sign, frac)
		}
		return f.overflow(sign, saturate, true)
	}
	if expField == 0 && frac == 0 {
		if f.unsignedZero {
			return 0
		}
		return sign
	}
	// x = sig × 2^(e-52) with sig < 2^53. float64 subnormals are far below
	// half the smallest subnormal of every format here and round to zero.
	if expField == 0 {
		return f.zero(sign)
	}
	e := expField - 1023
	sig := frac | 1<<52
	minExp := 1 - f.bias
	if e < minExp-f.mantBits-1 {
		return f.zero(sign)
	}
	// Quantum of the target at this magnitude: 2^(max(e,minExp)-mantBits).
	qe := max(e, minExp) - f.mantBits
	shift := uint(52 + qe - e) // between 52-mantBits and 53
	q := sig >> shift
	rem := sig & (1<<shift - 1)
	half := uint64(1) << (shift - 1)
	if rem > half || rem == half && q&1 == 1 {
		q++
	}
	// For normal numbers the code is the biased exponent above the minimum
	// followed by the mantissa; q carries the implicit leading one, which
	// adds one to the exponent field, so a mantissa overflow from rounding
	// carries into the exponent by itself.
	code := uint64(max(e, minExp)-minExp)<<f.mantBits + q
	if code > uint64(f.maxCode) {
		return f.overflow(sign, saturate, false)
	}
	if code == 0 {
		return f.zero(sign)
	}
	return sign | uint16(code)
}

func (f smallFloat) zero(sign uint16) uint16 {
	if f.unsignedZero {
		return 0
	}
	return sign
}

// overflow is the code for a magnitude above the largest finite value, or an
// infinite input when isInf.
func (f smallFloat) overflow(sign uint16, saturate, isInf bool) uint16 {
	switch {
	case f.unsignedZero && isInf:
		return f.signBit() // NaN, whatever saturate says
	case saturate || !f.hasNaN:
		return sign | f.maxCode
	case f.hasInf:
		return sign | (f.maxCode + 1)
	case f.unsignedZero:
		return f.signBit()
	}
	return sign | f.nanCode
}

// nan keeps the sign and the top mantissa bits of a NaN, so that a narrow
// NaN widened to float32 comes back with its payload; a payload that would
// become zero is made quiet instead.
func (f smallFloat) nan(sign uint16, frac uint64) uint16 {
	switch {
	case !f.hasNaN:
		return f.maxCode // FLOAT4E2M1: NaN converts to 6 per float4.md
	case f.unsignedZero:
		return f.signBit()
	case !f.hasInf:
		return sign | f.nanCode
	}
	payload := uint16(frac >> (52 - f.mantBits))
	if payload == 0 {
		payload = 1 << (f.mantBits - 1)
	}
	return sign | (f.maxCode+1)&^(1<<f.mantBits-1) | payload
}

// decode is the exact value of a code.
func (f smallFloat) decode(code uint16) float32 {
	sign := code&f.signBit() != 0
	mag := code &^ f.signBit()
	mantMask := uint16(1)<<f.mantBits - 1
	switch {
	case f.unsignedZero && sign && mag == 0:
		return float32(math.NaN())
	case f.hasInf && mag > f.maxCode:
		if mag&mantMask == 0 {
			return float32(math.Inf(signInt(sign)))
		}
		// Keep the payload and sign in the float32 NaN.
		b := uint32(0x7f800000) | uint32(mag&mantMask)<<(23-f.mantBits)
		if sign {
			b |= 1 << 31
		}
		return math.Float32frombits(b)
	case f.hasNaN && !f.hasInf && !f.unsignedZero && mag == f.nanCode:
		nan := float32(math.NaN())
		if sign {
			return -nan
		}
		return nan
	}
	minExp := 1 - f.bias
	exp := int(mag >> f.mantBits)
	var v float64
	if exp == 0 {
		v = math.Ldexp(float64(mag&mantMask), minExp-f.mantBits)
	} else {
		v = math.Ldexp(float64(mag&mantMask|1<<f.mantBits), minExp+exp-1-f.mantBits)
	}
	if sign {
		v = -v
	}
	return float32(v)
}

func signInt(neg bool) int {
	if neg {
		return -1
	}
	return 1
}

// Float16bits is the IEEE binary16 code of f, rounded to nearest even;
// magnitudes from 65520 up become infinity.
func Float16bits(f float32) uint16 {
	format, _ := narrowFormat(TensorProto_FLOAT16)
	return format.encode(float64(f), false)
}

// Float16frombits is the value of a binary16 code. It is exact.
func Float16frombits(b uint16) float32 {
	sign := uint32(b&0x8000) << 16
	exp := uint32(b>>10) & 0x1f
	mant := uint32(b & 0x3ff)
	switch exp {
	case 0:
		v := float32(mant) * (1.0 / (1 << 24)) // subnormal: mant × 2^-24
		return math.Float32frombits(math.Float32bits(v) | sign)
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// BFloat16bits is the bfloat16 code of f, rounded to nearest even.
func BFloat16bits(f float32) uint16 {
	format, _ := narrowFormat(TensorProto_BFLOAT16)
	return format.encode(float64(f), false)
}

// BFloat16frombits is the value of a bfloat16 code, the top half of a
// float32. It is exact.
func BFloat16frombits(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// Float8bits is the code of f in the float8 type dt, rounded to nearest even
// as the Cast operator does; saturate is Cast's attribute of that name. For
// FLOAT8E8M0, which holds only powers of two, the magnitude is rounded up to
// the next power of two (Cast's default round_mode "up"): zero and
// magnitudes up to 2^-127 give 2^-127, NaN and infinities give NaN (0xFF),
// and magnitudes above 2^127 give 2^127 when saturating, NaN otherwise. For
// a dt that is not a float8 type the result is 0.
func Float8bits(dt DataType, f float32, saturate bool) uint8 {
	if dt == TensorProto_FLOAT8E8M0 {
		return e8m0Bits(float64(f), saturate)
	}
	if !dt.IsFloat8() {
		return 0
	}
	format, _ := narrowFormat(dt)
	return uint8(format.encode(float64(f), saturate))
}

// Float8frombits is the value of code b of the float8 type dt. It is exact.
// For a dt that is not a float8 type the result is NaN.
func Float8frombits(dt DataType, b uint8) float32 {
	if dt == TensorProto_FLOAT8E8M0 {
		if b == 0xff {
			return float32(math.NaN())
		}
		return float32(math.Ldexp(1, int(b)-127))
	}
	if !dt.IsFloat8() {
		return float32(math.NaN())
	}
	format, _ := narrowFormat(dt)
	return format.decode(uint16(b))
}

func e8m0Bits(x float64, saturate bool) uint8 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0xff
	}
	x = math.Abs(x)
	if x <= math.Ldexp(1, -127) {
		return 0
	}
	frac, exp := math.Frexp(x) // x = frac × 2^exp, frac in [0.5, 1)
	if frac != 0.5 {
		exp++ // round up to the next power of two
	}
	e := exp - 1 + 127
	if e > 0xfe {
		if saturate {
			return 0xfe
		}
		return 0xff
	}
	return uint8(e)
}

// Float4bits is the FLOAT4E2M1 code of f in the low four bits, rounded to
// nearest even; as float4.md specifies, magnitudes above 6 and infinities
// saturate to ±6 and NaN becomes 6.
func Float4bits(f float32) uint8 {
	format, _ := narrowFormat(TensorProto_FLOAT4E2M1)
	return uint8(format.encode(float64(f), true))
}

// Float4frombits is the value of the FLOAT4E2M1 code in the low four bits of
// b. It is exact.
func Float4frombits(b uint8) float32 {
	format, _ := narrowFormat(TensorProto_FLOAT4E2M1)
	return format.decode(uint16(b & 0xf))
}
