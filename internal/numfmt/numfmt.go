// Package numfmt writes the numbers that onnxopt's text output and HTML
// report show (counts, byte sizes and the error metrics of verify), so
// that both show a figure the same way.
package numfmt

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Thousands writes n with commas between groups of three digits.
func Thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	sign := ""
	if n < 0 {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return sign + b.String()
}

// ByteSize writes a byte count in B, KB, MB or GB (powers of 1000, as file
// managers show sizes).
func ByteSize(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// Metric writes an error metric or tolerance with three significant
// digits.
func Metric(x float64) string {
	switch {
	case math.IsInf(x, 1):
		return "inf"
	case math.IsNaN(x):
		return "nan"
	}
	return strconv.FormatFloat(x, 'g', 3, 64)
}

// Cosine writes a cosine similarity; one within 1e-4 of 1 as 1−d, which
// keeps the digits that tell a rounding error from a broken layer.
func Cosine(x float64) string {
	switch {
	case math.IsNaN(x):
		return "nan"
	case x < 1 && 1-x < 1e-4:
		return "1−" + strconv.FormatFloat(1-x, 'g', 2, 64)
	}
	return strconv.FormatFloat(x, 'f', 6, 64)
}

// SQNR writes a signal-to-quantization-noise ratio in decibels, without
// the unit, to a tenth of a decibel: "inf" for identical values, "-inf"
// for no signal.
func SQNR(x float64) string {
	switch {
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	}
	return strconv.FormatFloat(x, 'f', 1, 64)
}
